"""PLAN and ANSWER frames (graphexec/rpc/link_format.py): what is written reads back the same, contents
arrive as aligned views of the frame, and a malformed frame is a DecodeError naming what is wrong."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from graphexec.rpc import link_format
from graphexec.rpc.tensors import DecodeError, numpy_dtype_enum
from graphexec.runtime.executor import NodeStats

VALUES = [np.arange(12, dtype=np.float32).reshape(3, 4), np.array([1, 2, 3], dtype=np.int64),
          np.array([b"ab", b"", b"\xff"], dtype=object), np.float64(2.5), np.zeros((0, 5), np.int32),
          np.arange(5, dtype=">f4"), np.arange(20, dtype=np.float64)[::2], np.array(True)]


def _plan(feeds=VALUES, **fields) -> bytes:
    call = dict(timeout_s=1.5, container="tenant/c", plan_key="k" * 64, session="s" * 32, device_type="CPU",
                host_steps=(0, 7), request_id=2 ** 63 + 5, trace=True)
    call.update(fields)
    return b"".join(link_format.plan_pieces(*call.values(), feeds))


def _same(got: list, expected: list) -> None:
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        b = np.asarray(b)
        assert a.shape == b.shape and a.dtype == b.dtype.newbyteorder("=")
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("container", ["", "c", "ccc", "ccccccc", "émoji ✓"])
def test_a_plan_reads_back_with_its_feeds_in_place(container):
    body = _plan(container=container)
    left, read_container, key, session, device, steps, request_id, trace, feeds = link_format.read_plan(body)
    assert (left, read_container, key, session, device, steps, request_id, trace) == (
        1.5, container, "k" * 64, "s" * 32, "CPU", (0, 7), 2 ** 63 + 5, True)
    _same(feeds, VALUES)
    for feed in feeds:
        if feed.dtype != object and feed.nbytes:
            assert np.shares_memory(feed, np.frombuffer(body, np.uint8)) and feed.ctypes.data % 8 == 0
            assert not feed.flags.writeable
    assert link_format.read_plan(_plan(timeout_s=None, trace=False))[0::7][:2] == (None, False)


def test_a_deadline_already_passed_travels_as_zero_seconds_left_not_as_no_deadline():
    # run_serialized's lock wait can leave a call a few ms past its deadline: the worker must see 0
    # seconds left (DEADLINE_EXCEEDED), where a negative would read back as "no deadline".
    assert link_format.read_plan(_plan(timeout_s=-0.25))[0] == 0.0


def test_an_answer_reads_back_with_printed_text_and_node_stats():
    stats = [NodeStats("add", "Add", 5, 3, ("add", "mul"), "/cpu:0", "w1")]
    body = b"".join(link_format.answer_pieces(VALUES, stats, True, "w1@host:1", ["hello\n", "ünïcode"]))
    fetches, read_stats, deduplicated, worker, printed = link_format.read_answer(body)
    _same(fetches, VALUES)
    assert (read_stats, deduplicated, worker, printed) == (stats, True, "w1@host:1", ["hello\n", "ünïcode"])
    assert link_format.read_answer(b"".join(link_format.answer_pieces([], [], False, "", []))) == ([], [], False,
                                                                                                    "", [])


def test_a_run_that_does_not_fit_a_plan_head_is_left_to_a_run_frame():
    assert link_format.plan_pieces(None, "c", "k", "s", "CPU", (), 0, False, [np.zeros(1)] * 70_000) is None
    assert link_format.plan_pieces(None, "c" * 70_000, "k", "s", "CPU", (), 0, False, []) is None


FLOAT32 = numpy_dtype_enum(np.float32)


def _with_feed_head(dtype: int, rank: int, nbytes: int, tail: bytes = b"") -> bytes:
    body = bytearray(_plan(feeds=[]))
    body[18:20] = struct.pack("<H", 1)  # one feed
    return bytes(body) + link_format.TENSOR_HEAD.pack(dtype, rank, nbytes) + tail


@pytest.mark.parametrize("body, message", [
    (b"", "shorter than its head"),
    (_plan()[:40], "runs past the end"),
    (_plan()[:-8], "runs past the end"),
    (_plan() + bytes(8), "bytes follow the last feed"),
    (_plan(container="ab").replace(b"abkkk", b"\xff\xfekkk", 1), "container is not UTF-8"),
    (_with_feed_head(FLOAT32, 200, 0), "bad rank"),
    (_with_feed_head(FLOAT32, 1, 1 << 40, struct.pack("<q", 3)), "runs past the end"),
    (_with_feed_head(FLOAT32, 1, 8, struct.pack("<q", 3) + bytes(8)), "needs 12 bytes of content, got 8"),
    (_with_feed_head(250, 0, 0), "unknown or unset tensor dtype 250"),
    (_with_feed_head(FLOAT32, 1, 0, struct.pack("<q", -3)), "negative dimension"),
], ids=["empty", "cut in the texts", "cut in a content", "trailing bytes", "not UTF-8", "rank", "huge content",
        "content size", "dtype", "negative dimension"])
def test_a_malformed_plan_is_a_decode_error_that_says_what_is_wrong(body, message):
    with pytest.raises(DecodeError, match=message):
        link_format.read_plan(body)


@pytest.mark.parametrize("cut", [0, 10, 30, 40])
def test_a_truncated_answer_is_a_decode_error(cut):
    body = b"".join(link_format.answer_pieces(VALUES[:2], [], False, "worker", ["printed"]))
    with pytest.raises(DecodeError):
        link_format.read_answer(body[:cut])
