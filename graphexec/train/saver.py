"""tf.train.Saver: variables to and from checkpoint files, and tf.train.latest_checkpoint.

File format (one file per checkpoint, `<prefix>-<step>.gxckpt`, or `<prefix>.gxckpt` without a step):

    bytes 0..7    magic b"GXCKPT1\\n"
    bytes 8..15   header length H, unsigned 64-bit little-endian
    bytes 16..    header: H bytes of UTF-8 JSON
                  {"format": "graphexec-checkpoint", "version": 1, "global_step": int | null,
                   "tensors": [{"name": str, "dtype": str, "shape": [int, ...],
                                "offset": int, "nbytes": int, "sha256": hex str}, ...]}
    then          data: each tensor's raw bytes, C order, little-endian, at `offset` from the start of
                  the data section (16 + H), tensors in header order, each starting on a 64-byte boundary;
                  a "string" tensor's bytes are, per element, a u32 little-endian length then its bytes

`name` is the variable's name without ":0" (as TF's checkpoint keys), `dtype` a graphexec dtype name
(float32, int64, bool...). Reading parses JSON and raw numbers only (no pickle, nothing executable), and
checks every tensor's length and sha256; a damaged file raises DataLossError.

Next to the checkpoints, a `checkpoint` index file (JSON: {"model_checkpoint_path": str,
"all_model_checkpoint_paths": [str, ...]}, paths relative to its directory) names the latest one.

Atomicity: each file is written to a temporary file in the same directory, flushed and fsync'ed, then
renamed over its final name with os.replace (atomic on POSIX), and the directory is fsync'ed. The data
file is in place before the index names it, and old checkpoints beyond `max_to_keep` are deleted only
after the index stops naming them; so a crash at any point leaves the previous latest checkpoint (or
the new one) intact and loadable.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import struct
import tempfile

import numpy as np

from graphexec import dtypes, errors, progress
from graphexec.framework import get_default_graph
from graphexec.ops.array_ops import placeholder
from graphexec.ops.control_ops import group
from graphexec.variables import GraphKeys, Variable

MAGIC = b"GXCKPT1\n"
FORMAT = "graphexec-checkpoint"
VERSION = 1
SUFFIX = ".gxckpt"
INDEX_FILENAME = "checkpoint"
ALIGNMENT = 64
LARGE_CHECKPOINT_BYTES = 64 << 20  # saving or restoring more shows a progress bar (on a terminal)


# -- the file format: pure functions over bytes -------------------------------------------------------------
def encode(tensors: dict[str, np.ndarray], global_step: int | None = None, on_bytes=None) -> bytes:
    """The checkpoint file's bytes for `tensors` (name -> array), in the documented format; `on_bytes(n)`
    is called after each tensor with its size."""
    entries, chunks, offset = [], [], 0
    for name, value in tensors.items():
        array = np.asarray(value, order="C")  # (not ascontiguousarray: it turns scalars into [1])
        dtype = dtypes.from_numpy(array.dtype)
        if dtype is dtypes.string:
            data = dtypes.string_content(array)
        else:
            data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        padding = -offset % ALIGNMENT
        chunks.append(b"\0" * padding + data)
        offset += padding
        entries.append({"name": name, "dtype": dtype.name, "shape": list(array.shape), "offset": offset,
                        "nbytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        offset += len(data)
        if on_bytes is not None:
            on_bytes(len(data))
    header = json.dumps({"format": FORMAT, "version": VERSION, "global_step": global_step, "tensors": entries},
                        separators=(",", ":")).encode()
    return MAGIC + struct.pack("<Q", len(header)) + header + b"".join(chunks)


def decode(blob: bytes, what: str = "checkpoint", on_bytes=None) -> tuple[dict[str, np.ndarray], dict]:
    """(name -> array, header) from a checkpoint file's bytes; DataLossError if anything is off.
    `on_bytes(n)` is called after each tensor with its size."""
    def damaged(reason):
        return errors.DataLossError(None, None, f"{what} is not a valid graphexec checkpoint: {reason}")

    if len(blob) < 16 or blob[:8] != MAGIC:
        raise damaged("bad magic bytes")
    (header_len,) = struct.unpack("<Q", blob[8:16])
    if 16 + header_len > len(blob):
        raise damaged("truncated header")
    try:
        header = json.loads(blob[16:16 + header_len].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise damaged(f"unreadable header ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("version") != VERSION:
        raise damaged(f"unsupported format/version {header.get('format')!r}/{header.get('version')!r}"
                      if isinstance(header, dict) else "header is not an object")
    data = memoryview(blob)[16 + header_len:]
    tensors = {}
    for entry in header.get("tensors", []):
        tensors[entry["name"]] = _tensor(entry, data, damaged)
        if on_bytes is not None:
            on_bytes(tensors[entry["name"]].nbytes)
    return tensors, header


def _tensor(entry, data, damaged) -> np.ndarray:
    try:
        name, offset, nbytes = str(entry["name"]), int(entry["offset"]), int(entry["nbytes"])
        dtype = dtypes.as_dtype(str(entry["dtype"]))
        shape = tuple(int(d) for d in entry["shape"])
    except (KeyError, TypeError, ValueError) as exc:
        raise damaged(f"bad tensor entry {entry!r} ({exc})") from None
    count = int(np.prod(shape, dtype=np.int64))
    fits = dtype is dtypes.string or nbytes == count * dtype.size  # (string records are checked as decoded)
    if not fits or offset < 0 or offset + nbytes > len(data) or min(shape, default=0) < 0:
        raise damaged(f"tensor '{name}' does not fit the file (offset {offset}, {nbytes} bytes, shape {list(shape)})")
    raw = data[offset:offset + nbytes]
    if hashlib.sha256(raw).hexdigest() != entry.get("sha256"):
        raise damaged(f"checksum mismatch for tensor '{name}'")
    if dtype is dtypes.string:
        try:
            return dtypes.strings_from_content(raw, count, shape)
        except ValueError as exc:
            raise damaged(f"tensor '{name}': {exc}") from None
    little = np.frombuffer(raw, dtype=dtype.np.newbyteorder("<")).reshape(shape)
    return little.astype(dtype.np)  # native byte order, and a private writable copy


# -- atomic files ---------------------------------------------------------------------------------------------
def write_atomically(path: str, data: bytes) -> None:
    """Replace `path` by `data` so that readers (and a crash) see the old file or the new one, never a mix."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- the index file ----------------------------------------------------------------------------------------------
