"""Adadelta, FTRL and proximal gradient descent, ExponentialMovingAverage and get_checkpoint_state,
checked against real TensorFlow running the same programs (golden/train/train_programs.py; the
numbers in train_golden.json come from golden/train/make_train_golden.py)."""
import json
import pathlib
import sys

import numpy as np
import pytest

import graphexec as tf

GOLDEN_DIR = pathlib.Path(__file__).parent / "golden" / "train"
sys.path.insert(0, str(GOLDEN_DIR))
import train_programs  # noqa: E402

GOLDEN = json.loads((GOLDEN_DIR / "train_golden.json").read_text())


@pytest.mark.parametrize("name", sorted(train_programs.OPTIMIZERS))
def test_optimizer_steps_match_tensorflow(name):
    history = train_programs.optimizer_program(tf, name)
    for step, (got, want) in enumerate(zip(history, GOLDEN["optimizers"][name])):
        assert sorted(got) == sorted(want)
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=2e-5, atol=1e-6, err_msg=f"{name} step {step} {key}")


def test_slot_names_and_variables_match_tensorflow():
    w = tf.Variable([1.0], name="w")
    ftrl = tf.train.FtrlOptimizer(0.1)
    ftrl.minimize(tf.reduce_sum(w * w))
    assert ftrl.get_slot_names() == ["accum", "linear"]
    assert [v.name for v in ftrl.variables()] == ["w/Ftrl:0", "w/Ftrl_1:0"]
    with pytest.raises(ValueError, match="learning_rate_power"):
        tf.train.FtrlOptimizer(0.1, learning_rate_power=0.5)


def test_exponential_moving_average_matches_tensorflow():
    got = train_programs.ema_program(tf)
    assert got["names"] == GOLDEN["ema"]["names"]
    for step, (values, want) in enumerate(zip(got["history"], GOLDEN["ema"]["history"])):
        for value, expected in zip(values, want):
            np.testing.assert_allclose(value, expected, rtol=1e-6, err_msg=f"step {step}")


def test_restoring_moving_averages_into_the_model(tmp_path):
    w = tf.Variable([0.0, 0.0], name="w")
    ema = tf.train.ExponentialMovingAverage(0.5)
    with tf.control_dependencies([tf.assign(w, [4.0, 8.0])]):
        update = ema.apply([w])
    saver = tf.train.Saver()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(update)  # shadow: 0.5 * 0 + 0.5 * [4, 8]
        path = saver.save(sess, str(tmp_path / "model"), global_step=1)
    restorer = tf.train.Saver(ema.variables_to_restore())
    with tf.Session() as sess:
        restorer.restore(sess, path)
        np.testing.assert_array_equal(sess.run(w), [2.0, 4.0])


def test_get_checkpoint_state(tmp_path):
    assert tf.train.get_checkpoint_state(str(tmp_path)) is None
    v = tf.Variable(1.0, name="v")
    saver = tf.train.Saver(max_to_keep=2, keep_checkpoint_every_n_hours=1.0)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        paths = [saver.save(sess, str(tmp_path / "model"), global_step=step) for step in range(3)]
    state = tf.train.get_checkpoint_state(str(tmp_path))
    assert state.model_checkpoint_path == paths[-1] == tf.train.latest_checkpoint(str(tmp_path))
    assert list(state.all_model_checkpoint_paths) == paths[1:]
    assert tf.train.checkpoint_exists(paths[-1]) and not tf.train.checkpoint_exists(paths[0])
    by_dict = tf.train.Saver({"renamed": v})
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        saved = by_dict.save(sess, str(tmp_path / "dict"))
    assert sorted(tf.train.load_checkpoint(saved)) == ["renamed"]
