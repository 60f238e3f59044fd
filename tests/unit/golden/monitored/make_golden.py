"""Regenerates hooks.json: what real TensorFlow's tf.compat.v1.train.MonitoredTrainingSession does with
hooks (the order of their calls, what they see) and which checkpoint files it writes. The same program runs
under graphexec in tests/unit/test_monitored_session.py (`program(tf)`), so CI needs no TensorFlow.

    python3 tests/unit/golden/monitored/make_golden.py
"""
import json
import os
import pathlib
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from hook_program import program  # noqa: E402


def main():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow.compat.v1 as tf
    tf.disable_v2_behavior()
    with tempfile.TemporaryDirectory() as directory:
        record = program(tf, directory)
    (HERE / "hooks.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
