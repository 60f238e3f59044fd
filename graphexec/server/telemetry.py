"""Prometheus metrics and per-request logs of `graphexec serve` and `graphexec worker`.

`Metrics` is the one place that defines every metric. Each server owns one, with its own
CollectorRegistry (several servers may share a process, as in tests), served over HTTP by
`serve_metrics` when `--metrics-port` is set. `Interceptor` observes every gRPC call: count and
latency by method and status code, bytes in and out, calls in flight, and one log line per call on
the `graphexec.requests` logger (DEBUG when it succeeds, INFO when it fails). What the handlers
learn from the request (session, plan, request id, tenant) they `annotate` onto the current call.
"""
from __future__ import annotations

import bisect
import collections
import logging
import secrets
import threading
import time

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import start_http_server

from graphexec.rpc import status

DEFAULT_TENANT = "default"  # the tenant label of every call until services have several tenants
SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
log = logging.getLogger("graphexec.requests")


class Metrics:
    """Every metric a server or worker exports, registered in its own registry."""

    def __init__(self):
        self.registry = registry = CollectorRegistry()

        def counter(name, help_text, labels=()):
            return Counter(name, help_text, labels, registry=registry)

        def histogram(name, help_text, labels=()):
            return Histogram(name, help_text, labels, buckets=SECONDS, registry=registry)

        def gauge(name, help_text):
            return Gauge(name, help_text, registry=registry)

        # every gRPC call (interceptor)
        self.calls = counter("graphexec_grpc_calls", "Calls handled (over gRPC or a direct link), by method and status code",
                             ("method", "code"))
        self.call_seconds = histogram("graphexec_grpc_call_duration_seconds",
                                      "Time to handle a gRPC call, by method and status code", ("method", "code"))
        self.received_bytes = counter("graphexec_grpc_received_bytes", "Request bytes received, by method",
                                      ("method",))
        self.sent_bytes = counter("graphexec_grpc_sent_bytes", "Response bytes sent, by method", ("method",))
        self.calls_in_flight = gauge("graphexec_grpc_calls_in_flight", "gRPC calls being handled now")
        self.calls_queued = gauge("graphexec_grpc_calls_queued",
                                  "gRPC calls waiting for a free handler thread, and runs waiting for their "
                                  "turn (all --threads runs busy)")
        # Read when scraped, not counted per call: the queues themselves know their length.
        self._queued_sources: list = []
        self.calls_queued.set_function(lambda: sum(source() for source in self._queued_sources))
        # the service (serve)
        self.runs = counter("graphexec_runs", "Runs handled by this server, by tenant and status code",
                            ("tenant", "code"))
        self.run_seconds = histogram("graphexec_run_duration_seconds",
                                     "Time from a run's arrival to its answer (placing, queueing, running)",
                                     ("tenant",))
        self.sessions = counter("graphexec_sessions_created", "Sessions created, by tenant", ("tenant",))
        self.plan_lookups = counter("graphexec_plan_cache_lookups",
                                    "Plan lookups by where the plan came from: memory (this process), store "
                                    "(Redis: another replica compiled it) or compiled (a miss)", ("source",))
        self.compile_seconds = histogram("graphexec_plan_compile_duration_seconds",
                                         "Time to decode, check and compile a graph into a plan")
        self.live_workers = gauge("graphexec_live_workers", "Workers this server can place runs on")
        # dynamic batching (serve --max-batch-size)
        self.batch_size = Histogram("graphexec_batch_size", "Runs served by one kernel call of the dynamic batcher",
                                    buckets=BATCH_SIZES, registry=registry)
        self.unbatched_runs = counter("graphexec_unbatched_runs", "Runs that went alone while dynamic batching is "
                                                                  "on, by reason: plan (not row-wise) or request "
                                                                  "(traced, or its feeds' rows disagree or are too "
                                                                  "many)", ("reason",))
        # the worker that runs plans (worker, or serve's embedded one)
        self.worker_runs = counter("graphexec_worker_runs", "Plans run by this worker, by device and status code",
                                   ("device", "code"))
        self.worker_run_seconds = histogram("graphexec_worker_run_duration_seconds",
                                            "Time a worker takes to run a plan, by device", ("device",))
        self.worker_runs_in_flight = gauge("graphexec_worker_runs_in_flight", "Plans this worker is running now")
        # the shared store
        self.redis_seconds = histogram("graphexec_redis_operation_duration_seconds",
                                       "Time of a Redis operation, by store operation", ("operation",))
        self.redis_errors = counter("graphexec_redis_errors", "Redis operations that failed (Redis unreachable or "
                                                             "timing out), by store operation", ("operation",))

        self._series: dict[tuple, tuple] = {}  # labelled series of the per-run metrics, looked up once

    def count_queued(self, source) -> None:
        """Add `source()` (how many calls or runs wait somewhere now) to graphexec_grpc_calls_queued."""
        self._queued_sources.append(source)

    def run_done(self, tenant_name: str, code: str, started: float) -> None:
        """Count and time a run the server handled since `started` (perf_counter), answered with `code`."""
        counter, seconds = self._pair(self.runs, self.run_seconds, tenant_name, code)
        counter(1)
        seconds(time.perf_counter() - started)

    def runs_done(self, tenant_name: str, code: str, starts: list[float]) -> None:
        """run_done for runs answered together (a batch's), each handled since its entry of `starts`."""
        counter, seconds = self._pair(self.runs, self.run_seconds, tenant_name, code)
        counter(len(starts))
        now = time.perf_counter()
        seconds.many([now - started for started in starts])

    def redis_timer(self, operation: str):
        """`observe(seconds)` of graphexec_redis_operation_duration_seconds for `operation`, looked up once
        (a labels() call per commit cost the worker's step ~15-20 us of Python, W9)."""
        key = (id(self.redis_seconds), operation)
        observe = self._series.get(key)
        if observe is None:
            observe = self._series[key] = observer(self.redis_seconds.labels(operation))
        return observe

    def worker_run_done(self, device_type: str, code: str, started: float) -> None:
        """Count and time a plan a worker ran since `started`."""
        counter, seconds = self._pair(self.worker_runs, self.worker_run_seconds, device_type, code)
        counter(1)
        seconds(time.perf_counter() - started)

    def worker_runs_done(self, took: list) -> None:
        """worker_run_done for plans a worker ran one after another: (device type, code, seconds) each."""
        grouped = collections.defaultdict(list)
        for device_type, code, seconds in took:
            grouped[device_type, code].append(seconds)
        for (device_type, code), times in grouped.items():
            counter, seconds = self._pair(self.worker_runs, self.worker_run_seconds, device_type, code)
            counter(len(times))
            seconds.many(times)

    def _pair(self, counter, histogram, label: str, code: str) -> tuple:
        key = (id(counter), label, code)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = (incrementer(counter.labels(label, code)), observer(histogram.labels(label)))
        return series

    def plan_lookup(self, source: str) -> None:
        series = self._series.get(source)
        if series is None:
            series = self._series[source] = incrementer(self.plan_lookups.labels(source))
        series(1)


