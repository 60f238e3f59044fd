"""TF1 control flow: tf.cond, tf.case, tf.while_loop, and the loops built on it (tf.map_fn, tf.scan,
tf.foldl, tf.foldr). Branches and bodies are traced once into function scopes of the graph and run as
sub-plans by If and While nodes (see functional_ops), so only the branch taken executes.
"""
from __future__ import annotations

import numpy as np

from graphexec import dtypes
from graphexec.framework import (
    FunctionScope,
    Operation,
    Tensor,
    TensorShape,
    apply_op,
    control_dependencies,
    get_default_graph,
    name_scope,
)
from graphexec.ops.array_ops import expand_dims, reshape
from graphexec.ops.array_ops import range as tf_range
from graphexec.ops.array_ops import shape as shape_of
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.functional_ops import make_if, make_while
from graphexec.ops.indexing_ops import gather
from graphexec.ops.math_ops import logical_and
from graphexec.ops.registry import ShapeError, op
from graphexec.ops.structure import flatten, pack_sequence_as

# The public API (graphexec/__init__.py star-imports it as tf.<name>).
__all__ = ["case", "cond", "foldl", "foldr", "map_fn", "scan", "while_loop"]


# -- tracing ------------------------------------------------------------------------------------------------
def _trace(scope: FunctionScope, fn, *args):
    """Call `fn` inside `scope`: (its results' structure, result tensors, positions that were ops)."""
    with scope.entered():
        scope.graph._name_stack = scope.name
        result = fn(*args)
        leaves = flatten(result)
        tensors, op_positions = [], []
        for i, leaf in enumerate(leaves):
            if isinstance(leaf, Operation):  # an op result (tf.group, an assign op): run it, return the caller
                with control_dependencies([leaf]):
                    leaf = apply_op("Const", (), {"value": np.asarray(True), "dtype": dtypes.bool}, "done").outputs[0]
                op_positions.append(i)
            else:
                leaf = convert_to_tensor(leaf)
            tensors.append(scope.capture(leaf))
    return result, tensors, op_positions


def _captures(scope: FunctionScope, start: int = 0):
    """(argument tensors, caller-side tensors) of what `scope` captured, from argument `start` on."""
    return list(scope.args[start:]), list(scope.outer[start:])


def _common_shape(a, b):
    """The most specific shape both `a` and `b` satisfy."""
    if a is None or b is None or len(a) != len(b):
        return None
    return tuple(x if x == y else None for x, y in zip(a, b))


def _pad(scope: FunctionScope, like: list[Tensor]) -> list[Tensor]:
    """Arguments of `scope` it does not read, standing for another function's captures."""
    return [scope.add_arg(t.dtype, t._shape) for t in like]


# -- cond and case ------------------------------------------------------------------------------------------
def cond(pred, true_fn=None, false_fn=None, strict=False, name=None, fn1=None, fn2=None):
    """tf.cond: `true_fn()` if `pred` else `false_fn()`; only the branch taken runs. Both must return the same
    structure of tensors (of the same dtypes); a one-element list is unpacked unless `strict`."""
    true_fn = fn1 if true_fn is None else true_fn
    false_fn = fn2 if false_fn is None else false_fn
    if isinstance(pred, (bool, np.bool_)):
        raise TypeError("'pred' must not be a Python bool.")
    if not callable(true_fn):
        raise TypeError("true_fn must be callable.")
    if not callable(false_fn):
        raise TypeError("false_fn must be callable.")
    pred = convert_to_tensor(pred)
    if pred.dtype is not dtypes.bool:
        raise TypeError(f"pred must be a bool tensor, got {pred.dtype.name}")
    graph = pred.graph
    with name_scope(name, "cond", [pred]) as scope:
        then = FunctionScope(graph, scope + "then")
        t_result, t_out, t_ops = _trace(then, true_fn)
        else_ = FunctionScope(graph, scope + "else")
        e_result, e_out, e_ops = _trace(else_, false_fn)
        if not strict:
            t_result, e_result = _unpack_singleton(t_result), _unpack_singleton(e_result)
        _check_same_structure(t_result, e_result, t_out, e_out)
        t_args, t_outer = _captures(then)
        e_args, e_outer = _captures(else_)
        t_pad, e_pad = _pad(then, e_args), _pad(else_, t_args)
        shapes = [_common_shape(a._shape, b._shape) for a, b in zip(t_out, e_out)]
        outputs = make_if(pred, t_outer + e_outer, (then, t_args + t_pad, t_out), (else_, e_pad + e_args, e_out),
                          shapes, name="If")
    leaves = [t.op if i in t_ops or i in e_ops else t for i, t in enumerate(outputs)]
    return pack_sequence_as(t_result, leaves)


