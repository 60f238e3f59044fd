"""Regenerate tf1_ops.json: the TF1 ops of the breadth batch (segments, masks, unique, partitions,
einsum/tensordot, linalg, clipping) and some of their gradients, run under real TensorFlow.

Usage (needs tensorflow): python3 tests/unit/golden/tf1_ops/make_golden.py
tests/unit/test_tf1_ops_golden.py runs the same `program` with graphexec and compares.
"""
import json
import pathlib

import numpy as np

OUT = pathlib.Path(__file__).resolve().parent / "tf1_ops.json"
X = np.array([[1.5, -2.0, 0.25], [3.0, 0.5, -1.0], [-0.75, 2.5, 1.25], [0.0, -1.5, 2.0]])
M = np.array([[4.0, 1.0, 0.5], [1.0, 3.0, 0.25], [0.5, 0.25, 2.0]])


def program(tf):
    """(fetches dict, x placeholder) of the program; `tf` is graphexec or tf.compat.v1."""
    x = tf.placeholder(tf.float64, [4, 3], name="x")
    m = tf.constant(M)
    ids = tf.constant([0, 0, 2, 2])
    clipped, norm = tf.clip_by_global_norm([x, 2.0 * x], 3.0)
    parts = tf.dynamic_partition(x, [1, 0, 1, 1], 2)
    loss = (tf.reduce_sum(tf.segment_mean(x, ids) ** 2) + tf.reduce_sum(tf.matrix_inverse(m + tf.matmul(x, x, True)))
            + tf.reduce_sum(tf.boolean_mask(x, x > 0) ** 3) + tf.reduce_sum(tf.einsum("ij,jk->ik", x, m) ** 2)
            + tf.reduce_sum(clipped[0] * clipped[1]) + tf.reduce_sum(tf.tensordot(x, m, [[1], [0]]))
            + tf.matrix_determinant(m + tf.matmul(x, x, True)) + tf.reduce_sum(tf.cholesky(m + tf.matmul(x, x, True)))
            + tf.reduce_sum(parts[1] ** 2))
    unique = tf.unique(tf.constant([5, 3, 5, 7, 3, 3]))
    return {
        "segment_sum": tf.segment_sum(x, ids), "segment_mean": tf.segment_mean(x, ids),
        "segment_max": tf.segment_max(x, ids), "segment_min_int": tf.segment_min(tf.constant([[3, 1], [2, 5]]), [1, 1]),
        "unsorted_segment_sum": tf.unsorted_segment_sum(x, [2, 0, 2, 1], 3),
        "unique_y": unique.y, "unique_idx": unique.idx,
        "boolean_mask": tf.boolean_mask(x, x > 0), "boolean_mask_rows": tf.boolean_mask(x, [True, False, True, False]),
        "sequence_mask": tf.sequence_mask([1, 3, 0], 4), "sequence_mask_float": tf.sequence_mask([2, 1], dtype=tf.float32),
        "partition_0": parts[0], "partition_1": parts[1],
        "stitch": tf.dynamic_stitch([[0, 2], [1, 3]], [x[:2], x[2:]]),
        "einsum": tf.einsum("ij,jk->ik", x, m), "einsum_trace": tf.einsum("ii->", m),
        "tensordot": tf.tensordot(x, m, 1), "inverse": tf.matrix_inverse(m), "determinant": tf.matrix_determinant(m),
        "cholesky": tf.cholesky(m), "solve": tf.matrix_solve(m, tf.transpose(x)), "eigvals": tf.self_adjoint_eig(m)[0],
        "svd_s": tf.svd(x, compute_uv=False), "diag_part": tf.matrix_diag_part(x), "trace": tf.trace(m),
        "band": tf.matrix_band_part(m, 0, 1), "eye": tf.eye(2, 3, dtype=tf.int32),
        "clipped": clipped[0], "global_norm": norm, "clip_by_norm": tf.clip_by_norm(x, 1.0, axes=[1]),
        "reduce_mean_int8": tf.reduce_mean(tf.constant([[-3, 4], [2, -7]], tf.int8), 1),
        "floordiv_int8": tf.floordiv(tf.constant([-7, 7], tf.int8), tf.constant([2, -2], tf.int8)),
        "mod_int16": tf.mod(tf.constant([-7, 7], tf.int16), tf.constant([3, -3], tf.int16)),
        "cast_f16_u8": tf.cast(tf.constant([1.7, 200.2], tf.float16), tf.uint8),
        "gradient": tf.gradients(loss, x)[0],
    }, x


def encode(value):
    array = np.asarray(value)
    return {"dtype": array.dtype.name, "shape": list(array.shape), "values": array.reshape(-1).tolist()}


def main():
    import tensorflow.compat.v1 as tf
    tf.disable_v2_behavior()
    fetches, x = program(tf)
    with tf.Session() as sess:
        results = sess.run(fetches, {x: X})
    OUT.write_text(json.dumps({k: encode(v) for k, v in sorted(results.items())}, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
