"""tf.data.Dataset (TF1 graph mode): a client-side object graph of Python stages over numpy elements.

A dataset is a description. An iterator (graphexec/data/iterator.py) resolves the dataset's tensor
arguments (a placeholder-fed file list, say) with one `sess.run`, then pulls elements through the
stages below, in the client's process. An element is a nested structure (tuple, dict) of arrays."""
from __future__ import annotations

import collections
import concurrent.futures
import itertools
import os
import queue
import threading

import numpy as np

from graphexec import dtypes, errors
from graphexec.data import tfrecord
from graphexec.data.functions import GraphFunction, predicate
from graphexec.data.iterator import Iterator
from graphexec.data.structure import (
    Spec,
    along,
    as_array,
    dtype_of,
    flatten,
    normalize_shape,
    pack_sequence_as,
    spec_of,
    to_shape,
    typed_structure,
)
from graphexec.framework import Tensor

AUTOTUNE = -1


class Dataset:
    """Base class: `structure` is a nested structure of Spec; `_elements(values)` yields elements, where
    `values` maps each tensor argument (by id) to its value for this initialization."""

    structure = None

    def _elements(self, values):
        raise NotImplementedError

    def _tensor_args(self) -> list:
        return [t for parent in self._parents() for t in parent._tensor_args()]

    def _parents(self) -> tuple:
        return ()

    # -- TF1's element-spec properties -----------------------------------------------------------
    @property
    def output_types(self):
        return pack_sequence_as(self.structure, [s.dtype for s in flatten(self.structure)])

    @property
    def output_shapes(self):
        return pack_sequence_as(self.structure, [to_shape(s.shape) for s in flatten(self.structure)])

    @property
    def element_spec(self):
        return self.structure

    # -- sources ---------------------------------------------------------------------------------------
    @staticmethod
    def from_tensor_slices(tensors):
        return _Slices(tensors, sliced=True)

    @staticmethod
    def from_tensors(tensors):
        return _Slices(tensors, sliced=False)

    @staticmethod
    def range(*args, output_type=dtypes.int64):
        return _Range(args, dtypes.as_dtype(output_type))

    @staticmethod
    def from_generator(generator, output_types, output_shapes=None, args=None):
        return _Generator(generator, output_types, output_shapes, args or ())

    @staticmethod
    def zip(datasets):
        return _Zip(datasets)

    # -- transformations -----------------------------------------------------------------------------
    def map(self, map_func, num_parallel_calls=None, deterministic=None):
        return _Map(self, map_func, num_parallel_calls)

    def filter(self, predicate):
        return _Filter(self, predicate)

    def batch(self, batch_size, drop_remainder=False):
        return _Batch(self, int(batch_size), drop_remainder, None, None)

    def padded_batch(self, batch_size, padded_shapes=None, padding_values=None, drop_remainder=False):
        return _Batch(self, int(batch_size), drop_remainder, padded_shapes or _unknown_shapes(self.structure),
                      padding_values)

    def shuffle(self, buffer_size, seed=None, reshuffle_each_iteration=True):
        return _Shuffle(self, int(buffer_size), seed, reshuffle_each_iteration)

    def repeat(self, count=None):
        return _Repeat(self, count)

    def take(self, count):
        return _Slice(self, 0, int(count))

    def skip(self, count):
        return _Slice(self, int(count), -1)

    def prefetch(self, buffer_size):
        return _Prefetch(self, int(buffer_size))

    def cache(self, filename=""):
        if filename:
            raise NotImplementedError("Dataset.cache(filename): graphexec caches in memory only; pass no filename")
        return _Cache(self)

    def apply(self, transformation_func):
        return transformation_func(self)

    # -- TF1 iterators ----------------------------------------------------------------------------------
    def make_one_shot_iterator(self):
        return Iterator(self, one_shot=True)

    def make_initializable_iterator(self, shared_name=None):
        return Iterator(self, one_shot=False)


def _unknown_shapes(structure):
    return pack_sequence_as(structure, [None if s.shape is None else (None,) * len(s.shape) for s in flatten(structure)])


def _resolve(value, values):
    return values[id(value)] if isinstance(value, Tensor) else value


# -- sources ------------------------------------------------------------------------------------------------
class _Slices(Dataset):
    def __init__(self, tensors, sliced: bool):
        if isinstance(tensors, list):
            tensors = as_array(tensors)
        self._leaves = [t if isinstance(t, Tensor) else as_array(t) for t in flatten(tensors)]
        self._template = tensors
        self._sliced = sliced
        specs = [spec_of(t) for t in self._leaves]
        if sliced:
            specs = [Spec(s.dtype, None if s.shape is None else s.shape[1:]) for s in specs]
        self.structure = pack_sequence_as(tensors, specs)

    def _tensor_args(self):
        return [t for t in self._leaves if isinstance(t, Tensor)]

    def _elements(self, values):
        leaves = [as_array(_resolve(t, values)) for t in self._leaves]
        if not self._sliced:
            yield pack_sequence_as(self.structure, leaves)
            return
        lengths = {len(a) for a in leaves}
        if len(lengths) != 1:
            raise ValueError(f"from_tensor_slices: components have different first dimensions {sorted(lengths)}")
        for i in range(lengths.pop()):
            yield pack_sequence_as(self.structure, [a[i] for a in leaves])


