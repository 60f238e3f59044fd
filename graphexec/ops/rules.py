"""Shape and dtype rules shared by op families (TF's UnchangedShape, BroadcastBinaryOpShapeFn...)."""
from __future__ import annotations

from graphexec import dtypes
from graphexec.ops.registry import Aval, ShapeError


def broadcast_shapes(*shapes):
    """numpy broadcasting over partial shapes; None dims stay unknown unless the other side fixes them."""
    if any(s is None for s in shapes):
        return None
    # The common cases first: scalars broadcast into any shape, and equal shapes broadcast to themselves.
    nonscalar = [s for s in shapes if s]
    if not nonscalar:
        return ()
    if all(s == nonscalar[0] for s in nonscalar):
        return tuple(nonscalar[0])
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for axis in range(rank):
        dims = [s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0]
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            raise ShapeError(f"shapes are incompatible for broadcasting: {', '.join(fmt(s) for s in shapes)}")
        if known:
            out.append(known.pop())
        elif all(d == 1 for d in dims):
            out.append(1)
        else:
            out.append(None)
    return tuple(out)


def fmt(shape) -> str:
    if shape is None:
        return "<unknown>"
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


def broadcast(args: list[Aval], attrs) -> tuple | None:
    return broadcast_shapes(*(a.shape for a in args))


def unchanged(args: list[Aval], attrs):
    return args[0].shape


def scalar(args, attrs):
    return ()


def same_dtype(*allowed: dtypes.DType):
    """Dtype rule: every input has one dtype, among `allowed` when given; the output has it too."""
    allowed_names = ", ".join(d.name for d in allowed)

    def rule(args: list[Aval], attrs):
        first = args[0].dtype
        for a in args[1:]:
            if a.dtype is not first:
                raise ShapeError(f"inputs must have the same dtype, got {', '.join(x.dtype.name for x in args)}")
        if allowed and first not in allowed:
            raise ShapeError(f"dtype {first.name} is not supported; expected one of {allowed_names}")
        return first

    return rule


def returns(dtype: dtypes.DType, *, inputs_alike=False, allowed=()):
    """Dtype rule with a fixed output dtype (e.g. comparisons -> bool), optionally checking inputs."""
    check = same_dtype(*allowed) if (inputs_alike or allowed) else None

    def rule(args, attrs):
        if check is not None:
            check(args, attrs)
        return dtype

    return rule


def attr_dtype(name: str = "dtype"):
    return lambda args, attrs: attrs[name]


def normalize_axis(axis: int, rank: int | None, what: str = "axis") -> int:
    if rank is None:
        return axis
    if not -rank <= axis < max(rank, 1):
        raise ShapeError(f"{what} {axis} is out of range for a tensor of rank {rank}")
    return axis % rank if rank else 0

