"""The server's limits (README "Security", docs/configuration.md) and what enforces them at the edge.

Every limit has a flag of `graphexec serve` (graphexec/cli.py) and a default here; a request beyond
one is refused with a precise status at once, before anything large is decoded or allocated:

* message size: gRPC itself answers RESOURCE_EXHAUSTED (larger tensors travel in parts on the Run stream);
* graph nodes and bytes (attributes and constants) per upload, container names and other strings: INVALID_ARGUMENT;
* per tenant: open sessions, bytes of stored variables (checked by each commit that grows them, in
  the worker that commits) and bytes of uploaded graph segments (checked before decoding an upload):
  RESOURCE_EXHAUSTED naming the tenant's quota, the bytes it holds and the bytes asked;
* a plan whose statically known tensors need more than the per-run memory budget: RESOURCE_EXHAUSTED
  naming the op and the bytes, when the callable is made (nothing allocated);
* open Run streams: RESOURCE_EXHAUSTED beyond the cap; a stream idle longer than the idle timeout is
  closed (CANCELLED for its client) so idle streams cannot hold the server's threads;
* compiles: graphs of at least `compile_process_nodes` nodes are decoded and compiled in
  `compile_processes` child processes (graphexec.server.compile_pool), so they never hold the GIL
  other tenants' runs need, within `compile_timeout_s` each: DEADLINE_EXCEEDED naming the node count;
* runs: `threads` run at once and `queue_depth` more wait; beyond that RESOURCE_EXHAUSTED at once
  instead of an unbounded queue (a run waiting in a dynamic batch holds no thread, but counts).

Streams get threads of their own (the executor is sized for max_streams plus the runs plus
UNARY_THREADS), so health checks and CreateSession are answered however many streams are open; calls
beyond the executor's size are answered RESOURCE_EXHAUSTED by gRPC at once, not queued.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from graphexec import errors

MIB = 1 << 20


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int = 256 * MIB
    max_graph_nodes: int = 200_000
    max_graph_bytes: int = 256 * MIB
    max_string_bytes: int = 4096
    run_memory_bytes: int = 8 << 30
    max_streams: int = 2048
    max_streams_per_connection: int = 1024
    stream_idle_timeout_s: float = 300.0
    threads: int = 32
    queue_depth: int = 256
    cache_bytes: int = 256 * MIB
    max_sessions_per_tenant: int = 10_000
    max_variable_bytes_per_tenant: int = 16 << 30
    max_graph_bytes_per_tenant: int = 4 << 30
    compile_processes: int = 2
    compile_process_nodes: int = 5000
    compile_timeout_s: float = 60.0


DEFAULT = Limits()
# Threads beyond the streams' for unary calls (health checks, CreateSession) that must stay answerable.
UNARY_THREADS = 64


def executor_threads(limits: Limits) -> int:
    """The gRPC executor's size: every allowed stream, plus the runs and the unary calls besides."""
    return limits.max_streams + limits.threads + UNARY_THREADS


def check_string(what: str, value: str, limits: Limits) -> None:
    size = len(value.encode())
    if size > limits.max_string_bytes:
        raise errors.InvalidArgumentError(None, None, f"{what} is {size} bytes; the limit is {limits.max_string_bytes}"
                                                      f" (--max-string-bytes)")


def check_segment_size(node_count: int, upload_bytes: int, limits: Limits) -> None:
    """An uploaded graph's node count and size (attributes, constants included), checked before its
    nodes are decoded."""
    if node_count > limits.max_graph_nodes:
        raise errors.InvalidArgumentError(None, None, f"a graph of {node_count} nodes is above the limit of "
                                                      f"{limits.max_graph_nodes} (--max-graph-nodes)")
    if upload_bytes > limits.max_graph_bytes:
        raise errors.InvalidArgumentError(None, None, f"a graph upload of {upload_bytes} bytes is above the limit of "
                                                      f"{limits.max_graph_bytes} (--max-graph-bytes)")


def check_plan_memory(plan, budget: int) -> None:
    """RESOURCE_EXHAUSTED naming the op and bytes when the plan's statically known tensors need more than
    `budget` bytes: one output alone, or all live at once (following the plan's frees)."""
    live: dict[int, int] = {}
    peak = total = 0
    for step in plan.steps:
        for slot in step.free:
            total -= live.pop(slot, 0)
        for slot, kind in zip(step.outputs, step.output_types):
            nbytes = static_bytes(kind)
            if nbytes > budget:
                raise _over_budget(step, f"its output alone needs {nbytes} bytes", budget)
            total += nbytes - live.get(slot, 0)
            live[slot] = nbytes
        peak = max(peak, total)
        if peak > budget:
            raise _over_budget(step, f"the run needs {peak} bytes live at once by then", budget)


def static_bytes(kind) -> int:
    """Bytes of a tensor of a fully known static shape (unknown dimensions count as 0)."""
    shape = getattr(kind, "shape", None)
    if shape is None or None in shape:
        return 0
    dtype = getattr(kind, "dtype", None)
    itemsize = np.dtype(dtype.np).itemsize if dtype is not None and getattr(dtype, "np", None) is not None else 8
    return int(np.prod(shape, dtype=object)) * itemsize


