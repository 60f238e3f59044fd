"""Softmax (multinomial logistic) regression on scikit-learn's bundled 8x8 digits: one weight matrix, the
cross entropy of the logits, plain gradient descent over fixed mini-batches, test accuracy at the end."""
import numpy as np
from sklearn.datasets import load_digits

import graphexec as tf


def digits_split():
    digits = load_digits()
    images = digits.data / 16.0
    labels = np.eye(10)[digits.target]
    return images[:1400], labels[:1400], images[1400:], labels[1400:]


def main():
    tf.reset_default_graph()
    train_x, train_y, test_x, test_y = digits_split()

    x = tf.placeholder(tf.float64, [None, 64], name="images")
    y = tf.placeholder(tf.float64, [None, 10], name="labels")
    w = tf.Variable(tf.zeros([64, 10], dtype=tf.float64), name="weights")
    b = tf.Variable(tf.zeros([10], dtype=tf.float64), name="biases")
    logits = tf.matmul(x, w) + b
    loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits_v2(labels=y, logits=logits))
    train = tf.train.GradientDescentOptimizer(0.5).minimize(loss)
    correct = tf.equal(tf.argmax(logits, 1), tf.argmax(y, 1))
    accuracy = tf.reduce_mean(tf.cast(correct, tf.float32))

    losses = []
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for epoch in range(3):
            for start in range(0, 1400, 100):
                batch = slice(start, start + 100)
                step_loss, _ = sess.run([loss, train], {x: train_x[batch], y: train_y[batch]})
                losses.append(step_loss)
        test_accuracy = sess.run(accuracy, {x: test_x, y: test_y})
    return {"losses": losses, "test_accuracy": test_accuracy}


if __name__ == "__main__":
    print(main())
