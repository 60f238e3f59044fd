"""Train a small linear regression and log it for TensorBoard: scalars, a histogram, an image, text and the
graph, plus a Chrome/Perfetto trace of one traced step. Runs remotely when GRAPHEXEC_TARGET is set.

    python3 examples/tensorboard_training.py logs/regression
    tensorboard --logdir logs          # then open http://localhost:6006
"""
import pathlib
import sys

import numpy as np

import graphexec as tf
from graphexec.client import timeline

STEPS = 20


def main(logdir: str) -> None:
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    y = tf.placeholder(tf.float32, [None, 1], name="y")
    with tf.name_scope("model"):
        w = tf.Variable(tf.zeros([3, 1]), name="w")
        b = tf.Variable(0.0, name="b")
        prediction = tf.matmul(x, w) + b
    loss = tf.reduce_mean(tf.square(prediction - y), name="mse")
    train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss)

    tf.summary.scalar("loss", loss)
    tf.summary.scalar("bias", b)
    tf.summary.histogram("weights", w)
    tf.summary.image("weights_as_image", tf.reshape(w, [1, 3, 1, 1]))  # one 3x1 grey image
    tf.summary.text("about", tf.constant("linear regression y = x.w + b"))
    merged = tf.summary.merge_all()

    rng = np.random.default_rng(0)
    features = rng.normal(size=(64, 3)).astype(np.float32)
    labels = features @ np.array([[1.0], [-2.0], [0.5]], np.float32) + 0.3
    feed = {x: features, y: labels}
    with tf.Session() as sess, tf.summary.FileWriter(logdir, sess.graph) as writer:
        sess.run(tf.global_variables_initializer())
        for step in range(STEPS):
            summary, _ = sess.run([merged, train_op], feed)
            writer.add_summary(summary, step)
        run_metadata = tf.RunMetadata()
        final_loss = sess.run(loss, feed, options=tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE),
                              run_metadata=run_metadata)
    trace = pathlib.Path(logdir) / "timeline.json"
    trace.write_text(timeline.Timeline(run_metadata.step_stats).generate_chrome_trace_format())
    print(f"loss after {STEPS} steps: {final_loss:.4f}; events in {logdir}, trace in {trace}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "logs/regression")
