"""The workers a server places runs on: the embedded one, or live workers from the registry.

Policy: a run goes to a worker that has the device type it needs; among those, a run that uses
variables goes to the worker that last ran the same container (its variables are hot there), any
other run to the least loaded. A worker whose call
fails with UNAVAILABLE is set aside for SUSPECT_S and the run is retried on another one (the
request id makes that safe). The registry is re-read every REFRESH_S in the background; if the
store is down the last known list stays in use.
"""
from __future__ import annotations

import functools
import json
import logging
import random
import threading
import time

import grpc

from graphexec import errors
from graphexec.compiler.plan import compiler_version
from graphexec.rpc import convert, link_format, methods, status
from graphexec.runtime.store import Store
from graphexec.runtime.worker import PlanCall, PlanResult, WorkerCore
from graphexec.server import direct
from graphexec.server.auth import WorkerSecret
from graphexec.server.telemetry import Metrics, code_name
from graphexec.server.worker_service import GRPC_OPTIONS

REFRESH_S = 0.5
SUSPECT_S = 5.0
MAX_WARNED = 1000  # rejected registrations remembered (each is logged once)
log = logging.getLogger("graphexec.pool")


class WorkerLost(errors.UnavailableError):
    """The worker could not be reached: the call never started there, so another worker may run it."""


class WorkerDied(errors.AbortedError):
    """The worker's connection broke after the call was sent: it most likely died running it."""

    retry_under_lock = False  # unlike a commit that aborted (see runtime.worker.run_serialized)


# How gRPC says a call never reached its worker, and how it says the connection broke under a call
# (an UNAVAILABLE that is neither is the worker's own answer, e.g. its store being away).
_NEVER_REACHED = ("failed to connect", "connection refused", "dns resolution", "name resolution", "no route to host")
_BROKE = ("socket closed", "connection reset", "broken pipe", "end of file", "eof", "goaway", "stream removed",
          "rst_stream", "connection aborted")


class LocalWorker:
    """The embedded worker: the same process, no RPC."""

    def __init__(self, core: WorkerCore, metrics: Metrics | None = None):
        self.core = core
        self.metrics = metrics or Metrics()
        self.metrics.worker_runs_in_flight.set_function(lambda: core.in_flight)
        self.id = core.worker_id
        self.name = core.name
        self.device_types = core.device_types

    def load(self) -> int:
        return self.core.in_flight

    def devices(self) -> list[dict]:
        return self.core.devices()

    def run(self, call: PlanCall, plan) -> PlanResult:
        return self._counted(call, plan, self.metrics.worker_run_done)

    def run_many(self, calls: list, plan, fetch_bytes: int | None = None) -> list:
        """Each call's PlanResult, or the error it failed with, in order; none after the fetches reach
        `fetch_bytes` (the list is then shorter than `calls`). Counted and timed as `run` would, in one
        update of the metrics for the lot (a stream's small runs: ~2 us a run less of the server's CPU)."""
        took = []  # (device type, code, seconds) of each run

        def done(device_type, code, started):
            took.append((device_type, code, time.perf_counter() - started))
        try:
            return _one_by_one(lambda call, plan: self._counted(call, plan, done), calls, plan, fetch_bytes,
                               self.name)
        finally:
            self.metrics.worker_runs_done(took)

    def _counted(self, call: PlanCall, plan, done) -> PlanResult:
        """core.run, then done(device type, status code name, perf_counter at the start)."""
        started, code = time.perf_counter(), "OK"
        try:
            return self.core.run(call, plan)
        except Exception as exc:
            code = code_name(exc)
            raise
        finally:
            done(call.device_type, code, started)


