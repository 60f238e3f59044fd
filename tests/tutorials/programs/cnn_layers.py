"""A small convolutional network from tf.layers on the 8x8 digits: conv2d -> max_pooling2d -> conv2d ->
flatten -> dense, trained with momentum on fixed mini-batches. Weights come from seeded numpy arrays; the
arithmetic is float64 so losses compare to 1e-5."""
import numpy as np
from sklearn.datasets import load_digits

import graphexec as tf


def main():
    tf.reset_default_graph()
    digits = load_digits()
    images, labels = (digits.data / 16.0).reshape(-1, 8, 8, 1), digits.target
    rng = np.random.RandomState(2)

    def init(*shape):
        return tf.constant_initializer(rng.normal(scale=np.sqrt(2.0 / np.prod(shape[:-1])), size=shape))

    x = tf.placeholder(tf.float64, [None, 8, 8, 1], name="images")
    y = tf.placeholder(tf.int64, [None], name="labels")
    net = tf.layers.conv2d(x, 8, 3, padding="same", activation=tf.nn.relu, kernel_initializer=init(3, 3, 1, 8))
    net = tf.layers.max_pooling2d(net, pool_size=2, strides=2)
    net = tf.layers.conv2d(net, 16, 3, padding="valid", activation=tf.nn.relu, kernel_initializer=init(3, 3, 8, 16))
    net = tf.layers.flatten(net)
    logits = tf.layers.dense(net, 10, kernel_initializer=init(64, 10))
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
    train = tf.train.MomentumOptimizer(0.05, momentum=0.9).minimize(loss)
    accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), y), tf.float32))

    losses = []
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for epoch in range(3):
            for start in range(0, 1400, 50):
                feed = {x: images[start:start + 50], y: labels[start:start + 50]}
                losses.append(sess.run([loss, train], feed)[0])
        test_accuracy = sess.run(accuracy, {x: images[1400:], y: labels[1400:]})
        shapes = [list(v.shape.as_list()) for v in tf.trainable_variables()]
    return {"losses": losses, "test_accuracy": test_accuracy, "variable_shapes": shapes}


if __name__ == "__main__":
    print(main())
