"""The graphexec client: RemoteSession (tf.Session("grpc://host:port")), its connection and retry policy.

Both load on first use (PEP 562): their modules bring grpc, which costs about a tenth of
`import graphexec`, and in-process sessions never need it."""
from __future__ import annotations

import importlib

__all__ = ["RemoteSession", "RetryPolicy"]
_LAZY = {"RemoteSession": "graphexec.client.remote", "RetryPolicy": "graphexec.client.retry"}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = getattr(importlib.import_module(_LAZY[name]), name)
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
