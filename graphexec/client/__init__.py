"""The graphexec client: RemoteSession (tf.Session("grpc://host:port")), its connection and retry policy.

Both load on first use (PEP 562): their modules bring grpc, which costs about a tenth of
`import graphexec`, and in-process sessions never need it."""
from __future__ import annotations

from graphexec import lazy

__all__ = ["RemoteSession", "RetryPolicy"]
__getattr__, __dir__ = lazy.attributes(globals(), {
    "RemoteSession": ("graphexec.client.remote", "RemoteSession"),
    "RetryPolicy": ("graphexec.client.retry", "RetryPolicy")})
