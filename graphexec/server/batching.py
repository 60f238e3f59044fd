"""Dynamic batching: concurrent small runs of one row-wise plan become one kernel call.

`graphexec serve --max-batch-size N` (off by default) turns it on. A run joins a batch when:

* its plan is row-wise (`compiler.rowwise`, decided once per plan): read-only, feeds `[None, ...]`,
  every step keeps rows apart; else it runs alone, as without batching;
* it is not traced, and its feeds all have the same number of rows, fewer than N.

Runs that may share a batch have the same batch key: the plan, the variable container (a tenant's own,
graphexec.server.auth), the placement, and the feeds' dtypes and shapes past dimension 0 (so they
concatenate). Per key, one batch runs at a time on this server; runs that arrive meanwhile queue, in
order. The first run in an empty queue leads: it waits until the queue holds N rows or
--max-batch-delay-us has passed since it arrived (0: take what is queued at once), but only while runs
of the key come from several sessions (another session's run arrived in the last COMPANY_S, or 10 delays):
a lone client, or the one-after-another runs of a Run stream, never waits for company that does not come;
it takes whole runs from the front up to N rows, runs them as one call (one RunPlan to a worker with --redis), answers
each run its own rows of every fetch (a fetch that does not depend on the feeds is the same for all),
then hands the lead to the oldest run still queued.

Each run keeps its own deadline and cancellation: one that expires or is cancelled while queued is
answered at once (DEADLINE_EXCEEDED or CANCELLED) and leaves the queue; one already in a running batch
is answered at once too, and its rows are dropped. The batch itself runs until the latest deadline of
its runs. Feeds were checked against the plan before a run queued, so one client's bad feed fails only
its own run; if the batch still fails (a kernel error that depends on the values, e.g. an index out of
range), every run of it is run again alone and gets its own answer. A worker lost under a batch fails
every run of it ABORTED, as it would each of them alone.

A run that waits for a batch it does not lead steps out of its --threads turn (graphexec.server.limits)
and takes one again only to run a call itself, so a batch can gather more runs than the server has
threads; it sleeps on a lock of its own, which the leader releases with its answer.

Metrics: graphexec_batch_size (runs per batched kernel call) and graphexec_unbatched_runs_total (runs
that went alone while batching is on, by reason: `plan` not row-wise, or `request`).
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import threading
import time

import numpy as np

from graphexec import errors
from graphexec.compiler.rowwise import RowWise, rowwise
from graphexec.runtime.worker import CachedPlan, PlanCall, PlanResult
from graphexec.server.limits import Slot
from graphexec.server.telemetry import Metrics

COMPANY_S = 1.0  # a leader waits for company only when other sessions sent runs of its key this recently
MAX_ENTRIES = 4096  # plans' verdicts, and batch keys' queues and history, kept at most
log = logging.getLogger("graphexec.batching")

# A run's state: waiting in its queue, taken into a batch, answered, or told to run alone.
QUEUED, TAKEN, DONE, ALONE = range(4)


class _Queue:
    __slots__ = ("runs", "rows", "leading", "ready")

    def __init__(self, lock):
        self.runs: collections.deque[_Run] = collections.deque()
        self.rows = 0
        self.leading = False  # a run leads this queue (forming or running a batch)
        self.ready = threading.Condition(lock)  # a leader waiting for more rows is told when there are N


class _Run:
    __slots__ = ("call", "rows", "queue", "arrived", "deadline", "state", "leads", "result", "error", "wake", "woken")

    def __init__(self, call: PlanCall, rows: int, queue: _Queue):
        self.call = call
        self.rows = rows
        self.queue = queue
        self.arrived = time.monotonic()
        self.deadline = None if call.timeout_s is None else self.arrived + call.timeout_s
        self.state = QUEUED
        self.leads = False
        self.result = self.error = None
        # A run that waits blocks on acquiring `wake`, held until it is woken (answered, told to lead or
        # cancelled): one C-level lock release per wake-up, where an Event is Python code around a Condition.
        self.wake: threading.Lock | None = None
        self.woken = False

    def expired(self) -> errors.OpError | None:
        if self.call.cancellation:
            return errors.CancelledError(None, None, "Run was cancelled")
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return waited_past_deadline()
        return None


class Batcher:
    """`execute(call, cached) -> PlanResult` runs one call (a run alone, or a batch)."""

    def __init__(self, max_batch_size: int, max_delay_us: int, execute, metrics: Metrics | None = None):
        self.max_rows = max_batch_size
        self.delay_s = max_delay_us / 1e6
        self.execute = execute
        self.metrics = metrics or Metrics()
        # Plain dicts, emptied when full (a dropped entry is recomputed): this is on every run's path.
        self._verdicts: dict[str, RowWise] = {}
        self._queues: dict[tuple, _Queue] = {}  # kept while idle, so a steady key allocates no queue per run
        # batch key -> [session of its last run, when a run of another session last arrived]
        self._sessions: dict[tuple, list] = {}
        self._company_s = max(COMPANY_S, 10 * self.delay_s)
        self._lock = threading.Lock()

    def verdict(self, cached: CachedPlan) -> RowWise:
        """Whether the plan may be batched, decided once per plan key."""
        verdict = self._verdicts.get(cached.key)
        if verdict is None:
            verdict = rowwise(cached.plan)
            if cached.writes_variables:  # rowwise refuses writes already; this keeps it so whatever it says
                verdict = RowWise(False, "the plan writes variables")
            if len(self._verdicts) >= MAX_ENTRIES:
                self._verdicts.clear()
            self._verdicts[cached.key] = verdict
        return verdict

    def run(self, call: PlanCall, cached: CachedPlan, slot: Slot | None = None) -> PlanResult:
        """The run's result, from a batch when it may join one, else run alone. `slot` (the run's turn,
        graphexec.server.limits.Admission) is stepped out of while the run waits for another's batch, so
        that batches may gather more concurrent runs than the server has --threads."""
        rows = batch_rows(call, self.max_rows)
        if not self.verdict(cached).ok:
            self.metrics.unbatched_runs.labels("plan").inc()
            return self.execute(call, cached)
        if rows is None:
            self.metrics.unbatched_runs.labels("request").inc()
            return self.execute(call, cached)
        key = batch_key(call, cached)
        with self._lock:
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = _Queue(self._lock)
            run = _Run(call, rows, queue)
            self._seen(key, call.session_handle, run.arrived)
            queue.runs.append(run)
            queue.rows += rows
            if not queue.leading:
                queue.leading = run.leads = True
            else:
                run.wake = threading.Lock()  # only a run that waits needs one
                run.wake.acquire()
                if queue.rows >= self.max_rows:
                    queue.ready.notify()
        if not run.leads:
            if slot is not None:
                slot.step_aside()
            self._wait(run)
            if slot is not None and (run.leads or run.state == ALONE):  # it runs a call itself
                slot.step_back()
        if run.leads:
            self._lead(key, queue, cached)
        if run.state == ALONE:  # its batch failed: run alone, in what is left of its own time
            if run.deadline is not None:
                call.timeout_s = max(run.deadline - time.monotonic(), 0.0)
            return self.execute(call, cached)
        if run.error is not None:
            raise run.error
        return run.result

    def _wait(self, run: _Run) -> None:
        """Until the run is answered, told to lead, or gives up (answered with its own error)."""
        cancellation = run.call.cancellation
        poke = None
        if cancellation is not None:
            poke = functools.partial(self._poke, run)
            cancellation.on_cancel(poke)
        try:
            while True:
                timeout = -1 if run.deadline is None else max(run.deadline - time.monotonic(), 0.0)
                woken = run.wake.acquire(True, timeout)
                if woken and (run.leads or run.state in (DONE, ALONE)):  # set before the wake-up: no lock needed
                    return
                with self._lock:
                    if run.woken:  # re-arm: `wake` held again, for a waker to release
                        if not woken:
                            run.wake.acquire()  # released just after the timeout: at once
                        run.woken = False
                    if run.leads or run.state in (DONE, ALONE):
                        return
                    error = run.expired()
                    if error is None:
                        continue
                    if run.state == QUEUED:  # leave the queue; a batch already running just drops its rows
                        run.queue.runs.remove(run)
                        run.queue.rows -= run.rows
                    run.state, run.error = DONE, error
                    return
        finally:
            if poke is not None:
                cancellation.forget(poke)

    def _poke(self, run: _Run) -> None:
        """Wake a waiting run to look at its cancellation."""
        with self._lock:
            _wake(run)

    def _answer(self, runs: list[_Run], state: int, results=None, error=None) -> None:
        """Answer runs (under one taking of the lock) and wake those that wait."""
        with self._lock:
            for i, run in enumerate(runs):
                if run.state == DONE:  # it gave up waiting and has its own error
                    continue
                run.result, run.error, run.state = None if results is None else results[i], error, state
                _wake(run)

    def _lead(self, key, queue: _Queue, cached: CachedPlan) -> None:
        with self._lock:
            if self.delay_s > 0 and queue.rows < self.max_rows and self._company(key, queue.runs[0].arrived):
                oldest = queue.runs[0]  # the leader's own run: stop waiting when it expires, run the others
                until = oldest.arrived + self.delay_s if oldest.deadline is None else min(
                    oldest.arrived + self.delay_s, oldest.deadline)
                while queue.rows < self.max_rows and time.monotonic() < until:
                    queue.ready.wait(until - time.monotonic())
            batch, rows = [], 0
            while queue.runs and (not batch or rows + queue.runs[0].rows <= self.max_rows):
                run = queue.runs.popleft()
                queue.rows -= run.rows
                rows += run.rows
                run.state = TAKEN
                batch.append(run)
        try:
            self._run_batch(batch, cached)
        except BaseException as exc:  # a bug: answer every run of the batch with it, never leave one waiting
            self._answer(batch, DONE, error=exc)
            raise
        finally:
            with self._lock:
                self._hand_off(key, queue)

    def arrived(self, key, session: str, now: float) -> bool:
        """Note a run's arrival elsewhere (the direct link's batching, graphexec.server.direct_batching);
        whether runs of other sessions came for the key recently, so that waiting may gather company."""
        with self._lock:
            self._seen(key, session, now)
            return self._company(key, now)

    def _seen(self, key, session: str, now: float) -> None:
        """Note a run's arrival (the lock held)."""
        seen = self._sessions.get(key)
        if seen is None:
            if len(self._sessions) >= MAX_ENTRIES:
                self._sessions.clear()
            self._sessions[key] = [session, None]
        elif seen[0] != session:
            seen[0], seen[1] = session, now

    def _company(self, key, now: float) -> bool:
        """Whether runs of several sessions arrive for the key (else waiting only delays a lone client, or
        a Run stream's one-after-another runs, which can never share a call)."""
        seen = self._sessions.get(key)
        return seen is not None and seen[1] is not None and now - seen[1] < self._company_s

    def _hand_off(self, key, queue: _Queue) -> None:
        """The lead to the oldest run still queued (the lock held)."""
        if queue.runs:
            queue.runs[0].leads = True
            _wake(queue.runs[0])
        else:
            queue.leading = False
            if len(self._queues) > MAX_ENTRIES:
                del self._queues[key]

    def _run_batch(self, batch: list[_Run], cached: CachedPlan) -> None:
        live = []
        for run in batch:
            error = run.expired()
            if error is not None:
                self._answer([run], DONE, error=error)
            else:
                live.append(run)
        if not live:
            return
        results, error = self.execute_batch([run.call for run in live], [run.deadline for run in live],
                                            [run.rows for run in live], cached)
        if error is ALONE:
            self._answer(live, ALONE)
        else:
            self._answer(live, DONE, results, error)

    def execute_batch(self, calls: list[PlanCall], deadlines: list, rows: list[int], cached: CachedPlan):
        """(each call's PlanResult, None) of calls run as one, or (None, the error for all of them), or
        (None, ALONE) when each should run again alone (the batch failed, perhaps on one run's values)."""
        self.metrics.batch_size.observe(len(calls))
        if len(calls) == 1:  # nothing to stack: the run's own call, and its own answer
            if deadlines[0] is not None:
                calls[0].timeout_s = max(deadlines[0] - time.monotonic(), 0.0)
            try:
                return [self.execute(calls[0], cached)], None
            except errors.OpError as exc:
                return None, exc
        try:
            result = self.execute(_batch_call(calls, deadlines), cached)
            answers = _split(result, rows, self.verdict(cached).fetch_rows)
        except errors.AbortedError as exc:  # the worker was lost under the batch: as it would be for each run
            return None, exc
        except errors.OpError as exc:  # may be one run's values: each run again alone, for its own answer
            log.warning("a batch of %d runs failed (%s); running each alone", len(calls), exc.message)
            return None, ALONE
        return [PlanResult(fetches, [], False, result.worker) for fetches in answers], None


