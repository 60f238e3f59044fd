"""tf.summary.FileWriter: TensorBoard event files, written by tensorboardX's event-file writer.

`add_summary` takes what `sess.run` of a summary op returns (the serialized `Summary` bytes) or a
Summary message; `add_graph` writes the graph as a TF `GraphDef` for TensorBoard's graph tab.
The only module (with graph_def.py, which only it imports) that imports tensorboardX, whose import costs
more than the rest of graphexec's: `import graphexec` does not load it, tf.summary.FileWriter's first use
does (graphexec/summary/__init__.py). Messages from anywhere (ours, TensorFlow's, TensorBoard's) are
converted to tensorboardX's by their bytes.
"""
from __future__ import annotations

import numpy as np
from tensorboardX.proto import event_pb2
from tensorboardX.proto.summary_pb2 import Summary
from tensorboardX.writer import FileWriter as EventWriter

from graphexec.framework import Graph
from graphexec.summary.graph_def import graph_def as to_graph_def


def as_summary(summary) -> Summary:
    """A Summary message from serialized bytes (a fetched summary op, even as a 0-d array) or a message."""
    if isinstance(summary, np.ndarray):
        summary = summary.item()
    if isinstance(summary, (bytes, bytearray, memoryview)):
        return Summary.FromString(bytes(summary))
    if hasattr(summary, "SerializeToString"):  # ours, TF's, TensorBoard's or tensorboardX's Summary
        return Summary.FromString(summary.SerializeToString())
    raise TypeError(f"add_summary takes serialized Summary bytes or a Summary message, got {type(summary).__name__}")


class FileWriter:
    """Writes events for TensorBoard under `logdir` (TF1's tf.summary.FileWriter)."""

    def __init__(self, logdir, graph: Graph | None = None, max_queue: int = 10, flush_secs: float = 120,
                 graph_def=None, filename_suffix: str | None = None, session=None):
        self._logdir = str(logdir)
        self._writer = EventWriter(self._logdir, max_queue, flush_secs, filename_suffix or "")
        if graph is not None or graph_def is not None:
            self.add_graph(graph, graph_def=graph_def)

    def get_logdir(self) -> str:
        return self._logdir

    def add_summary(self, summary, global_step=None) -> None:
        self._writer.add_summary(as_summary(summary), None if global_step is None else int(global_step))

    def add_graph(self, graph: Graph | None, global_step=None, graph_def=None) -> None:
        """Write `graph` (or a ready `graph_def` message) as a GraphDef event."""
        if graph_def is None:
            if graph is None:
                raise ValueError("add_graph needs a graph or a graph_def")
            graph_def = to_graph_def(graph.nodes())
        event = event_pb2.Event(graph_def=graph_def.SerializeToString())
        self._writer.add_event(event, None if global_step is None else int(global_step))

    def add_event(self, event) -> None:
        """Write an Event message (ours, TensorFlow's, TensorBoard's or tensorboardX's)."""
        if not isinstance(event, event_pb2.Event):
            event = event_pb2.Event.FromString(event.SerializeToString())
        self._writer.add_event(event)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()

    def reopen(self) -> None:
        self._writer.reopen()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