def read_index(directory: str, latest_filename: str = INDEX_FILENAME) -> dict | None:
    path = os.path.join(directory, latest_filename)
    try:
        with open(path, "rb") as f:
            index = json.loads(f.read().decode())
    except FileNotFoundError:
        return None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise errors.DataLossError(None, None, f"checkpoint index {path} is unreadable: {exc}") from None
    if not isinstance(index, dict) or not isinstance(index.get("model_checkpoint_path"), str):
        raise errors.DataLossError(None, None, f"checkpoint index {path} has no model_checkpoint_path")
    return index


def latest_checkpoint(checkpoint_dir, latest_filename=None):
    """The prefix of the newest checkpoint named by `checkpoint_dir`'s index file, or None."""
    index = read_index(checkpoint_dir, latest_filename or INDEX_FILENAME)
    if index is None:
        return None
    prefix = os.path.join(checkpoint_dir, index["model_checkpoint_path"])
    return prefix if os.path.exists(prefix + SUFFIX) else None


def checkpoint_exists(checkpoint_prefix) -> bool:
    return os.path.exists(_file_of(checkpoint_prefix))


def _file_of(prefix: str) -> str:
    return prefix if prefix.endswith(SUFFIX) else prefix + SUFFIX


def load_checkpoint(checkpoint_prefix) -> dict[str, np.ndarray]:
    """Every tensor of a checkpoint as name -> numpy array (tf.train.load_checkpoint, simplified); a large
    one shows a progress bar while it is checked and decoded."""
    path = _file_of(checkpoint_prefix)
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except FileNotFoundError:
        raise errors.NotFoundError(None, None, f"Unsuccessful TensorSliceReader constructor: Failed to find any "
                                               f"matching files for {checkpoint_prefix}") from None
    with progress.bar(len(blob), f"restoring {os.path.basename(path)}", unit="B", unit_scale=True,
                      shown=len(blob) >= LARGE_CHECKPOINT_BYTES) as bar:
        return decode(blob, path, bar.update)[0]


