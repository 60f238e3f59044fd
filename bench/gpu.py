"""GPU benchmark: the same graphs through `graphexec serve --device cpu` and `--device gpu`.

    python -m bench.gpu [--steps N]

Prints one table: MLP 784-256-10 SGD training steps/s (W3's model, batch 128 fed each step), a 4096-wide
MLP (three 4096x4096 layers, batch 1024), a chain of four 2048x2048 matmuls per run, and x*2 on a 64 MiB
feed, each as runs/s: on a CPU server, on a GPU server with the graph pinned to the GPU (GPU/CPU ratio),
and on the GPU server unpinned, where its placer chooses per run (which device, and the ratio). Where
`redis-server` is on PATH, the same through the Redis deployment (`serve --redis` and one `graphexec
worker --device cpu`, then `--device gpu`, pinned to that worker's device), whose commits write every
updated variable to Redis before the step is acknowledged.
Runs where CuPy sees a GPU; otherwise says so and exits 0.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

import numpy as np

from bench import procs
from bench.systems.graphexec_sys import WORKER_ARGS, WORKER_READY, start_serve


def _gpu_available() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - any import or driver failure means "no GPU here"
        return False


def _embedded(device: str) -> tuple[list, str]:
    server = start_serve(f"serve-{device}", ["--device", device])
    return [server], server.match.group(1)


def _deployment(device: str) -> tuple[list, str]:
    """redis-server, one `graphexec worker --device DEVICE` and one `serve --redis` replica."""
    redis, url = procs.start_redis(shutil.which("redis-server"))
    started = [redis]
    try:
        started.append(procs.ServerProcess(f"worker-{device}", [sys.executable, "-m", "graphexec", "worker", "--redis",
                                                                url, "--device", device, *WORKER_ARGS],
                                           ready=WORKER_READY, timeout_s=120))
        started.append(start_serve("replica", ["--redis", url]))
    except BaseException:
        _stop(started)
        raise
    return started, started[-1].match.group(1)


def _stop(started: list) -> None:
    for process in reversed(started):
        process.stop()


def _rate(fn, seconds_budget: float, min_runs: int) -> float:
    fn()  # warm-up: graph upload, compile, first allocation on the device
    fn()
    runs, start = 0, time.perf_counter()
    while runs < min_runs or time.perf_counter() - start < seconds_budget:
        fn()
        runs += 1
    return runs / (time.perf_counter() - start)


def measure(target: str, steps: int, device: str) -> dict[str, tuple[float, str]]:
    """{workload: (runs/s, where the runs went)}, every graph built under tf.device(device)."""
    import graphexec as tf

    rng = np.random.default_rng(0)
    results = {}
    graph = tf.Graph()
    with graph.as_default(), tf.device(device):
        x = tf.placeholder(tf.float32, [None, 784])
        y = tf.placeholder(tf.int64, [None])
        w1 = tf.Variable(tf.random_normal([784, 256], stddev=0.05, seed=1))
        w2 = tf.Variable(tf.random_normal([256, 10], stddev=0.05, seed=2))
        logits = tf.matmul(tf.nn.relu(tf.matmul(x, w1)), w2)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        train = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
        wide_x = tf.placeholder(tf.float32, [None, 4096])
        hidden = wide_x
        for layer in range(3):
            hidden = tf.nn.relu(tf.matmul(hidden, tf.Variable(tf.random_normal([4096, 4096], stddev=0.01,
                                                                               seed=10 + layer))))
        wide_logits = tf.matmul(hidden, tf.Variable(tf.random_normal([4096, 10], stddev=0.01, seed=20)))
        wide_loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=wide_logits))
        wide_train = tf.train.GradientDescentOptimizer(0.01).minimize(wide_loss)
        a = tf.placeholder(tf.float32, [2048, 2048])
        chain = a
        for _ in range(4):
            chain = tf.matmul(chain, a) * (1.0 / 2048)
        total = tf.reduce_sum(chain)
        big = tf.placeholder(tf.float32, [16 * 1024 * 1024])
        doubled = big * 2.0
        with tf.Session(target, graph=graph) as sess:
            sess.run(tf.global_variables_initializer())

            def timed(name, fetches, feeds, min_runs):
                metadata = tf.RunMetadata()
                sess.run(fetches, feeds, run_metadata=metadata)
                types = {d.split(":")[-2].strip("/").upper() for d in metadata.devices.values()}
                went = "+".join(sorted(types)) or "?"
                results[name] = _rate(lambda: sess.run(fetches, feeds), 2.0, min_runs), went

            bx = rng.normal(size=(128, 784)).astype(np.float32)
            by = rng.integers(0, 10, 128)
            timed("MLP 784-256-10 train steps/s, batch 128", [train, loss], {x: bx, y: by}, steps)
            wx = rng.normal(size=(1024, 4096)).astype(np.float32)
            wy = rng.integers(0, 10, 1024)
            timed("MLP 4096x3 train steps/s, batch 1024", [wide_train, wide_loss], {wide_x: wx, y: wy}, 3)
            timed("4x matmul 2048^2 runs/s", total, {a: rng.normal(size=(2048, 2048)).astype(np.float32)}, 5)
            timed("x*2 64 MiB runs/s", doubled, {big: rng.normal(size=16 * 1024 * 1024).astype(np.float32)}, 5)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args(argv)
    if not _gpu_available():
        print("bench.gpu: CuPy sees no GPU here; nothing to measure")
        return 0
    table = {}
    # The CPU server; the GPU server with every step pinned to its GPU (what the device does); the GPU
    # server with no pins (where its placer sends each run: graphexec.runtime.cost); then the Redis
    # deployment with a CPU worker, and with a GPU worker.
    columns = [("cpu", _embedded, "cpu", ""), ("gpu", _embedded, "gpu", "/device:GPU:0"),
               ("placed", _embedded, "gpu", "")]
    if shutil.which("redis-server"):
        columns += [("redis cpu worker", _deployment, "cpu", ""), ("redis gpu worker", _deployment, "gpu",
                                                                    "/device:GPU:0")]
    for column, start, server, device in columns:
        try:
            started, target = start(server)
            try:
                table[column] = measure(target, args.steps, device)
            finally:
                _stop(started)
        except Exception as error:  # noqa: BLE001 - one column failing still reports the others
            print(f"{column}: failed: {type(error).__name__}: {error}", flush=True)
            continue
        print(f"{column}: " + ", ".join(f"{k} {v:,.1f} ({on})" for k, (v, on) in table[column].items()), flush=True)
    print(f"({os.uname().nodename}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')})")
    print("| workload | " + " | ".join(f"{c} runs/s (device; x cpu)" for c in table) + " |")
    print("| --- |" + " --- |" * len(table))
    for name in table.get("cpu", {}):
        cpu = table["cpu"][name][0]
        cells = [f"{rate:,.2f} ({on}; {rate / cpu:.2f}x)" for rate, on in (table[c][name] for c in table)]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
