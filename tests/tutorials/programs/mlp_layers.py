"""A multi-layer perceptron built from tf.layers.dense on the digits: two hidden ReLU layers, Adam, fixed
mini-batches. The kernels start from seeded numpy arrays (constant initializers), so the run is the same
in any TF1 implementation; float64 keeps the per-step losses equal to 1e-5."""
import numpy as np
from sklearn.datasets import load_digits

import graphexec as tf


def glorot(rng, fan_in, fan_out):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out))


def main():
    tf.reset_default_graph()
    digits = load_digits()
    images, labels = digits.data / 16.0, digits.target
    rng = np.random.RandomState(1)

    x = tf.placeholder(tf.float64, [None, 64], name="images")
    y = tf.placeholder(tf.int64, [None], name="labels")
    hidden = tf.layers.dense(x, 32, activation=tf.nn.relu, name="hidden1",
                             kernel_initializer=tf.constant_initializer(glorot(rng, 64, 32)))
    hidden = tf.layers.dense(hidden, 32, activation=tf.nn.relu, name="hidden2",
                             kernel_initializer=tf.constant_initializer(glorot(rng, 32, 32)))
    logits = tf.layers.dense(hidden, 10, name="logits",
                             kernel_initializer=tf.constant_initializer(glorot(rng, 32, 10)))
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
    train = tf.train.AdamOptimizer(0.01).minimize(loss)
    accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), y), tf.float32))

    losses = []
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for epoch in range(4):
            for start in range(0, 1400, 50):
                feed = {x: images[start:start + 50], y: labels[start:start + 50]}
                losses.append(sess.run([loss, train], feed)[0])
        test_accuracy = sess.run(accuracy, {x: images[1400:], y: labels[1400:]})
    names = sorted(v.name for v in tf.trainable_variables())
    return {"losses": losses, "test_accuracy": test_accuracy, "variables": names}


if __name__ == "__main__":
    print(main())
