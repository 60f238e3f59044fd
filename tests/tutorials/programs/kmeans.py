"""k-means on the digits with graph ops only: distances by broadcasting (tf.squared_difference), assignment by argmin, new
centroids by tf.unsorted_segment_sum over the assignments, an assign op per iteration (Lloyd's algorithm).
The first k images start as centroids, so the run is deterministic."""
import numpy as np
from sklearn.datasets import load_digits

import graphexec as tf

K = 10


def main():
    tf.reset_default_graph()
    digits = load_digits()
    points = tf.constant(digits.data / 16.0, dtype=tf.float64)
    centroids = tf.Variable(digits.data[:K] / 16.0, name="centroids")

    distances = tf.reduce_sum(tf.squared_difference(tf.expand_dims(points, 1), tf.expand_dims(centroids, 0)), axis=2)
    assignments = tf.argmin(distances, axis=1, output_type=tf.int32)
    inertia = tf.reduce_sum(tf.reduce_min(distances, axis=1))
    sums = tf.unsorted_segment_sum(points, assignments, K)
    counts = tf.unsorted_segment_sum(tf.ones_like(points[:, :1]), assignments, K)
    update = tf.assign(centroids, sums / tf.maximum(counts, 1.0))

    inertias = []
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(12):
            inertias.append(sess.run([inertia, update])[0])
        labels = sess.run(assignments)
    purity = sum(np.bincount(digits.target[labels == k]).max() for k in range(K) if np.any(labels == k))
    return {"inertias": inertias, "cluster_sizes": np.bincount(labels, minlength=K),
            "purity_accuracy": purity / len(labels)}


if __name__ == "__main__":
    print(main())
