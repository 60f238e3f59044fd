"""tf.estimator: the digits MLP trains to >= 97% test accuracy, stops, resumes from its checkpoint (in a
new Estimator and in a new process), evaluates and predicts; numpy_input_fn's batches and end; the
Estimator's argument checks, its summaries in model_dir and its progress bars."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from threadpoolctl import threadpool_limits

import estimator_programs as programs
import graphexec as tf
from graphexec.estimator.inputs import feeding_hook

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def checkpoint_steps(directory):
    return sorted(int(name.split("-")[1].split(".")[0]) for name in os.listdir(directory)
                  if name.startswith("model.ckpt-"))


@pytest.mark.training
@pytest.mark.timeout(300)
def test_digits_estimator_trains_stops_resumes_evaluates_and_predicts(tmp_path):
    # Small matrices: one BLAS thread is as fast and keeps the run deterministic (see examples/train_digits.py).
    with threadpool_limits(limits=1, user_api="blas"):
        seen = programs.train_stop_resume_evaluate_predict(tmp_path)
    assert seen["after_first"] == str(tmp_path / "model.ckpt-200")
    assert seen["early"]["global_step"] == 200 and seen["final"]["global_step"] == 400
    assert seen["latest"] == str(tmp_path / "model.ckpt-400")
    assert seen["final"]["accuracy"] >= 0.97, seen["final"]
    assert seen["final"]["loss"] < seen["early"]["loss"]
    assert sorted(seen["final"]) == ["accuracy", "global_step", "loss"]
    # predict yields one dict per test example; its classes score what evaluate reported
    classes = np.array([p["classes"] for p in seen["predictions"]])
    assert len(seen["predictions"]) == len(seen["y_test"])
    assert np.mean(classes == seen["y_test"]) == pytest.approx(seen["final"]["accuracy"], abs=1e-6)
    probabilities = np.array([p["probabilities"] for p in seen["predictions"]])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert (probabilities.argmax(axis=1) == classes).all()
    # checkpoints every 100 steps and at each end, keep_checkpoint_max=3; summaries beside them
    assert checkpoint_steps(tmp_path) == [200, 300, 400]
    assert seen["kernel"].shape == (64, 10)
    training = EventAccumulator(str(tmp_path)).Reload()
    assert [e.step for e in training.Scalars("loss")] == [1, 51, 101, 151, 201, 251, 301, 351]
    evaluations = EventAccumulator(str(tmp_path / "eval")).Reload()
    assert [(e.step, round(e.value, 5)) for e in evaluations.Scalars("accuracy")] == [
        (200, round(float(seen["early"]["accuracy"]), 5)), (400, round(float(seen["final"]["accuracy"]), 5))]


@pytest.mark.timeout(300)
def test_a_new_process_resumes_from_the_latest_checkpoint(tmp_path):
    x_train, _, y_train, _ = programs.digits()
    programs.estimator(tmp_path).train(programs.inputs(x_train, y_train), steps=20)
    script = textwrap.dedent(f"""
        import estimator_programs as programs
        x_train, _, y_train, _ = programs.digits()
        estimator = programs.estimator({str(tmp_path)!r})
        print("restored", estimator.get_variable_value("global_step"))
        estimator.train(programs.inputs(x_train, y_train), max_steps=35)
        print("latest", estimator.latest_checkpoint())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([HERE, ROOT])})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["restored", "20", "latest", str(tmp_path / "model.ckpt-35")]
    assert checkpoint_steps(tmp_path) == [0, 20, 35]


def rows_fed(input_fn, runs):
    """The values of x that a numpy_input_fn feeds over `runs` runs (None marks the end of the input)."""
    batches = []
    with tf.Graph().as_default() as graph:
        tf.set_random_seed(7)
        tf.train.get_or_create_global_step()
        features = input_fn()
        x = features[0] if isinstance(features, tuple) else features
        x = x["x"] if isinstance(x, dict) else x
        with tf.train.MonitoredSession(hooks=[feeding_hook(graph)]) as sess:
            for _ in range(runs):
                if sess.should_stop():
                    break
                batches.append(sess.run(x).tolist())
            else:
                return batches
    return batches + [None]


def test_numpy_input_fn_batches_across_epochs_then_ends():
    x = np.arange(5, dtype=np.float32)
    fn = tf.estimator.inputs.numpy_input_fn({"x": x}, x.astype(np.int64), batch_size=2, num_epochs=2, shuffle=False)
    assert rows_fed(fn, 10) == [[0, 1], [2, 3], [4, 0], [1, 2], [3, 4], None]


def test_numpy_input_fn_shuffles_each_epoch_reproducibly_with_the_graph_seed():
    x = np.arange(6, dtype=np.float32)
    fn = tf.estimator.inputs.numpy_input_fn(x, batch_size=3, num_epochs=None, shuffle=True)
    first, again = rows_fed(fn, 6), rows_fed(fn, 6)
    assert first == again and None not in first
    epochs = [sorted(first[i] + first[i + 1]) for i in range(0, 6, 2)]
    assert epochs == [list(range(6))] * 3
    assert [first[0] + first[1], first[2] + first[3]] != [list(range(6))] * 2


