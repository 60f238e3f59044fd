"""Run every requested workload against one system in this process and write JSON.

`python -m bench.child SYSTEM --out FILE [--quick] [--workloads W1,W2] [--isolated]`

bench.run starts one of these per system (inside `unshare --net` when it can; `--isolated`
then makes sure only loopback is present). The JSON is
{"system": name, "workloads": {"W1": {"status": "ok", "figures": {...}}, "W7": {"status": "-",
"reason": ...}, ...}} with status "ok", "-" (not applicable), "n/a" (unavailable) or "error".
"""

import argparse
import json
import sys
import time
import traceback

from bench import procs, workloads
from bench.systems import NotApplicable, Unavailable, load


def run_workload(system, workload, params):
    start = time.perf_counter()
    try:
        figures = workloads.MEASURES[workload](system, params)
    except NotApplicable as reason:
        return {"status": "-", "reason": str(reason)}
    except Unavailable as reason:
        return {"status": "n/a", "reason": str(reason)}
    except Exception as error:  # recorded in the results and the table, traceback on stderr
        traceback.print_exc()
        return {"status": "error", "reason": f"{type(error).__name__}: {error}"}
    return {"status": "ok", "figures": figures, "wall_s": time.perf_counter() - start}


def run_system(name, workload_ids, params, log=print):
    system = load(name)()
    results = {}
    try:
        system.start()
        for workload in workload_ids:
            results[workload] = run_workload(system, workload, params)
            log(f"[{name}] {workload}: {summary(results[workload])}")
    except Unavailable as reason:
        results = {w: {"status": "n/a", "reason": str(reason)} for w in workload_ids}
        log(f"[{name}] n/a: {reason}")
    except procs.ServerStartError as error:
        results = {w: {"status": "error", "reason": str(error)} for w in workload_ids}
        log(f"[{name}] error: {error}")
    finally:
        system.close()
    return {"system": name, "workloads": results}


def summary(result):
    if result["status"] != "ok":
        return f"{result['status']}: {result['reason']}"
    return ", ".join(f"{key}={value:.4g}" for key, value in result["figures"].items()
                     if isinstance(value, float))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system")
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workloads", default=",".join(workloads.MEASURES))
    parser.add_argument("--isolated", action="store_true",
                        help="refuse to run unless the only network interface is loopback")
    args = parser.parse_args()
    if args.isolated and not procs.only_loopback():
        sys.exit("bench.child --isolated: this network namespace has more than loopback")
    params = workloads.QUICK if args.quick else workloads.FULL
    result = run_system(args.system, args.workloads.split(","), params,
                        log=lambda line: print(line, file=sys.stderr, flush=True))
    with open(args.out, "w") as out:
        json.dump(result, out, indent=1)


if __name__ == "__main__":
    main()
