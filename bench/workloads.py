"""W1..W10 (see /work/shared/bench/WORKLOADS.md), timed against the `System` interface.

Each `measure_wN(system, params)` returns a dict of figures in base units: seconds,
bytes per second, runs per second. Results are checked against numpy once, outside timing.
"""

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from bench import graphs, procs
from bench.systems import NotApplicable

now = time.perf_counter


@dataclass(frozen=True)
class Params:
    w1_runs: int
    w1_warmup: int
    w2_runs: int
    w2_warmup: int
    w3_steps: int
    w3_warmup: int
    w4_seconds: float
    w4_threads: int
    w4_processes: int
    w5_cached_runs: int
    w7_runs: int
    w10_steps: int
    w10_warmup: int
    w8_seconds: float = 10.0
    w8_processes: int = 4
    w8_threads: int = 16  # per process: 64 clients
    w8_warmup: int = 20


FULL = Params(w1_runs=2000, w1_warmup=200, w2_runs=20, w2_warmup=2, w3_steps=200, w3_warmup=20,
              w4_seconds=5.0, w4_threads=8, w4_processes=4, w5_cached_runs=50, w7_runs=10_000,
              w10_steps=30, w10_warmup=5)
QUICK = Params(w1_runs=500, w1_warmup=50, w2_runs=5, w2_warmup=1, w3_steps=50, w3_warmup=5,
               w4_seconds=2.0, w4_threads=8, w4_processes=4, w5_cached_runs=20, w7_runs=2_000,
               w10_steps=10, w10_warmup=2, w8_seconds=3.0)


def percentile(samples, q):
    return float(np.percentile(np.asarray(samples), q))


def timed(fn, *args):
    start = now()
    result = fn(*args)
    return now() - start, result


# W5/W6 compare 1000 float32 ops on values of order 1, which a compiler may fuse or reorder.
CHAIN_TOLERANCE = 1e-4


def check_close(system, got, expected, what, rtol=1e-5, atol=1e-6):
    if system.computes_results and not np.allclose(got, expected, rtol=rtol, atol=atol):
        error = np.abs(np.asarray(got, np.float64) - expected).max()
        raise AssertionError(f"{what}: wrong result {np.asarray(got).ravel()[:4]}..., expected "
                             f"{np.asarray(expected).ravel()[:4]}... (max abs difference {error:.3g})")


def measure_w1(system, p):
    """c = a + b, sequential runs: p50/p99 latency and the sequential rate."""
    run = system.build_w1()
    a, b = graphs.w1_inputs()
    check_close(system, run(a, b), a + b, "W1")
    for _ in range(p.w1_warmup):
        run(a, b)
    samples = []
    start = now()
    for _ in range(p.w1_runs):
        t0 = now()
        run(a, b)
        samples.append(now() - t0)
    total = now() - start
    return {"w1_p50_s": percentile(samples, 50), "w1_p99_s": percentile(samples, 99),
            "w1_runs_per_s": p.w1_runs / total}


def measure_w2(system, p):
    """y = x * 2 on 64 MiB: (bytes sent + received) / time, median over runs."""
    run = system.build_w2()
    x = graphs.w2_input()
    y = run(x)
    if system.computes_results and not (y.shape == x.shape and y[0] == 3.0 and y[-1] == 3.0):
        raise AssertionError(f"W2: wrong result shape {y.shape} first {y[:2]}")
    for _ in range(p.w2_warmup - 1):
        run(x)
    samples = [timed(run, x)[0] for _ in range(p.w2_runs)]
    return {"w2_bytes_per_s": 2 * x.nbytes / statistics.median(samples)}


def measure_w3(system, p):
    """One MLP SGD step per call on fed random batches: steps/s and p50 step time."""
    step = system.build_w3()
    batches = graphs.mlp_batches()
    losses = [step(*batches[i % len(batches)]) for i in range(p.w3_warmup)]
    samples = []
    start = now()
    for i in range(p.w3_steps):
        t0 = now()
        losses.append(step(*batches[i % len(batches)]))
        samples.append(now() - t0)
    total = now() - start
    if not np.isfinite(losses).all():
        raise AssertionError(f"W3: loss not finite: {losses[-3:]}")
    return {"w3_steps_per_s": p.w3_steps / total, "w3_step_p50_s": percentile(samples, 50),
            "w3_first_loss": float(losses[0]), "w3_last_loss": float(losses[-1])}


def measure_w4(system, p):
    """W1 from many client threads sharing one session, then from client processes."""
    if not system.has_server:
        raise NotApplicable("in-process: no server for clients to share")
    figures = {"w4_threads_runs_per_s": _w4_threads(system, p)}
    figures["w4_processes_runs_per_s"] = _w4_processes(system, p)
    return figures


