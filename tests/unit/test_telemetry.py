"""The log formats, and Redis failures counted by operation (with nothing listening: no server needed)."""
from __future__ import annotations

import json
import logging
import socket

import pytest

from graphexec import errors
from graphexec.server import logs
from graphexec.server.redis_store import RedisStore
from graphexec.server.telemetry import Metrics, observer


def record(message="GET %s", args=("x",), **extra) -> logging.LogRecord:
    entry = logging.LogRecord("graphexec.requests", logging.INFO, __file__, 1, message, args, None)
    entry.__dict__.update(extra)
    return entry


def test_json_lines_carry_the_message_and_every_extra_field():
    line = logs.JsonFormatter().format(record(method="M", code="OK", duration_ms=1.5, request_id=7))
    entry = json.loads(line)
    assert entry["message"] == "GET x" and entry["level"] == "INFO" and entry["logger"] == "graphexec.requests"
    assert {k: entry[k] for k in ("method", "code", "duration_ms", "request_id")} == {
        "method": "M", "code": "OK", "duration_ms": 1.5, "request_id": 7}
    assert entry["time"].endswith("+00:00")


def test_text_lines_append_fields_as_pairs():
    line = logs.TextFormatter().format(record(method="M", code="NOT_FOUND"))
    assert line.endswith("graphexec.requests INFO GET x method=M code=NOT_FOUND")
    assert logs.TextFormatter().format(record()).endswith("INFO GET x")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


def test_redis_failures_are_counted_and_timed_by_operation():
    metrics = Metrics()
    store = RedisStore(f"redis://127.0.0.1:{closed_port()}/0", metrics=metrics)
    try:
        for _ in range(2):
            with pytest.raises(errors.UnavailableError, match="Redis at"):
                store.get_blob("plan", "k")
        with pytest.raises(errors.UnavailableError):
            store.get_session("h")
    finally:
        store.close()
    value = metrics.registry.get_sample_value
    assert value("graphexec_redis_errors_total", {"operation": "get_blob"}) == 2
    assert value("graphexec_redis_errors_total", {"operation": "get_session"}) == 1
    assert value("graphexec_redis_operation_duration_seconds_count", {"operation": "get_blob"}) == 2


def test_metrics_registries_are_separate():
    first, second = Metrics(), Metrics()
    first.runs.labels("default", "OK").inc()
    assert first.registry.get_sample_value("graphexec_runs_total", {"tenant": "default", "code": "OK"}) == 1
    assert second.registry.get_sample_value("graphexec_runs_total", {"tenant": "default", "code": "OK"}) is None


def test_values_observed_together_land_as_observed_one_by_one():
    values = [0.0001, 0.0005, 0.0007, 0.003, 0.003, 0.2, 7.0, 100.0]
    one_by_one, together = (Metrics().run_seconds.labels("t") for _ in range(2))
    for value in values:
        observer(one_by_one)(value)
    observer(together).many(values)
    samples = [{s.name + str(s.labels.get("le", "")): s.value for s in series.collect()[0].samples
                if not s.name.endswith("_created")} for series in (one_by_one, together)]
    assert samples[0] == samples[1] and samples[0]["graphexec_run_duration_seconds_count"] == len(values)
    assert samples[0]["graphexec_run_duration_seconds_bucket0.0005"] == 2  # bounds are inclusive
