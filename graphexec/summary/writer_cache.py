"""tf.summary.FileWriterCache: one FileWriter per directory, shared by the hooks that write there.

tensorboardX writes events from a queue on a background thread, and only closing a writer guarantees
they are on disk; so a MonitoredSession closes the cached writers when it closes (clear()), and the next
get() starts a new events file. Their names sort in the order they were made (a sequence number after
the time), so TensorBoard reads a directory's files in order."""
from __future__ import annotations

import itertools
import os
import threading
from typing import ClassVar

from graphexec import summary
from graphexec.framework import get_default_graph


class FileWriterCache:
    # FileWriter through the package (whose first use of it imports tensorboardX), so that the hooks and
    # sessions that import this class, and clear() with no writer made, do not.
    _writers: ClassVar[dict[str, summary.FileWriter]] = {}
    _lock = threading.Lock()
    _sequence = itertools.count()

    @staticmethod
    def get(logdir) -> summary.FileWriter:
        """The directory's writer, created (with the default graph) on first use."""
        with FileWriterCache._lock:
            logdir = str(logdir)
            if logdir not in FileWriterCache._writers:
                suffix = f".{os.getpid()}.{next(FileWriterCache._sequence):06d}"
                FileWriterCache._writers[logdir] = summary.FileWriter(logdir, graph=get_default_graph(),
                                                                      filename_suffix=suffix)
            return FileWriterCache._writers[logdir]

    @staticmethod
    def clear() -> None:
        """Close and forget every cached writer: their events are all on disk once this returns."""
        with FileWriterCache._lock:
            writers, FileWriterCache._writers = list(FileWriterCache._writers.values()), {}
        for writer in writers:
            writer.close()
