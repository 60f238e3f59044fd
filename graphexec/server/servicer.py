"""gRPC glue for graphexec.v1.GraphExecService: bytes in, Service calls, bytes out; plus health and reflection.

Handlers take raw request bytes (graphexec.rpc.methods), so a malformed request is answered with
INVALID_ARGUMENT by our own decoding rather than failing inside gRPC, and tensor-carrying messages
are decoded as zero-copy views (graphexec.rpc.codec). Failures become statuses through the one map
of graphexec.rpc.status: tf.errors classes their own code, anything unexpected logged and INTERNAL.
Every call is authenticated before its handler runs (graphexec.rpc.methods): `context.caller` is the
caller's tenant (graphexec.server.auth), whose sessions and variables are the only ones it reaches.
"""
from __future__ import annotations

import time

import numpy as np

from graphexec import errors
from graphexec.proto.v1 import service_pb2 as spb
from graphexec.rpc import codec, convert, methods, status
from graphexec.rpc.codec import CHUNK_BYTES, parse
from graphexec.rpc.tensors import DecodeError, dtype_from_enum, tensors_from_protos
from graphexec.server import auth
from graphexec.runtime.worker import Cancellation
from graphexec.server import limits as server_limits
from graphexec.server import plans as plan_cache
from graphexec.server import telemetry
from graphexec.server.direct_api import DirectApiServer
from graphexec.server.limits import Admission, Limits, StreamGuard
from graphexec.server.service import RunOutcome, Service
from graphexec.server.worker_service import remaining_seconds

SERVICE = methods.GRAPH_EXEC_SERVICE.full_name
GRPC_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.so_reuseport", 0),
                # Clients reconnect (and re-resolve dns:/// targets) every 10 minutes, so replicas that an
                # autoscaler adds get traffic. No grace limit: calls in flight, long streams included, finish.
                ("grpc.max_connection_age_ms", 10 * 60 * 1000)]
MAX_UNARY_FETCH_BYTES = (2 << 30) - (16 << 20)  # what fits one message; bigger fetches need the Run stream
MAX_PARTED_TENSOR_BYTES = 1 << 40
PART_HEADER_BYTES = 64 << 10
_PLAN_SOURCES = {plan_cache.COMPILED: spb.PLAN_SOURCE_COMPILED, plan_cache.MEMORY: spb.PLAN_SOURCE_MEMORY,
                 plan_cache.STORE: spb.PLAN_SOURCE_STORE}