class RemoteWorker:
    """A `graphexec worker` process, reached over the Worker gRPC API."""

    def __init__(self, info: dict, metadata: tuple = (), credentials=None, direct_tls=None):
        self.id = info["id"]
        self.address = info["address"]
        self.tls = bool(info.get("tls"))
        self.direct_port = info.get("direct_port")
        # 2 (link_format.VERSION): the direct link reads PLAN frames; workers before it read RUN frames only
        self.direct_version = info.get("direct_version", 1)
        # Where it takes clients' runs itself (graphexec.server.worker_runs), and with which settings.
        run_port = info.get("run_port")
        self.run_port = run_port if isinstance(run_port, int) and 0 < run_port < 65536 else 0
        self.run_fingerprint = info.get("run_fingerprint", "")
        # and its Unix socket for clients on its host (passed on to them as CreateSession's direct_socket)
        self.run_socket = _run_socket(info)
        self.name = f"{self.id}@{self.address}"
        self.update(info)
        self._credentials = credentials
        self._metadata = metadata or None
        self._link = None  # the worker's direct link (server.direct), when it announces one
        if isinstance(self.direct_port, int) and self.direct_port > 0 and (direct_tls is not None or not self.tls):
            host = self.address.rsplit(":", 1)[0].strip("[]")
            self._link = direct.Link(host, self.direct_port, direct_tls if self.tls else None,
                                     dict(metadata).get(direct.WORKER_SECRET_HEADER, "").encode())
        self._idle: list = []  # direct lanes not carrying a call (list.pop/append are atomic)
        self._idle_grpc: list = []  # the same for gRPC lanes (a worker's direct port may turn out blocked)
        self._lanes: set[_Lane] = set()  # all open lanes, closed with the worker
        self._guard = threading.Lock()  # for _lanes (touched when a lane opens or closes, not per call)
        self._closed = False
        self.in_flight = 0

    def connect_ahead(self) -> None:
        """Open one direct connection before the first run needs it: its connect, HELLO and the worker's
        thread for it took 0.4-2 ms of a replica's first run on a loaded 2-core machine. A worker that
        cannot be reached is left for that run to find (and to report, or to run over gRPC)."""
        if self._link is None or self._idle:
            return
        try:
            lane = direct.DirectLane(self._link)
        except OSError:
            return
        with self._guard:
            if self._closed:  # dropped from the registry meanwhile
                lane.close()
                return
            self._lanes.add(lane)
        self._idle.append(lane)

    def _lane(self) -> _Lane:
        if self.tls:
            channel = grpc.secure_channel(self.address, self._credentials, options=GRPC_OPTIONS)
        else:
            channel = grpc.insecure_channel(self.address, options=GRPC_OPTIONS)
        lane = _Lane(channel, methods.client_calls(channel, methods.WORKER_SERVICE)["RunPlan"])
        with self._guard:
            self._lanes.add(lane)
        return lane

    def update(self, info: dict) -> None:
        self.info = info
        self.device_types = frozenset(d["device_type"] for d in info.get("devices", ()))

    def load(self) -> int:
        return self.in_flight + int(self.info.get("load", 0))

    def devices(self) -> list[dict]:
        return list(self.info.get("devices", ()))

    def run(self, call: PlanCall, plan) -> PlanResult:
        if self._link is not None:
            fetches, stats, deduplicated, worker, printed = self._run_direct(call)
        else:
            fetches, stats, deduplicated, worker, printed = convert.run_plan_reply(self._run_grpc(call))
        return PlanResult(fetches, stats, deduplicated, worker or self.name, printed)

    def _run_direct(self, call: PlanCall) -> tuple:
        """(fetches, stats, deduplicated, worker, printed) of `call` run over the direct link: as a PLAN
        frame to workers that read them, else as a RUN frame."""
        plan = None
        if self.direct_version >= link_format.VERSION:
            plan = link_format.plan_pieces(call.timeout_s, call.container, call.plan_key, call.session_handle,
                                           call.device_type, call.host_steps, call.request_id, call.trace, call.feeds)
        try:
            lane = self._direct_lane()
        except OSError as exc:
            return convert.run_plan_reply(self._run_without_link(call, exc))
        hook = self._begin(lane, call)
        try:  # the feeds' contents are written from where they are
            if plan is not None:
                kind, body = lane.call_plan(plan, call.timeout_s)
            else:
                kind, body = lane.call(_request(call), call.timeout_s)
        except (direct.Closed, OSError) as exc:  # (socket.timeout: no answer GRACE_S past the deadline)
            cancelled = lane.cancelled
            if isinstance(exc, TimeoutError):
                hook()  # the worker is told to stop the run, and the connection is dropped
            else:
                lane.cancelled = True  # a broken connection carries nothing more
            raise self._stopped(cancelled, exc) from None
        finally:
            self._end(lane, call, hook, self._idle)
        if kind == direct.ANSWER:
            return link_format.read_answer(body)
        if kind == direct.RESULT:
            return convert.run_plan_reply(body)
        raise direct.failure(body)

    def _direct_lane(self) -> direct.DirectLane:
        """An idle direct connection, else a new one (OSError when the worker's port cannot be reached)."""
        while self._idle:  # an idle connection the worker closed (it restarted) is dropped, not used
            try:
                lane = self._idle.pop()
            except IndexError:
                break
            if not lane.stale():
                return lane
            self._forget(lane)
        lane = direct.DirectLane(self._link)
        with self._guard:
            self._lanes.add(lane)
        return lane

    def run_many(self, calls: list, plan, fetch_bytes: int | None = None) -> list:
        """Each call's PlanResult, or the error it failed with, in order; WorkerLost for the calls never
        sent (or never read by the worker) after the worker was lost or died running one (WorkerDied).
        Calls of a plan that writes no variables, from a Run stream's batch: to a worker that reads PLAN
        frames they are pipelined on one direct connection, one hop for the batch rather than one each.
        Once the answers reach `fetch_bytes`, no more calls are sent: the list is then shorter than
        `calls`, and the calls left out ran nowhere."""
        plans = None
        if self._link is not None and self.direct_version >= link_format.VERSION:
            plans = [link_format.plan_pieces(c.timeout_s, c.container, c.plan_key, c.session_handle, c.device_type,
                                             c.host_steps, c.request_id, c.trace, c.feeds) for c in calls]
        if plans is None or None in plans:
            return _one_by_one(self.run, calls, plan, fetch_bytes, self.name)
        try:
            lane = self._direct_lane()
        except OSError:  # run reports the blocked port, and goes over gRPC
            return _one_by_one(self.run, calls, plan, fetch_bytes, self.name)
        timeouts = [c.timeout_s for c in calls]
        hook = self._begin(lane, calls[0])  # the calls of a batch share their stream's cancellation
        answers, stopped, sent = [], None, 0
        try:
            answers, stopped, sent = lane.call_plans(plans, None if None in timeouts else max(timeouts), fetch_bytes)
        finally:
            cancelled = lane.cancelled
            if isinstance(stopped, TimeoutError):
                hook()  # the worker is told to stop the run it is on, and the connection is dropped
            elif stopped is not None or len(answers) < sent:
                lane.cancelled = True  # out of step with the worker: the connection carries nothing more
            self._end(lane, calls[0], hook, self._idle)
        results = [self._answered(kind, body) for kind, body in answers]
        if stopped is not None:
            failure = self._stopped(cancelled, stopped)
            if len(answers) < sent:  # the worker was running this one
                results.append(failure)
            if isinstance(failure, WorkerDied):  # the worker never read the rest: they may go to another
                failure = WorkerLost(None, None, f"worker {self.name} was lost before running this run")
            results += [failure] * (len(calls) - len(results))
        return results

    def _answered(self, kind: int, body) -> PlanResult | Exception:
        if kind == direct.ANSWER:
            try:
                fetches, stats, deduplicated, worker, printed = link_format.read_answer(body)
            except Exception as exc:  # a malformed answer fails its run only
                return exc
            return PlanResult(fetches, stats, deduplicated, worker or self.name, printed)
        if kind == direct.FAILURE:
            return direct.failure(body)
        return errors.InternalError(None, None, f"worker {self.name} answered a PLAN frame with a frame of kind {kind}")

    def _stopped(self, cancelled: bool, exc: BaseException) -> errors.OpError:
        """The error of a run whose answer never came: its connection was cancelled, timed out or broke
        (the worker died running it)."""
        if cancelled:
            return errors.CancelledError(None, None, "Run was cancelled")
        if isinstance(exc, TimeoutError):
            return errors.DeadlineExceededError(None, None, "Deadline Exceeded")
        return WorkerDied(None, None, f"worker {self.name} died while running this run (connection closed: "
                                      f"{exc or 'end of file'}); it is not resent to another worker")

    def _run_without_link(self, call: PlanCall, exc: OSError):
        """The direct port could not be reached. If the Worker API answers, that port is blocked on the way
        (a NAT, a firewall, a policy): run over gRPC from now on. If it does not, the worker is down, and
        _run_grpc says so (WorkerLost: the run was never sent)."""
        reply = self._run_grpc(call)
        if self._link is not None:
            log.warning("worker %s: its direct link on port %s cannot be reached (%s); running plans over its "
                        "Worker API instead", self.name, self.direct_port, exc)
            self._link = None
        return reply

    def _begin(self, lane, call: PlanCall):
        """`lane` (direct or gRPC) starts carrying `call`; returns the hook that cancels this call on it."""
        hook = functools.partial(lane.cancel, lane.take())
        self.in_flight += 1
        if call.cancellation is not None:
            call.cancellation.on_cancel(hook)
        return hook

    def _end(self, lane, call: PlanCall, hook, idle: list) -> None:
        """The call ended: its hook goes (one Cancellation may serve a whole Run stream), and the lane goes
        back to `idle`, or is dropped when a cancellation closed it."""
        if call.cancellation is not None:
            call.cancellation.forget(hook)
        self.in_flight -= 1
        if lane.release():
            idle.append(lane)
        else:
            self._forget(lane)

    def _forget(self, lane) -> None:
        lane.close()
        with self._guard:
            self._lanes.discard(lane)

    def _run_grpc(self, call: PlanCall):
        data = b"".join(_request(call))
        try:
            lane = self._idle_grpc.pop()
        except IndexError:
            lane = self._lane()
        hook = self._begin(lane, call)
        try:
            reply = lane.run_plan(data, timeout=call.timeout_s, metadata=self._metadata)
        except (grpc.RpcError, ValueError) as exc:  # ValueError: the lane was closed before the call began
            if lane.cancelled:
                raise errors.CancelledError(None, None, "Run was cancelled") from None
            if isinstance(exc, ValueError):  # closed with the worker, which left the registry
                raise WorkerLost(None, None, f"worker {self.name} is no longer registered") from None
            raise _worker_error(self, exc) from None
        finally:
            self._end(lane, call, hook, self._idle_grpc)
        return reply

    def close(self):
        self._idle, self._idle_grpc = [], []
        with self._guard:
            self._closed = True
            lanes, self._lanes = self._lanes, set()
        for lane in lanes:
            lane.close()


