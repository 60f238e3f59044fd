"""Regenerate this folder's fixtures with real TensorFlow (run once; CI needs no TensorFlow):
  python3 tests/unit/golden/data/make_fixtures.py
train-*.tfrecord: tf.train.Example records written by tf.io.TFRecordWriter. goldens.json: what the
programs of programs.py give under tf.compat.v1 with v2 behaviour disabled."""
import json
import pathlib
import sys

import numpy as np
import tensorflow as real_tf

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import programs

tf = real_tf.compat.v1
tf.disable_v2_behavior()


def write_records():
    rng = np.random.default_rng(7)
    true_w = np.array([0.5, -1.0, 2.0], np.float32)
    for n, name in enumerate(programs.FILES):
        with real_tf.io.TFRecordWriter(str(HERE / name)) as writer:
            for i in range(10):
                x = rng.normal(size=3).astype(np.float32)
                feature = {"x": real_tf.train.Feature(float_list=real_tf.train.FloatList(value=x)),
                           "label": real_tf.train.Feature(int64_list=real_tf.train.Int64List(
                               value=[round(float(x @ true_w) * 3)])),
                           "tags": real_tf.train.Feature(bytes_list=real_tf.train.BytesList(
                               value=[f"t{j}".encode() for j in range((i + n) % 3)]))}
                if i % 4 == 1:
                    feature["weight"] = real_tf.train.Feature(float_list=real_tf.train.FloatList(value=[0.5]))
                example = real_tf.train.Example(features=real_tf.train.Features(feature=feature))
                writer.write(example.SerializeToString())


def main():
    write_records()
    goldens = {}
    for name, program in [("one_shot", lambda: programs.one_shot(tf, tf.Session)),
                          ("train_from_files", lambda: programs.train_from_files(tf, tf.Session, HERE)),
                          ("parse_batch", lambda: programs.parse_batch(tf, tf.Session, HERE)),
                          ("feedable", lambda: programs.feedable(tf, tf.Session))]:
        tf.reset_default_graph()
        goldens[name] = program()
    (HERE / "goldens.json").write_text(json.dumps(goldens, indent=1) + "\n")


if __name__ == "__main__":
    main()
