"""Loops over the rows of tensors, built on tf.while_loop and TensorArray: tf.map_fn, tf.scan, tf.foldl
and tf.foldr. Each visits dimension 0 of `elems` (a tensor or a structure of them) one row at a time."""
from __future__ import annotations

import numpy as np

from graphexec import dtypes
from graphexec.framework import TensorShape, name_scope
from graphexec.ops.array_ops import range as tf_range
from graphexec.ops.array_ops import shape as shape_of
from graphexec.ops.control_flow_ops import while_loop
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.indexing_ops import gather
from graphexec.ops.structure import flatten, pack_sequence_as
from graphexec.ops.tensor_array_ops import TensorArray

# The public API (graphexec/__init__.py star-imports it as tf.<name>).
__all__ = ["foldl", "foldr", "map_fn", "scan"]


def _rows_of(elems):
    flat = [convert_to_tensor(e) for e in flatten(elems)]
    if not flat:
        raise ValueError("elems must be a tensor or a non-empty structure of tensors")
    for e in flat:
        if e._shape is not None and not e._shape:
            raise ValueError(f"elems must be at least rank 1 (they are unstacked on dimension 0), got {e.name}")
    return flat


def _map_structure(fn, structure):
    return pack_sequence_as(structure, [fn(x) for x in flatten(structure)])


def _loop_over_rows(step, elems, initial, outputs: list[TensorArray], reverse, parallel_iterations, back_prop,
                    first=0):
    """Visit the rows of `elems` from `first` on (from the end when `reverse`), calling
    `step(state, row) -> (state, results)`; each result is written to its TensorArray of `outputs`.
    Returns (final state, the TensorArrays stacked, as tensors of static shape [n, *result shape])."""
    flat = _rows_of(elems)
    count = flat[0]._shape[0] if flat[0]._shape is not None else None
    n = shape_of(flat[0])[0]

    def body(i, state, arrays):
        row = pack_sequence_as(elems, [gather(e, n - 1 - i if reverse else i) for e in flat])
        state, results = step(state, row)
        results = flatten(results)
        if len(results) != len(arrays):
            raise ValueError(f"fn returned {len(results)} tensors where {len(arrays)} were expected (the structure "
                             f"of `dtype`, or of `elems` without one)")
        written = [ta.write(ta.size(), r) for ta, r in zip(arrays, results)]
        return i + 1, state, written

    invariants = (TensorShape([]), _map_structure(lambda t: TensorShape(convert_to_tensor(t)._shape), initial),
                  [TensorShape(None)] * len(outputs))
    start = convert_to_tensor(np.asarray(first, np.int32))
    _, state, arrays = while_loop(lambda i, state, arrays: i < n, body, (start, initial, outputs),
                                  shape_invariants=invariants, parallel_iterations=parallel_iterations,
                                  back_prop=back_prop)
    stacked = []
    for ta in arrays:
        rows = ta.stack()
        if ta.element_shape is not None:
            rows.set_shape((count, *ta.element_shape))
        stacked.append(rows)
    return state, stacked


def map_fn(fn, elems, dtype=None, parallel_iterations=None, back_prop=True, swap_memory=False, infer_shape=True,
           name=None):
    """tf.map_fn: `fn` on each row of `elems` (unstacked on dimension 0), results stacked; `dtype` gives the
    results' structure and dtypes when they differ from `elems`'."""
    if not callable(fn):
        raise TypeError("fn must be callable.")
    with name_scope(name, "map"):
        out_structure = elems if dtype is None else dtype
        outputs = [TensorArray(convert_to_tensor(e).dtype if dtype is None else dtypes.as_dtype(e))
                   for e in flatten(out_structure)]
        dummy = convert_to_tensor(np.asarray(0, np.int32))
        _, rows = _loop_over_rows(lambda state, row: (state, fn(row)), elems, dummy, outputs, False,
                                  parallel_iterations or 10, back_prop)
        return pack_sequence_as(out_structure, rows)


def _first_row(elems, reverse):
    return pack_sequence_as(elems, [gather(e, shape_of(e)[0] - 1 if reverse else 0) for e in _rows_of(elems)])


def scan(fn, elems, initializer=None, parallel_iterations=10, back_prop=True, swap_memory=False, infer_shape=True,
         reverse=False, name=None):
    """tf.scan: `a = fn(a, row)` over the rows of `elems`, every `a` stacked; without an initializer the
    first row (the last when `reverse`) starts and is the first output."""
    if not callable(fn):
        raise TypeError("fn must be callable.")
    with name_scope(name, "scan"):
        if initializer is None:
            initial = _first_row(elems, reverse)
            outputs = [TensorArray(a.dtype).write(0, a) for a in flatten(initial)]
        else:
            initial = _map_structure(convert_to_tensor, initializer)
            outputs = [TensorArray(a.dtype) for a in flatten(initial)]

        def step(state, row):
            state = fn(state, row)
            return state, state

        _, rows = _loop_over_rows(step, elems, initial, outputs, reverse, parallel_iterations, back_prop,
                                  first=0 if initializer is not None else 1)
        if reverse:  # rows were produced last to first
            rows = [gather(r, tf_range(shape_of(r)[0] - 1, -1, -1)) for r in rows]
        return pack_sequence_as(initial, rows)


def _fold(fn, elems, initializer, parallel_iterations, back_prop, name, reverse):
    if not callable(fn):
        raise TypeError("fn must be callable.")
    with name_scope(name, "foldr" if reverse else "foldl"):
        initial = _first_row(elems, reverse) if initializer is None else _map_structure(convert_to_tensor, initializer)
        state, _ = _loop_over_rows(lambda state, row: (fn(state, row), ()), elems, initial, [], reverse,
                                   parallel_iterations, back_prop, first=0 if initializer is not None else 1)
        return state


def foldl(fn, elems, initializer=None, parallel_iterations=10, back_prop=True, swap_memory=False, name=None):
    """tf.foldl: `a = fn(a, row)` over the rows of `elems` from the first; returns the last `a`."""
    return _fold(fn, elems, initializer, parallel_iterations, back_prop, name, reverse=False)


def foldr(fn, elems, initializer=None, parallel_iterations=10, back_prop=True, swap_memory=False, name=None):
    """tf.foldr: as foldl, from the last row to the first."""
    return _fold(fn, elems, initializer, parallel_iterations, back_prop, name, reverse=True)
