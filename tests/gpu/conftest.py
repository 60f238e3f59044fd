"""tests/gpu run where CuPy imports and sees a GPU, and must pass wherever they run; elsewhere every
test here is skipped (each module also imports CuPy with pytest.importorskip)."""
import importlib.util

import pytest


def _sees_a_gpu() -> bool:
    if importlib.util.find_spec("cupy") is None:
        return False
    import cupy

    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except cupy.cuda.runtime.CUDARuntimeError:
        return False


HAS_GPU = _sees_a_gpu()


def pytest_collection_modifyitems(config, items):
    here = str(config.rootpath / "tests" / "gpu")
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.timeout(300))
            if not HAS_GPU:
                item.add_marker(pytest.mark.skip(reason="CuPy sees no GPU"))