def _w4_threads(system, p):
    run = system.build_w1()
    a, b = graphs.w1_inputs()
    for _ in range(p.w1_warmup):
        run(a, b)
    counts = [0] * p.w4_threads
    go = threading.Event()
    deadline = [0.0]

    def client(index):
        go.wait()
        n = 0
        while now() < deadline[0]:
            run(a, b)
            n += 1
        counts[index] = n

    threads = [threading.Thread(target=client, args=(i,)) for i in range(p.w4_threads)]
    for thread in threads:
        thread.start()
    start = now()
    deadline[0] = start + p.w4_seconds
    go.set()
    for thread in threads:
        thread.join()
    return sum(counts) / (now() - start)


def _w4_processes(system, p):
    """Client processes (bench.client_proc) connect on their own, warm up, then start together."""
    try:
        config = system.client_config()
    except NotApplicable:
        return None
    argv = [sys.executable, "-m", "bench.client_proc", system.name, json.dumps(config),
            str(p.w1_warmup), str(p.w4_seconds)]
    reports = _client_processes(system, argv, p.w4_processes, "w4")
    return sum(r["runs"] / r["elapsed_s"] for r in reports)


def measure_w8(system, p):
    """Serving: 64 clients (threads in 4 processes) each run the MLP forward pass on one row, against a
    server without dynamic batching, then (where the system has it) one with: runs/s, p50 and p99."""
    if not system.has_server:
        raise NotApplicable("in-process: no server for clients to share")
    figures = {}
    for batching, prefix in ((False, "w8"), (True, "w8_batched")):
        try:
            config = system.w8_config(batching)
        except NotApplicable:
            continue
        argv = [sys.executable, "-m", "bench.w8_client", system.name, json.dumps(config), str(p.w8_threads),
                str(p.w8_warmup), str(p.w8_seconds)]
        reports = _client_processes(system, argv, p.w8_processes, f"w8-{prefix}")
        samples = [s for r in reports for s in r["latencies_s"]]
        figures.update({f"{prefix}_runs_per_s": sum(r["runs"] / r["elapsed_s"] for r in reports),
                        f"{prefix}_p50_s": percentile(samples, 50), f"{prefix}_p99_s": percentile(samples, 99)})
    return figures


def _client_processes(system, argv, count, what):
    """Start `count` client processes of `argv`, wait until each prints "ready", start them together,
    and return their JSON reports."""
    logs = [open(os.path.join(procs.log_dir(), f"{what}-client-{system.name}-{os.getpid()}-{i}.log"), "w+")
            for i in range(count)]
    clients = [subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
               for log in logs]
    try:
        for client, log in zip(clients, logs):
            _wait_for_line(client, log, "ready")
        for client in clients:
            client.stdin.write("go\n")
            client.stdin.flush()
        reports = [json.loads(_wait_for_line(client, log, "{")) for client, log in zip(clients, logs)]
        for client in clients:
            client.wait(timeout=30)
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
                client.wait()
        for log in logs:
            log.close()
    return reports


def _wait_for_line(client, log, prefix):
    """The first stdout line of `client` that starts with `prefix` (libraries may print first)."""
    for line in client.stdout:
        if line.startswith(prefix):
            return line
    code = client.wait()
    log.seek(0)
    raise RuntimeError(f"client process exited with code {code} before printing {prefix!r}; "
                       f"{log.name}: {log.read()[-400:].strip()}")


def fresh_chain_constant():
    """0.001 nudged by a random amount: a chain graph that no cache (disk, Redis) holds yet."""
    return graphs.CHAIN_ADD * (1.0 + int(np.random.default_rng().integers(1, 10_000)) * 1e-5)


def measure_w5(system, p):
    """The 1000-op chain: first run (graph transfer + compile) and median cached run."""
    first_add = fresh_chain_constant()
    start = now()
    run = system.build_w5(first_add)
    build = now() - start
    x = graphs.w5_input()
    first, y = timed(run, x)
    check_close(system, y, graphs.chain_reference(x, first_add), "W5", CHAIN_TOLERANCE, CHAIN_TOLERANCE)
    samples = [timed(run, x)[0] for _ in range(p.w5_cached_runs)]
    return {"w5_first_s": first, "w5_cached_s": statistics.median(samples), "w5_build_s": build}


