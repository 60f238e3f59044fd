"""The direct link's connections without TLS, served by one thread (the reactor), with dynamic batching.

Why: with a thread per connection, a batched run woke its thread on the request, again for the GIL,
again when its batch's leader answered it, and again to send (W8, 64 clients: ~8 voluntary context
switches and ~380 us of server CPU per run, where the batch's kernel is ~5 us a run; a wake-up costs
tens of microseconds on a small VM). Here one thread (the reactor) polls the connections, decodes each
RunCallable that may join a batch, gathers the runs of one batch key as graphexec.server.batching does
(until --max-batch-size rows, or --max-batch-delay-us after the first, and only while several sessions
send runs of the key), runs them as one call and writes each answer to its socket. No thread wakes
per run. A key whose last batch took over INLINE_S runs its batches on a pool thread instead (one at a
time per key, the answers handed back to the reactor), so that a slow model (or a slow worker, with
--redis) holds up neither other keys' batches nor the reading of requests.

Without batching the reactor serves too, for fairness: with a thread per connection, 64 clients' threads
fought for the GIL and Linux gave it to some far more often than others (W8 unbatched, 64 clients: p50
0.4 ms, p99 106-185 ms, and ~300 us of server CPU a run in the fight). Here RunCallables (requests
under LARGE_FRAME_BYTES, in shared memory too) are answered in the order they came in, on the
reactor's thread, where runs run in this process (not waiting on a remote worker) and their callable's
recent runs were quick (under INLINE_S); a callable's first run, and its next SLOW_PENALTY after a slow
one, go to the pool as below. A run answered here that turns out slow held up every other connection:
its tenant's next runs all go to the pool, twice as many after each such strike (a run of STRIKE_S or
more), so a client cannot stall the others again and again.

Everything else a connection sends (RunStep, MakeCallable, a run of a plan that is not row-wise, one
that asks for metadata or a trace) is answered as on a connection of its own: the reactor stops
reading that connection and hands the frame to a thread of the pool, which calls the same handler
(DirectApiServer.answer_frame) and gives the connection back; so does an answer that the socket does
not take at once (a client that does not read holds a pool thread, not the reactor), and a frame of
LARGE_FRAME_BYTES or more (read there straight into a buffer of its own). So every call keeps the
link's promises: the handlers' checks, limits, statuses and metrics (per call and per run), a deadline
per run (a run that expires while it waits is answered DEADLINE_EXCEEDED) and cancellation (a client
that hangs up while its run waits loses the run; one in a running batch has its rows dropped).

Runs batched here and runs batched by the Batcher (gRPC, TLS connections) of one key form separate
batches. Only connections without TLS come here (an SSL socket's buffered bytes are invisible to poll).
"""
from __future__ import annotations

import collections
import logging
import selectors
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np

from graphexec.rpc import shared_memory, status
from graphexec.rpc.frames import API_PREFIX, FAILURE, HEAD, RESULT, RUN, SHARED_RUN, TooLarge, nbytes, send_frame, send_now
from graphexec.runtime.worker import Cancellation
from graphexec.server import batching, telemetry
from graphexec.server.limits import executor_threads
from graphexec.server.service import run_limit_s

log = logging.getLogger("graphexec.server")
RUN_CALLABLE = 1  # the direct link's method number of RunCallable (frames.API_METHODS)
READ_BYTES = 256 << 10
INFINITY = float("inf")
INLINE_S = 0.002  # a key whose last batch took longer runs its batches on the pool (and a callable its runs)
SLOW_PENALTY = 8  # after a slow run, a callable's next runs go to the pool until this many were quick
STRIKE_S = 0.02  # a run answered on the reactor's thread this slow is a strike against its tenant
MAX_STRIKE_RUNS = 1 << 14  # the most runs a tenant makes on the pool after slow runs on the reactor's thread
OK_NAME = grpc.StatusCode.OK.name
LARGE_FRAME_BYTES = 4 << 20  # a frame this large is read (and answered) by a pool thread, not the reactor
REPEAT_BYTES = 64 << 10  # larger requests are decoded in place, not from a copy through their connection's template


