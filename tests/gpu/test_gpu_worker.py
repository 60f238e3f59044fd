"""The GPU backend: the same kernels through CuPy, in a worker and behind `graphexec serve --device gpu`."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from gpu_required import cupy  # noqa: E402 - skips this module without CuPy or a GPU

pytestmark = pytest.mark.timeout(300)

import graphexec as tf  # noqa: E402
from graphexec.runtime import placement  # noqa: E402
from graphexec.runtime.store import MemoryStore  # noqa: E402
from graphexec.runtime.worker import CachedPlan, PlanCall, WorkerCore  # noqa: E402
from graphexec.compiler.pipeline import compile_program  # noqa: E402
from graphexec import ir  # noqa: E402


def _mlp(device=""):
    graph = tf.Graph()
    with graph.as_default(), tf.device(device):
        tf.set_random_seed(1)
        x = tf.placeholder(tf.float32, [None, 20], name="x")
        labels = tf.placeholder(tf.int64, [None], name="labels")
        hidden = tf.nn.relu(tf.matmul(x, tf.Variable(tf.random_normal([20, 32], stddev=0.2))) + 0.1)
        logits = tf.matmul(hidden, tf.Variable(tf.random_normal([32, 4], stddev=0.2)))
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        step = tf.train.get_or_create_global_step()
        train = tf.train.GradientDescentOptimizer(0.2).minimize(loss, global_step=step)
        init = tf.global_variables_initializer()
    return graph, dict(x=x, labels=labels, loss=loss, train=train, init=init, step=step)


def _batches():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 20)).astype(np.float32)
    return x, (x[:, :4].argmax(axis=1)).astype(np.int64)


def test_worker_core_runs_plans_with_cupy_like_numpy():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, 8], name="x")
        y = tf.reduce_sum(tf.nn.softmax(tf.matmul(x, tf.ones([8, 3])) * 0.5 + tf.exp(x[:, :3])), axis=1)
    plan = compile_program(ir.Program(graph.nodes(), ("x:0",), (y.name,), (), None), graph.digest())
    feed = np.random.default_rng(2).normal(size=(5, 8)).astype(np.float32)
    results = []
    for device in (placement.CPU, placement.GPU):
        core = WorkerCore(MemoryStore(), device)
        call = PlanCall("", "key", [feed], device_type=device)
        results.append(core.run(call, CachedPlan.of("key", plan)).fetches[0])
    assert isinstance(results[1], np.ndarray)  # fetched back to the host
    np.testing.assert_allclose(results[1], results[0], rtol=1e-5)


@pytest.fixture(scope="module")
def gpu_server():
    process = subprocess.Popen([sys.executable, "-m", "graphexec", "serve", "--port", "0", "--device", "gpu"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    try:
        target, output = None, []
        for line in process.stdout:
            output.append(line)
            match = re.search(r"serving on (grpc://\S+)", line)
            if match:
                target = match.group(1)
                break
        assert target, "graphexec serve --device gpu did not start:\n" + "".join(output)
        yield target
    finally:
        process.kill()
        process.wait(timeout=10)


def _train(target, device):
    graph, m = _mlp(device)
    x, labels = _batches()
    with tf.Session(target, graph=graph) as sess:
        sess.run(m["init"])
        metadata = tf.RunMetadata()
        losses = [sess.run([m["train"], m["loss"]], {m["x"]: x, m["labels"]: labels}, run_metadata=metadata)[1]
                  for _ in range(20)]
        return np.array(losses), sess.run(m["step"]), metadata


def test_training_on_the_gpu_matches_the_cpu(gpu_server):
    cpu_losses, _, _ = _train("", "")
    gpu_losses, steps, metadata = _train(gpu_server, "/device:GPU:0")
    assert steps == 20 and not metadata.soft_placement
    assert set(metadata.devices.values()) == {"/device:GPU:0"}
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=2e-4, atol=1e-5)


def test_gpu_server_lists_its_gpu_and_keeps_cpu_pinned_steps_on_the_cpu(gpu_server):
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [4], name="x")
        with tf.device("/device:GPU:0"):
            y = tf.exp(x, name="gpu_exp")
        with tf.device("/cpu:0"):
            z = tf.sqrt(y, name="cpu_sqrt")
        with tf.device("/gpu:0"):
            w = tf.multiply(z, 2.0, name="gpu_mul")
    with tf.Session(gpu_server, graph=graph) as sess:
        assert {d.device_type for d in sess.list_devices()} == {"CPU", "GPU"}
        metadata = tf.RunMetadata()
        result = sess.run(w, {x: [0, 1, 2, 3]}, run_metadata=metadata)
    np.testing.assert_allclose(result, 2 * np.sqrt(np.exp([0, 1, 2, 3])), rtol=1e-6)
    assert metadata.devices["cpu_sqrt"] == "/cpu:0" and metadata.devices["gpu_exp"] == "/device:GPU:0"


def test_the_placer_keeps_small_runs_on_the_cpu_and_sends_wide_ones_to_the_gpu(gpu_server):
    graph, m = _mlp()  # no device asked for: the server's cost model decides per run
    x, labels = _batches()
    with graph.as_default():
        wide_x = tf.placeholder(tf.float32, [None, 4096])
        wide = tf.reduce_sum(tf.matmul(tf.matmul(wide_x, tf.ones([4096, 4096])), tf.ones([4096, 4096])))
    with tf.Session(gpu_server, graph=graph) as sess:
        sess.run(m["init"])
        small, large = tf.RunMetadata(), tf.RunMetadata()
        sess.run(m["train"], {m["x"]: x, m["labels"]: labels}, run_metadata=small)
        got = sess.run(wide, {wide_x: np.ones((1024, 4096), np.float32)}, run_metadata=large)
    assert set(small.devices.values()) == {"/cpu:0"}
    assert "/device:GPU:0" in set(large.devices.values())
    assert got == pytest.approx(1024 * 4096 * 4096 * 4096, rel=1e-4)


def test_large_values_come_back_through_reused_page_locked_memory(monkeypatch):
    from graphexec.runtime import context

    device = cupy.arange(3 * context.PINNED_MIN_BYTES // 4, dtype=cupy.float32).reshape(3, -1)
    host = context.on_host(device)
    assert type(host) is np.ndarray and host.base is not None  # page-locked memory owns the values
    np.testing.assert_array_equal(host, cupy.asnumpy(device))
    address = host.ctypes.data
    del host  # its block goes back to CuPy's pool, and the next copy of that size reuses it
    assert context.on_host(device * 2).ctypes.data == address
    strided = context.on_host(device[:, ::2])
    assert strided.flags.c_contiguous
    np.testing.assert_array_equal(strided, cupy.asnumpy(device)[:, ::2])
    small = context.on_host(cupy.ones(4))
    assert small.base is None and small.sum() == 4  # small values: an ordinary copy
    pool = cupy.get_default_pinned_memory_pool()
    del strided
    assert pool.n_free_blocks() > 0
    monkeypatch.setattr(context, "MAX_FREE_PINNED_BLOCKS", 0)
    context.trim_pinned_pool(cupy)
    assert pool.n_free_blocks() == 0


def test_training_a_layer_of_megabytes_on_the_gpu_matches_the_cpu(gpu_server):
    """Updated variables above PINNED_MIN_BYTES reach the store (and fetches the client) through
    page-locked buffers that later steps reuse: the values must stay each step's own."""
    rng = np.random.default_rng(5)
    x, labels = rng.normal(size=(64, 1024)).astype(np.float32), rng.integers(0, 4, 64)

    def train(target, device):
        graph = tf.Graph()
        with graph.as_default(), tf.device(device):
            feed = tf.placeholder(tf.float32, [None, 1024])
            wanted = tf.placeholder(tf.int64, [None])
            # Named apart from the other tests' variables: the module's server keeps them all.
            wide = tf.Variable(tf.random_normal([1024, 1024], stddev=0.03, seed=7), name="wide_4mib")
            out = tf.Variable(tf.random_normal([1024, 4], stddev=0.1, seed=8), name="wide_out")
            logits = tf.matmul(tf.nn.relu(tf.matmul(feed, wide)), out)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=wanted, logits=logits))
            train_op = tf.train.MomentumOptimizer(0.1, 0.9).minimize(loss)
            init = tf.global_variables_initializer()
        with tf.Session(target, graph=graph) as sess:
            sess.run(init)
            return [(sess.run(train_op, {feed: x, wanted: labels}), sess.run(wide))[1] for _ in range(4)]

    for step, (ours, theirs) in enumerate(zip(train(gpu_server, "/device:GPU:0"), train("", ""))):
        np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-5, err_msg=f"step {step}")