class GraphExecServicer:
    def __init__(self, service: Service, limits: Limits = server_limits.DEFAULT):
        self.service = service
        self.limits = limits
        self.admission = Admission(limits)
        service.metrics.count_queued(self.admission.waiting)  # runs waiting beyond --threads
        self.streams = StreamGuard(limits)
        self.direct_port = 0  # the API's direct link (graphexec.server.direct_api), announced by CreateSession
        self.direct_socket = ""  # its Unix socket for same-host clients, likewise
        self.run_fingerprint = ""  # set: CreateSession names a worker with these settings that takes runs itself

    # -- sessions -------------------------------------------------------------------------------------
    @status.answers_failures
    def create_session(self, data, context):
        request = parse(spb.CreateSessionRequest, data)
        server_limits.check_string("the container name", request.config.container, self.limits)
        record = self.service.create_session(request.config, context.caller)
        missing = False
        if request.HasField("graph"):
            record, missing = self.service.extend_session(record, request.graph)
        run_address, run_socket = ("", "") if not self.run_fingerprint else self.service.pool.run_target(
            self.run_fingerprint)
        return spb.CreateSessionResponse(session_handle=record.handle, graph_missing=missing,
                                         node_count=record.node_count, direct_port=self.direct_port,
                                         direct_address=run_address,
                                         direct_socket=run_socket if run_address else self.direct_socket,
                                         max_message_bytes=self.limits.max_message_bytes).SerializeToString()

    @status.answers_failures
    def extend_session(self, data, context):
        request = parse(spb.ExtendSessionRequest, data)
        record = self.service.sessions.get(request.session_handle, context.caller)
        record, missing = self.service.extend_session(record, request.graph)
        return spb.ExtendSessionResponse(graph_missing=missing, node_count=record.node_count,
                                         graph_digest=record.graph_digest).SerializeToString()

    @status.answers_failures
    def close_session(self, data, context):
        request = parse(spb.CloseSessionRequest, data)
        self.service.sessions.close(request.session_handle, context.caller)
        return b""

    @status.answers_failures
    def reset(self, data, context):
        self.service.reset(list(parse(spb.ResetRequest, data).containers), context.caller)
        return b""

    @status.answers_failures
    def list_devices(self, data, context):
        parse(spb.ListDevicesRequest, data)
        response = spb.ListDevicesResponse()
        for worker, device in self.service.list_devices():
            # Worker addresses are for the operator: the tenants of a shared server do not get them.
            address = getattr(worker, "address", "in-process") if context.caller == auth.SINGLE_TENANT else ""
            response.devices.add(name=device["name"], device_type=device["device_type"],
                                 memory_limit_bytes=device.get("memory_limit_bytes", 0), worker=worker.id,
                                 address=address, load=worker.load())
        return response.SerializeToString()

    # -- callables --------------------------------------------------------------------------------------
    @status.answers_failures
    def make_callable(self, data, context):
        request = parse(spb.MakeCallableRequest, data)
        if request.HasField("graph") and self._graph_missing(request.session_handle, request.graph, context.caller):
            return spb.MakeCallableResponse(graph_missing=True).SerializeToString()
        record = self.service.sessions.get(request.session_handle, context.caller, request.graph_node_count,
                                           request.graph_digest)
        made = self.service.make_callable(record, request.feeds, request.fetches, request.targets)
        return spb.MakeCallableResponse(
            callable_handle=made.plan.key, plan_cache_hit=made.source != plan_cache.COMPILED,
            feed_indices=made.feed_indices, plan_source=_PLAN_SOURCES[made.source], compile_ms=made.compile_ms,
        ).SerializeToString()

    def _graph_missing(self, handle: str, segment, caller: str) -> bool:
        """MakeCallable's graph, named without its nodes: the session is extended to it when this server
        holds it (as ExtendSession would), else True."""
        if segment.HasField("nodes"):
            raise errors.InvalidArgumentError(None, None, "MakeCallable names a graph without its nodes; send nodes "
                                                          "with ExtendSession")
        return self.service.extend_session(self.service.sessions.get(handle, caller), segment)[1]

    @status.answers_failures
    def release_callable(self, data, context):
        parse(spb.ReleaseCallableRequest, data)
        return b""  # plans stay cached (shared by key); nothing is held per handle

    @status.answers_failures
    def run_callable(self, data, context):
        request, feeds = self.decode_run_callable(data)
        return _unary_answer(*self._run_callable(request, feeds, context))

    def run_callable_pieces(self, data, context, decode) -> list:
        """run_callable's answer as the buffers it joins, the fetches' contents as views of them: for the
        direct link, which writes them apart, so a large answer is not copied into one message first
        (W2's 64 MiB: ~22% of the server's CPU a run). `decode`: the connection's run_callable_decoder, which
        reads a request that repeats the previous one's layout without parsing it."""
        request, feeds, request_id = decode(data)
        response, fetches = self._run_callable(request, feeds, context, request_id=request_id)
        _check_unary_fetches(fetches)
        return codec.tensor_message_pieces(response, "fetches", fetches)

    @staticmethod
    def decode_run_callable(data) -> tuple:
        """(request message, feeds) of RunCallable's bytes, for the direct link's batching thread
        (graphexec.server.direct_batching), which runs what it decodes in batches of its own."""
        request, feeds, _ = codec.decode_tensor_message(spb.RunCallableRequest, data, "feeds")
        _require_content(feeds)
        return request, feeds

    @staticmethod
    def run_callable_decoder():
        """`decode(data) -> (request message, feeds, request id)` for one connection's RunCallable bytes, as
        decode_run_callable decodes them; a request that repeats the previous one's layout (the same
        session, callable, options and feed shapes) is read without parsing (codec.RepeatDecoder), and
        its message is that request's: take the request id from the third item."""
        decoder = codec.RepeatDecoder(spb.RunCallableRequest, "feeds", "request_id")

        def decode(data: bytes) -> tuple:
            request, feeds, request_id = decoder.decode(data)
            _require_content(feeds)
            return request, feeds, request_id

        return decode

    @staticmethod
    def encode_run_callable(result) -> bytes:
        """RunCallable's answer for a PlanResult (as run_callable answers, without metadata)."""
        # (nothing printed, the common case: the message without its fetches is empty)
        if result.printed:
            return _unary_answer(spb.RunCallableResponse(printed=result.printed), result.fetches)
        return _unary_answer(b"", result.fetches, spb.RunCallableResponse)

    @status.answers_failures
    def run_step(self, data, context):
        request, feeds, _ = codec.decode_tensor_message(spb.RunStepRequest, data, "feeds")
        _require_content(feeds)
        if len(request.feed_names) != len(feeds):
            raise errors.InvalidArgumentError(None, None, f"{len(request.feed_names)} feed names for {len(feeds)} "
                                                          f"feed values")
        record = self.service.sessions.get(request.session_handle, context.caller, request.graph_node_count)
        made = self.service.make_callable(record, request.feed_names, request.fetches, request.targets)
        outcome = self._run(record, made.plan, [feeds[i] for i in made.feed_indices], request.request_id,
                            request.options, context)
        response = spb.RunStepResponse(printed=outcome.result.printed)
        if _wants_metadata(request.options):
            _fill_metadata(response.metadata, outcome, request.options, made.source, made.compile_ms)
        return codec.encode_tensor_message(response, "fetches", outcome.result.fetches)

    def _run_callable(self, request, feeds, context, cancellation=None, response_class=spb.RunCallableResponse,
                      request_id=None):
        record, cached, source = self.lookup(request, context.caller)
        if request_id is None:
            request_id = request.request_id
        outcome = self._run(record, cached, feeds, request_id, request.options, context, cancellation)
        response = response_class(printed=outcome.result.printed)
        if _wants_metadata(request.options):
            _fill_metadata(response.metadata, outcome, request.options, source, 0.0)
        return response, outcome.result.fetches

    def _run(self, record, cached, feeds, request_id, options, context, cancellation=None) -> RunOutcome:
        if cancellation is None:
            cancellation = Cancellation()
            context.add_callback(cancellation.cancel)
        with self.admission.slot() as slot:
            return self.service.run(record, cached, feeds, request_id, options, remaining_seconds(context),
                                    cancellation, slot, _broke_at(context))

    # -- the Run stream -----------------------------------------------------------------------------------
    def run(self, request_iterator, context):
        """One answer per run, in order; a failed run carries its status in the body. A batch request
        is answered by one batched response (runs with large fetches are answered alone, in order)."""
        try:
            stream = self.streams.open(context)
        except errors.OpError as exc:
            context.abort(status.status_code(exc), exc.message)
        try:
            yield from self._serve_stream(request_iterator, context, stream)
        finally:
            self.streams.close(stream)

    def _serve_stream(self, request_iterator, context, stream):
        parts: dict[int, _PartedTensor] = {}
        cancellation = Cancellation()  # one for the whole stream: cancelling it stops the current run
        context.add_callback(cancellation.cancel)
        for data in request_iterator:
            self.streams.active(stream, busy=True)
            try:
                request, feeds, raw = codec.decode_tensor_message(spb.RunRequest, data, "feeds", "part_data")
                if request.batch:
                    items = _batch_items(request, raw, feeds, parts)
                    yield from self._run_batch(items, context, cancellation)
                    continue
                if request.HasField("part"):
                    _accept_part(parts, request.part, raw)
                    continue
                if parts or request.parted_feeds or any(isinstance(f, tuple) for f in feeds):
                    feeds = _with_parts(feeds, request.parted_feeds, parts)
                    parts = {}
                response, fetches = self._run_callable(request, feeds, context, cancellation, spb.RunResponse)
                yield from _response_frames(response, fetches)
            except Exception as exc:  # answered in the body (a bug is logged): the stream keeps serving
                parts = {}
                yield _status_frame(exc)
            self.streams.active(stream, busy=False)

    def _run_batch(self, items, context, cancellation):
        """Run the items of a batch in order. Answers go out as one batch message, except that a run
        whose fetches are above the chunk size is answered alone, in parts, between batch messages.

        Consecutive runs of one callable of one session (a stream's runs mostly are) are looked up once
        and run together (Service.run_many: one worker call for the lot where it can), in one turn of
        admission; the turn is not held while answers are sent."""
        answers, deadline = [], _deadline(context)
        for group in _groups(items):
            for item, outcome, source in self._run_group(group, context, deadline, cancellation):
                if isinstance(outcome, Exception):  # this run's answer carries it (a bug is logged)
                    answers.append(_status_frame(outcome))
                    continue
                fetches = outcome.result.fetches
                header = _response_header(outcome, item.options, source)
                if any(getattr(f, "nbytes", 0) > CHUNK_BYTES for f in fetches):
                    if answers:
                        yield _batch_frame(answers)
                        answers = []
                    yield from _response_frames(spb.RunResponse.FromString(header), fetches)
                else:
                    answers.append(codec.encode_tensor_message(header, "fetches", fetches,
                                                               message_class=spb.RunResponse))
        if answers:
            yield _batch_frame(answers)

    def _run_group(self, group: list, context, deadline, cancellation):
        """(item, its outcome or failure, the plan's source) for each run of a group (one session, one
        callable), in order; Service.run_many runs as many as their fetches allow at a time, and each
        call's outcomes are answered (here, by the caller) before the next call runs more."""
        try:
            record, cached, source = self.lookup(group[0], context.caller)
        except Exception as exc:
            for item in group:
                yield item, exc, plan_cache.MEMORY
            return
        runs = []  # (item, its run, or why it cannot be decoded)
        for item in group:
            try:
                runs.append((item, (_batch_item_feeds(item), item.request_id, item.options)))
            except Exception as exc:  # answered in its place
                runs.append((item, exc))
        position = 0
        while position < len(runs):
            if isinstance(runs[position][1], Exception):
                yield runs[position][0], runs[position][1], source
                position += 1
                continue
            end = position
            while end < len(runs) and not isinstance(runs[end][1], Exception):
                end += 1
            try:
                with self.admission.slot() as slot:
                    done = self.service.run_many(record, cached, [run for _, run in runs[position:end]], deadline,
                                                 cancellation, slot)
            except Exception as exc:  # not admitted
                done = [exc] * (end - position)
            for offset, outcome in enumerate(done):
                yield runs[position + offset][0], outcome, source
            position += len(done)  # fetches may have stopped the call short: the rest go in the next one
            del done  # answered: not held while the next runs fetch theirs

    def lookup(self, request, caller: str) -> tuple:
        """(session record, plan, plan source) of a run request from `caller` (a tenant)."""
        record = self.service.sessions.get(request.session_handle, caller)
        return (record, *self.service.plans.get(request.callable_handle))


