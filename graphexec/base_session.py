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
            return mapper.build(self._run_flat(names, arrays, mapper.tensor_names, mapper.target_names, options,
                                               run_metadata))

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

    def _run_flat(self, feed_names, feed_values, fetch_names, targets, options, run_metadata):
        raise NotImplementedError


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
