"""Run every workload against every system, back to back, and print one table.

    python -m bench.run [--quick] [--busy] [--systems graphexec tf_grpc ...] [--workloads W1,W2]
                        [--rounds N] [--out bench/results]

Each system runs in its own child process (bench.child), inside a private network namespace
with only loopback (`unshare --net`, needs root) when possible; TF's gRPC server refuses to
run without one. A full run does 3 rounds (alternating the system order) and reports each
figure's median. With graphexec and TF-grpc both in the run, their W3 and W10 then run once more in
alternating blocks (bench.paired), so that the two are measured in the same minutes. Writes
OUT/latest.json and OUT/latest.md.

`--busy`: the same run with one CPU-bound neighbour process (a pure-Python spin loop) running the
whole time, as on a shared machine; written to OUT/latest-busy.json and .md, so a quiet run's
results stay.
"""

import argparse
import contextlib
import datetime
import importlib.metadata
import itertools
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import threadpoolctl

from bench import paired, procs, report, workloads
from bench.systems import SYSTEMS

ORDER = ["graphexec", "graphexec_grpc", "tf_grpc", "grpc_echo", "tf_inprocess", "graphexec_inprocess", "numpy", "graphexec_redis"]
TIMEOUT_S = {"quick": 100, "full": 480}  # per system; a hung system is killed and shown as error
NEIGHBOUR = "while True: pass"  # --busy: a pure-Python spin loop holds one core
NETNS_PREFIX = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]


def netns_available() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run([*NETNS_PREFIX, "true"], capture_output=True)
    return probe.returncode == 0


def run_child(system, args, netns, log_dir):
    """Run bench.child for one system; its results, or every workload marked as an error."""
    out = os.path.join(log_dir, f"{system}.json")
    argv = [sys.executable, "-m", "bench.child", system, "--out", out, "--workloads", args.workloads]
    argv += ["--quick"] if args.quick else []
    if netns:
        argv = [*NETNS_PREFIX, *argv, "--isolated"]
    timeout = args.timeout or TIMEOUT_S["quick" if args.quick else "full"]
    child = subprocess.Popen(argv, env=procs.child_env(log_dir), start_new_session=True)
    try:
        code = child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        procs.kill_group(child)
        return failed(system, args, f"killed after {timeout} s (timeout)")
    except BaseException:  # interrupted or terminated: the child's servers must not outlive the bench
        procs.kill_group(child)
        raise
    if code != 0 or not os.path.exists(out):
        return failed(system, args, f"bench.child exited with code {code}")
    with open(out) as f:
        return json.load(f)


def run_paired(args, netns, log_dir):
    """{workload: {system: result}} of bench.paired's alternating blocks, for the workloads it pairs
    that this run has, when it has both of its systems."""
    if not set(paired.SYSTEMS) <= set(args.systems):
        return {}
    pairs = {}
    for workload in paired.WORKLOADS:
        if workload in args.workloads.split(","):
            print(f"bench: {workload} in alternating blocks: {' '.join(paired.SYSTEMS)}", file=sys.stderr, flush=True)
            pairs[workload] = paired.measure(workload, args.quick, NETNS_PREFIX if netns else [], netns, log_dir)
    return pairs


def _terminated(signum, frame):
    """SIGTERM ends the bench as Ctrl-C does, through the `finally`s that stop its processes."""
    raise SystemExit(128 + signum)


def failed(system, args, reason):
    return {"system": system, "workloads": {w: {"status": "error", "reason": reason}
                                            for w in args.workloads.split(",")}}


