"""Frames on a real socket pair: a small frame is written without letting go of the GIL, and what the socket
does not take at once, or a peer that is gone, behaves as sendall would."""
import ctypes
import socket
import threading
import time

import pytest

from graphexec.client import direct
from graphexec.rpc import frames


def _read_all(sock, into: list, skip: int = 0):
    if skip:
        time.sleep(0.2)  # the writer meets a full socket first
    with sock.makefile("rb") as reader:
        assert len(reader.read(skip)) == skip
        into.append(frames.read_frame(reader))


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("libc", [True, False])
def test_a_frame_the_socket_cannot_take_at_once_arrives_whole(monkeypatch, libc, full):
    if not libc:  # where there is no libc send (not a Unix system), sendall writes it
        monkeypatch.setattr(frames, "_SEND", None)
    else:
        assert frames._SEND is not None  # Linux: the GIL-holding write is the one tested
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    body = bytes(range(256)) * 200  # 51,200 bytes: below COPY_BELOW, far above the send buffer
    assert len(body) < frames.COPY_BELOW
    skip = 0
    if full:  # the socket takes nothing at first (EAGAIN): all of it goes through sendall
        ours.setblocking(False)
        try:
            while True:
                skip += ours.send(b"\0" * 1024)
        except BlockingIOError:
            ours.setblocking(True)
    received = []
    reader = threading.Thread(target=_read_all, args=(theirs, received, skip))
    reader.start()
    frames.send_frame(ours, frames.RESULT, body[:100], memoryview(body)[100:])
    reader.join(10)
    assert received == [(frames.RESULT, body)]
    ours.close()
    theirs.close()


def test_writing_to_a_peer_that_is_gone_raises_os_error():
    ours, theirs = socket.socketpair()
    theirs.close()
    with pytest.raises(OSError):
        frames.send_frame(ours, frames.RUN, b"x" * 100)
    ours.close()
    with pytest.raises(OSError):  # a closed socket (no descriptor) is refused too
        frames.send_frame(ours, frames.RUN, b"x" * 100)


@pytest.mark.parametrize("libc", [True, False])
def test_a_socket_is_readable_now_when_bytes_or_its_end_wait(monkeypatch, libc):
    if not libc:  # select() where there is no libc recv
        monkeypatch.setattr(frames, "_RECV", None)
    ours, theirs = socket.socketpair()
    assert not frames.readable_now(ours)
    theirs.sendall(b"x")
    assert frames.readable_now(ours) and frames.readable_now(ours)  # peeked, not taken
    assert ours.recv(1) == b"x" and not frames.readable_now(ours)
    theirs.close()  # the other end hung up: what a server that closed an idle connection looks like
    assert frames.readable_now(ours)
    ours.close()
    if libc:  # a closed socket has nothing to read from (select refuses it outright)
        assert frames.readable_now(ours)


def _answered_in_pieces(pieces, close=False, deadline=True):
    """What a client connection receives when its server writes `pieces` one at a time (then hangs up); with
    no `deadline`, the connection waits in its poll and takes what came without letting go of the GIL."""
    ours, theirs = socket.socketpair()

    def server():
        for piece in pieces:
            theirs.sendall(piece)
            time.sleep(0.02)  # each piece reaches the client on its own
        if close:
            theirs.close()

    writer = threading.Thread(target=server)
    writer.start()
    lane = direct._Lane(ours)
    if not deadline:
        lane.timeout = None
    try:
        return lane.receive()
    finally:
        writer.join(10)
        lane.close()
        theirs.close()


@pytest.mark.parametrize("deadline", [True, False])
def test_a_clients_connection_receives_an_answer_however_it_arrives(deadline):
    small = frames.HEAD.pack(frames.RESULT, 3) + b"abc"
    assert _answered_in_pieces([small], deadline=deadline) == (frames.RESULT, b"abc")
    assert _answered_in_pieces([small[:2], small[2:4], small[4:]], deadline=deadline) == (frames.RESULT, b"abc")
    body = bytes(range(256)) * 1024  # 256 KiB: more than the first read takes
    frame = frames.HEAD.pack(frames.FAILURE, len(body)) + body
    kind, received = _answered_in_pieces([frame[:1000], frame[1000:100_000], frame[100_000:]], deadline=deadline)
    assert kind == frames.FAILURE and bytes(received) == body and received.readonly
    with pytest.raises(frames.Closed):  # the server hung up inside the answer
        _answered_in_pieces([frame[:100_000]], close=True, deadline=deadline)
    with pytest.raises(frames.Closed):  # inside the head
        _answered_in_pieces([small[:3]], close=True, deadline=deadline)
    with pytest.raises(frames.Closed):  # hung up before answering
        _answered_in_pieces([], close=True, deadline=deadline)
    with pytest.raises(frames.Closed):  # more than one answer's bytes: not a server this client speaks with
        _answered_in_pieces([small + b"??"], deadline=deadline)


@pytest.mark.parametrize("libc", [True, False])
def test_what_a_socket_holds_is_taken_without_waiting(monkeypatch, libc):
    if not libc:  # no libc recv: the caller reads the socket itself
        monkeypatch.setattr(frames, "_RECV", None)
    ours, theirs = socket.socketpair()
    buffer = ctypes.create_string_buffer(4)
    assert frames.receive_holding_gil(ours, buffer) is None  # nothing there yet: no wait
    theirs.sendall(b"abcdef")
    if libc:
        assert frames.receive_holding_gil(ours, buffer) == b"abcd"  # at most the buffer's size
        assert frames.receive_holding_gil(ours, buffer) == b"ef"
        theirs.close()
        assert frames.receive_holding_gil(ours, buffer) == b""  # the other end hung up
        ours.close()
        with pytest.raises(OSError):  # a closed socket
            frames.receive_holding_gil(ours, buffer)
    else:
        assert frames.receive_holding_gil(ours, buffer) is None and ours.recv(6) == b"abcdef"
        theirs.close()
        ours.close()


def test_where_there_are_no_unix_sockets_a_connection_waits_in_its_recv(monkeypatch):
    """(Windows has no AF_UNIX: its clients' connections are TCP, and none waits in a poll.)"""
    monkeypatch.setattr(direct, "_UNIX_FAMILY", None)
    ours, theirs = socket.socketpair()
    assert direct._Lane(ours).waiter is None
    ours.close()
    theirs.close()
    small = frames.HEAD.pack(frames.RESULT, 3) + b"abc"
    assert _answered_in_pieces([small[:2], small[2:]], deadline=False) == (frames.RESULT, b"abc")
