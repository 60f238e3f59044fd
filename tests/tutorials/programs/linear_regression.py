"""Linear regression, the classic first TF1 program: fit y = w*x + b by gradient descent on a squared loss.
float64 throughout so every step's loss matches TensorFlow's to 1e-5."""
import numpy as np

import graphexec as tf


def main():
    tf.reset_default_graph()
    rng = np.random.RandomState(0)
    xs = rng.uniform(-1.0, 1.0, size=100)
    ys = 3.0 * xs + 2.0 + rng.normal(scale=0.1, size=100)

    x = tf.placeholder(tf.float64, [None], name="x")
    y = tf.placeholder(tf.float64, [None], name="y")
    w = tf.Variable(np.float64(0.0), name="weight")
    b = tf.Variable(np.float64(0.0), name="bias")
    prediction = w * x + b
    loss = tf.reduce_mean(tf.square(prediction - y))
    train = tf.train.GradientDescentOptimizer(0.1).minimize(loss)

    losses = []
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(60):
            step_loss, _ = sess.run([loss, train], {x: xs, y: ys})
            losses.append(step_loss)
        weight, bias = sess.run([w, b])
    return {"losses": losses, "weight": weight, "bias": bias}


if __name__ == "__main__":
    print(main())