def _run_address(worker) -> str:
    return f"{worker.address.rsplit(':', 1)[0]}:{worker.run_port}"


def _run_socket(info: dict) -> str:
    """A registration's run_socket when it is a name clients may be given (short printable ASCII), else ""."""
    name = info.get("run_socket")
    return name if isinstance(name, str) and 0 < len(name) <= 100 and name.isascii() and name.isprintable() else ""


def _one_by_one(run, calls: list, plan, fetch_bytes: int | None, worker_name: str) -> list:
    """run_many as one run(call, plan) after another: once the worker is lost or dies, the rest are not sent."""
    results, fetched = [], 0
    for call in calls:
        if fetch_bytes is not None and fetched >= fetch_bytes:
            break
        try:
            results.append(run(call, plan))
            fetched += _nbytes(results[-1])
        except (WorkerLost, WorkerDied) as exc:
            results.append(exc)
            results += [WorkerLost(None, None, f"worker {worker_name} was lost before running this run")
                        for _ in calls[len(results):]]
            break
        except Exception as exc:  # this run's failure; the next runs still go
            results.append(exc)
    return results


def _nbytes(result: PlanResult) -> int:
    return sum(getattr(f, "nbytes", 0) for f in result.fetches)


def _request(call: PlanCall) -> list:
    """The RunPlanRequest of `call`, as buffers (feed contents are views of the feeds)."""
    return convert.run_plan_request(call.feeds, container=call.container, plan_key=call.plan_key,
                                    request_id=call.request_id, session_handle=call.session_handle,
                                    device_type=call.device_type, trace_level=1 if call.trace else 0,
                                    host_steps=call.host_steps)


