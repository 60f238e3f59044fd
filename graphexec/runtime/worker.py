"""Workers: run compiled plans against hot copies of a container's variables.

`WorkerCore` is the one engine that runs plans: an in-process tf.Session runs one over a MemoryStore
of its own; `graphexec serve` without --redis calls one in-process (the embedded worker);
`graphexec worker` serves one over the internal Worker gRPC API (server/worker_service.py). They
differ only in where the store and the kernels live.

State and policy:
* Loaded plans by plan key and device type (from the store on first use).
* Hot variables per container, tagged with the store's variable version. A run that reads or writes
  variables first asks the store for the version (one round trip, together with the request-id
  check); it re-reads all variables only when the version moved (another worker or replica wrote).
  On a shared store (Redis) a run that writes variables and has a request id skips that question
  when its variables are hot: its commit checks both, and aborts if the version moved (the server
  then runs it again under the container's lock, and this worker re-reads: its copy is dropped).
  So a training step on a hot worker is one round trip to Redis.
* A run that changed variables writes them through to the store, with its request id and result,
  in one atomic commit BEFORE the worker answers: an acknowledged update survives this worker.
  A request id that was already applied is answered from the stored result, without running (or,
  on the path without the question, after running: its commit writes nothing and answers the
  stored result).
* Double buffers: after a commit, each replaced value's array becomes its variable's spare
  (`ExecContext.spares`); an optimizer update of the next run writes its new value into it instead of
  allocating, but only when nothing references it any more (ops/workspace.reusable). The committed
  value is never written, so a run that fails leaves the variables as they were.
* Random-number state per session (like an in-process Session's).
* Placement is the caller's: a run arrives with its device type and the steps pinned to the host
  CPU (`PlanCall.host_steps`). A GPU worker runs with CuPy as the array module; the host steps run
  on numpy inside the same plan, with values copied across at the boundary.
"""
from __future__ import annotations

import functools
import threading
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from graphexec import errors
from graphexec.compiler.plan import Plan, compiler_version
from graphexec.ops.state_ops import VARIABLE_OPS
from graphexec.rpc import convert
from graphexec.runtime import placement
from graphexec.runtime.bounded import BoundedCache
from graphexec.runtime.context import ExecContext, on_device, on_host, trim_pinned_pool
from graphexec.runtime.executor import LoadedPlan
from graphexec.runtime.store import DEFAULT_LOCK_TIMEOUT_S, AlreadyApplied, Store

MAX_RETAINED_RESULT = 1 << 20  # results above this are not kept for replays of a request id (bounds Redis)
MAX_LOADED_PLANS = 4096
MAX_LOADED_PLAN_BYTES = 256 << 20  # constants included; a dropped plan is loaded again on its next run
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

    def forget(self, callback) -> None:
        """Drop a callback added by on_cancel (its run ended first: one cancellation may serve a whole stream)."""
        try:
            self._callbacks.remove(callback)
        except ValueError:
            pass

    def cancel(self) -> None:
        self.is_set = True
        for callback in list(self._callbacks):  # runs of the stream may forget theirs meanwhile
            callback()


@dataclass
class CachedPlan:
    """A plan and what is derived from it once: whether it touches variables, and its placements."""

    key: str
    plan: Plan
    writes_variables: bool = False
    uses_variables: bool = False
    _placements: dict = field(default_factory=dict)

    @classmethod
    def of(cls, key: str, plan: Plan) -> CachedPlan:
        ops = plan.step_ops()
        return cls(key, plan, writes_variables=bool(ops & (VARIABLE_OPS - {"ReadVariable"})),
                   uses_variables=bool(ops & VARIABLE_OPS))

    def placement(self, available: frozenset[str], allow_soft: bool, feeds=None) -> placement.Placement:
        """Where a run goes; with its `feeds`, a run that would not pay for a GPU stays on a CPU."""
        key = (available, allow_soft)
        placed = self._placements.get(key)
        if placed is None:
            placed = self._placements[key] = placement.place(self.plan, available, allow_soft)
        if placed.on_cpu is not None and feeds is not None:
            return placed.for_run(self.plan, feeds)
        return placed


@dataclass(slots=True)
class PlanCall:
    """One run of a plan, placed: `device_type` and `host_steps` (see Placement) say where it runs."""

    container: str
    plan_key: str
    feeds: list
    request_id: int = 0
    session_handle: str = ""
    device_type: str = placement.CPU
    host_steps: tuple[int, ...] = ()
    trace: bool = False
    timeout_s: float | None = None
    cancellation: Cancellation | None = None