class _Link:
    """One adopted connection."""

    __slots__ = ("buffer", "caller", "closed", "connection", "decode", "key", "lent", "pending", "repeat", "sock")

    def __init__(self, sock, connection, key: int, caller: str, decode):
        self.sock, self.connection, self.key, self.caller = sock, connection, key, caller
        self.decode = decode  # its RunCallable requests' decoder (they repeat one layout)
        self.repeat = None  # _Repeat: what its last batched run's request gave, for the next one like it
        self.buffer = bytearray()
        self.pending = None  # its run waiting for a batch (_Pending)
        self.lent = False  # a pool thread is answering its call: not read meanwhile
        self.closed = False


class _Repeat:
    """What a connection's batched run derived from its request (decoded message, session record, plan)
    that holds for the next run with the same three: the rest of the checks, placement, batch key."""

    __slots__ = ("message", "record", "cached", "device_types", "call", "limit_s", "key", "rows", "names")

    def __init__(self, message, record, cached, device_types, call, limit_s, key, rows):
        self.message, self.record, self.cached, self.device_types = message, record, cached, device_types
        self.call, self.limit_s, self.key, self.rows = call, limit_s, key, rows
        self.names = record.handle[:8], cached.key[:16]  # (the log line's fields)

    def holds(self, message, record, cached, device_types) -> bool:
        return (message is self.message and record is self.record and cached is self.cached
                and device_types is self.device_types)


class _Pending:
    """A run waiting for its batch."""

    __slots__ = ("link", "call", "rows", "deadline", "observed", "started", "arrived")

    def __init__(self, link: _Link, call, rows: int, observed, started: float):
        self.link, self.call, self.rows, self.observed, self.started = link, call, rows, observed, started
        self.arrived = time.monotonic()
        self.deadline = None if call.timeout_s is None else self.arrived + call.timeout_s


class _Group:
    """The runs of one batch key waiting together."""

    __slots__ = ("cached", "runs", "rows", "due", "expires")

    def __init__(self, cached):
        self.cached, self.runs, self.rows, self.due = cached, [], 0, 0.0
        self.expires = INFINITY  # the earliest deadline of its runs


