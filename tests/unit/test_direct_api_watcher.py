"""The direct link's hang-up watcher (graphexec.server.direct_api): it cancels a run whose client hung up,
and never the client's next run, whose RUN frame also makes the connection readable."""
from __future__ import annotations

import select
import socket

from graphexec.server.direct_api import _Call, _Connection, cancel_hung_up, runs_in_progress


def _run_on(connection: _Connection, busy: set) -> list:
    """Start a run on `connection` as the server does; returns the list its cancellation appends to."""
    cancelled: list = []
    connection.call = _Call("alice", 5.0)
    connection.call.add_callback(lambda: cancelled.append(True))
    busy.add(connection)
    return cancelled


def test_a_run_whose_client_hangs_up_is_cancelled():
    server_end, client_end = socket.socketpair()
    try:
        busy: set = set()
        connection = _Connection(server_end)
        cancelled = _run_on(connection, busy)
        poller = select.poll()
        cancel_hung_up(poller, busy, runs_in_progress(busy))
        assert cancelled == []  # the client is waiting quietly
        client_end.close()
        cancel_hung_up(poller, busy, runs_in_progress(busy))
        assert cancelled == [True]
    finally:
        server_end.close()


def test_the_next_run_is_not_cancelled_for_the_frame_that_started_it():
    server_end, client_end = socket.socketpair()
    try:
        busy: set = set()
        connection = _Connection(server_end)
        first = _run_on(connection, busy)
        watched = runs_in_progress(busy)  # the watcher's view, taken while the first run is in progress
        busy.discard(connection)  # the first run answers; the client sends its next run at once
        client_end.sendall(b"next RUN frame")
        second = _run_on(connection, busy)  # the server has started the next run
        cancel_hung_up(select.poll(), busy, watched)
        assert first == [] and second == []
        cancel_hung_up(select.poll(), busy, runs_in_progress(busy))  # readable again mid-run: a hang-up sign
        assert second == [True]
    finally:
        server_end.close()
        client_end.close()
