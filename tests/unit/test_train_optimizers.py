"""tf.train optimizers: each update against numpy running TF's formulas, the classic TF1 linear regression
against plain numpy, and the Optimizer API (slots, var_list, trainable-only, global step, gradients in
between compute and apply)."""
import numpy as np
import pytest

import graphexec as tf

A = np.array([1.0, 2.0, 0.5])
B = np.array([-1.0, 0.5, 2.0])
X0 = np.array([0.3, -0.7, 1.2])
STEPS = 6


def quadratic_loss(x):
    """sum(a x^2 / 2 + b x): its gradient a x + b is easy to write in numpy."""
    return tf.reduce_sum(0.5 * A * tf.square(x) + B * x)


def run_optimizer(optimizer, steps=STEPS):
    """The variable's value after each step, and the optimizer (for its slots)."""
    x = tf.Variable(X0, name="x")
    train_op = optimizer.minimize(quadratic_loss(x))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        values = []
        for _ in range(steps):
            sess.run(train_op)
            values.append(sess.run(x))
    return np.array(values)


def numpy_steps(update, slots, steps=STEPS):
    x, history = X0.copy(), []
    for t in range(1, steps + 1):
        x = update(x, A * x + B, slots, t)
        history.append(x)
    return np.array(history)


def test_gradient_descent():
    expected = numpy_steps(lambda x, g, s, t: x - 0.1 * g, {})
    np.testing.assert_allclose(run_optimizer(tf.train.GradientDescentOptimizer(0.1)), expected, rtol=1e-12)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum(nesterov):
    def update(x, g, s, t):
        s["accum"] = s.get("accum", 0.0) * 0.9 + g
        return x - (g * 0.1 + s["accum"] * 0.9 * 0.1) if nesterov else x - 0.1 * s["accum"]

    got = run_optimizer(tf.train.MomentumOptimizer(0.1, 0.9, use_nesterov=nesterov))
    np.testing.assert_allclose(got, numpy_steps(update, {}), rtol=1e-12)


def test_adam():
    def update(x, g, s, t):
        s["m"] = s.get("m", 0.0) + (g - s.get("m", 0.0)) * (1 - 0.9)
        s["v"] = s.get("v", 0.0) + (g * g - s.get("v", 0.0)) * (1 - 0.999)
        lr_t = 0.05 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        return x - lr_t * s["m"] / (np.sqrt(s["v"]) + 1e-8)

    got = run_optimizer(tf.train.AdamOptimizer(0.05))
    np.testing.assert_allclose(got, numpy_steps(update, {}), rtol=1e-12)


@pytest.mark.parametrize("momentum, centered", [(0.0, False), (0.5, False), (0.5, True)])
def test_rmsprop(momentum, centered):
    def update(x, g, s, t):
        s["ms"] = s.get("ms", 1.0) + (g * g - s.get("ms", 1.0)) * (1 - 0.9)
        denominator = s["ms"] + 1e-10
        if centered:
            s["mg"] = s.get("mg", 0.0) + (g - s.get("mg", 0.0)) * (1 - 0.9)
            denominator = (s["ms"] - s["mg"] ** 2) + 1e-10
        s["mom"] = s.get("mom", 0.0) * momentum + 0.01 * g / np.sqrt(denominator)
        return x - s["mom"]

    got = run_optimizer(tf.train.RMSPropOptimizer(0.01, momentum=momentum, centered=centered))
    np.testing.assert_allclose(got, numpy_steps(update, {}), rtol=1e-12)


def test_adagrad():
    def update(x, g, s, t):
        s["accum"] = s.get("accum", 0.1) + g * g
        return x - 0.3 * g / np.sqrt(s["accum"])

    got = run_optimizer(tf.train.AdagradOptimizer(0.3))
    np.testing.assert_allclose(got, numpy_steps(update, {}), rtol=1e-12)


def test_the_classic_linear_regression_matches_numpy():
    """The TF1 tutorial program, unchanged but for the import, against numpy doing the same float32 steps."""
    rng = np.random.RandomState(0)
    train_x = np.asarray([3.3, 4.4, 5.5, 6.71, 6.93, 4.168, 9.779, 6.182, 7.59, 2.167, 7.042, 10.791, 5.313, 7.997,
                          5.654, 9.27, 3.1])
    train_y = np.asarray([1.7, 2.76, 2.09, 3.19, 1.694, 1.573, 3.366, 2.596, 2.53, 1.221, 2.827, 3.465, 1.65, 2.904,
                          2.42, 2.94, 1.3])
    n_samples = train_x.shape[0]
    initial_w, initial_b = rng.randn(), rng.randn()

    X = tf.placeholder("float")  # noqa: N806 - the tutorial's names
    Y = tf.placeholder("float")  # noqa: N806
    W = tf.Variable(initial_w, name="weight")  # noqa: N806
    b = tf.Variable(initial_b, name="bias")
    pred = tf.add(tf.multiply(X, W), b)
    cost = tf.reduce_sum(tf.pow(pred - Y, 2)) / (2 * n_samples)
    optimizer = tf.train.GradientDescentOptimizer(0.01).minimize(cost)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(1000):
            for (x, y) in zip(train_x, train_y):
                sess.run(optimizer, feed_dict={X: x, Y: y})
        got_w, got_b = sess.run(W), sess.run(b)

    w, bias = np.float32(initial_w), np.float32(initial_b)
    lr, scale = np.float32(0.01), np.float32(1) / np.float32(2 * n_samples)
    for _ in range(1000):
        for x, y in zip(train_x.astype(np.float32), train_y.astype(np.float32)):
            gradient = scale * (np.float32(2) * (x * w + bias - y))
            w, bias = w - lr * (x * gradient), bias - lr * gradient
    assert abs(got_w - w) <= 1e-5 and abs(got_b - bias) <= 1e-5, (got_w, w, got_b, bias)