def _deadline(context) -> float | None:
    """The call's deadline on the time.monotonic() clock; None without one."""
    remaining = remaining_seconds(context)
    return None if remaining is None else time.monotonic() + remaining


def _groups(items):
    """Consecutive items with one session handle and callable handle, as lists."""
    group = []
    for item in items:
        if group and (item.session_handle != group[0].session_handle
                      or item.callable_handle != group[0].callable_handle):
            yield group
            group = []
        group.append(item)
    if group:
        yield group


def _response_header(outcome: RunOutcome, options, source: str) -> bytes:
    """A RunResponse without its fetches; empty (the common case) when there is nothing to say."""
    if not outcome.result.printed and not _wants_metadata(options):
        return b""
    response = spb.RunResponse(printed=outcome.result.printed)
    if _wants_metadata(options):
        _fill_metadata(response.metadata, outcome, options, source, 0.0)
    return response.SerializeToString()


def _batch_items(request, raw, feeds, parts) -> list:
    """The runs of a batch request; the message must carry nothing else, and no parts may precede it."""
    if parts or feeds or raw or len(request.ListFields()) > 1:
        raise DecodeError("a batch RunRequest carries only its items, and no parts precede it")
    return request.batch


def _batch_item_feeds(item) -> list:
    """The feeds of one run of a batch, which must carry them all inline."""
    if item.HasField("part") or item.parted_feeds or item.batch or item.part_data:
        raise DecodeError("a batch item is one run: no parts and no nested batch")
    feeds = tensors_from_protos(item.feeds)
    _require_content(feeds)
    return feeds


