"""One model function, two graphs of it: the training tower creates its variables with
tf.get_variable inside tf.variable_scope("classifier"), the evaluation tower calls the same function with
reuse=True and so shares them (no new variables; dropout only while training)."""
import numpy as np
from sklearn.datasets import load_digits

import graphexec as tf


def classifier(images, training, reuse, initial):
    with tf.variable_scope("classifier", reuse=reuse):
        with tf.variable_scope("hidden"):
            w1 = tf.get_variable("w", [64, 48], tf.float64, initializer=tf.constant_initializer(initial["w1"]))
            b1 = tf.get_variable("b", [48], tf.float64, initializer=tf.zeros_initializer())
        hidden = tf.nn.relu(tf.matmul(images, w1) + b1)
        if training:
            hidden = tf.nn.dropout(hidden, keep_prob=1.0)  # a no-op keep_prob keeps both runs deterministic
        with tf.variable_scope("output"):
            w2 = tf.get_variable("w", [48, 10], tf.float64, initializer=tf.constant_initializer(initial["w2"]))
            b2 = tf.get_variable("b", [10], tf.float64, initializer=tf.zeros_initializer())
        return tf.matmul(hidden, w2) + b2


def main():
    tf.reset_default_graph()
    digits = load_digits()
    images, labels = digits.data / 16.0, digits.target
    rng = np.random.RandomState(3)
    initial = {"w1": rng.normal(scale=0.15, size=(64, 48)), "w2": rng.normal(scale=0.15, size=(48, 10))}

    train_x = tf.placeholder(tf.float64, [None, 64])
    train_y = tf.placeholder(tf.int64, [None])
    train_logits = classifier(train_x, training=True, reuse=False, initial=initial)
    loss = tf.losses.sparse_softmax_cross_entropy(labels=train_y, logits=train_logits)
    train = tf.train.GradientDescentOptimizer(0.3).minimize(loss)

    eval_x = tf.placeholder(tf.float64, [None, 64])
    eval_y = tf.placeholder(tf.int64, [None])
    eval_logits = classifier(eval_x, training=False, reuse=True, initial=initial)
    accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(eval_logits, 1), eval_y), tf.float64))

    losses, accuracies = [], []
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for epoch in range(3):
            for start in range(0, 1400, 100):
                losses.append(sess.run([loss, train], {train_x: images[start:start + 100],
                                                       train_y: labels[start:start + 100]})[0])
            accuracies.append(sess.run(accuracy, {eval_x: images[1400:], eval_y: labels[1400:]}))
    return {"losses": losses, "eval_accuracy": accuracies,
            "variables": [v.name for v in tf.global_variables()]}


if __name__ == "__main__":
    print(main())
