"""Tensor-carrying messages, encoded and decoded by hand around protobuf for speed.

A message's repeated Tensor field is written after the rest of the message, so large contents are
copied once into the outgoing buffer, and read back as zero-copy views of the incoming one. Each
content starts on an ALIGNMENT boundary of the message (a `padding` field before it takes up the
difference), so in a received bytes object (8-aligned) the views are aligned too, as numpy needs them
to hand them to BLAS; content that is not (from other writers) is decoded to an aligned copy. The
result is ordinary protobuf wire format (grpcurl and other languages read it as usual).

Callers name fields (`encode_tensor_message(response, "fetches", arrays)`); their numbers are read
from the generated descriptors, never typed here.
"""
from __future__ import annotations

import functools

import numpy as np
from google.protobuf import message as protobuf_message

from graphexec import dtypes
from graphexec.proto.v1 import graph_pb2 as pb
from graphexec.proto.v1 import service_pb2 as spb
from graphexec.rpc.tensors import (DecodeError, checked_array, dtype_enum, is_shell, little_endian, numpy_dtype,
                                   numpy_dtype_enum, tensors_from_protos)

# Below this size, a message is parsed by protobuf itself (faster than walking it in Python).
WALK_THRESHOLD = 32 << 10
# Tensors above this size travel in parts on the Run stream: protobuf messages stop at 2 GiB, and
# parts pipeline the copies on both sides (a 64 MiB round trip took half the time in 4 MiB parts
# than as one message on a 2-core machine, and 1 MiB parts were another ~13% faster than 4 MiB).
CHUNK_BYTES = 1 << 20
# Tensor contents start on this boundary of the message they are encoded into (numpy's largest element
# alignment; the message must be the outermost one, or start on such a boundary of it).
ALIGNMENT = 8
# Smaller contents are not padded: any reader copies them for less than the padding costs it to parse.
ALIGN_FROM_BYTES = 64

_VARINT, _FIXED64, _DELIMITED, _FIXED32 = 0, 1, 2, 5  # protobuf wire types
_TENSOR_FIELDS = pb.Tensor.DESCRIPTOR.fields_by_name
TENSOR_DTYPE = _TENSOR_FIELDS["dtype"].number
TENSOR_SHAPE = _TENSOR_FIELDS["shape"].number
TENSOR_CONTENT = _TENSOR_FIELDS["content"].number
TENSOR_PADDING = _TENSOR_FIELDS["padding"].number


@functools.cache
def field_number(message_class, name: str) -> int:
    """The number of field `name` of `message_class`, as the .proto declares it."""
    return message_class.DESCRIPTOR.fields_by_name[name].number