def _batch_frame(answers: list) -> bytes:
    return b"".join(codec.message_field(spb.RunResponse, "batch", answer) for answer in answers)


def _status_frame(failure: BaseException) -> bytes:
    """The answer of a failed run of the Run stream: its status, in the body."""
    return spb.RunResponse(status=status.failure_message(failure, "the Run stream")).SerializeToString()


def _unary_answer(response, fetches, message_class=None) -> bytes:
    """A unary run's answer: `response` (a message, or one serialized as `message_class`) followed by
    its fetches, which must fit one message."""
    _check_unary_fetches(fetches)
    return codec.encode_tensor_message(response, "fetches", fetches, message_class=message_class)


def _check_unary_fetches(fetches) -> None:
    nbytes = 0
    for fetch in fetches:
        nbytes += fetch.nbytes
    if nbytes > MAX_UNARY_FETCH_BYTES:
        raise errors.ResourceExhaustedError(None, None, "fetched tensors exceed one message (2 GiB); fetch them "
                                                        "through the Run stream")


def _wants_metadata(options) -> bool:
    return options.return_metadata or options.trace_level > 0


def _require_content(feeds) -> None:
    for feed in feeds:
        if isinstance(feed, tuple):
            raise DecodeError("a feed without content (parts are only accepted on the Run stream)")


