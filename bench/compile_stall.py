"""Other tenants' run latency while one tenant's large graph is decoded and compiled.

    python -m bench.compile_stall [--nodes 100000] [--rounds 3]

For each round and each setting (`--compile-processes 0`: in the server's own threads, as before;
`2`: in compile processes, the default), in alternating order: a fresh `graphexec serve`, one client
thread running a small graph back to back, and one client process that builds a chain graph of
`--nodes` nodes and then runs it once (upload, decode, compile, run). Prints the small runs' latency
(median, 99th percentile, longest) and their rate in the 3 s before the large run and during it.
The median alone hides the stall: runs are sampled back to back, so the many quick ones while the
large client serializes its graph outnumber the few that wait seconds for the GIL while the server
decodes and compiles it; the longest run and the rate show it. Compare figures of the same round;
absolute figures drift with the load.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time

import graphexec as tf
from bench.procs import ServerProcess

_LARGE = """
import sys, numpy as np, graphexec as tf
target, nodes = sys.argv[1], int(sys.argv[2])
x = tf.placeholder(tf.float32, [4], name="x")
y = x
for _ in range(nodes // 3):  # three nodes each: a constant, Mul, Add
    y = y * 1.0001 + x
print("built", flush=True)
sys.stdin.readline()
with tf.Session(target) as sess:
    sess.run(y, {x: np.ones(4, np.float32)})
print("done", flush=True)
"""


def _small_runs(target: str, stop: threading.Event, out: list) -> None:
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [3])
        y = tf.reduce_sum(x * 2.0)
        with tf.Session(target) as sess:
            sess.run(y, {x: [1.0, 2.0, 3.0]})
            while not stop.is_set():
                started = time.monotonic()
                sess.run(y, {x: [1.0, 2.0, 3.0]})
                out.append((started, time.monotonic() - started))


def measure(processes: int, nodes: int) -> dict:
    """Small runs' latency figures (seconds) before and during the large run, and its seconds."""
    server = ServerProcess("serve", [sys.executable, "-m", "graphexec", "serve", "--port", "0", "--compile-processes",
                                     str(processes), "--max-graph-nodes", str(nodes + 10)],
                           ready=r"serving on (grpc://\S+)")
    try:
        target = server.match.group(1)
        large = subprocess.Popen([sys.executable, "-c", _LARGE, target, str(nodes)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        assert large.stdout.readline().strip() == "built"
        latencies, stop = [], threading.Event()
        runner = threading.Thread(target=_small_runs, args=(target, stop, latencies))
        runner.start()
        time.sleep(4.0)
        go = time.monotonic()
        large.stdin.write("go\n")
        large.stdin.flush()
        assert large.stdout.readline().strip() == "done"
        done = time.monotonic()
        stop.set()
        runner.join()
        large.wait()
        out = {"large_s": done - go}
        for name, start, end in (("before", go - 3.0, go), ("during", go, done)):
            window = sorted(lat for at, lat in latencies if start <= at < end)
            out[name] = (window[len(window) // 2], window[int(len(window) * 0.99)], window[-1],
                         len(window) / (end - start))
        return out
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print("small runs: p50 / p99 / longest in ms, and runs per second; before, then during the large run")
    for round_ in range(args.rounds):
        for processes in ((0, 2) if round_ % 2 == 0 else (2, 0)):
            figures = measure(processes, args.nodes)
            cells = [f"{p50 * 1e3:.2f} / {p99 * 1e3:.1f} / {longest * 1e3:.0f} ms, {rate:.0f}/s"
                     for p50, p99, longest, rate in (figures["before"], figures["during"])]
            print(f"round {round_} --compile-processes {processes}: before {cells[0]}; during {cells[1]}; "
                  f"large run {figures['large_s']:.1f} s", flush=True)


if __name__ == "__main__":
    main()
