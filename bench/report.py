"""Turn per-system results into one table: figures, graphexec's ratios and the issue's targets."""

import statistics
from dataclasses import dataclass

from bench.systems import label

GRAPHEXEC = "graphexec"  # the ratio columns compare this system ...
BASELINES = {"tf_grpc": "ge/TF-grpc", "grpc_echo": "ge/echo"}  # ... against these


@dataclass(frozen=True)
class Target:
    """`system`'s figure over a reference must be <= (lower is better) or >= `ratio`."""

    ratio: float
    lower_is_better: bool
    # a system name (`system`'s figure over its), "self" (then `self_key` applies), or "system"
    # (then `versus`'s figure, `self_key` or the row's, is the reference)
    reference: str
    self_key: str = ""
    system: str = GRAPHEXEC
    text: str = ""
    versus: str = ""  # reference "system": the system whose same figure is the reference

    def met(self, value):
        return value <= self.ratio if self.lower_is_better else value >= self.ratio

    def describe(self):
        sign = "<=" if self.lower_is_better else ">="
        where = self.text or {"tf_grpc": "TF-grpc", "grpc_echo": "echo"}.get(self.reference, self.reference)
        return f"{sign}{self.ratio:g}x {where}"


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    unit: str  # "time", "bytes_per_s" or "per_s"
    targets: tuple = ()


def lower(ratio, reference, **kw):
    return Target(ratio, True, reference, **kw)


def higher(ratio, reference, **kw):
    return Target(ratio, False, reference, **kw)


ROWS = (
    Row("w1_p50_s", "W1 a+b p50 latency", "time", (lower(0.6, "tf_grpc"), lower(1.2, "grpc_echo"))),
    Row("w1_p99_s", "W1 a+b p99 latency", "time"),
    Row("w1_runs_per_s", "W1 sequential runs/s", "per_s"),
    Row("w2_bytes_per_s", "W2 64 MiB x*2 throughput", "bytes_per_s", (higher(2.5, "tf_grpc"),)),
    Row("w3_steps_per_s", "W3 MLP train steps/s", "per_s", (higher(1.4, "tf_grpc"),)),
    Row("w3_step_p50_s", "W3 MLP p50 step", "time"),
    # W3 and W10 of graphexec and TF-grpc again, in alternating blocks (bench/paired.py)
    Row("w3p_steps_per_s", "W3 steps/s, alternating blocks", "per_s", (higher(1.4, "tf_grpc"),)),
    Row("w4_threads_runs_per_s", "W4 runs/s, 8 threads", "per_s", (higher(1.2, "tf_grpc"),)),
    Row("w4_processes_runs_per_s", "W4 runs/s, 4 processes", "per_s", (higher(1.2, "tf_grpc"),)),
    Row("w5_first_s", "W5 chain first run", "time", (lower(0.5, "tf_grpc"),)),
    Row("w5_cached_s", "W5 chain cached run", "time", (lower(0.6, "tf_grpc"),)),
    Row("w6_cold_compile_s", "W6 cold compile, replica A", "time"),
    Row("w6_replica_first_s", "W6 first run, replica B", "time",
        (lower(0.1, "self", self_key="w6_cold_compile_s", system="graphexec_redis", text="cold compile"),)),
    Row("w7_runs_per_s", "W7 streaming runs/s", "per_s",
        (higher(3, "self", self_key="w1_runs_per_s", text="own W1 runs/s"),)),
    Row("w8_runs_per_s", "W8 serving runs/s, 64 clients", "per_s"),
    Row("w8_p50_s", "W8 serving p50 latency", "time"),
    Row("w8_p99_s", "W8 serving p99 latency", "time"),
    Row("w8_batched_runs_per_s", "W8 runs/s, dynamic batching", "per_s",
        (higher(3, "self", self_key="w8_runs_per_s", text="unbatched"),)),
    Row("w8_batched_p50_s", "W8 p50, dynamic batching", "time"),
    Row("w8_batched_p99_s", "W8 p99, dynamic batching", "time",
        (lower(2, "self", self_key="w8_p99_s", text="unbatched p99"),)),
    # W9: the Redis deployment (serve --redis + 1 worker) against embedded serve, both measured by
    # graphexec_redis's child in alternating blocks (workloads.measure_w9)
    Row("w9_w1_embedded_p50_s", "W9 W1 p50, embedded", "time"),
    Row("w9_w1_redis_p50_s", "W9 W1 p50, redis", "time",
        (lower(1.3, "self", self_key="w9_w1_embedded_p50_s", system="graphexec_redis", text="embedded"),)),
    Row("w9_w3_redis_steps_per_s", "W9 W3 steps/s, redis", "per_s"),
    Row("w9_w3_embedded_steps_per_s", "W9 W3 steps/s, embedded", "per_s",
        (lower(1.3, "self", self_key="w9_w3_redis_steps_per_s", system="graphexec_redis", text="redis"),)),
    Row("w10_steps_per_s", "W10 CNN train steps/s", "per_s",
        (higher(1.0, "tf_grpc"),
         higher(0.8, "tf_inprocess", system="graphexec_inprocess", text="TF in-process (in-process)"))),
    Row("w10_step_p50_s", "W10 CNN p50 step", "time"),
    Row("w10p_steps_per_s", "W10 steps/s, alternating blocks", "per_s", (higher(1.0, "tf_grpc"),)),
)


