"""Shared shape rules: broadcasting over known shapes agrees with numpy; partial shapes stay partial."""
import itertools

import numpy as np
import pytest

from graphexec.ops import rules
from graphexec.ops.registry import ShapeError

KNOWN = [()] + [tuple(p) for rank in (1, 2, 3) for p in itertools.product((1, 2, 3), repeat=rank)]


def test_known_shapes_broadcast_as_numpy_does():
    for a, b in itertools.product(KNOWN, repeat=2):
        try:
            expected = np.broadcast_shapes(a, b)
        except ValueError:
            with pytest.raises(ShapeError, match="incompatible for broadcasting"):
                rules.broadcast_shapes(a, b)
            continue
        assert rules.broadcast_shapes(a, b) == expected, (a, b)


@pytest.mark.parametrize("shapes, expected", [
    (((None, 3), ()), (None, 3)),  # a scalar broadcasts into anything
    (((None, 3), (None, 3)), (None, 3)),  # equal partial shapes
    (((None, 3), (4, 1)), (4, 3)),  # a known dim fixes an unknown one
    (((None,), (1,)), (None,)),
    (((None,), None), None),  # unknown rank
    (((), ()), ()),
])
def test_partial_shapes(shapes, expected):
    assert rules.broadcast_shapes(*shapes) == expected
