"""Prometheus metrics and request logs of real `graphexec serve` and `graphexec worker` processes:
scraped over HTTP from --metrics-port, parsed with prometheus_client's parser, and checked to move by
exactly what the runs did. The Grafana dashboard's queries name only metrics a real scrape has."""
from __future__ import annotations

import concurrent.futures
import json
import pathlib
import re
import sys
import time
import urllib.request

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

import graphexec as tf
from graphexec import errors

from conftest import Process  # tests/integration is on sys.path (rootdir-relative conftest)

ROOT = pathlib.Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "graphexec-dashboard.json"
RUNS = 7
pytestmark = pytest.mark.timeout(180)


def start_serve(processes, *args) -> tuple[str, str, Process]:
    """(gRPC target, metrics URL, process) of a `graphexec serve` with metrics on a free port."""
    process = Process([sys.executable, "-m", "graphexec", "serve", "--port", "0", "--metrics-port", "0",
                       "--log-level", "DEBUG", "--log-format", "json", *args], r"serving on (grpc://\S+)")
    processes.append(process)
    return process.match.group(1), metrics_url(process), process


def start_worker(processes, redis_url: str) -> tuple[Process, str]:
    """A `graphexec worker` with metrics on a free port, and its metrics URL."""
    process = Process([sys.executable, "-m", "graphexec", "worker", "--redis", redis_url, "--metrics-port", "0"],
                      r"graphexec worker (\S+) .*serving on")
    processes.append(process)
    return process, metrics_url(process)


def metrics_url(process: Process) -> str:
    for line in process.output:
        found = re.search(r"metrics on (http://\S+)", line)
        if found:
            return found.group(1)
    raise AssertionError(f"no metrics line in {process.output}")


class Scrape:
    """One GET of /metrics: sample values by (name, labels), and the families with their types."""

    def __init__(self, url: str):
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            text = response.read().decode()
        families = list(text_string_to_metric_families(text))
        self.families = {f.name: f.type for f in families}
        self.samples = {(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples}

    def value(self, name: str, **labels) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def total(self, name: str, **labels) -> float:
        """Sum over the samples of `name` whose labels include `labels`."""
        return sum(v for (n, have), v in self.samples.items() if n == name and labels.items() <= dict(have).items())

    def sample_names(self) -> set[str]:
        """Every series name the families can expose (labelled ones before their first sample too)."""
        suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
                    "gauge": ("",), "summary": ("", "_count", "_sum", "_created")}
        return {name + s for name, kind in self.families.items() for s in suffixes.get(kind, ("",))}


def moved(before: Scrape, after: Scrape, name: str, **labels) -> float:
    return after.total(name, **labels) - before.total(name, **labels)


def doubling_graph():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, 4], name="x")
        y = tf.reduce_sum(x * 2.0, name="y")
        a = tf.placeholder(tf.float32, [None, None], name="a")
        b = tf.placeholder(tf.float32, [None, None], name="b")
        product = tf.matmul(a, b, name="product")
    return graph, x, y, a, b, product


RUN_CALLABLE = "graphexec.v1.GraphExecService/RunCallable"
FEED = np.ones((3, 4), np.float32)


def run_some(target: str, graph, x, y, runs: int = RUNS):
    with tf.Session(target, graph=graph) as sess:
        for _ in range(runs):
            assert sess.run(y, {x: FEED}) == 24.0


def request_logs(process: Process) -> list[dict]:
    """The JSON log lines a stopped process wrote."""
    process.proc.terminate()
    process.proc.wait(timeout=10)
    lines = process.proc.stdout.read().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_a_streams_runs_are_counted_and_timed_one_by_one(processes):
    """Runs that come together on a Run stream (Service.run_many, which updates the metrics once for the
    lot) count as many runs, each with a duration, in the server's and in its worker's metrics."""
    target, url, _ = start_serve(processes)
    graph, x, y, *_ = doubling_graph()
    before = Scrape(url)
    started = time.perf_counter()
    with tf.Session(target, graph=graph) as sess:
        assert [float(v) for v in sess.stream(y, [{x: FEED}] * 40)] == [24.0] * 40
    took = time.perf_counter() - started
    after = Scrape(url)
    assert moved(before, after, "graphexec_runs_total", tenant="default", code="OK") == 40
    assert moved(before, after, "graphexec_run_duration_seconds_count", tenant="default") == 40
    assert moved(before, after, "graphexec_worker_runs_total", device="CPU", code="OK") == 40
    assert moved(before, after, "graphexec_worker_run_duration_seconds_count", device="CPU") == 40
    for name in ("graphexec_run_duration_seconds_sum", "graphexec_worker_run_duration_seconds_sum"):
        assert 0 < moved(before, after, name) < took