def _unpack_singleton(result):
    return result[0] if isinstance(result, (list, tuple)) and len(result) == 1 else result


def _check_same_structure(a, b, a_flat, b_flat):
    try:
        pack_sequence_as(a, flatten(b))
        same = len(a_flat) == len(b_flat) and flatten(_shape_of_structure(a)) == flatten(_shape_of_structure(b))
    except ValueError:
        same = False
    if not same:
        raise ValueError(f"true_fn and false_fn must return the same nested structure; got {a!r} and {b!r}")
    if not a_flat:
        raise ValueError("true_fn and false_fn must return at least one tensor or op")
    for x, y in zip(a_flat, b_flat):
        if x.dtype is not y.dtype:
            raise ValueError(f"Outputs of true_fn and false_fn must have the same type: {x.dtype.name}, {y.dtype.name}")


def _shape_of_structure(structure):
    """The structure with each leaf replaced by 0: compares nesting without comparing leaves."""
    return pack_sequence_as(structure, [0] * len(flatten(structure)))


def case(pred_fn_pairs, default=None, exclusive=False, strict=False, name="case"):
    """tf.case: the fn of the first pair whose pred holds, else `default` (without one, the last pair's fn)."""
    pairs = list(pred_fn_pairs.items()) if isinstance(pred_fn_pairs, dict) else list(pred_fn_pairs)
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2 and callable(pair[1])):
            raise TypeError(f"pred_fn_pairs must hold (pred, callable) pairs, got {pair!r}")
    if default is None:
        if not pairs:
            raise ValueError("tf.case needs at least one (pred, fn) pair or a default")
        pairs, default = pairs[:-1], pairs[-1][1]
    with name_scope(name, "case"):
        def branch(i):
            if i == len(pairs):
                return default()
            pred, fn = pairs[i]
            return cond(pred, fn, lambda: branch(i + 1), strict=strict)

        return branch(0)


# -- while_loop ---------------------------------------------------------------------------------------------
def _invariant_shape(spec):
    if spec is None:
        return None
    if isinstance(spec, TensorShape):
        return spec.dims
    return tuple(None if d is None else int(d) for d in spec)


def _satisfies(shape, invariant) -> bool:
    """`shape` is at least as specific as `invariant`."""
    if invariant is None:
        return True
    return shape is not None and len(shape) == len(invariant) and all(
        i is None or s == i for s, i in zip(shape, invariant))


def _fmt(shape) -> str:
    return "<unknown>" if shape is None else str(tuple(shape))


def while_loop(cond, body, loop_vars, shape_invariants=None, parallel_iterations=10, back_prop=True,
               swap_memory=False, name=None, maximum_iterations=None, return_same_structure=False):
    """tf.while_loop: repeat `loop_vars = body(*loop_vars)` while `cond(*loop_vars)`. Gradients flow back to
    the initial values and to tensors the body captures (unless `back_prop=False`). `swap_memory` is
    accepted and changes nothing; iterations run one after another."""
    if not callable(cond) or not callable(body):
        raise TypeError("cond and body must be callable.")
    if parallel_iterations < 1:
        raise ValueError("parallel_iterations must be a positive integer.")
    if isinstance(loop_vars, (list, tuple)) and not loop_vars:
        raise ValueError("No loop variables provided")
    with name_scope(name, "while") as scope:
        if maximum_iterations is not None:
            limit = convert_to_tensor(maximum_iterations, name="maximum_iterations")
            user_cond, user_body, single = cond, body, _is_single(loop_vars)

            def cond(i, inner):  # the user's cond, also bounded by the iteration count
                return logical_and(i < limit, user_cond(*_as_args(inner)))

            def body(i, inner):
                return i + 1, _body_result(user_body(*_as_args(inner)), single)

            counter = convert_to_tensor(np.asarray(0, dtype=limit.dtype.np), name="iteration_counter")
            loop_vars = (counter, loop_vars)
            if shape_invariants is not None:
                shape_invariants = (TensorShape([]), shape_invariants)
        results = _while(cond, body, loop_vars, shape_invariants, parallel_iterations, back_prop, scope)
        if maximum_iterations is not None:
            results = results[1]
    if not return_same_structure and _is_single(results):
        return flatten(results)[0]
    return results