class _Lane:
    """A channel that carries one call at a time, so that cancelling a run can close it.

    The call to the worker is a blocking one: it waits on the calling thread, where a future's
    result() waits for gRPC's channel thread to hand the reply over (a thread switch each way, 546 against
    245 us for one echo here). A blocking call has no handle to cancel it by, but closing its channel
    cancels it, and the worker sees the cancellation: hence one channel per call in flight, reused by the
    next call unless a cancellation closed it. Connections are shared by channels to the same address."""

    __slots__ = ("channel", "run_plan", "cancelled", "generation", "_guard")

    def __init__(self, channel, run_plan):
        self.channel, self.run_plan = channel, run_plan
        self.cancelled, self.generation = False, 0
        self._guard = threading.Lock()

    def close(self) -> None:
        self.channel.close()

    def take(self) -> int:
        """Start carrying a call; returns its number, which its cancellation names."""
        with self._guard:
            self.generation += 1
            return self.generation

    def cancel(self, generation: int) -> None:
        """Close the lane if it still carries call `generation` (a server call's end triggers its
        cancellation callbacks too, possibly after the lane moved on to the next call)."""
        with self._guard:
            if generation == self.generation and not self.cancelled:
                self.cancelled = True
                self.channel.close()

    def release(self) -> bool:
        """End the call; whether the lane may carry another (False: a cancellation closed it)."""
        with self._guard:
            self.generation += 1
            return not self.cancelled


