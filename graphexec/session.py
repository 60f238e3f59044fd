"""tf.Session: nested fetches and feed dicts on top of a runner that executes compiled plans.

`Session()` runs in-process. `Session("grpc://host:port")`, or a plain `Session()` while
GRAPHEXEC_TARGET is set, returns the remote session of graphexec.client instead, which shares all of
the fetch and feed handling below and only replaces `_run_flat`.
"""
from __future__ import annotations

import os
import threading
import time

import numpy as np

from graphexec import default_session, ir
from graphexec.compiler.pipeline import compile_program
from graphexec.config import RunOptions
from graphexec.fetches import FetchMapper
from graphexec.framework import Graph, Tensor, get_default_graph
from graphexec.runtime.context import ExecContext
from graphexec.runtime.executor import LoadedPlan
from graphexec.runtime.feeds import convert_feed


class BaseSession:
    def __init__(self, target="", graph=None, config=None):
        self.graph: Graph = graph if graph is not None else get_default_graph()
        self.target = target
        self.config = config
        self._closed = False
        self._default_context = None

    # -- public API -----------------------------------------------------------------------------
    def run(self, fetches, feed_dict=None, options=None, run_metadata=None):
        if self._closed:
            raise RuntimeError("Attempted to use a closed Session.")
        mapper = FetchMapper(self.graph, fetches)
        feed_names, feed_values = self._normalize_feeds(feed_dict)
        results = self._run_flat(feed_names, feed_values, mapper.tensor_names, mapper.target_names, options,
                                 run_metadata)
        return mapper.build(results)

    def stream(self, fetches, feed_iter, max_in_flight=32, options=None):
        """Yield `run(fetches, feed_dict)` for each feed dict of `feed_iter`, in order. Remote sessions
        pipeline these over one streaming call with at most `max_in_flight` outstanding."""
        for feed_dict in feed_iter:
            yield self.run(fetches, feed_dict, options)

    def make_callable(self, fetches, feed_list=None, accept_options=False):
        """A function of the feed values (in feed_list order) that runs `fetches`, resolved once."""
        mapper = FetchMapper(self.graph, fetches)
        feeds = [self._feed_key(f) for f in (feed_list or [])]
        names = [t.name for t in feeds]

        def call(*values, options=None, run_metadata=None):
            if len(values) != len(feeds):
                raise TypeError(f"expected {len(feeds)} feed values, got {len(values)}")
            arrays = [convert_feed(v, ir.TensorType(t.dtype, t._shape), t.name) for t, v in zip(feeds, values)]
            return mapper.build(self._run_flat(names, arrays, mapper.tensor_names, mapper.target_names, options,
                                               run_metadata))

        return call

    def close(self):
        self._closed = True

    def as_default(self):
        return _DefaultSession(self)

    def __enter__(self):
        self._default_context = self.as_default()
        self._default_context.__enter__()
        return self

    def __exit__(self, *exc):
        self._default_context.__exit__(*exc)
        self._default_context = None
        self.close()

    @property
    def sess_str(self):
        return self.target

    # -- feeds -----------------------------------------------------------------------------------
    def _feed_key(self, key) -> Tensor:
        if hasattr(key, "_as_tensor"):
            key = key._as_tensor()
        if isinstance(key, str):
            key = self.graph.as_graph_element(key if ":" in key else key + ":0")
        if not isinstance(key, Tensor):
            raise TypeError(f"Cannot interpret feed_dict key {key!r} as a Tensor")
        if key.graph is not self.graph:
            raise ValueError(f"Cannot feed {key.name}: it is not an element of this session's graph.")
        return key

    def _normalize_feeds(self, feed_dict):
        if not feed_dict:
            return [], []
        named = []  # (name, tensor, value); Tensor.name is computed on each access, so read it once
        for key, value in feed_dict.items():
            tensor = self._feed_key(key)
            named.append((tensor.name, tensor, value))
        named.sort(key=_first)  # by name only (stable), as tensors do not compare
        names = [name for name, _, _ in named]
        values = [convert_feed(v, ir.TensorType(t.dtype, t._shape), name) for name, t, v in named]
        return names, values

    def _run_flat(self, feed_names, feed_values, fetch_names, targets, options, run_metadata):
        raise NotImplementedError


def _first(item):
    return item[0]


class InProcessRunner:
    """Compiles and runs plans against one variable store (in-process sessions; GPU tests use it with CuPy)."""

    def __init__(self, xp=np, device="/cpu:0"):
        self.xp = xp
        self.device = device
        self.variables: dict = {}
        self.rngs: dict = {}
        self._plans: dict = {}
        self._lock = threading.Lock()

    def plan_for(self, nodes, digest, seed, feed_names, fetch_names, targets):
        key = (digest, tuple(feed_names), tuple(fetch_names), tuple(targets))
        loaded = self._plans.get(key)
        if loaded is not None:
            return loaded, True
        program = ir.Program(nodes, tuple(feed_names), tuple(fetch_names), tuple(targets), seed)
        loaded = LoadedPlan(compile_program(program, digest), self.xp)
        with self._lock:
            self._plans[key] = loaded
        return loaded, False

    def context(self, seed, timeout_s=None) -> ExecContext:
        deadline = time.monotonic() + timeout_s if timeout_s else None
        return ExecContext(self.xp, self.variables, self.rngs, seed, deadline, self.device)


class Session(BaseSession):
    """An in-process session (or a remote one, see the module docstring)."""

    def __new__(cls, target="", graph=None, config=None):
        target = target or os.environ.get("GRAPHEXEC_TARGET", "")
        if cls is Session and target:
            from graphexec.client.remote import RemoteSession

            return RemoteSession(target, graph, config)
        return super().__new__(cls)

    def __init__(self, target="", graph=None, config=None):
        super().__init__(target, graph, config)
        self._runner = InProcessRunner()

    def _run_flat(self, feed_names, feed_values, fetch_names, targets, options, run_metadata):
        graph = self.graph
        started = time.perf_counter()
        loaded, hit = self._runner.plan_for(graph.nodes(), graph.digest(), graph.seed, feed_names, fetch_names,
                                            targets)
        compiled = time.perf_counter()
        options = options or RunOptions()
        timeout = options.timeout_in_ms / 1000 if options.timeout_in_ms else None
        stats = [] if run_metadata is not None and options.trace_level >= RunOptions.SOFTWARE_TRACE else None
        results = loaded.run(self._runner.context(graph.seed, timeout), feed_values, stats)
        if run_metadata is not None:
            run_metadata.record(stats or [], plan_cache_hit=hit, compile_ms=(compiled - started) * 1e3,
                                plan=loaded.plan, device=self._runner.device, worker="in-process")
        return [_owned(r) for r in results]

    def load_variable(self, name, value, dtype):
        self._runner.variables[name] = np.array(value, dtype=dtype.np)


def _owned(value):
    """Fetched arrays are the caller's: never a view of a variable, constant or feed."""
    if isinstance(value, np.ndarray):
        return value.copy() if (value.base is not None or not value.flags.writeable) else value
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


# -- default session -----------------------------------------------------------------------------
class _DefaultSession:
    def __init__(self, session):
        self.session = session

    def __enter__(self):
        default_session.push(self.session)
        self._graph_context = self.session.graph.as_default()
        self._graph_context.__enter__()
        return self.session

    def __exit__(self, *exc):
        self._graph_context.__exit__(*exc)
        default_session.pop(self.session)


get_default_session = default_session.get_default_session
clear_default_sessions = default_session.clear
default_session_for = default_session.default_session_for


__all__ = ["Session", "InteractiveSession", "get_default_session"]
