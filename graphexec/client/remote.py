"""tf.Session("grpc://host:port"): the remote session.

It shares BaseSession's fetch and feed handling and replaces `_run_flat`:
1. Graph sync. The session remembers how many nodes (and which chain state) the server holds. When
   the graph has grown, it names the new state by its digest and, unless the server already has it,
   sends only the nodes after the acknowledged prefix (ExtendSession). A graph of PROBE_MIN_NODES new
   nodes or more is named first, by the MakeCallable that needs it: a server that holds it (another
   client or replica uploaded it) answers with the callable, one call in all.
2. Callables. Each (feeds, fetches, targets) signature becomes a callable once (MakeCallable, which
   may find the plan already compiled by another client or replica); every run then sends only the
   feed tensors (RunCallable), with a fresh request id that retries reuse.
3. Large tensors. A run with a feed above the chunk size (graphexec.rpc.codec.CHUNK_BYTES, 1 MiB), or a fetch whose
   static size is above it, goes through the Run stream in parts, so tensors of any size up to
   memory work (and large transfers pipeline). Over the direct link (client/direct.py) a run goes in one
   frame instead while its feeds, and its fetches' static size, are within what the server reads in one
   message (its --max-message-bytes, less room for the rest; at most DIRECT_RUN_BYTES): a 1.6 MB feed
   took ~3.5 ms a run in parts on the stream and ~0.9 ms in a frame; W2's 64 MiB in and out 92 -> 53 ms
   (the client's CPU 80 -> 30-35 ms). Runs a worker takes itself stay there.

Fetched arrays below 1 MiB are private copies; larger ones are read-only views of the received
bytes (no copy): copy them before writing into them. Scalars come back as numpy scalars, as in TF.

`stream(fetches, feed_iter, max_in_flight=256, options=None)` runs `fetches` once per feed dict over
one bidirectional Run call and yields the results in order, with at most `max_in_flight` runs (and
STREAM_BYTES_IN_FLIGHT of feeds) outstanding. gRPC costs about as much per message as a small run costs
to execute, so the stream sends the small runs that are ready together in one batch message (up to
STREAM_BATCH_RUNS), and the server answers a batch with one message. The window must hold several
batches, or the stream waits a round trip per window: W1 runs streamed with 32 in flight made
6.3-6.5k runs/s here, with 256 10-14k in the same minutes (then both processes are CPU-bound).
"""
from __future__ import annotations

import collections
import itertools
import math
import queue
import secrets
import threading
from dataclasses import dataclass, field

import grpc
import numpy as np

from graphexec import errors
from graphexec.base_session import BaseSession, printing_failures, write_printed
from graphexec.client.connection import Connection, ResponseAssembler, request_frames
from graphexec.client.retry import RetryPolicy
from graphexec.config import RunOptions
from graphexec.fetches import FetchMapper
from graphexec.proto.v1 import service_pb2 as spb
from graphexec.rpc import codec, convert, status
from graphexec.rpc.codec import CHUNK_BYTES
from graphexec.runtime import tuning

COPY_BELOW_BYTES = 1 << 20
DIRECT_RUN_BYTES = 1 << 30  # feeds (or static fetches) of a run in one direct-link frame at most (more: the Run stream)
FRAME_HEADROOM_BYTES = 1 << 20  # of the server's message limit, for the rest of a run's request
_DEFAULT_OPTIONS = RunOptions()  # read only, never changed
PROBE_MIN_NODES = 32  # smaller uploads are sent at once rather than asking first whether the server has them
STREAM_BATCH_RUNS = 64  # the most small runs the Run stream sends in one message
STREAM_BYTES_IN_FLIGHT = 64 << 20  # feeds a stream keeps outstanding at most (beyond its first run)


@dataclass
class _Callable:
    handle: str
    feed_indices: tuple[int, ...]
    streamed: bool  # some fetch is statically larger than the chunk size
    fetch_bytes: int  # the fetches' static size (unknown shapes count 0)
    made: spb.MakeCallableResponse | None  # reported with the first run's metadata, then dropped
    headers: dict = field(default_factory=dict)  # serialized requests but for the request id, by options
    encoders: dict = field(default_factory=dict)  # the same with the request id's key, as RepeatEncoders
    # its answers repeat one layout (fetches of the same shapes): read without parsing when they do
    replies: codec.RepeatDecoder = field(default_factory=lambda: codec.RepeatDecoder(spb.RunCallableResponse,
                                                                                      "fetches"))


