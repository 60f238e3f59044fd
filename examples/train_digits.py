"""Train a classifier on scikit-learn's bundled 8x8 digits (no download) with graphexec's TF1 API.

    python examples/train_digits.py --model mlp          # 2 hidden layers, Adam
    python examples/train_digits.py --model cnn          # conv2d + max_pool + dropout
    python examples/train_digits.py --model cnn --checkpoint-dir /tmp/digits   # save, and resume if present
    GRAPHEXEC_TARGET=grpc://127.0.0.1:5000 python examples/train_digits.py  # the same program, on a server

The program is plain TF1 graph-mode code with `import graphexec as tf`: placeholders, variables,
tf.nn layers, a tf.losses loss, tf.train.AdamOptimizer, tf.metrics.accuracy and tf.train.Saver.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import graphexec as tf

try:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from threadpoolctl import threadpool_limits  # installed with scikit-learn
except ModuleNotFoundError as missing:
    raise SystemExit(f"examples/train_digits.py needs scikit-learn for its data set ({missing}): "
                     "pip install 'graphexec[examples]' (or: pip install scikit-learn)") from missing

CLASSES = 10


def load_data(seed=0):
    """(x_train, x_test, y_train, y_test): pixels scaled to [0, 1], a fixed 80/20 split."""
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]  # [n, 8, 8, 1]
    return train_test_split(images, digits.target.astype(np.int64), test_size=0.2, random_state=seed)


def dense(x, units, name, activation=None):
    fan_in = x.shape.dims[-1]
    with tf.name_scope(name):
        w = tf.Variable(tf.truncated_normal([fan_in, units], stddev=np.sqrt(2.0 / fan_in)), name="kernel")
        b = tf.Variable(tf.zeros([units]), name="bias")
        y = tf.nn.bias_add(tf.matmul(x, w), b)
        return activation(y) if activation else y


def conv(x, filters, name):
    channels = x.shape.dims[-1]
    with tf.name_scope(name):
        w = tf.Variable(tf.truncated_normal([3, 3, channels, filters], stddev=np.sqrt(2.0 / (9 * channels))),
                        name="kernel")
        b = tf.Variable(tf.zeros([filters]), name="bias")
        return tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, w, strides=[1, 1, 1, 1], padding="SAME"), b))


def mlp(images, keep_prob):
    x = tf.reshape(images, [-1, 64])
    x = dense(x, 256, "hidden1", tf.nn.relu)
    x = dense(x, 128, "hidden2", tf.nn.relu)
    return dense(x, CLASSES, "logits")


def cnn(images, keep_prob):
    x = tf.nn.max_pool(conv(images, 32, "conv1"), ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")
    x = tf.nn.max_pool(conv(x, 64, "conv2"), ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")
    x = tf.reshape(x, [-1, 2 * 2 * 64])
    x = tf.nn.dropout(dense(x, 128, "dense", tf.nn.relu), keep_prob=keep_prob, seed=1)
    return dense(x, CLASSES, "logits")


MODELS = {"mlp": (mlp, 30, 1e-3), "cnn": (cnn, 20, 2e-3)}  # model, epochs, learning rate


def build(model: str, seed: int = 0):
    """The training graph: a dict of the tensors and ops the loop needs."""
    network, _, learning_rate = MODELS[model]
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(seed)
        images = tf.placeholder(tf.float32, [None, 8, 8, 1], name="images")
        labels = tf.placeholder(tf.int64, [None], name="labels")
        keep_prob = tf.placeholder_with_default(1.0, [], name="keep_prob")
        logits = network(images, keep_prob)
        loss = tf.losses.sparse_softmax_cross_entropy(labels=labels, logits=logits)
        global_step = tf.train.get_or_create_global_step()
        train_op = tf.train.AdamOptimizer(learning_rate).minimize(loss, global_step=global_step)
        accuracy, update_accuracy = tf.metrics.accuracy(labels, tf.argmax(logits, axis=1))
        return dict(graph=graph, images=images, labels=labels, keep_prob=keep_prob, loss=loss, train_op=train_op,
                    accuracy=accuracy, update_accuracy=update_accuracy, global_step=global_step,
                    init=tf.global_variables_initializer(), reset_metrics=tf.local_variables_initializer(),
                    saver=tf.train.Saver(max_to_keep=2))


def evaluate(sess, model, x, y, batch_size=512):
    """Streaming accuracy over (x, y), batch by batch, with tf.metrics.accuracy."""
    sess.run(model["reset_metrics"])
    for start in range(0, len(x), batch_size):
        sess.run(model["update_accuracy"], {model["images"]: x[start:start + batch_size],
                                            model["labels"]: y[start:start + batch_size]})
    return float(sess.run(model["accuracy"]))


def train(model_name="mlp", epochs=None, batch_size=64, seed=0, checkpoint_dir=None, log=print):
    """Train, report, and return (test accuracy, seconds spent training)."""
    x_train, x_test, y_train, y_test = load_data()
    model = build(model_name, seed)
    epochs = MODELS[model_name][1] if epochs is None else epochs
    keep_prob = 0.5 if model_name == "cnn" else 1.0
    order = np.random.default_rng(seed)
    # These matrices are small: one BLAS thread is as fast, and spinning BLAS threads would fight the
    # Python thread for the CPU on a small, busy machine (a 10x slowdown on 2 shared cores).
    with threadpool_limits(limits=1, user_api="blas"), tf.Session(graph=model["graph"]) as sess:
        sess.run(model["init"])
        latest = tf.train.latest_checkpoint(checkpoint_dir) if checkpoint_dir else None
        if latest:
            model["saver"].restore(sess, latest)
            log(f"restored {latest}")
        started = time.perf_counter()
        for epoch in range(epochs):
            permutation = order.permutation(len(x_train))
            for start in range(0, len(x_train), batch_size):
                batch = permutation[start:start + batch_size]
                sess.run(model["train_op"], {model["images"]: x_train[batch], model["labels"]: y_train[batch],
                                             model["keep_prob"]: keep_prob})
            if (epoch + 1) % 10 == 0 or epoch + 1 == epochs:
                loss = sess.run(model["loss"], {model["images"]: x_train, model["labels"]: y_train})
                log(f"epoch {epoch + 1:3d}  train loss {loss:.4f}  test accuracy "
                    f"{evaluate(sess, model, x_test, y_test):.4f}")
        seconds = time.perf_counter() - started
        accuracy = evaluate(sess, model, x_test, y_test)
        if checkpoint_dir:
            path = model["saver"].save(sess, f"{checkpoint_dir}/{model_name}", global_step=model["global_step"])
            log(f"saved {path}")
    log(f"{model_name}: test accuracy {accuracy:.4f} after {epochs} epochs in {seconds:.1f} s")
    return accuracy, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="mlp")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-dir", default=None)
    args = parser.parse_args(argv)
    train(args.model, args.epochs, args.batch_size, args.seed, args.checkpoint_dir)


if __name__ == "__main__":
    main()
