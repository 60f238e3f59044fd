"""tf.io (and tf.python_io): TFRecord files and tf.train.Example parsing."""
from graphexec import api_gaps
from graphexec.data.tfrecord import TFRecordWriter, tf_record_iterator
from graphexec.ops.parsing_ops import (
           FixedLenFeature,
           VarLenFeature,
           parse_example,
           parse_single_example,
)

__all__ = ["FixedLenFeature", "TFRecordWriter", "VarLenFeature", "parse_example", "parse_single_example",
           "tf_record_iterator"]

__getattr__ = api_gaps.missing_names("io", __name__)  # TF1 names graphexec lacks say so (see api_gaps)
