"""What the server does, without gRPC: sessions, graph uploads, callables, and dispatching runs.

A run: find the plan by callable handle (this process, else the shared plan cache), check the feeds
against the plan's feed types, place it on the live device types (once per plan and device set; the
placement travels with the call), pick a worker, and call it with the remaining deadline. Runs that
update variables are serialized per container: with Redis by the commit's version check (a run whose
commit aborted runs again holding the container's update lock), else by holding that lock. A
worker that cannot be reached is set aside and the run goes to another worker with the same request
id (which the worker's commit makes safe to repeat). A worker that died while running the run is set
aside too, but the run is not resent (it may be what killed the worker, graphexec.server.poison): it
is answered from the store if its update was committed, else fails ABORTED. With dynamic batching on
(`serve --max-batch-size`, graphexec.server.batching), a run of a row-wise plan may share its worker call
with other clients' runs, stacked along dimension 0.

Uploads count against the tenant's graph-bytes quota before they are decoded. Large graphs (at least
--compile-process-nodes) are decoded and compiled in compile processes (graphexec.server.compile_pool),
not in the threads that serve other runs.
"""
from __future__ import annotations

import collections
import contextlib
import socket
import time
from dataclasses import dataclass

import numpy as np

from graphexec import digest, errors, ir
from graphexec.config import RunMetadata
from graphexec.rpc import convert
from graphexec.runtime.feeds import check_feed
from graphexec.runtime.metadata import describe_run
from graphexec.runtime.placement import Placement
from graphexec.runtime.store import NEWLY, REFUSED, Store, over_quota, store_container
from graphexec.runtime.worker import CachedPlan, Cancellation, PlanCall, PlanResult, replayed, run_serialized
from graphexec.server import limits as server_limits
from graphexec.server import plans as plan_cache
from graphexec.server.batching import Batcher
from graphexec.server.compile_pool import CompilePool
from graphexec.server.compile_process import compile_signature
from graphexec.server.graphs import GraphLibrary
from graphexec.server.limits import Limits, Slot
from graphexec.server.plans import PlanCache
from graphexec.server.poison import PoisonList
from graphexec.server.pool import WorkerDied, WorkerLost, WorkerPool
from graphexec.server.sessions import SessionRecord, SessionTable
from graphexec.server.telemetry import DEFAULT_TENANT, Metrics, annotate, code_name, tenant

