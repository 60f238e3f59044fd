"""A small conv + ReLU + max-pool + dense model trained with Adam in process, for tests that compare two
ways of running convolutions (tests/unit/test_conv_library.py, tests/unit/test_fuse_conv.py)."""
from __future__ import annotations

import numpy as np

import graphexec as tf


def train_losses(images: np.ndarray, labels: np.ndarray, steps: int, seed: int = 1) -> list:
    """The loss after each of `steps` Adam steps on (images [n, s, s, 1], one-hot labels [n, 3])."""
    size = images.shape[1]
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(seed)
        x = tf.placeholder(tf.float32, [None, size, size, 1])
        y = tf.placeholder(tf.float32, [None, 3])
        h = tf.layers.conv2d(x, 4, 3, padding="same", activation=tf.nn.relu)
        h = tf.layers.max_pooling2d(h, 2, 2)
        logits = tf.layers.dense(tf.reshape(h, [-1, (size // 2) ** 2 * 4]), 3)
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits_v2(labels=y, logits=logits))
        step = tf.train.AdamOptimizer(0.01).minimize(loss)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            return [sess.run([step, loss], {x: images, y: labels})[1] for _ in range(steps)]
