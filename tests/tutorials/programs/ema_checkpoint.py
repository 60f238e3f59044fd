"""Training with tf.train.ExponentialMovingAverage and tf.train.Saver: the EMA op runs after each step
(control dependency on the train op), a checkpoint is written, and a fresh graph restores the averaged
values into the plain variables through ema.variables_to_restore()."""
import os
import tempfile

import numpy as np

import graphexec as tf


def model():
    x = tf.placeholder(tf.float64, [None, 2], name="x")
    w = tf.get_variable("w", [2, 1], tf.float64, initializer=tf.constant_initializer([[0.5], [-0.5]]))
    b = tf.get_variable("b", [1], tf.float64, initializer=tf.zeros_initializer())
    return x, tf.matmul(x, w) + b


def main():
    rng = np.random.RandomState(10)
    xs = rng.normal(size=(64, 2))
    ys = xs @ np.array([[2.0], [1.0]]) - 1.0
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.ckpt")
        tf.reset_default_graph()
        x, prediction = model()
        y = tf.placeholder(tf.float64, [None, 1], name="y")
        loss = tf.reduce_mean(tf.square(prediction - y))
        step = tf.train.get_or_create_global_step()
        train = tf.train.GradientDescentOptimizer(0.1).minimize(loss, global_step=step)
        ema = tf.train.ExponentialMovingAverage(0.9)
        with tf.control_dependencies([train]):
            train_and_average = ema.apply(tf.trainable_variables())
        losses = []
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(25):
                losses.append(sess.run([loss, train_and_average], {x: xs, y: ys})[0])
            trained = sess.run(tf.trainable_variables())
            averaged = sess.run([ema.average(v) for v in tf.trainable_variables()])
            saved = tf.train.Saver().save(sess, path, global_step=step)

        tf.reset_default_graph()
        x, prediction = model()
        restore = tf.train.ExponentialMovingAverage(0.9).variables_to_restore()
        with tf.Session() as sess:
            tf.train.Saver(restore).restore(sess, saved)
            restored = sess.run(tf.trainable_variables())
            restored_prediction = sess.run(prediction, {x: [[1.0, 1.0]]})
    return {"losses": losses, "trained": trained, "averaged": averaged, "restored": restored,
            "restore_names": sorted(restore), "checkpoint": os.path.basename(saved),
            "restored_prediction": restored_prediction}


if __name__ == "__main__":
    print(main())