def workload_of(key):
    """"W10" for "w10_steps_per_s"."""
    return key.split("_")[0].upper()


def format_value(value, unit):
    if unit == "time":
        for scale, suffix in ((1, "s"), (1e-3, "ms"), (1e-6, "us")):
            if value >= scale or suffix == "us":
                shown = value / scale
                return f"{shown:.3g} {suffix}" if shown < 100 else f"{shown:.0f} {suffix}"
    if unit == "bytes_per_s":
        return f"{value / 1e9:.2f} GB/s" if value >= 1e9 else f"{value / 1e6:.0f} MB/s"
    return f"{value:,.0f}/s" if value >= 100 else f"{value:.3g}/s"


def figure(results, system, key):
    """(value or None, cell text) of one figure."""
    workload = workload_of(key)
    entry = results.get(system, {}).get("workloads", {}).get(workload)
    if entry is None:
        return None, ""
    if entry["status"] != "ok":
        return None, entry["status"]
    value = entry["figures"].get(key)
    return value, "-" if value is None else None


def build_table(results):
    """(header, rows of cells, footnotes) for the systems in `results`, in their order."""
    systems = list(results)
    header = ["figure", *(label(s) for s in systems), *BASELINES.values(), "target", "met"]
    rows = []
    run = {w for result in results.values() for w in result.get("workloads", {})}
    for row in ROWS:
        if workload_of(row.key) not in run:
            continue
        cells = [row.label]
        for system in systems:
            value, text = figure(results, system, row.key)
            cells.append(text if text is not None else format_value(value, row.unit))
        ours, _ = figure(results, GRAPHEXEC, row.key)
        ratios = {}
        for baseline in BASELINES:
            theirs, _ = figure(results, baseline, row.key)
            ratios[baseline] = ours / theirs if ours is not None and theirs else None
            cells.append(f"{ratios[baseline]:.2f}x" if ratios[baseline] is not None else "")
        cells += target_cells(row, results, ratios)
        rows.append(cells)
    return header, rows, footnotes(results)


def target_cells(row, results, ratios):
    if not row.targets:
        return ["", ""]
    verdicts = []
    for target in row.targets:
        if target.reference in ratios and target.system == GRAPHEXEC:
            ratio, shown = ratios[target.reference], ""
        else:
            value, _ = figure(results, target.system, row.key)
            if target.reference == "self":
                versus = target.system
            elif target.reference == "system":
                versus = target.versus or target.system
            else:
                versus = target.reference
            reference, _ = figure(results, versus, target.self_key or row.key)
            ratio = value / reference if value is not None and reference else None
            shown = f"{ratio:.2f}x " if ratio is not None else ""
        verdicts.append("?" if ratio is None else shown + ("yes" if target.met(ratio) else "NO"))
    return [", ".join(t.describe() for t in row.targets), ", ".join(verdicts)]


def footnotes(results):
    """One line per (system, reason) for workloads that were n/a or failed."""
    notes = {}
    for system, result in results.items():
        for workload, entry in result.get("workloads", {}).items():
            if entry["status"] in ("n/a", "error"):
                key = (label(system), entry["status"], entry["reason"])
                notes.setdefault(key, []).append(workload)
            for reason in entry.get("failed_rounds", []):
                key = (label(system), f"error in {len(entry['failed_rounds'])} of {entry['rounds']} "
                       f"rounds (figures from the others)", reason)
                notes.setdefault(key, []).append(workload)
    return [f"{name} {', '.join(w)}: {status}: {one_line(reason)}" for (name, status, reason), w in notes.items()]


def one_line(text, limit=300):
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def markdown(header, rows, notes):
    widths = [max(len(str(line[i])) for line in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    text = [line(header), "| " + " | ".join("-" * w for w in widths) + " |", *map(line, rows)]
    if notes:
        text += ["", *(f"- {note}" for note in notes)]
    return "\n".join(text)


def merge_rounds(rounds):
    """One result per system: for each workload the median of every figure over the rounds
    where it succeeded; where it never did, the first round's status and reason."""
    merged = {}
    for system in rounds[0]:
        workloads = {}
        for workload, first in rounds[0][system]["workloads"].items():
            entries = [r[system]["workloads"].get(workload, {}) for r in rounds]
            ok = [e for e in entries if e.get("status") == "ok"]
            if not ok:
                workloads[workload] = first
                continue
            keys = dict.fromkeys(k for e in ok for k in e["figures"])
            figures = {k: median_or_none([e["figures"].get(k) for e in ok]) for k in keys}
            failed = [e["reason"] for e in entries if e.get("status") == "error"]
            workloads[workload] = {"status": "ok", "figures": figures, "rounds_ok": len(ok),
                                   "rounds": len(entries), "failed_rounds": failed}
        merged[system] = {"system": system, "workloads": workloads}
    return merged


def median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None
