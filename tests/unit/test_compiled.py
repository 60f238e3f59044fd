"""graphexec.runtime.compiled: optimizer updates and relu compiled by numba give the bits of numpy's passes,
for every optimizer with a loop, in float32 and float64, on gradients that hold zeros of both signs, the
smallest subnormals, the largest finite values, infinities and NaN; and the choice is the user's."""
from __future__ import annotations

import os
import pathlib
import sys
import threading
import time

import numpy as np
import pytest

import graphexec as tf
from graphexec.ops import training_ops
from graphexec.runtime import compiled

pytest.importorskip("numba")

SIZE = 5003  # over compiled.MIN_ELEMENTS, and odd: parts of unequal lengths
STEPS = 3
OPTIMIZERS = {
    "momentum": (lambda: tf.train.MomentumOptimizer(0.05, 0.9), training_ops.MOMENTUM),
    "adam": (lambda: tf.train.AdamOptimizer(0.01), training_ops.ADAM),
    "rmsprop": (lambda: tf.train.RMSPropOptimizer(0.01, momentum=0.5), training_ops.RMS_PROP),
}


def _gradient(dtype) -> np.ndarray:
    """The gradient of sum(x * c) is c: random values, with every special value among them."""
    info = np.finfo(dtype)
    c = np.random.default_rng(7).standard_normal(SIZE).astype(dtype)
    specials = [0.0, -0.0, info.smallest_subnormal, -info.smallest_subnormal, info.tiny, info.max, -info.max,
                np.inf, -np.inf, np.nan, 1e-20, -3e-3]
    c[:len(specials)] = specials
    return c


def _train(optimizer, dtype) -> list[np.ndarray]:
    """Every variable's value (the weights and the optimizer's slots) after each of STEPS steps."""
    with tf.Graph().as_default():
        x = tf.Variable(np.linspace(-2, 2, SIZE).astype(dtype), name="x")
        train = optimizer().minimize(tf.reduce_sum(x * tf.constant(_gradient(dtype))))
        variables = tf.global_variables()
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            history = []
            for _ in range(STEPS):
                sess.run(train)
                history.extend(sess.run(variables))
    return history


def _same_bits(got: np.ndarray, want: np.ndarray) -> bool:
    """Equal bit for bit, NaN wherever the other has NaN (its payload is the processor's)."""
    nan = np.isnan(want)
    return (np.array_equal(nan, np.isnan(got))
            and np.array_equal(got[~nan].view(f"u{got.itemsize}"), want[~nan].view(f"u{want.itemsize}")))


