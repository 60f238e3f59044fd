"""TF1 initializers: shapes, dtypes and distributions (graphexec's generator is not TF's, so statistics are
checked, not exact numbers), seeded determinism, orthogonality, and tf.initializers' names."""
import numpy as np
import pytest

import graphexec as tf

SHAPE = [400, 300]  # fan_in 400, fan_out 300: 120,000 draws keep the statistics within a few percent


def _values(initializer, shape=SHAPE, dtype=tf.float32):
    with tf.Graph().as_default():
        tensor = initializer(shape, dtype=dtype)
        with tf.Session() as sess:
            return sess.run(tensor)


@pytest.mark.parametrize("initializer, limit", [
    (tf.glorot_uniform_initializer(), np.sqrt(6 / 700)),
    (tf.initializers.he_uniform(), np.sqrt(6 / 400)),
    (tf.initializers.lecun_uniform(), np.sqrt(3 / 400)),
    (tf.variance_scaling_initializer(3.0, "fan_out", "uniform"), np.sqrt(9 / 300)),
    (tf.random_uniform_initializer(-0.2, 0.5), None),
])
def test_uniform_initializers_fill_their_range(initializer, limit):
    values = _values(initializer)
    low, high = (-limit, limit) if limit is not None else (-0.2, 0.5)
    assert values.shape == tuple(SHAPE) and values.dtype == np.float32
    assert low <= values.min() < low + 0.01 * (high - low) and high - 0.01 * (high - low) < values.max() < high
    assert values.mean() == pytest.approx((low + high) / 2, abs=0.01 * (high - low))
    assert values.std() == pytest.approx((high - low) / np.sqrt(12), rel=0.02)


@pytest.mark.parametrize("initializer, mean, stddev, truncated", [
    (tf.glorot_normal_initializer(), 0.0, np.sqrt(2 / 700), True),
    (tf.initializers.he_normal(), 0.0, np.sqrt(2 / 400), True),
    (tf.variance_scaling_initializer(), 0.0, np.sqrt(1 / 400), True),
    (tf.variance_scaling_initializer(2.0, "fan_avg", "untruncated_normal"), 0.0, np.sqrt(2 / 350), False),
    (tf.random_normal_initializer(1.0, 0.3), 1.0, 0.3, False),
    (tf.truncated_normal_initializer(0.0, 0.3), 0.0, 0.3 * 0.8796, True),
])
def test_normal_initializers_have_their_stddev(initializer, mean, stddev, truncated):
    values = _values(initializer)
    assert values.mean() == pytest.approx(mean, abs=0.02 * stddev + 1e-6)
    assert values.std() == pytest.approx(stddev, rel=0.02)
    spread = np.abs(values - mean).max()
    if truncated:  # truncated at two standard deviations of the untruncated normal
        assert spread <= 2 * stddev / 0.8796 * 1.0001
    else:
        assert spread > 3.5 * stddev


def test_constant_zeros_ones_initializers_and_dtypes():
    np.testing.assert_array_equal(_values(tf.zeros_initializer(), [2, 3], tf.int32), np.zeros((2, 3), np.int32))
    np.testing.assert_array_equal(_values(tf.ones_initializer(), [2], tf.float64), np.ones(2))
    np.testing.assert_array_equal(_values(tf.constant_initializer([1, 2, 3, 4]), [2, 2]), [[1, 2], [3, 4]])
    np.testing.assert_array_equal(_values(tf.constant_initializer([1, 2]), [2, 2]), [[1, 2], [2, 2]])  # as TF1
    with pytest.raises(TypeError, match="Too many elements"):
        _values(tf.constant_initializer([1, 2, 3]), [2])
    with pytest.raises(TypeError, match="Expected Tensor's shape"):
        _values(tf.constant_initializer([1, 2], verify_shape=True), [2, 1])
    with pytest.raises(ValueError, match="Invalid `mode`"):
        tf.variance_scaling_initializer(mode="fan_sideways")


@pytest.mark.parametrize("shape", [[5, 5], [8, 3], [3, 8], [2, 3, 6]])
def test_orthogonal_initializer_gives_orthonormal_rows_or_columns(shape):
    values = _values(tf.orthogonal_initializer(gain=2.0, seed=1), shape, tf.float64)
    flat = values.reshape(-1, shape[-1])
    small = min(flat.shape)
    gram = flat.T @ flat if flat.shape[0] >= flat.shape[1] else flat @ flat.T
    np.testing.assert_allclose(gram, 4.0 * np.eye(small), atol=1e-10)
    with pytest.raises(ValueError, match="at least two-dimensional"):
        _values(tf.orthogonal_initializer(), [4])


def test_seeded_initializers_repeat_and_differ_by_seed():
    first = _values(tf.glorot_uniform_initializer(seed=5), [20, 10])
    again = _values(tf.glorot_uniform_initializer(seed=5), [20, 10])
    other = _values(tf.glorot_uniform_initializer(seed=6), [20, 10])
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_get_variable_defaults_to_glorot_uniform_for_floats_and_zeros_for_ints():
    tf.set_random_seed(1)
    weights = tf.get_variable("w", [300, 200])
    counts = tf.get_variable("n", [3], dtype=tf.int64)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        w, n = sess.run([weights, counts])
    limit = np.sqrt(6 / 500)
    assert np.abs(w).max() <= limit and w.std() == pytest.approx(limit / np.sqrt(3), rel=0.03)
    assert n.dtype == np.int64 and not n.any()


def test_initializer_ops_live_under_the_variable_initializer_scope():
    with tf.variable_scope("layer"):
        tf.get_variable("w", [2, 2], initializer=tf.random_normal_initializer(seed=1))
    names = [op.name for op in tf.get_default_graph().get_operations()]
    assert any(name.startswith("layer/w/Initializer/") for name in names)
    assert "layer/w/Assign" in names


def test_tables_and_local_initializers_run():
    tf.get_local_variable("counter", [2], initializer=tf.zeros_initializer())
    with tf.Session() as sess:
        sess.run([tf.tables_initializer(), tf.local_variables_initializer(), tf.initializers.global_variables()])
        np.testing.assert_array_equal(sess.run("counter:0"), [0, 0])
    assert [v.name for v in tf.local_variables()] == ["counter:0"] and not tf.trainable_variables()
