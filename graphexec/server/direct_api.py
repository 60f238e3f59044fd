"""The API's direct link: RunCallable, RunStep and MakeCallable as frames on a TCP (or TLS) socket, beside gRPC.

Why: a small run's own work is a few tens of microseconds, but a unary gRPC call through grpcio costs
~300 us of CPU in the two processes (its echo floor, bench/README.md); the same call as a frame on a
socket costs ~20 us. Python clients learn the port from CreateSession (`direct_port`) and send their
runs here, falling back to gRPC when the port cannot be reached. MakeCallable, a session's other call
on its first run, comes too: over gRPC it costs a run's gRPC overhead again, which after an idle moment
is most of a replica's first run (W6). Everything else (sessions, graphs, the Run stream) stays on
gRPC, and other languages may keep every call there.

The link keeps gRPC's promises: the same handlers answer (GraphExecServicer's, so the same limits,
tenant checks, request ids and error statuses), the same TLS (with client certificates when the gRPC
port requires them) and bearer tokens, checked once per connection in HELLO; the run's deadline
travels in its RUN frame; a connection counts as an open Run stream (--max-streams) and is closed
when idle past --stream-idle-timeout-s; and a run whose client hangs up is cancelled (a watcher
polls the connections of runs in progress, as gRPC notices a cancelled call).

Frames (graphexec.rpc.frames): HELLO carries the bearer token (UTF-8, may be empty) and is answered
RESULT (empty), or FAILURE (UNAUTHENTICATED, or RESOURCE_EXHAUSTED when too many are open) and closed. RUN
carries a 16-byte prefix (seconds left as a little-endian f64, negative for none; the method, 1
RunCallable, 2 RunStep or 3 MakeCallable; 7 zero bytes) and the request message, so the message starts
8-aligned. A method the server does not know is answered UNIMPLEMENTED (clients then use gRPC for it).

Without TLS the link also listens on an abstract Unix socket (`local_name`, announced as CreateSession's
`direct_socket`) for clients on this host: HELLO there may carry a memfd, and a SHARED_RUN frame (the
prefix and the request's length) then names a request written in it (graphexec.rpc.shared_memory says
what is checked).
"""
from __future__ import annotations

import logging
import os
import secrets
import select
import socket
import ssl
import threading
import time

from graphexec import errors
from graphexec.rpc import methods, shared_memory, status
from graphexec.rpc.frames import (API_METHODS, API_PREFIX, FAILURE, HEAD, HELLO, RESULT, RUN, SHARED_RUN, Closed,
                                  TooLarge, read_frame, send_frame)
from graphexec.server import telemetry
from graphexec.server.direct_batching import Reactor

PREFIX, METHODS = API_PREFIX, API_METHODS
log = logging.getLogger("graphexec.server")
MAX_HELLO_BYTES = 4096  # before the caller is authenticated, nothing larger is read
HANDSHAKE_TIMEOUT_S = 5.0
MAX_HANDSHAKES = 256  # connections not yet past HELLO; more are closed at once (each holds a thread meanwhile)
WATCH_INTERVAL_S = 0.05  # how often the connections of runs in progress are checked for a hang-up
SERVICE = methods.GRAPH_EXEC_SERVICE.full_name
_UNKNOWN_METHOD = "the direct link carries RunCallable (1), RunStep (2) and MakeCallable (3) only"


class _Call:
    """The context a handler sees for one direct call (the part of grpc.ServicerContext it uses)."""

    __slots__ = ("callbacks", "caller", "code_answered", "deadline", "decode")

    def __init__(self, caller: str, left: float, decode=None):
        self.caller, self.decode = caller, decode  # decode: the connection's RunCallable decoder
        self.deadline = None if left < 0 else time.monotonic() + left
        self.callbacks: list = []
        self.code_answered = None

    def add_callback(self, callback) -> bool:
        self.callbacks.append(callback)
        return True

    def time_remaining(self):
        return None if self.deadline is None else max(self.deadline - time.monotonic(), 0.0)

    def code(self):
        return self.code_answered

    def cancel(self) -> None:
        for callback in self.callbacks:
            callback()