def test_embedded_server_counts_runs_calls_bytes_and_plan_sources(processes):
    target, url, process = start_serve(processes)
    graph, x, y, a, b, product = doubling_graph()
    before = Scrape(url)
    run_some(target, graph, x, y)
    with tf.Session(target, graph=graph) as sess, pytest.raises(errors.InvalidArgumentError):
        sess.run(product, {a: np.ones((2, 3)), b: np.ones((4, 5))})
    after = Scrape(url)

    assert moved(before, after, "graphexec_runs_total", tenant="default", code="OK") == RUNS
    assert moved(before, after, "graphexec_runs_total", code="INVALID_ARGUMENT") == 1
    assert moved(before, after, "graphexec_run_duration_seconds_count", tenant="default") == RUNS + 1
    assert moved(before, after, "graphexec_grpc_calls_total", method=RUN_CALLABLE, code="OK") == RUNS
    assert moved(before, after, "graphexec_grpc_calls_total", method=RUN_CALLABLE, code="INVALID_ARGUMENT") == 1
    assert moved(before, after, "graphexec_grpc_call_duration_seconds_count", method=RUN_CALLABLE) == RUNS + 1
    assert moved(before, after, "graphexec_grpc_received_bytes_total", method=RUN_CALLABLE) >= RUNS * FEED.nbytes
    assert moved(before, after, "graphexec_grpc_sent_bytes_total", method=RUN_CALLABLE) >= RUNS * 4
    # the embedded worker ran every plan, the failing one included
    assert moved(before, after, "graphexec_worker_runs_total", device="CPU", code="OK") == RUNS
    assert moved(before, after, "graphexec_worker_runs_total", device="CPU", code="INVALID_ARGUMENT") == 1
    # two signatures compiled once each; each run then found its plan in memory
    assert moved(before, after, "graphexec_plan_cache_lookups_total", source="compiled") == 2
    assert moved(before, after, "graphexec_plan_compile_duration_seconds_count") == 2
    assert moved(before, after, "graphexec_plan_cache_lookups_total", source="memory") == RUNS + 1
    assert moved(before, after, "graphexec_plan_cache_lookups_total", source="store") == 0
    assert moved(before, after, "graphexec_sessions_created_total", tenant="default") == 2
    assert after.value("graphexec_live_workers") == 1
    assert after.value("graphexec_grpc_calls_in_flight") == 0 and after.value("graphexec_worker_runs_in_flight") == 0

    logs = [entry for entry in request_logs(process) if entry.get("logger") == "graphexec.requests"]
    runs = [entry for entry in logs if entry["method"] == RUN_CALLABLE]
    assert [entry["code"] for entry in runs].count("OK") == RUNS
    ok = next(entry for entry in runs if entry["code"] == "OK")
    assert ok["level"] == "DEBUG" and ok["tenant"] == "default" and ok["duration_ms"] >= 0
    assert ok["session"] and len(ok["plan"]) == 16 and ok["request_id"] and ok["received_bytes"] >= FEED.nbytes
    failed = next(entry for entry in runs if entry["code"] == "INVALID_ARGUMENT")
    assert failed["level"] == "INFO" and failed["plan"] != ok["plan"]


def test_redis_servers_and_worker_count_store_hits_worker_runs_and_redis_calls(processes, redis_server):
    _, worker_url = start_worker(processes, redis_server.url)
    first, first_url, _ = start_serve(processes, "--redis", redis_server.url)
    second, second_url, _ = start_serve(processes, "--redis", redis_server.url)
    for url in (first_url, second_url):
        wait_until(lambda url=url: Scrape(url).value("graphexec_live_workers") == 1)
    graph, x, y, *_ = doubling_graph()
    worker_before, first_before, second_before = Scrape(worker_url), Scrape(first_url), Scrape(second_url)
    run_some(first, graph, x, y)
    run_some(second, graph, x, y, runs=1)  # the plan the first replica compiled, found in Redis
    worker_after, first_after, second_after = Scrape(worker_url), Scrape(first_url), Scrape(second_url)

    assert moved(first_before, first_after, "graphexec_runs_total", code="OK") == RUNS
    assert moved(second_before, second_after, "graphexec_runs_total", code="OK") == 1
    assert moved(first_before, first_after, "graphexec_plan_cache_lookups_total", source="compiled") == 1
    assert moved(first_before, first_after, "graphexec_plan_cache_lookups_total", source="memory") == RUNS
    assert moved(second_before, second_after, "graphexec_plan_cache_lookups_total", source="store") == 1
    assert moved(second_before, second_after, "graphexec_plan_cache_lookups_total", source="compiled") == 0
    assert moved(worker_before, worker_after, "graphexec_worker_runs_total", device="CPU", code="OK") == RUNS + 1
    assert moved(worker_before, worker_after, "graphexec_grpc_calls_total",
                 method="graphexec.v1.WorkerService/RunPlan", code="OK") == RUNS + 1
    assert moved(first_before, first_after, "graphexec_redis_operation_duration_seconds_count",
                 operation="put_blob") >= 1  # the compiled plan went to Redis
    assert moved(second_before, second_after, "graphexec_redis_operation_duration_seconds_count",
                 operation="get_blob") >= 1
    assert moved(worker_before, worker_after, "graphexec_redis_operation_duration_seconds_count",
                 operation="get_blob") == 1  # the worker loaded the plan once
    assert first_after.total("graphexec_redis_errors_total") == 0