@dataclass(slots=True)
class PlanResult:
    fetches: list
    stats: list
    deduplicated: bool = False
    worker: str = ""
    printed: list = field(default_factory=list)  # text the printing ops wrote, in order, for the client


def load_array_module(device_type: str):
    if device_type == placement.GPU:
        import cupy  # noqa: PLC0415 - only GPU workers need it

        return cupy
    return np


class WorkerCore:
    """`feeds_owned`: feeds reach a server's worker decoded from the wire, so they are the runtime's to
    overwrite; an in-process session's feeds are the user's arrays and never are."""

    def __init__(self, store: Store, device_type: str = placement.CPU, worker_id: str | None = None,
                 address: str = "in-process", feeds_owned: bool = True):
        self.store = store
        self.feeds_owned = feeds_owned
        self.device_type = device_type
        self.xp = load_array_module(device_type)
        self.worker_id = worker_id or uuid.uuid4().hex[:12]
        self.address = address
        self.tls = False  # whether servers must dial it over TLS (a `graphexec worker` serving TLS)
        self.direct_port = 0  # a `graphexec worker`'s direct link port (server.direct), when it serves one
        self.direct_version = 1  # which frames that link reads (rpc.link_format.VERSION: PLAN frames too)
        self.run_port = 0  # where it takes clients' runs itself (server.worker_runs), and with which settings
        self.run_fingerprint = ""
        self.run_socket = ""  # and its Unix socket for clients on its host (DirectApiServer.local_name)
        self.device_types = frozenset({placement.CPU, device_type})
        self._plans = BoundedCache(MAX_LOADED_PLANS, MAX_LOADED_PLAN_BYTES)  # -> (CachedPlan, LoadedPlan)
        self._hot: dict[tuple[str, str], tuple[int, dict]] = {}  # (container, device type) -> (version, values)
        # Commits of this worker in flight, by (container, device type): while one is, its hot copy may be
        # older than the store (the commit landed, the copy is not replaced yet), and a run holding the
        # container's lock must not start from it (its commit would abort with nothing left to retry).
        self._committing: dict[tuple[str, str], int] = {}
        self._hot_guard = threading.Lock()  # for _committing, and so that a newer hot copy is never replaced by an older
        self._spares: dict[str, dict] = {}  # container -> variable name -> its previous value's array (numpy)
        self._rngs: dict[str, dict] = {}
        self.in_flight = 0

    @property
    def address(self) -> str:
        return self._address

    @address.setter
    def address(self, value: str) -> None:
        self._address = value
        self.name = f"{self.worker_id}@{value}"  # reported with every run

    def devices(self) -> list[dict]:
        return [{"name": placement.DEVICE_NAMES[t], "device_type": t, "memory_limit_bytes": _memory_of(t, self.xp)}
                for t in sorted(self.device_types)]

    def info(self) -> dict:
        info = {"id": self.worker_id, "address": self.address, "tls": self.tls, "devices": self.devices(),
                "load": self.in_flight, "compiler_version": compiler_version()}
        if self.direct_port:
            info["direct_port"] = self.direct_port
            info["direct_version"] = self.direct_version
        if self.run_port:
            info["run_port"] = self.run_port
            info["run_fingerprint"] = self.run_fingerprint
            if self.run_socket:
                info["run_socket"] = self.run_socket
        return info

    # -- running ----------------------------------------------------------------------------------
    def run(self, call: PlanCall, plan: CachedPlan | None = None) -> PlanResult:
        # A plan's host steps follow from its key and device type, so they need not be in the key.
        entry = self._plans.get((call.plan_key, call.device_type))
        cached, loaded = entry if entry is not None else self._loaded(call, plan)
        self.in_flight += 1  # a load estimate for placement: an unlocked count is close enough
        try:
            return self._run(call, cached, loaded)
        finally:
            self.in_flight -= 1

    def _run(self, call: PlanCall, cached: CachedPlan, loaded: LoadedPlan) -> PlanResult:
        version, variables, checked = 0, {}, True
        key = (call.container, call.device_type)  # of the hot copy
        if cached.uses_variables:
            hot = None
            if cached.writes_variables and call.request_id and self.store.shared and not self._committing.get(key):
                hot = self._hot.get(key)
            if hot is not None:  # the commit checks the version and the request id (Store.shared)
                (version, variables), checked = hot, False
            else:
                request_id = call.request_id if cached.writes_variables else 0
                version, stored = self.store.begin_run(call.container, request_id)
                if stored is not None:
                    return PlanResult(replayed(stored), [], deduplicated=True, worker=self.name)
                variables = self._variables(call.container, call.device_type, version)
        run_variables = dict(variables)
        rngs = self._rngs.get(call.session_handle)
        if rngs is None:
            rngs = self._session_rngs(call.session_handle)
        deadline = None if call.timeout_s is None else time.monotonic() + max(call.timeout_s, 0.0)
        ctx = ExecContext(loaded.xp, run_variables, rngs, loaded.plan.seed, deadline,
                          placement.DEVICE_NAMES[call.device_type])
        if call.cancellation is not None:
            ctx.cancelled = call.cancellation
        spares = staging = None
        if cached.writes_variables and loaded.xp is np and call.device_type == placement.CPU:
            spares = ctx.spares = self._spares.setdefault(call.container, {})
            staging = self.store.staging(call.container)
            if staging is not None:
                ctx.on_final = functools.partial(_offer_changed, staging, run_variables, variables)
        try:
            return self._run_and_commit(call, cached, loaded, ctx, version, variables, checked, spares, staging)
        finally:
            if staging is not None:
                staging.discard()  # what the commit did not take (the run failed, or its commit never came)

    def _run_and_commit(self, call: PlanCall, cached: CachedPlan, loaded: LoadedPlan, ctx: ExecContext,
                        version: int, variables: dict, checked: bool, spares: dict | None, staging) -> PlanResult:
        """Run the plan, and commit what it changed."""
        key, run_variables = (call.container, call.device_type), ctx.variables
        stats = [] if call.trace else None
        try:
            if loaded.xp is np:
                results = loaded.run(ctx, call.feeds, stats)
            else:
                trim_pinned_pool(loaded.xp)
                results = [on_host(r) for r in loaded.run(ctx, [on_device(loaded.xp, f) for f in call.feeds], stats)]
        except errors.OpError as exc:
            exc.printed = ctx.printed  # what printed before the failure still reaches the user
            raise
        if cached.writes_variables:
            changed = {k: v for k, v in run_variables.items() if variables.get(k) is not v}
            if changed:
                result = _retained(results) if call.request_id else b""  # kept only to answer a retry
                host = changed if loaded.xp is np else {k: on_host(v) for k, v in changed.items()}
                # What the update adds to the stored bytes (0 for a training step), for the tenant's quota.
                added = sum(v.nbytes for v in changed.values()) - sum(variables[k].nbytes for k in changed
                                                                       if k in variables)
                with self._hot_guard:
                    self._committing[key] = self._committing.get(key, 0) + 1
                try:
                    new_version = self.store.commit(call.container, version, host, call.request_id, result, added,
                                                    staging)
                    self._keep_hot(key, new_version, run_variables)
                except AlreadyApplied as applied:  # a copy of this request, held up somewhere, won
                    self._hot.pop(key, None)
                    return PlanResult(replayed(applied.result), [], deduplicated=True, worker=self.name)
                except Exception:  # aborted, or unknown (Redis away): the next run reads afresh
                    self._hot.pop(key, None)
                    raise
                finally:
                    with self._hot_guard:
                        self._committing[key] -= 1
                        if not self._committing[key]:
                            del self._committing[key]
                if spares is not None:
                    for name in changed:
                        previous = variables.get(name)
                        if previous is not None:
                            spares[name] = previous
            elif not checked:  # nothing to commit, so nothing checked that the values read were current
                current, stored = self.store.begin_run(call.container, call.request_id)
                if stored is not None:
                    return PlanResult(replayed(stored), [], deduplicated=True, worker=self.name)
                if current != version:
                    self._hot.pop(key, None)
                    raise errors.AbortedError(None, None, f"variables of container '{call.container}' changed "
                                                          f"during the run (version {version} -> {current}); retry")
        if stats:
            for s in stats:
                s.worker = self.name
        return PlanResult(results, stats or [], False, self.name, ctx.printed)

    def _session_rngs(self, handle: str) -> dict:
        rngs = self._rngs[handle] = {}
        _bound(self._rngs, MAX_SESSIONS)
        return rngs

    def _variables(self, container: str, device_type: str, version: int) -> dict:
        hot = self._hot.get((container, device_type))
        if hot is not None and hot[0] == version:
            return hot[1]
        version, values = self.store.read_variables(container)
        if device_type == placement.GPU:
            values = {k: on_device(self.xp, v) for k, v in values.items()}
        self._keep_hot((container, device_type), version, values)
        return values

    def _keep_hot(self, key: tuple[str, str], version: int, values: dict) -> None:
        """Keep `values` as the hot copy unless a newer one is kept already (a read that started before
        another run's commit may finish after it)."""
        with self._hot_guard:
            kept = self._hot.get(key)
            if kept is None or kept[0] <= version:
                self._hot[key] = (version, values)

    def _loaded(self, call: PlanCall, plan: CachedPlan | None) -> tuple[CachedPlan, LoadedPlan]:
        """Load a plan not loaded yet: the caller's, else the store's."""
        if plan is None:
            blob = self.store.get_blob("plan", call.plan_key)
            if blob is None:
                raise errors.NotFoundError(None, None, f"plan {call.plan_key[:16]} is not in the plan cache")
            plan = CachedPlan.of(call.plan_key, convert.plan_from_bytes(blob))
        entry = (plan, self._load(plan, call))
        self._plans.put((call.plan_key, call.device_type), entry, plan.plan.nbytes())
        return entry

    def _load(self, cached: CachedPlan, call: PlanCall) -> LoadedPlan:
        loaded = LoadedPlan(cached.plan, self.xp if call.device_type == placement.GPU else np,
                            feeds_owned=self.feeds_owned, announce_writes=cached.writes_variables)
        if loaded.xp is not np and call.host_steps:
            _run_on_host(loaded, frozenset(call.host_steps))
        return loaded