class _Range(Dataset):
    def __init__(self, args, dtype):
        self._args = args
        self._dtype = dtype
        self.structure = Spec(dtype, ())

    def _elements(self, values):
        for i in range(*self._args):
            yield np.asarray(i, dtype=self._dtype.np)


class _Generator(Dataset):
    def __init__(self, generator, output_types, output_shapes, args):
        self._generator = generator
        self._args = args
        self.structure = typed_structure(output_types, output_shapes)

    def _elements(self, values):
        specs = flatten(self.structure)
        for item in self._generator(*self._args):
            leaves = flatten(item)
            if len(leaves) != len(specs):
                raise ValueError(f"from_generator: the generator yielded {len(leaves)} components, "
                                 f"output_types has {len(specs)}")
            arrays = [as_array(v, s.dtype) for v, s in zip(leaves, specs)]
            for a, s in zip(arrays, specs):
                if s.shape is not None and (a.ndim != len(s.shape) or
                                            any(d is not None and d != n for d, n in zip(s.shape, a.shape))):
                    raise ValueError(f"from_generator: the generator yielded a component of shape {a.shape}, "
                                     f"expected {s.shape}")
            yield pack_sequence_as(self.structure, arrays)


class _Zip(Dataset):
    def __init__(self, datasets):
        self._datasets = datasets
        self._flat = flatten(datasets)
        self.structure = pack_sequence_as(datasets, [d.structure for d in self._flat])

    def _parents(self):
        return tuple(self._flat)

    def _elements(self, values):
        for items in zip(*(d._elements(values) for d in self._flat)):
            yield pack_sequence_as(self._datasets, list(items))


class TFRecordDataset(Dataset):
    """The records of TFRecord files, as scalar tf.string elements, file after file."""

    def __init__(self, filenames, compression_type=None, buffer_size=None, num_parallel_reads=None):
        if compression_type not in (None, ""):
            raise NotImplementedError("TFRecordDataset: compressed TFRecord files are not supported")
        self._filenames = filenames
        self.structure = Spec(dtypes.string, ())

    def _tensor_args(self):
        return [self._filenames] if isinstance(self._filenames, Tensor) else []

    def _elements(self, values):
        names = as_array(_resolve(self._filenames, values), dtypes.string).reshape(-1)
        for name in names:
            for record in tfrecord.read_records(name.decode()):
                yield np.asarray(record, dtype=object)


# -- transformations ----------------------------------------------------------------------------------------
class _Unary(Dataset):
    def __init__(self, parent: Dataset):
        self._parent = parent
        self.structure = parent.structure

    def _parents(self):
        return (self._parent,)


class _Map(_Unary):
    """`num_parallel_calls=n` runs n elements at once on n copies of the traced function (each its own
    graph and session), in a thread pool, and yields results in input order."""

    def __init__(self, parent, fn, num_parallel_calls):
        super().__init__(parent)
        copies = 1 if not num_parallel_calls else int(num_parallel_calls)
        copies = min(4, os.cpu_count() or 1) if copies == AUTOTUNE else max(1, copies)
        self._functions = [GraphFunction(fn, parent.structure, "map") for _ in range(copies)]
        self.structure = self._functions[0].structure

    def _elements(self, values):
        elements = self._parent._elements(values)
        if len(self._functions) == 1:
            yield from map(self._functions[0], elements)
            return
        # Element k runs on copy k % n; at most n run at once, so a copy is free when its turn comes.
        with concurrent.futures.ThreadPoolExecutor(len(self._functions), "graphexec-map") as pool:
            running = collections.deque()
            for k, element in enumerate(elements):
                if len(running) == len(self._functions):
                    yield running.popleft().result()
                running.append(pool.submit(self._functions[k % len(self._functions)], element))
            while running:
                yield running.popleft().result()


class _Filter(_Unary):
    def __init__(self, parent, fn):
        super().__init__(parent)
        self._predicate = predicate(fn, parent.structure)

    def _elements(self, values):
        for element in self._parent._elements(values):
            if bool(self._predicate(element)):
                yield element


