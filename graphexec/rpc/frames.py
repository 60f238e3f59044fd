"""Frames on a socket: how graphexec's direct links (server -> worker, client -> server) carry calls.

A frame is a 5-byte head (kind, body length: little-endian u8, u32) and its body. A connection opens
with HELLO and then carries one call at a time: a RUN frame, answered by RESULT (the response
message) or FAILURE (a serialized graphexec.v1.Status: code, message, printed text). Bodies are the
same protobuf messages the gRPC services carry, so any language with protobuf and sockets can speak it.
The server -> worker link also carries PLAN, answered by ANSWER: a run laid out by hand
(graphexec.rpc.link_format), for workers that announce it.
"""
from __future__ import annotations

import ctypes
import errno
import os
import select
import socket
import ssl
import struct

HELLO, RUN, CANCEL, RESULT, FAILURE = b"HRCOF"
PLAN, ANSWER = b"PA"  # the server -> worker link's lean run and its answer (graphexec.rpc.link_format)
SHARED_RUN = b"S"[0]  # a run whose request waits in the connection's shared memory (graphexec.rpc.shared_memory)
HEAD = struct.Struct("<BI")  # kind, body length
COPY_BELOW = 64 << 10  # smaller frames are joined into one write (one packet); larger ones are not copied
MAX_BUFFERS = 512  # buffers per sendmsg (the system's IOV_MAX is 1024)


class Closed(Exception):
    """The other end closed the connection (or sent something that is not a frame)."""


class TooLarge(Closed):
    """A frame above the reader's limit: its body was not read, so the connection cannot go on."""

    def __init__(self, size: int, limit: int):
        super().__init__(f"a frame of {size} bytes is above the limit of {limit}")
        self.size, self.limit = size, limit


def read_frame(reader, limit: int | None = None) -> tuple[int, bytes]:
    """(kind, body) of the next frame from a buffered reader (socket.makefile("rb")); Closed at the end."""
    head = reader.read(HEAD.size)
    if len(head) < HEAD.size:
        raise Closed()
    kind, size = HEAD.unpack(head)
    if limit is not None and size > limit:
        raise TooLarge(size, limit)
    body = reader.read(size)
    if len(body) < size:
        raise Closed()
    return kind, body


def nbytes(parts) -> int:
    """The size in bytes of buffers (bytes and memoryviews, the common ones, without a memoryview each)."""
    size = 0
    for part in parts:
        kind = type(part)
        size += len(part) if kind is bytes else part.nbytes if kind is memoryview else memoryview(part).nbytes
    return size


def _libc(name: str):
    """libc's send(2) or recv(2), called without releasing the GIL (ctypes.PyDLL); None where there is none."""
    if not hasattr(socket, "MSG_DONTWAIT"):  # (Windows: neither the flag nor a libc to load)
        return None
    try:
        function = getattr(ctypes.PyDLL(None, use_errno=True), name)
    except (OSError, AttributeError, TypeError):  # (not a Unix system)
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int)
    function.restype = ctypes.c_ssize_t
    return function


_SEND, _RECV = _libc("send"), _libc("recv")
_PEEKED = ctypes.create_string_buffer(1)  # where readable_now's peek puts the byte it sees (never read)
_PEEK_FLAGS = socket.MSG_PEEK | getattr(socket, "MSG_DONTWAIT", 0)
_SEND_FLAGS = getattr(socket, "MSG_DONTWAIT", 0) | getattr(socket, "MSG_NOSIGNAL", 0)
_RECEIVE_FLAGS = getattr(socket, "MSG_DONTWAIT", 0)
_RETRY = (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR)


def send_holding_gil(sock, data: bytes) -> None:
    """sock.sendall(data) for a small frame on a plain socket, written without letting go of the GIL.

    Why: a call waits for its answer on the socket right after sending, and releasing the GIL for a write
    that takes microseconds hands it to another thread of the process, whose turn the sender then waits
    out to take it back, one context switch more per call (a W8 client process runs 16 threads). The write
    does not block: what the socket does not take at once goes through sendall."""
    sent = send_now(sock, data)
    if sent < len(data):
        sock.sendall(memoryview(data)[sent:])


def send_now(sock, data: bytes) -> int:
    """How much of `data` a plain socket took at once (0 when it is full), written without letting go of
    the GIL (as send_holding_gil); OSError when the connection is broken."""
    if _SEND is None:
        try:
            return sock.send(data, _SEND_FLAGS)
        except BlockingIOError:
            return 0
    sent = _SEND(sock.fileno(), data, len(data), _SEND_FLAGS)
    if sent >= 0:
        return sent
    code = ctypes.get_errno()
    if code not in _RETRY:
        raise OSError(code, os.strerror(code))
    return 0


def readable_now(sock) -> bool:
    """Whether the socket has bytes or its end waiting to be read (select's readable), asked without
    letting go of the GIL (as send_holding_gil writes): a closed connection says so before it is used."""
    if _RECV is None or isinstance(sock, ssl.SSLSocket):
        return bool(select.select((sock,), (), (), 0)[0])
    got = _RECV(sock.fileno(), _PEEKED, 1, _PEEK_FLAGS)
    return got >= 0 or ctypes.get_errno() not in _RETRY  # a byte, the end (0), or a broken socket


def receive_holding_gil(sock, buffer) -> bytes | None:
    """What the socket holds now, up to len(buffer) bytes, read into `buffer` without letting go of the GIL
    (as send_holding_gil writes): b"" at its end, None when nothing is there yet (or no libc to call)."""
    if _RECV is None:
        return None
    got = _RECV(sock.fileno(), buffer, len(buffer), _RECEIVE_FLAGS)
    if got >= 0:
        return ctypes.string_at(buffer, got)
    code = ctypes.get_errno()
    if code in _RETRY:
        return None
    raise OSError(code, os.strerror(code))


def send_frame(sock, kind: int, *parts) -> None:
    """One frame of `parts` (C-contiguous buffers); on a plain socket large parts are written from where
    they are."""
    size = nbytes(parts)
    head = HEAD.pack(kind, size)
    if isinstance(sock, ssl.SSLSocket):  # SSL sockets have no sendmsg (nor a descriptor to write to)
        sock.sendall(b"".join((head, *parts)))
        return
    if size < COPY_BELOW:
        send_holding_gil(sock, b"".join((head, *parts)))
        return
    views = [memoryview(head), *(memoryview(p).cast("B") for p in parts)]
    while views:
        sent = sock.sendmsg(views[:MAX_BUFFERS])
        while views and sent >= views[0].nbytes:
            sent -= views.pop(0).nbytes
        if sent:
            views[0] = views[0][sent:]


# The API's direct link (graphexec.server.direct_api): a RUN body starts with this prefix (seconds left,
# negative for none; the method), then the request message, which so starts 8-aligned in the body.
API_PREFIX = struct.Struct("<dB7x")
API_METHODS = {1: "RunCallable", 2: "RunStep", 3: "MakeCallable"}
RUN_METHODS = frozenset(("RunCallable", "RunStep"))
API_METHOD_NUMBERS = {name: number for number, name in API_METHODS.items()}
