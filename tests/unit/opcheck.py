"""The one helper for op tests: build an op, run it in a tf.Session, compare with numpy.

    check_op(lambda x, y: tf.add(x, y), np.add, inputs=[a, b], dtypes=[tf.int8])

builds `tf_fn` in a fresh graph three ways and checks each against `np_fn(*inputs)`:

* "const":   the inputs are tf.constant values, so build-time value propagation and the compiler's
             constant folding compute the result;
* "feed":    the inputs are placeholders with the inputs' full shapes, fed at run time;
* "partial": placeholders whose dims are all unknown (None), exercising shape rules on partial shapes.

Every result must have the numpy result's dtype (or `out_dtype`) and values, and must agree with the
static shape and dtype that the op declared when it was built. The building blocks (`sample`,
`build`, `run`, `assert_close`) are kept separate so that a finite-difference `check_grad` can reuse them.
"""
from __future__ import annotations

import numpy as np

import graphexec as tf

MODES = ("const", "feed", "partial")

# (rtol, atol) per result dtype; integer and bool results must match exactly.
TOLERANCE = {np.dtype(np.float16): (2e-3, 2e-3), np.dtype(np.float32): (1e-5, 1e-6),
             np.dtype(np.float64): (1e-10, 1e-12)}


def sample(shape, dtype, low=-3.0, high=3.0, seed=0, nonzero=False):
    """Deterministic test data: floats on a 0.25 grid (so comparisons see ties), ints in [low, high]."""
    dtype = tf.as_dtype(dtype).np
    rng = np.random.default_rng(seed)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind == "u":
        low = max(low, 0)
    if dtype.kind in "iu":
        values = rng.integers(int(np.ceil(low)), int(np.floor(high)) + 1, size=shape)
    else:
        values = np.round(rng.uniform(low, high, size=shape) * 4) / 4
    if nonzero:
        values = np.where(values == 0, 1, values)
    return np.asarray(values).astype(dtype)


def cast_inputs(inputs, dtypes):
    """The inputs as arrays, cast to `dtypes` (one dtype for all inputs, or one per input)."""
    arrays = [np.asarray(x) for x in inputs]
    if dtypes is None:
        return arrays
    if not isinstance(dtypes, (list, tuple)):
        dtypes = [dtypes] * len(arrays)
    return [x.astype(tf.as_dtype(d).np) for x, d in zip(arrays, dtypes)]


def build(tf_fn, arrays, mode):
    """(graph, feed_dict, flat output tensors) for `tf_fn` over the arrays as constants or placeholders."""
    graph = tf.Graph()
    feed = {}
    with graph.as_default():
        args = []
        for i, x in enumerate(arrays):
            if mode == "const":
                args.append(tf.constant(x, name=f"in{i}"))
                continue
            shape = x.shape if mode == "feed" else [None] * x.ndim
            placeholder = tf.placeholder(tf.as_dtype(x.dtype), shape, name=f"in{i}")
            feed[placeholder] = x
            args.append(placeholder)
        outputs = flatten(tf_fn(*args))
    return graph, feed, outputs


def run(graph, fetches, feed_dict=None):
    with tf.Session(graph=graph) as sess:
        return sess.run(fetches, feed_dict)


def flatten(value) -> list:
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in flatten(item)]
    return [value]


def assert_close(actual, expected, rtol=None, atol=None, what=""):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype}, expected {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, expected {expected.shape}"
    default_rtol, default_atol = TOLERANCE.get(actual.dtype, (0, 0))
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    if actual.dtype.kind == "f":
        np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64), rtol=rtol, atol=atol,
                                   equal_nan=True, err_msg=what)
    else:
        np.testing.assert_array_equal(actual, expected, err_msg=what)


def assert_static_type_agrees(tensor, value, what):
    """The shape and dtype declared at build time must describe the value the run produced."""
    assert tensor.dtype.np == value.dtype, f"{what}: declared {tensor.dtype.name}, produced {value.dtype}"
    dims = tensor.shape.dims
    if dims is not None:
        assert len(dims) == value.ndim and all(d is None or d == v for d, v in zip(dims, value.shape)), \
            f"{what}: declared shape {tensor.shape}, produced {value.shape}"


