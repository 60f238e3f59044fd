"""server.limits.Admission: a run that steps aside (a dynamic batch's follower) frees its thread for
another run but still counts against --threads + --queue-depth, and takes a thread again to work."""
from __future__ import annotations

import threading

import pytest

from graphexec import errors
from graphexec.server.limits import Admission, Limits

pytestmark = pytest.mark.timeout(30)


def test_a_run_that_steps_aside_lets_another_run_in_and_steps_back_after_it():
    admission = Admission(Limits(threads=1, queue_depth=1))
    order = []
    with admission.slot() as waiting:
        waiting.step_aside()
        with admission.slot():  # would wait for the one thread without step_aside
            order.append("other")
            back = threading.Thread(target=lambda: (waiting.step_back(), order.append("back")))
            back.start()
            while admission.waiting() == 0:  # step_back waits for the thread the other run holds
                back.join(0.01)
            order.append("other done")
        back.join()
    assert order == ["other", "other done", "back"]
    with admission.slot():  # every turn was given back
        pass


def test_runs_aside_count_against_the_queue():
    admission = Admission(Limits(threads=1, queue_depth=1))
    with admission.slot() as first:
        first.step_aside()
        with admission.slot() as second:
            second.step_aside()  # one thread, two admitted runs: the capacity
            with admission.slot():
                with pytest.raises(errors.ResourceExhaustedError, match="overloaded"):
                    with admission.slot():
                        pass
