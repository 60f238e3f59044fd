"""Intra-op parallelism: the independent parts of one large kernel run on several threads at once.

A convolution's chunks of images or a large product's blocks of rows are handed to a process-wide set
of helper threads, and the calling thread works on them too; every part calls BLAS single-threaded.
This replaces OpenBLAS's own threads, which spin and hand off work in ways that collapse on a shared
machine: W10's conv2 product (2 cores, same minutes) took 17.7-36 ms with OpenBLAS's 2 threads and
15.3 ms as 2 one-thread products on these threads. Parts are taken one at a time from a shared counter,
so a thread that is not scheduled delays only its own part. A waiting thread spins for a bounded time
without the GIL, yielding its CPU to anything ready to run there, and then blocks (`set_spin`,
runtime/spin_wait.py): unlike OpenBLAS's spin, it never holds work another thread waits for. Float32
products hand their parts to helpers that run them without the GIL (`run_products`): 0.32-0.37 ms for W3's
25.7M-multiply-add products split, 0.42-0.48 through Python parts, 0.53-0.6 whole (in process, Zen 4 kind).

The thread count is process-wide (`set_threads`): servers take `--intra-op-threads`, an in-process
session `intra_op_parallelism_threads`; both default to the cores this process may use. Kernels split
work only when the BLAS library runs single-threaded (graphexec.runtime.blas), so the two never
multiply their threads.
"""
from __future__ import annotations

import collections
import itertools
import os
import threading
import time

import numpy as np

from graphexec.runtime import blas, spin_wait, split_choice

# Waking a helper thread costs ~0.1-0.2 ms on a VM, so below this many multiply-adds (~0.3 ms on one
# core) a split cannot pay. Inside W3's step a 128 x 784 x 256 product took 0.45 ms split against 0.59
# whole; with the helper asleep 1-2 ms before every call, products up to ~50M were no faster split.
# Above it, kernels whose split keeps their bits time both ways and take the faster (split_choice).
MIN_MACS = 1 << 24
# Likewise an elementwise pass over fewer elements (~1 ms of a fused chain): with a sleeping helper, a
# 1M-element chain took 1.16 ms whole and 1.62 split, a 4M-element one 5.2 and 3.0.
MIN_ELEMENTS = 1 << 21
GROUPS_PER_THREAD = 4  # partial sums or block runs per thread (see groups): enough to keep all busy
# How long an intra-op thread spins (runtime/spin_wait.py) before it blocks: a helper after its last part,
# for the next; a caller, for its helpers' parts. W3's step posts its second product ~0.4 ms after its first
# and the next step's first ~0.5 ms after that (remote, Zen 4 kind): a helper spinning 1 ms stays awake
# through a training loop, and costs at most 1 ms of CPU after the last split kernel.
SPIN_VARIABLE = "GRAPHEXEC_INTRA_OP_SPIN_US"
DEFAULT_SPIN_US = 1000
_spin_s = DEFAULT_SPIN_US * 1e-6
_spin_read = False  # whether SPIN_VARIABLE was read (servers set the spin from their flag instead)

_threads = 1
_helpers: _Helpers | None = None
_lock = threading.Lock()
_inside = threading.local()  # set while this thread runs a part: parts never split again


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_threads(threads: int) -> None:
    """Let one kernel use up to `threads` threads (0: the usable cores)."""
    global _threads, _helpers
    threads = threads or usable_cores()
    with _lock:
        if _helpers is not None and threads != _threads:
            _helpers.close()
            _helpers = None
        _threads = threads
    split_choice.forget()


def prepare_spin() -> bool:
    """Compile the spin now, when threads will spin (more than one thread, a spin above 0): numba's compile
    holds the GIL in bursts for ~0.5 s, which in a program's first steps would slow them ~3x (W3's first 40
    steps remote took ~6 ms, not 2). Returns whether they will spin. Not before a fork: it starts a thread."""
    if not (_threads > 1 and spin_seconds() > 0):
        return False
    spinning = spin_wait.prepare(wait=True)
    blas.limit_again()  # numba's import may have loaded SciPy's BLAS, with its own threads
    return spinning


def threads() -> int:
    return _threads


def set_spin(microseconds: float) -> None:
    """How long intra-op threads spin before they block (0: they block at once)."""
    global _spin_s, _spin_read
    if microseconds < 0:
        raise ValueError(f"the intra-op spin cannot be negative, got {microseconds} us")
    _spin_s, _spin_read = microseconds * 1e-6, True


