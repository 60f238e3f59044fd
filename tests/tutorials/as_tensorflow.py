"""Run a tutorial program as a script under real TensorFlow: `python as_tensorflow.py PROGRAM.py ARGS...`
binds the name `graphexec` to `tensorflow.compat.v1` (v2 behaviour disabled), then runs PROGRAM as __main__.
Used by make_golden.py; needs TensorFlow, so the tests never run it."""
import os
import runpy
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow.compat.v1 as tf  # noqa: E402

tf.disable_v2_behavior()
tf.logging.set_verbosity(tf.logging.ERROR)
sys.modules["graphexec"] = tf
program = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(program, run_name="__main__")
