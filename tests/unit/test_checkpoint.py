"""tf.train.Saver: round trips of every dtype, the documented file format, the index file and max_to_keep,
damage detection, bit-identical resumption in a fresh process, and atomic saves under SIGKILL."""
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import graphexec as tf
from graphexec.train import saver as saver_module

VALUES = {
    "f32": np.arange(6, dtype=np.float32).reshape(2, 3) / 7,
    "f64": np.array([np.pi, -0.0, np.inf]),
    "f16": np.array([1.5, -2.25], np.float16),
    "i64": np.array(2**40, np.int64),
    "i8": np.array([-128, 127], np.int8),
    "u16": np.array([[65535]], np.uint16),
    "flag": np.array([True, False]),
}


def make_variables():
    return {name: tf.Variable(value, name=name) for name, value in VALUES.items()}


def test_save_and_restore_every_dtype_exactly(tmp_path):
    variables = make_variables()
    saver = tf.train.Saver()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        path = saver.save(sess, str(tmp_path / "model"), global_step=7)
        assert path == str(tmp_path / "model-7") and os.path.exists(path + ".gxckpt")
        for var in variables.values():
            sess.run(var.assign(tf.zeros_like(var)))
        saver.restore(sess, path)
        for name, var in variables.items():
            got = sess.run(var)
            assert got.dtype == VALUES[name].dtype and got.shape == VALUES[name].shape
            assert got.tobytes() == VALUES[name].tobytes()


def test_the_file_is_the_documented_format(tmp_path):
    tf.Variable(VALUES["f32"], name="layer/kernel")
    saver = tf.train.Saver()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        path = saver.save(sess, str(tmp_path / "ckpt"))
    blob = (tmp_path / "ckpt.gxckpt").read_bytes()
    assert blob[:8] == b"GXCKPT1\n"
    (header_len,) = struct.unpack("<Q", blob[8:16])
    header = json.loads(blob[16:16 + header_len])
    assert header["format"] == "graphexec-checkpoint" and header["version"] == 1 and header["global_step"] is None
    (entry,) = header["tensors"]
    assert entry["name"] == "layer/kernel" and entry["dtype"] == "float32" and entry["shape"] == [2, 3]
    data = blob[16 + header_len + entry["offset"]:][:entry["nbytes"]]
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    np.testing.assert_array_equal(np.frombuffer(data, "<f4").reshape(2, 3), VALUES["f32"])
    assert tf.train.load_checkpoint(path)["layer/kernel"].tobytes() == VALUES["f32"].tobytes()


def test_latest_checkpoint_and_max_to_keep(tmp_path):
    counter = tf.Variable(0, name="counter")
    bump = counter.assign_add(1)
    saver = tf.train.Saver(max_to_keep=2)
    assert tf.train.latest_checkpoint(str(tmp_path)) is None
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for step in range(1, 5):
            sess.run(bump)
            saver.save(sess, str(tmp_path / "run"), global_step=step)
    assert tf.train.latest_checkpoint(str(tmp_path)) == str(tmp_path / "run-4")
    assert sorted(p.name for p in tmp_path.glob("*.gxckpt")) == ["run-3.gxckpt", "run-4.gxckpt"]
    index = json.loads((tmp_path / "checkpoint").read_text())
    assert index == {"model_checkpoint_path": "run-4", "all_model_checkpoint_paths": ["run-3", "run-4"]}
    assert tf.train.load_checkpoint(str(tmp_path / "run-3"))["counter"] == 3
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_damaged_or_mismatched_checkpoints_are_refused(tmp_path):
    w = tf.Variable(np.ones((2, 2), np.float32), name="w")
    saver = tf.train.Saver()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        path = saver.save(sess, str(tmp_path / "m"))
        blob = bytearray((tmp_path / "m.gxckpt").read_bytes())
        blob[-1] ^= 0xFF
        (tmp_path / "bad.gxckpt").write_bytes(bytes(blob))
        with pytest.raises(tf.errors.DataLossError, match="checksum mismatch for tensor 'w'"):
            saver.restore(sess, str(tmp_path / "bad"))
        (tmp_path / "short.gxckpt").write_bytes(bytes(blob[:20]))
        with pytest.raises(tf.errors.DataLossError):
            saver.restore(sess, str(tmp_path / "short"))
        with pytest.raises(tf.errors.NotFoundError):
            saver.restore(sess, str(tmp_path / "missing"))
    other = tf.Graph()
    with other.as_default():
        tf.Variable(np.ones((3,), np.float32), name="w")
        tf.Variable(1.0, name="extra")
        with tf.Session(graph=other) as sess:
            with pytest.raises(tf.errors.InvalidArgumentError, match="shapes"):
                tf.train.Saver(var_list=other.get_collection("variables")[:1]).restore(sess, path)
            with pytest.raises(tf.errors.NotFoundError, match="Key extra not found"):
                tf.train.Saver(var_list=other.get_collection("variables")[1:]).restore(sess, path)
    assert w is not None