# Per-call and per-run metrics sit on the hot path, where prometheus_client's labels(), inc() and
# observe() (several Python calls each) cost more than a small run's kernel: the labelled series are
# looked up once and updated through their values (the same lock-protected values inc() updates).
# A prometheus_client that no longer has these internals gets its public methods instead: slower, correct.
def incrementer(series):
    """`add(amount)` for a labelled counter or gauge series."""
    value = getattr(series, "_value", None)
    return value.inc if hasattr(value, "inc") else series.inc


def observer(series):
    """`observe(seconds)` for a labelled histogram series; `observe.many(values)` observes several at once
    (a batch's runs: one lock per bucket they fall in, not two per value)."""
    try:
        bounds, buckets, add_to_sum = series._upper_bounds, [b.inc for b in series._buckets], series._sum.inc
    except AttributeError:
        def observe(value: float) -> None:
            series.observe(value)

        def observe_each(values) -> None:
            for value in values:
                series.observe(value)

        observe.many = observe_each
        return observe

    def observe(value: float) -> None:
        add_to_sum(value)
        buckets[bisect.bisect_left(bounds, value)](1)  # the first bucket whose bound is >= value

    def observe_many(values) -> None:
        add_to_sum(sum(values))
        for index, count in collections.Counter(bisect.bisect_left(bounds, value) for value in values).items():
            buckets[index](count)

    observe.many = observe_many
    return observe