@dataclass(frozen=True)
class DeviceAttributes:
    """An entry of Session.list_devices() (TF's _DeviceAttributes)."""

    name: str
    device_type: str
    memory_limit_bytes: int
    worker: str = ""
    address: str = ""


class RemoteSession(BaseSession):
    def __init__(self, target, graph=None, config=None, retry: RetryPolicy | None = None):
        super().__init__(target, graph, config)
        tuning.keep_freed_memory()  # large answers reuse freed memory (graphexec/runtime/tuning.py)
        self._connection = Connection(target, retry)
        session_config = spb.SessionConfig(
            allow_soft_placement=bool(getattr(config, "allow_soft_placement", True)),
            container=str(getattr(config, "container", "") or ""),
            default_timeout_ms=int(getattr(config, "operation_timeout_in_ms", 0) or 0))
        created = self._connection.message("CreateSession", spb.CreateSessionRequest(config=session_config),
                                           spb.CreateSessionResponse)
        self._handle = created.session_handle
        self._connection.use_direct(created.direct_port, created.direct_address, created.direct_socket)
        self._acked = (0, b"", None)  # node count, chain state, seed the server holds for this session
        # Feeds a run sends in one direct-link frame at most: what the server reads, less room for the rest.
        self._frame_limit = min(DIRECT_RUN_BYTES, max(created.max_message_bytes - FRAME_HEADROOM_BYTES, 0))
        self._digest = ""  # digest of that graph
        self._callables: dict[tuple, _Callable] = {}
        self._callables_version = None
        self._lock = threading.Lock()
        # Request ids: a random 62-bit start per session, then consecutive (unique without a syscall per run).
        self._request_ids = itertools.count(secrets.randbits(62) | 1)
        self._pipeline = SessionStream(self._connection)  # the Run stream of tf.data-fed runs, opened on first use

    # -- graph sync -------------------------------------------------------------------------------
    def _sync_graph(self, key: tuple) -> _Callable | None:
        """Bring the server's graph up to date. Fewer than PROBE_MIN_NODES new nodes are sent at once. A
        larger graph is first named without its nodes (another client or replica may have uploaded it), by
        the MakeCallable of `key`, whose callable is returned when the server held the graph."""
        nodes, seed, graph_digest, chain, refined = self.graph.snapshot()
        base_count, base_chain, acked_seed = self._acked
        if len(nodes) == base_count and seed == acked_seed:
            return None
        segment = spb.GraphSegment(base_node_count=base_count, base_chain=base_chain, node_count=len(nodes),
                                   chain=chain, seed=seed)
        made = None
        if len(nodes) - base_count >= PROBE_MIN_NODES:
            try:
                made = self._make_callable(*key, len(nodes), graph_digest, named_graph=segment)
            except errors.FailedPreconditionError:  # a server older than named graphs: upload, then ask again
                made = None
        if made is None:
            self._extend_with_nodes(segment, nodes, refined)
        self._acked, self._digest = (len(nodes), chain, seed), graph_digest
        return made

    def _extend(self, segment):
        return self._connection.message("ExtendSession", spb.ExtendSessionRequest(
            session_handle=self._handle, graph=segment), spb.ExtendSessionResponse)

    def _extend_with_nodes(self, segment, nodes, refined) -> None:
        convert.graph_to_proto(nodes[segment.base_node_count:], declared=refined, out=segment.nodes)
        try:
            self._extend(segment)
        except errors.NotFoundError:  # the server lost the prefix (restarted): send the whole graph
            segment.base_node_count, segment.base_chain = 0, b""
            segment.ClearField("nodes")
            convert.graph_to_proto(nodes, declared=refined, out=segment.nodes)
            self._extend(segment)

    # -- callables ----------------------------------------------------------------------------------
    def _callable(self, feed_names, fetch_names, targets) -> _Callable:
        key = (tuple(feed_names), tuple(fetch_names), tuple(targets))
        acked, graph = self._acked, self.graph
        if graph.version == acked[0] and graph.seed == acked[2] and self._callables_version == acked:
            made = self._callables.get(key)  # the hot path: the graph is in sync and the callable made
            if made is not None:
                return made
        with self._lock:
            made = self._sync_graph(key)
            version = self._acked
            if version != self._callables_version:
                self._callables, self._callables_version = {}, version
            made = made or self._callables.get(key) or self._make_callable(*key, version[0], self._digest)
            self._callables[key] = made
            return made

    def _make_callable(self, feed_names, fetch_names, targets, node_count: int, graph_digest: str,
                       named_graph=None) -> _Callable | None:
        """The callable of a signature of the graph of `node_count` nodes and `graph_digest`. With
        `named_graph` (that graph's segment without its nodes) the call also extends the session to it,
        and None says that the server lacks it."""
        response = self._connection.message("MakeCallable", spb.MakeCallableRequest(
            session_handle=self._handle, feeds=feed_names, fetches=fetch_names, targets=targets,
            graph_node_count=node_count, graph_digest=graph_digest, graph=named_graph), spb.MakeCallableResponse)
        if response.graph_missing:
            return None
        sizes = [self._static_nbytes(name) for name in fetch_names]
        return _Callable(response.callable_handle, tuple(response.feed_indices),
                         any(size > CHUNK_BYTES for size in sizes), sum(sizes), response)

    def _static_nbytes(self, tensor_name) -> int:
        tensor = self.graph.get_tensor_by_name(tensor_name)
        shape = tensor._shape
        if shape is None or None in shape:
            return 0
        return math.prod(shape) * tensor.dtype.size

    def _forget_callable(self, feed_names, fetch_names, targets) -> None:
        with self._lock:
            self._callables.pop((tuple(feed_names), tuple(fetch_names), tuple(targets)), None)

    # -- running ------------------------------------------------------------------------------------
    def _run_flat(self, feed_names, feed_values, fetch_names, targets, options, run_metadata):
        try:
            response, made, fetches = self._run_once(feed_names, feed_values, fetch_names, targets, options,
                                                     run_metadata)
        except errors.OpError as exc:
            write_printed(exc.printed)  # what the run printed before failing
            raise
        if response.printed:
            write_printed(response.printed)
        if run_metadata is not None:
            self._record(response, made, run_metadata)
        return [_result(f) for f in fetches]

    def _run_once(self, feed_names, feed_values, fetch_names, targets, options, run_metadata):
        """(response, callable, fetches) of one run, made again once when the server lost the callable."""
        options = options or _DEFAULT_OPTIONS
        request_id = next(self._request_ids)
        for attempt in range(2):
            made = self._callable(feed_names, fetch_names, targets)
            feeds = [feed_values[i] for i in made.feed_indices]
            timeout = options.timeout_in_ms / 1000 if options.timeout_in_ms else None
            try:
                if (made.streamed or _any_large(feeds)) and not self._in_one_frame(feeds, made.fetch_bytes):
                    request = self._request(made, request_id, options, run_metadata is not None)
                    response, fetches = self._run_streamed(request, feeds, timeout)
                else:
                    encoder = self._encoder(made, options, run_metadata is not None)
                    reply = self._connection.call("RunCallable", encoder.pieces(request_id, feeds), timeout)
                    response, fetches, _ = made.replies.decode(reply)
                return response, made, fetches
            except errors.NotFoundError as exc:  # another replica, or a restarted server: make it again
                if attempt or not str(exc).startswith(("callable ", "graph ")):
                    raise
                if str(exc).startswith("graph "):  # the server dropped the unused graph: send it again
                    with self._lock:
                        self._acked = (0, b"", None)
                self._forget_callable(feed_names, fetch_names, targets)

    def _request(self, made: _Callable, request_id: int, options, with_metadata: bool, message=spb.RunRequest):
        """The run request (a Run stream item by default; RunCallableRequest has the same fields 1-5)."""
        run_options = spb.RunOptions(timeout_ms=int(options.timeout_in_ms or 0), trace_level=options.trace_level,
                                     return_metadata=with_metadata)
        return message(session_handle=self._handle, callable_handle=made.handle, request_id=request_id,
                       options=run_options)

    def _header(self, made: _Callable, options, with_metadata: bool) -> bytes:
        """The serialized request without its request id (field 4) and feeds: the same for every run."""
        key = (options.timeout_in_ms, options.trace_level, with_metadata)
        header = made.headers.get(key)
        if header is None:
            header = made.headers[key] = self._request(made, 0, options, with_metadata,
                                                       spb.RunCallableRequest).SerializeToString()
        return header

    def _encoder(self, made: _Callable, options, with_metadata: bool) -> codec.RepeatEncoder:
        """The encoder of the callable's direct-link requests: the header, the request id, the feeds."""
        key = (options.timeout_in_ms, options.trace_level, with_metadata)
        encoder = made.encoders.get(key)
        if encoder is None:
            encoder = made.encoders[key] = codec.RepeatEncoder(
                spb.RunCallableRequest, "feeds", self._header(made, options, with_metadata) + _REQUEST_ID_KEY)
        return encoder

    def _in_one_frame(self, feeds, fetch_bytes: int) -> bool:
        """Whether a run with large feeds or fetches goes over the direct link in one frame (not on the Run
        stream): its feeds fit what the server reads in one frame, and its answer no more than that."""
        link = self._connection.direct
        return (link is not None and link.usable() and fetch_bytes <= self._frame_limit
                and sum(f.nbytes for f in feeds) <= self._frame_limit)

    def _run_streamed(self, request, feeds, timeout):
        assembler = ResponseAssembler()
        try:
            for data in self._connection.stream(request_frames(request, feeds), timeout):
                done = assembler.feed(data)
                if done is not None:
                    return done
        except grpc.RpcError as exc:
            raise status.error_from_rpc(exc) from None
        raise errors.UnavailableError(None, None, "the server closed the Run stream without answering")

    def _run_pipelined(self, feed_names, feed_values, fetch_names, targets, options, run_metadata):
        """A run fed by a tf.data iterator goes over this session's one long-lived Run stream: a training
        loop over a dataset is one call, not one unary call per step. Each sess.run still waits for its
        answer, so one run (one batch) is on the wire at a time, and the iterator's prefetch buffer bounds
        what waits in the client."""
        if run_metadata is not None:
            return self._run_flat(feed_names, feed_values, fetch_names, targets, options, run_metadata)
        options = options or _DEFAULT_OPTIONS
        request_id = next(self._request_ids)
        for attempt in range(2):
            made = self._callable(feed_names, fetch_names, targets)
            feeds = [feed_values[i] for i in made.feed_indices]
            if made.streamed or _any_large(feeds):
                frames = request_frames(self._request(made, request_id, options, False), feeds)
            else:
                frames = (_encode_run(self._header(made, options, False), request_id, feeds),)
            try:
                response, fetches = printing_failures(lambda frames=frames: self._pipeline.run(frames))
                break
            except errors.NotFoundError as exc:  # the server lost the callable: make it again, once
                if attempt or not str(exc).startswith("callable "):
                    raise
                self._forget_callable(feed_names, fetch_names, targets)
        write_printed(response.printed)
        return [_result(f) for f in fetches]

    def _record(self, response, made: _Callable, run_metadata) -> None:
        convert.metadata_from_proto(response.metadata, run_metadata)
        if made.made is not None:  # the first run of a callable reports how its plan was obtained
            run_metadata.plan_cache_hit = made.made.plan_cache_hit
            run_metadata.plan_source = convert.plan_source_name(made.made.plan_source)
            run_metadata.compile_ms = made.made.compile_ms
            made.made = None

    # -- streaming ----------------------------------------------------------------------------------
    def _stream(self, fetches, feed_iter, max_in_flight: int, options):
        """Yield `sess.run(fetches, feed_dict)` for each feed dict of `feed_iter`, in order, over one
        bidirectional Run call with at most `max_in_flight` runs outstanding. A failed run raises its
        tf.errors class at its position and ends the stream.

        A thread reads `feed_iter` and encodes each run; the sender takes every run already encoded
        (up to STREAM_BATCH_RUNS) and sends the small ones as one batch message, so a run never waits
        for feeds that `feed_iter` has not produced yet. Runs with large feeds go alone, in parts."""
        if self._closed:
            raise RuntimeError("Attempted to use a closed Session.")
        mapper = FetchMapper(self.graph, fetches)
        options = options or _DEFAULT_OPTIONS
        window = _Window(max(1, max_in_flight), STREAM_BYTES_IN_FLIGHT)
        ready = queue.SimpleQueue()  # encoded runs in order (bytes, or the frames of a large run); None ends
        failure: list[BaseException] = []
        finished = threading.Event()

        def encode_runs():
            try:
                for feed_dict in feed_iter:
                    names, values = self._normalize_feeds(feed_dict)
                    made = self._callable(names, mapper.tensor_names, mapper.target_names)
                    feeds = [values[i] for i in made.feed_indices]
                    request_id = next(self._request_ids)
                    if not window.enter(sum(feed.nbytes for feed in feeds), finished):
                        return
                    if made.streamed or _any_large(feeds):
                        ready.put(request_frames(self._request(made, request_id, options, False), feeds))
                    else:  # the cached header (RunRequest shares fields 1-5) and the feeds
                        ready.put(_encode_run(self._header(made, options, False), request_id, feeds))
            except Exception as exc:  # handed to the consuming thread, which raises it in order
                failure.append(exc)
            finally:
                ready.put(None)

        def frames():
            while not finished.is_set():
                try:
                    runs = [ready.get(timeout=0.1)]
                except queue.Empty:
                    continue
                while runs[-1] is not None and len(runs) < STREAM_BATCH_RUNS and not ready.empty():
                    runs.append(ready.get())
                yield from _coalesced(run for run in runs if run is not None)
                if runs[-1] is None:
                    return

        threading.Thread(target=encode_runs, name="graphexec-stream-feeds", daemon=True).start()
        call = self._connection.stream(frames())
        assembler = ResponseAssembler()
        try:
            for data in call:
                answers = assembler.answers(data)
                if answers:
                    window.leave(len(answers))
                for answer in answers:
                    if isinstance(answer, errors.OpError):
                        write_printed(answer.printed)
                        raise answer
                    write_printed(answer[0].printed)
                    yield mapper.build([_result(f) for f in answer[1]])
        except grpc.RpcError as exc:
            if not failure:
                raise status.error_from_rpc(exc) from None
        finally:
            finished.set()
            call.cancel()
        if failure:
            raise failure[0]

    # -- the rest of the TF1 session API ------------------------------------------------------------------
    def list_devices(self) -> list[DeviceAttributes]:
        response = self._connection.message("ListDevices", spb.ListDevicesRequest(session_handle=self._handle),
                                            spb.ListDevicesResponse)
        return [DeviceAttributes(d.name, d.device_type, d.memory_limit_bytes, d.worker, d.address)
                for d in response.devices]

    def load_variable(self, name, value, dtype):
        initializer = self.graph.get_operation_by_name(f"{name}/Assign")
        self.run(initializer, {initializer.inputs[0]: np.asarray(value, dtype=dtype.np)})

    def close(self):
        if self._closed:
            return
        super().close()
        self._pipeline.close()
        try:
            self._connection.call("CloseSession", spb.CloseSessionRequest(session_handle=self._handle)
                                  .SerializeToString(), timeout=5, retry=False)
        except (errors.UnavailableError, errors.DeadlineExceededError, errors.NotFoundError):
            pass  # the server is gone or forgot the session: nothing left to close
        finally:
            self._connection.close()

    @staticmethod
    def reset(target, containers=None, config=None):
        """Drop the variables of `containers` (default: the default container) on the server."""
        connection = Connection(target)
        try:
            connection.call("Reset", spb.ResetRequest(containers=containers or []).SerializeToString())
        finally:
            connection.close()