# -- across processes ------------------------------------------------------------------------------------------
TRAINING_PROGRAM = textwrap.dedent('''
    import sys
    import numpy as np
    import graphexec as tf

    mode, directory = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(0)
    x_data = rng.standard_normal((32, 5)).astype(np.float32)
    y_data = (x_data @ rng.standard_normal((5, 3))).astype(np.float32)

    tf.set_random_seed(1)
    x = tf.placeholder(tf.float32, [None, 5])
    y = tf.placeholder(tf.float32, [None, 3])
    hidden = tf.nn.relu(tf.matmul(x, tf.Variable(tf.random_normal([5, 8]), name="w1"))
                        + tf.Variable(tf.zeros([8]), name="b1"))
    out = tf.matmul(hidden, tf.Variable(tf.truncated_normal([8, 3]), name="w2"))
    loss = tf.losses.mean_squared_error(y, out)
    step = tf.train.get_or_create_global_step()
    train_op = tf.train.AdamOptimizer(0.01).minimize(loss, global_step=step)
    saver = tf.train.Saver()
    feed = {x: x_data, y: y_data}
    names = sorted(v.name for v in tf.global_variables())
    variables = {v.name: v for v in tf.global_variables()}

    def snapshot(sess):
        return {name: sess.run(variables[name]) for name in names}

    with tf.Session() as sess:
        if mode == "first":
            sess.run(tf.global_variables_initializer())
            for _ in range(5):
                sess.run(train_op, feed)
            saver.save(sess, directory + "/model", global_step=step)
            saved = snapshot(sess)
        else:
            saver.restore(sess, tf.train.latest_checkpoint(directory))
            saved = snapshot(sess)
        sess.run(train_op, feed)
        after = snapshot(sess)
    np.savez(directory + "/" + mode + ".npz", **{"saved/" + k: v for k, v in saved.items()},
             **{"after/" + k: v for k, v in after.items()})
''')


def test_restore_in_a_fresh_process_continues_bit_identically(tmp_path):
    script = tmp_path / "program.py"
    script.write_text(TRAINING_PROGRAM)
    for mode in ("first", "resumed"):
        subprocess.run([sys.executable, str(script), mode, str(tmp_path)], check=True, timeout=120)
    first = np.load(tmp_path / "first.npz", allow_pickle=False)
    resumed = np.load(tmp_path / "resumed.npz", allow_pickle=False)
    assert sorted(first.files) == sorted(resumed.files)
    assert any("Adam" in key for key in first.files) and "saved/global_step:0" in first.files
    for key in first.files:
        assert first[key].dtype == resumed[key].dtype
        assert first[key].tobytes() == resumed[key].tobytes(), key
    assert int(resumed["after/global_step:0"]) == 6


SAVING_FOREVER = textwrap.dedent('''
    import sys
    import numpy as np
    import graphexec as tf

    directory = sys.argv[1]
    big = tf.Variable(np.zeros(2_000_000, np.float32), name="big")
    step = tf.train.get_or_create_global_step()
    advance = tf.group(big.assign_add(tf.ones_like(big)), step.assign_add(1))
    saver = tf.train.Saver(max_to_keep=2)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        while True:
            sess.run(advance)
            saver.save(sess, directory + "/big", global_step=step)
            print("saved", flush=True)
''')


@pytest.mark.timeout(120)
def test_a_process_killed_while_saving_leaves_a_loadable_latest_checkpoint(tmp_path):
    script = tmp_path / "saver.py"
    script.write_text(SAVING_FOREVER)
    for delay in (0.05, 0.13, 0.29):
        process = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "saved"  # at least one checkpoint is complete
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()
        latest = tf.train.latest_checkpoint(str(tmp_path))
        stored = tf.train.load_checkpoint(latest)  # checksums verified
        step = int(stored["global_step"])
        assert latest.endswith(f"-{step}") and step >= 1
        np.testing.assert_array_equal(stored["big"][[0, -1]], [step, step])
        assert saver_module.latest_checkpoint(str(tmp_path)) == latest
