"""Placement: which device runs each step of a plan, given the device types of the live workers.

It is decided once per plan and device set (by the server, or by an in-process session) and travels
with each run to the worker as `device_type` plus `host_steps`; workers never place again.

Policy (a pure function of the plan and the available device types):
* tf.device strings are honoured: "/cpu:0", "/device:CPU:0", "/gpu:0", "/device:GPU:0" (job/task
  prefixes are ignored: every worker is one task). Steps with no device go where the run goes.
* As in TensorFlow, a GPU is preferred: when a GPU worker is live the run goes to it and every step
  not pinned to the CPU runs on its GPU; steps pinned to the CPU stay on the CPU. Otherwise the run
  goes to any worker's CPU.
* Except where transfer would dominate: a run none of whose steps asks for a GPU goes to a CPU when
  its estimated time there (graphexec.runtime.cost: FLOPs against step launches and bus copies) is
  below its estimated time on the GPU. The server decides per run, from the rows fed (a small batch
  stays on the CPU, a large one of the same callable goes to the GPU); `tf.device("/gpu:0")` on the
  graph keeps every run on the GPU, as in TensorFlow.
* Soft placement: a step asking for a GPU when no GPU worker is live is placed on the CPU and the
  decision is reported (RunMetadata.soft_placement); without allow_soft_placement it is UNAVAILABLE.
* Colocation: every op that reads or updates a variable runs on one device, the device the
  variable's updates ask for (else its reads'), so a variable never moves between devices.
* tf.string values live on the host: a step that reads or produces one runs on the CPU (TF has no GPU
  string kernels either); one pinned to a GPU is a soft-placement decision, an error without it.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from graphexec import dtypes, errors
from graphexec.compiler.plan import Plan
from graphexec.ops.state_ops import VARIABLE_OPS
from graphexec.runtime import cost

CPU, GPU = "CPU", "GPU"
DEVICE_NAMES = {CPU: "/cpu:0", GPU: "/device:GPU:0"}
_DEVICE = re.compile(r"(?:^|/)(?:device:)?(cpu|gpu)(?::(\d+))?$", re.IGNORECASE)
_UPDATES = ("Assign", "AssignAdd", "AssignSub", "ScatterUpdate", "ScatterAdd", "ScatterSub")


class SoftDecision(str):
    """A step placed elsewhere than it asked. It reads as the sentence RunMetadata.soft_placement lists
    ("node: requested X, placed on Y (reason)") and keeps its parts for the wire."""

    def __new__(cls, node: str, requested: str, assigned: str, reason: str):
        decision = super().__new__(cls, f"{node}: requested {requested}, placed on {assigned} ({reason})")
        decision.node, decision.requested, decision.assigned, decision.reason = node, requested, assigned, reason
        return decision


@dataclass(frozen=True)
class Placement:
    device_type: str  # the worker device type the run needs: CPU or GPU
    step_devices: tuple[str, ...]  # device name per plan step
    soft: tuple[SoftDecision, ...] = ()
    # A GPU placement that no step asked for: the CPU placement to use instead when the GPU would not pay.
    on_cpu: Placement | None = field(default=None, compare=False)
    work: cost.Work | None = field(default=None, compare=False)

    def for_run(self, plan: Plan, feeds) -> Placement:
        """This placement, or the CPU one when this run's rows are too few for the GPU to pay."""
        if self.on_cpu is None or self.work.gpu_pays(cost.rows_of(plan, feeds)):
            return self
        return self.on_cpu

    @property
    def mixed(self) -> bool:
        return len(set(self.step_devices)) > 1

    @functools.cached_property
    def host_steps(self) -> tuple[int, ...]:
        """Indices of the steps that run on the host CPU although the run is on a GPU (empty otherwise):
        with `device_type`, all a worker needs to know of the placement."""
        if self.device_type == CPU:
            return ()
        cpu = DEVICE_NAMES[CPU]
        return tuple(i for i, device in enumerate(self.step_devices) if device == cpu)


