"""tf.Session: runs a graph in this process, or on a server.

`Session()` runs in-process: it compiles and places each (feeds, fetches, targets) signature once
and runs the plan on the engine a server's workers use (runtime.worker.WorkerCore) over a
MemoryStore of its own, so in-process and remote runs differ only in where the store and the
kernels live. `Session("grpc://host:port")`, or a plain `Session()` while GRAPHEXEC_TARGET is set,
returns graphexec.client.remote.RemoteSession instead; both share BaseSession's fetch and feed
handling and only replace `_run_flat`.

In-process semantics: the user's feed arrays are never written to (the engine does not own them),
and fetched arrays are the caller's (copied when they would alias a variable, a constant or a feed).
"""
from __future__ import annotations

import itertools
import os
import threading
import time
from dataclasses import dataclass

import numpy as np

from graphexec import client, dtypes, ir
from graphexec.base_session import BaseSession, printing_failures, write_printed
from graphexec.compiler.pipeline import compile_program
from graphexec.config import RunOptions
from graphexec.framework import Graph
from graphexec.runtime import blas, intra_op, placement, tuning
from graphexec.runtime.metadata import COMPILED, MEMORY, describe_run
from graphexec.runtime.store import MemoryStore
from graphexec.runtime.worker import CachedPlan, PlanCall, PlanResult, WorkerCore, run_serialized

_DEFAULT_OPTIONS = RunOptions()  # read only, never changed
CONTAINER = ""  # an in-process session's store holds one container: the session's variables


@dataclass(frozen=True)
class PreparedPlan:
    """A compiled plan and its placement, decided once per signature."""

    cached: CachedPlan
    placement: placement.Placement


class InProcessRunner:
    """Compiles and places plans once and runs them on a WorkerCore over a MemoryStore of its own
    (in-process sessions; GPU tests use it with device_type GPU, so the kernels run on CuPy)."""

    def __init__(self, device_type: str = placement.CPU, allow_soft_placement: bool = True):
        self.core = WorkerCore(MemoryStore(), device_type, feeds_owned=False)
        self.allow_soft_placement = allow_soft_placement
        self._plans: dict[tuple, PreparedPlan] = {}
        self._keys = itertools.count()
        self._lock = threading.Lock()

    def prepare(self, graph: Graph, feed_names, fetch_names, targets) -> tuple[PreparedPlan, str, float]:
        """(plan, its source: COMPILED or MEMORY, milliseconds spent compiling it: 0 for a cached one)."""
        signature = (graph.digest(), tuple(feed_names), tuple(fetch_names), tuple(targets))
        prepared = self._plans.get(signature)
        if prepared is not None:
            return prepared, MEMORY, 0.0
        started = time.perf_counter()
        program = ir.Program(graph.nodes(), *signature[1:], graph.seed)
        cached = CachedPlan.of(f"in-process-{next(self._keys)}", compile_program(program, signature[0]))
        prepared = PreparedPlan(cached, cached.placement(self.core.device_types, self.allow_soft_placement))
        with self._lock:
            prepared = self._plans.setdefault(signature, prepared)
        return prepared, COMPILED, (time.perf_counter() - started) * 1e3

    def run(self, prepared: PreparedPlan, feeds: list, trace: bool = False,
            timeout_s: float | None = None) -> PlanResult:
        placed = prepared.placement
        call = PlanCall(CONTAINER, prepared.cached.key, feeds, 0, "", placed.device_type, placed.host_steps, trace,
                        timeout_s)
        if prepared.cached.writes_variables:
            return run_serialized(self.core.store, call, prepared.cached, self.core.run)
        return self.core.run(call, prepared.cached)  # the hot path of a small run: no lock to take

    def variables(self) -> dict:
        """The variables' current values (host arrays), by name."""
        return self.core.store.read_variables(CONTAINER)[1]

    def load_variable(self, name: str, value: np.ndarray) -> None:
        store = self.core.store
        value.setflags(write=False)  # variables hold arrays nobody writes (fetches copy them)
        with store.lock(CONTAINER):
            version, _ = store.begin_run(CONTAINER, 0)
            store.commit(CONTAINER, version, {name: value}, 0, b"")


class Session(BaseSession):
    """An in-process session (or a remote one, see the module docstring)."""

    def __new__(cls, target="", graph=None, config=None):
        target = target or os.environ.get("GRAPHEXEC_TARGET", "")
        if cls is Session and target:
            return client.RemoteSession(target, graph, config)
        return super().__new__(cls)

    def __init__(self, target="", graph=None, config=None):
        super().__init__(target, graph, config)
        blas.limit_threads(1)  # graphexec splits large kernels over its own threads (runtime/intra_op.py)
        tuning.keep_freed_memory()  # each step's arrays reuse freed memory (runtime/tuning.py)
        intra_op.set_threads(int(getattr(config, "intra_op_parallelism_threads", 0) or 0))
        intra_op.prepare_spin()  # compiled once per process (~0.5 s with numba's disk cache warm)
        blas.warm_buffers(intra_op.threads())  # once per process (runtime/blas.py says why)
        self._runner = InProcessRunner(allow_soft_placement=bool(getattr(config, "allow_soft_placement", True)))

    def _run_flat(self, feed_names, feed_values, fetch_names, targets, options, run_metadata):
        prepared, source, compile_ms = self._runner.prepare(self.graph, feed_names, fetch_names, targets)
        options = options or _DEFAULT_OPTIONS
        timeout = options.timeout_in_ms / 1000 if options.timeout_in_ms else None
        trace = run_metadata is not None and options.trace_level >= RunOptions.SOFTWARE_TRACE
        result = printing_failures(lambda: self._runner.run(prepared, feed_values, trace, timeout))
        write_printed(result.printed)
        if run_metadata is not None:
            describe_run(prepared.cached.plan, prepared.placement, result, source, compile_ms,
                         options.trace_level >= RunOptions.FULL_TRACE, run_metadata)
        return [_owned(r, feed_values) for r in result.fetches]

    def load_variable(self, name, value, dtype):
        array = dtypes.string_array(value) if dtype is dtypes.string else np.array(value, dtype=dtype.np)
        self._runner.load_variable(name, array)

    @staticmethod
    def reset(target, containers=None, config=None):
        """tf.Session.reset: drop the variables of `containers` on the server at `target`. In-process
        sessions share no state (each holds its own variables), so an empty target resets nothing."""
        target = target or os.environ.get("GRAPHEXEC_TARGET", "")
        if target:
            client.RemoteSession.reset(target, containers, config)


def _owned(value, feeds):
    """Fetched arrays are the caller's: never a view of a variable, constant or feed (a fetched
    placeholder is the fed array itself)."""
    if isinstance(value, np.ndarray):
        if value.dtype == object and value.ndim == 0:  # a tf.string scalar is fetched as bytes, as in TF1
            return value[()]
        if value.base is not None or not value.flags.writeable:
            return value.copy()
        for feed in feeds:
            if value is feed:
                return value.copy()
    return value


class InteractiveSession(Session):
    """A session that installs itself as the default, for shells and notebooks."""

    def __init__(self, target="", graph=None, config=None):
        super().__init__(target, graph, config)
        self._interactive_default = self.as_default()
        self._interactive_default.__enter__()

    def close(self):
        if self._interactive_default is not None:
            self._interactive_default.__exit__(None, None, None)
            self._interactive_default = None
        super().close()


__all__ = ["Session", "InteractiveSession"]
