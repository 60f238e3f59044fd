"""What the server does, without gRPC: sessions, graph uploads, callables, and dispatching runs.

A run: find the plan by callable handle (this process, else the shared plan cache), check the feeds
against the plan's feed types, place it on the live device types (once per plan and device set; the
placement travels with the call), pick a worker, and call it with the remaining deadline. Runs that
update variables hold the container's update lock, so updates to one container are serialized. A
worker that cannot be reached is set aside and the run goes to another worker with the same request
id (which the worker's commit makes safe to repeat). A worker that died while running the run is set
aside too, but the run is not resent (it may be what killed the worker, graphexec.server.poison): it
is answered from the store if its update was committed, else fails ABORTED.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from graphexec import digest, errors, ir
from graphexec.compiler.pipeline import compile_program
from graphexec.config import RunMetadata
from graphexec.runtime.feeds import check_feed
from graphexec.runtime.metadata import describe_run
from graphexec.runtime.placement import Placement
from graphexec.runtime.store import Store, store_container
from graphexec.runtime.worker import CachedPlan, Cancellation, PlanCall, PlanResult, replayed, run_serialized
from graphexec.server import limits as server_limits
from graphexec.server import plans as plan_cache
from graphexec.server.graphs import GraphLibrary
from graphexec.server.limits import Limits
from graphexec.server.plans import PlanCache
from graphexec.server.poison import PoisonList
from graphexec.server.pool import WorkerDied, WorkerLost, WorkerPool
from graphexec.server.sessions import SessionRecord, SessionTable
from graphexec.server.telemetry import DEFAULT_TENANT, Metrics, annotate, code_name, tenant

MAX_FAILOVERS = 3


@dataclass
class MadeCallable:
    plan: CachedPlan
    source: str
    compile_ms: float
    feed_indices: tuple[int, ...]


@dataclass
class RunOutcome:
    result: PlanResult
    placement: Placement
    plan: CachedPlan

    def metadata(self, plan_source: str, compile_ms: float, full_trace: bool) -> RunMetadata:
        return describe_run(self.plan.plan, self.placement, self.result, plan_source, compile_ms, full_trace)


class Service:
    def __init__(self, store: Store, pool: WorkerPool, metrics: Metrics | None = None,
                 limits: Limits = server_limits.DEFAULT):
        self.store = store
        self.pool = pool
        self.metrics = metrics or Metrics()
        self.metrics.live_workers.set_function(lambda: len(pool.workers()))
        self.limits = limits
        self.sessions = SessionTable(store, limits.max_sessions_per_tenant)
        self.graphs = GraphLibrary(store, limits.cache_bytes)
        self.plans = PlanCache(store, self.metrics, limits.cache_bytes)
        self.poison = PoisonList()

    # -- sessions and graphs ----------------------------------------------------------------------
    def create_session(self, config, tenant: str) -> SessionRecord:
        """`config`: a SessionConfig message. The session belongs to `tenant`, and so do its variables."""
        record = self.sessions.create(tenant, config.container, config.allow_soft_placement,
                                      config.default_timeout_ms)
        self.metrics.sessions.labels(tenant or DEFAULT_TENANT).inc()
        annotate(session=record.handle[:8])
        return record

    def extend_session(self, record: SessionRecord, segment) -> tuple[SessionRecord, bool]:
        """The session with its graph set to `segment`'s; (record, True) when the nodes must be sent."""
        if len(segment.chain) != len(digest.CHAIN_START) or segment.node_count < 0:
            raise errors.InvalidArgumentError(None, None, "a graph segment needs a 32-byte chain and a node count")
        if segment.HasField("nodes"):
            server_limits.check_segment_size(max(segment.node_count, len(segment.nodes.nodes)),
                                             segment.nodes.ByteSize(), self.limits)
            graph = self.graphs.add(segment)
            chain, node_count = graph.chain, len(graph.nodes)
        elif self.graphs.has(segment.chain, segment.node_count):  # decoded later, only if a compile needs it
            chain, node_count = segment.chain, segment.node_count
        else:
            return record, True
        seed = segment.seed if segment.HasField("seed") else None
        return self.sessions.set_graph(record, chain, node_count, seed), False

    # -- callables ----------------------------------------------------------------------------------
    def make_callable(self, record: SessionRecord, feeds, fetches, targets) -> MadeCallable:
        """The plan for a signature: from a cache when anyone compiled it (then the graph is not even
        decoded here), else compiled after checking that the names exist."""
        started = time.perf_counter()
        feeds, fetches = [_canonical(t) for t in feeds], [_canonical(t) for t in fetches]
        if len(set(feeds)) != len(feeds):
            raise errors.InvalidArgumentError(None, None, "a tensor is fed more than once")
        key = plan_cache.plan_key(record.graph_digest, feeds, fetches, targets, self.pool.device_types())

        def compile_plan():
            graph = self.graphs.get(bytes.fromhex(record.chain))
            _check_names(graph, feeds, fetches, targets)
            program = ir.Program(graph.nodes, tuple(feeds), tuple(fetches), tuple(targets), record.seed)
            plan = compile_program(program, record.graph_digest)
            server_limits.check_plan_memory(plan, self.limits.run_memory_bytes)
            return plan

        cached, source = self.plans.get_or_compile(key, compile_plan)
        annotate(session=record.handle[:8], plan=key[:16], plan_source=source)
        position = {name: i for i, name in enumerate(feeds)}
        indices = tuple(position[e.tensor] for e in cached.plan.feeds)
        return MadeCallable(cached, source, (time.perf_counter() - started) * 1e3, indices)

    # -- runs ---------------------------------------------------------------------------------------
    def run(self, record: SessionRecord, cached: CachedPlan, feeds: list, request_id: int, options,
            remaining_s: float | None, cancellation: Cancellation) -> RunOutcome:
        annotate(session=record.handle[:8], plan=cached.key[:16], request_id=request_id or None)
        started, code = time.perf_counter(), "OK"
        try:
            return self._run(record, cached, feeds, request_id, options, remaining_s, cancellation)
        except Exception as exc:
            code = code_name(exc)
            raise
        finally:
            self.metrics.run_done(tenant(), code, started)

    def _run(self, record: SessionRecord, cached: CachedPlan, feeds: list, request_id: int, options,
             remaining_s: float | None, cancellation: Cancellation) -> RunOutcome:
        _check_feeds(cached, feeds)
        self.poison.check(cached.key, feeds)
        placed = cached.placement(self.pool.device_types(), record.allow_soft_placement)
        timeout = _earliest(remaining_s, options.timeout_ms / 1e3 if options.timeout_ms else None,
                            record.default_timeout_ms / 1e3 if record.default_timeout_ms else None)
        call = PlanCall(record.variable_container, cached.key, feeds, request_id, record.handle, placed.device_type,
                        placed.host_steps, options.trace_level > 0, timeout, cancellation)
        if cached.writes_variables:
            return RunOutcome(run_serialized(self.store, call, cached, self._dispatch), placed, cached)
        return RunOutcome(self._dispatch(call, cached), placed, cached)  # nothing to serialize

    def _dispatch(self, call: PlanCall, cached: CachedPlan) -> PlanResult:
        tried = []
        while True:
            worker = self.pool.choose(call.device_type, call.container, cached.uses_variables, exclude=tried)
            try:
                return worker.run(call, cached)
            except WorkerDied:
                self.pool.mark_lost(worker)
                self.poison.add(call.plan_key, call.feeds)
                applied = self._applied(call, cached)
                if applied is not None:
                    return applied
                raise
            except WorkerLost:
                self.pool.mark_lost(worker)
                tried.append(worker.id)
                # Without a request id a repeat could apply an update twice: let the client decide.
                if (cached.writes_variables and not call.request_id) or len(tried) > MAX_FAILOVERS:
                    raise

    def _applied(self, call: PlanCall, cached: CachedPlan) -> PlanResult | None:
        """The stored result of a run whose worker died after committing its update, else None."""
        if not (cached.writes_variables and call.request_id):
            return None
        _, stored = self.store.begin_run(call.container, call.request_id)
        return None if stored is None else PlanResult(replayed(stored), [], deduplicated=True)

    # -- the rest -------------------------------------------------------------------------------------
    def list_devices(self) -> list[tuple[object, dict]]:
        return [(worker, device) for worker in self.pool.workers() for device in worker.devices()]

    def reset(self, containers, tenant: str) -> None:
        """Drop the variables of `tenant`'s `containers` (its default container when none are named)."""
        for container in containers or [""]:
            self.store.reset(store_container(tenant, container))