def _is_single(loop_vars) -> bool:
    return isinstance(loop_vars, (list, tuple)) and len(loop_vars) == 1 and not isinstance(loop_vars[0], (list, tuple, dict))


def _as_args(structure):
    return structure if isinstance(structure, (list, tuple)) else (structure,)


def _body_result(result, single: bool):
    return [result] if single and not isinstance(result, (list, tuple)) else result


def _while(cond, body, loop_vars, shape_invariants, parallel_iterations, back_prop, scope):
    graph = get_default_graph()
    leaves = [convert_to_tensor(v) for v in flatten(loop_vars)]
    if shape_invariants is None:
        invariants = [v._shape for v in leaves]
    else:
        invariants = [_invariant_shape(s) for s in _flatten_invariants(shape_invariants, loop_vars)]
    for v, inv in zip(leaves, invariants):
        if not _satisfies(v._shape, inv):
            raise ValueError(f"The shape invariant specified for {v.name} is not compatible with the initial shape "
                             f"of the loop variable. It enters the loop with shape {_fmt(v._shape)}, but the "
                             f"specified shape invariant is {_fmt(inv)}.")
    cond_scope, body_scope = FunctionScope(graph, scope + "cond"), FunctionScope(graph, scope + "body")
    c_vars = [cond_scope.add_arg(v.dtype, inv) for v, inv in zip(leaves, invariants)]
    b_vars = [body_scope.add_arg(v.dtype, inv) for v, inv in zip(leaves, invariants)]
    n = len(leaves)
    _, c_out, _ = _trace(cond_scope, lambda: cond(*_as_args(pack_sequence_as(loop_vars, c_vars))))
    if len(c_out) != 1 or c_out[0].dtype is not dtypes.bool or c_out[0]._shape not in (None, ()):
        raise ValueError(f"cond of a while_loop must return one bool scalar, got {c_out}")
    single = _is_single(loop_vars)
    result, b_out, _ = _trace(body_scope, lambda: _body_result(
        body(*_as_args(pack_sequence_as(loop_vars, b_vars))), single))
    if len(b_out) != n:
        raise ValueError(f"body of a while_loop must return the same structure as loop_vars ({n} tensors), got "
                         f"{result!r}")
    for v, out, inv in zip(leaves, b_out, invariants):
        if out.dtype is not v.dtype:
            raise TypeError(f"Input tensor '{v.name}' enters the loop with dtype {v.dtype.name}, but has dtype "
                            f"{out.dtype.name} after one iteration")
        if not _satisfies(out._shape, inv):
            raise ValueError(f"Input tensor '{v.name}' enters the loop with shape {_fmt(v._shape)}, but has shape "
                             f"{_fmt(out._shape)} after one iteration. To allow the shape to vary across iterations, "
                             f"use the `shape_invariants` argument of tf.while_loop to specify a less-specific shape.")
    c_caps, c_outer = _captures(cond_scope, n)
    b_caps, b_outer = _captures(body_scope, n)
    c_pad, b_pad = _pad(cond_scope, b_caps), _pad(body_scope, c_caps)
    outputs = make_while(leaves + c_outer + b_outer, (cond_scope, c_vars + c_caps + c_pad, c_out),
                         (body_scope, b_vars + b_pad + b_caps, b_out), invariants, back_prop, parallel_iterations,
                         name="While")
    return pack_sequence_as(loop_vars, outputs)


