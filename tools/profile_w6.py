"""W6 broken down: cold compile on replica A, then the first run on replica B, and each RPC's time.

Starts the bench's `graphexec_redis` system (redis-server, one worker, two `serve --redis` replicas),
then for each round builds a fresh chain graph (bench.workloads.fresh_chain_constant) and times the
first run through each replica, replica B's RPCs by method (as the client sees them), and the
client's own time between them:

    PYTHONPATH=$PWD python tools/profile_w6.py --fresh --rounds 8   # as bench.run: replica B served nothing
    PYTHONPATH=$PWD python tools/profile_w6.py --rounds 20          # one system, after a warm-up round

Prints one `round name=ms ...` line per round (to compare two checkouts, alternating), then medians.
The machine is shared: compare checkouts only within one session, alternating, over several rounds.
"""
from __future__ import annotations

import argparse
import collections
import statistics
import time

from bench import graphs
from bench.systems.graphexec_sys import GraphexecRedis
from bench.workloads import fresh_chain_constant
from graphexec.client.connection import Connection


def timed_calls(log: list):
    """Wrap Connection.call so each unary call appends (method, seconds) to `log`."""
    plain = Connection.call

    def call(self, method, data, timeout=None, retry=True):
        started = time.perf_counter()
        try:
            return plain(self, method, data, timeout, retry)
        finally:
            log.append((method, time.perf_counter() - started))

    Connection.call = call


def one_round(system, log: list) -> dict:
    first_add = fresh_chain_constant()
    del log[:]
    run_a, run_b = system.build_w6(first_add)
    creates = [seconds for method, seconds in log if method == "CreateSession"]  # replica A's, then B's
    x = graphs.w5_input()
    started = time.perf_counter()
    run_a(x)
    cold = time.perf_counter() - started
    del log[:]
    started = time.perf_counter()
    run_b(x)
    replica = time.perf_counter() - started
    figures = {"cold": cold, "replica_b": replica}
    for method, seconds in log:
        figures[method] = figures.get(method, 0.0) + seconds
    figures["client (rest)"] = replica - sum(seconds for _, seconds in log)
    figures["B CreateSession"] = creates[-1]  # outside W6's timing
    figures["B session+run"] = creates[-1] + replica
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--fresh", action="store_true",
                        help="a new system per round, as `bench.run --quick --workloads W6` (replica B has served "
                             "nothing before); else one system, warmed up by a first round")
    args = parser.parse_args()
    log = []
    timed_calls(log)
    rounds = []
    for _ in range(args.rounds if args.fresh else 1):
        system = GraphexecRedis()
        system.start()
        try:
            if args.fresh:
                rounds.append(one_round(system, log))
            else:
                one_round(system, log)  # warm-up: imports, connections, the worker's first plan
                rounds += [one_round(system, log) for _ in range(args.rounds)]
        finally:
            system.close()
    columns = collections.defaultdict(list)
    for figures in rounds:
        for name, value in figures.items():
            columns[name].append(value)
    ratios = [r["replica_b"] / r["cold"] for r in rounds]
    for figures in rounds:  # one line per round (ms), for scripts that compare runs
        print("round", " ".join(f"{name.replace(' ', '_')}={value * 1e3:.3f}" for name, value in figures.items()))
    for name, values in columns.items():
        print(f"{name:>16}: median {statistics.median(values) * 1e3:7.2f} ms  "
              f"(min {min(values) * 1e3:6.2f}, max {max(values) * 1e3:6.2f})")
    print(f"{'ratio':>16}: median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}) "
          f"over {len(rounds)} rounds")


if __name__ == "__main__":
    main()
