"""Regenerate train_golden.json: the programs of train_programs.py run under real TensorFlow.
Run: python tests/unit/golden/train/make_train_golden.py"""
import json
import pathlib
import sys

import tensorflow.compat.v1 as tf

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import train_programs  # noqa: E402

tf.disable_v2_behavior()


def main():
    out = {"optimizers": {}, "ema": None}
    for name in train_programs.OPTIMIZERS:
        tf.reset_default_graph()
        out["optimizers"][name] = train_programs.optimizer_program(tf, name)
    tf.reset_default_graph()
    out["ema"] = train_programs.ema_program(tf)
    pathlib.Path(__file__).with_name("train_golden.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
