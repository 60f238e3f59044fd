"""Clipping by norm: clip_by_norm, global_norm and clip_by_global_norm, compositions as in TF (their
gradients come from the ops they are built of). clip_by_value lives with the math ops."""
from __future__ import annotations

import numpy as np

from graphexec.framework import name_scope
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.emit import emit

# The public API (graphexec/__init__.py star-imports it as tf.<name>).
__all__ = ["clip_by_global_norm", "clip_by_norm", "global_norm"]


def _constant_like(value, like):
    return convert_to_tensor(np.asarray(value, dtype=like.dtype.np))


def _squared_sum(t, axes=None, keepdims=False):
    return emit("Sum", emit("Square", t), axis=None if axes is None else tuple(np.atleast_1d(axes).tolist()),
                keepdims=keepdims)


def clip_by_norm(t, clip_norm, axes=None, name=None):
    """t * clip_norm / max(l2norm(t), clip_norm), the norm over `axes` (all by default); zero stays zero."""
    with name_scope(name, "clip_by_norm") as scope:
        t = convert_to_tensor(t)
        clip_norm = convert_to_tensor(clip_norm, dtype=t.dtype)
        l2sum = _squared_sum(t, axes, keepdims=True)
        positive = emit("Greater", l2sum, _constant_like(0, t))
        safe = emit("Select", positive, l2sum, emit("OnesLike", l2sum))  # no sqrt(0) in the gradient
        l2norm = emit("Select", positive, emit("Sqrt", safe), l2sum)
        return emit("RealDiv", emit("Mul", t, clip_norm), emit("Maximum", l2norm, clip_norm), name=scope)


def global_norm(t_list, name=None):
    """sqrt(sum of the squared elements of every tensor in t_list); None entries are skipped."""
    with name_scope(name, "global_norm") as scope:
        tensors = [convert_to_tensor(t) for t in t_list if t is not None]
        if not tensors:
            raise ValueError("global_norm needs at least one tensor")
        sums = [_squared_sum(t) for t in tensors]
        total = sums[0] if len(sums) == 1 else emit("AddN", *sums)
        return emit("Sqrt", total, name=scope)


def clip_by_global_norm(t_list, clip_norm, use_norm=None, name=None):
    """(each tensor * clip_norm / max(global_norm, clip_norm), global_norm); None entries stay None."""
    if isinstance(t_list, (str, bytes)) or hasattr(t_list, "dtype") or not hasattr(t_list, "__iter__"):
        raise TypeError("t_list should be a sequence")
    t_list = list(t_list)
    with name_scope(name, "clip_by_global_norm") as scope:
        norm = global_norm(t_list) if use_norm is None else convert_to_tensor(use_norm)
        clip_norm = convert_to_tensor(clip_norm, dtype=norm.dtype)
        one = _constant_like(1, norm)
        # clip_norm * min(1 / norm, 1 / clip_norm): NaN when the norm is infinite, as in TF
        scale = emit("Mul", clip_norm, emit("Minimum", emit("RealDiv", one, norm), emit("RealDiv", one, clip_norm)))
        clipped = []
        for i, t in enumerate(t_list):
            if t is None:
                clipped.append(None)
                continue
            t = convert_to_tensor(t)
            factor = scale if t.dtype is norm.dtype else emit("Cast", scale, DstT=t.dtype)
            clipped.append(emit("Mul", t, factor, name=f"{scope}clipped_{i}"))
        return clipped, norm