def run_serialized(store: Store, call: PlanCall, cached: CachedPlan, dispatch, optimistic: bool = False) -> PlanResult:
    """`dispatch(call, cached)` serialized with the other updates of the container when the plan updates
    variables. `optimistic` (a shared store, and feeds the dispatch does not consume): first without the
    lock, the commit's version check making it safe, then once more holding the lock if that aborted;
    else holding the container's update lock. The lock wait counts against the deadline."""
    if not cached.writes_variables:
        return dispatch(call, cached)
    started = time.monotonic()
    if optimistic and call.request_id:
        try:
            return dispatch(call, cached)
        except errors.AbortedError as exc:
            if not getattr(exc, "retry_under_lock", True):
                raise
    timeout = call.timeout_s
    wait = DEFAULT_LOCK_TIMEOUT_S if timeout is None else timeout - (time.monotonic() - started)
    with store.lock(call.container, wait, call.request_id):
        if timeout is not None:
            call.timeout_s = timeout - (time.monotonic() - started)
        try:
            return dispatch(call, cached)
        except errors.AbortedError as exc:
            # Holding the lock, only a worker's stale hot copy aborts a commit; the worker dropped it on
            # the abort (nothing was written), so one more try reads the current values.
            if not (optimistic and call.request_id and getattr(exc, "retry_under_lock", True)):
                raise
            if timeout is not None:
                call.timeout_s = timeout - (time.monotonic() - started)
            return dispatch(call, cached)


