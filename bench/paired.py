"""W3 and W10 for graphexec and TF-grpc in alternating blocks, so that both see the same minutes.

A round measures each system in a child of its own, one after the other: graphexec's W3 and TF-grpc's
come minutes apart, from 200 steps each (~0.3 and ~0.5 s), and a shared machine's minutes differ (the same
code measured W3 at 1.21x and 1.54x TF-grpc in two full runs an hour apart, with each round's ratio
between 1.2 and 2.0). Here each system's client runs in a child of its own (a private network namespace
where bench.run has one, as there), which starts the system, builds the workload and warms it up, then
runs a block of steps each time the parent asks; the parent asks the two in turn, the first of each pair
alternating, and reports each system's steps over its blocks' time. W9 compares its two deployments the
same way (workloads.measure_w9).

    python -m bench.paired SYSTEM WORKLOAD [--quick] [--isolated]   (the child; bench.run starts it)

The child prints "ready" once warm, then answers each "run N" line with the seconds N steps took, and
stops at "stop" or end of input.
"""

import argparse
import os
import select
import subprocess
import sys
import time

from bench import graphs, procs, workloads
from bench.systems import SYSTEMS as ALL_SYSTEMS
from bench.systems import load

SYSTEMS = ("graphexec", "tf_grpc")
WORKLOADS = ("W3", "W10")
BLOCKS = {"full": 8, "quick": 4}  # per system
STEPS_PER_BLOCK = {"full": {"W3": 200, "W10": 8}, "quick": {"W3": 50, "W10": 3}}
READY_TIMEOUT_S = 240  # starting a system and warming its workload up
BLOCK_TIMEOUT_S = 120
STOP_TIMEOUT_S = 10  # to close its system; then its process group is killed


def figure_key(workload: str) -> str:
    """The report's key for a workload's paired steps/s: "w3p_steps_per_s" (its workload is "W3P")."""
    return f"{workload.lower()}p_steps_per_s"


def steps_per_block(workload: str, quick: bool) -> int:
    """Each system's steps a block: W3 1,600 and W10 64 in all (a round measures 200 and 30)."""
    return STEPS_PER_BLOCK["quick" if quick else "full"][workload]


def _step_function(system, workload: str):
    """step(i): the workload's i-th step, on the batches workloads.measure_w3 and measure_w10 feed."""
    if workload == "W3":
        step, batches = system.build_w3(), graphs.mlp_batches()
    else:
        (step, _), batches = system.build_w10(), graphs.cnn_batches()
    return lambda i: step(*batches[i % len(batches)])


def child(system_name: str, workload: str, quick: bool) -> None:
    # The parent reads this process's standard output: keep it for the answers, and send whatever else
    # writes there (a library's messages) to standard error.
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    params = workloads.QUICK if quick else workloads.FULL
    system = load(system_name)()
    try:
        system.start()
        step = _step_function(system, workload)
        for i in range(params.w3_warmup if workload == "W3" else params.w10_warmup):
            step(i)
        print("ready", file=answers, flush=True)
        done = 0
        for line in sys.stdin:
            command = line.split()
            if command[:1] != ["run"]:
                break
            started = time.perf_counter()
            for _ in range(int(command[1])):
                step(done)
                done += 1
            print(f"{time.perf_counter() - started:.9f}", file=answers, flush=True)
    finally:
        system.close()


class _Child:
    """One system's paired child, started with `prefix` (bench.run's network namespace) before its argv."""

    def __init__(self, system: str, workload: str, quick: bool, prefix: list, isolated: bool, log_dir: str):
        argv = [sys.executable, "-m", "bench.paired", system, workload, *(["--quick"] if quick else [])]
        argv = [*prefix, *argv, *(["--isolated"] if isolated else [])]
        self.name = system
        self.log_path = os.path.join(log_dir, f"paired-{workload}-{system}.log")
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                            env=procs.child_env(log_dir), text=True, start_new_session=True)

    def read(self, timeout_s: float) -> str:
        ready, _, _ = select.select([self.process.stdout], [], [], timeout_s)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"{self.name}'s paired child {'exited' if ready else 'timed out'}; "
                               f"log {self.log_path}")
        return line.strip()

    def block(self, steps: int) -> float:
        self.process.stdin.write(f"run {steps}\n")
        self.process.stdin.flush()
        return float(self.read(BLOCK_TIMEOUT_S))

    def stop(self) -> None:
        try:
            self.process.stdin.write("stop\n")
            self.process.stdin.close()
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired):
            pass
        procs.kill_group(self.process)  # the servers its system started go too


def measure(workload: str, quick: bool, prefix: list, isolated: bool, log_dir: str, systems=SYSTEMS) -> dict:
    """{system: {"status": "ok", "figures": {figure_key: steps/s}, "blocks_s": [...]}} for `systems`, or
    their errors."""
    steps = steps_per_block(workload, quick)
    children = []
    try:
        for system in systems:
            children.append(_Child(system, workload, quick, prefix, isolated, log_dir))
        for each in children:
            if each.read(READY_TIMEOUT_S) != "ready":
                raise RuntimeError(f"{each.name}'s paired child said something else than ready; log {each.log_path}")
        times = {each.name: [] for each in children}
        for turn in range(BLOCKS["quick" if quick else "full"]):
            for each in children if turn % 2 == 0 else children[::-1]:
                times[each.name].append(each.block(steps))
    except RuntimeError as error:
        return {system: {"status": "error", "reason": str(error)} for system in systems}
    finally:
        for each in children:
            each.stop()
    return {system: {"status": "ok", "figures": {figure_key(workload): steps * len(blocks) / sum(blocks)},
                     "blocks_s": blocks} for system, blocks in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system", choices=sorted(ALL_SYSTEMS))
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--isolated", action="store_true",
                        help="refuse to run unless the only network interface is loopback")
    args = parser.parse_args()
    if args.isolated and not procs.only_loopback():
        sys.exit("bench.paired --isolated: this network namespace has more than loopback")
    child(args.system, args.workload, args.quick)


if __name__ == "__main__":
    main()
