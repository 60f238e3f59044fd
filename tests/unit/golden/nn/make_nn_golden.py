"""Regenerate nn_ops.npz: outputs and gradients of tf.nn functions in real TensorFlow (tf.compat.v1 graph
mode) on fixed inputs; the sampled losses get fixed sampled_values, so they are deterministic.
Run: python tests/unit/golden/nn/make_nn_golden.py"""
import pathlib

import numpy as np
import tensorflow.compat.v1 as tf

tf.disable_v2_behavior()
rng = np.random.default_rng(7)
X = rng.standard_normal((3, 5)).astype(np.float64) * 3
IMG = rng.standard_normal((2, 3, 2, 7)).astype(np.float32)
W = rng.standard_normal((10, 4)).astype(np.float32)
B = rng.standard_normal(10).astype(np.float32)
INPUTS = rng.standard_normal((3, 4)).astype(np.float32)
LABELS = np.array([[1, 4], [9, 0], [3, 3]], np.int64)
SAMPLED = np.array([2, 4, 7, 0], np.int64)
TRUE_EXPECTED = rng.uniform(0.1, 0.9, (3, 2)).astype(np.float32)
SAMPLED_EXPECTED = rng.uniform(0.1, 0.9, 4).astype(np.float32)
PREDICTIONS = np.array([[0.1, 0.5, 0.5, 0.2], [1.0, -1.0, 2.0, 2.0], [np.nan, 0.0, 1.0, 0.0]], np.float32)
SHARDS = [rng.standard_normal((4, 3)), rng.standard_normal((3, 3)), rng.standard_normal((3, 3))]
IDS = np.array([[0, 9], [4, 5], [7, 1]], np.int64)


def main():
    out = {"X": X, "IMG": IMG, "W": W, "B": B, "INPUTS": INPUTS, "LABELS": LABELS, "SAMPLED": SAMPLED,
           "TRUE_EXPECTED": TRUE_EXPECTED, "SAMPLED_EXPECTED": SAMPLED_EXPECTED, "PREDICTIONS": PREDICTIONS,
           "IDS": IDS, **{f"SHARD{i}": s for i, s in enumerate(SHARDS)}}
    x = tf.constant(X)
    activations = {"selu": tf.nn.selu, "softplus": tf.nn.softplus, "softsign": tf.nn.softsign,
                   "swish": tf.nn.swish, "elu": tf.nn.elu, "relu6": tf.nn.relu6, "leaky_relu": tf.nn.leaky_relu,
                   "l2_normalize": lambda t: tf.nn.l2_normalize(t, axis=1), "log_softmax": tf.nn.log_softmax,
                   "weighted_ce": lambda t: tf.nn.weighted_cross_entropy_with_logits(
                       labels=tf.sigmoid(t[::-1]), logits=t, pos_weight=2.5)}
    fetches = {}
    for name, fn in activations.items():
        y = fn(x)
        fetches[name] = y
        fetches[name + "_grad"] = tf.gradients(tf.reduce_sum(y * tf.cos(x)), x)[0]
    img = tf.constant(IMG)
    lrn = tf.nn.lrn(img, depth_radius=2, bias=1.5, alpha=0.3, beta=0.75)
    fetches["lrn"] = lrn
    fetches["lrn_grad"] = tf.gradients(tf.reduce_sum(lrn * tf.sin(img)), img)[0]
    y, mean, var = tf.nn.fused_batch_norm(img, scale=[1.0] * 6 + [2.0], offset=[0.5] * 7, epsilon=0.01)
    fetches.update(fbn_y=y, fbn_mean=mean, fbn_var=var)
    fetches["fbn_grad"] = tf.gradients(tf.reduce_sum(y * tf.sin(img)), img)[0]
    yi, _, _ = tf.nn.fused_batch_norm(img, scale=[1.0] * 7, offset=[0.0] * 7, mean=[0.1] * 7, variance=[2.0] * 7,
                                      is_training=False)
    fetches["fbn_inference"] = yi
    fetches["in_top_k_1"] = tf.nn.in_top_k(PREDICTIONS, [1, 3, 0], 1)
    fetches["in_top_k_2"] = tf.nn.in_top_k(PREDICTIONS, [3, 1, 1], 2)
    w, b, inputs = tf.constant(W), tf.constant(B), tf.constant(INPUTS)
    sampled = (tf.constant(SAMPLED), tf.constant(TRUE_EXPECTED), tf.constant(SAMPLED_EXPECTED))
    for name, fn, hits in (("nce", tf.nn.nce_loss, False), ("nce_hits", tf.nn.nce_loss, True),
                           ("ssm", tf.nn.sampled_softmax_loss, True), ("ssm_nohits", tf.nn.sampled_softmax_loss, False)):
        loss = fn(w, b, LABELS, inputs, num_sampled=4, num_classes=10, num_true=2, sampled_values=sampled,
                  remove_accidental_hits=hits)
        fetches[name] = loss
        dw, db, dx = tf.gradients(tf.reduce_sum(loss * [1.0, 2.0, 3.0]), [w, b, inputs])
        fetches[name + "_dw"], fetches[name + "_db"], fetches[name + "_dx"] = (tf.convert_to_tensor(dw),
                                                                               tf.convert_to_tensor(db), dx)
    shards = [tf.constant(s) for s in SHARDS]
    for strategy in ("mod", "div"):
        rows = tf.nn.embedding_lookup(shards, IDS, partition_strategy=strategy)
        fetches["embedding_" + strategy] = rows
        grads = tf.gradients(tf.reduce_sum(rows * rows), shards)
        for i, g in enumerate(grads):
            fetches[f"embedding_{strategy}_grad{i}"] = tf.convert_to_tensor(g)
    fetches["embedding_max_norm"] = tf.nn.embedding_lookup(tf.constant(SHARDS[0]), [[0, 1], [2, 3]], max_norm=1.0)
    with tf.Session() as sess:
        values = sess.run(fetches)
    out.update(values)
    np.savez(pathlib.Path(__file__).with_name("nn_ops.npz"), **out)


if __name__ == "__main__":
    main()
