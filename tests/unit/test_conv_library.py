"""graphexec.runtime.conv_library: oneDNN's convolutions (through torch) give what graphexec's own kernels
give, for every padding and stride TF allows, on any input layout, with the same bits every time; and
the choice between them is the user's."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

import small_cnn
from graphexec.ops import conv_ops, math_ops, pool_ops, windows
from graphexec.runtime import blas, conv_library, intra_op
from graphexec.runtime.context import ExecContext

torch = pytest.importorskip("torch")

# (x shape, filter shape, strides, padding): SAME with the odd extra row and column after (even filters,
# stride 2 over odd sizes), VALID with rows that no window reads, one input channel, rectangular filters.
CASES = [
    ((3, 9, 9, 3), (3, 3, 3, 4), (1, 1), "SAME"),
    ((3, 9, 9, 3), (3, 3, 3, 4), (2, 2), "SAME"),
    ((2, 8, 7, 2), (4, 4, 2, 5), (1, 1), "SAME"),
    ((2, 9, 8, 2), (2, 3, 2, 3), (2, 3), "SAME"),
    ((2, 10, 9, 4), (3, 2, 4, 2), (3, 2), "VALID"),
    ((4, 12, 12, 1), (5, 5, 1, 6), (1, 1), "SAME"),
    ((1, 5, 5, 2), (5, 5, 2, 3), (1, 1), "VALID"),
]


def _kernels(ctx, x, w, dy, strides, padding):
    strides = (1, *strides, 1)
    return (conv_ops._conv2d(ctx, x, w, strides, padding),
            conv_ops._conv_backprop_input(ctx, np.array(x.shape), w, dy, strides, padding),
            conv_ops._conv_backprop_filter(ctx, x, np.array(w.shape), dy, strides, padding))


@pytest.fixture
def restore_choice():
    previous = conv_library.choice()
    yield
    conv_library.choose(previous)


@pytest.mark.parametrize("x_shape, w_shape, strides, padding", CASES)
def test_onednn_matches_graphexec_kernels_in_float64(x_shape, w_shape, strides, padding, restore_choice):
    rng = np.random.default_rng(sum(x_shape))
    x, w = rng.normal(size=x_shape), rng.normal(size=w_shape)
    oh, ow, _ = windows.geometry(x_shape, w_shape[0], w_shape[1], (1, *strides, 1), padding)
    dy = rng.normal(size=(x_shape[0], oh, ow, w_shape[3]))
    conv_library.choose("torch")
    ctx = ExecContext(np)
    assert conv_library.usable(np, x.astype(np.float32)) and not conv_library.usable(np, x)  # float64: ours
    exact = _kernels(ctx, x, w, dy, strides, padding)
    fast = _kernels(ctx, *(a.astype(np.float32) for a in (x, w, dy)), strides, padding)
    for name, got, want in zip(("forward", "input gradient", "filter gradient"), fast, exact):
        assert got.dtype == np.float32 and got.shape == want.shape, name
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max(), err_msg=name)


def test_any_input_layout_and_read_only_inputs(restore_choice):
    conv_library.choose("torch")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 6, 7, 2)).astype(np.float32)
    w = rng.normal(size=(3, 3, 2, 4)).astype(np.float32)
    ctx = ExecContext(np)
    want = conv_ops._conv2d(ctx, x, w, (1, 1, 1, 1), "SAME")
    flipped = np.ascontiguousarray(x[:, ::-1])[:, ::-1]  # negative strides: torch takes none
    transposed = np.ascontiguousarray(x.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)  # NCHW memory
    read_only = x.copy()
    read_only.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns about arrays it may not write: none may leak out
        for layout in (flipped, transposed, read_only):
            np.testing.assert_array_equal(conv_ops._conv2d(ctx, layout, w, (1, 1, 1, 1), "SAME"), want)


# W10's two convolutions, and shapes with large biases that would show a bias added before the sum.
FUSED_CASES = [((4, 28, 28, 1), (5, 5, 1, 32), (1, 1), "SAME", 1.0),
               ((4, 14, 14, 32), (5, 5, 32, 64), (1, 1), "SAME", 1.0),
               *((x, w, s, p, 1e4) for x, w, s, p in CASES)]


@pytest.mark.parametrize("x_shape, w_shape, strides, padding, bias_scale", FUSED_CASES)
def test_bias_and_relu_in_the_convolution_give_the_bits_of_the_add_after_it(
        x_shape, w_shape, strides, padding, bias_scale, monkeypatch, restore_choice):
    """oneDNN's post-ops (one primitive) against the same convolution without them, then the add and ReLU:
    the same bits, biased or not, with ReLU or not; and within float32 rounding of torch's own conv2d."""
    conv_library.choose("torch")
    if conv_library._fused is None:
        pytest.skip("this torch has no oneDNN convolution with post-ops")
    rng = np.random.default_rng(sum(w_shape))
    x = rng.normal(size=x_shape).astype(np.float32)
    w = rng.normal(size=w_shape).astype(np.float32)
    bias = (rng.normal(size=w_shape[3]) * bias_scale).astype(np.float32)
    _, _, pads = windows.geometry(x_shape, w_shape[0], w_shape[1], (1, *strides, 1), padding)
    cases = [(b, relu) for b in (None, bias) for relu in (False, True)]
    fused = [conv_library.forward(x, w, (1, *strides, 1), pads, b, relu) for b, relu in cases]
    for (b, relu), got in zip(cases, fused):
        want = fused[0] + (0 if b is None else b)
        np.testing.assert_array_equal(got, np.maximum(want, 0) if relu else want,
                                      err_msg=f"bias {b is not None}, relu {relu}")
    assert (fused[1] >= 0).all() and (fused[1] > 0).any() and (fused[0] < 0).any()  # the ReLU did something
    monkeypatch.setattr(conv_library, "_fused", None)
    for (b, relu), got in zip(cases, fused):
        unfused = conv_library.forward(x, w, (1, *strides, 1), pads, b, relu)
        np.testing.assert_allclose(got, unfused, rtol=1e-5, atol=1e-5 * np.abs(unfused).max())


