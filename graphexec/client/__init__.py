"""The graphexec client: RemoteSession (tf.Session("grpc://host:port")), its connection and retry policy."""
from graphexec.client.remote import RemoteSession
from graphexec.client.retry import RetryPolicy

__all__ = ["RemoteSession", "RetryPolicy"]