def check_op(tf_fn, np_fn, inputs, dtypes=None, feed=True, rtol=None, atol=None, out_dtype=None,
             static_shape=True, modes=None):
    """Check `tf_fn(*tensors)` against `np_fn(*arrays)` with constant and placeholder inputs.

    `static_shape`: with constant inputs the op must know its full output shape at build time
    (set False for data-dependent shapes such as tf.where(x)). `modes` overrides which builds run.
    Returns the numpy results, for further checks.
    """
    arrays = cast_inputs(inputs, dtypes)
    with np.errstate(all="ignore"):
        expected = [np.asarray(e) for e in flatten(np_fn(*arrays))]
    if out_dtype is not None:
        want = tf.as_dtype(out_dtype).np
        for e in expected:
            assert e.dtype == want, f"np_fn returned {e.dtype}; the test expects {want}"
    modes = modes or (MODES if feed else ("const",))
    for mode in modes:
        graph, feed_dict, outputs = build(tf_fn, arrays, mode)
        assert len(outputs) == len(expected), f"{mode}: {len(outputs)} outputs, numpy gave {len(expected)}"
        results = flatten(run(graph, outputs, feed_dict))
        for i, (tensor, value, want) in enumerate(zip(outputs, results, expected)):
            what = f"[{mode}] output {i} ({tensor.name})"
            assert_static_type_agrees(tensor, value, what)
            if mode == "const" and static_shape:
                assert tensor.shape.is_fully_defined(), f"{what}: static shape {tensor.shape} is not fully known"
            if mode == "const" and tensor._value is not None:  # the build-time value, where one was computed
                assert_close(tensor._value, want, rtol, atol, what + " build-time value")
            assert_close(value, want, rtol, atol, what)
    return expected


# -- gradients: tf.gradients against central finite differences ---------------------------------------
GRAD_RTOL, GRAD_ATOL, GRAD_DELTA = 1e-4, 1e-6, 1e-6
GRAD_MODES = ("feed", "partial")

# (x shape, y shape) pairs that broadcast: equal, trailing vector either side, both sides, scalars, rank mismatch
BROADCAST_SHAPES = [((3,), (3,)), ((2, 3), (3,)), ((3,), (2, 3)), ((2, 1), (1, 3)), ((2, 3), ()), ((), (2, 3)),
                    ((2, 1, 3), (4, 1))]


def check_grad(tf_fn, inputs, rtol=GRAD_RTOL, atol=GRAD_ATOL, delta=GRAD_DELTA, modes=GRAD_MODES, seed=0):
    """Assert tf.gradients of sum_k sum(w_k * output_k) (fixed random w_k, so every output element
    counts) w.r.t. each float64 input matches central finite differences in float64.

    Other inputs (indices, conditions) are fed unchanged. An input tf.gradients calls unconnected
    (None) must have a zero numeric gradient. Placeholders are built as in check_op ("feed": full
    shapes, "partial": unknown dims), so gradient rules run on both their static and run-time paths.
    """
    arrays = [np.asarray(x) for x in inputs]
    for mode in modes:
        graph, feed_dict, outputs = build(tf_fn, arrays, mode)
        placeholders = list(feed_dict)
        with graph.as_default(), tf.Session(graph=graph) as sess:
            values = sess.run(outputs, feed_dict)
            rng = np.random.default_rng(seed + 1)
            weights = [rng.standard_normal(np.shape(v)) for v in values]
            loss = tf.add_n([tf.reduce_sum(tf.cast(out, tf.float64) * w) for out, w in zip(outputs, weights)])
            wrt = [(i, p) for i, p in enumerate(placeholders) if arrays[i].dtype == np.float64]
            grads = tf.gradients(loss, [p for _, p in wrt])
            computed = sess.run([g for g in grads if g is not None], feed_dict)
            analytic = iter(computed)
            for (index, _), grad in zip(wrt, grads):
                numeric = _finite_differences(sess, loss, placeholders, arrays, index, delta)
                what = f"[{mode}] gradient of input {index}"
                if grad is None:
                    assert not numeric.any(), f"{what}: tf.gradients says unconnected, finite differences disagree"
                    continue
                np.testing.assert_allclose(next(analytic), numeric, rtol=rtol, atol=atol, err_msg=what)


def check_binary_grad(tf_fn, low=-2.0, high=2.0, shapes=BROADCAST_SHAPES, seed=0, **kwargs):
    """check_grad of a binary op over every pair of BROADCAST_SHAPES, inputs uniform in [low, high]."""
    rng = np.random.default_rng(seed)
    for x_shape, y_shape in shapes:
        check_grad(tf_fn, [rng.uniform(low, high, x_shape), rng.uniform(low, high, y_shape)], seed=seed, **kwargs)


def _finite_differences(sess, loss, placeholders, arrays, index, delta):
    """d loss / d arrays[index] by central differences, one element at a time."""
    base = arrays[index]
    numeric = np.zeros(base.shape)
    for position in np.ndindex(base.shape):
        results = []
        for step in (delta, -delta):
            bumped = base.copy()
            bumped[position] += step
            feed = dict(zip(placeholders, arrays))
            feed[placeholders[index]] = bumped
            results.append(float(sess.run(loss, feed)))
        numeric[position] = (results[0] - results[1]) / (2 * delta)
    return numeric
