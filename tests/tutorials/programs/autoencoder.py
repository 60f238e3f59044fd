"""A dense autoencoder on the digits: 64 -> 24 -> 8 -> 24 -> 64 with sigmoid units and tied shapes, trained
with RMSProp to reconstruct its input; reports per-step losses and the test reconstruction error."""
import numpy as np
from sklearn.datasets import load_digits

import graphexec as tf


def layer(inputs, rng, size, activation, name):
    fan_in = int(inputs.shape[1])
    weights = tf.Variable(rng.normal(scale=1.0 / np.sqrt(fan_in), size=(fan_in, size)), name=f"{name}_w")
    bias = tf.Variable(np.zeros(size), name=f"{name}_b")
    return activation(tf.matmul(inputs, weights) + bias)


def main():
    tf.reset_default_graph()
    images = load_digits().data / 16.0
    rng = np.random.RandomState(4)

    x = tf.placeholder(tf.float64, [None, 64], name="images")
    code = layer(layer(x, rng, 24, tf.nn.sigmoid, "enc1"), rng, 8, tf.nn.sigmoid, "enc2")
    reconstruction = layer(layer(code, rng, 24, tf.nn.sigmoid, "dec1"), rng, 64, tf.nn.sigmoid, "dec2")
    loss = tf.reduce_mean(tf.square(reconstruction - x))
    train = tf.train.RMSPropOptimizer(0.01).minimize(loss)

    losses = []
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for epoch in range(4):
            for start in range(0, 1400, 100):
                losses.append(sess.run([loss, train], {x: images[start:start + 100]})[0])
        test_error = sess.run(loss, {x: images[1400:]})
        codes = sess.run(code, {x: images[1400:1403]})
    return {"losses": losses, "test_error": test_error, "codes": codes}


if __name__ == "__main__":
    print(main())
