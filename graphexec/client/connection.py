"""One gRPC channel to a graphexec server: unary calls with retries, the Run stream, error mapping.

Calls send and receive raw bytes (graphexec.rpc.methods); tensor-carrying messages go through
graphexec.rpc.codec's hand-written tensor fields (one copy out, zero-copy views in). A failed call
raises the tf.errors class of its status code with the server's message (graphexec.rpc.status).
"""
from __future__ import annotations

import time

import grpc
import numpy as np

from graphexec import errors
from graphexec.client import direct
from graphexec.client.retry import RetryPolicy, store_unavailable
from graphexec.proto.v1 import service_pb2 as spb
from graphexec.rpc import codec, methods, status, tls
from graphexec.rpc.frames import API_METHOD_NUMBERS, RUN_METHODS
from graphexec.rpc.tensors import dtype_from_enum, tensors_from_protos

# Round-robin over every address the target resolves to (dns:///name:port behind several replicas,
# or ipv4:a:p,b:q): sessions and callables live in the shared store, so any replica serves any call.
GRPC_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1),
                ("grpc.enable_retries", 0), ("grpc.lb_policy_name", "round_robin")]


def parse_target(target: str) -> tuple[str, bool]:
    """(address, whether over TLS): "grpc://host:port" -> ("host:port", False), "grpcs://host:port" ->
    ("host:port", True); the address may also be "dns:///name:port" or "ipv4:a:p,b:q"."""
    scheme, _, address = target.partition("://")
    if scheme not in ("grpc", "grpcs") or not address:
        raise ValueError(f"graphexec targets look like grpc://host:port or grpcs://host:port, got {target!r}")
    return address.rstrip("/"), scheme == "grpcs"


class Connection:
    """grpcs:// targets take their TLS settings from GRAPHEXEC_TLS_CA/_CERT/_KEY; every call carries
    GRAPHEXEC_TOKEN, when set, as its bearer token (graphexec.rpc.tls)."""

    def __init__(self, target: str, retry: RetryPolicy | None = None):
        self.address, self.secure = parse_target(target)
        self.retry = retry or RetryPolicy()
        self.direct: direct.DirectLink | None = None  # the server's direct link for runs, once announced
        self._closed = False
        if self.secure:
            self.channel = grpc.secure_channel(self.address, tls.client_channel_credentials(), options=GRPC_OPTIONS)
        else:
            self.channel = grpc.insecure_channel(self.address, options=GRPC_OPTIONS)
        self.metadata = tls.bearer_metadata() or None
        self._calls = methods.client_calls(self.channel, methods.GRAPH_EXEC_SERVICE)

    def use_direct(self, port: int, address: str = "", local_name: str = "") -> None:
        """Send runs over a direct link when it can be used: a worker's at `address` (HOST:PORT, one that
        takes runs itself: graphexec.server.worker_runs), else the server's on `port` of the target's host;
        on its Unix socket `local_name` instead, when this client can reach it (graphexec.rpc.shared_memory)."""
        host = direct.host_of(self.address)
        if address:
            host, _, port_text = address.rpartition(":")
            host, port = host.strip("[]"), int(port_text) if port_text.isdigit() else 0
        if not port or not host or not direct.enabled() or (
                self.direct and (self.direct.host, self.direct.port) == (host, port)):
            return
        token = next((value[len("Bearer "):] for key, value in self.metadata or () if key == "authorization"), "")
        previous = self.direct
        self.direct = direct.link_to(host, port, tls.client_ssl_context() if self.secure else None, token,
                                     worker=bool(address), local_name=local_name)
        if previous is not None and not self._closed:
            direct.release(previous)

    def call(self, method: str, data, timeout: float | None = None, retry: bool = True) -> bytes:
        """Raw unary call with retries on UNAVAILABLE; raises the matching tf.errors class. Runs take the
        direct link when there is one, and gRPC when it cannot carry them. `data` is the request's bytes,
        or a list of the buffers they join (a run's feeds as views of their arrays): the direct link
        writes those from where they are, so a large feed is not copied into one request first."""
        metadata = self.metadata
        if self.direct is not None and method in API_METHOD_NUMBERS and method not in self.direct.lacks:
            try:
                return self.direct.call(API_METHOD_NUMBERS[method], data, timeout)
            except direct.Broke as exc:  # the server checks whether the run killed that worker
                metadata = (*(metadata or ()), (methods.WORKER_LINK_BROKE, exc.address))
            except direct.Unusable:
                pass
            except errors.UnavailableError:  # retried as gRPC retries it: over gRPC, under its policy
                if not retry:
                    raise
            except errors.UnimplementedError:  # a server older than this method on the link: gRPC from now on
                if method in RUN_METHODS:
                    raise
                self.direct.lacks.add(method)
            except errors.NotFoundError as exc:
                # A worker of another release (a rolling upgrade) neither finds nor runs this release's plans
                # (compiler.plan.compiler_version); the server, which made the callable, runs it.
                if not (self.direct.worker and exc.message.startswith("callable ")):
                    raise
                self.direct.set_aside(f"to worker {self.direct.host}:{self.direct.port} does not hold this "
                                      f"session's plans (another release of graphexec?)")
        if isinstance(data, list):
            data = b"".join(data)
        deadline = None if timeout is None else time.monotonic() + timeout
        stub = self._calls[method]
        try:  # the first attempt directly: retries are rare, and the retry machinery costs on every call
            return stub(data, timeout=timeout, metadata=metadata)
        except grpc.RpcError as exc:
            if not retry:
                raise status.error_from_rpc(exc) from None
            failed = exc

        def attempt():
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            return stub(data, timeout=remaining, metadata=metadata)

        try:
            # A run carries a request id: retrying it while its outcome is unknown ends in the truth.
            outcome_unknown = store_unavailable if method in RUN_METHODS else None
            return self.retry.call(attempt, deadline, outcome_unknown, failed)
        except grpc.RpcError as exc:
            raise status.error_from_rpc(exc) from None

    def message(self, method: str, request, response_class, timeout: float | None = None):
        return response_class.FromString(self.call(method, request.SerializeToString(), timeout))

    def stream(self, frames, timeout: float | None = None):
        """The Run stream: an iterator of request frames in, an iterator of response bytes out."""
        return self._calls["Run"](frames, timeout=timeout, metadata=self.metadata)

    def close(self):
        if self.direct is not None and not self._closed:
            direct.release(self.direct)
        self._closed = True
        self.channel.close()