def code_name(failure: BaseException) -> str:
    """The status code name a failure is answered with (for metrics)."""
    return status.status_code(failure).name


def serve_metrics(metrics: Metrics, host: str, port: int) -> int:
    """Serve `metrics` at http://HOST:PORT/metrics from a daemon thread; returns the bound port (0: any)."""
    httpd, _ = start_http_server(port, host, registry=metrics.registry)
    return httpd.server_port


# -- the current call ---------------------------------------------------------------------------------
class Call:
    """What is known about one gRPC call, logged when it ends."""

    __slots__ = ("fields", "method", "received", "sent", "started")

    def __init__(self, method: str):
        self.method = method
        self.fields = {"tenant": DEFAULT_TENANT}
        self.received = self.sent = 0
        self.started = time.perf_counter()


_current = threading.local()  # a call is handled start to end on one thread of the server's pool


def resume(call: Call | None) -> None:
    """Make `call` (from Interceptor.begin) the one this thread is handling."""
    _current.call = call


def annotate(**fields) -> None:
    """Add fields (session, plan, request_id, ...) to the log line of the call being handled, if any;
    None values are left out."""
    call = getattr(_current, "call", None)
    if call is not None:
        call.fields.update(fields)  # None values are dropped when the line is logged


def tenant() -> str:
    """The tenant of the call being handled (DEFAULT_TENANT outside one)."""
    call = getattr(_current, "call", None)
    return DEFAULT_TENANT if call is None else call.fields["tenant"]


def _size(message) -> int:
    if isinstance(message, list):  # a message as the buffers it is written from (the direct link's ANSWER)
        return sum(map(len, message))
    return len(message) if isinstance(message, (bytes, bytearray, memoryview)) else 0


