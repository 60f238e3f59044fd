"""A tiny generative adversarial network in one dimension: the generator maps uniform noise to samples,
the discriminator tells them from N(3, 0.5) data. Two optimizers, each given only its own network's
variables (tf.get_collection(TRAINABLE_VARIABLES, scope)), alternate steps; the discriminator is applied
twice with reuse=True."""
import numpy as np

import graphexec as tf


def generator(noise, rng):
    with tf.variable_scope("generator"):
        hidden = tf.layers.dense(noise, 8, tf.nn.tanh, name="hidden",
                                 kernel_initializer=tf.constant_initializer(rng.normal(scale=0.5, size=(1, 8))))
        return tf.layers.dense(hidden, 1, name="out",
                               kernel_initializer=tf.constant_initializer(rng.normal(scale=0.5, size=(8, 1))))


def discriminator(samples, initial, reuse=False):
    with tf.variable_scope("discriminator", reuse=reuse):
        hidden = tf.layers.dense(samples, 8, tf.nn.tanh, name="hidden",
                                 kernel_initializer=tf.constant_initializer(initial[0]))
        return tf.layers.dense(hidden, 1, name="out", kernel_initializer=tf.constant_initializer(initial[1]))


def main():
    tf.reset_default_graph()
    rng = np.random.RandomState(6)
    noise = tf.placeholder(tf.float64, [None, 1], name="noise")
    real = tf.placeholder(tf.float64, [None, 1], name="real")
    fake = generator(noise, rng)
    initial = (rng.normal(scale=0.5, size=(1, 8)), rng.normal(scale=0.5, size=(8, 1)))
    real_logits = discriminator(real, initial)
    fake_logits = discriminator(fake, initial, reuse=True)

    def bce(logits, target):
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=target * tf.ones_like(logits),
                                                                      logits=logits))

    d_loss = bce(real_logits, 1.0) + bce(fake_logits, 0.0)
    g_loss = bce(fake_logits, 1.0)
    d_vars = tf.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES, scope="discriminator")
    g_vars = tf.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES, scope="generator")
    d_train = tf.train.AdamOptimizer(0.02, beta1=0.5).minimize(d_loss, var_list=d_vars)
    g_train = tf.train.AdamOptimizer(0.02, beta1=0.5).minimize(g_loss, var_list=g_vars)

    d_losses, g_losses = [], []
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for step in range(80):
            feed = {noise: rng.uniform(-1, 1, size=(32, 1)), real: rng.normal(3.0, 0.5, size=(32, 1))}
            d_losses.append(sess.run([d_loss, d_train], feed)[0])
            g_losses.append(sess.run([g_loss, g_train], {noise: rng.uniform(-1, 1, size=(32, 1))})[0])
        samples = sess.run(fake, {noise: np.linspace(-1, 1, 200).reshape(-1, 1)})
    return {"d_losses": d_losses, "g_losses": g_losses, "sample_mean": np.mean(samples),
            "d_vars": [v.name for v in d_vars], "g_vars": [v.name for v in g_vars]}


if __name__ == "__main__":
    print(main())
