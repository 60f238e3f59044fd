"""The default-session stack (per thread): `with sess.as_default()` pushes, `Tensor.eval()` and
`Variable.load()` read it. It lives below graphexec.session so graph-side modules can use it without
importing the session (which imports them)."""
from __future__ import annotations

import threading

_local = threading.local()


def _stack() -> list:
    if not hasattr(_local, "stack"):
        _local.stack = []
    return _local.stack


def push(session) -> None:
    _stack().append(session)


def pop(session) -> None:
    """Remove the innermost entry of `session` (sessions may be nested, and exited out of order)."""
    stack = _stack()
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is session:
            del stack[i]
            return


def clear() -> None:
    _stack().clear()


def get_default_session():
    stack = _stack()
    return stack[-1] if stack else None


def default_session_for(graph, session=None):
    """`session`, or the default session, checked to run `graph`."""
    session = session or get_default_session()
    if session is None:
        raise ValueError("Cannot evaluate tensor using `eval()`: No default session is registered. Use "
                         "`with sess.as_default()` or pass an explicit session to `eval(session=sess)`")
    if session.graph is not graph:
        raise ValueError("Cannot use the given session to evaluate tensor: the tensor's graph is different "
                         "from the session's graph.")
    return session
