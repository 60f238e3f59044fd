"""A tf.Print debugging session: a small regression whose loss and gradient norm are wrapped in tf.Print
(identity ops that write their message and values to stderr when they run), with summarize= limiting how
many elements print and first_n= limiting how many times. Run as a script; the stderr is the result.
The printed values are in thousandths, rounded to integers: summation order differs between implementations
by an ulp, and tf.Print shows every digit of a double."""
import numpy as np

import graphexec as tf

ARGV = []


def thousandths(tensor):
    return tf.cast(tf.round(tensor * 1000), tf.int32)


def main():
    tf.reset_default_graph()
    rng = np.random.RandomState(9)
    xs = rng.uniform(-1, 1, size=(20, 3))
    ys = xs @ np.array([1.5, -2.0, 0.5]) + 0.25

    x = tf.placeholder(tf.float64, [None, 3], name="x")
    y = tf.placeholder(tf.float64, [None], name="y")
    w = tf.Variable(np.zeros(3), name="w")
    w_printed = tf.Print(w, [thousandths(w)], "weights (1/1000): ", summarize=3)
    prediction = tf.squeeze(tf.matmul(x, tf.expand_dims(w_printed, 1)), 1)
    loss = tf.reduce_mean(tf.square(prediction - y))
    loss = tf.Print(loss, [thousandths(loss)], "loss (1/1000): ")
    gradient = tf.gradients(loss, w)[0]
    gradient = tf.Print(gradient, [tf.shape(gradient), thousandths(gradient)], "gradient shape and value (1/1000): ", summarize=2, first_n=2)
    train = tf.assign_sub(w, 0.2 * gradient)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(4):
            sess.run(train, {x: np.round(xs, 2), y: np.round(ys, 2)})
        print("final loss", round(float(sess.run(loss, {x: np.round(xs, 2), y: np.round(ys, 2)})), 3))


if __name__ == "__main__":
    main()
