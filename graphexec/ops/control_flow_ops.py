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
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.functional_ops import make_if, make_while
from graphexec.ops.math_ops import logical_and
from graphexec.ops.structure import flatten, pack_sequence_as
from graphexec.ops.tensor_array_ops import TensorArray

# The public API (graphexec/__init__.py star-imports it as tf.<name>).
__all__ = ["case", "cond", "while_loop"]


# -- tracing ------------------------------------------------------------------------------------------------
def _trace(scope: FunctionScope, fn, *args):
    """Call `fn` inside `scope`: (its results' structure, result tensors, positions that were ops)."""
    with scope.entered():
        scope.graph._name_stack = scope.name
        result = fn(*args)
        leaves = flatten(result)
        tensors, op_positions = [], []
        for i, leaf in enumerate(leaves):
            if isinstance(leaf, TensorArray):  # a loop carries a TensorArray as its rows
                leaf = leaf.flow
            elif isinstance(leaf, Operation):  # an op result (tf.group, an assign op): run it, return the caller
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
    template = flatten(loop_vars)
    leaves = [v.flow if isinstance(v, TensorArray) else convert_to_tensor(v) for v in template]
    if shape_invariants is None:
        invariants = [v._shape for v in leaves]
    else:
        invariants = [_invariant_shape(s) for s in _flatten_invariants(shape_invariants, loop_vars)]
    invariants = [None if isinstance(t, TensorArray) else s for t, s in zip(template, invariants)]  # rows grow
    for v, inv in zip(leaves, invariants):
        if not _satisfies(v._shape, inv):
            raise ValueError(f"The shape invariant specified for {v.name} is not compatible with the initial shape "
                             f"of the loop variable. It enters the loop with shape {_fmt(v._shape)}, but the "
                             f"specified shape invariant is {_fmt(inv)}.")
    cond_scope, body_scope = FunctionScope(graph, scope + "cond"), FunctionScope(graph, scope + "body")
    c_vars = [cond_scope.add_arg(v.dtype, inv) for v, inv in zip(leaves, invariants)]
    b_vars = [body_scope.add_arg(v.dtype, inv) for v, inv in zip(leaves, invariants)]
    n = len(leaves)
    _, c_out, _ = _trace(cond_scope, lambda: cond(*_as_args(pack_sequence_as(loop_vars, _wrap(template, c_vars)))))
    if len(c_out) != 1 or c_out[0].dtype is not dtypes.bool or c_out[0]._shape not in (None, ()):
        raise ValueError(f"cond of a while_loop must return one bool scalar, got {c_out}")
    single = _is_single(loop_vars)
    result, b_out, _ = _trace(body_scope, lambda: _body_result(
        body(*_as_args(pack_sequence_as(loop_vars, _wrap(template, b_vars)))), single))
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
    return pack_sequence_as(loop_vars, _wrap(flatten(result), outputs))


def _wrap(template: list, tensors: list[Tensor]) -> list:
    """`tensors` with those standing for a TensorArray of `template` wrapped as one again."""
    return [t._with_rows(x, t.element_shape) if isinstance(t, TensorArray) else x for t, x in zip(template, tensors)]


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