def device_type(spec: str) -> str | None:
    """"/device:GPU:0" -> "GPU"; "" or a spec naming no device type -> None."""
    if not spec:
        return None
    match = _DEVICE.search(spec.strip())
    return match.group(1).upper() if match else None


def requested_types(plan: Plan) -> list[str | None]:
    """Device type each step asks for, after colocating variable ops."""
    wanted = [device_type(step.device) for step in plan.steps]
    by_variable: dict[str, list[int]] = {}
    for index, step in enumerate(plan.steps):
        if step.op in VARIABLE_OPS:
            by_variable.setdefault(step.attrs["var"], []).append(index)
    for indices in by_variable.values():
        updates = [wanted[i] for i in indices if plan.steps[i].op in _UPDATES and wanted[i]]
        reads = [wanted[i] for i in indices if wanted[i]]
        chosen = (updates or reads or [None])[0]
        for i in indices:
            wanted[i] = chosen
    return wanted


def string_steps(plan: Plan) -> frozenset[int]:
    """Indices of the steps that read or write a tf.string value (slots are reused: followed in order)."""
    strings = {e.slot for e in plan.feeds if e.type.dtype is dtypes.string}
    strings |= {slot for slot, value in plan.constants.items() if value.dtype == object}
    found = set()
    for index, step in enumerate(plan.steps):
        writes = [t.dtype is dtypes.string for t in step.output_types]
        if any(writes) or any(slot in strings for slot in step.inputs):
            found.add(index)
        for slot, is_string in zip(step.outputs, writes):
            (strings.add if is_string else strings.discard)(slot)
    return frozenset(found)


def place(plan: Plan, available: frozenset[str], allow_soft: bool = True) -> Placement:
    if not available:
        raise errors.UnavailableError(None, None, "no live worker: start one with `graphexec worker --redis URL`")
    wanted = requested_types(plan)
    if GPU in available:
        host = string_steps(plan)
        soft = []
        for i in sorted(host):
            if wanted[i] == GPU:  # asked for a GPU explicitly: moved like any soft placement
                step = plan.steps[i]
                if not allow_soft:
                    raise errors.InvalidArgumentError(
                        None, step.node, f"node '{step.node}' ({step.op}) reads or writes tf.string values, which "
                                         f"only a CPU holds, but its device is '{step.device}'; allow soft placement")
                soft.append(SoftDecision(step.node, step.device, DEVICE_NAMES[CPU], "tf.string values live on the host"))
        devices = tuple(DEVICE_NAMES[CPU if t == CPU or i in host else GPU] for i, t in enumerate(wanted))
        if CPU in available and GPU not in wanted:
            on_cpu = Placement(CPU, (DEVICE_NAMES[CPU],) * len(plan.steps))
            return Placement(GPU, devices, tuple(soft), on_cpu, cost.estimate(plan))
        return Placement(GPU, devices, tuple(soft))
    gpu_steps = [i for i, t in enumerate(wanted) if t == GPU]
    soft = []
    for i in gpu_steps:
        step = plan.steps[i]
        if not allow_soft:
            raise errors.UnavailableError(
                None, step.node, f"no live worker has a GPU, which node '{step.node}' requires (device "
                                 f"'{step.device or 'colocated with its variable'}'"
                                 f"{', defined at ' + step.source if step.source else ''}); start "
                                 f"`graphexec worker --device gpu` or allow soft placement")
        soft.append(SoftDecision(step.node, step.device or DEVICE_NAMES[GPU], DEVICE_NAMES[CPU],
                                 "no live worker has a GPU"))
    if CPU not in available:
        raise errors.UnavailableError(None, None, f"no live worker has a CPU device (live: {sorted(available)})")
    return Placement(CPU, (DEVICE_NAMES[CPU],) * len(plan.steps), tuple(soft))
