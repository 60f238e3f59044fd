"""Regenerate graphexec/tf1_names.json: the public names of TensorFlow 1's API (tf.compat.v1 of the
installed TensorFlow) per namespace. graphexec consults it to tell "TF1 has this, graphexec does not
(yet)" apart from a misspelling (graphexec/api_gaps.py). Needs tensorflow.
Usage: python tools/gen_tf1_names.py"""
import json
import os
import pathlib

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.layers needs tf-keras
import tensorflow.compat.v1 as tf  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
NAMESPACES = ["", "app", "compat", "data", "debugging", "errors", "flags", "gfile", "image", "initializers",
              "layers", "linalg", "logging", "losses", "math", "metrics", "nn", "random", "sparse", "strings",
              "summary", "train", "nn.rnn_cell"]


def public_names(module) -> list[str]:
    return sorted(name for name in dir(module) if not name.startswith("_"))


def main():
    names = {}
    for namespace in NAMESPACES:
        module = tf
        for part in filter(None, namespace.split(".")):
            module = getattr(module, part)
        names[namespace] = public_names(module)
    document = {"source": f"tensorflow {tf.__version__} tf.compat.v1", "namespaces": names}
    (ROOT / "graphexec" / "tf1_names.json").write_text(json.dumps(document, indent=0, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