def _canonical(tensor: str) -> str:
    node, index = ir.split_tensor_name(tensor)
    return f"{node}:{index}"


def _earliest(*timeouts):
    if timeouts.count(None) == len(timeouts):  # the common case: no deadline at all
        return None
    given = [t for t in timeouts if t is not None]
    return min(given) if given else None


def _check_names(graph, feeds, fetches, targets) -> None:
    for what, names in (("feed", feeds), ("fetch", fetches)):
        for name in names:
            if name not in graph.types.avals:
                raise errors.InvalidArgumentError(None, None, f"Cannot {what} '{name}': it is not a tensor of the "
                                                              f"graph")
    for name in targets:
        if name not in graph.types.output_counts:
            raise errors.InvalidArgumentError(None, None, f"Cannot run '{name}': it is not an op of the graph")


def _check_feeds(cached: CachedPlan, feeds: list) -> None:
    endpoints = cached.plan.feeds
    if len(feeds) != len(endpoints):
        raise errors.InvalidArgumentError(None, None, f"the callable takes {len(endpoints)} feeds "
                                                      f"({', '.join(e.tensor for e in endpoints)}), got {len(feeds)}")
    for endpoint, value in zip(endpoints, feeds):
        if value.shape != endpoint.type.shape or value.dtype != endpoint.type.dtype.np:  # else: exact match
            check_feed(value, endpoint.type, endpoint.tensor)