class _Window:
    """The runs a stream has outstanding: at most `max_runs`, and at most `max_bytes` of feeds unless it is
    the only one. Runs enter in order (one thread) and leave in order (answers come in order)."""

    def __init__(self, max_runs: int, max_bytes: int):
        self.max_runs, self.max_bytes = max_runs, max_bytes
        self._sizes: collections.deque[int] = collections.deque()
        self._bytes = 0
        self._changed = threading.Condition()

    def enter(self, nbytes: int, finished: threading.Event) -> bool:
        """Wait for room for a run of `nbytes`; False when the stream finished meanwhile."""
        with self._changed:
            while self._sizes and (len(self._sizes) >= self.max_runs or self._bytes + nbytes > self.max_bytes):
                if finished.is_set():
                    return False
                self._changed.wait(0.1)
            self._sizes.append(nbytes)
            self._bytes += nbytes
            return True

    def leave(self, runs: int = 1) -> None:
        """`runs` runs were answered (a batch message's answers leave together: one lock, one wake-up)."""
        with self._changed:
            for _ in range(runs):
                self._bytes -= self._sizes.popleft()
            self._changed.notify()


class SessionStream:
    """One bidirectional Run call kept open for a session's successive runs: each `run(frames)` sends one
    run's frames and returns its (response, fetches). A failed run raises its tf.errors class and the
    stream keeps serving (the server answers failures in the body); a broken stream is reopened by the
    next run."""

    def __init__(self, connection: Connection):
        self._connection = connection
        self._lock = threading.Lock()
        self._outbox = None
        self._call = None
        self._answers = None
        self._assembler = None

    def run(self, frames):
        with self._lock:
            if self._call is None:
                self._open()
            self._outbox.put(frames)
            try:
                for data in self._answers:
                    done = self._assembler.feed(data)
                    if done is not None:
                        return done
            except grpc.RpcError as exc:
                self._close_locked()
                raise status.error_from_rpc(exc) from None
            self._close_locked()
            raise errors.UnavailableError(None, None, "the server closed the Run stream without answering")

    def _open(self) -> None:
        outbox = self._outbox = queue.SimpleQueue()

        def requests():
            while True:
                frames = outbox.get()
                if frames is None:
                    return
                yield from frames

        self._call = self._connection.stream(requests())
        self._answers = iter(self._call)
        self._assembler = ResponseAssembler()

    def close(self) -> None:
        """Ends the request side and lets the server finish the call (no cancellation)."""
        with self._lock:
            if self._call is None:
                return
            self._outbox.put(None)
            try:
                for _ in self._answers:
                    pass
            except grpc.RpcError:
                pass  # the call ended badly on its own; nothing is left to close
            self._call = None

    def _close_locked(self) -> None:
        if self._call is not None:
            self._outbox.put(None)
            self._call.cancel()
            self._call = None


