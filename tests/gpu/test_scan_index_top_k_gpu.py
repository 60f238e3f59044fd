"""The kernels of cumsum/cumprod, gather_nd/scatter_nd and top_k on CuPy agree with numpy."""
from __future__ import annotations

import numpy as np
import pytest

from gpu_required import cupy  # noqa: E402 - skips this module without CuPy or a GPU

pytestmark = pytest.mark.timeout(300)

from graphexec.ops import every_op  # noqa: E402
from graphexec.runtime.context import ExecContext  # noqa: E402

RNG = np.random.default_rng(0)
X = np.round(RNG.standard_normal((3, 4, 5)) * 2).astype(np.float32)  # rounded: ties for top_k
INDICES = np.array([[[0, 1], [2, 3]], [[1, 1], [0, 0]]], np.int64)

KERNEL_CASES = {
    "Cumsum": ([X, np.int32(1)], {"exclusive": True, "reverse": False}),
    "Cumsum reverse": ([X.astype(np.int32), np.int32(-1)], {"exclusive": False, "reverse": True}),
    "Cumprod": ([X, np.int32(0)], {"exclusive": True, "reverse": True}),
    "GatherNd": ([X, INDICES], {}),
    "GatherNd full index": ([X, np.array([[0, 1, 2], [2, 3, 4]], np.int32)], {}),
    "ScatterNd": ([INDICES, np.ones((2, 2, 5), np.float32), np.array([3, 4, 5], np.int32)], {}),
    "TopKV2": ([X, np.int32(3)], {"sorted": True}),
    "TopKV2 whole row": ([X.astype(np.int64), np.int32(5)], {"sorted": True}),
}


@pytest.mark.parametrize("case", sorted(KERNEL_CASES))
def test_kernel_on_cupy_matches_numpy(case):
    inputs, attrs = KERNEL_CASES[case]
    kernel = every_op.REGISTRY[case.split()[0]].kernel
    expected = kernel(ExecContext(np), *inputs, **attrs)
    got = kernel(ExecContext(cupy), *[cupy.asarray(x) for x in inputs], **attrs)
    expected, got = (list(v) if isinstance(v, (list, tuple)) else [v] for v in (expected, got))
    for g, e in zip(got, expected):
        g = cupy.asnumpy(g)
        assert g.dtype == np.asarray(e).dtype
        np.testing.assert_array_equal(g, e)