def _bound(table: dict, size: int) -> None:
    """Drop the oldest entries of an insertion-ordered table beyond `size`."""
    while len(table) > size:
        table.pop(next(iter(table)), None)


def _offer_changed(staging, run_variables: dict, before: dict, names: tuple[str, ...]) -> None:
    """ExecContext.on_final for a run with early staging: offer the final values the run changed."""
    for name in names:
        value = run_variables.get(name)
        if value is not None and value is not before.get(name):
            staging.offer(name, value)


def _retained(results) -> bytes:
    if sum(np.asarray(r).nbytes for r in results) > MAX_RETAINED_RESULT:
        return NOT_RETAINED
    return convert.fetches_to_bytes(results)


def replayed(stored: bytes) -> list:
    if stored == NOT_RETAINED:
        raise errors.AlreadyExistsError(None, None, "this request was already applied; its result was too large to "
                                                    "keep for a replay")
    return convert.fetches_from_bytes(stored)


def _memory_of(device_type: str, xp) -> int:
    if device_type == placement.GPU:
        return int(xp.cuda.Device().mem_info[1])
    return 0


def _run_on_host(loaded: LoadedPlan, host_steps: frozenset[int]) -> None:
    """In a GPU plan, run the host steps with numpy and the others on the device, moving values across."""
    loaded.steps = tuple((_on_host(fn) if index in host_steps else _on_device(fn), *rest)
                         for index, (fn, *rest) in enumerate(loaded.steps))


def _on_host(fn):
    def run_on_host(ctx, *args):
        host = ExecContext(np, ctx.variables, ctx.rngs, ctx.seed, ctx.deadline, placement.DEVICE_NAMES[placement.CPU],
                           ctx.printed)
        return fn(host, *[on_host(a) for a in args])

    return run_on_host


def _on_device(fn):
    def run_on_device(ctx, *args):
        return fn(ctx, *[on_device(ctx.xp, a) if isinstance(a, np.ndarray) else a for a in args])

    return run_on_device