def test_numpy_input_fn_rejects_what_tf_rejects():
    with pytest.raises(ValueError, match="shuffle must be provided and explicitly set as boolean"):
        tf.estimator.inputs.numpy_input_fn(np.zeros(3))
    with pytest.raises(ValueError, match="Length of tensors in x and y is mismatched"):
        tf.estimator.inputs.numpy_input_fn({"a": np.zeros(3)}, np.zeros(4), shuffle=False)
    with pytest.raises(ValueError, match="duplicate keys"):
        tf.estimator.inputs.numpy_input_fn({"a": np.zeros(3)}, {"a": np.zeros(3)}, shuffle=False)


def linear_model_fn(features, labels, mode):
    """y = w * x with one weight, trained toward w = 3 by plain gradient descent."""
    weight = tf.get_variable("w", [], initializer=tf.zeros_initializer())
    prediction = weight * features
    if mode == tf.estimator.ModeKeys.PREDICT:
        return tf.estimator.EstimatorSpec(mode, predictions={"y": prediction, "x": features})
    loss = tf.reduce_mean(tf.square(prediction - labels))
    train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss, global_step=tf.train.get_global_step())
    return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op,
                                      eval_metric_ops={"mean_prediction": tf.metrics.mean(prediction)})


def linear_input(epochs=None):
    x = np.array([1.0, 2.0], dtype=np.float32)
    return tf.estimator.inputs.numpy_input_fn(x, 3 * x, batch_size=2, num_epochs=epochs, shuffle=False)


def test_train_steps_add_and_max_steps_stop_at_the_global_step(tmp_path):
    estimator = tf.estimator.Estimator(linear_model_fn, model_dir=str(tmp_path))
    estimator.train(linear_input(), steps=3).train(linear_input(), steps=2)
    assert estimator.get_variable_value("global_step") == 5
    estimator.train(linear_input(), max_steps=4)  # already past: nothing runs, nothing is saved
    assert estimator.latest_checkpoint() == str(tmp_path / "model.ckpt-5")
    estimator.train(linear_input(epochs=3))  # no steps: until the input ends (3 epochs of one batch)
    assert estimator.get_variable_value("global_step") == 8
    # numpy: mean((w x - 3x)^2) over x = 1, 2 has gradient 5 (w - 3); 8 steps of 0.1 from 0
    weight = 0.0
    for _ in range(8):
        weight -= 0.1 * 5 * (weight - 3)
    assert estimator.get_variable_value("w") == pytest.approx(weight, rel=1e-5)
    results = estimator.evaluate(linear_input(epochs=1))
    assert results["global_step"] == 8
    assert results["loss"] == pytest.approx(2.5 * (weight - 3) ** 2, rel=1e-4)
    assert results["mean_prediction"] == pytest.approx(1.5 * weight, rel=1e-5)
    assert estimator.evaluate(linear_input(), steps=3)["loss"] == pytest.approx(results["loss"], rel=1e-5)


def test_saving_listeners_hear_every_save_and_can_stop_training(tmp_path):
    class StopAfterSecondSave(tf.train.CheckpointSaverListener):
        def __init__(self):
            self.heard = []

        def before_save(self, session, global_step_value):
            self.heard.append(("before", int(global_step_value)))

        def after_save(self, session, global_step_value):
            self.heard.append(("after", int(global_step_value)))
            return global_step_value >= 2

    listener = StopAfterSecondSave()
    config = tf.estimator.RunConfig(model_dir=str(tmp_path), save_checkpoints_steps=2)
    tf.estimator.Estimator(linear_model_fn, config=config).train(linear_input(), steps=10,
                                                                 saving_listeners=[listener])
    assert listener.heard == [("before", 0), ("after", 0), ("before", 2), ("after", 2)]
    assert tf.train.latest_checkpoint(str(tmp_path)) == str(tmp_path / "model.ckpt-2")


def test_an_input_fn_may_return_tensors_of_its_own(tmp_path):
    """Not only numpy_input_fn: any (features, labels) tensors work (as a tf.data iterator's get_next() will)."""
    def constant_input():
        x = tf.constant([1.0, 2.0])
        return x, 3 * x

    estimator = tf.estimator.Estimator(linear_model_fn, model_dir=str(tmp_path))
    estimator.train(constant_input, steps=4)
    weight = 0.0
    for _ in range(4):
        weight -= 0.1 * 5 * (weight - 3)
    assert estimator.get_variable_value("w") == pytest.approx(weight, rel=1e-5)
    assert estimator.evaluate(constant_input, steps=2)["mean_prediction"] == pytest.approx(1.5 * weight, rel=1e-5)