def _worker_error(worker, exc: grpc.RpcError) -> errors.OpError:
    error = status.error_from_rpc(exc)
    if isinstance(error, errors.UnavailableError):
        message = error.message.lower()
        if any(sign in message for sign in _NEVER_REACHED):
            return WorkerLost(None, None, f"worker {worker.name} is unavailable: {error.message}")
        if not any(sign in message for sign in _BROKE):
            return error
        return WorkerDied(None, None, f"worker {worker.name} died while running this run ({error.message}); it is "
                                      f"not resent to another worker")
    return error


class WorkerPool:
    """With `secret`, only workers whose registration it signed are used, and calls to them carry it;
    `credentials` are the channel credentials for workers that serve TLS."""

    def __init__(self, store: Store, local: LocalWorker | None = None, secret: WorkerSecret | None = None,
                 credentials=None, direct_tls=None):
        self.store = store
        self.direct_tls = direct_tls  # ssl.SSLContext for TLS workers' direct links
        self.local = local
        self.secret = secret
        self.credentials = credentials
        self._rejected: set[str] = set()  # registrations already warned about
        self._mismatched: set[str] = set()  # workers taking runs with other settings, already warned about
        self._other_version: set[str] = set()  # workers of another graphexec version, already warned about
        self._compiler = compiler_version()
        self._remote: dict[str, RemoteWorker] = {}
        # The registry's workers and their device types, as of the last refresh: a run reads these instead
        # of building them (a few us of each run's Python) while no worker is set aside.
        self._live: list = []
        self._live_device_types: frozenset[str] = frozenset()
        self._suspect: dict[str, float] = {}
        self._affinity: dict[str, str] = {}
        self._stop = threading.Event()
        self._refresher = None
        if local is None:
            self._try_refresh()
            self._refresher = threading.Thread(target=self._refresh_loop, name="graphexec-workers", daemon=True)
            self._refresher.start()

    def workers(self) -> list:
        if self.local is not None:
            return [self.local]
        if not self._suspect:
            return self._live
        now = time.monotonic()
        return [w for w in self._remote.values() if self._suspect.get(w.id, 0) < now]

    def device_types(self) -> frozenset[str]:
        if self.local is not None:
            return self.local.device_types
        if not self._suspect:
            return self._live_device_types
        return frozenset(t for w in self.workers() for t in w.device_types)

    def choose(self, device_type: str, container: str, sticky: bool, exclude=()):
        """A live worker with the device type: for `sticky` runs (they use variables) the one that ran the
        container last, whose copies are hot; otherwise, and the first time, the least loaded."""
        local = self.local
        if local is not None and device_type in local.device_types and local.id not in exclude:
            return local  # embedded: the only worker (affinity only matters between several)
        candidates = [w for w in self.workers() if device_type in w.device_types and w.id not in exclude]
        if not candidates:
            live = ", ".join(sorted(w.name for w in self.workers())) or "none"
            raise errors.UnavailableError(None, None, f"no live worker has a {device_type} device (live workers: "
                                                      f"{live})")
        if sticky:
            preferred = self._affinity.get(container)
            for worker in candidates:
                if worker.id == preferred:
                    return worker
        worker = min(candidates, key=lambda w: w.load())
        if sticky:
            self._affinity[container] = worker.id
        return worker

    def takes_runs_at(self, address: str) -> bool:
        """Whether a live worker takes clients' runs itself at HOST:PORT `address` (as run_target names it)."""
        return any(getattr(w, "run_port", 0) and _run_address(w) == address for w in self.workers())

    def run_target(self, fingerprint: str) -> tuple[str, str]:
        """(HOST:PORT, Unix socket name or "") where a live worker with these settings takes clients' runs
        itself (the least loaded; those with more device types first, so that a session's GPU plans can
        run there), or ("", "")."""
        candidates = []
        for worker in self.workers():
            if not getattr(worker, "run_port", 0):
                continue
            if worker.run_fingerprint != fingerprint:
                if worker.id not in self._mismatched:
                    self._mismatched.add(worker.id)
                    log.warning("worker %s takes runs itself but with other tokens, limits or TLS than this server "
                                "(graphexec.server.worker_runs): this server's clients' runs go through it", worker.name)
                continue
            candidates.append(worker)
        if not candidates:
            return "", ""
        # (at random among equals: the loads are the registrations' snapshots, often all 0, and sessions
        # should spread over the workers rather than all land on the first)
        chosen = min(candidates, key=lambda w: (-len(w.device_types), w.load(), random.random()))
        return _run_address(chosen), chosen.run_socket

    def mark_lost(self, worker) -> None:
        log.warning("worker %s lost; setting it aside for %.0f s", worker.name, SUSPECT_S)
        self._suspect[worker.id] = time.monotonic() + SUSPECT_S
        self._affinity = {c: w for c, w in self._affinity.items() if w != worker.id}

    def _refresh(self) -> None:
        """Replace the worker table as a whole (readers iterate it without a lock)."""
        current, fresh = self._remote, {}
        for info in filter(None, map(self._trusted, self.store.live_workers())):
            if not self._same_compiler(info):
                continue
            worker = current.get(info["id"])
            if (worker is None or worker.address != info["address"] or worker.tls != bool(info.get("tls"))
                    or worker.direct_port != info.get("direct_port")
                    or worker.direct_version != info.get("direct_version", 1)
                    or worker.run_port != info.get("run_port", 0)
                    or worker.run_fingerprint != info.get("run_fingerprint", "")
                    or worker.run_socket != _run_socket(info)):
                worker = RemoteWorker(info, self.secret.metadata() if self.secret else (), self.credentials,
                                      self.direct_tls)
                threading.Thread(target=worker.connect_ahead, name="graphexec-connect", daemon=True).start()
            else:
                worker.update(info)
            fresh[worker.id] = worker
        self._remote = fresh
        self._live = list(fresh.values())
        self._live_device_types = frozenset(t for w in self._live for t in w.device_types)
        now = time.monotonic()
        for worker_id, until in list(self._suspect.items()):  # (list(): mark_lost may add one meanwhile)
            if until <= now:
                self._suspect.pop(worker_id, None)
        for worker_id, worker in current.items():
            if fresh.get(worker_id) is not worker:
                worker.close()

    def _trusted(self, record: dict) -> dict | None:
        """The worker info of a registration: with the secret, only of one it signed (others are logged
        once and ignored: anyone who can write to Redis could have written them)."""
        if not isinstance(record, dict):
            return None
        if self.secret is None:
            info = json.loads(record["record"]) if isinstance(record.get("record"), str) else record
        else:
            info = self.secret.verify(record)
        if info is None or not isinstance(info.get("id"), str) or not isinstance(info.get("address"), str):
            key = json.dumps(record, sort_keys=True)[:200]
            if key not in self._rejected and len(self._rejected) < MAX_WARNED:
                self._rejected.add(key)
                log.warning("ignoring a worker registration not signed with the worker secret: %s", key)
            return None
        return info

    def _same_compiler(self, info: dict) -> bool:
        """Whether a registered worker runs this server's version of graphexec (compiler_version()). One that
        does not is no worker of this server's (logged once): it could not run the plans compiled here, nor
        this server the ones it stores. During a rolling upgrade each version so keeps to its own workers."""
        theirs = info.get("compiler_version", "")
        if theirs == self._compiler:
            return True
        if info["id"] not in self._other_version and len(self._other_version) < MAX_WARNED:
            self._other_version.add(info["id"])
            log.warning("worker %s@%s runs another version of graphexec (%s; this server: %s): not using it",
                        info["id"], info["address"], theirs or "unknown", self._compiler)
        return False

    def _try_refresh(self, warned: bool = False) -> bool:
        """Refresh; on a store failure keep the last list (warning once per outage). Returns `warned`."""
        try:
            self._refresh()
            return False
        except errors.UnavailableError as exc:
            if not warned:
                log.warning("cannot refresh the worker registry, keeping the last list: %s", exc)
            return True

    def _refresh_loop(self) -> None:
        warned = False
        while not self._stop.wait(REFRESH_S):
            warned = self._try_refresh(warned)

    def close(self) -> None:
        self._stop.set()
        for worker in list(self._remote.values()):
            worker.close()
