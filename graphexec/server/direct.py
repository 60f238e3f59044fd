"""The direct link from a server to a `graphexec worker`: RunPlan as frames on a TCP (or TLS) socket.

Why: in Redis mode gRPC's Python machinery was the floor of a run. One echo of a small RunPlan-sized
message cost ~300 us of CPU (both processes) through grpcio's blocking unary call, ~190-225 us through
a persistent bidirectional stream, and 18 us as a frame on a socket (tools/bench_worker_link.py, same
run, 2-core machine); a 406 KB one 684 / 609-633 / 129 us. The worker still serves RunPlan over gRPC
(for other callers); servers use this link when the worker's signed registration announces it.

A connection carries one call at a time. The caller opens it with HELLO (a random token naming the
connection, then the worker secret, if any), then sends RUN frames, each answered by RESULT (a
RunPlanResponse) or FAILURE (a Status: code, message, printed text); or, to a worker that announces
`direct_version` 2, PLAN frames (graphexec.rpc.link_format), answered by ANSWER or FAILURE. A worker with a secret answers a
HELLO without it FAILURE UNAUTHENTICATED and closes, as its gRPC service would. Cancelling a run
sends CANCEL, naming the token, on a fresh connection (the run's own one is busy waiting for the
answer) and closes the run's connection. A run's deadline travels in its RUN frame; the caller waits
GRACE_S longer before giving up on the worker.

What gRPC did by itself and this does not: a worker does not notice that its caller died mid-run (the
run finishes and its answer is dropped; the request id makes the client's retry safe).
"""
from __future__ import annotations

import os
import queue
import select
import socket
import ssl
import struct
import threading

from graphexec import errors
from graphexec.rpc import status, tls
from graphexec.rpc.frames import ANSWER, CANCEL, FAILURE, HEAD, HELLO, PLAN, RESULT, RUN, Closed, read_frame, send_frame
from graphexec.runtime.worker import Cancellation
from graphexec.server.auth import WORKER_SECRET_HEADER, WorkerSecret

_DEADLINE = struct.Struct("<d")  # seconds left; negative: none
_HEAD = HEAD
TOKEN_BYTES = 16
MAX_HELLO_BYTES = 4096  # before the caller is authenticated, nothing larger is read
GRACE_S = 2.0
# Pipelined runs (call_plans) unanswered at once, in request bytes: well under what the two ends'
# socket buffers hold, so the sender never blocks while the worker waits for its answers to be read.
PIPELINE_BYTES = 32 << 10
# ... and at most this much of their answers on the way back, as the largest answer so far predicts.
PIPELINE_ANSWER_BYTES = 16 << 20
PIPELINE_RUNS = 256