def test_an_input_fn_may_return_a_dataset_read_until_it_ends(tmp_path):
    """A tf.data Dataset from the input_fn: train runs until the data ends (OutOfRangeError), one step a batch."""
    def dataset_input():
        x = np.array([1.0, 2.0, 1.0, 2.0, 1.0, 2.0], np.float32)
        return tf.data.Dataset.from_tensor_slices((x, 3 * x)).batch(2).repeat(2)

    estimator = tf.estimator.Estimator(linear_model_fn, model_dir=str(tmp_path))
    estimator.train(dataset_input)
    assert estimator.get_variable_value("global_step") == 6  # 3 batches, twice
    weight = 0.0
    for _ in range(6):
        weight -= 0.1 * 5 * (weight - 3)  # every batch is [1, 2], as in the constant input above
    assert estimator.get_variable_value("w") == pytest.approx(weight, rel=1e-5)


def test_predict_keys_and_batches(tmp_path):
    estimator = tf.estimator.Estimator(linear_model_fn, model_dir=str(tmp_path))
    estimator.train(linear_input(), steps=1)  # w = 1.5
    x = np.array([1.0, 2.0, 4.0], dtype=np.float32)
    examples = tf.estimator.inputs.numpy_input_fn(x, batch_size=2, shuffle=False)
    assert [p["y"] for p in estimator.predict(examples, predict_keys=["y"])] == pytest.approx([1.5, 3.0, 6.0])
    assert [sorted(p) for p in estimator.predict(examples, predict_keys="y")] == [["y"]] * 3
    batches = list(estimator.predict(examples, yield_single_examples=False))
    assert [b["x"].tolist() for b in batches] == [[1.0, 2.0], [4.0]]
    with pytest.raises(ValueError, match="Expected to run at least one output"):
        list(estimator.predict(examples, predict_keys=["z"]))


def test_the_estimator_checks_its_arguments(tmp_path):
    estimator = tf.estimator.Estimator(linear_model_fn, model_dir=str(tmp_path))
    with pytest.raises(ValueError, match="Can not provide both steps and max_steps"):
        estimator.train(linear_input(), steps=1, max_steps=2)
    with pytest.raises(ValueError, match="Must specify steps > 0"):
        estimator.train(linear_input(), steps=0)
    with pytest.raises(ValueError, match="model_dir are set both in constructor and RunConfig"):
        tf.estimator.Estimator(linear_model_fn, model_dir="a", config=tf.estimator.RunConfig(model_dir="b"))
    with pytest.raises(ValueError, match="must include features argument"):
        tf.estimator.Estimator(lambda labels, mode: None)
    with pytest.raises(ValueError, match="save_checkpoints_steps and save_checkpoints_secs cannot both be set"):
        tf.estimator.RunConfig(save_checkpoints_steps=1, save_checkpoints_secs=1)
    with pytest.raises(ValueError, match="Missing train_op"):
        tf.estimator.EstimatorSpec(tf.estimator.ModeKeys.TRAIN, loss=tf.constant(1.0))

    def loss_metric_fn(features, labels, mode):
        spec = linear_model_fn(features, labels, mode)
        return spec._replace(eval_metric_ops={"loss": tf.metrics.mean(spec.loss)})

    with pytest.raises(ValueError, match='Metric with name "loss" is not allowed'):
        tf.estimator.Estimator(loss_metric_fn, model_dir=str(tmp_path)).evaluate(linear_input(epochs=1))


def test_a_nan_loss_stops_training_with_tf_error(tmp_path):
    def diverging_fn(features, labels, mode):
        weight = tf.get_variable("w", [], initializer=tf.ones_initializer())
        loss = tf.log(weight - 1.0 - tf.cast(tf.train.get_global_step(), tf.float32))
        train_op = tf.train.get_global_step().assign_add(1)
        return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)

    estimator = tf.estimator.Estimator(diverging_fn, model_dir=str(tmp_path))
    with pytest.raises(tf.train.NanLossDuringTrainingError):
        estimator.train(linear_input(), steps=5)


@pytest.mark.parametrize("setting, shown", [("1", True), ("0", False), (None, False)])  # None: stderr no terminal
def test_train_evaluate_and_predict_show_progress_bars_only_when_enabled(tmp_path, monkeypatch, capsys, setting,
                                                                          shown):
    if setting is None:
        monkeypatch.delenv("GRAPHEXEC_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("GRAPHEXEC_PROGRESS", setting)
    estimator = tf.estimator.Estimator(linear_model_fn, model_dir=str(tmp_path))
    estimator.train(linear_input(), steps=3)
    estimator.evaluate(linear_input(epochs=1))
    list(estimator.predict(tf.estimator.inputs.numpy_input_fn(np.ones(2, np.float32), shuffle=False)))
    err = capsys.readouterr().err
    for label in ("training", "evaluating", "predicting"):
        assert (label in err) is shown, err
    if shown:
        assert "0/3" in err  # train(steps=3) knows its total
