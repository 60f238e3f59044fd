"""The client's retry policy: which failures are retried past max_attempts, and for how long."""
from __future__ import annotations

import grpc
import pytest

from graphexec.client.retry import RetryPolicy


class Failure(grpc.RpcError):
    """A failed call as grpc raises it: a status code and its details."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(details)
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


def failing(times: int, details: str, code=grpc.StatusCode.UNAVAILABLE):
    """An attempt that fails `times` times with `details`, then answers "done"; and its call count."""
    calls = []

    def attempt():
        calls.append(1)
        if len(calls) <= times:
            raise Failure(code, details)
        return "done"

    return attempt, calls


POLICY = RetryPolicy(max_attempts=2, initial_backoff_s=0.001, max_backoff_s=0.002, no_worker_s=5.0)


def test_no_live_worker_is_retried_past_max_attempts_until_a_worker_is_back():
    attempt, calls = failing(6, "no live worker: start one with `graphexec worker --redis URL`")
    assert POLICY.call(attempt) == "done"
    assert len(calls) == 7


def test_no_live_worker_gives_up_when_its_window_ends():
    attempt, calls = failing(10**9, "no live worker: start one with `graphexec worker --redis URL`")
    with pytest.raises(Failure, match="no live worker"):
        RetryPolicy(max_attempts=2, initial_backoff_s=0.001, max_backoff_s=0.002, no_worker_s=0.0).call(attempt)
    assert len(calls) == 2


@pytest.mark.parametrize("details", ["no live worker has a GPU, which node 'z' requires", "connection refused"])
def test_other_unavailable_failures_stop_at_max_attempts(details):
    attempt, calls = failing(10**9, details)
    with pytest.raises(Failure):
        POLICY.call(attempt)
    assert len(calls) == 2


def test_a_store_outage_during_a_run_is_retried_while_its_outcome_is_unknown():
    attempt, calls = failing(6, "Redis at redis://127.0.0.1:1/0 is unavailable")
    assert POLICY.call(attempt, outcome_unknown=lambda exc: exc.details().startswith("Redis at ")) == "done"
    assert len(calls) == 7


def test_non_retryable_codes_fail_at_once():
    attempt, calls = failing(10**9, "bad graph", grpc.StatusCode.INVALID_ARGUMENT)
    with pytest.raises(Failure):
        POLICY.call(attempt)
    assert len(calls) == 1


def test_a_first_attempt_made_by_the_caller_counts_towards_max_attempts():
    """Connection tries a call once itself and hands a failure to the policy (`failed`)."""
    attempt, calls = failing(10**9, "connection refused")
    with pytest.raises(Failure):
        POLICY.call(attempt, failed=Failure(grpc.StatusCode.UNAVAILABLE, "connection refused"))
    assert len(calls) == 1  # max_attempts 2: the caller's attempt and one more
    attempt, calls = failing(0, "")
    assert POLICY.call(attempt, failed=Failure(grpc.StatusCode.UNAVAILABLE, "connection refused")) == "done"
    with pytest.raises(Failure, match="bad graph"):
        POLICY.call(attempt, failed=Failure(grpc.StatusCode.INVALID_ARGUMENT, "bad graph"))
