"""Redis pipelines packed by hand (RESP) and sent on connections of our own.

Why: a training step's commit is one pipeline (a SET staging each changed variable, then the EVALSHA
that applies them). Through redis-py's Pipeline it took about half of the worker's Python per W3 step
outside the kernels (py-spy, GIL held): command objects, the pool's checks and its bookkeeping, response
callbacks. Here the commands are laid out as bytes at once, large contents are written from the arrays
where they are, and each reply is read by the connection's own parser. The connections are made as the
client's pool makes its own (same URL, password, TLS), so they behave as its connections do.
"""
from __future__ import annotations

import os
import socket
import ssl

import redis

COPY_BELOW = 64 << 10  # arguments at least this large are written from where they are, not copied
MOST_BUFFERS_A_CALL = 512  # sendmsg takes at most IOV_MAX (1024 on Linux) buffers at once


def pack(commands) -> list:
    """The RESP of `commands` (sequences of bytes, str, int or buffers) as buffers to write in order."""
    out, small = [], bytearray()
    for command in commands:
        small += b"*%d\r\n" % len(command)
        for arg in command:
            if isinstance(arg, str):
                arg = arg.encode()
            elif isinstance(arg, int):
                arg = b"%d" % arg
            elif not isinstance(arg, bytes):  # a buffer: as bytes (`small += an ndarray` would add numbers)
                arg = memoryview(arg).cast("B")
            size = len(arg)
            small += b"$%d\r\n" % size
            if size < COPY_BELOW:
                small += arg
                small += b"\r\n"
            else:
                out += (small, arg)
                small = bytearray(b"\r\n")
    out.append(small)
    return out


def send(connection, buffers) -> None:
    """Write `buffers` on a redis-py connection: in one sendmsg where it is a plain (TCP or Unix) socket,
    else as redis-py writes them (TLS, or not connected yet). redis-py writes each buffer with its own
    sendall, so a commit's small head went out as a segment of its own (TCP_NODELAY) before the 803 KB of
    W3's weights, and Redis woke for each part."""
    sock = connection._sock
    if sock is None or isinstance(sock, ssl.SSLSocket):
        connection.send_packed_command(buffers, check_health=False)
        return
    views = [memoryview(buffer).cast("B") for buffer in buffers]
    try:
        while views:
            sent = sock.sendmsg(views[:MOST_BUFFERS_A_CALL])
            while views and sent >= len(views[0]):
                sent -= len(views.pop(0))
            if views:
                views[0] = views[0][sent:]
    except socket.timeout as error:
        raise redis.TimeoutError("Timeout writing to socket") from error
    except OSError as error:
        raise redis.ConnectionError(f"Error while writing to socket: {error}") from error


class Lanes:
    """Connections to the Redis of `pool` (a redis-py ConnectionPool) for hand-packed pipelines, one per
    caller at a time (list.pop/append are atomic)."""

    def __init__(self, pool: redis.ConnectionPool):
        self._pool = pool
        self._idle: list = []
        self._pid = os.getpid()

    def take(self):
        """An idle connection, or a new one (it connects when first used); give it back with `give`."""
        if os.getpid() != self._pid:  # a forked child: its parent's connections are not its own
            self._idle, self._pid = [], os.getpid()
        try:
            return self._idle.pop()
        except IndexError:
            return self._pool.connection_class(**self._pool.connection_kwargs)

    def give(self, connection) -> None:
        self._idle.append(connection)

    def call(self, commands, connection=None, pending: int = 0) -> list:
        """The replies to `commands`, sent as one pipeline (one round trip). An error reply is raised (the
        first one) after every reply was read; a broken connection raises redis.ConnectionError or
        TimeoutError and is closed. With `connection` (from `take`), on which `pending` commands were sent
        already and not answered: the commands go after them, and the replies are all of theirs, first."""
        connection = connection or self.take()
        replies, failure = [], None
        try:
            send(connection, pack(commands))
            for _ in range(pending + len(commands)):
                try:
                    replies.append(connection.read_response())
                except redis.ResponseError as exc:  # the reply was read whole: the connection stays usable
                    failure = failure or exc
                    replies.append(exc)
        except BaseException:
            connection.disconnect()
            raise
        self.give(connection)
        if failure is not None:
            raise failure
        return replies

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.disconnect()
