"""Imported first by every tests/gpu module: skips the module unless CuPy imports and sees a GPU.
Wherever these tests run, they must pass."""
import pytest

cupy = pytest.importorskip("cupy")
try:
    _devices = cupy.cuda.runtime.getDeviceCount()
except cupy.cuda.runtime.CUDARuntimeError:
    _devices = 0
if not _devices:
    pytest.skip("CuPy sees no GPU", allow_module_level=True)
