"""The digits MLP as a tf.estimator program, shared by the in-process and server tests: scikit-learn's
bundled 8x8 digits (no download), the fixed 80/20 split of examples/train_digits.py."""
from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import graphexec as tf

BATCH = 64


def digits():
    """(x_train, x_test, y_train, y_test): 64 pixels per row scaled to [0, 1], int64 labels."""
    data = load_digits()
    return train_test_split((data.data / 16.0).astype(np.float32), data.target.astype(np.int64), test_size=0.2,
                            random_state=0)


def model_fn(features, labels, mode, params):
    hidden = tf.layers.dense(features["pixels"], 128, activation=tf.nn.relu, name="hidden1")
    hidden = tf.layers.dense(hidden, 64, activation=tf.nn.relu, name="hidden2")
    logits = tf.layers.dense(hidden, 10, name="logits")
    classes = tf.argmax(logits, axis=1)
    if mode == tf.estimator.ModeKeys.PREDICT:
        return tf.estimator.EstimatorSpec(mode, predictions={"classes": classes,
                                                             "probabilities": tf.nn.softmax(logits)})
    loss = tf.losses.sparse_softmax_cross_entropy(labels=labels, logits=logits)
    train_op = tf.train.AdamOptimizer(params["learning_rate"]).minimize(loss, global_step=tf.train.get_global_step())
    return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op,
                                      eval_metric_ops={"accuracy": tf.metrics.accuracy(labels, classes)})


def estimator(model_dir):
    config = tf.estimator.RunConfig(model_dir=str(model_dir), tf_random_seed=0, save_checkpoints_steps=100,
                                    save_summary_steps=50, log_step_count_steps=100, keep_checkpoint_max=3)
    return tf.estimator.Estimator(model_fn, config=config, params={"learning_rate": 3e-3})


def inputs(x, y=None, epochs=None, shuffle=True, batch_size=BATCH):
    features = {"pixels": x}
    return tf.estimator.inputs.numpy_input_fn(features, y, batch_size=batch_size, num_epochs=epochs, shuffle=shuffle)


def train_stop_resume_evaluate_predict(model_dir):
    """Train 200 steps, stop; a new Estimator resumes to global step 400 (and a third call with the same
    max_steps does nothing); evaluate and predict the test set. Returns what each stage saw."""
    x_train, x_test, y_train, y_test = digits()
    first = estimator(model_dir).train(inputs(x_train, y_train), steps=200)
    after_first = first.latest_checkpoint()
    resumed = estimator(model_dir)
    early = resumed.evaluate(inputs(x_test, y_test, epochs=1, shuffle=False, batch_size=256))
    resumed.train(inputs(x_train, y_train), max_steps=400)
    resumed.train(inputs(x_train, y_train), max_steps=400)
    final = resumed.evaluate(inputs(x_test, y_test, epochs=1, shuffle=False, batch_size=256))
    predictions = list(resumed.predict(inputs(x_test, epochs=1, shuffle=False, batch_size=100)))
    return {"after_first": after_first, "early": early, "final": final, "predictions": predictions,
            "latest": resumed.latest_checkpoint(), "kernel": resumed.get_variable_value("logits/kernel"),
            "y_test": y_test}
