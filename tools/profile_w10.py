"""W10 op by op, in process: graphexec's traced steps, or TensorFlow's with a chosen inter-op thread count.

    PYTHONPATH=$PWD python tools/profile_w10.py graphexec --steps 12
    PYTHONPATH=$PWD python tools/profile_w10.py graphexec --target grpc://127.0.0.1:PORT   # through a server
    TF_USE_LEGACY_KERAS=1 PYTHONPATH=$PWD python tools/profile_w10.py tf --inter-op 1   # one op at a time
    TF_USE_LEGACY_KERAS=1 PYTHONPATH=$PWD python tools/profile_w10.py tf --inter-op 2

Prints the untraced step (p50, min), the traced step, the sum of the ops' median times and the largest
ops; with `--target`, of the same steps through a running `graphexec serve` (the server's kernel times,
to set beside the in-process ones). An op sum above the step means ops ran at once; TensorFlow with
`--inter-op 1` gives its kernels' own times to set beside graphexec's (bench/README, the Zen 5 section of
2 Dec at night). Run graphexec with the bench's environment (OpenBLAS variables unset, torch installed)
and nothing else busy.
"""
from __future__ import annotations

import argparse
import collections
import os
import statistics
import time

from bench import graphs


def _session(system: str, inter_op: int, target: str = ""):
    if system == "graphexec":
        import graphexec as api
        return api, lambda: api.Session(target)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow
    api = tensorflow.compat.v1
    api.disable_v2_behavior()
    config = api.ConfigProto(inter_op_parallelism_threads=inter_op) if inter_op else None
    return api, lambda: api.Session(config=config)


def _op_times(system: str, metadata) -> list[tuple[str, str, float]]:
    """(node, op, microseconds) of every op a traced step ran."""
    if system == "graphexec":
        return [(s.node_name, s.op, s.duration_micros) for s in metadata.step_stats.node_stats]
    return [(s.node_name, s.timeline_label.split("=")[-1].split("(")[0].strip(), s.all_end_rel_micros)
            for device in metadata.step_stats.dev_stats for s in device.node_stats]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("system", choices=("graphexec", "tf"))
    parser.add_argument("--steps", type=int, default=12, help="untraced and traced steps each (default 12)")
    parser.add_argument("--inter-op", type=int, default=0, help="TensorFlow's inter-op threads (0: its default)")
    parser.add_argument("--top", type=int, default=20, help="ops listed (default 20)")
    parser.add_argument("--target", default="", help="graphexec only: a server's grpc:// address (default: in process)")
    args = parser.parse_args()

    if args.target and args.system != "graphexec":
        parser.error("--target is for graphexec")
    api, new_session = _session(args.system, args.inter_op, args.target)
    images, labels, _, train, loss, init = graphs.cnn_graph(api)
    batches = graphs.cnn_batches()
    session = new_session()
    session.run(init)

    def step(i, **kwargs):
        x, y = batches[i % len(batches)]
        started = time.perf_counter()
        session.run([train, loss], {images: x, labels: y}, **kwargs)
        return time.perf_counter() - started

    for i in range(5):  # warm-up
        step(i)
    plain = [step(i) for i in range(args.steps)]
    per_op, traced = collections.defaultdict(list), []
    for i in range(args.steps):
        metadata = api.RunMetadata()
        traced.append(step(i, options=api.RunOptions(trace_level=api.RunOptions.FULL_TRACE), run_metadata=metadata))
        for node, op, micros in _op_times(args.system, metadata):
            per_op[(node, op)].append(micros)
    medians = sorted(((statistics.median(times), key) for key, times in per_op.items()), reverse=True)
    print(f"untraced step: p50 {1e3 * statistics.median(plain):.2f} ms, min {1e3 * min(plain):.2f} ms")
    print(f"traced step: p50 {1e3 * statistics.median(traced):.2f} ms; "
          f"ops' medians sum to {sum(m for m, _ in medians) / 1e3:.2f} ms")
    for micros, (node, op) in medians[:args.top]:
        print(f"{micros / 1e3:8.2f} ms  {op:32s} {node}")


if __name__ == "__main__":
    main()
