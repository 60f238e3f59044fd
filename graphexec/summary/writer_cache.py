"""tf.summary.FileWriterCache: one FileWriter per directory, shared by the hooks that write there."""
from __future__ import annotations

import threading

from graphexec.framework import get_default_graph
from graphexec.summary.writer import FileWriter


class FileWriterCache:
    _writers: dict[str, FileWriter] = {}
    _lock = threading.Lock()

    @staticmethod
    def get(logdir) -> FileWriter:
        """The directory's writer, created (with the default graph) on first use."""
        with FileWriterCache._lock:
            logdir = str(logdir)
            if logdir not in FileWriterCache._writers:
                FileWriterCache._writers[logdir] = FileWriter(logdir, graph=get_default_graph())
            return FileWriterCache._writers[logdir]

    @staticmethod
    def clear() -> None:
        """Close and forget every cached writer (their events are flushed)."""
        with FileWriterCache._lock:
            for writer in FileWriterCache._writers.values():
                writer.close()
            FileWriterCache._writers.clear()