class Reactor:
    """Serves the adopted connections of `server` (a DirectApiServer whose service batches)."""

    def __init__(self, server, servicer):
        self._server, self._servicer = server, servicer
        self._service = servicer.service
        self._batcher = servicer.service.batcher
        self._admission = servicer.admission
        # Runs are answered on this thread only where they run in this process (not waiting on a remote
        # worker, which other connections' runs should not wait behind).
        self._runs_here = servicer.service.pool.local is not None
        self._pool_runs_due: dict[str, int] = {}  # callable handle -> quick runs due on the pool (_inline)
        self._strikes: dict[str, list[int]] = {}  # tenant -> [runs due on the pool, the next strike's runs]
        self._limit = servicer.limits.max_message_bytes
        self._observe = server.interceptor
        self._method = f"{server.service_name}/RunCallable"
        self._selector = selectors.DefaultSelector()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._selector.register(self._wake_reader, selectors.EVENT_READ, None)
        self._inbox: collections.deque = collections.deque()  # work for the reactor's thread, from others
        self._groups: dict[tuple, _Group] = {}
        self._took: dict[tuple, float] = {}  # batch key -> seconds its last batch took
        self._elsewhere: set[tuple] = set()  # keys whose batches run on the pool now
        # Threads start as calls need them, up to as many as gRPC's own executor may have.
        self._pool = ThreadPoolExecutor(executor_threads(servicer.limits), thread_name_prefix="graphexec-direct-call")
        self._stopped = False

    def start(self) -> Reactor:
        threading.Thread(target=self._loop, name="graphexec-direct-batching", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped = True
        self._poke()

    def adopt(self, sock, connection, key: int, caller: str) -> None:
        """Serve a connection past HELLO from now on (the caller's thread lets go of it)."""
        sock.setblocking(False)
        link = _Link(sock, connection, key, caller, self._servicer.run_callable_decoder())
        self._soon(lambda: self._selector.register(sock, selectors.EVENT_READ, link))

    def _soon(self, work) -> None:
        """Have the reactor's thread do `work` (from any thread)."""
        self._inbox.append(work)
        self._poke()

    def _poke(self) -> None:
        try:
            self._wake_writer.send(b"\0")
        except BlockingIOError:  # full: the reactor is awake already
            pass

    # -- the loop -------------------------------------------------------------------------------------
    def _loop(self) -> None:
        select, groups = self._selector.select, self._groups
        while not self._stopped:
            for key, _ in select(self._timeout() if groups else None):
                if key.data is None:
                    self._drain_inbox()
                    continue
                try:
                    self._read(key.data)
                except Exception:  # a bug: that connection ends (its client sees it close), the others go on
                    log.exception("the direct link's batching failed on a connection")
                    self._close(key.data)
            if not groups:  # (no run waits for a batch: the common case unbatched)
                continue
            now = time.monotonic()
            try:
                self._expire(now)
                self._flush(now)
            except Exception:  # a bug: logged, and the reactor goes on serving
                log.exception("the direct link's batching failed")
        # Stopped: the calls in progress finish, the runs waiting run now (here) and are answered; then
        # every connection read here closes.
        self._pool.shutdown(wait=True)
        self._drain_inbox()
        self._took.clear()
        self._flush(INFINITY)
        for key in list(self._selector.get_map().values()):
            if key.data is not None:
                self._close(key.data)

    def _timeout(self) -> float | None:
        soonest = min((group.expires if key in self._elsewhere else min(group.due, group.expires)
                       for key, group in self._groups.items()), default=INFINITY)
        return None if soonest == INFINITY else max(soonest - time.monotonic(), 0.0)

    def _drain_inbox(self) -> None:
        try:
            while self._wake_reader.recv(4096):
                pass
        except BlockingIOError:
            pass
        while self._inbox:
            try:
                self._inbox.popleft()()
            except Exception:  # a bug, or a connection closed meanwhile: the others go on
                log.exception("the direct link's batching failed")

    def _resume(self, link: _Link) -> None:
        """Read a link the pool gave back."""
        link.lent = False
        self._selector.register(link.sock, selectors.EVENT_READ, link)
        self._frames(link)  # a frame it sent meanwhile (out of turn) waits in its buffer

    def _read(self, link: _Link) -> None:
        try:
            data = link.sock.recv(READ_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # hung up (or shut down as idle): a run of it that waits is dropped
            self._close(link)
            return
        if not link.buffer and len(data) >= HEAD.size and not (link.lent or link.pending is not None):
            kind, size = HEAD.unpack_from(data)
            if len(data) == HEAD.size + size and size <= self._limit:  # one whole frame (the common case)
                self._frame(link, kind, size, data[HEAD.size:])
                return
        link.buffer += data
        self._frames(link)

    def _frames(self, link: _Link) -> None:
        """Take the link's complete frames in turn, while it has no call in progress (one at a time)."""
        buffer = link.buffer
        while not (link.closed or link.lent or link.pending is not None) and len(buffer) >= HEAD.size:
            kind, size = HEAD.unpack_from(buffer)
            if size > self._limit:
                self._lend(link, lambda: self._server.refuse_large(link.sock, TooLarge(size, self._limit)),
                           close=True)
                return
            if len(buffer) < HEAD.size + size:
                if size >= LARGE_FRAME_BYTES and kind in (RUN, SHARED_RUN):
                    self._lend(link, lambda kind=kind, size=size: self._answer_large(link, kind, size))
                return
            body = bytes(buffer[HEAD.size:HEAD.size + size])
            del buffer[:HEAD.size + size]
            self._frame(link, kind, size, body)

    def _frame(self, link: _Link, kind: int, size: int, body: bytes) -> None:
        """Answer, batch or hand to the pool one whole frame of the link (`size`: its body's)."""
        if kind not in (RUN, SHARED_RUN) or size < API_PREFIX.size:
            self._close(link)
        elif not (self._batched(link, kind, body) or self._inline(link, kind, body)):
            self._lend(link, lambda: self._answer_lent(link, kind, body))

    # -- runs answered here, one at a time -----------------------------------------------------------
    def _inline(self, link: _Link, kind: int, body: bytes) -> bool:
        """Whether the frame was a RunCallable answered here and now, or handed to the pool with what was read
        and decoded of it (else the pool takes it as it is). A callable's runs are answered here once its
        last runs were quick: its first one, and the SLOW_PENALTY after a slow one, run on the pool, so that
        a callable that is sometimes slow rarely holds up the other connections. A request in shared memory
        is copied out here first (not past LARGE_FRAME_BYTES: those go to the pool whole)."""
        if not self._runs_here or API_PREFIX.unpack_from(body)[1] != RUN_CALLABLE:
            return False
        try:
            if kind == SHARED_RUN:
                (length,) = shared_memory.LENGTH.unpack_from(body, API_PREFIX.size)
                if length >= LARGE_FRAME_BYTES:
                    return False
                request = self._server.shared_request(link.connection, memoryview(body)[API_PREFIX.size:])
            else:
                request = memoryview(body)[API_PREFIX.size:]
            decoded = link.decode(request)  # (the connection's template: no parsing when it repeats)
        except Exception:
            return False  # answered with its error on the pool
        handle, strikes = decoded[0].callable_handle, self._strikes.get(link.caller)
        if self._pool_runs_due.get(handle, 1) or (strikes and strikes[0]) or self._admission.full():
            self._lend(link, lambda: self._answer_lent(link, kind, body, decoded, handle, request))  # (a wait too)
            return True
        started = time.perf_counter()
        answer_kind, *parts = self._server.answer(link.connection, link.key, link.caller, kind, body, decoded,
                                                  request)
        took = time.perf_counter() - started
        if took >= INLINE_S:
            self._slow_here(link.caller, handle, took)
        if nbytes(parts) <= REPEAT_BYTES:
            self._send(link, answer_kind, b"".join(parts), blocking=False)
        else:  # a large answer is written from where it is, by the pool
            self._lend(link, lambda: send_frame(link.sock, answer_kind, *parts))
        return True

    def _slow_here(self, caller: str, handle: str, took: float) -> None:
        """A run answered on the reactor's thread was slow, holding up every other connection: its callable's
        next runs go to the pool; past STRIKE_S, so do all its tenant's next runs, twice as many at each such
        strike (a client whose callables turn slow on purpose stalls the others less and less often, while
        one whose runs take about INLINE_S, W9's training steps through Redis, is not sent to the pool)."""
        self._pool_runs_due[handle] = SLOW_PENALTY
        if took < STRIKE_S:
            return
        strikes = self._strikes.setdefault(caller, [0, SLOW_PENALTY])
        strikes[0], strikes[1] = strikes[1], min(strikes[1] * 2, MAX_STRIKE_RUNS)

    def _answer_lent(self, link: _Link, kind: int, body, decoded=None, handle: str | None = None,
                     request=None) -> bool:
        """Answer a frame on a pool thread, the link lent to it; a RunCallable's duration (`handle`: its
        callable's) counts towards its callable's next runs being answered on the reactor's thread."""
        cpu = time.thread_time()  # (not the time it took: other threads' turns with the GIL are in that)
        keep = self._server.answer_frame(link.sock, link.connection, link.key, link.caller, kind, body, decoded,
                                         request)
        if handle is not None:
            due = self._pool_runs_due
            if len(due) > batching.MAX_ENTRIES:
                due.clear()
            due[handle] = max(due.get(handle, 1) - 1, 0) if time.thread_time() - cpu < INLINE_S else SLOW_PENALTY
            strikes = self._strikes.get(link.caller)
            if strikes and strikes[0]:
                strikes[0] -= 1
        return keep

    def _answer_large(self, link: _Link, kind: int, size: int) -> bool:
        """Read the rest of a large frame on a pool thread, the link lent to it, straight into a buffer of its
        own (not through the link's buffer, copied twice), and answer it there."""
        buffer = link.buffer
        view = memoryview(np.empty(size, np.uint8))  # not zeroed first: every byte is received
        got = len(buffer) - HEAD.size
        view[:got] = buffer[HEAD.size:]
        buffer.clear()
        while got < size:
            read = link.sock.recv_into(view[got:])
            if not read:
                return False
            got += read
        return self._answer_lent(link, kind, view.toreadonly())

    # -- batched runs ---------------------------------------------------------------------------------
    def _batched(self, link: _Link, kind: int, body: bytes) -> bool:
        """Whether the frame is a run that joined a batch (or was answered already); else the pool takes it."""
        if self._batcher is None:
            return False
        left, number = API_PREFIX.unpack_from(body)
        if number != RUN_CALLABLE:
            return False
        started = time.perf_counter()
        observed = self._observe.begin(self._method, len(body) - API_PREFIX.size)
        telemetry.annotate(tenant=link.caller or telemetry.DEFAULT_TENANT)
        try:
            templated = kind == RUN and len(body) <= REPEAT_BYTES
            if templated:  # (a copy of the request, read through the connection's template)
                message, feeds, request_id = link.decode(body[API_PREFIX.size:])
            else:  # large feeds stay views of the frame (or of the shared memory) as they came
                request = memoryview(body)[API_PREFIX.size:]
                if kind == SHARED_RUN:
                    request = self._server.shared_request(link.connection, request)
                message, feeds = self._servicer.decode_run_callable(request)
                request_id = message.request_id
            record, cached, _ = self._servicer.lookup(message, link.caller)
            remaining = None if left < 0 else left
            device_types = self._service.pool.device_types()
            repeat = link.repeat
            if repeat is not None and repeat.holds(message, record, cached, device_types):
                session, plan = repeat.names
                telemetry.annotate(session=session, plan=plan, request_id=request_id or None)
                call = self._service.plan_repeat(repeat.call, repeat.limit_s, feeds, request_id, remaining,
                                                 Cancellation())
            else:
                if message.options.return_metadata or message.options.trace_level > 0:
                    return self._unobserved(observed)
                if not self._batcher.verdict(cached).ok:
                    return self._unobserved(observed)
                telemetry.annotate(session=record.handle[:8], plan=cached.key[:16], request_id=request_id or None)
                call, _ = self._service.plan_call(record, cached, feeds, request_id, message.options, remaining,
                                                  Cancellation())
                rows = batching.batch_rows(call, self._batcher.max_rows)
                if rows is None:
                    return self._unobserved(observed)
                repeat = _Repeat(message, record, cached, device_types, call, run_limit_s(record, message.options),
                                 batching.batch_key(call, cached), rows)
                if templated:  # (a message decoded in place is new every time: it never repeats)
                    link.repeat = repeat
        except Exception as exc:  # answered here: a bad request fails alone
            self._fail(link, exc, observed, started)
            return True
        finally:
            telemetry.resume(None)
        self._servicer.streams.active(link.key, busy=True)
        key, rows = repeat.key, repeat.rows
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(cached)
        run = link.pending = _Pending(link, call, rows, observed, started)
        company = self._batcher.arrived(key, call.session_handle, run.arrived)
        if not group.runs:
            group.due = run.arrived + (self._batcher.delay_s if company else 0.0)
        group.runs.append(run)
        group.rows += rows
        if run.deadline is not None:
            group.expires = min(group.expires, run.deadline)
        if group.rows >= self._batcher.max_rows:
            group.due = 0.0
        return True

    def _unobserved(self, observed) -> bool:
        """Leave a run to the pool's handler, which observes it itself."""
        self._observe.abandon(observed)
        return False

    def _expire(self, now: float) -> None:
        """Answer the waiting runs whose deadlines passed (the others' batch may wait longer)."""
        for group in self._groups.values():
            if group.expires > now:
                continue
            expired = [run for run in group.runs if run.deadline is not None and run.deadline <= now]
            group.runs = [run for run in group.runs if run not in expired]
            group.rows -= sum(run.rows for run in expired)
            group.expires = min((run.deadline for run in group.runs if run.deadline is not None), default=INFINITY)
            for run in expired:
                if run.link.pending is run:
                    self._past_deadline(run)

    def _flush(self, now: float) -> None:
        """Run the groups that are due (one batch of a key at a time: a key running elsewhere waits)."""
        for key in [key for key, group in self._groups.items() if group.due <= now and key not in self._elsewhere]:
            group = self._groups.pop(key)
            batches = []
            while group.runs:  # at most max_rows at a time, in arrival order
                batch, rows = [], 0
                while group.runs and (not batch or rows + group.runs[0].rows <= self._batcher.max_rows):
                    run = group.runs.pop(0)
                    rows += run.rows
                    batch.append(run)
                batches.append(self._live(batch))
            if self._took.get(key, 0.0) < INLINE_S:
                for live in batches:
                    if live:
                        self._deliver(live, group.cached, *self._execute(key, live, group.cached))
            else:  # slow batches run on the pool, so that other keys' batches and reading go on meanwhile
                self._elsewhere.add(key)
                self._pool.submit(self._execute_elsewhere, key, batches, group.cached)

    def _execute_elsewhere(self, key, batches: list, cached) -> None:
        try:
            for live in batches:
                if live:
                    outcome = self._execute(key, live, cached)
                    self._soon(lambda live=live, outcome=outcome: self._deliver(live, cached, *outcome))
        finally:
            self._soon(lambda: self._elsewhere.discard(key))

    def _live(self, batch: list[_Pending]) -> list[_Pending]:
        """The runs of a batch still to run (those past their deadline answered, those hung up dropped)."""
        live = []
        for run in batch:
            if run.link.pending is not run:  # its client hung up
                continue
            if run.deadline is not None and time.monotonic() >= run.deadline:
                self._past_deadline(run)
            else:
                live.append(run)
        return live

    def _past_deadline(self, run: _Pending) -> None:
        self._fail(run.link, batching.waited_past_deadline(), run.observed, run.started)
        self._frames(run.link)  # what it sent meanwhile (out of turn) waits in its buffer

    def _execute(self, key, live: list[_Pending], cached) -> tuple:
        """(results, error) of running the runs as one call (graphexec.server.batching.Batcher.execute_batch)."""
        started = time.perf_counter()
        try:
            with self._servicer.admission.slot():
                return self._batcher.execute_batch([run.call for run in live], [run.deadline for run in live],
                                                   [run.rows for run in live], cached)
        except Exception as exc:  # the server is overloaded (--threads, --queue-depth), or a bug: all are told
            return None, exc
        finally:
            self._took[key] = time.perf_counter() - started
            if len(self._took) > batching.MAX_ENTRIES:
                self._took.clear()

    def _deliver(self, live: list[_Pending], cached, results, error) -> None:
        """Answer the runs of a batch that ran (on the reactor's thread)."""
        answered = []  # (run, bytes sent) of those answered: their metrics are added together
        for i, run in enumerate(live):
            if run.link.pending is not run:  # its client hung up meanwhile
                continue
            if error is batching.ALONE:  # each run again alone, in its own time, on the pool
                run.link.pending = None
                self._lend(run.link, lambda run=run: self._alone(run, cached))
                continue
            if error is not None:
                self._fail(run.link, error, run.observed, run.started)
            else:
                sent = self._answer(run, results[i], metered=False)
                if sent is not None:
                    answered.append((run, sent))
            self._frames(run.link)  # what it sent meanwhile (out of turn) waits in its buffer
        if answered:
            self._metered(answered)

    def _metered(self, answered: list[tuple[_Pending, int]]) -> None:
        """Count and time runs answered OK together (what _done does for one)."""
        by_tenant = {}
        for run, _ in answered:
            by_tenant.setdefault(run.link.caller or telemetry.DEFAULT_TENANT, []).append(run.started)
        for tenant, starts in by_tenant.items():
            self._service.metrics.runs_done(tenant, OK_NAME, starts)
        self._observe.end_many([run.observed for run, _ in answered], grpc.StatusCode.OK,
                               [sent for _, sent in answered])

    def _alone(self, run: _Pending, cached) -> None:
        if run.deadline is not None:
            run.call.timeout_s = max(run.deadline - time.monotonic(), 0.0)
        try:
            result = self._batcher.execute(run.call, cached)
        except Exception as exc:
            self._fail(run.link, exc, run.observed, run.started, blocking=True)
        else:
            self._answer(run, result, blocking=True)

    # -- answers --------------------------------------------------------------------------------------
    def _answer(self, run: _Pending, result, blocking: bool = False, metered: bool = True) -> int | None:
        """Send a run's result; the bytes sent (None: it failed to encode, and was answered so). Unless
        `metered`, the caller counts and times the run (_metered)."""
        link = run.link
        try:
            answer = self._servicer.encode_run_callable(result)
        except Exception as exc:
            self._fail(link, exc, run.observed, run.started, blocking)
            return None
        link.pending = None
        if metered:
            self._done(link, run.observed, run.started, grpc.StatusCode.OK, len(answer))
        else:
            self._servicer.streams.active(link.key, busy=False)
        self._send(link, RESULT, answer, blocking)
        return len(answer)

    def _fail(self, link: _Link, exc: BaseException, observed, started: float, blocking: bool = False) -> None:
        link.pending = None
        self._done(link, observed, started, status.status_code(exc), 0)
        self._send(link, FAILURE, status.failure_bytes(exc, "RunCallable"), blocking)

    def _done(self, link: _Link, observed, started: float, code, sent: int) -> None:
        self._servicer.streams.active(link.key, busy=False)
        self._service.metrics.run_done(link.caller or telemetry.DEFAULT_TENANT, code.name, started)
        self._observe.end(observed, code, sent)

    def _send(self, link: _Link, kind: int, body: bytes, blocking: bool) -> None:
        frame = HEAD.pack(kind, len(body)) + body
        if blocking:  # on a pool thread, the link lent to it
            link.sock.sendall(frame)
            return
        try:
            sent = send_now(link.sock, frame)  # (holding the GIL: no other thread's turn to wait out after)
        except OSError:
            self._close(link)
            return
        if sent < len(frame):  # a client that does not read: the rest from the pool
            rest = memoryview(frame)[sent:]
            self._lend(link, lambda: link.sock.sendall(rest))

    # -- lending to the pool, closing -----------------------------------------------------------------
    def _lend(self, link: _Link, work, close: bool = False) -> None:
        """Stop reading the link while a pool thread does `work` on it (blocking), then read it again."""
        link.lent = True
        self._selector.unregister(link.sock)
        self._pool.submit(self._lent, link, work, close)

    def _lent(self, link: _Link, work, close: bool) -> None:
        keep = False
        try:
            link.sock.setblocking(True)
            keep = work() is not False and not close
        except Exception:  # the client went away, or a bug: the connection ends either way
            log.debug("a direct batching connection ended", exc_info=True)
        if keep and not self._stopped:
            try:
                link.sock.setblocking(False)
                self._soon(lambda: self._resume(link))
                return
            except OSError:
                pass
        self._release(link)

    def _close(self, link: _Link) -> None:
        if link.pending is not None:  # waiting in a group: its run is dropped there (link.pending checked)
            run, link.pending = link.pending, None
            if run.call.cancellation is not None:
                run.call.cancellation.cancel()
            self._done(link, run.observed, run.started, grpc.StatusCode.CANCELLED, 0)
        try:
            self._selector.unregister(link.sock)
        except (KeyError, ValueError):
            pass
        self._release(link)

    def _release(self, link: _Link) -> None:
        link.closed = True
        self._server.release(link.sock, link.connection, link.key)