# -- the Optimizer API --------------------------------------------------------------------------------------------
def test_slots_are_non_trainable_global_variables_set_by_the_initializer():
    w = tf.Variable(tf.ones([2, 3]), name="w")
    optimizer = tf.train.AdamOptimizer(0.1)
    optimizer.minimize(tf.reduce_sum(w * w))
    names = sorted(v.name for v in tf.global_variables())
    assert names == ["beta1_power:0", "beta2_power:0", "w/Adam:0", "w/Adam_1:0", "w:0"]
    assert [v.name for v in tf.trainable_variables()] == ["w:0"]
    assert optimizer.get_slot(w, "m").name == "w/Adam:0" and optimizer.get_slot_names() == ["m", "v"]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        np.testing.assert_array_equal(sess.run(optimizer.get_slot(w, "v")), np.zeros((2, 3), np.float32))


def test_only_trainable_variables_by_default_and_var_list_restricts():
    a = tf.Variable(1.0, name="a")
    b = tf.Variable(1.0, name="b")
    frozen = tf.Variable(1.0, name="frozen", trainable=False)
    loss = a * a + b * b + frozen * frozen
    step_all = tf.train.GradientDescentOptimizer(0.25).minimize(loss)
    step_a = tf.train.GradientDescentOptimizer(0.25).minimize(loss, var_list=[a])
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(step_all)
        assert sess.run([a, b, frozen]) == [0.5, 0.5, 1.0]
        sess.run(step_a)
        assert sess.run([a, b, frozen]) == [0.25, 0.5, 1.0]


def test_global_step_counts_updates():
    step = tf.train.get_or_create_global_step()
    assert tf.train.get_or_create_global_step() is step and tf.train.get_global_step() is step
    assert step.dtype == tf.int64 and not step.trainable
    x = tf.Variable(3.0)
    train_op = tf.train.MomentumOptimizer(0.1, 0.9).minimize(x * x, global_step=step)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(3):
            sess.run(train_op)
        assert tf.train.global_step(sess, step) == 3


def test_compute_then_modify_then_apply_gradients_with_a_fed_learning_rate():
    x = tf.Variable([4.0, -4.0])
    rate = tf.placeholder(tf.float32, [])
    optimizer = tf.train.GradientDescentOptimizer(rate)
    grads_and_vars = optimizer.compute_gradients(tf.reduce_sum(x * x))
    clipped = [(tf.clip_by_value(g, -1.0, 1.0), v) for g, v in grads_and_vars]
    train_op = optimizer.apply_gradients(clipped)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(train_op, {rate: 0.5})
        np.testing.assert_array_equal(sess.run(x), [3.5, -3.5])


def test_minimize_without_any_gradient_is_an_error():
    x = tf.Variable(1.0)
    with pytest.raises(ValueError, match="No gradients provided"):
        tf.train.AdamOptimizer().minimize(tf.stop_gradient(x) * 2.0)


def test_updates_under_control_dependencies_do_not_leak_into_slot_initializers():
    counter = tf.Variable(0.0, name="counter")
    bump = counter.assign_add(1.0)
    w = tf.Variable(2.0, name="w")
    with tf.control_dependencies([bump]):
        train_op = tf.train.AdamOptimizer(0.1).minimize(w * w)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        assert sess.run(counter) == 0.0
        sess.run(train_op)
        assert sess.run(counter) == 1.0


def test_exponential_decay():
    step = tf.train.get_or_create_global_step()
    smooth = tf.train.exponential_decay(0.1, step, 10, 0.5)
    stairs = tf.train.exponential_decay(0.1, step, 10, 0.5, staircase=True)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        step.load(15, sess)
        assert sess.run(smooth) == pytest.approx(0.1 * 0.5 ** 1.5)
        assert sess.run(stairs) == pytest.approx(0.05)


def test_training_runs_with_the_compiler_verifier_on(monkeypatch):
    monkeypatch.setenv("GRAPHEXEC_DEBUG", "1")
    x = tf.Variable([1.0, 2.0])
    train_op = tf.train.RMSPropOptimizer(0.1, momentum=0.5).minimize(tf.reduce_sum(tf.square(x)))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(train_op)
        assert np.all(np.abs(sess.run(x)) < [1.0, 2.0])
