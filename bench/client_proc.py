"""One W4 client process: `python -m bench.client_proc SYSTEM CONFIG_JSON WARMUP SECONDS`.

Connects with `System.connect(config)`, builds W1 and warms up, prints "ready", waits for a
line on stdin so all clients start together, runs W1 for SECONDS and prints
{"runs": n, "elapsed_s": t} as JSON.
"""

import json
import sys
import time

from bench import graphs
from bench.systems import load


def main():
    name, config, warmup, seconds = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    system = load(name).connect(config)
    try:
        run = system.build_w1()
        a, b = graphs.w1_inputs()
        for _ in range(warmup):
            run(a, b)
        print("ready", flush=True)
        sys.stdin.readline()
        runs = 0
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            run(a, b)
            runs += 1
        print(json.dumps({"runs": runs, "elapsed_s": time.perf_counter() - start}), flush=True)
    finally:
        system.close()


if __name__ == "__main__":
    main()