def _over_budget(step, why: str, budget: int) -> errors.ResourceExhaustedError:
    return errors.ResourceExhaustedError(None, step.node, f"op {step.node} ({step.op}): {why}, above the per-run "
                                                          f"memory budget of {budget} bytes (--run-memory-bytes)")


class Admission:
    """`threads` runs at a time, `queue_depth` more waiting; beyond that RESOURCE_EXHAUSTED at once.
    `waiting()` says how many runs wait for their turn now. A run holds its turn through `slot()`:

        with admission.slot() as slot:
            ...  # slot.step_aside() while it waits for another run's work, slot.step_back() to work again

    A run that steps aside (a follower of a dynamic batch, whose rows the batch's leader runs) frees its
    thread for another run meanwhile, but still counts against threads + queue_depth: otherwise a batch
    could never gather more runs than --threads (the others wait here for a turn, not in the batch).

    One lock, taken once on the way in and once on the way out when no run waits (a run's overhead
    matters: threading.Semaphore is Python code around a Condition)."""

    def __init__(self, limits: Limits):
        self.threads = limits.threads
        self.capacity = limits.threads + limits.queue_depth
        self.limits = limits
        self._running = 0
        self._waiting = 0
        self._aside = 0  # admitted runs that stepped aside: they hold no thread
        self._lock = threading.Lock()
        self._turn = threading.Condition(self._lock)

    def waiting(self) -> int:
        return self._waiting

    def full(self) -> bool:
        """Whether every thread is taken now: a run that came would wait for its turn (or be refused)."""
        return self._running >= self.threads

    def slot(self) -> Slot:
        return Slot(self)

    def _enter(self) -> None:
        with self._lock:
            if self._running < self.threads:
                self._running += 1
                return
            if self._running + self._waiting + self._aside >= self.capacity:
                raise errors.ResourceExhaustedError(None, None, f"the server is overloaded: {self.limits.threads} runs "
                                                                f"running and {self.limits.queue_depth} waiting "
                                                                f"(--threads, --queue-depth); retry later")
            self._await_turn()

    def _await_turn(self) -> None:
        """Wait for a thread and take it (the lock held)."""
        self._waiting += 1
        try:
            while self._running >= self.threads:
                self._turn.wait()
        finally:
            self._waiting -= 1
        self._running += 1

    def _leave(self, aside: bool) -> None:
        with self._lock:
            if aside:
                self._aside -= 1
                return
            self._running -= 1
            if self._waiting:
                self._turn.notify()

    def _step_aside(self) -> None:
        with self._lock:
            self._running -= 1
            self._aside += 1
            if self._waiting:
                self._turn.notify()

    def _step_back(self) -> None:
        with self._lock:  # admitted already: it waits for a thread however many wait, never refused
            self._aside -= 1
            self._await_turn()


class Slot:
    """One admitted run's turn (Admission.slot)."""

    __slots__ = ("_admission", "_aside")

    def __init__(self, admission: Admission):
        self._admission = admission
        self._aside = False

    def __enter__(self) -> Slot:
        self._admission._enter()
        return self

    def __exit__(self, *exc) -> None:
        self._admission._leave(self._aside)

    def step_aside(self) -> None:
        """Free the run's thread for another run while this one waits on other work."""
        if not self._aside:
            self._admission._step_aside()
            self._aside = True

    def step_back(self) -> None:
        """Take a thread again (waiting for one) before the run does work of its own."""
        if self._aside:
            self._admission._step_back()
            self._aside = False


class StreamGuard:
    """Counts open Run streams (RESOURCE_EXHAUSTED beyond max_streams) and closes idle ones: a stream
    whose client sends nothing for stream_idle_timeout_s is cancelled by one watchdog thread."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self._open: dict[int, list] = {}  # id -> [context, last activity]
        self._lock = threading.Lock()
        self._watchdog = threading.Thread(target=self._watch, name="graphexec-stream-idle", daemon=True)
        self._watchdog.start()

    def open(self, context) -> int:
        with self._lock:
            if len(self._open) >= self.limits.max_streams:
                raise errors.ResourceExhaustedError(None, None, f"{len(self._open)} Run streams are open, the limit "
                                                                f"(--max-streams); close idle ones or retry later")
            key = id(context)
            self._open[key] = [context, time.monotonic(), False]
            return key

    def active(self, key: int, busy: bool) -> None:
        """The stream received a request (busy) or answered it (idle again)."""
        entry = self._open.get(key)
        if entry is not None:
            entry[1], entry[2] = time.monotonic(), busy

    def close(self, key: int) -> None:
        with self._lock:
            self._open.pop(key, None)

    def count(self) -> int:
        return len(self._open)

    def _watch(self) -> None:
        timeout = self.limits.stream_idle_timeout_s
        while True:
            time.sleep(min(max(timeout / 4, 0.05), 5.0))
            now = time.monotonic()
            with self._lock:
                idle = [entry[0] for entry in self._open.values() if not entry[2] and now - entry[1] > timeout]
            for context in idle:
                context.cancel()
