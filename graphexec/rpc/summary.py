"""TensorBoard's messages (graphexec/v1/summary.proto and event.proto, TensorFlow's field numbers): what
summary ops return serialized, and the events of event files. Ours, so that building and running summaries
needs no TensorBoard package: only tf.summary.FileWriter imports tensorboardX (for its event-file writer and
its GraphDef)."""
from __future__ import annotations

from graphexec.proto.v1.event_pb2 import Event, SessionLog, TaggedRunMetadata
from graphexec.proto.v1.summary_pb2 import HistogramProto, Summary, SummaryMetadata, SummaryTensor, SummaryTensorShape

__all__ = ["DT_STRING", "Event", "HistogramProto", "SessionLog", "Summary", "SummaryMetadata", "SummaryTensor",
           "SummaryTensorShape", "TaggedRunMetadata"]

DT_STRING = 7  # TensorFlow's DataType enum value of tf.string (SummaryTensor.dtype)
