"""graphexec.runtime.split_choice: a kernel shape splits over the intra-op threads only where that measured
faster, keeps checking the other way now and then, and never gets other bits from the choice."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from graphexec.ops import interruptible
from graphexec.runtime import intra_op, split_choice
from graphexec.runtime.context import ExecContext


def _choices(key, calls, split_s, whole_s):
    """The ways chosen over `calls` calls when a split takes `split_s` and the whole `whole_s`."""
    chosen = []
    for _ in range(calls):
        ways = split_choice.choose(key, 2)
        chosen.append(ways)
        split_choice.record(key, ways, split_s if ways > 1 else whole_s)
    return chosen


def _looks(chosen, other):
    """(start, length) of each run of `other` in `chosen`."""
    runs, start = [], None
    for index, ways in enumerate([*chosen, None]):
        if ways == other and start is None:
            start = index
        elif ways != other and start is not None:
            runs.append((start, index - start))
            start = None
    return runs


def test_warm_up_alternates_then_the_faster_way_sticks_with_looks_ever_further_apart():
    split_choice.forget()
    warm = 2 * split_choice.WARM_UP
    calls = 2000
    for key, split_s, whole_s, other in (("slow split", 2e-3, 1e-3, 2), ("fast split", 1e-3, 2e-3, 1)):
        chosen = _choices(key, calls, split_s=split_s, whole_s=whole_s)
        assert chosen[:warm] == [2, 1] * split_choice.WARM_UP  # split first
        looks = _looks(chosen[warm:], other)
        assert {length for _, length in looks} == {split_choice.LOOK_CALLS}  # each look: LOOK_CALLS calls in a row
        gaps = [b - a for (a, _), (b, _) in zip(looks, looks[1:])]
        assert gaps[:2] == [split_choice.EXPLORE_EVERY, 2 * split_choice.EXPLORE_EVERY]  # each look left it as it was
        assert gaps == sorted(gaps)
        assert gaps[-1] == split_choice.MAX_EXPLORE_EVERY  # and no further apart than that
        assert len(looks) < 2 * calls / split_choice.MAX_EXPLORE_EVERY + 5  # against calls / 32 unchanged


def test_a_change_of_speed_is_noticed_through_the_looks():
    split_choice.forget()
    _choices("changes", 100, split_s=1e-3, whole_s=2e-3)
    assert split_choice.choose("changes", 2) == 2
    # A neighbour arrives: splits now take 5 ms. The medians of the last SAMPLES looks decide.
    chosen = _choices("changes", split_choice.EXPLORE_EVERY * split_choice.SAMPLES, split_s=5e-3, whole_s=2e-3)
    assert chosen[-split_choice.EXPLORE_EVERY // 2:].count(2) <= split_choice.LOOK_CALLS


def test_a_burst_of_slow_splits_turns_them_whole_for_a_look_interval_at_most():
    """A vCPU taken away for a few ms makes a few splits slow in a row: the choice turns to whole, looks at
    splits again within EXPLORE_EVERY calls, and that look's fresh samples turn it back (before: the
    burst's samples outvoted the looks' for ~2 * MAX_EXPLORE_EVERY calls)."""
    split_choice.forget()
    _choices("burst", 3000, split_s=1e-3, whole_s=2e-3)  # looks far apart by now
    assert split_choice._timings["burst"].interval == split_choice.MAX_EXPLORE_EVERY
    burst = _choices("burst", split_choice.SAMPLES, split_s=9e-3, whole_s=2e-3)
    assert 1 in burst  # it turned whole
    after = _choices("burst", 4 * split_choice.EXPLORE_EVERY, split_s=1e-3, whole_s=2e-3)
    assert after.count(1) <= split_choice.EXPLORE_EVERY + 2 * split_choice.LOOK_CALLS  # and one look at whole
    assert after[-split_choice.EXPLORE_EVERY:].count(2) >= split_choice.EXPLORE_EVERY - split_choice.LOOK_CALLS


def test_a_look_does_not_count_its_first_call_which_wakes_the_helpers():
    """A split that is slow only when the helpers slept since the last split (its first call after running
    whole) is found faster: a look's first call is not counted."""
    split_choice.forget()
    chosen, previous = [], 2
    for _ in range(40 * split_choice.EXPLORE_EVERY):
        ways = split_choice.choose("cold helpers", 2)
        seconds = (1e-3 if previous > 1 else 10e-3) if ways > 1 else 2e-3
        split_choice.record("cold helpers", ways, seconds)
        chosen.append(previous := ways)
    assert chosen[-split_choice.EXPLORE_EVERY:].count(2) >= split_choice.EXPLORE_EVERY - split_choice.LOOK_CALLS


def test_one_thread_never_splits_and_a_new_thread_count_forgets(two_threads):
    assert split_choice.choose("one", 1) == 1
    _choices("kept", 10, split_s=2e-3, whole_s=1e-3)
    assert split_choice.choose("kept", 2) == 1
    intra_op.set_threads(2)  # unchanged count: still a new start
    assert split_choice.choose("kept", 2) == 2


def test_run_timed_keeps_parts_on_the_caller_where_helpers_are_slow(two_threads):
    split_choice.forget()
    caller = threading.current_thread()

    def body(part):  # a helper's parts take 30x the caller's, as with a helper that waits for its core
        time.sleep(0.001 if threading.current_thread() is caller else 0.03)

    ran_on = [intra_op.run_timed("slow helper", 8, body, 2) for _ in range(12)]
    assert ran_on[:2] == [2, 1]
    assert ran_on[-3:] == [1, 1, 1]


def test_run_timed_splits_where_helpers_halve_the_time(two_threads):
    split_choice.forget()
    ran_on = [intra_op.run_timed("even parts", 8, lambda part: time.sleep(0.004), 2) for _ in range(12)]
    assert ran_on[-3:] == [2, 2, 2]


@pytest.mark.parametrize("m,k,n", [(128, 784, 256), (784, 128, 256), (100, 50, 300)])
def test_a_product_has_the_same_bits_split_or_whole(two_threads, monkeypatch, m, k, n):
    """Products with at least ROWS_TO_CUT rows are cut by rows however wide they are (cut by columns,
    128 x 784 x 256 gave 852 elements other last bits on Haswell's sgemm), so timing may choose either way."""
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(m, k)).astype(np.float32), rng.normal(size=(k, n)).astype(np.float32)
    want = a @ b
    ctx = ExecContext(np)
    asked = []
    for ways in (2, 1):
        monkeypatch.setattr(split_choice, "choose", lambda key, most, ways=ways: asked.append(key) or ways)
        np.testing.assert_array_equal(interruptible.matmul(ctx, a, b), want)
    assert asked == [(m, k, n, "f", "f", None)] * 2  # the choice was asked, both ways (no epilogue)