@pytest.fixture
def choice():
    previous = compiled.choice()
    yield compiled.choose
    compiled.choose(previous)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_compiled_update_gives_the_bits_of_numpys_passes(name, dtype, choice):
    optimizer, loop = OPTIMIZERS[name]
    choice("numpy")
    want = _train(optimizer, dtype)
    choice("auto")
    kernel = loop.wait(np.dtype(dtype).name, timeout=120)
    assert kernel is not None, "numba did not compile the loop"
    calls = []
    loop.compiled[np.dtype(dtype).name] = lambda *args: calls.append(args[0].size) or kernel(*args)
    try:
        got = _train(optimizer, dtype)
    finally:
        loop.compiled[np.dtype(dtype).name] = kernel
    assert sum(calls) == SIZE * STEPS  # every step's update went through the loop, in parts
    assert len(got) == len(want)
    assert all(g.dtype == dtype for g in got)
    for g, w in zip(got, want):
        assert _same_bits(g, w)
    assert any(np.isnan(w).any() for w in want) and any(np.isinf(w).any() for w in want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adams_streamed_lines_give_the_bits_of_its_numpy_passes(dtype, choice, monkeypatch):
    """Every update streamed (runtime/streamed_stores.py): lines from the aligned buffers' second step on."""
    choice("numpy")
    want = _train(OPTIMIZERS["adam"][0], dtype)
    choice("auto")
    assert training_ops.ADAM.wait(np.dtype(dtype).name, timeout=120) is not None
    monkeypatch.setattr(training_ops, "STREAMED_MIN_ELEMENTS", 0)
    got = _train(OPTIMIZERS["adam"][0], dtype)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert _same_bits(g, w)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("offsets", [(0, 0, 0), (1, 1, 1), (5, 5, 5), (0, 1, 2), (3, 0, 3)])
def test_adams_loop_streams_lines_at_any_offset_with_the_plain_loops_bits(dtype, offsets):
    """Outputs that start on a line, past one, or at different offsets (which take the plain loop): the
    streamed call gives the plain call's bits, head and tail elements included."""
    from graphexec.ops import workspace
    kernel = training_ops.ADAM.wait(np.dtype(dtype).name, timeout=120)
    size = 3 * 64 + 7
    rng = np.random.default_rng(3)
    m, v, grad, value = (rng.standard_normal(size).astype(dtype) for _ in range(4))
    v = np.abs(v)
    grad[:6] = [np.nan, np.inf, -np.inf, 0.0, -0.0, np.finfo(dtype).smallest_subnormal]
    inputs = [compiled.read_only(a) for a in (m, v, grad, value)]
    scalars = [dtype(0.1), dtype(0.001), dtype(1e-8), dtype(1e-3)]
    plain = [np.full(size, -1, dtype) for _ in range(3)]
    kernel(*plain, *inputs, *scalars, 0)
    streamed = [workspace.aligned_empty((size + 8,), dtype)[offset:offset + size] for offset in offsets]
    kernel(*streamed, *inputs, *scalars, 1)
    for got, want in zip(streamed, plain):
        assert _same_bits(got, want)
    assert np.isnan(plain[2]).any() and not np.array_equal(plain[0], m)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_and_its_gradient_through_loops_give_numpys_bits(dtype, choice):
    """tf.nn.relu and its gradient on values with every special one (-0.0, NaN, inf, subnormals) among
    them, in a session: compiled (each loop seen called) against the numpy choice's maximum and dy * (z > 0)."""
    from graphexec.ops import nn_ops
    features = _gradient(dtype)
    features[20:32] = features[:12][::-1]  # specials as features and, reversed, under the gradient's
    upstream = np.roll(features, 12)

    def run():
        with tf.Graph().as_default():
            x = tf.placeholder(dtype, [SIZE])
            y = tf.nn.relu(x)
            (grad,) = tf.gradients(y, x, grad_ys=tf.constant(upstream))
            with tf.Session() as sess:
                return sess.run([y, grad], {x: features})

    choice("numpy")
    want = run()
    choice("auto")
    calls = []
    kernels = {}
    for loop in (nn_ops.RELU, nn_ops.RELU_GRAD):
        kernel = kernels[loop] = loop.wait(np.dtype(dtype).name, timeout=120)
        assert kernel is not None, "numba did not compile the loop"
        loop.compiled[np.dtype(dtype).name] = (
            lambda kernel, loop: lambda *args: calls.append(loop) or kernel(*args))(kernel, loop)
    try:
        got = run()
    finally:
        for loop, kernel in kernels.items():
            loop.compiled[np.dtype(dtype).name] = kernel
    assert calls == [nn_ops.RELU, nn_ops.RELU_GRAD]
    for g, w in zip(got, want):
        assert g.dtype == dtype and _same_bits(g, w)
    assert np.signbit(want[0]).sum() == 0  # -0.0 became 0.0, NaN stayed: the specials were there
    assert np.isnan(want[0]).any() and np.isnan(want[1]).any()


def test_small_updates_and_the_numpy_choice_keep_numpys_passes(choice):
    choice("auto")
    kernel = training_ops.ADAM.wait("float32", timeout=120)
    calls = []
    training_ops.ADAM.compiled["float32"] = lambda *args: calls.append(1) or kernel(*args)
    try:
        with tf.Graph().as_default():
            small = tf.Variable(np.ones(compiled.MIN_ELEMENTS - 1, np.float32))
            big = tf.Variable(np.ones(compiled.MIN_ELEMENTS, np.float32))
            train_small = tf.train.AdamOptimizer(0.1).minimize(tf.reduce_sum(small * small))
            train_big = tf.train.AdamOptimizer(0.1).minimize(tf.reduce_sum(big * big))
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                sess.run(train_small)
                assert calls == []
                sess.run(train_big)
                assert calls == [1]  # the spy sees a loop call: the two assertions around it can fail
                choice("numpy")
                sess.run(train_big)
                assert calls == [1]
    finally:
        training_ops.ADAM.compiled["float32"] = kernel


def _twice_loop(out, x, scale):  # a loop of this test's own
    for i in range(out.size):
        out[i] = x[i] * scale + x[i]


def test_a_loop_compiles_per_dtype_on_one_background_thread_and_gives_the_gil_back_sooner(choice):
    for cached in pathlib.Path(__file__).parent.glob("__pycache__/test_compiled._twice_loop-*"):
        cached.unlink()  # compiled afresh (~0.1 s or more), so that the short interval can be seen
    choice("auto")
    interval = sys.getswitchinterval()
    loop = compiled.Loop(_twice_loop, compiled.elementwise(outputs=1, inputs=1, scalars=1))
    assert loop.get("float64") is None  # queued: the caller never waits for the compiler
    shortest = interval
    while loop.get("float64") is None:
        shortest = min(shortest, sys.getswitchinterval())
        time.sleep(0.001)
    assert shortest <= compiled.COMPILING_SWITCH_INTERVAL_S < interval
    deadline = time.monotonic() + 10
    while sys.getswitchinterval() != interval and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sys.getswitchinterval() == interval  # put back once the queue is empty
    x, out = np.arange(5.0), np.empty(5)
    loop.get("float64")(out, compiled.read_only(x), 2.0)
    np.testing.assert_array_equal(out, 3 * x)
    assert list(loop.compiled) == ["float64"]  # float32 only when asked for
    assert loop.wait("float32", timeout=120) is not None


def test_a_forked_child_compiles_what_its_parent_had_only_asked_for(choice):
    choice("auto")
    loop = compiled.Loop(_twice_loop, compiled.elementwise(outputs=1, inputs=1, scalars=1))
    with compiled._lock:  # the parent's compiler cannot take the ask before the fork
        loop._asked["float32"] = threading.Event()
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the unanswered ask is dropped, and asking again compiles
        try:
            os.write(writer, b"1" if loop.wait("float32", timeout=30) is not None else b"0")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(reader, 1) == b"1"


def test_an_unknown_choice_is_refused():
    with pytest.raises(ValueError, match="GRAPHEXEC_COMPILED_KERNELS must be one of auto, numba, numpy"):
        compiled.choose("llvm")
