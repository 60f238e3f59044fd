"""The method tables of graphexec's gRPC services, read from the .proto service descriptors.

A service's handlers are the servicer's methods named after its RPCs in snake case (RunPlan ->
`run_plan`); clients get one callable per RPC. Both sides move raw bytes: requests and responses
are (de)serialized by graphexec.rpc.codec, so tensor contents are decoded as zero-copy views and a
malformed request is answered INVALID_ARGUMENT by our decoding rather than failing inside gRPC.

No generated *_pb2_grpc.py stubs: their servicer registration and stubs fix protobuf's own
(de)serializers per method, so tensor contents would be parsed into copies, and unparsable bytes
answered by gRPC itself (INTERNAL) rather than INVALID_ARGUMENT; and they are a second method table
beside this one. Measured with tools/bench_stub_paths.py (rounds alternate in one process; a shared,
loaded 2-core machine, medians of 5 rounds, three runs): 20,000 small unary calls (ListDevices) took
241 / 413 / 302 us per call through this raw-bytes generic handler vs 218 / 434 / 382 us through the
generated servicer and stub (the same within noise), and a RunCallable answering 8 MiB took 7.5 / 6.2 ms
here vs 10.9 / 9.0 ms through the generated path (~45% slower: protobuf copies the contents).
"""
from __future__ import annotations

import re
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from graphexec import errors
from graphexec.proto.v1 import service_pb2 as spb
from graphexec.proto.v1 import worker_pb2 as wpb
from graphexec.rpc import status

GRAPH_EXEC_SERVICE = spb.DESCRIPTOR.services_by_name["GraphExecService"]
WORKER_SERVICE = wpb.DESCRIPTOR.services_by_name["WorkerService"]


def handler_name(method_name: str) -> str:
    """The servicer method that serves RPC `method_name`: RunPlan -> run_plan."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", method_name).lower()


def _kind(method) -> str:
    return ("stream" if method.client_streaming else "unary") + "_" + (
        "stream" if method.server_streaming else "unary")


# Metadata of a run sent again over gRPC after its direct link to a worker that takes runs itself broke
# under it: that worker's HOST:PORT, for the server to check whether the run killed it
# (graphexec.server.service, `broke_at`).
WORKER_LINK_BROKE = "graphexec-worker-link-broke"


class CallerContext:
    """A call's grpc context plus `caller`: who `authenticate` found the caller to be."""

    __slots__ = ("_context", "caller")

    def __init__(self, context, caller):
        self._context, self.caller = context, caller

    def __getattr__(self, name):
        return getattr(self._context, name)

    # What every run asks of its context, forwarded without the __getattr__ detour.
    def add_callback(self, callback):
        return self._context.add_callback(callback)

    def time_remaining(self):
        return self._context.time_remaining()


def _authenticated(behavior, authenticate):
    """`behavior` called with a CallerContext, once `authenticate(metadata)` has named the caller; its
    failure (a tf.errors class) is the call's status and the handler never runs. `authenticate` may
    also be a string: every caller is that one (a server without credentials to check)."""
    if isinstance(authenticate, str):
        caller = authenticate

        def anyone(request, context):
            return behavior(request, CallerContext(context, caller))

        return anyone

    def checked(request, context):
        try:
            caller = authenticate(context.invocation_metadata())
        except errors.OpError as exc:
            context.abort(status.status_code(exc), exc.message)
        return behavior(request, CallerContext(context, caller))

    return checked


def generic_handler(service, servicer, authenticate=None) -> grpc.GenericRpcHandler:
    """Every RPC of `service` served by `servicer`'s method of the same name, on raw bytes; with
    `authenticate`, only for callers it accepts (see _authenticated)."""
    handlers = {}
    for method in service.methods:
        make = getattr(grpc, _kind(method) + "_rpc_method_handler")
        behavior = getattr(servicer, handler_name(method.name))
        handlers[method.name] = make(behavior if authenticate is None else _authenticated(behavior, authenticate))
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


def client_calls(channel: grpc.Channel, service) -> dict:
    """A raw-bytes callable per RPC of `service` on `channel`, by RPC name."""
    return {method.name: getattr(channel, _kind(method))(f"/{service.full_name}/{method.name}")
            for method in service.methods}


def create_server(service, servicer, address: str, max_threads: int, options, reflect: bool = False,
                  credentials: grpc.ServerCredentials | None = None, authenticate=None, interceptors=(),
                  queued=None, health_servicer=None, max_concurrent_rpcs: int | None = None):
    """(grpc server, bound port) serving `service` through `servicer`, with health checking (and
    reflection when `reflect`), over TLS with `credentials`, to callers `authenticate` accepts (health
    checks are open to all; `health_servicer`: one whose statuses the caller keeps, else one always
    SERVING), every call passing through `interceptors`; when given, `queued(source)` is told of a
    function that says how many calls wait for a thread; beyond `max_concurrent_rpcs` calls at once gRPC answers RESOURCE_EXHAUSTED
    rather than queueing; OSError naming the address when it cannot listen there."""
    threads = {"max_workers": max_threads, "thread_name_prefix": "graphexec"}
    executor = futures.ThreadPoolExecutor(**threads)
    if queued is not None:
        # Calls handed to the executor wait in its queue while every thread is busy. Read when scraped
        # (rather than counted up and down per call, which cost more than a small run's kernel).
        queued(executor._work_queue.qsize)
    server = grpc.server(executor, options=options, interceptors=interceptors,
                         maximum_concurrent_rpcs=max_concurrent_rpcs)
    server.add_generic_rpc_handlers((generic_handler(service, servicer, authenticate),))
    if health_servicer is None:
        health_servicer = health.HealthServicer()
        health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        health_servicer.set(service.full_name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if reflect:
        reflection.enable_server_reflection((service.full_name, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    try:  # grpcio returns 0 or, in newer releases, raises RuntimeError when it cannot bind
        port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    except RuntimeError:
        port = 0
    if not port:
        raise OSError(f"cannot listen on {address}: the port is in use or the host is not an address of this "
                      "machine (choose another port, or port 0 for any free one)")
    return server, port