# -- writing ------------------------------------------------------------------------------------------
def varint(value: int) -> bytes:
    """A non-negative int as a protobuf varint."""
    if 0 <= value < 0x80:
        return _SMALL_VARINTS[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL_VARINTS = [bytes((i,)) for i in range(0x80)]
_LOW_BYTES = [bytes((i | 0x80,)) for i in range(0x80)]  # a varint's first byte when more follow


def _key(number: int, wire_type: int) -> bytes:
    return varint((number << 3) | wire_type)


_DTYPE_KEY = _key(TENSOR_DTYPE, _VARINT)
_SHAPE_KEY = _key(TENSOR_SHAPE, _DELIMITED)  # packed
_CONTENT_KEY = _key(TENSOR_CONTENT, _DELIMITED)
_PADDING_KEY = _key(TENSOR_PADDING, _DELIMITED)


def _dtype_and_shape(dtype_value: int, shape) -> bytearray:
    body = bytearray(_DTYPE_KEY) + varint(dtype_value)
    if shape:
        dims = b"".join(varint(d) for d in shape)
        body += _SHAPE_KEY + varint(len(dims)) + dims
    return body


def _element_head(number: int, body: bytes, nbytes: int) -> bytes:
    return _key(number, _DELIMITED) + varint(len(body) + nbytes) + body


@functools.lru_cache(maxsize=4096)
def _tensor_head(number: int, dtype: np.dtype, shape: tuple, nbytes: int, at: int) -> bytes:
    """Everything of a `Tensor` element but its content bytes, for an element written at offset `at`
    (modulo ALIGNMENT) of the message: padded so that the content after it starts on the boundary
    (cached: runs repeat their shapes and their offsets)."""
    fields = bytes(_dtype_and_shape(dtype_enum(dtypes.from_numpy(dtype)), shape))
    content_key = _CONTENT_KEY + varint(nbytes)
    if dtype == object or nbytes < ALIGN_FROM_BYTES:  # (string content is parsed, never viewed)
        return _element_head(number, fields + content_key, nbytes)
    # No padding when the content is aligned without it. Otherwise each filler byte adds one byte to the
    # head, except where the element's length varint grows a byte; over 2 * ALIGNMENT fillers that
    # happens at most once, so every remainder is reached.
    padded = (fields + _PADDING_KEY + varint(filler) + bytes(filler) for filler in range(2 * ALIGNMENT))
    heads = (_element_head(number, body + content_key, nbytes) for body in (fields, *padded))
    return next(head for head in heads if (at + len(head)) % ALIGNMENT == 0)


def _tensor_pieces(number: int, array, written: list) -> list:
    """Wire pieces of one `Tensor` element of repeated field `number`, to follow the pieces `written`
    (the message so far); the content is a view."""
    array = little_endian(array)
    if array.dtype == object:  # tf.string: length-prefixed content (dtypes.string_content)
        content = dtypes.string_content(array)
        return [_tensor_head(number, array.dtype, array.shape, len(content), 0), content]
    nbytes = array.nbytes
    # (the offset only matters to padded contents; contents are flat uint8 views: len is their size)
    at = sum(map(len, written)) % ALIGNMENT if nbytes >= ALIGN_FROM_BYTES else 0
    head = _tensor_head(number, array.dtype, array.shape, nbytes, at)
    if not nbytes:
        return [head]
    return [head, memoryview(array.reshape(-1).view(np.uint8))]


def _shell_pieces(number: int, dtype_value: int, shape) -> list:
    """A Tensor element with dtype and shape but no content (its content travels in parts)."""
    body = _dtype_and_shape(dtype_value, shape)
    return [_key(number, _DELIMITED) + varint(len(body)) + bytes(body)]


def tensor_parts(array) -> tuple[bytes, object]:
    """A serialized `Tensor` message in two parts: everything before the content, and the content (a view
    of the array when it can be), so a caller that can send buffers apart copies nothing."""
    array = little_endian(array)
    content = dtypes.string_content(array) if array.dtype == object else memoryview(array.reshape(-1).view(np.uint8))
    return _parts_head(array.dtype, array.shape, len(content)), content


@functools.lru_cache(maxsize=4096)
def _parts_head(dtype: np.dtype, shape: tuple, nbytes: int) -> bytes:
    """tensor_parts' head (cached: a training step's commit repeats its variables' shapes every step)."""
    return bytes(_dtype_and_shape(dtype_enum(dtypes.from_numpy(dtype)), shape) + _CONTENT_KEY + varint(nbytes))


def encode_tensor_message(message, field: str, arrays=(), *, shells=None, raw_field: str | None = None, raw=None,
                          message_class=None) -> bytes:
    """`message` (without its tensor field) followed by `arrays` as elements of its repeated Tensor
    field `field`, and optionally `raw` as its bytes field `raw_field`; one copy of each content.

    `message` is a message, or its serialized bytes with `message_class` naming its type.
    `shells` maps positions to (dtype enum, shape): those elements carry no content (sent in parts).
    Contents start on ALIGNMENT boundaries of the result: aligned where the result is written at such a
    boundary of the buffer the reader receives (as a whole message, or behind a head of 8 bytes).
    """
    return b"".join(tensor_message_pieces(message, field, arrays, shells=shells, raw_field=raw_field, raw=raw,
                                          message_class=message_class))


def tensor_message_pieces(message, field: str, arrays=(), *, shells=None, raw_field: str | None = None, raw=None,
                          message_class=None) -> list:
    """encode_tensor_message's message as the buffers it joins: contents are views of the arrays, so a
    caller that writes buffers apart (socket.sendmsg) copies nothing."""
    cls = message_class or type(message)
    number = field_number(cls, field)
    pieces = [message if isinstance(message, (bytes, bytearray)) else message.SerializeToString()]
    for position, array in enumerate(arrays):
        if shells and position in shells:
            pieces += _shell_pieces(number, *shells[position])
        else:
            pieces += _tensor_pieces(number, array, pieces)
    if raw is not None:
        pieces += [_key(field_number(cls, raw_field), _DELIMITED) + varint(len(raw)), raw]
    return pieces


class RepeatEncoder:
    """tensor_message_pieces for messages made of fixed bytes (`head`: serialized fields, ending with the
    key of a varint field), that varint's value, then elements of repeated Tensor field `field`. A session's
    runs of one callable repeat their feeds' dtypes and shapes, so each element's head (dtype, shape,
    padding, content length) is made once per layout, and a run's pieces are the head, the varint and
    views of the contents. Safe to share between threads (the layout is replaced whole)."""

    def __init__(self, cls, field: str, head: bytes):
        self._cls, self._field, self._head = cls, field, head
        self._layout = None  # (length of head and varint, [(dtype, shape, element head)]) of the last arrays
        self._high = (-1, b"")  # (value >> 7, its varint) of the last value: consecutive ones share it

    def pieces(self, value: int, arrays) -> list:
        if value < 0x80:
            start = self._head + varint(value)
        else:  # a varint is its low 7 bits (with the "more" bit), then the varint of the rest
            high, tail = self._high
            if value >> 7 != high:
                high, tail = self._high = value >> 7, varint(value >> 7)
            start = self._head + _LOW_BYTES[value & 0x7F] + tail
        layout = self._layout
        if layout is not None and layout[0] == len(start) and len(layout[1]) == len(arrays):
            pieces = [start]
            for array, (dtype, shape, head) in zip(arrays, layout[1]):
                if array.dtype != dtype or array.shape != shape or not array.flags.c_contiguous:
                    break
                pieces.append(head)
                if array.nbytes:
                    pieces.append(memoryview(array).cast("B"))
            else:
                return pieces
        pieces = tensor_message_pieces(start, self._field, arrays, message_class=self._cls)
        self._layout = self._learn(len(start), arrays, pieces)
        return pieces

    @staticmethod
    def _learn(at: int, arrays, pieces: list):
        """The layout of `arrays` encoded as `pieces` after `at` bytes, or None where the contents are not
        the arrays' own bytes (strings, another byte order, not contiguous)."""
        elements, index = [], 1
        for array in arrays:
            if not isinstance(array, np.ndarray) or array.dtype == object or little_endian(array) is not array:
                return None
            elements.append((array.dtype, array.shape, pieces[index]))
            index += 2 if array.nbytes else 1
        return at, elements


def varint_field(message_class, name: str, value: int) -> bytes:
    """Varint field `name` of `message_class`, to append to a serialized message (protobuf merges it in)."""
    return _key(field_number(message_class, name), _VARINT) + varint(value)


def message_field(message_class, name: str, data: bytes) -> bytes:
    """An element of repeated message field `name` of `message_class`, holding serialized `data`."""
    return _key(field_number(message_class, name), _DELIMITED) + varint(len(data)) + data


def parted_frames(message, field: str, tensors, parted: list):
    """The frames of a Run stream message whose tensors above CHUNK_BYTES travel ahead as parts.

    Yields each big tensor's parts (messages of `message`'s type with only `part` and `part_data`),
    then `message` itself with content-less shells in their place; `parted` (the message's list of
    parted indices) is filled in as it goes. A message with no big tensor is one frame.
    """
    cls = type(message)
    shells = {}
    for index, value in enumerate(tensors):
        if getattr(value, "nbytes", 0) <= CHUNK_BYTES or getattr(value, "dtype", None) == object:
            continue  # small, or tf.string (its content is not a flat array: it travels whole)
        value = little_endian(value)
        dtype_value = numpy_dtype_enum(value.dtype)
        flat = value.reshape(-1).view(np.uint8)
        for offset in range(0, flat.size, CHUNK_BYTES):
            part = cls(part=spb.TensorPart(index=index, offset=offset, dtype=dtype_value, shape=value.shape))
            yield encode_tensor_message(part, field, raw_field="part_data",
                                        raw=memoryview(flat[offset:offset + CHUNK_BYTES]))
        shells[index] = (dtype_value, value.shape)
        parted.append(index)
    yield encode_tensor_message(message, field, tensors, shells=shells)


# -- reading ------------------------------------------------------------------------------------------
def _read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise DecodeError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _skip(data: bytes, pos: int, end: int, wire_type: int) -> int:
    if wire_type == _VARINT:
        return _read_varint(data, pos, end)[1]
    if wire_type == _FIXED64:
        pos += 8
    elif wire_type == _DELIMITED:
        length, pos = _read_varint(data, pos, end)
        pos += length
    elif wire_type == _FIXED32:
        pos += 4
    else:
        raise DecodeError(f"unsupported wire type {wire_type}")
    if pos > end:
        raise DecodeError("field runs past the end of the message")
    return pos


def _signed(dim: int) -> int:
    return dim - (1 << 64) if dim >= 1 << 63 else dim


def _walk_tensor(data: bytes, pos: int, end: int):
    """(dtype enum, shape, content offset, content length) of a Tensor encoded in data[pos:end]."""
    dtype_value, shape, offset, length = 0, [], pos, 0
    while pos < end:
        key, pos = _read_varint(data, pos, end)
        number, wire_type = key >> 3, key & 7
        if number == TENSOR_DTYPE and wire_type == _VARINT:
            dtype_value, pos = _read_varint(data, pos, end)
        elif number == TENSOR_SHAPE and wire_type == _DELIMITED:
            size, pos = _read_varint(data, pos, end)
            stop = pos + size
            if stop > end:
                raise DecodeError("tensor shape runs past the end of the message")
            while pos < stop:
                dim, pos = _read_varint(data, pos, stop)
                shape.append(_signed(dim))
        elif number == TENSOR_SHAPE and wire_type == _VARINT:
            dim, pos = _read_varint(data, pos, end)
            shape.append(_signed(dim))
        elif number == TENSOR_CONTENT and wire_type == _DELIMITED:
            length, pos = _read_varint(data, pos, end)
            offset = pos
            pos += length
            if pos > end:
                raise DecodeError("tensor content runs past the end of the message")
        else:
            pos = _skip(data, pos, end, wire_type)
    return dtype_value, tuple(shape), offset, length


def decode_tensor_message(cls, data: bytes, field: str, raw_field: str | None = None):
    """(message without the tensor field, [arrays or (dtype, shape) for content-less elements], raw).

    Arrays are read-only views of `data`. Small messages are parsed by protobuf; large ones are
    walked so that contents are never copied.
    """
    try:
        if len(data) < WALK_THRESHOLD:
            message = cls.FromString(data)
            tensors = tensors_from_protos(getattr(message, field))
            message.ClearField(field)
            raw = None
            if raw_field:
                raw = getattr(message, raw_field)
                message.ClearField(raw_field)
            return message, tensors, raw
        return _walk_message(cls, data, field_number(cls, field), field_number(cls, raw_field) if raw_field else 0)
    except (protobuf_message.Error, ValueError, OverflowError) as exc:  # the bytes are not this message
        raise DecodeError(f"malformed {cls.DESCRIPTOR.name}: {exc}") from None


def leading_varint(data: bytes, number: int) -> int | None:
    """The value of varint field `number` when it comes before `data` (a message's first bytes) ends,
    else None (then only the whole message says)."""
    pos, end = 0, len(data)
    try:
        while pos < end:
            key, pos = _read_varint(data, pos, end)
            if key >> 3 == number and key & 7 == _VARINT:
                return _read_varint(data, pos, end)[0]
            pos = _skip(data, pos, end, key & 7)
    except DecodeError:  # the field being read runs past the head
        pass
    return None


def parse(cls, data: bytes):
    """`cls.FromString(data)`, with any failure a DecodeError (INVALID_ARGUMENT)."""
    try:
        return cls.FromString(data)
    except protobuf_message.Error as exc:  # arbitrary bytes
        raise DecodeError(f"malformed {cls.DESCRIPTOR.name}: {exc}") from None


def _walk_message(cls, data: bytes, number: int, raw_number: int):
    view = memoryview(data)
    pos, end = 0, len(data)
    rest, tensors, raw = [], [], None
    while pos < end:
        start = pos
        key, pos = _read_varint(data, pos, end)
        field, wire_type = key >> 3, key & 7
        if field in (number, raw_number) and wire_type == _DELIMITED:
            length, pos = _read_varint(data, pos, end)
            stop = pos + length
            if stop > end:
                raise DecodeError("field runs past the end of the message")
            if field == number:
                dtype_value, shape, offset, size = _walk_tensor(data, pos, stop)
                if is_shell(dtype_value, shape, size):
                    tensors.append((dtype_value, shape))
                else:
                    tensors.append(checked_array(data, dtype_value, shape, offset, size))
            else:
                raw = view[pos:stop]
            pos = stop
        else:
            pos = _skip(data, pos, end, wire_type)
            rest.append(view[start:pos])
    return cls.FromString(b"".join(rest)), tensors, raw


class RepeatDecoder:
    """decode_tensor_message for messages that repeat one layout (a session's runs of one callable, and
    their answers): a message whose bytes equal the last one decoded everywhere but in its tensors'
    contents (and in the value of varint field `varying`, at the same length) is read from that template:
    the message decoded before and views of the new contents, without parsing (a W8 request: 2.7 against
    5.0 us in a loop, more apart in a busy server; W3's 406 KB one, walked: 2.9 against 10.8). Any other
    message is decoded in full and becomes the template. `data` is bytes or a memoryview of bytes.

    `decode(data)` returns (message, arrays, value of `varying` or None). The message may be the one
    returned before: callers read it, never change it, and take `varying` from the third item only.
    Safe to share between threads (the template is replaced whole)."""

    def __init__(self, cls, field: str, varying: str | None = None):
        self._cls, self._field, self._varying = cls, field, varying
        self._number = field_number(cls, field)
        self._varying_number = field_number(cls, varying) if varying else 0
        # (size, [(start, bytes that must be there)], varying (start, stop) or None,
        #  [(dtype enum, shape, offset, length)], message) of the last message decoded in full
        self._template = None

    def decode(self, data: bytes) -> tuple:
        template = self._template
        if template is not None and len(data) == template[0]:
            _, fixed, span, contents, message = template
            for start, piece in fixed:
                if not (data.startswith(piece, start) if type(data) is bytes
                        else data[start:start + len(piece)] == piece):
                    break
            else:
                value = None
                if span is not None:
                    try:
                        value, end = _read_varint(data, span[0], span[1])
                    except DecodeError:
                        end = -1
                if span is None or end == span[1]:
                    return message, [checked_array(data, *content) for content in contents], value
        message, arrays, _ = decode_tensor_message(self._cls, data, self._field)
        self._template = self._learn(data, message)
        return message, arrays, getattr(message, self._varying) if self._varying else None

    def _learn(self, data: bytes, message):
        """The template of `data` (decoded as `message`), or None where it cannot be one (a tensor of
        strings, a content-less shell, a varying field that is not one varint)."""
        fixed, contents, span = [], [], None
        pos, end, kept = 0, len(data), 0  # kept: where the bytes not yet in `fixed` start
        try:
            while pos < end:
                key, pos = _read_varint(data, pos, end)
                number, wire_type = key >> 3, key & 7
                if number == self._number and wire_type == _DELIMITED:
                    length, pos = _read_varint(data, pos, end)
                    dtype_value, shape, offset, size = _walk_tensor(data, pos, pos + length)
                    if is_shell(dtype_value, shape, size) or numpy_dtype(dtype_value) == object:
                        return None
                    fixed.append((kept, bytes(data[kept:offset])))
                    contents.append((dtype_value, shape, offset, size))
                    kept = offset + size
                    pos += length
                elif number == self._varying_number and wire_type == _VARINT:
                    if span is not None:
                        return None
                    fixed.append((kept, bytes(data[kept:pos])))
                    stop = _read_varint(data, pos, end)[1]
                    span, kept, pos = (pos, stop), stop, stop
                else:
                    pos = _skip(data, pos, end, wire_type)
        except (DecodeError, ValueError):
            return None
        fixed.append((kept, bytes(data[kept:end])))
        return end, [(start, piece) for start, piece in fixed if piece], span, contents, message
