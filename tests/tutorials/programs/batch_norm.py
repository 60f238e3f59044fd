"""Batch normalization the TF1 way: tf.layers.batch_normalization(training=is_training) adds its moving
mean/variance updates to the UPDATE_OPS collection, and the train op runs them through
tf.control_dependencies. Evaluation (training=False) then uses the moving statistics."""
import numpy as np
from sklearn.datasets import load_digits

import graphexec as tf


def main():
    tf.reset_default_graph()
    digits = load_digits()
    images, labels = digits.data, digits.target  # unscaled 0..16: batch norm does the scaling
    rng = np.random.RandomState(8)

    x = tf.placeholder(tf.float64, [None, 64], name="images")
    y = tf.placeholder(tf.int64, [None], name="labels")
    is_training = tf.placeholder(tf.bool, [], name="is_training")
    hidden = tf.layers.dense(x, 32, use_bias=False, name="hidden",
                             kernel_initializer=tf.constant_initializer(rng.normal(scale=0.1, size=(64, 32))))
    hidden = tf.nn.relu(tf.layers.batch_normalization(hidden, momentum=0.9, training=is_training, name="bn"))
    logits = tf.layers.dense(hidden, 10, name="logits",
                             kernel_initializer=tf.constant_initializer(rng.normal(scale=0.1, size=(32, 10))))
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
    update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    with tf.control_dependencies(update_ops):
        train = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
    accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), y), tf.float64))
    moving_mean = next(v for v in tf.global_variables() if v.name == "bn/moving_mean:0")

    losses = []
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for epoch in range(3):
            for start in range(0, 1400, 100):
                feed = {x: images[start:start + 100], y: labels[start:start + 100], is_training: True}
                losses.append(sess.run([loss, train], feed)[0])
        test_accuracy = sess.run(accuracy, {x: images[1400:], y: labels[1400:], is_training: False})
        batch_accuracy = sess.run(accuracy, {x: images[1400:], y: labels[1400:], is_training: True})
        mean = sess.run(moving_mean)
    return {"losses": losses, "test_accuracy": test_accuracy, "batch_stats_accuracy": batch_accuracy,
            "update_op_count": len(update_ops), "moving_mean_head": mean[:6],
            "variables": sorted(v.name for v in tf.global_variables() if v.name.startswith("bn/"))}


if __name__ == "__main__":
    print(main())
