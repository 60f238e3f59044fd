"""k-nearest neighbours on the digits, all in the graph: L1 distances from each test image to every
training image, tf.nn.top_k of the negated distances for the k nearest, a one-hot vote, argmax. Integer
pixel values make many distances equal, so this also checks that ties resolve as TensorFlow's do
(top_k prefers the lower index)."""
import numpy as np
from sklearn.datasets import load_digits

import graphexec as tf

K = 5


def main():
    tf.reset_default_graph()
    digits = load_digits()
    train_x, train_y = digits.data[:1400].astype(np.int32), digits.target[:1400]
    test_x, test_y = digits.data[1400:].astype(np.int32), digits.target[1400:]

    queries = tf.placeholder(tf.int32, [None, 64], name="queries")
    distances = tf.reduce_sum(tf.abs(tf.expand_dims(queries, 1) - tf.constant(train_x)), axis=2)
    _, nearest = tf.nn.top_k(-distances, k=K)
    votes = tf.reduce_sum(tf.one_hot(tf.gather(tf.constant(train_y), nearest), 10), axis=1)
    predictions = tf.argmax(votes, axis=1)
    with tf.Session() as sess:
        predicted, neighbours = sess.run([predictions, nearest], {queries: test_x})
    return {"test_accuracy": np.mean(predicted == test_y), "predictions_head": predicted[:40],
            "neighbours_head": neighbours[:5]}


if __name__ == "__main__":
    print(main())