# -- frames of the Run stream ----------------------------------------------------------------------
def request_frames(request: spb.RunRequest, feeds: list):
    """Parts of the feeds above the chunk size, then the request with content-less shells for them."""
    return codec.parted_frames(request, "feeds", feeds, request.parted_feeds)


class ResponseAssembler:
    """Turns the response frames of the Run stream back into the answers of runs, in order."""

    def __init__(self):
        self._parts: dict[int, tuple[np.ndarray, int]] = {}

    def feed(self, data: bytes):
        """(response, fetches) when `data` completes a run; None for a part frame. Raises the run's
        tf.errors class when it failed. (For a stream of single runs; see `answers` for batches.)"""
        answers = self.answers(data)
        if not answers:
            return None
        if isinstance(answers[0], errors.OpError):
            raise answers[0]
        return answers[0]

    def answers(self, data: bytes) -> list:
        """The runs `data` completes, in order: (response, fetches) for each, or the tf.errors
        exception of a failed run (returned, not raised, so that the runs before it are delivered)."""
        response, fetches, raw = codec.decode_tensor_message(spb.RunResponse, data, "fetches", "part_data")
        if response.HasField("part"):
            self._accept(response.part, raw)
            return []
        if response.batch:
            return [self._answer(item, tensors_from_protos(item.fetches)) for item in response.batch]
        return [self._answer(response, fetches)]

    def _answer(self, response, fetches):
        if response.status.code:
            self._parts.clear()
            return status.error_from_status(response.status.code, response.status.message, response.status.printed)
        for index in response.parted_fetches:
            array, filled = self._parts.pop(index)
            if filled != array.nbytes:
                raise errors.DataLossError(None, None, f"fetch {index} arrived incomplete")
            fetches[index] = array
        return response, fetches

    def _accept(self, part, raw) -> None:
        if part.index not in self._parts:
            dtype = dtype_from_enum(part.dtype).np
            self._parts[part.index] = (np.empty(tuple(part.shape), dtype), 0)
        array, filled = self._parts[part.index]
        flat = array.reshape(-1).view(np.uint8)
        flat[filled:filled + len(raw)] = np.frombuffer(raw, np.uint8)
        self._parts[part.index] = (array, filled + len(raw))