def _fill_metadata(out: spb.RunMetadata, outcome: RunOutcome, options, source: str, compile_ms: float) -> None:
    """The run's RunMetadata (built by runtime.metadata.describe_run), copied into its message."""
    metadata = outcome.metadata(source, compile_ms, options.trace_level >= spb.TRACE_LEVEL_FULL)
    convert.stats_to_proto(metadata.step_stats.node_stats, out.node_stats)
    out.plan_cache_hit = metadata.plan_cache_hit
    out.plan_source = _PLAN_SOURCES[metadata.plan_source]
    out.compile_ms = metadata.compile_ms
    for decision in metadata.soft_placement:
        out.soft_placement.add(node=decision.node, requested_device=decision.requested,
                               assigned_device=decision.assigned, reason=decision.reason)
    out.devices.update(metadata.devices)
    out.workers.update(metadata.workers)
    out.executed_nodes.extend(metadata.executed_nodes)
    out.plan_text = metadata.plan_text
    out.deduplicated = metadata.deduplicated
    out.worker = metadata.worker


class _PartedTensor:
    def __init__(self, part):
        dtype = dtype_from_enum(part.dtype).np
        shape = tuple(part.shape)
        if any(d < 0 for d in shape):
            raise DecodeError(f"part shape {list(shape)} has a negative dimension")
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if nbytes > MAX_PARTED_TENSOR_BYTES:
            raise errors.ResourceExhaustedError(None, None, f"a tensor of {nbytes} bytes is too large")
        self.dtype_value, self.shape = part.dtype, shape
        self.array = np.empty(shape, dtype)
        self.bytes = self.array.reshape(-1).view(np.uint8)
        self.filled = 0


def _accept_part(parts: dict, part, raw) -> None:
    tensor = parts.get(part.index)
    if tensor is None:
        if part.offset != 0:
            raise DecodeError(f"part of feed {part.index} starts at offset {part.offset}, expected 0")
        tensor = parts[part.index] = _PartedTensor(part)
    data = raw if raw is not None else b""
    if part.offset != tensor.filled or tensor.filled + len(data) > tensor.bytes.size:
        raise DecodeError(f"part of feed {part.index} at offset {part.offset} ({len(data)} bytes) does not "
                               f"continue the {tensor.filled} of {tensor.bytes.size} bytes received")
    tensor.bytes[tensor.filled:tensor.filled + len(data)] = np.frombuffer(data, np.uint8)
    tensor.filled += len(data)


