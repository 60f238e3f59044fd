"""Workers: run compiled plans against hot copies of a container's variables.

`WorkerCore` is the engine. `graphexec serve` without --redis calls one in-process (the embedded
worker); `graphexec worker` serves one over the internal Worker gRPC API (see worker_service.py).

State and policy:
* Loaded plans by plan key (from the store on first use).
* Hot variables per container, tagged with the store's variable version. A run that reads or writes
  variables first asks the store for the version (one round trip, together with the request-id
  check); it re-reads all variables only when the version moved (another worker or replica wrote).
* A run that changed variables writes them through to the store, with its request id and result,
  in one atomic commit BEFORE the worker answers: an acknowledged update survives this worker.
  A request id that was already applied is answered from the stored result, without running.
* Random-number state per session (like an in-process Session's).
* A GPU worker runs with CuPy as the array module; steps that placement pinned to the CPU run on
  numpy inside the same plan, with values copied across at the boundary.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import numpy as np

from graphexec import errors
from graphexec.compiler.plan import Plan
from graphexec.rpc import convert
from graphexec.runtime.context import ExecContext
from graphexec.runtime.executor import LoadedPlan
from graphexec.server import placement
from graphexec.server.plans import CachedPlan
from graphexec.server.store import Store

MAX_RETAINED_RESULT = 64 << 20  # results above this are not kept for replays of a request id
MAX_LOADED_PLANS = 4096
MAX_SESSIONS = 10_000  # random-number states kept (oldest dropped first)
NOT_RETAINED = b"!"


class Cancellation:
    """ExecContext.cancelled: falsy until cancelled (and not `False`, so the executor checks it)."""

    __slots__ = ("is_set", "_callbacks")

    def __init__(self):
        self.is_set = False
        self._callbacks = []

    def __bool__(self):
        return self.is_set

    def on_cancel(self, callback) -> None:
        self._callbacks.append(callback)
        if self.is_set:
            callback()

    def cancel(self) -> None:
        self.is_set = True
        for callback in self._callbacks:
            callback()


@dataclass
class PlanCall:
    """One run of a plan, as a server dispatches it."""

    container: str
    plan_key: str
    feeds: list
    request_id: int = 0
    session_handle: str = ""
    device_type: str = placement.CPU
    trace: bool = False
    timeout_s: float | None = None
    cancellation: Cancellation | None = None


@dataclass
class PlanResult:
    fetches: list
    stats: list
    deduplicated: bool = False
    worker: str = ""


def load_array_module(device_type: str):
    if device_type == placement.GPU:
        import cupy  # noqa: PLC0415 - only GPU workers need it

        return cupy
    return np


class WorkerCore:
    def __init__(self, store: Store, device_type: str = placement.CPU, worker_id: str | None = None,
                 address: str = "in-process"):
        self.store = store
        self.device_type = device_type
        self.xp = load_array_module(device_type)
        self.worker_id = worker_id or uuid.uuid4().hex[:12]
        self.address = address
        self.device_types = frozenset({placement.CPU, device_type})
        self._plans: dict[tuple[str, str], tuple[CachedPlan, LoadedPlan]] = {}
        self._hot: dict[tuple[str, str], tuple[int, dict]] = {}  # (container, device type) -> (version, values)
        self._rngs: dict[str, dict] = {}
        self.in_flight = 0

    @property
    def name(self) -> str:
        return f"{self.worker_id}@{self.address}"

    def devices(self) -> list[dict]:
        return [{"name": placement.DEVICE_NAMES[t], "device_type": t, "memory_limit_bytes": _memory_of(t, self.xp)}
                for t in sorted(self.device_types)]

    def info(self) -> dict:
        return {"id": self.worker_id, "address": self.address, "devices": self.devices(), "load": self.in_flight}

    # -- running ----------------------------------------------------------------------------------
    def run(self, call: PlanCall, plan: CachedPlan | None = None) -> PlanResult:
        cached, loaded = self._loaded(call.plan_key, call.device_type, plan)
        self.in_flight += 1  # a load estimate for placement: an unlocked count is close enough
        try:
            return self._run(call, cached, loaded)
        finally:
            self.in_flight -= 1

    def _run(self, call: PlanCall, cached: CachedPlan, loaded: LoadedPlan) -> PlanResult:
        version, variables = 0, {}
        if cached.uses_variables:
            request_id = call.request_id if cached.writes_variables else 0
            version, stored = self.store.begin_run(call.container, request_id)
            if stored is not None:
                return PlanResult(_replayed(stored), [], deduplicated=True, worker=self.name)
            variables = self._variables(call.container, call.device_type, version)
        run_variables = dict(variables)
        ctx = ExecContext(loaded.xp, run_variables, self._session_rngs(call.session_handle), loaded.plan.seed,
                          _deadline(call.timeout_s), placement.DEVICE_NAMES[call.device_type])
        ctx.cancelled = call.cancellation if call.cancellation is not None else Cancellation()
        stats = [] if call.trace else None
        feeds = call.feeds if loaded.xp is np else [loaded.xp.asarray(f) for f in call.feeds]
        results = [_to_host(r) for r in loaded.run(ctx, feeds, stats)]
        if cached.writes_variables:
            changed = {k: v for k, v in run_variables.items() if variables.get(k) is not v}
            if changed:
                result = _retained(results)
                host = {k: _to_host(v) for k, v in changed.items()}
                new_version = self.store.commit(call.container, version, host, call.request_id, result)
                self._hot[call.container, call.device_type] = (new_version, run_variables)
        for s in stats or ():
            s.worker = self.name
        return PlanResult(results, stats or [], worker=self.name)

    def _session_rngs(self, handle: str) -> dict:
        rngs = self._rngs.get(handle)
        if rngs is None:
            rngs = self._rngs[handle] = {}
            _bound(self._rngs, MAX_SESSIONS)
        return rngs

    def _variables(self, container: str, device_type: str, version: int) -> dict:
        hot = self._hot.get((container, device_type))
        if hot is not None and hot[0] == version:
            return hot[1]
        version, values = self.store.read_variables(container)
        if device_type == placement.GPU:
            values = {k: self.xp.asarray(v) for k, v in values.items()}
        self._hot[container, device_type] = (version, values)
        return values

    def _loaded(self, key: str, device_type: str, plan: CachedPlan | None) -> tuple[CachedPlan, LoadedPlan]:
        entry = self._plans.get((key, device_type))
        if entry is None:
            if plan is None:
                blob = self.store.get_blob("plan", key)
                if blob is None:
                    raise errors.NotFoundError(None, None, f"plan {key[:16]} is not in the plan cache")
                plan = CachedPlan.of(key, convert.plan_from_bytes(blob))
            entry = self._plans[key, device_type] = (plan, self._load(plan.plan, device_type))
            _bound(self._plans, MAX_LOADED_PLANS)
        return entry

    def _load(self, plan: Plan, device_type: str) -> LoadedPlan:
        # Feeds reach a worker decoded from the wire: they are the runtime's to overwrite.
        loaded = LoadedPlan(plan, self.xp if device_type == placement.GPU else np, feeds_owned=True)
        if loaded.xp is not np:
            placed = placement.place(plan, self.device_types)
            if placed.mixed:
                _run_cpu_steps_on_host(loaded, placed)
        return loaded


def _bound(table: dict, size: int) -> None:
    """Drop the oldest entries of an insertion-ordered table beyond `size`."""
    while len(table) > size:
        table.pop(next(iter(table)), None)


def _deadline(timeout_s):
    return None if timeout_s is None else time.monotonic() + max(timeout_s, 0.0)


def _to_host(value):
    return value.get() if hasattr(value, "get") and not isinstance(value, (np.ndarray, np.generic)) else value


def _retained(results) -> bytes:
    if sum(np.asarray(r).nbytes for r in results) > MAX_RETAINED_RESULT:
        return NOT_RETAINED
    return convert.fetches_to_bytes(results)


def _replayed(stored: bytes) -> list:
    if stored == NOT_RETAINED:
        raise errors.AlreadyExistsError(None, None, "this request was already applied; its result was too large to "
                                                    "keep for a replay")
    return convert.fetches_from_bytes(stored)


def _memory_of(device_type: str, xp) -> int:
    if device_type == placement.GPU:
        return int(xp.cuda.Device().mem_info[1])
    return 0


def _run_cpu_steps_on_host(loaded: LoadedPlan, placed: placement.Placement) -> None:
    """In a GPU plan, run the steps pinned to the CPU with numpy, moving values across as needed."""
    cpu = placement.DEVICE_NAMES[placement.CPU]
    steps = []
    for entry, device in zip(loaded.steps, placed.step_devices):
        fn, *rest = entry
        steps.append((_on_host(fn) if device == cpu else _on_device(fn), *rest))
    loaded.steps = tuple(steps)


def _on_host(fn):
    def run_on_host(ctx, *args):
        host = ExecContext(np, ctx.variables, ctx.rngs, ctx.seed, ctx.deadline, placement.DEVICE_NAMES[placement.CPU])
        return fn(host, *[_to_host(a) for a in args])

    return run_on_host


def _on_device(fn):
    def run_on_device(ctx, *args):
        return fn(ctx, *[ctx.xp.asarray(a) if isinstance(a, np.ndarray) else a for a in args])

    return run_on_device
