"""The Run stream's window (graphexec.client.remote._Window): runs and bytes of feeds outstanding."""
import threading

from graphexec.client.remote import _Window


def _enters_within(window: _Window, nbytes: int, seconds: float) -> bool:
    entered = threading.Event()
    finished = threading.Event()

    def enter():
        if window.enter(nbytes, finished):
            entered.set()

    thread = threading.Thread(target=enter, daemon=True)
    thread.start()
    result = entered.wait(seconds)
    finished.set()
    thread.join(1)
    return result


def test_runs_wait_for_room_in_runs_and_in_bytes():
    window = _Window(max_runs=3, max_bytes=100)
    never = threading.Event()
    assert window.enter(60, never) and window.enter(30, never)
    assert not _enters_within(window, 20, 0.3)  # 110 bytes would be outstanding
    window.leave()  # the 60-byte run answered
    assert _enters_within(window, 20, 1.0)
    assert window.enter(10, never)  # 30 + 20 + 10 bytes, 3 runs
    assert not _enters_within(window, 0, 0.3)  # a fourth run, however small


def test_a_run_larger_than_the_byte_budget_goes_when_it_is_alone():
    window = _Window(max_runs=8, max_bytes=100)
    never = threading.Event()
    assert window.enter(10, never)
    assert not _enters_within(window, 500, 0.3)
    window.leave()
    assert _enters_within(window, 500, 1.0)


def test_a_waiting_run_gives_up_when_the_stream_finishes():
    window = _Window(max_runs=1, max_bytes=100)
    finished = threading.Event()
    assert window.enter(1, finished)
    finished.set()
    assert window.enter(1, finished) is False
