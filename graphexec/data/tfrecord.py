"""The TFRecord file format: each record is its length (uint64 little-endian), the masked CRC-32C of the
length, the data, and the masked CRC-32C of the data. Files written by TensorFlow read here, and the
other way round. CRC-32C comes from the `crc32c` package."""
from __future__ import annotations

import importlib
import struct
import sys

from graphexec import errors

_MASK_DELTA = 0xA282EAD8


def __getattr__(name: str):
    """`crc32c` (the function) loads with the first record read or written (PEP 562), not with graphexec:
    the package reads its version from its installed metadata when imported, which costs several ms."""
    if name != "crc32c":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = importlib.import_module("crc32c").crc32c
    return value


def masked_crc(data) -> int:
    crc = sys.modules[__name__].crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def read_records(path: str):
    """The records of one file, in order; a damaged record is DataLossError naming the file and offset."""
    with open(path, "rb") as f:
        offset = 0
        while True:
            header = f.read(12)
            if not header:
                return
            if len(header) < 12:
                raise errors.DataLossError(None, None, f"truncated record at {offset} in {path}")
            length, length_crc = struct.unpack("<QI", header)
            if masked_crc(header[:8]) != length_crc:
                raise errors.DataLossError(None, None, f"corrupted record at {offset} in {path}: bad length checksum")
            data = f.read(length)
            footer = f.read(4)
            if len(data) < length or len(footer) < 4:
                raise errors.DataLossError(None, None, f"truncated record at {offset} in {path}")
            if masked_crc(data) != struct.unpack("<I", footer)[0]:
                raise errors.DataLossError(None, None, f"corrupted record at {offset} in {path}: bad data checksum")
            yield data
            offset += 16 + length


class TFRecordWriter:
    """tf.io.TFRecordWriter / tf.python_io.TFRecordWriter: `write(record_bytes)`; a context manager."""

    def __init__(self, path, options=None):
        if options not in (None, "", 0):
            raise NotImplementedError("TFRecordWriter: compressed TFRecord files are not supported")
        self._file = open(path, "wb")  # noqa: SIM115 - open until close(), as TF's writer

    def write(self, record) -> None:
        if isinstance(record, str):
            record = record.encode()
        length = struct.pack("<Q", len(record))
        self._file.write(length + struct.pack("<I", masked_crc(length)) + bytes(record) +
                         struct.pack("<I", masked_crc(record)))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def tf_record_iterator(path, options=None):
    """tf.python_io.tf_record_iterator: the records of a file as bytes."""
    return read_records(path)