def _native_threads() -> int:
    """This process's threads that Python did not start (an OpenMP team's), counted from /proc."""
    return len(os.listdir("/proc/self/task")) - len(threading.enumerate())


def test_filter_gradient_bits_repeat_and_no_thread_team_starts(monkeypatch, restore_choice):
    """Split over two intra-op threads, each call one-threaded: the partial sums add up in one order, and
    oneDNN starts no OpenMP threads of its own (it would on a helper thread left at the core count)."""
    conv_library.choose("torch")
    blas.limit_threads(1)
    previous = intra_op.threads()
    intra_op.set_threads(2)
    monkeypatch.setattr(intra_op, "MIN_MACS", 1)
    try:
        rng = np.random.default_rng(4)
        x = rng.normal(size=(16, 9, 9, 3)).astype(np.float32)
        dy = rng.normal(size=(16, 5, 5, 4)).astype(np.float32)
        ctx = ExecContext(np)
        native_before = _native_threads()
        grads = [conv_ops._conv_backprop_filter(ctx, x, np.array([3, 3, 3, 4]), dy, (1, 2, 2, 1), "SAME")
                 for _ in range(30)]
        for grad in grads[1:]:
            np.testing.assert_array_equal(grad, grads[0])
        assert _native_threads() == native_before  # new threads, if any, are Python's: the intra-op helper
    finally:
        intra_op.set_threads(previous)


@pytest.mark.parametrize("block_macs, sizes", [
    (1 << 28, [64, 64]),  # W10's conv2 on 2 threads: one slice a thread
    (1 << 26, [22] * 5 + [18]),  # each call at most 4 * 2^26 macs (26 images): 6 slices, 3 a thread
])
def test_library_convolutions_take_one_slice_per_thread_within_the_block_limit(monkeypatch, block_macs, sizes):
    """oneDNN's calls run whole slices of the batch: as many as there are threads unless a slice would pass
    the interruptible block limit (times LIBRARY_BLOCK_FACTOR), then a multiple of the thread count."""
    from graphexec.ops import interruptible
    previous = intra_op.threads()
    intra_op.set_threads(2)
    monkeypatch.setattr(blas, "single_threaded", lambda: True)
    monkeypatch.setattr(interruptible, "BLOCK_MACS", block_macs)
    try:
        macs = 128 * 14 * 14 * 64 * 5 * 5 * 32
        taken = conv_ops._on_library_slices(ExecContext(np), 128, macs, lambda s: s.stop - s.start)
    finally:
        intra_op.set_threads(previous)
    assert taken == sizes