def _wake(run: _Run) -> None:
    """Release a waiting run's `wake` once (the batcher's lock held)."""
    if run.wake is not None and not run.woken:
        run.woken = True
        run.wake.release()


def batch_key(call: PlanCall, cached: CachedPlan) -> tuple:
    """Runs with equal keys may share a batch (see the module docstring)."""
    return (cached.key, call.container, call.device_type, call.host_steps,
            tuple((f.dtype.str, f.shape[1:]) for f in call.feeds))


def waited_past_deadline() -> errors.DeadlineExceededError:
    return errors.DeadlineExceededError(None, None, "Run exceeded its deadline waiting for its batch")


def batch_rows(call: PlanCall, max_rows: int) -> int | None:
    """The rows of a run that may join a batch (its feeds agree on dimension 0), else None."""
    if call.trace or not call.feeds:
        return None
    rows = {f.shape[0] if getattr(f, "ndim", 0) else None for f in call.feeds}
    if len(rows) != 1:
        return None
    n = rows.pop()
    return n if n is not None and 0 < n < max_rows else None


def _batch_call(calls: list[PlanCall], deadlines: list) -> PlanCall:
    """One call for the runs: their feeds stacked, lasting until the latest of their deadlines."""
    first = calls[0]
    timeout = None if None in deadlines else max(deadlines) - time.monotonic()
    feeds = [np.concatenate(column) for column in zip(*(call.feeds for call in calls))]
    return dataclasses.replace(first, feeds=feeds, request_id=0, timeout_s=timeout, cancellation=None)


def _split(result: PlanResult, rows: list[int], fetch_rows: tuple[bool, ...]) -> list[list]:
    """Each run's fetches: its rows of the row-wise ones, the shared ones whole."""
    total = sum(rows)
    for value, by_rows in zip(result.fetches, fetch_rows):
        if by_rows and np.shape(value)[:1] != (total,):
            raise errors.InternalError(None, None, f"a batched fetch has {np.shape(value)[:1]} rows, not {total}")
    answers, start = [], 0
    for n in rows:
        answers.append([value[start:start + n] if by_rows else value
                        for value, by_rows in zip(result.fetches, fetch_rows)])
        start += n
    return answers