def measure_w6(system, p):
    """A new chain graph: cold compile on replica A, then first run on replica B."""
    first_add = fresh_chain_constant()
    run_a, run_b = system.build_w6(first_add)
    x = graphs.w5_input()
    cold, _ = timed(run_a, x)
    replica_first, y = timed(run_b, x)
    check_close(system, y, graphs.chain_reference(x, first_add), "W6", CHAIN_TOLERANCE, CHAIN_TOLERANCE)
    return {"w6_cold_compile_s": cold, "w6_replica_first_s": replica_first,
            "w6_ratio": replica_first / cold}


def measure_w7(system, p):
    """`p.w7_runs` runs of W1's graph over one streaming call: runs/s."""
    stream = system.build_w7()
    a, b = graphs.w1_inputs()
    for result in stream(a, b, 10):
        check_close(system, result, a + b, "W7")
    start = now()
    count = sum(1 for _ in stream(a, b, p.w7_runs))
    elapsed = now() - start
    if count != p.w7_runs:
        raise AssertionError(f"W7: {count} results for {p.w7_runs} runs")
    return {"w7_runs_per_s": count / elapsed}


# W10's first loss is float32 arithmetic over ~20 layers of sums compared with float64 numpy.
CNN_TOLERANCE = 1e-4


def measure_w10(system, p):
    """The MNIST CNN, one Adam step per call on fed random batches: steps/s. The loss before any step,
    with dropout off, is checked against numpy first."""
    step, first_loss = system.build_w10()
    batches = graphs.cnn_batches()
    check_close(system, first_loss(*batches[0]), graphs.cnn_reference_loss(*batches[0]), "W10 first loss",
                CNN_TOLERANCE, CNN_TOLERANCE)
    losses = [step(*batches[i % len(batches)]) for i in range(p.w10_warmup)]
    samples = []
    start = now()
    for i in range(p.w10_steps):
        t0 = now()
        losses.append(step(*batches[i % len(batches)]))
        samples.append(now() - t0)
    total = now() - start
    if not np.isfinite(losses).all():
        raise AssertionError(f"W10: loss not finite: {losses[-3:]}")
    return {"w10_steps_per_s": p.w10_steps / total, "w10_step_p50_s": percentile(samples, 50),
            "w10_first_loss": float(losses[0]), "w10_last_loss": float(losses[-1])}


W9_BLOCKS = 8  # per deployment, alternating which goes first


def measure_w9(system, p):
    """W1 and W3 on the Redis deployment and on embedded `serve`, in alternating blocks from this one
    client process, so that both see the same minutes of a shared machine (figures taken from separate
    systems' children, minutes apart, swung 1.0x-1.7x on W1 with nothing changed). W1: p50 of each
    deployment's runs; W3: steps/s over each deployment's blocks. Both get 2x W1's runs and W3's steps."""
    if not hasattr(system, "w9_deployments"):
        raise NotApplicable("W9 runs on graphexec_redis, which starts an embedded serve beside it")
    deployments = system.w9_deployments()
    a, b = graphs.w1_inputs()
    runs = {name: d.build_w1() for name, d in deployments.items()}
    steps = {name: d.build_w3() for name, d in deployments.items()}
    batches = graphs.mlp_batches()
    for name in deployments:
        check_close(deployments[name], runs[name](a, b), a + b, f"W9 W1 ({name})")
        for i in range(p.w3_warmup):
            steps[name](*batches[i % len(batches)])
        for _ in range(p.w1_warmup):
            runs[name](a, b)
    latencies = {name: [] for name in deployments}
    step_time = dict.fromkeys(deployments, 0.0)
    per_block_runs, per_block_steps = max(1, 2 * p.w1_runs // W9_BLOCKS), max(1, 2 * p.w3_steps // W9_BLOCKS)

    def w1_block(name):
        for _ in range(per_block_runs):
            t0 = now()
            runs[name](a, b)
            latencies[name].append(now() - t0)

    def w3_block(name):
        t0 = now()
        for i in range(per_block_steps):
            steps[name](*batches[i % len(batches)])
        step_time[name] += now() - t0

    names = list(deployments)
    for block in (w1_block, w3_block):
        for turn in range(W9_BLOCKS):
            for name in names if turn % 2 == 0 else names[::-1]:
                block(name)
    figures = {}
    for name in deployments:
        figures[f"w9_w1_{name}_p50_s"] = percentile(latencies[name], 50)
        figures[f"w9_w3_{name}_steps_per_s"] = W9_BLOCKS * per_block_steps / step_time[name]
    return figures


MEASURES = {"W1": measure_w1, "W2": measure_w2, "W3": measure_w3, "W4": measure_w4,
            "W5": measure_w5, "W6": measure_w6, "W7": measure_w7, "W8": measure_w8, "W9": measure_w9,
            "W10": measure_w10}
