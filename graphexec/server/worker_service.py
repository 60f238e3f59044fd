"""`graphexec worker`: a WorkerCore served over the internal Worker gRPC API, registered in Redis.

With the worker secret (graphexec.server.auth), RunPlan is served only to callers that send it, and
the registration is signed with it.

The worker registers its id, address, devices and load under a key with a short TTL and refreshes
it every HEARTBEAT_S; servers place work only on workers whose key is alive. The gRPC deadline of
a RunPlan call is the run's deadline, and cancelling the call stops the run at the next op.
"""
from __future__ import annotations

import logging
import ssl
import threading
import time

from graphexec import errors
from graphexec.proto.v1 import worker_pb2 as wpb
from graphexec.rpc import codec, convert, link_format, methods, status
from graphexec.rpc.tensors import DecodeError
from graphexec.runtime.store import Store
from graphexec.runtime.worker import Cancellation, PlanCall, WorkerCore
from graphexec.server.auth import WorkerSecret
from graphexec.server.direct import DirectServer
from graphexec.server import telemetry

HEARTBEAT_S = 1.0
REGISTRATION_TTL_S = 3.0
NO_DEADLINE_S = 10 * 365 * 86400  # gRPC reports a huge time_remaining() for calls without a deadline
SERVICE = methods.WORKER_SERVICE.full_name
GRPC_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
log = logging.getLogger("graphexec.worker")


class WorkerServicer:
    def __init__(self, core: WorkerCore, metrics: telemetry.Metrics):
        self.core = core
        self.metrics = metrics
        metrics.worker_runs_in_flight.set_function(lambda: core.in_flight)

    @status.answers_failures
    def run_plan(self, data: bytes, context) -> bytes:
        cancellation = Cancellation()
        context.add_callback(cancellation.cancel)
        return self.answer(data, remaining_seconds(context), cancellation)

    def answer(self, data, timeout_s: float | None, cancellation: Cancellation) -> bytes:
        """The RunPlanResponse to a RunPlanRequest (gRPC's or the direct link's); raises its failure."""
        request, feeds, _ = codec.decode_tensor_message(wpb.RunPlanRequest, data, "feeds")
        if any(isinstance(f, tuple) for f in feeds):
            raise DecodeError("RunPlan feeds must carry their content")
        call = PlanCall(request.container, request.plan_key, feeds, request.request_id, request.session_handle,
                        request.device_type or "CPU", tuple(request.host_steps), request.trace_level > 0,
                        timeout_s, cancellation)
        result = self._run(call)
        response = wpb.RunPlanResponse(deduplicated=result.deduplicated, worker=result.worker, printed=result.printed)
        convert.stats_to_proto(result.stats, response.node_stats)
        return codec.encode_tensor_message(response, "fetches", result.fetches)

    def answer_plan(self, body: bytes, cancellation: Cancellation) -> list:
        """The ANSWER body (buffers) to a direct link PLAN body (graphexec.rpc.link_format); raises its failure."""
        timeout_s, container, plan_key, session, device_type, host_steps, request_id, trace, feeds = \
            link_format.read_plan(body)
        result = self._run(PlanCall(container, plan_key, feeds, request_id, session, device_type or "CPU", host_steps,
                                    trace, timeout_s, cancellation))
        return link_format.answer_pieces(result.fetches, result.stats, result.deduplicated, result.worker,
                                         result.printed)

    def _run(self, call: PlanCall):
        telemetry.annotate(session=call.session_handle[:8], plan=call.plan_key[:16], request_id=call.request_id or None)
        started, code = time.perf_counter(), "OK"
        try:
            return self.core.run(call)
        except Exception as exc:
            code = telemetry.code_name(exc)
            raise
        finally:
            self.metrics.worker_run_done(call.device_type, code, started)


class _Answered:
    """A direct link call's context for the call observer: the status code it was answered with (and the
    answer's arguments besides the request, which the observer counts)."""

    __slots__ = ("status", "arguments")

    def __init__(self, arguments: tuple):
        self.status = None
        self.arguments = arguments

    def code(self):
        return self.status


def _observed_direct(answer, interceptor: telemetry.Interceptor):
    """`answer` (servicer.answer or answer_plan) for the direct link, counted and logged as RunPlan calls
    (as gRPC's are)."""

    def behavior(request, context: _Answered):
        try:
            return answer(request, *context.arguments)
        except Exception as exc:
            context.status = status.status_code(exc)
            raise

    observed = interceptor.observe(f"{SERVICE}/RunPlan", behavior)

    def answer_observed(data, *arguments):
        return observed(data, _Answered(arguments))

    return answer_observed


def remaining_seconds(context) -> float | None:
    """Seconds left before the call's deadline; None without one."""
    remaining = context.time_remaining()
    return None if remaining is None or remaining > NO_DEADLINE_S else remaining


def create_worker_server(core: WorkerCore, host: str = "127.0.0.1", port: int = 0, max_threads: int = 16,
                         secret: WorkerSecret | None = None, credentials=None, metrics: telemetry.Metrics | None = None,
                         direct_port: int | None = 0, direct_tls: ssl.SSLContext | None = None):
    """(gRPC server, port, direct link server or None). With `secret`, only callers that send it (servers)
    may run plans: others are UNAUTHENTICATED. `direct_port` (0: any free one; None: no direct link) is
    announced in the worker's registration as `direct_port`, with `direct_version` (link_format.VERSION:
    the frames it reads); `direct_tls` is its TLS, which must match
    `credentials`' (servers dial both the same way)."""
    authenticate = secret.check_caller if secret is not None else None
    metrics = metrics or telemetry.Metrics()
    servicer = WorkerServicer(core, metrics)
    interceptor = telemetry.Interceptor(metrics)
    server, bound = methods.create_server(methods.WORKER_SERVICE, servicer, f"{host}:{port}", max_threads,
                                          GRPC_OPTIONS, credentials=credentials, authenticate=authenticate,
                                          interceptors=(interceptor,), queued=metrics.count_queued)
    link = None
    if direct_port is not None:
        link = DirectServer(_observed_direct(servicer.answer, interceptor), host, direct_port, max_threads, secret,
                            direct_tls, answer_plan=_observed_direct(servicer.answer_plan, interceptor))
        core.direct_port, core.direct_version = link.port, link_format.VERSION
    return server, bound, link


class Heartbeat:
    """Keeps the worker's registration alive; a dead worker's registration expires on its own. With the
    worker secret, the record is signed, so servers can tell it from one written by anyone else."""

    def __init__(self, store: Store, core: WorkerCore, secret: WorkerSecret | None = None):
        self.store = store
        self.core = core
        self.secret = secret
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="graphexec-heartbeat", daemon=True)

    def _register(self):
        info = self.core.info()
        self.store.register_worker(self.core.worker_id, self.secret.sign(info) if self.secret else info,
                                   REGISTRATION_TTL_S)

    def start(self):
        self._register()
        self._thread.start()
        return self

    def _beat(self):
        warned = False
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self._register()
                warned = False
            except errors.UnavailableError as exc:
                if not warned:
                    log.warning("heartbeat failed, retrying: %s", exc)
                    warned = True

    def stop(self):
        self._stop.set()
        try:
            self.store.unregister_worker(self.core.worker_id)
        except errors.UnavailableError:
            pass  # the registration expires by itself
