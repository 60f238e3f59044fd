"""PLAN and ANSWER: a run on the server -> worker direct link, laid out by hand instead of protobuf.

Why: on that hop a W1 run (a + b on float32[3]) cost the two processes ~15 us of Python to encode
and parse RunPlanRequest/RunPlanResponse through protobuf objects, about a tenth of the hop; these
layouts are read with a few struct calls, and the part that repeats run after run (container, plan
key, session, device, host steps; the worker's name) is laid out once and cached. A worker announces
them with `direct_version: 2` in its registration; servers send RUN (protobuf) to workers without it.

All integers little-endian. A PLAN body:
  head (PLAN_HEAD): seconds left (f64, negative: none), request id (u64), flags (u8, 1: trace), a zero
    byte, feed count (u16), host step count (u32), container, plan key, session handle and device
    type lengths (u16 each)
  those four strings (UTF-8), then the host step indices (u32 each), zero-padded to 8 bytes
  each feed as a tensor (below)
An ANSWER body:
  head (ANSWER_HEAD): flags (u8, 1: deduplicated), 3 zero bytes, fetch count, worker name length,
    printed texts count and node stats length (u32 each), 4 zero bytes; the stats are a serialized
    RunPlanResponse holding only node_stats (they travel only when a run is traced)
  the worker name (UTF-8), each printed text (u32 length, UTF-8), the node stats, zero-padded to 8
  each fetch as a tensor
A tensor: dtype (u8, graphexec.v1.DataType), rank (u8), 6 zero bytes, content length (u64), the
dimensions (i64 each), the content (raw little-endian bytes; tf.string: dtypes.string_content),
zero-padded to 8. Every content so starts 8-aligned in the body, and arrives as a zero-copy view.
"""
from __future__ import annotations

import functools
import struct

import numpy as np

from graphexec import dtypes
from graphexec.proto.v1 import worker_pb2 as wpb
from graphexec.rpc import convert
from graphexec.rpc.tensors import DecodeError, checked_array, little_endian, numpy_dtype_enum

VERSION = 2  # the direct_version a worker that reads PLAN frames announces (1: RUN frames only)
PLAN_HEAD = struct.Struct("<dQBxHIHHHH")  # 32 bytes
ANSWER_HEAD = struct.Struct("<B3xIIII4x")  # 24 bytes: what follows starts 8-aligned
MAX_FEEDS, MAX_TEXT = 0xFFFF, 0xFFFF  # a run past these (never seen) travels as a RUN frame
TENSOR_HEAD = struct.Struct("<BB6xQ")
MAX_RANK = 64
_PADDING = bytes(8)
_TRACE, _DEDUPLICATED = 1, 1


def _padded(data: bytes) -> bytes:
    return data + _PADDING[:-len(data) % 8]


# -- writing ------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1024)
def _call_head(container: str, plan_key: str, session: str, device_type: str, host_steps: tuple) -> tuple:
    """(the strings and host steps laid out, their lengths): the same for every run of a callable."""
    texts = [s.encode() for s in (container, plan_key, session, device_type)]
    tail = _padded(b"".join(texts) + struct.pack(f"<{len(host_steps)}I", *host_steps))
    return tail, tuple(map(len, texts))


@functools.lru_cache(maxsize=4096)
def _tensor_head(dtype: np.dtype, shape: tuple, nbytes: int) -> bytes:
    return TENSOR_HEAD.pack(numpy_dtype_enum(dtype), len(shape), nbytes) + struct.pack(f"<{len(shape)}q", *shape)


def _tensor_pieces(value, out: list) -> None:
    """Append one tensor's head and content (a view of the array) and its padding to `out`."""
    array = little_endian(value)
    if array.dtype == object:  # tf.string: length-prefixed content, copied
        content = dtypes.string_content(array)
    else:
        content = memoryview(array.reshape(-1).view(np.uint8))
    nbytes = len(content)
    out.append(_tensor_head(array.dtype, array.shape, nbytes))
    if nbytes:
        out.append(content)
        if nbytes % 8:
            out.append(_PADDING[:-nbytes % 8])


def plan_pieces(timeout_s: float | None, container: str, plan_key: str, session: str, device_type: str,
                host_steps: tuple, request_id: int, trace: bool, feeds) -> list | None:
    """A PLAN body as buffers to write in order (feed contents are views of the feeds); None for a run
    that does not fit its head (more than MAX_FEEDS feeds, a name above MAX_TEXT bytes)."""
    tail, lengths = _call_head(container, plan_key, session, device_type, tuple(host_steps))
    if len(feeds) > MAX_FEEDS or max(lengths) > MAX_TEXT:
        return None
    # A deadline already passed is 0 seconds left (DEADLINE_EXCEEDED there), never a negative, which says none.
    pieces = [PLAN_HEAD.pack(-1.0 if timeout_s is None else max(timeout_s, 0.0), request_id, _TRACE if trace else 0,
                             len(feeds), len(host_steps), *lengths), tail]
    for value in feeds:
        _tensor_pieces(value, pieces)
    return pieces


@functools.lru_cache(maxsize=64)
def _worker_name(name: str) -> bytes:
    return name.encode()


