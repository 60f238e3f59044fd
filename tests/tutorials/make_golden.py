"""Regenerate golden/<program>.json by running every tutorial program under real TensorFlow (the oracle):
`python3 tests/tutorials/make_golden.py [NAME ...]`. Needs tensorflow (tensorflow-cpu 2.21 + tf-keras);
the tests themselves need no TensorFlow."""
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import tensorflow.compat.v1 as tf
import tutorial_programs as programs

tf.disable_v2_behavior()
tf.logging.set_verbosity(tf.logging.ERROR)
LAUNCHER = (str(programs.HERE / "as_tensorflow.py"),)


def golden_for(name: str) -> dict:
    argv = programs.script_argv(name)
    if argv is not None:
        return programs.run_script(name, argv, {"PYTHONWARNINGS": "ignore"}, LAUNCHER)
    return programs.run_main(programs.load(name, tf))


def main(names):
    programs.GOLDEN.mkdir(exist_ok=True)
    for name in names or programs.program_names():
        result = golden_for(name)
        (programs.GOLDEN / f"{name}.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        print("wrote", name, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