def test_a_cnn_trains_the_same_way_with_either_library(restore_choice):
    """A small conv + max-pool + dense model, 5 Adam steps in float32: losses agree to float32 rounding."""
    rng = np.random.default_rng(5)
    images = rng.normal(size=(8, 12, 12, 1)).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)]
    losses = {}
    for library in ("numpy", "torch"):
        conv_library.choose(library)
        losses[library] = small_cnn.train_losses(images, labels, 5)
    np.testing.assert_allclose(losses["torch"], losses["numpy"], rtol=1e-4)
    assert losses["torch"][-1] < losses["torch"][0]


def test_choice_is_checked_and_described(restore_choice):
    with pytest.raises(ValueError, match="GRAPHEXEC_CONV_LIBRARY must be one of auto, torch, numpy"):
        conv_library.choose("mkl")
    assert conv_library.choose("numpy") == "graphexec im2col + BLAS"
    assert not conv_library.usable(np, np.zeros(1, np.float32))
    assert conv_library.choose("auto") == (f"oneDNN (torch {torch.__version__}), products on "
                                           f"{conv_library._product_kernel(torch)[1]}")


def _python(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_the_variable_chooses_and_torch_loads_at_the_first_convolution():
    """A process that never convolves in float32 never pays torch's import."""
    code = ("import sys\nimport numpy as np\nfrom graphexec.runtime import conv_library\n"
            "print(conv_library.choice(), 'torch' in sys.modules, conv_library.usable(np, np.zeros(1)))\n"
            "print(conv_library.usable(np, np.zeros(1, np.float32)), 'torch' in sys.modules)")
    assert _python(code, GRAPHEXEC_CONV_LIBRARY="numpy").stdout.split() == ["numpy", "False", "False", "False", "False"]
    assert _python(code, GRAPHEXEC_CONV_LIBRARY="").stdout.split() == ["auto", "False", "False", "True", "True"]


def test_without_torch_auto_falls_back_and_torch_is_refused():
    hide = "import sys\nsys.modules['torch'] = None  # as if not installed\n"
    auto = _python(hide + "from graphexec.runtime import conv_library\nprint(conv_library.choose('auto'))")
    assert auto.stdout.strip() == "graphexec im2col + BLAS", auto.stderr
    serve = _python(hide + "from graphexec.cli import main\nmain(['serve', '--port', '0', '--conv-library', 'torch'])")
    assert serve.returncode == 2
    assert "--conv-library torch: the torch convolution library was asked for, but torch is not installed" in serve.stderr


def test_every_call_runs_on_one_openmp_thread_even_after_threadpoolctl_put_settings_back():
    """threadpoolctl's `threadpool_limits` puts every OpenMP library's setting back on exit, torch's too:
    a first convolution run inside one (the digits example's) left the calls after it on two OpenMP
    threads, whose sums differ in the last bits from a worker's (found as an order-dependent failure of
    test_the_fused_convolution_crosses_redis_to_a_worker)."""
    code = """
import numpy as np
import torch  # imported before threadpoolctl looks, as a notebook may have
from threadpoolctl import threadpool_info, threadpool_limits
from graphexec.runtime import conv_library
conv_library.choose("torch", now=False)  # torch's library is set up at the first convolution
x, w = np.ones((2, 6, 6, 1), np.float32), np.ones((3, 3, 1, 4), np.float32)
same = ((0, 0), (1, 1), (1, 1), (0, 0))
with threadpool_limits(limits=1, user_api="blas"):
    assert conv_library.usable(np, x)
    conv_library.forward(x, w, (1, 1, 1, 1), same)
conv_library.forward(x, w, (1, 1, 1, 1), same)
print(*[i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp" and "torch" in i["filepath"]])
"""
    done = _python(code)
    assert done.stdout.split() == ["1"], done.stdout + done.stderr


def test_a_failed_allocation_in_torch_is_a_memory_error():
    """torch reports a failed allocation as a RuntimeError; conv_library raises MemoryError, which the
    executor answers RESOURCE_EXHAUSTED (as under `--memory-limit`), and the next call works."""
    code = """
import resource
import numpy as np
from graphexec.runtime import conv_library
conv_library.choose("torch")
x = np.ones((512, 64, 64, 8), np.float32)  # 64 MiB in; the convolution's result is 512 MiB
w = np.ones((3, 3, 8, 64), np.float32)
same = ((0, 0), (1, 1), (1, 1), (0, 0))
conv_library.forward(x[:2], w, (1, 1, 1, 1), same)  # torch warm
used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (used + (256 << 20), resource.RLIM_INFINITY))
try:
    conv_library.forward(x, w, (1, 1, 1, 1), same)
except MemoryError as error:
    print("MemoryError", "you tried to allocate" in str(error))
print(float(conv_library.forward(x[:2], w, (1, 1, 1, 1), same).sum()))
"""
    done = _python(code)
    ones_sum = 2 * 64 * 8 * (64 * 3 - 2) ** 2  # 2 images, 64 channels, 8 inputs, SAME windows of ones
    assert done.stdout.split() == ["MemoryError", "True", str(float(ones_sum))], done.stdout + done.stderr


def test_a_torch_that_fails_to_import_is_named_and_auto_carries_on():
    """Under a tight address-space limit (as `--memory-limit` sets) torch's libraries cannot be mapped:
    auto says so once and convolves with graphexec's kernels; torch asked for by name fails."""
    code = """
import logging, resource
import numpy as np
logging.basicConfig()
used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (used + (300 << 20), resource.RLIM_INFINITY))
from graphexec.runtime import conv_library
print(conv_library.choose("auto"), "|", conv_library.usable(np, np.zeros(1, np.float32)))
try:
    conv_library.choose("torch")
except ImportError as error:
    print("ImportError |", "failed to map" in str(error))
"""
    done = _python(code)
    assert done.stdout.splitlines() == ["graphexec im2col + BLAS | False", "ImportError | True"], done.stdout + done.stderr
    assert "torch failed to import" in done.stderr and "convolutions run on graphexec's own kernels" in done.stderr


@pytest.fixture
def two_thread_library(monkeypatch, restore_choice):
    """oneDNN loaded, two intra-op threads, and products from 1000 multiply-adds on the library."""
    from graphexec.ops import interruptible
    conv_library.choose("torch")
    previous = intra_op.threads()
    intra_op.set_threads(2)
    monkeypatch.setattr(blas, "single_threaded", lambda: True)
    monkeypatch.setattr(intra_op, "MIN_MACS", 1)
    monkeypatch.setattr(interruptible, "LIBRARY_MACS", 1000)
    yield
    intra_op.set_threads(previous)


def test_large_float32_products_run_whole_in_onednn_on_the_intra_op_threads(monkeypatch, two_thread_library):
    """A product from LIBRARY_MACS up is one oneDNN call on the intra-op thread count, with operands laid
    out in rows or columns (a transposed operand is read where it is); its bits repeat, and it agrees with
    float64 to float32 rounding. Strided operands, float64, an `out`, products before torch is loaded and
    products too large for one call in a run that can be stopped keep numpy's path."""
    from graphexec.ops import interruptible
    calls, real = [], conv_library.product
    monkeypatch.setattr(conv_library, "product", lambda a, b, threads=1: (calls.append(threads), real(
        a, b, threads=threads))[1])
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(70, 300)).astype(np.float32), rng.normal(size=(300, 50)).astype(np.float32)
    for left, right in [(a, b), (np.asfortranarray(a), b), (a, np.asfortranarray(b)), (a[:, :40], b[:40])]:
        got = math_ops._matmul(ExecContext(np), left, right, False, False)
        np.testing.assert_allclose(got, left.astype(np.float64) @ right, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(math_ops._matmul(ExecContext(np), left, right, False, False), got)
    assert calls == [2] * 6  # (a[:, :40] is laid out neither in rows nor in columns: numpy's)
    calls.clear()
    strided = a[:, ::2]
    np.testing.assert_allclose(math_ops._matmul(ExecContext(np), strided, b[:150], False, False),
                               strided @ b[:150], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(math_ops._matmul(ExecContext(np), a.astype(np.float64), b, False, False),
                               a.astype(np.float64) @ b)
    into = np.empty((70, 50), np.float32)
    assert interruptible.matmul(ExecContext(np), a, b, out=into) is into
    conv_library.choose("auto", now=False)  # not loaded: a product never loads torch (its import is ~1-2 s)
    np.testing.assert_allclose(interruptible.matmul(ExecContext(np), a, b), a @ b, rtol=1e-5, atol=1e-4)
    assert not conv_library._loaded
    conv_library.choose("torch")
    monkeypatch.setattr(interruptible, "BLOCK_MACS", 70 * 300 * 50 // 16)  # more than 4 blocks a thread
    ctx = ExecContext(np)
    ctx.cancelled = type("NeverCancelled", (), {"__bool__": lambda self: False})()
    np.testing.assert_allclose(interruptible.matmul(ctx, a, b), a @ b, rtol=1e-5, atol=1e-4)
    assert calls == []


@pytest.mark.parametrize("vendor, name", [("GenuineIntel", "MKL"), ("AuthenticAMD", "oneDNN")])
def test_large_products_take_mkl_on_intel_processors_and_onednn_elsewhere(restore_choice, vendor, name):
    """The product kernel by processor: MKL's (torch.mm) on Intel's, where torch has MKL, oneDNN's matmul
    elsewhere. Either gives a @ b to float32 rounding for operands in rows or columns, the same bits for
    every layout of the same operands, and its own bits for each thread count even while another thread
    calls it with another count at the same time (MKL's and OpenMP's counts are the calling thread's)."""
    conv_library.choose("torch")
    if name == "MKL" and not torch.backends.mkl.is_available():
        name = "oneDNN"
    kernel, chosen = conv_library._product_kernel(torch, vendor)
    assert chosen == name
    rng = np.random.default_rng(8)
    a = rng.normal(size=(96, 700)).astype(np.float32)
    b = rng.normal(size=(700, 300)).astype(np.float32)
    saved = conv_library._matmul, conv_library._matmul_name
    conv_library._matmul, conv_library._matmul_name = kernel, chosen
    try:
        want = {threads: conv_library.product(a, b, threads=threads) for threads in (1, 2)}
        for got in want.values():
            np.testing.assert_allclose(got, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
        for left, right in [(np.asfortranarray(a), b), (a, np.asfortranarray(b))]:
            np.testing.assert_array_equal(conv_library.product(left, right, threads=2), want[2])
        wrong = []

        def repeat(threads):
            for _ in range(20):
                if not np.array_equal(conv_library.product(a, b, threads=threads), want[threads]):
                    wrong.append(threads)
        callers = [threading.Thread(target=repeat, args=(threads,)) for threads in (1, 2)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join()
        assert wrong == []
    finally:
        conv_library._matmul, conv_library._matmul_name = saved


@pytest.mark.parametrize("x_shape, w_shape, padding", [((24, 14, 14, 8), (5, 5, 8, 16), "SAME"),
                                                       ((16, 11, 11, 1), (3, 3, 1, 8), "SAME"),
                                                       ((9, 10, 9, 3), (4, 3, 3, 5), "VALID")])
def test_whole_batch_calls_give_the_bits_of_one_thread_slices(monkeypatch, restore_choice, x_shape, w_shape,
                                                              padding):
    """A convolution and its input gradient run as one oneDNN call over the batch on the intra-op threads
    (no copy of the result): the bits of one thread, since each output is one thread's sum. Where a run
    that can be stopped needs one-thread calls over slices, they agree to float32 rounding."""
    from graphexec.ops import interruptible
    conv_library.choose("torch")
    previous = intra_op.threads()
    monkeypatch.setattr(blas, "single_threaded", lambda: True)
    monkeypatch.setattr(intra_op, "MIN_MACS", 1)
    rng = np.random.default_rng(sum(x_shape))
    x = rng.normal(size=x_shape).astype(np.float32)
    w = rng.normal(size=w_shape).astype(np.float32)
    bias = rng.normal(size=w_shape[3]).astype(np.float32)
    attrs = dict(strides=(1, 1, 1, 1), padding=padding)

    def both(ctx):
        out = conv_ops._fused_conv2d(ctx, x, w, bias, activation="Relu", **attrs)
        dy = np.random.default_rng(1).normal(size=out.shape).astype(np.float32)
        return out, conv_ops._conv_backprop_input(ctx, np.array(x.shape), w, dy, **attrs)

    try:
        intra_op.set_threads(2)
        whole = both(ExecContext(np))
        assert all(result.flags.c_contiguous for result in whole)
        monkeypatch.setattr(interruptible, "BLOCK_MACS", 1)  # every image a slice of its own
        stoppable = ExecContext(np)
        stoppable.deadline = time.monotonic() + 60
        sliced = both(stoppable)
        intra_op.set_threads(1)
        monkeypatch.setattr(interruptible, "BLOCK_MACS", 1 << 28)
        alone = both(ExecContext(np))
    finally:
        intra_op.set_threads(previous)
    np.testing.assert_array_equal(alone[0], whole[0])
    np.testing.assert_array_equal(alone[1], whole[1])
    # oneDNN may choose its kernel by the batch it is given: a slice's may sum in another order (the C=1
    # input gradient does, one image at a time)
    np.testing.assert_allclose(sliced[0], whole[0], rtol=1e-5, atol=1e-5 * np.abs(whole[0]).max())
    np.testing.assert_allclose(sliced[1], whole[1], rtol=1e-5, atol=1e-5 * np.abs(whole[1]).max())
    assert (whole[0] > 0).any() and (whole[0] == 0).any()


@pytest.mark.parametrize("x_shape, ksize, strides, padding", [
    ((5, 28, 28, 32), 2, 2, "SAME"),  # W10's first pool
    ((3, 7, 9, 4), 3, 2, "SAME"),  # overlapping windows, padded on both sides
    ((2, 8, 8, 3), 3, 1, "SAME"),
    ((2, 9, 7, 5), 2, 3, "VALID"),  # windows with gaps between them
])
def test_compiled_max_pool_gives_torchs_values_and_indices(restore_choice, x_shape, ksize, strides, padding):
    """The compiled forward pool (pool_ops._pooled_loop) against torch's max_pool2d_with_indices on the same
    windows: values and indices equal, ties going to the first maximum, a window's NaN winning (its last
    one), a window of -inf pointing at its first input. Where windows do not overlap the kernel keeps
    int8 offsets within each window instead, which name the same inputs."""
    compiled = pytest.importorskip("numba") and pool_ops.POOLED.wait("float32", timeout=120)
    assert compiled is not None
    assert pool_ops.POOLED.wait(pool_ops.OFFSETS, timeout=120) and pool_ops.ROUTED.wait(pool_ops.OFFSETS, timeout=120)
    conv_library.choose("torch")
    rng = np.random.default_rng(sum(x_shape))
    x = rng.integers(-3, 4, size=x_shape).astype(np.float32)  # many ties
    x.reshape(-1)[rng.choice(x.size, x.size // 40, replace=False)] = np.nan
    x[0, :3, :3, :] = -np.inf
    window, step = (1, ksize, ksize, 1), (1, strides, strides, 1)
    _, _, pads = windows.geometry(x.shape, ksize, ksize, step, padding)
    assert conv_library.pools(window, step, pads)
    oh, ow, _ = windows.geometry(x.shape, ksize, ksize, step, padding)
    want, want_at = np.empty((x_shape[0], oh, ow, x_shape[3]), np.float32), np.empty((x_shape[0], oh, ow, x_shape[3]),
                                                                                    np.int64)
    assert conv_library.max_pool_with_indices(x, window, step, pads, want, want_at)
    got, got_at = np.empty_like(want), np.empty_like(want_at)
    compiled(x, got, got_at, strides, strides, ksize, ksize, pads[1][0], pads[2][0], False)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_at, want_at)
    assert np.isnan(got).any() and np.isinf(got).any()
    pooled, at = pool_ops._max_pool_with_indices(ExecContext(np), x, window, step, padding)
    np.testing.assert_array_equal(pooled, want)
    assert at.dtype == (np.int8 if strides >= ksize else np.int64)
    if at.dtype == np.int8:  # (row - the window's top) * ksize + column - its left
        tops = (np.arange(oh) * strides - pads[1][0])[:, None, None]
        lefts = (np.arange(ow) * strides - pads[2][0])[None, :, None]
        at = (tops + at // ksize) * x_shape[2] + lefts + at % ksize
    np.testing.assert_array_equal(at, want_at)


def test_misaligned_inputs_give_the_bits_of_aligned_ones(restore_choice):
    """A convolution's input or gradient that does not start on a cache line (a feed's bytes inside a
    request; numpy's usual 32 bytes past one) is read from an aligned copy: the same bits, and the
    caller's array untouched."""
    from graphexec.ops import workspace
    conv_library.choose("torch")
    rng = np.random.default_rng(7)
    x = rng.normal(size=(6, 12, 12, 1)).astype(np.float32)
    w = rng.normal(size=(5, 5, 1, 8)).astype(np.float32)
    dy = rng.normal(size=(6, 12, 12, 8)).astype(np.float32)
    _, _, pads = windows.geometry(x.shape, 5, 5, (1, 1, 1, 1), "SAME")

    def at(array, offset):  # a read-only copy of `array` whose data starts `offset` bytes past a line
        raw = np.zeros(array.nbytes + 128, np.uint8)
        start = -raw.ctypes.data % 64 + offset
        copy = raw[start:start + array.nbytes].view(array.dtype).reshape(array.shape)
        copy[...] = array
        copy.setflags(write=False)
        return copy

    def all_three(x, dy):
        return (conv_library.forward(x, w, (1, 1, 1, 1), pads, None, True, threads=2),
                conv_library.input_gradient(dy, w, x.shape, (1, 1, 1, 1), pads, threads=2),
                conv_library.filter_gradient(x, dy, w.shape, (1, 1, 1, 1), pads))

    want = all_three(at(x, 0), at(dy, 0))
    for offset in (4, 32):
        misaligned_x, misaligned_dy = at(x, offset), at(dy, offset)
        assert misaligned_x.ctypes.data % 64 == offset
        assert conv_library._read_nchw(misaligned_x).data_ptr() % 64 == 0  # what oneDNN is given
        for got, expected in zip(all_three(misaligned_x, misaligned_dy), want):
            np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(misaligned_x, x)
    aligned = workspace.aligned_empty((3, 5, 7), np.float32)
    assert aligned.ctypes.data % 64 == 0 and aligned.flags.c_contiguous and aligned.flags.writeable
    assert workspace.aligned(aligned) is aligned


def test_a_child_forked_after_a_thread_team_runs_its_kernels_on_one_thread_each(two_thread_library):
    """GNU OpenMP's threads do not survive a fork: a child of a process that ran a two-thread oneDNN call
    would wait forever in its next team. The child's convolutions and products run, with the parent's
    results, as one-thread calls (slices on the intra-op threads; numpy's product)."""
    from graphexec.ops import interruptible
    rng = np.random.default_rng(8)
    x, w = rng.normal(size=(8, 10, 10, 4)).astype(np.float32), rng.normal(size=(3, 3, 4, 6)).astype(np.float32)
    a, b = rng.normal(size=(60, 70)).astype(np.float32), rng.normal(size=(70, 50)).astype(np.float32)
    convolved = conv_ops._conv2d(ExecContext(np), x, w, (1, 1, 1, 1), "SAME")
    product = interruptible.matmul(ExecContext(np), a, b)
    assert conv_library._team_started
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            again = conv_ops._conv2d(ExecContext(np), x, w, (1, 1, 1, 1), "SAME")
            product_again = interruptible.matmul(ExecContext(np), a, b)
            ok = (not conv_library.teams_work() and np.allclose(again, convolved, rtol=1e-5, atol=1e-5)
                  and np.allclose(product_again, product, rtol=1e-5, atol=1e-4))
            os.write(writer, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(writer)
    deadline = time.monotonic() + 20
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung in its kernels")
        time.sleep(0.05)
    assert os.read(reader, 1) == b"1"
    assert conv_library.teams_work()  # the parent's teams still work