def answer_pieces(fetches, stats, deduplicated: bool, worker: str, printed) -> list:
    """An ANSWER body as buffers to write in order (fetch contents are views of the fetches)."""
    name = _worker_name(worker)
    texts = [t.encode() for t in printed]
    traced = b""
    if stats:
        message = wpb.RunPlanResponse()
        convert.stats_to_proto(stats, message.node_stats)
        traced = message.SerializeToString()
    head = ANSWER_HEAD.pack(_DEDUPLICATED if deduplicated else 0, len(fetches), len(name), len(texts), len(traced))
    if texts or traced:
        middle = b"".join((name, *(struct.pack("<I", len(t)) + t for t in texts), traced))
    else:
        middle = name
    pieces = [head, _padded(middle)]
    for value in fetches:
        _tensor_pieces(value, pieces)
    return pieces


# -- reading ------------------------------------------------------------------------------------------
_DIMS = [struct.Struct(f"<{rank}q") for rank in range(MAX_RANK + 1)]
_CALLS: dict[bytes, tuple] = {}  # a PLAN's call bytes (counts, lengths, texts, host steps) -> what they say
MAX_CALLS = 4096


def _text(body, start: int, size: int, what: str) -> str:
    end = start + size
    if end > len(body):
        raise DecodeError(f"{what} runs past the end of the frame")
    try:
        return str(body[start:end], "utf-8")
    except UnicodeDecodeError:
        raise DecodeError(f"{what} is not UTF-8") from None


def _call(body, n_steps: int, lengths: tuple) -> tuple:
    """(container, plan key, session handle, device type, host steps) of a PLAN body."""
    pos, texts = PLAN_HEAD.size, []
    for size, what in zip(lengths, ("container", "plan key", "session handle", "device type")):
        texts.append(_text(body, pos, size, what))
        pos += size
    if pos + 4 * n_steps > len(body):
        raise DecodeError("host steps run past the end of the frame")
    return (*texts, struct.unpack_from(f"<{n_steps}I", body, pos))


def _tensors(body, pos: int, count: int, what: str) -> list:
    """`count` tensors laid out from `pos` to the end of `body`, as read-only views of it."""
    values, end = [], len(body)
    for _ in range(count):
        if pos + TENSOR_HEAD.size > end:
            raise DecodeError(f"{what} {len(values)} runs past the end of the frame")
        dtype_value, rank, nbytes = TENSOR_HEAD.unpack_from(body, pos)
        pos += TENSOR_HEAD.size
        if rank > MAX_RANK or pos + 8 * rank > end:
            raise DecodeError(f"{what} {len(values)} has a bad rank ({rank})")
        shape = _DIMS[rank].unpack_from(body, pos)
        pos += 8 * rank
        if pos + nbytes > end:
            raise DecodeError(f"{what} {len(values)} runs past the end of the frame")
        values.append(checked_array(body, dtype_value, shape, pos, nbytes))
        pos += nbytes + (-nbytes % 8)
    if pos < end:
        raise DecodeError(f"{end - pos} bytes follow the last {what}")
    return values


def read_plan(body: bytes) -> tuple:
    """(seconds left or None, container, plan key, session handle, device type, host steps, request id,
    trace, feeds) of a PLAN body; feeds view `body`. DecodeError (INVALID_ARGUMENT) when it is malformed."""
    if len(body) < PLAN_HEAD.size:
        raise DecodeError(f"a PLAN frame of {len(body)} bytes is shorter than its head")
    left, request_id, flags, n_feeds, n_steps, *lengths = PLAN_HEAD.unpack_from(body)
    end = PLAN_HEAD.size + sum(lengths) + 4 * n_steps
    # A callable's runs repeat these bytes: read once, then looked up (the key holds the counts and
    # lengths, so equal keys say the same).
    key = bytes(body[20:end])
    call = _CALLS.get(key)
    if call is None:
        call = _call(body, n_steps, lengths)
        if len(_CALLS) >= MAX_CALLS:
            _CALLS.clear()
        _CALLS[key] = call
    feeds = _tensors(body, end + (-end % 8), n_feeds, "feed")
    return (None if left < 0 else left, *call, request_id, bool(flags & _TRACE), feeds)


def read_answer(body: bytes) -> tuple:
    """(fetches, node stats, deduplicated, worker, printed texts) of an ANSWER body; fetches view `body`."""
    if len(body) < ANSWER_HEAD.size:
        raise DecodeError(f"an ANSWER frame of {len(body)} bytes is shorter than its head")
    flags, n_fetches, name_size, n_printed, stats_size = ANSWER_HEAD.unpack_from(body)
    pos = ANSWER_HEAD.size
    worker = _text(body, pos, name_size, "worker name")
    pos += name_size
    printed = []
    for _ in range(n_printed):
        if pos + 4 > len(body):
            raise DecodeError("printed text runs past the end of the frame")
        size = struct.unpack_from("<I", body, pos)[0]
        printed.append(_text(body, pos + 4, size, "printed text"))
        pos += 4 + size
    stats = []
    if stats_size:
        if pos + stats_size > len(body):
            raise DecodeError("node stats run past the end of the frame")
        stats = convert.run_plan_reply(bytes(body[pos:pos + stats_size]))[1]
        pos += stats_size
    pos += -pos % 8
    return _tensors(body, pos, n_fetches, "fetch"), stats, bool(flags & _DEDUPLICATED), worker, printed