def chain_graph(length: int = 40):
    """A graph above the client's probe size (remote.PROBE_MIN_NODES): a session asks before sending it."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [4], name="x")
        y = x
        for i in range(length):
            y = y * 1.01 if i % 2 else y + 0.5
    return graph, x, y


def test_a_replica_finding_a_graph_in_redis_reads_its_segments_head_and_the_plan(processes, redis_server):
    """A replica asked whether it has a graph that another replica received reads the first bytes of the
    stored segment (its node count), not its nodes; the plan is the one blob it reads whole."""
    start_worker(processes, redis_server.url)
    first, first_url, _ = start_serve(processes, "--redis", redis_server.url)
    second, second_url, _ = start_serve(processes, "--redis", redis_server.url)
    for url in (first_url, second_url):
        wait_until(lambda url=url: Scrape(url).value("graphexec_live_workers") == 1)
    results = []
    for target in (first, second):
        graph, x, y = chain_graph()  # each client builds its own copy
        before = Scrape(second_url)
        with tf.Session(target, graph=graph) as sess:
            results.append(sess.run(y, {x: np.ones(4, np.float32)}))
    after = Scrape(second_url)
    np.testing.assert_array_equal(results[0], results[1])
    redis_calls = "graphexec_redis_operation_duration_seconds_count"
    assert moved(before, after, redis_calls, operation="get_blob_head") == 1  # the probe
    assert moved(before, after, redis_calls, operation="get_blob") == 1  # the plan
    assert moved(before, after, redis_calls, operation="put_blob") == 0
    assert moved(before, after, "graphexec_plan_cache_lookups_total", source="store") == 1


def wait_until(condition, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_dashboard_queries_name_only_metrics_a_real_scrape_has(processes, redis_server):
    dashboard = json.loads(DASHBOARD.read_text())
    _, worker_url = start_worker(processes, redis_server.url)
    _, server_url, _ = start_serve(processes, "--redis", redis_server.url)
    exposed = Scrape(server_url).sample_names() | Scrape(worker_url).sample_names()
    panels = [p for row in dashboard["panels"] for p in [row, *row.get("panels", [])]]
    queries = [t["expr"] for p in panels for t in p.get("targets", [])]
    assert len(queries) >= 10, "the dashboard shows the service's metrics"
    for query in queries:
        names = set(re.findall(r"\bgraphexec_\w+", query))
        assert names, f"query names no graphexec metric: {query}"
        assert names <= exposed, f"{query}: {sorted(names - exposed)} not exported"


def test_runs_waiting_for_their_turn_are_counted_as_queued(processes):
    """With --threads 1 and an endless loop holding the one run slot until its deadline, another run
    waits in the queue (Run streams and other calls have threads of their own); the gauges show it
    meanwhile, and the waiting run is answered once the loop stops."""
    target, url, _ = start_serve(processes, "--threads", "1")
    graph, x, y, *_ = doubling_graph()
    endless = tf.Graph()
    with endless.as_default():
        forever = tf.while_loop(lambda v: v > 0, lambda v: v + 1, [tf.constant(1.0)])
    with tf.Session(target, graph=endless) as looping, tf.Session(target, graph=graph) as other:
        assert other.run(y, {x: FEED}) == 24.0  # session, graph and callable made before the slot is taken
        with concurrent.futures.ThreadPoolExecutor(2) as callers:
            loop = callers.submit(looping.run, forever, options=tf.RunOptions(timeout_in_ms=10_000))
            wait_until(lambda: Scrape(url).value("graphexec_worker_runs_in_flight") == 1)
            waiting = callers.submit(other.run, y, {x: FEED})
            wait_until(lambda: Scrape(url).value("graphexec_grpc_calls_queued") == 1)
            assert not waiting.done()
            with pytest.raises(errors.DeadlineExceededError):
                loop.result(timeout=60)
            assert waiting.result(timeout=30) == 24.0
    wait_until(lambda: Scrape(url).value("graphexec_grpc_calls_queued") == 0)
