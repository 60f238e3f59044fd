"""TensorFlow in-process: graph mode, `tf.compat.v1.Session()` in the benchmark process."""

import os

from bench.systems import Unavailable
from bench.systems.tf1_style import Tf1StyleSystem


def import_tf1():
    """`tensorflow.compat.v1` with eager execution off, or Unavailable if TF is not installed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as error:
        raise Unavailable(f"{error} (pip install tensorflow-cpu==2.21.0)") from error
    tf.compat.v1.disable_eager_execution()
    tf.get_logger().setLevel("ERROR")
    return tf.compat.v1


class TfInProcess(Tf1StyleSystem):
    name = "tf_inprocess"
    has_server = False

    def start(self):
        self.api = import_tf1()