def _with_parts(feeds: list, parted, parts: dict) -> list:
    feeds = list(feeds)
    parted = set(parted)
    for index, value in enumerate(feeds):
        if isinstance(value, tuple) and index not in parted:
            raise DecodeError(f"feed {index} has no content and was not sent in parts")
    for index in parted:
        tensor = parts.get(index)
        if index >= len(feeds) or tensor is None or tensor.filled != tensor.bytes.size:
            raise DecodeError(f"feed {index} was not (completely) sent in parts")
        if feeds[index] != (tensor.dtype_value, tensor.shape):
            raise DecodeError(f"feed {index}: its parts describe another dtype or shape")
        feeds[index] = tensor.array
    return feeds


def _broke_at(context) -> str:
    """The worker whose direct link broke under this run before the client sent it here, if it says so
    (gRPC calls only: a run on a direct link has no metadata)."""
    metadata = getattr(context, "invocation_metadata", None)
    if metadata is None:
        return ""
    return next((value for key, value in metadata() or () if key == methods.WORKER_LINK_BROKE), "")


def _response_frames(response, fetches):
    """Parts of the large fetches, then the response itself (with content-less shells for them)."""
    return codec.parted_frames(response, "fetches", fetches, response.parted_fetches)


def create_server(service: Service, address: str = "127.0.0.1:0", limits: Limits = server_limits.DEFAULT,
                  tokens: auth.TokenTable | None = None, credentials=None, reflect: bool = True, health=None,
                  direct_port: int | None = None, direct_tls=None, run_fingerprint: str = ""):
    """(grpc server, bound port, direct link server or None). Health checking (and reflection when
    `reflect`) are served beside the API (`health`: the grpc_health servicer whose statuses a Readiness
    keeps); over TLS with `credentials`. With `tokens`, each call's tenant is the one its bearer token
    names (others are UNAUTHENTICATED); without, every caller is the single tenant. `limits`:
    graphexec.server.limits. `direct_port` (0: any free one; None: none) serves runs on the API's direct
    link (graphexec.server.direct_api) on the same host, with `direct_tls` (an ssl.SSLContext matching
    `credentials`); it is started with the gRPC server's start() by the caller. With `run_fingerprint`
    (graphexec.server.worker_runs), CreateSession names a worker with those settings that takes the
    session's runs itself."""
    authenticate = authenticator(tokens)
    # Never below one part of the Run stream (CHUNK_BYTES and its header): larger tensors travel in parts.
    max_message = max(limits.max_message_bytes, CHUNK_BYTES + PART_HEADER_BYTES)
    options = [*GRPC_OPTIONS, ("grpc.max_receive_message_length", max_message),
               ("grpc.max_concurrent_streams", limits.max_streams_per_connection)]
    threads = server_limits.executor_threads(limits)
    servicer = GraphExecServicer(service, limits)
    servicer.run_fingerprint = run_fingerprint
    interceptor = telemetry.Interceptor(service.metrics)
    server, port = methods.create_server(methods.GRAPH_EXEC_SERVICE, servicer, address, threads,
                                         options, reflect=reflect, credentials=credentials, authenticate=authenticate,
                                         interceptors=(interceptor,),
                                         queued=service.metrics.count_queued, health_servicer=health,
                                         max_concurrent_rpcs=threads)
    link = None
    if direct_port is not None:
        host = address.rsplit(":", 1)[0].strip("[]")
        link = DirectApiServer(servicer, host, direct_port, authenticate, direct_tls, interceptor, local=True)
        servicer.direct_port, servicer.direct_socket = link.port, link.local_name
    return server, port, link


def authenticator(tokens: auth.TokenTable | None):
    """What names a call's tenant: the one its bearer token names in `tokens`; without tokens every caller
    is the single tenant, which the metrics and logs show as DEFAULT_TENANT."""
    return _labelled(tokens.tenant_of) if tokens is not None else auth.SINGLE_TENANT


def _labelled(authenticate):
    """`authenticate`, also naming the tenant in the call's metrics and log line."""
    def tenant_of(metadata) -> str:
        tenant = authenticate(metadata)
        telemetry.annotate(tenant=tenant or telemetry.DEFAULT_TENANT)
        return tenant
    return tenant_of
