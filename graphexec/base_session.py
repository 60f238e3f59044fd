"""What every tf.Session shares: nested fetches, feed dicts, callables and the default-session context.

Subclasses run flat lists through `_run_flat`: graphexec.session.Session in this process,
graphexec.client.remote.RemoteSession on a server.
"""
from __future__ import annotations

import sys

from graphexec import errors, ir, progress
from graphexec.default_session import DefaultSession
from graphexec.fetches import FetchMapper
from graphexec.framework import Graph, Tensor, get_default_graph
from graphexec.runtime.feeds import convert_feed

MAX_PREPARED_RUNS = 256
ITERATORS = "graphexec_iterators"  # graph collection of tf.data iterators (graphexec/data/iterator.py)


class BaseSession:
    def __init__(self, target="", graph=None, config=None):
        self.graph: Graph = graph if graph is not None else get_default_graph()
        self.target = target
        self.config = config
        self._closed = False
        self._default_context = None
        self._ancestor_cache: dict = {}
        self._prepared_runs: dict = {}  # see _prepared

    # -- public API -----------------------------------------------------------------------------
    def run(self, fetches, feed_dict=None, options=None, run_metadata=None):
        if self._closed:
            raise RuntimeError("Attempted to use a closed Session.")
        prepared = self._prepared(fetches, feed_dict)
        if prepared is None:
            mapper = FetchMapper(self.graph, fetches)
            feed_names, feed_values = self._normalize_feeds(feed_dict)
        else:
            mapper, feed_names, fed = prepared
            values = list(feed_dict.values()) if feed_dict else ()
            feed_values = [convert_feed(values[i], expected, name, tensor.op.source)
                           if expected.shape is tensor._shape else self._convert(tensor, values[i])
                           for i, tensor, name, expected in fed]
        return mapper.build(self._run_mapped(mapper, feed_names, feed_values, options, run_metadata, feed_dict))

    def _prepared(self, fetches, feed_dict):
        """(mapper, feed names, [(position in feed_dict, tensor, name, type)] in name order) for a run that
        repeats an earlier one's fetches and feed keys (a training loop's): resolved once, not per run.
        None when the fetches are nested or unhashable (those are resolved every time)."""
        kind = type(fetches)
        if kind is list or kind is tuple:
            for fetch in fetches:
                if isinstance(fetch, (list, tuple, dict)):
                    return None
            fetch_key = (kind, *fetches)
        elif isinstance(fetches, (tuple, dict)):  # namedtuples and dicts: structures of their own
            return None
        else:
            fetch_key = (kind, fetches)
        key = (fetch_key, *feed_dict) if feed_dict else fetch_key
        try:
            prepared = self._prepared_runs.get(key)
        except TypeError:  # an unhashable fetch or feed key
            return None
        if prepared is None:
            mapper = FetchMapper(self.graph, fetches)
            named = sorted(((self._feed_key(k), i) for i, k in enumerate(feed_dict or ())), key=_name_of_first)
            fed = tuple((i, tensor, tensor.name, ir.TensorType(tensor.dtype, tensor._shape)) for tensor, i in named)
            if len(self._prepared_runs) >= MAX_PREPARED_RUNS:
                self._prepared_runs.clear()
            prepared = self._prepared_runs[key] = (mapper, [name for _, _, name, _ in fed], fed)
        return prepared

    def stream(self, fetches, feed_iter, max_in_flight=256, options=None):
        """Yield `run(fetches, feed_dict)` for each feed dict of `feed_iter`, in order. Remote sessions
        pipeline these over one streaming call with at most `max_in_flight` outstanding. A sized `feed_iter`
        (a list) shows a progress bar on a terminal (graphexec.progress)."""
        results = self._stream(fetches, feed_iter, max_in_flight, options)
        return progress.track(results, progress.length(feed_iter), "sess.stream")

    def _stream(self, fetches, feed_iter, max_in_flight, options):
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
            arrays = [convert_feed(v, ir.TensorType(t.dtype, t._shape), t.name, t.op.source)
                      for t, v in zip(feeds, values)]
            return mapper.build(self._run_mapped(mapper, names, arrays, options, run_metadata, dict(zip(feeds, values))))

        return call

    def close(self):
        self._closed = True

    def as_default(self):
        return DefaultSession(self)

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
        values = [convert_feed(v, ir.TensorType(t.dtype, t._shape), name, t.op.source) for name, t, v in named]
        return names, values

    @staticmethod
    def _convert(tensor, value):
        """A fed value checked against the tensor's static type now (set_shape may have refined it)."""
        return convert_feed(value, ir.TensorType(tensor.dtype, tensor._shape), tensor.name, tensor.op.source)

    def _run_flat(self, feed_names, feed_values, fetch_names, targets, options, run_metadata):
        raise NotImplementedError

    def _run_pipelined(self, feed_names, feed_values, fetch_names, targets, options, run_metadata):
        """A run fed by a tf.data iterator: RemoteSession sends these over one long-lived Run stream."""
        return self._run_flat(feed_names, feed_values, fetch_names, targets, options, run_metadata)

    # -- tf.data iterators -------------------------------------------------------------------------
    def _run_mapped(self, mapper, feed_names, feed_values, options, run_metadata, feed_dict):
        iterators = self.graph.get_collection(ITERATORS)
        targets = mapper.target_names
        if not iterators:
            return self._run_flat(feed_names, feed_values, mapper.tensor_names, targets, options, run_metadata)
        targets = list(targets)
        for iterator in iterators:  # an iterator's initializer runs here, in the client
            for name in iterator.initializer_names():
                if name in targets:
                    iterator.initialize(self, name, feed_dict)
                    targets.remove(name)
        if not targets and not mapper.tensor_names:
            return []
        fed = set(feed_names)
        needed = self._ancestors(mapper.tensor_names, targets)
        pulled = []
        for iterator in iterators:
            outputs = iterator.output_tensors()
            if outputs and outputs[0].op.name in needed and outputs[0].name not in fed:
                pulled += zip(outputs, iterator.next_values(self, feed_dict))
        if not pulled:
            return self._run_flat(feed_names, feed_values, mapper.tensor_names, targets, options, run_metadata)
        named = sorted([(name, value) for name, value in zip(feed_names, feed_values)] +
                       [(t.name, convert_feed(v, ir.TensorType(t.dtype, t._shape), t.name, t.op.source))
                        for t, v in pulled], key=_first)
        return self._run_pipelined([n for n, _ in named], [v for _, v in named], mapper.tensor_names, targets,
                                   options, run_metadata)

    def _ancestors(self, tensor_names, targets) -> frozenset:
        """Names of the ops a run of these fetches reads (cached: an op's inputs never change)."""
        key = (tuple(tensor_names), tuple(targets))
        found = self._ancestor_cache.get(key)
        if found is None:
            stack = [self.graph.as_graph_element(n).op for n in tensor_names]
            stack += [self.graph.get_operation_by_name(n) for n in targets]
            seen = {}
            while stack:
                op = stack.pop()
                if op.name not in seen:
                    seen[op.name] = op
                    stack.extend(t.op for t in op.inputs)
                    stack.extend(op.control_inputs)
            found = self._ancestor_cache[key] = frozenset(seen)
        return found


def write_printed(printed) -> None:
    """Text the run's printing ops (tf.Print, tf.print) wrote, to the user's stderr, in order."""
    if printed:
        sys.stderr.write("".join(printed))
        sys.stderr.flush()


def printing_failures(run):
    """Calls `run()`; when the run fails, what it printed before failing is written first."""
    try:
        return run()
    except errors.OpError as exc:
        write_printed(exc.printed)
        raise


def _first(item):
    return item[0]


def _name_of_first(item):
    return item[0].name