def spin_seconds() -> float:
    """The spin; in a process whose spin was never set, read from GRAPHEXEC_INTRA_OP_SPIN_US once."""
    if not _spin_read:
        value = os.environ.get(SPIN_VARIABLE, "").strip()
        try:
            set_spin(float(value) if value else DEFAULT_SPIN_US)
        except ValueError as error:
            raise ValueError(f"{SPIN_VARIABLE} must be a number of microseconds >= 0, got {value!r}") from error
    return _spin_s


def ways(macs: int, one_thread_calls: bool | None = None) -> int:
    """On how many threads a kernel of `macs` multiply-adds should run (1: as one). Its parts' library
    calls must each run on one thread (`one_thread_calls`; default: whether BLAS calls do)."""
    if one_thread_calls is None:
        one_thread_calls = blas.single_threaded()
    return _ways(macs, MIN_MACS) if one_thread_calls else 1


def ways_for_elements(size: int) -> int:
    """On how many threads an elementwise pass over `size` elements should run (1: as one)."""
    return _ways(size, MIN_ELEMENTS)


def _ways(work: int, least: int) -> int:
    if _threads <= 1 or work < least or getattr(_inside, "active", False):
        return 1
    return _threads


def _pool() -> _Helpers:
    global _helpers
    with _lock:
        if _helpers is None:
            _helpers = _Helpers(max(1, _threads - 1))
        return _helpers


class _Helpers:
    """Threads that run the parts of posted jobs. After a part a helper spins (spin_seconds, without the GIL,
    when spin_wait can) watching `posted`, then sleeps on a condition until a job is posted."""

    def __init__(self, count: int):
        self.jobs: collections.deque = collections.deque()
        # One product at a time hands its parts to helpers through these (spin_wait.fill_parts): helper i
        # runs the part in slots[i] without the GIL.
        self.slots = np.zeros((count, spin_wait.SLOT_SIZE), np.int64)
        self.own = np.zeros(spin_wait.SLOT_SIZE, np.int64)  # the posting thread's own part (run_products)
        self.products = threading.Lock()
        self.posted = np.zeros(1, np.int64)  # a new number at every post; spinning helpers watch it
        self.numbers = itertools.count(1)  # next() is atomic under the GIL: two posts never store one number
        self.wake = threading.Condition(threading.Lock())
        self.sleeping = 0
        self.closed = False
        for index in range(count):
            threading.Thread(target=self._serve, args=(self.slots[index],), name=f"graphexec-intra-op-{index}",
                             daemon=True).start()

    def post(self, work) -> None:
        self.jobs.append(work)
        self.posted[0] = next(self.numbers)
        self.wake_sleepers()

    def close(self) -> None:
        self.closed = True  # before the wake: a helper about to sleep looks at it under the lock
        self.posted[0] = next(self.numbers)
        self.wake_sleepers()

    def wake_sleepers(self) -> None:
        if self.sleeping:  # read without the lock: a helper about to sleep looks at its work under it first
            with self.wake:
                self.wake.notify_all()

    def _serve(self, slot: np.ndarray) -> None:
        while not self.closed:
            try:
                work = self.jobs.popleft()
            except IndexError:
                seen = int(self.posted[0])
                if self.jobs or spin_wait.help_with_products(self.posted, seen, slot, spin_seconds()):
                    continue
                with self.wake:
                    self.sleeping += 1
                    while not self.jobs and not self.closed and slot[0] != spin_wait.POSTED:
                        self.wake.wait()
                    self.sleeping -= 1
                continue
            work()


class _Job:
    """Parts 0..count-1 of one kernel, taken in order by whichever thread is free."""

    def __init__(self, count, body):
        self.count, self.body = count, body
        self.errors = np.geterr()  # numpy's error handling is per thread: helpers take the caller's
        self.taken = self.finished = 0
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.ended = np.zeros(1, np.int64)  # 1 with `done`: what a spinning caller watches

    def work(self) -> None:
        _inside.active = True
        try:
            with np.errstate(**self.errors):
                self._take_parts()
        finally:
            _inside.active = False

    def _take_parts(self) -> None:
        while True:
            with self.lock:
                if self.error is not None or self.taken == self.count:
                    return
                part = self.taken
                self.taken += 1
            try:
                self.body(part)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
                with self.lock:
                    self.error = self.error or exc
            with self.lock:
                self.finished += 1
                if self.finished == self.taken and (self.taken == self.count or self.error is not None):
                    self.ended[0] = 1
                    self.done.set()


