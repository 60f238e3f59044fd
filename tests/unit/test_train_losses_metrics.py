"""tf.losses (weights and TF1's reductions) and tf.metrics (streaming values over local variables)."""
import numpy as np
import pytest

import graphexec as tf

RNG = np.random.default_rng(0)
LABELS = RNG.standard_normal((4, 3))
PREDICTIONS = RNG.standard_normal((4, 3))
WEIGHTS = np.array([[1.0], [0.0], [2.0], [0.5]])  # broadcast over the last axis; one row weighted zero


def evaluate(tensor, feed=None):
    with tf.Session() as sess:
        return sess.run(tensor, feed)


def reduce_by_nonzero_weights(losses, weights):
    weights = np.broadcast_to(weights, losses.shape)
    present = np.count_nonzero(weights)
    return (losses * weights).sum() / present if present else 0.0


def huber(error, delta):
    error = np.abs(error)
    return np.where(error <= delta, 0.5 * error ** 2, delta * (error - 0.5 * delta))


@pytest.mark.parametrize("loss_fn, np_losses", [
    (tf.losses.mean_squared_error, lambda y, p: (p - y) ** 2),
    (tf.losses.absolute_difference, lambda y, p: np.abs(p - y)),
    (tf.losses.huber_loss, lambda y, p: huber(p - y, 1.0)),
    (lambda labels, predictions, **kw: tf.losses.huber_loss(labels, predictions, delta=0.3, **kw),
     lambda y, p: huber(p - y, 0.3)),
], ids=["mse", "absolute", "huber", "huber_delta"])
def test_regression_losses_with_weights_and_the_default_reduction(loss_fn, np_losses):
    unweighted = loss_fn(LABELS, PREDICTIONS)
    weighted = loss_fn(LABELS, PREDICTIONS, weights=WEIGHTS)
    assert evaluate(unweighted) == pytest.approx(np_losses(LABELS, PREDICTIONS).mean(), rel=1e-6)
    assert evaluate(weighted) == pytest.approx(reduce_by_nonzero_weights(np_losses(LABELS, PREDICTIONS), WEIGHTS),
                                               rel=1e-6)
    assert unweighted.dtype == tf.float64 and unweighted in tf.get_collection(tf.GraphKeys.LOSSES)


@pytest.mark.parametrize("reduction, np_reduce", [
    (tf.losses.Reduction.NONE, lambda losses, w: losses * w),
    (tf.losses.Reduction.SUM, lambda losses, w: (losses * w).sum()),
    (tf.losses.Reduction.MEAN, lambda losses, w: (losses * w).sum() / np.broadcast_to(w, losses.shape).sum()),
    (tf.losses.Reduction.SUM_OVER_BATCH_SIZE, lambda losses, w: (losses * w).sum() / losses.size),
    (tf.losses.Reduction.SUM_BY_NONZERO_WEIGHTS, reduce_by_nonzero_weights),
])
def test_every_reduction(reduction, np_reduce):
    loss = tf.losses.mean_squared_error(LABELS, PREDICTIONS, weights=WEIGHTS, reduction=reduction)
    np.testing.assert_allclose(evaluate(loss), np_reduce((PREDICTIONS - LABELS) ** 2, WEIGHTS), rtol=1e-6)


def test_all_weights_zero_gives_zero_not_nan():
    assert evaluate(tf.losses.mean_squared_error(LABELS, PREDICTIONS, weights=0.0)) == 0.0


def test_classification_losses():
    logits = RNG.standard_normal((4, 3)).astype(np.float32) * 5
    classes = np.array([0, 2, 1, 2])
    onehot = np.eye(3, dtype=np.float32)[classes]
    log_probs = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) \
        - logits.max(1, keepdims=True)
    expected = -log_probs[np.arange(4), classes].mean()
    assert evaluate(tf.losses.softmax_cross_entropy(onehot, logits)) == pytest.approx(expected, rel=1e-5)
    assert evaluate(tf.losses.sparse_softmax_cross_entropy(classes, logits)) == pytest.approx(expected, rel=1e-5)
    smoothed = onehot * 0.9 + 0.1 / 3
    assert evaluate(tf.losses.softmax_cross_entropy(onehot, logits, label_smoothing=0.1)) == pytest.approx(
        -(smoothed * log_probs).sum(1).mean(), rel=1e-5)
    sigmoid_expected = (np.logaddexp(0, logits) - logits * onehot).mean()
    assert evaluate(tf.losses.sigmoid_cross_entropy(onehot, logits)) == pytest.approx(sigmoid_expected, rel=1e-5)
    weighted = tf.losses.sparse_softmax_cross_entropy(classes, logits, weights=[1.0, 0.0, 1.0, 1.0])
    assert evaluate(weighted) == pytest.approx(-log_probs[[0, 2, 3], classes[[0, 2, 3]]].mean(), rel=1e-5)


def test_losses_are_differentiable_and_collected():
    w = tf.Variable(np.zeros(3), name="w")
    loss = tf.losses.huber_loss(LABELS, PREDICTIONS * w, weights=WEIGHTS)
    (g,) = tf.gradients(loss, w)
    assert g is not None
    assert tf.losses.get_total_loss() is not None and len(tf.losses.get_losses()) == 1


# -- metrics ---------------------------------------------------------------------------------------------------------
def test_streaming_accuracy_and_reset_by_the_local_initializer():
    labels = tf.placeholder(tf.int64, [None])
    predictions = tf.placeholder(tf.int64, [None])
    accuracy, update = tf.metrics.accuracy(labels, predictions)
    assert all(v in tf.local_variables() for v in tf.get_collection(tf.GraphKeys.METRIC_VARIABLES))
    assert not tf.trainable_variables() and not tf.global_variables()
    with tf.Session() as sess:
        sess.run(tf.local_variables_initializer())
        assert sess.run(accuracy) == 0.0
        assert sess.run(update, {labels: [1, 2, 3, 4], predictions: [1, 2, 0, 0]}) == pytest.approx(0.5)
        assert sess.run(update, {labels: [1, 1], predictions: [1, 1]}) == pytest.approx(4 / 6)
        assert sess.run(accuracy) == pytest.approx(4 / 6)
        sess.run(tf.local_variables_initializer())
        assert sess.run(accuracy) == 0.0


def test_streaming_weighted_mean():
    values = tf.placeholder(tf.float32, [None])
    weights = tf.placeholder(tf.float32, [None])
    mean, update = tf.metrics.mean(values, weights=weights)
    with tf.Session() as sess:
        sess.run(tf.local_variables_initializer())
        sess.run(update, {values: [1.0, 3.0], weights: [1.0, 3.0]})
        sess.run(update, {values: [10.0], weights: [0.0]})
        assert sess.run(mean) == pytest.approx(10.0 / 4.0)