def _runs_in_flight(largest_answer: int) -> int:
    """How many runs may be unanswered, given the largest answer so far (0: none has come yet, and the
    first says how large they are: one round trip per batch)."""
    if not largest_answer:
        return 1
    return max(1, min(PIPELINE_RUNS, PIPELINE_ANSWER_BYTES // max(largest_answer, 1)))

CONNECT_TIMEOUT_S = 5.0


def _failure(error: BaseException) -> bytes:
    return status.failure_bytes(error, "RunPlan")


# -- the worker's side --------------------------------------------------------------------------------
class DirectServer:
    """Serves `answer(request bytes, seconds left or None, Cancellation) -> response bytes` (RUN frames)
    and `answer_plan(PLAN body, Cancellation) -> ANSWER body buffers` (PLAN frames), each raising a
    failure, to servers; at most `max_running` runs at once, the rest wait (as gRPC's thread pool does)."""

    def __init__(self, answer, host: str, port: int = 0, max_running: int = 16, secret: WorkerSecret | None = None,
                 ssl_context: ssl.SSLContext | None = None, answer_plan=None):
        family, _, _, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        self._listener = socket.create_server(address[:2], family=family, reuse_port=False)
        self.port = self._listener.getsockname()[1]
        self._answer = answer
        self._answer_plan = answer_plan
        self._secret = secret
        self._ssl = ssl_context
        # Free run slots as tokens: SimpleQueue's get/put are C calls, where a threading.Semaphore's
        # acquire and release are a Python Condition each (about 3 us of a 30 us hop).
        self._slots = queue.SimpleQueue()
        for slot in range(max_running):
            self._slots.put(slot)
        self._running: dict[bytes, Cancellation] = {}  # connection token -> its run's cancellation

    def start(self) -> DirectServer:
        threading.Thread(target=self._accept, name="graphexec-direct", daemon=True).start()
        return self

    def stop(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # stopped
            threading.Thread(target=self._serve, args=(conn,), name="graphexec-direct-conn", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl is not None:
                conn.settimeout(CONNECT_TIMEOUT_S)  # a handshake that never ends holds no thread
                conn = self._ssl.wrap_socket(conn, server_side=True)
                conn.settimeout(None)
            reader = conn.makefile("rb")
            kind, body = read_frame(reader, MAX_HELLO_BYTES)
            if kind != HELLO or len(body) < TOKEN_BYTES:
                return
            token = body[:TOKEN_BYTES]
            if self._secret is not None:
                try:
                    self._secret.check_caller(((WORKER_SECRET_HEADER, body[TOKEN_BYTES:].decode("utf-8", "replace")),))
                except errors.OpError as exc:
                    send_frame(conn, FAILURE, _failure(exc))
                    return
            while True:
                kind, body = read_frame(reader)
                if kind == CANCEL:
                    cancellation = self._running.get(bytes(body))
                    if cancellation is not None:
                        cancellation.cancel()
                elif kind == RUN or (kind == PLAN and self._answer_plan is not None):
                    send_frame(conn, *self._run(token, kind, body))
                else:
                    return
        except (Closed, OSError):  # the caller went away (ssl.SSLError is an OSError)
            pass
        finally:
            conn.close()

    def _run(self, token: bytes, kind: int, body: bytes) -> tuple:
        """(kind, *body buffers) answering a RUN or PLAN frame."""
        cancellation = Cancellation()
        self._running[token] = cancellation
        slot = self._slots.get()
        try:
            if kind == PLAN:
                return ANSWER, *self._answer_plan(body, cancellation)
            if len(body) < _DEADLINE.size:
                raise errors.InvalidArgumentError(None, None, f"a RUN frame of {len(body)} bytes has no deadline")
            left = _DEADLINE.unpack_from(body)[0]
            return RESULT, self._answer(memoryview(body)[_DEADLINE.size:], None if left < 0 else left, cancellation)
        except Exception as exc:  # the frame boundary: every failure is answered, the worker keeps serving
            return FAILURE, _failure(exc)
        finally:
            self._slots.put(slot)
            self._running.pop(token, None)


# -- the server's side --------------------------------------------------------------------------------
class Link:
    """Where and how a server reaches one worker's direct port."""

    __slots__ = ("host", "port", "ssl_context", "secret")

    def __init__(self, host: str, port: int, ssl_context: ssl.SSLContext | None, secret: bytes):
        self.host, self.port, self.ssl_context, self.secret = host, port, ssl_context, secret

    def connect(self, token: bytes) -> socket.socket:
        """A connection that has said HELLO; OSError when the worker cannot be reached."""
        sock = socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT_S)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.host)
            sock.settimeout(None)
            send_frame(sock, HELLO, token, self.secret)
        except BaseException:
            sock.close()
            raise
        return sock


class DirectLane:
    """One connection to a worker carrying one call at a time (see pool._Lane for the gRPC one)."""

    __slots__ = ("link", "sock", "reader", "token", "cancelled", "generation", "_guard")

    def __init__(self, link: Link):
        self.link = link
        self.token = os.urandom(TOKEN_BYTES)
        self.sock = link.connect(self.token)  # OSError: never reached
        self.reader = self.sock.makefile("rb")
        self.cancelled, self.generation = False, 0
        self._guard = threading.Lock()

    def stale(self) -> bool:
        """Whether the idle connection was closed by the worker (it died or restarted since)."""
        try:
            return bool(select.select((self.sock,), (), (), 0)[0])
        except (OSError, ValueError):
            return True

    def call(self, request: list, timeout_s: float | None) -> tuple[int, bytes]:
        """(RESULT or FAILURE, body) of the request (a list of buffers); socket.timeout past the deadline,
        Closed or OSError when the connection broke."""
        if timeout_s is not None:  # a deadline already passed is 0 seconds left; a negative says none
            timeout_s = max(timeout_s, 0.0)
        self.sock.settimeout(None if timeout_s is None else timeout_s + GRACE_S)
        send_frame(self.sock, RUN, _DEADLINE.pack(-1.0 if timeout_s is None else timeout_s), *request)
        return read_frame(self.reader)

    def call_plan(self, plan: list, timeout_s: float | None) -> tuple[int, bytes]:
        """(ANSWER or FAILURE, body) of a PLAN body (buffers, its deadline inside), as `call` does."""
        self.sock.settimeout(None if timeout_s is None else max(timeout_s, 0.0) + GRACE_S)
        send_frame(self.sock, PLAN, *plan)
        return read_frame(self.reader)

    def call_plans(self, plans: list, timeout_s: float | None,
                   answer_bytes: int | None = None) -> tuple[list, BaseException | None, int]:
        """Pipelined PLAN bodies: each is sent without waiting for the answers before it (the worker
        reads a connection's frames in order and answers each in turn), keeping at most PIPELINE_BYTES
        of them unanswered so that neither side can block the other on a full socket, and only as many
        runs as PIPELINE_ANSWER_BYTES of answers the size of the largest so far (1 before the first).

        Returns (the (ANSWER or FAILURE, body) of the first k runs, what broke or None, how many runs
        were sent). What broke is socket.timeout (past `timeout_s` + GRACE_S), Closed or OSError: if k is
        short of the runs sent, the worker was running run k when it broke, and never read the ones after
        it; if not, a send broke. With `answer_bytes`, no run is sent once the answers read reach it (the
        first always is); the runs not sent ran nowhere."""
        self.sock.settimeout(None if timeout_s is None else max(timeout_s, 0.0) + GRACE_S)
        answers, sizes = [], []
        unanswered = answered = largest = 0  # request bytes in flight; answer bytes read, the largest

        def read_one():
            nonlocal unanswered, answered, largest
            kind, body = read_frame(self.reader)
            unanswered -= sizes[len(answers)]
            answered += len(body)
            largest = max(largest, len(body))
            answers.append((kind, body))

        budget = answer_bytes if answer_bytes is not None else float("inf")
        broken = None
        try:
            for plan in plans:
                size = sum(map(len, plan))
                while len(answers) < len(sizes) and (unanswered + size > PIPELINE_BYTES
                                                     or len(sizes) - len(answers) >= _runs_in_flight(largest)):
                    read_one()
                if answered >= budget:
                    break
                send_frame(self.sock, PLAN, *plan)
                sizes.append(size)
                unanswered += size
        except (Closed, OSError) as exc:  # the answers the worker sent before it went are still to be read
            broken = exc
        try:
            while len(answers) < len(sizes):
                read_one()
        except (Closed, OSError) as exc:  # (socket.timeout is an OSError)
            broken = exc
        return answers, broken, len(sizes)

    def take(self) -> int:
        with self._guard:
            self.generation += 1
            return self.generation

    def cancel(self, generation: int) -> None:
        """Stop call `generation` if the lane still carries it: the worker is told on a fresh connection,
        in the background (a cancellation callback must not block), and this lane's waiting ends now."""
        with self._guard:
            if generation != self.generation or self.cancelled:
                return
            self.cancelled = True
        threading.Thread(target=self._tell_worker, name="graphexec-cancel", daemon=True).start()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _tell_worker(self) -> None:
        try:
            with self.link.connect(os.urandom(TOKEN_BYTES)) as sock:
                send_frame(sock, CANCEL, self.token)
        except OSError:
            pass  # the worker is gone: nothing runs there to stop

    def release(self) -> bool:
        with self._guard:
            self.generation += 1
            return not self.cancelled

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def failure(body: bytes) -> errors.OpError:
    """The error a FAILURE frame carries."""
    return status.error_from_failure_bytes(body)


# The worker's TLS, as its gRPC port serves it; how a server dials TLS workers, as its gRPC channels do.
server_context, client_context = tls.ssl_server_context, tls.ssl_client_context