def _flatten_invariants(shape_invariants, loop_vars):
    """Invariants parallel to the flattened loop vars (the loop vars' structure decides what is a leaf)."""
    out = []

    def walk(spec, structure):
        if isinstance(structure, dict):
            for key in sorted(structure):
                walk(spec[key], structure[key])
        elif isinstance(structure, (list, tuple)):
            if not isinstance(spec, (list, tuple)) or len(spec) != len(structure):
                raise ValueError("shape_invariants must have the same structure as loop_vars")
            for s, v in zip(spec, structure):
                walk(s, v)
        else:
            out.append(spec)

    walk(shape_invariants, loop_vars)
    return out


# -- loops over the first dimension: map_fn, scan, foldl, foldr ----------------------------------------------
def _append_row_shape(args, attrs):
    rows, value = args
    if rows.dtype is not value.dtype:
        raise ShapeError(f"rows are {rows.dtype.name} but the value is {value.dtype.name}")
    if rows.rank is not None and value.rank is not None and rows.rank == value.rank + 1:
        return (None, *value.shape)
    return None


def _append_row(ctx, rows, value):
    if rows.shape[0] == 0:  # the empty start (a [0] vector) takes the shape of the first row
        return ctx.xp.expand_dims(value, 0).copy()
    return ctx.xp.concatenate([rows, ctx.xp.expand_dims(value, 0)], axis=0)


def _append_row_grad(op, dy):
    rows = op.inputs[0]
    return [reshape(dy[:-1], shape_of(rows)), dy[-1]]


# A loop accumulates its per-iteration results as rows (map_fn, scan): `rows` with `value` added at the end.
AppendRow = op("AppendRow", shape=_append_row_shape, dtype=lambda args, attrs: args[0].dtype, kernel=_append_row,
               grad=_append_row_grad, inputs=("rows", "value"))


def _empty_rows(dtype) -> Tensor:
    dtype = dtypes.as_dtype(dtype)
    return apply_op("Const", (), {"value": np.zeros((0,), dtype.np), "dtype": dtype}, "empty_rows").outputs[0]


def _rows_of(elems):
    flat = [convert_to_tensor(e) for e in flatten(elems)]
    if not flat:
        raise ValueError("elems must be a tensor or a non-empty structure of tensors")
    for e in flat:
        if e._shape is not None and not e._shape:
            raise ValueError(f"elems must be at least rank 1 (they are unstacked on dimension 0), got {e.name}")
    return flat


def _stacked_shape(rows: Tensor, count, element_shape):
    if element_shape is not None:
        rows.set_shape((count, *element_shape))


def _loop_over_rows(step, elems, initial, out_dtypes, reverse, parallel_iterations, back_prop, emit_rows,
                    start_rows=None, first=0):
    """The loop behind map_fn/scan/foldl: visits each row of `elems` in order (or reversed), calling
    `step(state, row) -> (state, outputs)`; returns (final state, stacked outputs when `emit_rows`)."""
    flat = _rows_of(elems)
    count = flat[0]._shape[0] if flat[0]._shape is not None else None
    n = shape_of(flat[0])[0]
    element_shapes = []
    rows0 = start_rows if start_rows is not None else [_empty_rows(d) for d in out_dtypes]
    if not emit_rows:
        rows0 = []

    def cond(i, state, rows):
        return i < n

    def body(i, state, rows):
        index = n - 1 - i if reverse else i
        row = pack_sequence_as(elems, [gather(e, index) for e in flat])
        state, outputs = step(state, row)
        outs = [convert_to_tensor(o) for o in flatten(outputs)] if emit_rows else []
        if not element_shapes:
            element_shapes.extend(o._shape for o in outs)
        return i + 1, state, [apply_op("AppendRow", (r, o), {}, "append").outputs[0] for r, o in zip(rows, outs)]

    state0 = initial
    i0 = convert_to_tensor(np.asarray(first, np.int32))
    invariants = (TensorShape([]), _map_structure(lambda t: TensorShape(convert_to_tensor(t)._shape), state0),
                  [TensorShape(None)] * len(rows0))
    _, state, rows = while_loop(cond, body, (i0, state0, rows0), shape_invariants=invariants,
                                parallel_iterations=parallel_iterations, back_prop=back_prop)
    for r, s in zip(rows, element_shapes or [None] * len(rows)):
        _stacked_shape(r, count, s)
    return state, rows