class Interceptor(grpc.ServerInterceptor):
    """Metrics and a log line for every call; handlers run unchanged inside."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics
        self._series: dict[tuple, tuple] = {}  # (method, code) -> its labelled series, looked up once
        self._in_flight = incrementer(metrics.calls_in_flight)
        self._wrapped: dict[str, tuple] = {}  # method path -> (handler, observed handler)

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        # Registered handlers are the same objects call after call: each is wrapped once.
        wrapped = self._wrapped.get(handler_call_details.method)
        if wrapped is None or wrapped[0] is not handler:
            wrapped = self._wrapped[handler_call_details.method] = (handler, self._wrap(handler_call_details, handler))
        return wrapped[1]

    def _wrap(self, handler_call_details, handler):
        method = handler_call_details.method.lstrip("/")
        if handler.unary_unary:
            return handler._replace(unary_unary=self._unary(method, handler.unary_unary))
        if handler.unary_stream:
            return handler._replace(unary_stream=self._streaming(method, handler.unary_stream, False))
        if handler.stream_stream:
            return handler._replace(stream_stream=self._streaming(method, handler.stream_stream, True))
        return handler._replace(stream_unary=self._unary(method, handler.stream_unary, streamed_request=True))

    def observe(self, method: str, behavior):
        """`behavior(request, context)` observed as a unary call of `method`, for calls that do not come
        through gRPC (a worker's direct link); `context.code()` is the status it answered, None for OK."""
        return self._unary(method, behavior)

    def _unary(self, method, behavior, streamed_request=False):
        def observed(request, context):
            call = self._begin(method)
            failure = None
            try:
                if streamed_request:
                    request = self._counted(call, request)
                else:
                    call.received = _size(request)
                response = behavior(request, context)
                call.sent = _size(response)
                return response
            except BaseException as exc:  # observed and re-raised: gRPC answers it as before
                failure = exc
                raise
            finally:
                self._end(call, context, failure)

        return observed

    def _streaming(self, method, behavior, streamed_request):
        def observed(request, context):
            call = self._begin(method)
            failure = None
            try:
                request = self._received(call, request, streamed_request)
                for response in behavior(request, context):
                    call.sent += _size(response)
                    yield response
            except BaseException as exc:  # observed and re-raised (GeneratorExit: the client went away)
                failure = exc
                raise
            finally:
                self._end(call, context, failure)

        return observed

    @classmethod
    def _received(cls, call: Call, request, streamed: bool):
        """The request as the handler takes it, its bytes counted (a stream's as they arrive)."""
        if streamed:
            return cls._counted(call, request)
        call.received = _size(request)
        return request

    @staticmethod
    def _counted(call: Call, requests):
        for request in requests:
            call.received += _size(request)
            yield request

    def begin(self, method: str, received: int = 0) -> Call:
        """Observe a call that one thread handles in pieces among others' (the direct link's batched runs,
        graphexec.server.direct_batching): it is the thread's current call (what `annotate` adds to) until
        `end`, `abandon` or `resume(None)`."""
        call = self._begin(method)
        call.received = received
        return call

    def abandon(self, call: Call) -> None:
        """Forget a call begun but then handled elsewhere (observed there)."""
        _current.call = None
        self._in_flight(-1)

    def end(self, call: Call, code: grpc.StatusCode, sent: int = 0) -> None:
        call.sent = sent
        self._record(call, code)

    def _begin(self, method: str) -> Call:
        call = _current.call = Call(method)
        self._in_flight(1)
        return call

    def _end(self, call: Call, context, failure) -> None:
        code = context.code()
        if code is None:
            code = grpc.StatusCode.OK if failure is None else (
                grpc.StatusCode.CANCELLED if isinstance(failure, GeneratorExit) else grpc.StatusCode.UNKNOWN)
        self._record(call, code)

    def _record(self, call: Call, code) -> None:
        _current.call = None
        seconds = time.perf_counter() - call.started
        self._in_flight(-1)
        calls, call_seconds, received, sent, name, _ = self._labelled(call.method, code)
        calls(1)
        call_seconds(seconds)
        received(call.received)
        sent(call.sent)
        self._log(call, code, name, seconds)

    def end_many(self, calls: list[Call], code: grpc.StatusCode, sent: list[int]) -> None:
        """`end` for calls of one method answered together (the direct link's batched runs): their metrics
        are added at once."""
        _current.call = None
        now = time.perf_counter()
        self._in_flight(-len(calls))
        counter, call_seconds, received, sent_bytes, name, _ = self._labelled(calls[0].method, code)
        counter(len(calls))
        durations = [now - call.started for call in calls]
        call_seconds.many(durations)
        received(sum(call.received for call in calls))
        sent_bytes(sum(sent))
        for call, size, seconds in zip(calls, sent, durations):
            call.sent = size
            self._log(call, code, name, seconds)

    @staticmethod
    def _log(call: Call, code, name: str, seconds: float) -> None:
        level = logging.DEBUG if code == grpc.StatusCode.OK else logging.INFO
        if log.isEnabledFor(level):
            fields = {"call_id": secrets.token_hex(8), "method": call.method, "code": name,
                      "duration_ms": round(seconds * 1e3, 3), "received_bytes": call.received,
                      "sent_bytes": call.sent, **{k: v for k, v in call.fields.items() if v is not None}}
            log.log(level, "%s %s in %.1f ms", call.method, name, seconds * 1e3, extra=fields)

    def _labelled(self, method: str, code) -> tuple:
        key = (method, id(code))  # status codes are singletons (and Enum.__hash__ is Python code)
        series = self._series.get(key)
        if series is None:
            name = code.name if isinstance(code, grpc.StatusCode) else str(code)
            m = self.metrics
            series = self._series[key] = (
                incrementer(m.calls.labels(method, name)), observer(m.call_seconds.labels(method, name)),
                incrementer(m.received_bytes.labels(method)), incrementer(m.sent_bytes.labels(method)), name,
                code)  # held, so that its id is never another object's
        return series
