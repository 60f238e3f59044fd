"""tf.while_loop three ways: the Collatz step count of several numbers (integer state), Newton's method
for square roots until converged (a tolerance in the condition), and power iteration for the largest
eigenvalue of a symmetric matrix (a matrix-valued loop variable with a shape invariant)."""
import numpy as np

import graphexec as tf


def collatz_steps(n):
    def body(value, steps):
        next_value = tf.where(tf.equal(value % 2, 0), value // 2, 3 * value + 1)
        return next_value, steps + 1

    return tf.while_loop(lambda value, steps: value > 1, body, [n, tf.constant(0)])[1]


def newton_sqrt(a):
    def body(x, iterations):
        return 0.5 * (x + a / x), iterations + 1

    def not_converged(x, iterations):
        return tf.logical_and(tf.abs(x * x - a) > 1e-12, iterations < 50)

    return tf.while_loop(not_converged, body, [a, tf.constant(0)])


def power_iteration(matrix, steps):
    def body(i, vector):
        product = tf.matmul(matrix, vector)
        return i + 1, product / tf.norm(product)

    start = tf.ones([int(matrix.shape[0]), 1], dtype=matrix.dtype)
    _, vector = tf.while_loop(lambda i, v: i < steps, body, [tf.constant(0), start],
                              shape_invariants=[tf.TensorShape([]), tf.TensorShape([None, 1])])
    return tf.reduce_sum(vector * tf.matmul(matrix, vector))


def main():
    tf.reset_default_graph()
    numbers = tf.placeholder(tf.int32, [], name="n")
    steps = collatz_steps(numbers)
    root, iterations = newton_sqrt(tf.constant(2.0, tf.float64))
    rng = np.random.RandomState(7)
    half = rng.normal(size=(6, 6))
    eigenvalue = power_iteration(tf.constant(half + half.T), 200)
    with tf.Session() as sess:
        collatz = [sess.run(steps, {numbers: n}) for n in (1, 6, 7, 27, 97)]
        sqrt2, newton_iterations, largest = sess.run([root, iterations, eigenvalue])
    return {"collatz_steps": collatz, "sqrt2": sqrt2, "newton_iterations": newton_iterations,
            "largest_eigenvalue": largest, "numpy_largest_abs_eigenvalue": np.max(np.abs(np.linalg.eigvalsh(half + half.T)))}


if __name__ == "__main__":
    print(main())