def _after_fork_in_child() -> None:
    """A forked child has none of the parent's helper threads: it starts its own at its first split."""
    global _helpers, _lock
    _helpers, _lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def run(count: int, body, ways_: int | None = None) -> int:
    """Call body(part) for every part in range(count), on up to `ways_` (default: all) threads at once;
    returns how many threads took part. The first error a part raises is raised here, after every part
    that started has ended."""
    ways_ = min(count, ways_ or _threads)
    if ways_ <= 1 or getattr(_inside, "active", False):
        for part in range(count):
            body(part)
        return 1
    job = _Job(count, body)
    pool = _pool()
    for _ in range(1, ways_):
        pool.post(job.work)  # a helper that starts after the parts are gone returns at once
    job.work()
    if not job.done.is_set():
        spin_wait.wait_for_change(job.ended, 0, spin_seconds())
        job.done.wait()
    if job.error is not None:
        raise job.error
    return ways_


def run_products(a: np.ndarray, b: np.ndarray, out: np.ndarray, cuts, by_rows: bool,
                 epilogue: tuple = spin_wait.NONE, steps: tuple = (0, 0)) -> bool:
    """out = a @ b, cut into `cuts` (blocks of rows when `by_rows`, else of columns; at most one a thread):
    the first block on this thread, each other one on a helper, all in compiled code without the GIL
    (runtime/spin_wait.py); a block no helper took by the time this thread's own is done runs here too.
    The bits are numpy's: the loops call numpy's own sgemm as numpy's matmul would. With `epilogue` (its
    slot fields and `steps`: spin_wait.fill_parts), each block is then finished by the thread that computed
    it. False (nothing done) when that cannot be: no compiled loops, more blocks than threads, a block
    numpy would not hand to gemm, or another product using the helpers now (the caller then runs the
    blocks through `run`)."""
    if len(cuts) < 2 or _threads <= 1 or getattr(_inside, "active", False):
        return False
    if not spin_wait.products_available():
        return False
    pool = _pool()
    if len(cuts) > len(pool.slots) + 1 or not pool.products.acquire(blocking=False):
        return False
    try:
        slots = pool.slots[:len(cuts) - 1]
        own = pool.own
        if not spin_wait.fill_parts((own, *slots), a, b, out, cuts, by_rows, epilogue, steps):
            return False
        slots[:, 0] = spin_wait.POSTED
        pool.wake_sleepers()
        own[0] = spin_wait.POSTED  # no helper watches it: finish runs it here
        try:
            spin_wait.finish(own)
        finally:  # the helpers write into the output: never return while one still does
            for slot in slots:
                spin_wait.finish(slot)
            slots[:, 0] = spin_wait.IDLE
            own[0] = spin_wait.IDLE
        return True
    finally:
        pool.products.release()


def run_timed(key, count: int, body, ways_: int) -> int:
    """run(count, body, ways_), or its parts one after another on this thread, whichever took less time
    lately for the kernel shape `key` (split_choice): only for parts whose results do not depend on which
    thread ran them or when."""
    ways_ = split_choice.choose(key, ways_)
    started = time.perf_counter()
    ways_ = run(count, body, ways_)
    split_choice.record(key, ways_, time.perf_counter() - started)
    return ways_


def split(length: int, parts: int, most: int | None = None, multiple: int = 1) -> list[slice]:
    """`length` cut into about `parts` equal slices, none longer than `most`; with `multiple`, every cut
    at a multiple of it, the slices' length the nearest multiple to theirs (a short last slice may
    follow), unless `most` is below it: `most` wins."""
    size = max(1, -(-length // max(parts, 1)))
    if most is not None:
        size = max(1, min(size, most))
    if multiple > 1 and (most is None or most >= multiple):
        size = max(multiple, (size + multiple // 2) // multiple * multiple)
        if most is not None:
            size = min(size, most // multiple * multiple)
    return [slice(start, min(start + size, length)) for start in range(0, length, size)]


def even_cuts(length: int, parts: int, multiple: int) -> list[slice]:
    """`length` cut into at most `parts` slices of about equal length, each cut at the multiple of `multiple`
    nearest to an even cut: a product's row blocks, one a thread, on its BLAS kernel's row tile. (`split`
    makes slices of a multiple's length and a short one after them: W3's 128 rows on a 12-row tile came
    out 60 + 60 + 8, three parts for two threads.)"""
    inner = {round(length * index / parts / multiple) * multiple for index in range(1, parts)}
    bounds = [0, *sorted(cut for cut in inner if 0 < cut < length), length]
    return [slice(start, stop) for start, stop in zip(bounds, bounds[1:])]


def groups(count: int, ways_: int, most: int | None = None) -> list[slice]:
    """`count` items in runs of consecutive ones, GROUPS_PER_THREAD runs per thread of `ways_` (one run
    when 1), none longer than `most`: a fixed grouping, so partial sums per group add up the same however
    threads take them."""
    return split(count, GROUPS_PER_THREAD * ways_ if ways_ > 1 else 1, most)