MAX_FAILOVERS = 3
PROBE_TIMEOUT_S = 1.0  # to connect to a worker whose direct link to a client broke, before calling it gone
# What the runs of one run_many call may fetch in all before the rest wait for their answers to be sent.
FETCH_BYTES_PER_CALL = 64 << 20


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
    """`max_batch_size` > 1 turns dynamic batching on (graphexec.server.batching), with `max_batch_delay_us`.
    Without `compiles` (a worker's, graphexec.server.worker_runs) callables come from plans a server compiled
    only; one that needs compiling is answered UNAVAILABLE, and the client makes it on a server."""

    def __init__(self, store: Store, pool: WorkerPool, metrics: Metrics | None = None,
                 limits: Limits = server_limits.DEFAULT, max_batch_size: int = 0, max_batch_delay_us: int = 0,
                 compiles: bool = True):
        self.compiles = compiles
        self.store = store
        self.pool = pool
        self.metrics = metrics or Metrics()
        self.metrics.live_workers.set_function(lambda: len(pool.workers()))
        self.limits = limits
        self.sessions = SessionTable(store, limits.max_sessions_per_tenant)
        self.graphs = GraphLibrary(store, limits.cache_bytes)
        self.plans = PlanCache(store, self.metrics, limits.cache_bytes)
        self.poison = PoisonList(store=store if store.shared else None)
        self.compiler = CompilePool(limits.compile_processes, limits.compile_timeout_s)
        self.batcher = (Batcher(max_batch_size, max_batch_delay_us, self._execute, self.metrics)
                        if max_batch_size > 1 else None)

    def _in_compile_process(self, node_count: int) -> bool:
        return self.limits.compile_processes > 0 and node_count >= self.limits.compile_process_nodes

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
            with self._counted_upload(record.tenant, segment):
                chain, node_count = self._add_segment(segment)
        elif self.graphs.has(segment.chain, segment.node_count):  # decoded later, only if a compile needs it
            chain, node_count = segment.chain, segment.node_count
        else:
            return record, True
        seed = segment.seed if segment.HasField("seed") else None
        return self.sessions.set_graph(record, chain, node_count, seed), False

    @contextlib.contextmanager
    def _counted_upload(self, tenant: str, segment):
        """Count the segment against the tenant's uploads (--max-graph-bytes-per-tenant) before it is decoded;
        no longer if it is refused."""
        chain, nbytes, quota = segment.chain.hex(), segment.ByteSize(), self.limits.max_graph_bytes_per_tenant
        counted, used = self.store.claim_graph_bytes(tenant, chain, nbytes, quota)
        if counted == REFUSED:
            raise over_quota("uploaded graphs", tenant, used, nbytes, quota, "--max-graph-bytes-per-tenant")
        try:
            yield
        except BaseException:
            if counted == NEWLY:  # a segment counted before stays counted
                self.store.release_graph_bytes(tenant, chain, nbytes)
            raise

    def _add_segment(self, segment) -> tuple[bytes, int]:
        """Decode, verify and store an uploaded segment; (chain, node count) of the graph it completes."""
        if self._in_compile_process(segment.node_count):  # decoded there: seconds of Python for a large one
            blob, base = convert.segment_to_bytes(segment), segment.base_chain or digest.CHAIN_START
            node_count = self.compiler.check(self.graphs.segment_blobs(base) + [blob], segment.node_count,
                                             base.hex(), segment.chain.hex())
            self.graphs.put_checked(segment, blob)
            return segment.chain, node_count
        graph = self.graphs.add(segment)
        return graph.chain, len(graph.nodes)

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
            if not self.compiles:
                raise errors.UnavailableError(None, None, "this worker compiles no plans: make the callable on a "
                                                          "server")
            chain = bytes.fromhex(record.chain)
            if self._in_compile_process(record.node_count):  # returns the plan serialized, as the store keeps it
                return self.compiler.compile(self.graphs.segment_blobs(chain), record.node_count, chain=record.chain,
                                             feeds=feeds, fetches=fetches, targets=list(targets), seed=record.seed,
                                             graph_digest=record.graph_digest,
                                             memory_budget=self.limits.run_memory_bytes)
            return compile_signature(self.graphs.get(chain), feeds, fetches, targets, record.seed,
                                     record.graph_digest, self.limits.run_memory_bytes)

        cached, source = self.plans.get_or_compile(key, compile_plan)
        annotate(session=record.handle[:8], plan=key[:16], plan_source=source)
        position = {name: i for i, name in enumerate(feeds)}
        indices = tuple(position[e.tensor] for e in cached.plan.feeds)
        return MadeCallable(cached, source, (time.perf_counter() - started) * 1e3, indices)

    # -- runs ---------------------------------------------------------------------------------------
    def run(self, record: SessionRecord, cached: CachedPlan, feeds: list, request_id: int, options,
            remaining_s: float | None, cancellation: Cancellation, slot: Slot | None = None,
            broke_at: str = "") -> RunOutcome:
        """`slot`: the run's turn (graphexec.server.limits.Admission), which it steps out of while it waits
        in a dynamic batch. `broke_at`: the worker (HOST:PORT of the runs it takes itself) whose direct
        link to the client broke under this run before the client sent it here."""
        annotate(session=record.handle[:8], plan=cached.key[:16], request_id=request_id or None)
        started, code = time.perf_counter(), "OK"
        try:
            return self._run(record, cached, feeds, request_id, options, remaining_s, cancellation, slot, broke_at)
        except Exception as exc:
            code = code_name(exc)
            raise
        finally:
            self.metrics.run_done(tenant(), code, started)

    def _run(self, record: SessionRecord, cached: CachedPlan, feeds: list, request_id: int, options,
             remaining_s: float | None, cancellation: Cancellation, slot: Slot | None, broke_at: str) -> RunOutcome:
        call, placed = self.plan_call(record, cached, feeds, request_id, options, remaining_s, cancellation)
        if broke_at and not self._worker_answers(broke_at):
            return RunOutcome(self._died_under(call, cached, broke_at), placed, cached)
        if self.batcher is not None:
            return RunOutcome(self.batcher.run(call, cached, slot), placed, cached)
        return RunOutcome(self._execute(call, cached), placed, cached)

    def plan_call(self, record: SessionRecord, cached: CachedPlan, feeds: list, request_id: int, options,
                  remaining_s: float | None, cancellation: Cancellation) -> tuple:
        """(PlanCall, placement) of a run whose feeds pass the plan's checks (else the error)."""
        _check_feeds(cached, feeds)
        self.poison.check(cached.key, feeds)
        placed = cached.placement(self.pool.device_types(), record.allow_soft_placement, feeds)
        timeout = _earliest(remaining_s, run_limit_s(record, options))
        call = PlanCall(record.variable_container, cached.key, feeds, request_id, record.handle, placed.device_type,
                        placed.host_steps, options.trace_level > 0, timeout, cancellation)
        return call, placed

    def plan_repeat(self, previous: PlanCall, limit_s: float | None, feeds: list, request_id: int,
                    remaining_s: float | None, cancellation: Cancellation) -> PlanCall:
        """plan_call for a run that repeats `previous` of the same record, plan and options, with feeds of
        the same dtypes and shapes, while the pool has the same device types: the feed checks and the
        placement hold as they were; only the check for a poisoned run is per run. `limit_s`:
        run_limit_s of that record and options."""
        self.poison.check(previous.plan_key, feeds)
        return PlanCall(previous.container, previous.plan_key, feeds, request_id, previous.session_handle,
                        previous.device_type, previous.host_steps, previous.trace, _earliest(remaining_s, limit_s),
                        cancellation)

    def _execute(self, call: PlanCall, cached: CachedPlan) -> PlanResult:
        if not cached.writes_variables:
            return self._dispatch(call, cached)  # nothing to serialize
        # With a shared store, first without the lock (the commit's version check decides). A remote worker
        # decodes its own copy of the feeds for each attempt; a local one (a worker taking runs itself,
        # graphexec.server.worker_runs) gets them read-only (the direct link's are views of immutable
        # bytes already), so that no kernel writes its result into one (executor._donors) and a retry
        # under the lock sees them as sent. The lock's round trips took ~9% of that worker's CPU in W3.
        optimistic = self.store.shared
        if optimistic and self.pool.local is not None:
            for feed in call.feeds:
                if isinstance(feed, np.ndarray):
                    feed.setflags(write=False)
        return run_serialized(self.store, call, cached, self._dispatch, optimistic)

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

    # -- a Run stream's batch ---------------------------------------------------------------------------
    def run_many(self, record: SessionRecord, cached: CachedPlan, runs: list, deadline: float | None,
                 cancellation: Cancellation, slot: Slot | None = None) -> list:
        """Run `runs` ((feeds, request id, RunOptions) each) of one plan, in order, within `deadline` (on the
        time.monotonic() clock, or None); each run's RunOutcome, or the error it failed with.

        A Run stream sends its runs in batches. A batch of a plan that writes no variables, without
        per-run timeouts or traces, and without dynamic batching, goes to one worker as one call
        (LocalWorker: a loop; RemoteWorker: PLAN frames pipelined on one connection), and what is the
        same for all its runs is done once; a run counts in the metrics with its share of the batch's
        time. Any other batch runs run by run, as unary runs do.

        Runs stop being sent once their fetches reach FETCH_BYTES_PER_CALL: the list then holds the
        first runs' outcomes only (at least one), and the caller, having sent their answers, calls
        again with the rest (so a batch of runs with large fetches never holds them all at once)."""
        if not self._batchable(record, cached, runs):
            return [self._run_or_failure(record, cached, *run, deadline, cancellation, slot) for run in runs]
        annotate(session=record.handle[:8], plan=cached.key[:16])
        started = time.perf_counter()
        outcomes, calls, device_types = [None] * len(runs), [], self.pool.device_types()
        for index, (feeds, request_id, _) in enumerate(runs):
            try:
                _check_feeds(cached, feeds)
                self.poison.check(cached.key, feeds)
                placed = cached.placement(device_types, record.allow_soft_placement, feeds)
                timeout = None if deadline is None else deadline - time.monotonic()
                calls.append((index, placed, PlanCall(record.variable_container, cached.key, feeds, request_id,
                                                      record.handle, placed.device_type, placed.host_steps, False,
                                                      timeout, cancellation)))
            except Exception as exc:
                outcomes[index] = exc
        # Runs go out in order, each stretch of one device type to one worker (a seeded random op's
        # values depend on the order of the runs).
        done = len(runs)
        for stretch in _stretches(calls):
            results = self._dispatch_many([c for _, _, c in stretch], cached)
            for (index, placed, _), result in zip(stretch, results):
                outcomes[index] = result if isinstance(result, Exception) else RunOutcome(result, placed, cached)
            if len(results) < len(stretch):  # the fetch budget is spent: the rest wait for the next call
                done = stretch[len(results)][0]
                break
        outcomes = outcomes[:done]
        now, name = time.perf_counter(), tenant()
        since = now - (now - started) / len(outcomes)  # each run is counted as taking its share of the lot
        codes = collections.Counter("OK" if isinstance(outcome, RunOutcome) else code_name(outcome)
                                    for outcome in outcomes)
        for code, count in codes.items():
            self.metrics.runs_done(name, code, [since] * count)
        return outcomes

    def _batchable(self, record: SessionRecord, cached: CachedPlan, runs: list) -> bool:
        if self.batcher is not None or cached.writes_variables or record.default_timeout_ms or len(runs) < 2:
            return False
        return not any(options.timeout_ms or options.trace_level > 0 for _, _, options in runs)

    def _run_or_failure(self, record, cached, feeds, request_id, options, deadline, cancellation, slot):
        try:
            return self.run(record, cached, feeds, request_id, options,
                            None if deadline is None else deadline - time.monotonic(), cancellation, slot)
        except Exception as exc:
            return exc

    def _dispatch_many(self, calls: list, cached: CachedPlan) -> list:
        """_dispatch for calls of one device type, to one worker at a time: a run whose worker died is
        not resent (it may be what killed it); the runs that worker never read go to another one. The
        results of the first calls, up to where FETCH_BYTES_PER_CALL stopped the sending."""
        results, pending, tried = [None] * len(calls), list(range(len(calls))), []
        first = calls[0]
        while pending:
            try:
                worker = self.pool.choose(first.device_type, first.container, cached.uses_variables, exclude=tried)
            except Exception as exc:
                for index in pending:
                    results[index] = exc
                break
            lost, answered = [], worker.run_many([calls[i] for i in pending], cached, FETCH_BYTES_PER_CALL)
            for index, result in zip(pending, answered):
                results[index] = result
                if isinstance(result, WorkerDied):
                    self.poison.add(cached.key, calls[index].feeds)
                elif isinstance(result, WorkerLost):
                    lost.append(index)
            if lost or any(isinstance(results[i], WorkerDied) for i in pending):
                self.pool.mark_lost(worker)
                tried.append(worker.id)
            if len(answered) < len(pending):  # the fetch budget is spent
                break
            pending = self._resendable(lost, calls, cached, results) if len(tried) <= MAX_FAILOVERS else []
        return results[:results.index(None)] if None in results else results

    def _resendable(self, lost: list, calls: list, cached: CachedPlan, results: list) -> list:
        """The runs a lost worker never read that may go to another one: not a copy of the run that just
        killed it (later in the same batch), which is refused as that run will be."""
        resend = []
        for index in lost:
            try:
                self.poison.check(cached.key, calls[index].feeds)
            except errors.OpError as exc:
                results[index] = exc
            else:
                resend.append(index)
        return resend

    def _worker_answers(self, address: str) -> bool:
        """Whether the worker that takes runs at `address` is still there (a live registration whose port
        accepts a connection). Only registered addresses are dialled: a client names the address."""
        if not self.pool.takes_runs_at(address):
            return False
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S).close()
        except (OSError, ValueError):
            return False
        return True

    def _died_under(self, call: PlanCall, cached: CachedPlan, address: str) -> PlanResult:
        """A run whose direct link to a worker broke and the worker is gone: most likely the run killed it,
        so it is refused as _dispatch refuses one whose worker died under it (answered from the store if
        its update was committed first)."""
        self.poison.add(call.plan_key, call.feeds)
        applied = self._applied(call, cached)
        if applied is not None:
            return applied
        raise errors.AbortedError(None, None, f"the worker at {address} died while running this run (its direct "
                                              f"link to the client broke); it is not resent to another worker")

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