_REQUEST_ID_KEY = codec.varint_field(spb.RunCallableRequest, "request_id", 0)[:-1]  # the field's key (value 0 is one byte)


def _encode_run(header: bytes, request_id: int, feeds) -> bytes:
    """A RunCallableRequest (or, field for field, a Run stream RunRequest): the cached header, the run's
    request id, and the feeds."""
    return codec.encode_tensor_message(header + _REQUEST_ID_KEY + codec.varint(request_id), "feeds", feeds,
                                       message_class=spb.RunCallableRequest)


def _any_large(feeds) -> bool:
    for feed in feeds:
        if feed.nbytes > CHUNK_BYTES:
            return True
    return False


def _result(value):
    if value.ndim == 0:
        return value[()]
    if value.nbytes < COPY_BELOW_BYTES:
        return value.copy()
    return value


def _coalesced(runs):
    """Run stream frames for encoded runs (bytes for a small run, an iterator of frames for a run
    with large feeds): consecutive small runs share one batch message (RunRequest.batch)."""
    small = []
    for run in runs:
        if isinstance(run, bytes):
            small.append(run)
            continue
        yield from _batch_frames(small)
        small = []
        yield from run
    yield from _batch_frames(small)


def _batch_frames(small: list):
    if len(small) == 1:  # a lone run goes as itself
        yield small[0]
    elif small:
        yield b"".join(codec.message_field(spb.RunRequest, "batch", run) for run in small)
