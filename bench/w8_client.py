"""One W8 client process: `python -m bench.w8_client SYSTEM CONFIG_JSON THREADS WARMUP SECONDS`.

Connects with `System.connect(config)`; each of THREADS threads opens its own session (`build_w8`),
checks its first answer against numpy, warms up, then the process prints "ready" and waits for a
line on stdin so all clients start together. Each thread then runs the MLP forward pass on its own
float32[1, 784] row for SECONDS; the process prints {"runs": n, "elapsed_s": t, "latencies_s": [...]}.
"""

import json
import sys
import threading
import time

import numpy as np

from bench import graphs
from bench.systems import load


def main():
    name, config = sys.argv[1], json.loads(sys.argv[2])
    threads, warmup, seconds = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    system = load(name).connect(config)
    rows = graphs.w8_rows()
    ready, go = threading.Barrier(threads + 1), threading.Event()
    window, latencies, failures = [0.0, 0.0], [[] for _ in range(threads)], []

    def client(index):
        try:
            run = system.build_w8()
            x = rows[index % len(rows)]
            got = run(x)
            if not np.allclose(got, graphs.mlp_forward_reference(x), rtol=1e-4, atol=1e-6):
                raise AssertionError(f"W8: wrong answer {np.ravel(got)[:3]}")
            for _ in range(warmup):
                run(x)
        except Exception as error:  # reported by the parent with this process's log
            failures.append(f"{type(error).__name__}: {error}")
            raise
        finally:
            ready.wait()
        go.wait()
        mine = latencies[index]
        while True:
            t0 = time.perf_counter()
            if t0 >= window[1]:
                return
            run(x)
            mine.append(time.perf_counter() - t0)

    workers = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    ready.wait()
    if failures:
        sys.exit(f"W8 client failed: {failures[0]}")
    print("ready", flush=True)
    sys.stdin.readline()
    window[0] = time.perf_counter()
    window[1] = window[0] + seconds
    go.set()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - window[0]
    samples = [round(s, 7) for mine in latencies for s in mine]
    print(json.dumps({"runs": len(samples), "elapsed_s": elapsed, "latencies_s": samples}), flush=True)
    system.close()


if __name__ == "__main__":
    main()
