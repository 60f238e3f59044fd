"""The execution plan: a flat list of steps over numbered buffer slots, with lifetimes.

Constants live in dedicated slots preloaded before a run; feeds are written into their slots; each
step reads slots, writes slots, and frees the slots whose last use it is. Freed slots are reused by
later values, so a long chain needs only a handful of slots.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from graphexec import display, ir
from graphexec.compiler.util import type_of
from graphexec.ops import registry

COMPILER_FAMILY = "graphexec-compiler-1"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def compiler_version() -> str:
    """What compiles and runs plans here: this copy of graphexec, by the content of its source. Plans are
    shared through the store by key and outlive a deployment, so a replica of another version (a rolling
    upgrade, a Redis kept across releases) must neither find them under its keys nor run one it is handed:
    its plans may use ops, fusions or step orders that this code does not know or means differently.
    Computed once per process (~15 ms): at startup in servers (their WorkerPool) and workers (their
    registration)."""
    return source_version(PACKAGE_ROOT)


def source_version(root: Path) -> str:
    """COMPILER_FAMILY and a digest of every .py file under `root`, by path and content."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return f"{COMPILER_FAMILY}+{digest.hexdigest()[:16]}"


@dataclass(frozen=True, slots=True)
class Endpoint:
    tensor: str
    slot: int
    type: ir.TensorType


@dataclass(frozen=True, slots=True)
class Step:
    node: str
    op: str
    attrs: ir.Attrs
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    free: tuple[int, ...]
    device: str = ""
    source: str = ""
    covers: tuple[str, ...] = ()
    output_types: tuple[ir.TensorType, ...] = ()

    def __str__(self) -> str:
        outs = ", ".join(f"${s}" for s in self.outputs) or "()"
        ins = ", ".join(f"${s}" for s in self.inputs)
        free = f"  free {', '.join(f'${s}' for s in self.free)}" if self.free else ""
        bodies = "".join(f" {v}" for v in self.attrs.values() if isinstance(v, ir.Subprogram))
        bodies += "".join(f" {k}=<{len(v.steps)} steps>" for k, v in self.attrs.items() if isinstance(v, Plan))
        return f"{outs} = {self.op}({ins}){bodies}  # {self.node}{free}"


@dataclass(frozen=True, eq=False)  # compared by identity: a functional step holds its sub-plans as attrs
class Plan:
    graph_digest: str
    feeds: tuple[Endpoint, ...]
    fetches: tuple[Endpoint, ...]
    steps: tuple[Step, ...]
    num_slots: int
    constants: dict[int, np.ndarray] = field(default_factory=dict)
    targets: tuple[str, ...] = ()
    seed: int | None = None

    def __str__(self) -> str:
        lines = [f"plan {self.graph_digest[:12]} ({len(self.steps)} steps, {self.num_slots} slots)"]
        lines += [f"  feed  ${e.slot} <- {e.tensor}: {e.type}" for e in self.feeds]
        lines += [f"  const ${slot} = {ir.format_attr(v)}" for slot, v in sorted(self.constants.items())]
        lines += [f"  {step}" for step in self.steps]
        lines += [f"  fetch {e.tensor} <- ${e.slot}" for e in self.fetches]
        return "\n".join(lines)

    def nbytes(self) -> int:
        """Roughly what the plan holds in memory: its constants, and a little per step (sub-plans of If
        and While steps included)."""
        return (sum(np.asarray(v).nbytes for v in self.constants.values()) + 256 * len(self.steps) +
                sum(value.nbytes() for step in self.steps for value in step.attrs.values() if isinstance(value, Plan)))

    def step_ops(self) -> set[str]:
        """The ops of every step, those of sub-plans (If and While bodies) included."""
        ops = set()
        for step in self.steps:
            ops.add(step.op)
            for value in step.attrs.values():
                if isinstance(value, Plan):
                    ops |= value.step_ops()
        return ops

    def _repr_svg_(self) -> str:
        """Jupyter draws the plan: feeds, steps (fused ones list what they cover) and fetches."""
        return display.render(display.plan_boxes(self), title=f"plan {self.graph_digest[:12]} ({len(self.steps)} steps)")

    def executed_nodes(self) -> list[str]:
        return [name for step in self.steps for name in step.covers]


class _Slots:
    def __init__(self):
        self.count = 0
        self.free: list[int] = []

    def take(self) -> int:
        if self.free:
            return self.free.pop()
        self.count += 1
        return self.count - 1


def build_plan(program: ir.Program, graph_digest: str) -> Plan:
    last_use: dict[str, int] = {}
    compute = [n for n in program.nodes if registry.get(n.op).runs_as_step]
    for index, node in enumerate(compute):
        for t in node.inputs:
            last_use[t] = index
    fetched = set(program.fetches)
    slots, where, constants, feeds = _Slots(), {}, {}, {}
    for node in program.nodes:
        definition = registry.get(node.op)
        if definition.is_constant:
            where[f"{node.name}:0"] = slot = slots.take()
            constants[slot] = node.attrs["value"]
        elif definition.is_feed:
            where[f"{node.name}:0"] = feeds[f"{node.name}:0"] = slots.take()
    steps = []
    for index, node in enumerate(compute):
        inputs = tuple(where[t] for t in node.inputs)
        dying = {t for t in node.inputs if last_use.get(t) == index and t not in fetched
                 and where[t] not in constants}
        free_now = tuple(sorted({where[t] for t in dying}))
        slots.free.extend(free_now)
        outputs = []
        for i in range(len(node.outputs)):
            name = f"{node.name}:{i}"
            where[name] = slot = slots.take()
            outputs.append(slot)
            if name not in last_use and name not in fetched:
                slots.free.append(slot)  # produced but never used: recycle right away
        covers = node.attrs["covers"] if "covers" in node.attrs else (node.name,)  # Fused, _FusedConv2D
        steps.append(Step(node.name, node.op, node.attrs, inputs, tuple(outputs), free_now, node.device,
                          node.source, covers, node.outputs))
    by_name = program.by_name()
    return Plan(
        graph_digest=graph_digest,
        feeds=tuple(Endpoint(t, feeds[t], by_name[ir.split_tensor_name(t)[0]].outputs[0])
                    for t in program.feeds if t in feeds),
        fetches=tuple(Endpoint(t, where[t], type_of(by_name, t)) for t in program.fetches),
        steps=tuple(steps), num_slots=slots.count, constants=constants, targets=program.targets,
        seed=program.seed)