def versions():
    found = {}
    for package in ("numpy", "grpcio", "protobuf", "tensorflow-cpu", "graphexec"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs; under 3 minutes")
    parser.add_argument("--systems", nargs="+", default=ORDER, metavar="SYSTEM",
                        help=f"any of {', '.join(SYSTEMS)} (space or comma separated)")
    parser.add_argument("--workloads", default=",".join(workloads.MEASURES), help="e.g. W1,W2")
    parser.add_argument("--out", default="bench/results", help="directory for latest.json/.md")
    parser.add_argument("--timeout", type=float, help="seconds per system before it is killed")
    parser.add_argument("--busy", action="store_true",
                        help="run with one CPU-bound neighbour process the whole time; writes latest-busy.*")
    parser.add_argument("--rounds", type=int,
                        help="run everything this many times and report medians (default: quick 1, full 3)")
    args = parser.parse_args()
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.systems = [s for item in args.systems for s in item.split(",") if s]
    unknown = [s for s in args.systems if s not in SYSTEMS]
    if unknown:
        parser.error(f"unknown systems {unknown}; choose from {list(SYSTEMS)}")
    return args


def main():
    args = parse_args()
    signal.signal(signal.SIGTERM, _terminated)
    started = time.time()
    netns = netns_available()
    log_dir = tempfile.mkdtemp(prefix="bench-")
    print(f"bench: {'quick' if args.quick else 'full'} run, systems {' '.join(args.systems)}; "
          f"private network namespace: {'yes' if netns else 'no (not root?)'}; logs in {log_dir}",
          file=sys.stderr, flush=True)
    neighbour = subprocess.Popen([sys.executable, "-c", NEIGHBOUR]) if args.busy else None
    rounds = []
    try:
        for number in range(args.rounds):
            # Every other round runs the systems in reverse, so slow drift hits all of them alike.
            order = args.systems if number % 2 == 0 else args.systems[::-1]
            print(f"bench: round {number + 1}/{args.rounds}: {' '.join(order)}", file=sys.stderr, flush=True)
            rounds.append({system: run_child(system, args, netns, log_dir) for system in order})
        pairs = run_paired(args, netns, log_dir)
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    results = report.merge_rounds([{s: r[s] for s in args.systems} for r in rounds])
    for workload, entries in pairs.items():
        for system, entry in entries.items():
            results[system]["workloads"][f"{workload}P"] = entry

    header, rows, notes = report.build_table(results)
    table = report.markdown(header, rows, notes)
    meta = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "mode": "quick" if args.quick else "full",
        "busy": args.busy,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "cpu": cpu_and_blas(),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "versions": versions(),
        "private_netns": netns,
        "duration_s": round(time.time() - started, 1),
        "params": (workloads.QUICK if args.quick else workloads.FULL).__dict__,
    }
    busy = ", BUSY: one CPU-bound neighbour process throughout" if args.busy else ""
    heading = (f"{meta['date_utc']}, {meta['mode']} run ({args.rounds} round{'s' * (args.rounds > 1)}, "
               f"medians), {meta['cpus']} CPUs ({meta['cpu']}){busy}, took {meta['duration_s']:.0f} s")
    print(f"\n{heading}\n{table}")
    os.makedirs(args.out, exist_ok=True)
    name = "latest-busy" if args.busy else "latest"
    with open(os.path.join(args.out, f"{name}.json"), "w") as f:
        json.dump({"meta": meta, "results": results, "rounds": rounds, "paired": pairs, "table": table}, f, indent=1)
    with open(os.path.join(args.out, f"{name}.md"), "w") as f:
        f.write(f"# Benchmark results\n\n{heading}\n\n{table}\n")


def cpu_and_blas() -> str:
    """The CPU and the kernels numpy's OpenBLAS runs on it, which the servers inherit: they decide the
    matrix products of W3 and W10 (an OPENBLAS_CORETYPE in the environment picks them)."""
    fields = {}
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in itertools.takewhile(str.strip, info):
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    vector = "AVX-512" if "avx512f" in fields.get("flags", "").split() else "no AVX-512"
    cpu = (f"{fields.get('model name', platform.processor() or 'unknown CPU')} family {fields.get('cpu family', '?')} "
           f"model {fields.get('model', '?')}, {vector}")
    kernels = [info.get("architecture") for info in threadpoolctl.threadpool_info() if info.get("user_api") == "blas"]
    return f"{cpu}; BLAS kernels: {', '.join(map(str, kernels)) or 'unknown'}"


if __name__ == "__main__":
    main()
