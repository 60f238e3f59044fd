"""Large elementwise steps (one op or a fused chain) run in parts over the intra-op threads.

A part is a block of rows (axis 0) or, when every operand has the result's shape, a flat block of
elements; operands broadcast along axis 0 (a bias) go whole to every part. Parts are ~PART_ELEMENTS,
so a fused chain's intermediates stay in the cache, and run on the intra-op threads (numpy releases
the GIL in ufunc loops). W10, 2 cores: ReluGrad on [128, 28, 28, 32] 1.65 -> 0.87 ms. Each element
goes through the same operations as unsplit, so the bits are unchanged, and whether the parts go to
the helpers or run one after another on the caller's thread is decided by timing (runtime/split_choice.py).
"""
from __future__ import annotations

import math

import numpy as np

from graphexec.ir import TensorType
from graphexec.runtime import intra_op

PART_ELEMENTS = 1 << 18


def may_split(out_type: TensorType) -> bool:
    """Whether a step of this static result type might be large enough to split (decided per run)."""
    if out_type.dtype.np.kind not in "biuf":
        return False
    shape = out_type.shape
    return shape is None or None in shape or (len(shape) > 0 and math.prod(shape) >= intra_op.MIN_ELEMENTS)


def _whole(a, shape) -> bool:
    """Whether an operand goes whole to every row part (it broadcasts along axis 0)."""
    a_shape = getattr(a, "shape", ())
    return len(a_shape) < len(shape) or a_shape[0] == 1


def split(whole_fn, fn, out_type: TensorType, ufunc: str | None = None, donor: int | None = None):
    """`fn` (a kernel taking ctx, *operands) run in parts when its operands are large numpy arrays, else
    `whole_fn` (the same kernel, perhaps writing into its donor). A `ufunc` op writes each part straight
    into the result; a `donor` operand (dead after this step, see executor._donors) is the result's
    buffer when it fits."""
    dtype = out_type.dtype.np
    write = getattr(np, ufunc) if ufunc else None

    def run(ctx, *args):
        if ctx.xp is not np:
            return whole_fn(ctx, *args)
        try:
            shape = np.broadcast_shapes(*(getattr(a, "shape", ()) for a in args))
        except ValueError:
            return whole_fn(ctx, *args)  # the kernel reports the mismatch
        size = math.prod(shape)
        ways = intra_op.ways_for_elements(size)
        if ways == 1 or not shape or any(type(a) is not np.ndarray and getattr(a, "shape", ()) for a in args):
            return whole_fn(ctx, *args)
        flat = all(type(a) is np.ndarray and a.shape == shape and a.flags.c_contiguous for a in args)
        if not flat and shape[0] < 2:
            return whole_fn(ctx, *args)
        out = args[donor] if donor is not None else None
        if not (type(out) is np.ndarray and out.shape == shape and out.dtype == dtype and out.flags.writeable
                and out.flags.c_contiguous):
            out = np.empty(shape, dtype)
        if flat:
            operands, whole, target_of, length = [a.reshape(-1) for a in args], [False] * len(args), out.reshape(-1), size
        else:
            operands, whole, target_of, length = args, [_whole(a, shape) for a in args], out, shape[0]
        cuts = intra_op.split(length, 1, max(1, PART_ELEMENTS // max(size // length, 1)))

        def part(index):
            cut = cuts[index]
            target = target_of[cut]
            pieces = [a if keep else a[cut] for a, keep in zip(operands, whole)]
            if write is not None:
                write(*pieces, out=target)
                return
            result = fn(ctx, *pieces)
            if not (type(result) is np.ndarray and result.ctypes.data == target.ctypes.data):
                target[...] = result

        intra_op.run_timed((fn, shape), len(cuts), part, ways)  # on this thread where that was faster
        return out

    return run
