"""Run a tutorial program as a script under real TensorFlow: `python as_tensorflow.py PROGRAM.py ARGS...`
binds the name `graphexec` to `tensorflow.compat.v1` (v2 behaviour disabled), then runs PROGRAM as __main__.
Used by make_golden.py; needs TensorFlow, so the tests never run it."""
import os
import runpy
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# TensorFlow's start-up notes (CUDA stubs, deprecations) go to stderr, which is the program's result:
# silence file descriptor 2 while TensorFlow loads and switches to v1 behaviour.
saved_stderr = os.dup(2)
with open(os.devnull, "w") as devnull:
    os.dup2(devnull.fileno(), 2)
    import tensorflow.compat.v1 as tf

    tf.logging.set_verbosity(tf.logging.ERROR)
    tf.disable_v2_behavior()
os.dup2(saved_stderr, 2)
os.close(saved_stderr)
sys.modules["graphexec"] = tf
program = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(program, run_name="__main__")