# -- Saver ---------------------------------------------------------------------------------------------------------
class Saver:
    """Saves and restores variables (default: every global variable, optimizer slots included)."""

    def __init__(self, var_list=None, reshape=False, sharded=False, max_to_keep=5,
                 keep_checkpoint_every_n_hours=10000.0, name=None, restore_sequentially=False, saver_def=None, builder=None, defer_build=False,
                 allow_empty=False, write_version=None, pad_step_number=False, save_relative_paths=True,
                 filename=None):
        graph = get_default_graph()
        self._variables = _named_variables(var_list if var_list is not None else graph.get_collection(
            GraphKeys.GLOBAL_VARIABLES) + graph.get_collection("saveable_objects"))
        if not self._variables and not allow_empty:
            raise ValueError("No variables to save")
        self._max_to_keep = max_to_keep
        self._graph = graph
        self._restore_feeds, self._restore_op = self._build_restore(graph)

    def _build_restore(self, graph):
        """One placeholder + assign per variable, grouped: restoring is a single run."""
        feeds = {}
        with graph.as_default(), graph.control_dependencies(None), graph.name_scope("save"):
            assigns = []
            for name, var in self._variables.items():
                feeds[name] = placeholder(var.dtype, var.shape.dims, name="restore_value")
                assigns.append(var.assign(feeds[name], name="restore_assign"))
            return feeds, group(*assigns, name="restore_all")

    # -- saving ----------------------------------------------------------------------------------------
    def save(self, sess, save_path, global_step=None, latest_filename=None, meta_graph_suffix="meta",
             write_meta_graph=True, write_state=True, strip_default_attrs=False, save_debug_info=False):
        """Write a checkpoint and return its prefix (`save_path`, or `save_path-<step>`)."""
        step = _step_value(sess, global_step)
        prefix = save_path if step is None else f"{save_path}-{step}"
        names = list(self._variables)
        values = sess.run([self._variables[n].value() for n in names])
        directory = os.path.dirname(os.path.abspath(prefix))
        os.makedirs(directory, exist_ok=True)
        size = sum(np.asarray(v).nbytes for v in values)
        with progress.bar(size, f"saving {os.path.basename(_file_of(prefix))}", unit="B", unit_scale=True,
                          shown=size >= LARGE_CHECKPOINT_BYTES) as bar:
            write_atomically(_file_of(prefix), encode(dict(zip(names, values)), step, bar.update))
        if write_state:
            self._update_index(directory, prefix, latest_filename or INDEX_FILENAME)
        return prefix

    def _update_index(self, directory, prefix, latest_filename):
        relative = os.path.relpath(os.path.abspath(prefix), directory)
        try:
            index = read_index(directory, latest_filename) or {}
        except errors.DataLossError:
            index = {}  # a damaged index is replaced by a fresh one
        kept = [p for p in index.get("all_model_checkpoint_paths", []) if isinstance(p, str) and p != relative]
        kept.append(relative)
        dropped = kept[:-self._max_to_keep] if self._max_to_keep else []
        kept = kept[len(dropped):]
        document = {"model_checkpoint_path": relative, "all_model_checkpoint_paths": kept}
        write_atomically(os.path.join(directory, latest_filename), json.dumps(document, indent=1).encode())
        for old in dropped:  # only once the index no longer names them
            path = _file_of(os.path.join(directory, old))
            if os.path.exists(path):
                os.unlink(path)

    # -- restoring -------------------------------------------------------------------------------------
    def restore(self, sess, save_path):
        """Assign every variable its value from the checkpoint at `save_path` (a prefix save() returned)."""
        if save_path is None:
            raise ValueError("Can't load save_path when it is None.")
        stored = load_checkpoint(save_path)
        feed = {}
        for name, var in self._variables.items():
            if name not in stored:
                raise errors.NotFoundError(None, None, f"Key {name} not found in checkpoint {save_path}")
            value = stored[name]
            if value.dtype != var.dtype.np:
                raise errors.InvalidArgumentError(None, None, f"checkpoint has {name} as {value.dtype}, but the "
                                                              f"variable is {var.dtype.name}")
            if not var.shape.is_fully_defined() or tuple(var.shape.dims) == value.shape:
                feed[self._restore_feeds[name]] = value
            else:
                raise errors.InvalidArgumentError(
                    None, None, f"Assign requires shapes of both tensors to match. lhs shape= {var.shape} rhs shape= "
                                f"{list(value.shape)} (variable {name}, checkpoint {save_path})")
        sess.run(self._restore_op, feed_dict=feed)


def _named_variables(var_list) -> dict[str, Variable]:
    if isinstance(var_list, dict):
        items = list(var_list.items())
    else:
        items = [(v._var_name, v) for v in var_list]
    named = {}
    for name, var in items:
        if not isinstance(var, Variable):
            raise TypeError(f"Saver can only save tf.Variables, got {var!r}")
        if name in named:
            raise ValueError(f"At least two variables have the same name: {name}")
        named[name] = var
    return named


def _step_value(sess, global_step):
    if global_step is None:
        return None
    if isinstance(global_step, (int, np.integer)):
        return int(global_step)
    return int(sess.run(global_step))


@dataclasses.dataclass(frozen=True)
class CheckpointState:
    """What a directory's checkpoint index names (TF's CheckpointState proto, as a plain object)."""

    model_checkpoint_path: str
    all_model_checkpoint_paths: tuple[str, ...]


def get_checkpoint_state(checkpoint_dir, latest_filename=None) -> CheckpointState | None:
    """The latest checkpoint and all kept ones named by `checkpoint_dir`'s index (paths joined to the
    directory, as TF does with relative paths), or None without an index."""
    index = read_index(checkpoint_dir, latest_filename or INDEX_FILENAME)
    if index is None:
        return None
    paths = [p for p in index.get("all_model_checkpoint_paths", []) if isinstance(p, str)]
    return CheckpointState(os.path.join(checkpoint_dir, index["model_checkpoint_path"]),
                           tuple(os.path.join(checkpoint_dir, p) for p in paths))
