"""The client's end of the API's direct link (graphexec.server.direct_api): runs as frames on a socket.

A session's Connection sends RunCallable, RunStep and MakeCallable here when CreateSession announced a
direct port (the host is the one the gRPC target names) or a worker's address (a worker that takes the
session's runs itself, graphexec.server.worker_runs). Each connection carries one call at a time; idle
ones are kept for the next call (several threads sharing a session open several), and a process's
sessions share them (`link_to`). When the link cannot be used (the port is not reachable, the server
refused the connection, a connection broke) the call goes over gRPC instead, which retries by its own
rules: a run's request id makes sending it again safe. GRAPHEXEC_DIRECT=0 turns the link off.

When the server also announced a Unix socket (`direct_socket`) and the client can reach it (same host and
network namespace), connections go there instead, each with a region of shared memory for requests of
MIN_BYTES or more (graphexec.rpc.shared_memory); GRAPHEXEC_SHARED_MEMORY=0 keeps them on TCP.
"""
from __future__ import annotations

import ctypes
import logging
import os
import select
import socket
import ssl
import threading
import time

import numpy as np

from graphexec import errors
from graphexec.rpc import shared_memory, status
from graphexec.rpc.frames import (API_METHOD_NUMBERS, API_PREFIX, FAILURE, HEAD, HELLO, RESULT, RUN, RUN_METHODS,
                                  SHARED_RUN, Closed, nbytes, readable_now, receive_holding_gil, send_frame)

_RUN_NUMBERS = frozenset(API_METHOD_NUMBERS[name] for name in RUN_METHODS)
_PREFIXES = {}  # (method, seconds left or None) -> RUN prefix, for the few timeouts a program uses
CONNECT_TIMEOUT_S = 1.0  # an unreachable port (a firewall that drops) costs the first run this much, once
RETRY_AFTER_S = 30.0  # after the link failed, calls take gRPC for this long before it is tried again
MAX_AGE_S = 600.0  # connections are replaced after this, as gRPC channels reconnect, so new replicas get runs
RECEIVE_BYTES = 64 << 10  # an answer's first read (a larger one is read into a buffer of its size)
GRACE_S = 1.0  # past the deadline the server answers DEADLINE_EXCEEDED itself; this long after, the client gives up
_UNIX_FAMILY = getattr(socket, "AF_UNIX", None)  # (None on Windows, whose clients use TCP)
log = logging.getLogger("graphexec.client")


class Unusable(Exception):
    """The link could not carry this call: send it over gRPC."""


class Broke(Unusable):
    """The connection to a worker that takes runs itself broke after the call was sent: send it over gRPC
    naming the worker (`address`), which the run may have killed."""

    def __init__(self, address: str):
        super().__init__(address)
        self.address = address


def enabled() -> bool:
    return os.environ.get("GRAPHEXEC_DIRECT", "1") != "0"


def shared_memory_enabled() -> bool:
    return os.environ.get("GRAPHEXEC_SHARED_MEMORY", "1") != "0" and shared_memory.supported()


def host_of(address: str) -> str | None:
    """The host to dial of a gRPC address: "host:port", "[v6]:port" or "dns:///name:port" (the name
    resolves to any replica, and any replica serves any run); None for the forms that list addresses
    or name a socket file (ipv4:, ipv6:, unix:), whose runs stay on gRPC."""
    if address.startswith("dns:"):
        address = address.split("/")[-1]
    if "," in address or address.startswith(("ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:")):
        return None
    host = address.rsplit(":", 1)[0]
    return host[1:-1] if host.startswith("[") else host


