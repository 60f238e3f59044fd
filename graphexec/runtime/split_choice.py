"""Whether a kernel runs faster split over the intra-op threads or whole, decided by timing both.

Why: what a split saves is the helpers' share of the work; what it costs is waking them, and that cost
depends on the machine and the moment. A helper's wake-up round trip took 20-40 us on some 2-vCPU machine
kinds and 70-230 us on others (AMD EPYC family 25 model 1, 3 Dec), and a helper that shares its core
with a busy neighbour may not run for milliseconds. On that kind W3's 25.7M-multiply-add products were
no faster split (0.54-1.18 ms against 0.6-0.95 whole) and its in-process step took 2.3-3.3 ms with
splits against 2.3-2.5 without, while on others the same products took 0.45 split against 0.59 whole.
No fixed threshold is right everywhere, so each kernel shape (a `key`) that is large enough to split
keeps its last few times each way and takes the faster; now and then it looks at the other way for
LOOK_CALLS calls, so a change (a neighbour that comes or goes) is noticed. Looks come EXPLORE_EVERY calls
apart, and twice as far apart (up to MAX_EXPLORE_EVERY) each time one leaves the choice as it was: a way
that stays slower costs less and less to watch. A change in the way taken shows at once in its own times,
which are kept on every call. A look's first call is not counted: it pays for waking helpers that slept
since the last split, which a program that keeps to that way does not pay on every call (Zen 3 kind, in
W3's step: its forward product took 0.94-1.2 ms split in single looks, 0.6-0.67 ms split on every call,
0.6 ms whole). A look starts the other way's samples afresh (the old ones are at least a look's interval
old), and a change of choice brings the next look within EXPLORE_EVERY calls: on a VM a burst of slow
splits (a vCPU taken away for a few ms) turned W3's products to whole for a thousand calls at a time,
until two far-apart looks had outvoted the burst's samples (through `serve` on the Zen 4 kind, 5-29% of
its 128x784x256 products ran whole, ~200 us slower each).

Only kernels whose split gives the same bits as the whole use this (elementwise passes, products cut
into blocks of rows on the BLAS kernel's row tile): a choice made by timing must never change a result.
"""
from __future__ import annotations

import collections
import statistics

SAMPLES = 5  # times kept each way; their median decides
WARM_UP = 3  # times each way before the first decision (alternating, split first)
EXPLORE_EVERY = 32  # calls between looks at the other way, at first and after a look changed the choice
MAX_EXPLORE_EVERY = 512
LOOK_CALLS = WARM_UP + 1  # calls a look at the other way lasts; its first is not counted
MAX_KEYS = 1024  # shapes remembered; all are forgotten when full (a steady program has a few)


class _Timings:
    __slots__ = ("countdown", "interval", "look_left", "look_splits", "skip_record", "split", "split_faster",
                 "split_faster_at_look", "whole")

    def __init__(self):
        self.split: collections.deque[float] = collections.deque(maxlen=SAMPLES)
        self.whole: collections.deque[float] = collections.deque(maxlen=SAMPLES)
        self.split_faster = True
        self.interval = self.countdown = EXPLORE_EVERY  # calls between looks; calls until the next one
        self.split_faster_at_look = None  # the choice when the last look began
        self.look_left = 0  # calls left in the current look at the other way
        self.look_splits = False  # which way the current look takes
        self.skip_record = False  # the next time recorded is a look's first: dropped


_timings: dict = {}


def choose(key, ways: int) -> int:
    """`ways` (the kernel splits) or 1 (it runs whole) for this call of the kernel shape `key`."""
    if ways <= 1:
        return 1
    timings = _timings.get(key)
    if timings is None:
        if len(_timings) >= MAX_KEYS:
            _timings.clear()
        timings = _timings[key] = _Timings()
    if timings.look_left:  # before the warm-up's test: the look refills the samples it cleared
        timings.look_left -= 1
        timings.countdown -= 1
        return ways if timings.look_splits else 1
    split, whole = len(timings.split), len(timings.whole)
    if split < WARM_UP or whole < WARM_UP:
        return ways if split <= whole else 1
    timings.countdown -= 1
    if timings.countdown <= 0:
        _begin_look(timings)
        timings.look_left -= 1
        return ways if timings.look_splits else 1
    return ways if timings.split_faster else 1


def _begin_look(timings: _Timings) -> None:
    """Start a look at the way not taken, from fresh samples of it; the previous look left the choice as it
    was: wait twice as long for the next one."""
    unchanged = timings.split_faster == timings.split_faster_at_look
    timings.interval = min(2 * timings.interval, MAX_EXPLORE_EVERY) if unchanged else EXPLORE_EVERY
    timings.countdown = timings.interval
    timings.split_faster_at_look = timings.split_faster
    timings.look_left, timings.look_splits, timings.skip_record = LOOK_CALLS, not timings.split_faster, True
    (timings.whole if timings.split_faster else timings.split).clear()


def record(key, ways: int, seconds: float) -> None:
    """How long a call of `key` took, split (`ways` > 1) or whole."""
    timings = _timings.get(key)
    if timings is None:
        return
    if timings.skip_record:
        timings.skip_record = False
        return
    (timings.split if ways > 1 else timings.whole).append(seconds)
    if len(timings.split) >= WARM_UP and len(timings.whole) >= WARM_UP:
        split_faster = statistics.median_high(timings.split) <= statistics.median_high(timings.whole)
        if split_faster != timings.split_faster:  # look at the way left soon: it may have been a burst
            timings.interval = EXPLORE_EVERY
            timings.countdown = min(timings.countdown, EXPLORE_EVERY)
        timings.split_faster = split_faster


def forget() -> None:
    """Drop every timing (the thread count changed: the old ones no longer say anything)."""
    _timings.clear()