class _Connection:
    """One client connection: what the stream guard and the hang-up watcher act on, and the shared
    memory a same-host client handed over (graphexec.rpc.shared_memory), if any."""

    __slots__ = ("call", "decode", "region", "sock", "why_no_region")

    def __init__(self, sock, region=None, why_no_region: str = "", decode=None):
        self.sock, self.call, self.region, self.why_no_region = sock, None, region, why_no_region
        self.decode = decode  # RunCallable's (servicer.run_callable_decoder): a template per connection

    def cancel(self) -> None:
        """Close the connection (idle past the timeout); the client reconnects on its next run."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class DirectApiServer:
    """Serves the servicer's RunCallable, RunStep and MakeCallable on `port` of `host` (0: any free one),
    and with `local` on an abstract Unix socket too (`local_name`; see the module docstring)."""

    def __init__(self, servicer, host: str, port: int = 0, authenticate=None, ssl_context: ssl.SSLContext | None = None,
                 interceptor: telemetry.Interceptor | None = None, local: bool = False):
        family, _, _, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                      flags=socket.AI_PASSIVE)[0]
        self._listener = socket.create_server(address[:2], family=family)
        self.port = self._listener.getsockname()[1]
        # Same-host clients' runs with shared memory; announced in CreateSession, "" when not offered.
        self.local_name, self._local = "", None
        if local and ssl_context is None and shared_memory.supported():
            name = f"graphexec-direct-{os.getpid()}-{secrets.token_hex(8)}"
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                listener.bind(shared_memory.address(name))
                listener.listen(128)
            except OSError as exc:  # a sandbox without abstract sockets: same-host clients use TCP
                listener.close()
                log.info("no Unix socket for same-host clients: %s", exc)
            else:
                self.local_name, self._local = name, listener
        self._servicer = servicer
        self._authenticate = authenticate  # metadata -> tenant, or a fixed tenant (a str), as methods._authenticated
        self._ssl = ssl_context
        self._limit = servicer.limits.max_message_bytes
        self.interceptor = interceptor or telemetry.Interceptor(servicer.service.metrics)
        self.service_name = SERVICE
        self._handlers = {number: self.interceptor.observe(f"{SERVICE}/{name}", self._behavior(name))
                          for number, name in METHODS.items()}
        # Connections without TLS are served by one thread, which batches their runs with dynamic batching on
        # (graphexec.server.direct_batching); TLS ones keep a thread each, batched by the Batcher.
        self._reactor = None
        if ssl_context is None:
            self._reactor = Reactor(self, servicer)
        self._busy: set[_Connection] = set()  # connections whose run is in progress
        self._handshakes = threading.BoundedSemaphore(MAX_HANDSHAKES)
        self._stopped = threading.Event()

    def start(self) -> DirectApiServer:
        if self._reactor is not None:
            self._reactor.start()
        threading.Thread(target=self._accept, args=(self._listener,), name="graphexec-direct-api",
                         daemon=True).start()
        if self._local is not None:
            threading.Thread(target=self._accept, args=(self._local, True), name="graphexec-direct-api-local",
                             daemon=True).start()
        threading.Thread(target=self._watch, name="graphexec-direct-api-watch", daemon=True).start()
        return self

    def stop(self) -> None:
        """Accept no more connections; runs in progress finish (their connections close after)."""
        self._stopped.set()
        if self._reactor is not None:
            self._reactor.stop()
        self._listener.close()
        if self._local is not None:
            self._local.close()

    def _behavior(self, name: str):
        handler = getattr(self._servicer, methods.handler_name(name)).__wrapped__  # without the gRPC abort
        servicer = self._servicer
        if name == "RunCallable":  # its answer as buffers written apart (send_frame), not joined first, and
            # its request read through the connection's template when it repeats the last one's layout
            def handler(servicer, body, call: _Call) -> list:
                return servicer.run_callable_pieces(body, call, call.decode)

        def behavior(body, call: _Call) -> bytes | list:
            telemetry.annotate(tenant=call.caller or telemetry.DEFAULT_TENANT)
            try:
                return handler(servicer, body, call)
            except Exception as exc:
                call.code_answered = status.status_code(exc)
                raise

        return behavior

    def _accept(self, listener: socket.socket, local: bool = False) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return  # stopped
            if not self._handshakes.acquire(blocking=False):
                sock.close()  # a flood of connections that say nothing: the client falls back to gRPC
                continue
            threading.Thread(target=self._serve, args=(sock, local), name="graphexec-direct-api-conn",
                             daemon=True).start()

    def _serve(self, sock: socket.socket, local: bool = False) -> None:
        connection, key, reader, handshaking = None, None, None, True
        region, why_not = None, "this connection is not the server's Unix socket"
        try:
            sock.settimeout(HANDSHAKE_TIMEOUT_S)  # a handshake or HELLO that never comes holds no thread
            if local:  # HELLO may carry the client's shared memory, which a buffered reader would drop
                kind, body, fds = _hello_with_descriptors(sock)
                region, why_not = shared_memory.attach(fds) if fds else (None, "the client handed over none")
                reader = sock.makefile("rb")
            else:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self._ssl is not None:
                    sock = self._ssl.wrap_socket(sock, server_side=True)
                reader = sock.makefile("rb")
                kind, body = read_frame(reader, MAX_HELLO_BYTES)
            self._handshakes.release()
            handshaking = False
            if kind != HELLO:
                return
            sock.settimeout(None)
            try:
                caller = self._caller(body)
                connection = _Connection(sock, region, why_not, self._servicer.run_callable_decoder())
                key = self._servicer.streams.open(connection)
            except errors.OpError as exc:
                send_frame(sock, FAILURE, status.failure_bytes(exc, "the direct link"))
                return
            send_frame(sock, RESULT)
            if self._reactor is not None:
                reader.close()  # empty: the client sent nothing after HELLO before its answer
                reader = None
                self._reactor.adopt(sock, connection, key, caller)
                key = region = sock = None  # the reactor's now (it calls release)
                return
            self._calls(sock, reader, connection, key, caller)
        except (Closed, OSError, ValueError):  # the client went away or spoke something else; ssl errors are OSErrors
            pass
        finally:
            if handshaking:
                self._handshakes.release()
            if key is not None:
                self._servicer.streams.close(key)
            if reader is not None:
                reader.close()  # (it holds the socket open)
            if region is not None:
                region.close()
            if sock is not None:
                sock.close()

    def release(self, sock, connection: _Connection, key: int) -> None:
        """Close a connection the reactor served."""
        self._servicer.streams.close(key)
        if connection.region is not None:
            connection.region.close()
        sock.close()

    def _caller(self, hello: bytes) -> str:
        if isinstance(self._authenticate, str):
            return self._authenticate
        token = hello.decode("utf-8", "replace")
        return self._authenticate((("authorization", f"Bearer {token}"),) if token else ())

    def _calls(self, sock, reader, connection: _Connection, key: int, caller: str) -> None:
        while not self._stopped.is_set():
            try:
                kind, body = read_frame(reader, self._limit)
            except TooLarge as exc:
                self.refuse_large(sock, exc)
                return
            if not self.answer_frame(sock, connection, key, caller, kind, body):
                return

    @staticmethod
    def refuse_large(sock, exc: TooLarge) -> None:
        send_frame(sock, FAILURE, status.failure_bytes(errors.ResourceExhaustedError(
            None, None, f"a request of {exc.size} bytes is above the server's limit of {exc.limit} "
                        "(--max-message-bytes); larger tensors travel in parts on the Run stream")))

    def answer_frame(self, sock, connection: _Connection, key: int, caller: str, kind: int, body,
                     decoded: tuple | None = None, request=None) -> bool:
        """Answer one frame of a connection; False when the connection should end (not a call)."""
        answer = self.answer(connection, key, caller, kind, body, decoded, request)
        if answer is None:
            return False
        send_frame(sock, *answer)
        return True

    def answer(self, connection: _Connection, key: int, caller: str, kind: int, body,
               decoded: tuple | None = None, request=None) -> tuple | None:
        """(kind, *parts) of the frame that answers a connection's frame; None when the connection should
        end (the frame is not a call). When the caller read and decoded the request already: `request`, its
        bytes (out of the shared memory for a SHARED_RUN), and `decoded`, what the connection's RunCallable
        decoder gave for them."""
        if kind not in (RUN, SHARED_RUN) or len(body) < PREFIX.size:
            return None
        left, number = PREFIX.unpack_from(body)
        handler = self._handlers.get(number)
        if handler is None:
            return FAILURE, status.failure_bytes(errors.UnimplementedError(None, None, _UNKNOWN_METHOD))
        if request is None:
            request = memoryview(body)[PREFIX.size:]
            if kind == SHARED_RUN:
                try:
                    request = self.shared_request(connection, request)
                except errors.OpError as exc:
                    return FAILURE, status.failure_bytes(exc, METHODS[number])
        streams, busy = self._servicer.streams, self._busy
        call = connection.call = _Call(caller, left, connection.decode if decoded is None else lambda _: decoded)
        streams.active(key, busy=True)
        busy.add(connection)
        try:
            result = handler(request, call)
            return (RESULT, *result) if isinstance(result, list) else (RESULT, result)
        except Exception as exc:  # the frame boundary: every failure is answered, the link keeps serving
            return FAILURE, status.failure_bytes(exc, METHODS[number])
        finally:
            busy.discard(connection)
            streams.active(key, busy=False)

    def shared_request(self, connection: _Connection, body) -> memoryview:
        """A SHARED_RUN's request, copied out of the connection's region (the client may write it again as
        soon as it has an answer, and nothing kept may point into it)."""
        if connection.region is None:
            raise errors.FailedPreconditionError(None, None, f"no shared memory on this connection: "
                                                             f"{connection.why_no_region}")
        if len(body) != shared_memory.LENGTH.size:
            raise errors.InvalidArgumentError(None, None, "a shared-memory run names its request's length only")
        (length,) = shared_memory.LENGTH.unpack(body)
        if length > min(len(connection.region), self._limit):
            raise errors.ResourceExhaustedError(None, None, f"a request of {length} bytes is above the shared "
                                                            f"memory's {len(connection.region)} or the server's "
                                                            f"limit of {self._limit} (--max-message-bytes)")
        return memoryview(connection.region[:length])

    def _watch(self) -> None:
        """Cancel the runs whose clients hung up, every WATCH_INTERVAL_S."""
        poller = select.poll()
        while not self._stopped.wait(WATCH_INTERVAL_S):
            cancel_hung_up(poller, self._busy, runs_in_progress(self._busy))


def _hello_with_descriptors(sock: socket.socket) -> tuple[int, bytes, list[int]]:
    """(kind, body, descriptors) of the first frame on a Unix connection, read unbuffered so that the
    descriptors sent with it are received (a client sends nothing else before HELLO is answered)."""
    data, fds = b"", []
    try:
        while len(data) < HEAD.size or len(data) < HEAD.size + HEAD.unpack_from(data)[1]:
            if len(data) >= HEAD.size and HEAD.unpack_from(data)[1] > MAX_HELLO_BYTES:
                raise Closed()
            chunk, received, _, _ = socket.recv_fds(sock, HEAD.size + MAX_HELLO_BYTES - len(data), 4)
            fds += received
            if not chunk:
                raise Closed()
            data += chunk
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    kind, size = HEAD.unpack_from(data)
    return kind, data[HEAD.size:HEAD.size + size], fds


def runs_in_progress(busy: set) -> dict:
    """{fd: (connection, call)} of the runs in progress on the connections in `busy` now."""
    watched = {}
    for connection in list(busy):
        call = connection.call
        try:
            fd = connection.sock.fileno()
        except (OSError, ValueError):
            continue
        if fd >= 0 and call is not None:
            watched[fd] = connection, call
    return watched


def cancel_hung_up(poller, busy: set, watched: dict) -> None:
    """Cancel each watched run whose connection is readable while that same run is still in progress: a
    client sends nothing while it waits for an answer, so readable means it hung up. A connection whose
    run ended since `watched` was taken is readable for another reason (the client's next RUN frame), and
    its new run is not the watched one, so it is left alone."""
    if not watched:
        return
    events = select.POLLIN | getattr(select, "POLLRDHUP", 0)
    for fd in watched:
        poller.register(fd, events)
    try:
        for fd, _ in poller.poll(0):
            connection, call = watched[fd]
            if connection in busy and connection.call is call:
                call.cancel()
    finally:
        for fd in watched:
            poller.unregister(fd)
