"""An MLP and a CNN written with tf.layers, trained on scikit-learn's bundled 8x8 digits.

`train(tf, model)` runs under graphexec or real TensorFlow's tf.compat.v1 and returns the test accuracy.
golden/tf1_api/digits.json holds TensorFlow's (from golden/tf1_api/make_digits.py); test_tf1_digits.py
trains the same programs with graphexec and compares. Minibatch order comes from numpy, so both see the
same batches; only the initial weights differ (each framework's own seeded generator).
"""
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

EPOCHS = {"mlp": 15, "cnn": 6}
BATCH = 32


def data():
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]
    return train_test_split(images, digits.target.astype(np.int64), test_size=0.25, random_state=0)


def _model(tf, model, images, training):
    if model == "mlp":
        with tf.variable_scope("mlp"):
            net = tf.layers.flatten(images)
            net = tf.layers.dense(net, 64, activation=tf.nn.relu, name="hidden")
            net = tf.layers.dropout(net, rate=0.2, training=training)
            return tf.layers.dense(net, 10, name="logits")
    with tf.variable_scope("cnn"):
        net = tf.layers.conv2d(images, 16, 3, padding="same", activation=tf.nn.relu)
        net = tf.layers.batch_normalization(net, training=training)
        net = tf.layers.max_pooling2d(net, 2, 2)
        net = tf.layers.conv2d(net, 32, 3, padding="same", activation=tf.nn.relu)
        net = tf.layers.average_pooling2d(net, 2, 2)
        net = tf.layers.flatten(net)
        return tf.layers.dense(net, 10)


def train(tf, model):
    x_train, x_test, y_train, y_test = data()
    with tf.Graph().as_default():
        tf.set_random_seed(1)
        images = tf.placeholder(tf.float32, [None, 8, 8, 1])
        labels = tf.placeholder(tf.int64, [None])
        training = tf.placeholder_with_default(False, [])
        logits = _model(tf, model, images, training)
        loss = tf.losses.sparse_softmax_cross_entropy(labels=labels, logits=logits)
        with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
            step = tf.train.AdamOptimizer(3e-3).minimize(loss)
        correct = tf.equal(tf.argmax(logits, 1), labels)
        accuracy = tf.reduce_mean(tf.cast(correct, tf.float32))
        order = np.random.default_rng(0)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(EPOCHS[model]):
                shuffled = order.permutation(len(x_train))
                for start in range(0, len(shuffled), BATCH):
                    batch = shuffled[start:start + BATCH]
                    sess.run(step, {images: x_train[batch], labels: y_train[batch], training: True})
            return float(sess.run(accuracy, {images: x_test, labels: y_test}))