def _stretches(calls: list):
    """Runs of consecutive (index, placement, call) items with one device type."""
    start = 0
    for end in range(1, len(calls) + 1):
        if end == len(calls) or calls[end][2].device_type != calls[start][2].device_type:
            yield calls[start:end]
            start = end


def _canonical(tensor: str) -> str:
    node, index = ir.split_tensor_name(tensor)
    return f"{node}:{index}"


def run_limit_s(record: SessionRecord, options) -> float | None:
    """The seconds a run may take by its options and its session's default (None: no limit)."""
    return _earliest(options.timeout_ms / 1e3 if options.timeout_ms else None,
                     record.default_timeout_ms / 1e3 if record.default_timeout_ms else None)


def _earliest(*timeouts):
    if timeouts.count(None) == len(timeouts):  # the common case: no deadline at all
        return None
    given = [t for t in timeouts if t is not None]
    return min(given) if given else None


def _check_feeds(cached: CachedPlan, feeds: list) -> None:
    endpoints = cached.plan.feeds
    if len(feeds) != len(endpoints):
        raise errors.InvalidArgumentError(None, None, f"the callable takes {len(endpoints)} feeds "
                                                      f"({', '.join(e.tensor for e in endpoints)}), got {len(feeds)}")
    for endpoint, value in zip(endpoints, feeds):
        if value.shape != endpoint.type.shape or value.dtype != endpoint.type.dtype.np:  # else: exact match
            check_feed(value, endpoint.type, endpoint.tensor)