def _map_structure(fn, structure):
    return pack_sequence_as(structure, [fn(x) for x in flatten(structure)])


def map_fn(fn, elems, dtype=None, parallel_iterations=None, back_prop=True, swap_memory=False, infer_shape=True,
           name=None):
    """tf.map_fn: `fn` on each row of `elems` (unstacked on dimension 0), results stacked; `dtype` gives the
    results' structure and dtypes when they differ from `elems`."""
    if not callable(fn):
        raise TypeError("fn must be callable.")
    with name_scope(name, "map"):
        out_structure = elems if dtype is None else dtype
        out_dtypes = [convert_to_tensor(e).dtype if dtype is None else dtypes.as_dtype(e)
                      for e in flatten(out_structure)]
        zero = convert_to_tensor(np.asarray(0, np.int32))

        def step(state, row):
            return state, fn(row)

        _, rows = _loop_over_rows(step, elems, zero, out_dtypes, False, parallel_iterations or 10, back_prop, True)
        return pack_sequence_as(out_structure, rows)


def scan(fn, elems, initializer=None, parallel_iterations=10, back_prop=True, swap_memory=False, infer_shape=True,
         reverse=False, name=None):
    """tf.scan: `a = fn(a, row)` over the rows of `elems`, every `a` stacked; without an initializer the
    first row (the last when `reverse`) starts and is the first output."""
    if not callable(fn):
        raise TypeError("fn must be callable.")
    with name_scope(name, "scan"):
        flat = _rows_of(elems)
        if initializer is None:
            first = [gather(e, shape_of(e)[0] - 1 if reverse else 0) for e in flat]
            initial = pack_sequence_as(elems, first)
            start_rows = [expand_dims(f, 0) for f in first]
        else:
            initial, start_rows = _map_structure(convert_to_tensor, initializer), None
        out_dtypes = [convert_to_tensor(a).dtype for a in flatten(initial)]

        def step(state, row):
            state = fn(state, row)
            return state, state

        _, rows = _loop_over_rows(step, elems, initial, out_dtypes, reverse, parallel_iterations, back_prop, True,
                                  start_rows, first=0 if initializer is not None else 1)
        if reverse:  # rows were produced last to first
            rows = [gather(r, tf_range(shape_of(r)[0] - 1, -1, -1)) for r in rows]
        return pack_sequence_as(initial, rows)


def _fold(fn, elems, initializer, parallel_iterations, back_prop, name, reverse):
    if not callable(fn):
        raise TypeError("fn must be callable.")
    with name_scope(name, "foldr" if reverse else "foldl"):
        flat = _rows_of(elems)
        if initializer is None:
            initial = pack_sequence_as(elems, [gather(e, shape_of(e)[0] - 1 if reverse else 0) for e in flat])
        else:
            initial = _map_structure(convert_to_tensor, initializer)

        def step(state, row):
            return fn(state, row), ()

        state, _ = _loop_over_rows(step, elems, initial, [], reverse, parallel_iterations, back_prop, False,
                                   first=0 if initializer is not None else 1)
        return state


def foldl(fn, elems, initializer=None, parallel_iterations=10, back_prop=True, swap_memory=False, name=None):
    """tf.foldl: `a = fn(a, row)` over the rows of `elems` from the first; returns the last `a`."""
    return _fold(fn, elems, initializer, parallel_iterations, back_prop, name, reverse=False)


def foldr(fn, elems, initializer=None, parallel_iterations=10, back_prop=True, swap_memory=False, name=None):
    """tf.foldr: as foldl, from the last row to the first."""
    return _fold(fn, elems, initializer, parallel_iterations, back_prop, name, reverse=True)