class _Batch(_Unary):
    def __init__(self, parent, batch_size, drop_remainder, padded_shapes, padding_values):
        super().__init__(parent)
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self._size = batch_size
        self._drop = bool(drop_remainder)
        outer = batch_size if self._drop else None
        specs = flatten(parent.structure)
        self._padded = None
        if padded_shapes is not None:
            shapes = [normalize_shape(s) for s in along(parent.structure, padded_shapes)]
            pads = along(parent.structure, padding_values)
            self._padded = list(zip(shapes, pads))
            specs = [Spec(s.dtype, shape) for s, shape in zip(specs, shapes)]
        self.structure = pack_sequence_as(parent.structure, [
            Spec(s.dtype, None if s.shape is None else (outer,) + tuple(s.shape)) for s in specs])

    def _tensor_args(self):
        pads = [pad for _, pad in self._padded or () if isinstance(pad, Tensor)]
        return self._parent._tensor_args() + pads

    def _elements(self, values):
        elements = self._parent._elements(values)
        padded = [(shape, _resolve(pad, values)) for shape, pad in self._padded or ()]
        while True:
            items = list(itertools.islice(elements, self._size))
            if not items or (self._drop and len(items) < self._size):
                return
            columns = zip(*(flatten(item) for item in items))
            if self._padded is None:
                leaves = [_stack(list(column)) for column in columns]
            else:
                leaves = [_pad_stack(list(column), shape, pad) for column, (shape, pad) in zip(columns, padded)]
            yield pack_sequence_as(self._parent.structure, leaves)


def _stack(column):
    shapes = {a.shape for a in column}
    if len(shapes) != 1:
        raise errors_invalid(f"Cannot batch tensors with different shapes in component: {sorted(shapes)}; "
                             "use padded_batch")
    return np.stack(column)


def _pad_stack(column, shape, pad):
    target = tuple(max(a.shape[i] for a in column) if d is None else d for i, d in enumerate(shape))
    fill = as_array(pad, dtype_of(column[0])) if pad is not None else (b"" if column[0].dtype == object else 0)
    out = np.full((len(column),) + target, fill, dtype=column[0].dtype)
    for i, a in enumerate(column):
        if any(n > t for n, t in zip(a.shape, target)):
            raise errors_invalid(f"padded_batch: element of shape {a.shape} is larger than the padded shape {target}")
        out[(i,) + tuple(slice(0, n) for n in a.shape)] = a
    return out


def errors_invalid(message):
    return errors.InvalidArgumentError(None, None, message)


class _Shuffle(_Unary):
    """A buffer of `buffer_size` elements; each output is a uniformly drawn buffer slot, refilled from the
    input (TF's algorithm; TF's random stream differs, so a seeded order is deterministic but not TF's)."""

    def __init__(self, parent, buffer_size, seed, reshuffle):
        super().__init__(parent)
        self._size = max(1, buffer_size)
        self._seed = seed
        self._reshuffle = reshuffle

    def _elements(self, values):
        key = ("shuffle epoch", id(self))  # counted per initialization, so a re-initialization repeats
        epoch = values[key] = values.get(key, -1) + 1
        seed = self._seed
        if seed is not None and self._reshuffle:
            seed = (seed, epoch)
        rng = np.random.default_rng(seed)
        buffer = []
        for element in self._parent._elements(values):
            buffer.append(element)
            if len(buffer) == self._size:
                i = int(rng.integers(len(buffer)))
                buffer[i], buffer[-1] = buffer[-1], buffer[i]
                yield buffer.pop()
        while buffer:
            i = int(rng.integers(len(buffer)))
            buffer[i], buffer[-1] = buffer[-1], buffer[i]
            yield buffer.pop()


class _Repeat(_Unary):
    def __init__(self, parent, count):
        super().__init__(parent)
        self._count = None if count is None or int(count) < 0 else int(count)

    def _elements(self, values):
        epochs = itertools.count() if self._count is None else range(self._count)
        for _ in epochs:
            produced = False
            for element in self._parent._elements(values):
                produced = True
                yield element
            if not produced:
                return


class _Slice(_Unary):
    def __init__(self, parent, start, count):
        super().__init__(parent)
        self._start = start
        self._stop = None if count < 0 else start + count

    def _elements(self, values):
        return itertools.islice(self._parent._elements(values), self._start, self._stop)


class _Cache(_Unary):
    """The first full pass is kept in memory; later passes of the same initialization (after repeat) read
    it. A pass that stops early is not kept, and an initialization starts a new cache, as in TF."""

    def _elements(self, values):
        key = ("cache", id(self))  # `values` belongs to one initialization of one iterator
        if key in values:
            yield from values[key]
            return
        kept = []
        for element in self._parent._elements(values):
            kept.append(element)
            yield element
        values[key] = kept


class _Prefetch(_Unary):
    """A thread runs the stages above and keeps up to `buffer_size` elements ready (AUTOTUNE: 2)."""

    def __init__(self, parent, buffer_size):
        super().__init__(parent)
        self._size = 2 if buffer_size == AUTOTUNE else max(1, buffer_size)

    def _elements(self, values):
        ready = queue.Queue(self._size)
        stop = threading.Event()
        done = object()

        def produce():
            try:
                for element in self._parent._elements(values):
                    while not stop.is_set():
                        try:
                            ready.put((element, None), timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                ready.put((done, None))
            except BaseException as exc:  # noqa: BLE001 - raised in the consumer, at its position
                ready.put((done, exc))

        threading.Thread(target=produce, name="graphexec-prefetch", daemon=True).start()
        try:
            while True:
                element, failure = ready.get()
                if element is done:
                    if failure is not None:
                        raise failure
                    return
                yield element
        finally:
            stop.set()