class _Lane:
    __slots__ = ("born", "buffer", "region", "sock", "timeout", "waiter")

    def __init__(self, sock, region: shared_memory.Region | None = None):
        self.sock, self.born = sock, time.monotonic()
        self.timeout = CONNECT_TIMEOUT_S
        self.region = region  # the shared memory this connection handed over (a Unix socket's), or None
        self.waiter = self.buffer = None  # a Unix socket's poll for its answers, and what it reads into (receive)
        if _UNIX_FAMILY is not None and sock.family == _UNIX_FAMILY and hasattr(select, "poll"):
            self.waiter = select.poll()
            self.waiter.register(sock, select.POLLIN)
            self.buffer = ctypes.create_string_buffer(RECEIVE_BYTES)

    def stale(self, now: float) -> bool:
        """Whether the idle connection was closed by the server (idle timeout, restart) or is too old."""
        if now - self.born > MAX_AGE_S:
            return True
        try:
            return readable_now(self.sock)
        except (OSError, ValueError):
            return True

    def receive(self) -> tuple[int, bytes]:
        """(kind, body) of the frame the server answers with. An answer is one frame, so one recv usually
        holds all of it; a larger one is read into its own buffer (returned as a read-only view of it)
        without a socket.makefile reader's layers of Python calls in between.

        On a Unix socket the answer is waited for in a poll for input, not in a blocking recv: Linux wakes
        every thread asleep in recv on a Unix socket whenever its peer reads what it sent ("room to write"),
        so each call's thread was woken once for nothing as the server read its request and slept again
        (1.99 context switches a call, 1.00 in a poll, which that wake-up does not reach; the server's
        system time a W8 run 14.7 -> 8.6 us, since the wake-ups were its work). With a deadline the socket
        has a timeout, and Python's recv polls first by itself. The answer the poll announced is read
        without letting go of the GIL (frames.receive_holding_gil): among a process's many client threads,
        another would take it during the recv and this one would sleep again until its turn. (Throughput:
        +9-11% in some W8 A/Bs, none in others; bench/README.md, 5 Dec midday.)"""
        data = None
        if self.waiter is not None and self.timeout is None:
            self.waiter.poll()
            data = receive_holding_gil(self.sock, self.buffer)
        if data is None:
            data = self.sock.recv(RECEIVE_BYTES)
        if len(data) >= HEAD.size:
            kind, size = HEAD.unpack_from(data)
            if len(data) == HEAD.size + size:
                return kind, data[HEAD.size:]
        while len(data) < HEAD.size:
            more = self.sock.recv(HEAD.size - len(data))
            if not more:
                raise Closed()
            data += more
        kind, size = HEAD.unpack_from(data)
        if len(data) > HEAD.size + size:  # more than the answer: not a server this client speaks with
            raise Closed()
        # not zeroed first as bytearray's would be (~5 ms of W2's 64 MiB answer): every byte is received
        view, got = memoryview(np.empty(size, np.uint8)), len(data) - HEAD.size
        view[:got] = memoryview(data)[HEAD.size:]
        while got < size:
            read = self.sock.recv_into(view[got:])
            if not read:
                raise Closed()
            got += read
        return kind, view.toreadonly()

    def close(self) -> None:
        """Close the connection now: a run in progress on it is cancelled by the server."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        if self.region is not None:
            self.region.close()


_pid = os.getpid()  # this process's, kept up to date across forks (os.getpid() is a system call a run)


def _forked() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)

_shared: dict[tuple, DirectLink] = {}  # (host, port, token, worker, Unix socket) -> the process's link there
_shared_lock = threading.Lock()


def link_to(host: str, port: int, ssl_context: ssl.SSLContext | None, token: str, worker: bool = False,
            local_name: str = "") -> DirectLink:
    """The process's direct link to that server or worker, shared by every session that uses it with the
    same token, with its idle connections: a replica's first run of a callable another session made takes
    an open connection (W6: 0.3-0.4 ms less on a 2-vCPU VM). A TLS link is each session's own (its context
    comes from the environment when the session starts). Give it back with `release`."""
    key = (host, port, token, worker, local_name)
    with _shared_lock:
        link = _shared.get(key) if ssl_context is None else None
        if link is None or link._pid != _pid:  # (a forked child opens its own)
            link = DirectLink(host, port, ssl_context, token, worker, local_name)
            if ssl_context is None:
                link.key, _shared[key] = key, link
        link.users += 1
    return link


def release(link: DirectLink) -> None:
    """A session is done with `link`: its connections close when no session uses it any more."""
    with _shared_lock:
        link.users -= 1
        if link.users > 0:
            return
        if link.key is not None and _shared.get(link.key) is link:
            del _shared[link.key]
    link.close()


class DirectLink:
    """The direct link of one server: `call(method, request buffers, timeout)` -> response bytes."""

    def __init__(self, host: str, port: int, ssl_context: ssl.SSLContext | None, token: str, worker: bool = False,
                 local_name: str = ""):
        self.host, self.port, self.ssl_context = host, port, ssl_context
        # The server's Unix socket, while it can be reached (graphexec.rpc.shared_memory); "" for TCP only.
        self.local_name = local_name if ssl_context is None and shared_memory_enabled() else ""
        self.worker = worker  # a worker's link (graphexec.server.worker_runs), not the server's
        self._hello = token.encode()
        self._idle: list[_Lane] = []
        self._retry_at = 0.0  # while the link is out of use, the monotonic time to try it again
        self._lock = threading.Lock()
        self._pid = _pid  # a forked child must not share its parent's connections
        self.users, self.key = 0, None  # sessions using it; its key among the shared links (link_to)
        self.calls = 0  # runs answered over it, failures included (tests and debugging read it)
        self.shared_calls = 0  # of which, requests handed over in shared memory
        self.other_calls = 0  # answered calls of other methods (MakeCallable)
        self.lacks: set[str] = set()  # methods its server does not take on the link (an older release)

    def usable(self) -> bool:
        """Whether calls go over the link now (not set aside after a failure)."""
        return time.monotonic() >= self._retry_at

    def call(self, method_number: int, data, timeout: float | None) -> bytes:
        """The response of a call (`data`: the request's bytes, or a list of the buffers they join); raises
        the tf.errors class of a FAILURE, Unusable to go over gRPC."""
        lane = self._lane()
        try:
            prefix = _prefix(method_number, timeout)
            if timeout != lane.timeout:  # (each settimeout is a system call)
                lane.sock.settimeout(None if timeout is None else timeout + GRACE_S)
                lane.timeout = timeout
            parts = data if isinstance(data, list) else (data,)
            region = lane.region
            if region is not None and shared_memory.MIN_BYTES <= nbytes(parts) <= region.size:
                send_frame(lane.sock, SHARED_RUN, prefix, shared_memory.LENGTH.pack(region.write(parts)))
                self.shared_calls += 1
            else:
                send_frame(lane.sock, RUN, prefix, *parts)
            kind, body = lane.receive()
        except socket.timeout:
            lane.close()
            raise errors.DeadlineExceededError(None, None, "Deadline Exceeded") from None
        except (Closed, OSError) as exc:
            lane.close()
            self.set_aside(f"the connection broke ({exc or type(exc).__name__})")
            raise (Broke(f"{self.host}:{self.port}") if self.worker else Unusable()) from None
        except BaseException:  # KeyboardInterrupt: closing the connection cancels the run on the server
            lane.close()
            raise
        self._idle.append(lane)
        if kind in (RESULT, FAILURE):
            if method_number in _RUN_NUMBERS:
                self.calls += 1
            else:
                self.other_calls += 1
            if kind == RESULT:
                return body
            raise status.error_from_failure_bytes(body)
        lane.close()
        raise Unusable()

    def _lane(self) -> _Lane:
        if _pid != self._pid:  # forked: the idle connections are the parent's (left open for it)
            self._idle, self._pid = [], _pid
        now = time.monotonic()
        while self._idle:
            try:
                lane = self._idle.pop()
            except IndexError:
                break
            if not lane.stale(now):
                return lane
            lane.close()
        if now < self._retry_at:
            raise Unusable()
        return self._connect()

    def _connect(self) -> _Lane:
        if self.local_name:
            try:
                return self._connect_local()
            except (Closed, OSError) as exc:  # another host or namespace, or no memfd here: TCP from now on
                log.info("runs go over TCP: the server's Unix socket cannot be used (%s)", exc or type(exc).__name__)
                self.local_name = ""
        try:
            sock = socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT_S)
        except OSError as exc:
            self.set_aside(f"cannot connect to {self.host}:{self.port} ({exc.strerror or exc})")
            raise Unusable() from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.host)
            send_frame(sock, HELLO, self._hello)
            lane = _Lane(sock)
            kind, body = lane.receive()
        except (Closed, OSError) as exc:
            sock.close()
            self.set_aside(f"{self.host}:{self.port} did not answer its HELLO ({exc or type(exc).__name__})")
            raise Unusable() from None
        return self._welcomed(lane, kind, body, f"{self.host}:{self.port}")

    def _connect_local(self) -> _Lane:
        """A connection to the server's Unix socket, its region handed over with HELLO."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        region = None
        try:
            sock.settimeout(CONNECT_TIMEOUT_S)
            sock.connect(shared_memory.address(self.local_name))
            region = shared_memory.Region()
            socket.send_fds(sock, [HEAD.pack(HELLO, len(self._hello)) + self._hello], [region.fd])
            region.handed_over()
            lane = _Lane(sock, region)
            kind, body = lane.receive()
        except BaseException:
            if region is not None:
                region.close()
            sock.close()
            raise
        return self._welcomed(lane, kind, body, self.local_name)

    def _welcomed(self, lane: _Lane, kind: int, body: bytes, where: str) -> _Lane:
        """The new connection `lane`, ready for calls once HELLO's answer (kind, body) accepted it."""
        if kind != RESULT:  # refused (a token, too many streams)
            lane.close()
            why = status.error_from_failure_bytes(body).message if kind == FAILURE else f"frame {kind}"
            self.set_aside(f"{where} refused the connection: {why}")
            raise Unusable()
        lane.sock.settimeout(None)
        lane.timeout = None
        return lane

    def set_aside(self, why: str) -> None:
        """Send runs over gRPC for RETRY_AFTER_S (logged once, with `why`): the link cannot take them now.
        Its open connections are closed too (the next run would otherwise still take one)."""
        with self._lock:
            first = self._retry_at == 0.0
            self._retry_at = time.monotonic() + RETRY_AFTER_S
        self.close()
        if first:
            log.warning("runs go over gRPC for %.0f s: the direct link %s", RETRY_AFTER_S, why)

    def close(self) -> None:
        while self._idle:
            try:
                self._idle.pop().close()
            except IndexError:
                break


def _prefix(method_number: int, timeout: float | None) -> bytes:
    key = (method_number, timeout)
    prefix = _PREFIXES.get(key)
    if prefix is None:
        prefix = API_PREFIX.pack(-1.0 if timeout is None else timeout, method_number)
        if len(_PREFIXES) < 64:
            _PREFIXES[key] = prefix
    return prefix
