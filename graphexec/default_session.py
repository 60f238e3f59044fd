"""The default session: a per-thread stack that `with sess.as_default()` pushes, and that Tensor.eval,
Operation.run and Variable.load consult. A low module (it imports nothing of graphexec), so that the
graph API can reach sessions without importing them."""
from __future__ import annotations

import threading

_local = threading.local()


def _stack() -> list:
    if not hasattr(_local, "stack"):
        _local.stack = []
    return _local.stack


class DefaultSession:
    """`session.as_default()`: makes the session, and its graph, the defaults inside a `with` block."""

    def __init__(self, session):
        self.session = session

    def __enter__(self):
        _stack().append(self.session)
        self._graph_context = self.session.graph.as_default()
        self._graph_context.__enter__()
        return self.session

    def __exit__(self, *exc):
        self._graph_context.__exit__(*exc)
        stack = _stack()
        if self.session in stack:  # the innermost entry of this session
            stack.reverse()
            stack.remove(self.session)
            stack.reverse()


def get_default_session():
    stack = _stack()
    return stack[-1] if stack else None


def clear_default_sessions() -> None:
    _stack().clear()


def default_session_for(graph, session=None):
    """`session`, else the default one, after checking that it runs `graph`."""
    session = session or get_default_session()
    if session is None:
        raise ValueError("Cannot evaluate tensor using `eval()`: No default session is registered. Use "
                         "`with sess.as_default()` or pass an explicit session to `eval(session=sess)`")
    if session.graph is not graph:
        raise ValueError("Cannot use the given session to evaluate tensor: the tensor's graph is different "
                         "from the session's graph.")
    return session
