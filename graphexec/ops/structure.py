"""Nested structures of tensors (tf.nest's flatten and pack_sequence_as): lists, tuples, namedtuples and
dicts (by sorted key) nest; anything else is a leaf."""
from __future__ import annotations


def _is_nested(x) -> bool:
    return isinstance(x, (list, tuple, dict))


def flatten(structure) -> list:
    """The leaves of `structure`, depth first (a dict's values in sorted key order)."""
    out, stack = [], [structure]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item[k] for k in sorted(item, reverse=True))
        elif isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def pack_sequence_as(structure, leaves):
    """`structure` with its leaves replaced, in order, by `leaves`."""
    leaves = list(leaves)
    position = [0]

    def build(item):
        if isinstance(item, dict):
            built = {k: build(item[k]) for k in sorted(item)}
            return type(item)((k, built[k]) for k in item)
        if isinstance(item, (list, tuple)):
            parts = [build(x) for x in item]
            if isinstance(item, tuple) and hasattr(item, "_fields"):  # a namedtuple
                return type(item)(*parts)
            return type(item)(parts)
        if position[0] >= len(leaves):
            raise ValueError(f"structure has more leaves than the {len(leaves)} given")
        position[0] += 1
        return leaves[position[0] - 1]

    result = build(structure)
    if position[0] != len(leaves):
        raise ValueError(f"structure has {position[0]} leaves, but {len(leaves)} were given")
    return result
