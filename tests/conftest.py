"""Shared test setup: every test starts with an empty default graph and no default session."""
import pytest

import graphexec as tf


@pytest.fixture(autouse=True)
def fresh_default_graph():
    tf.reset_default_graph()
    yield


@pytest.fixture(params=["numpy", "torch"])
def conv_library(request):
    """The test once with graphexec's own convolution kernels and once with oneDNN's (skipped when torch
    is not installed: scripts/test.sh installs it)."""
    from graphexec.runtime import conv_library as library

    if request.param == "torch":
        pytest.importorskip("torch")
    previous = library.choice()
    library.choose(request.param)
    yield request.param
    library.choose(previous)


@pytest.fixture
def two_threads(monkeypatch):
    """Two intra-op threads over one-thread BLAS calls, and parts small enough that test-sized kernels
    split (a module may define its own, for other thresholds)."""
    from graphexec.ops import conv_ops
    from graphexec.runtime import blas, intra_op

    blas.limit_threads(1)
    previous = intra_op.threads()
    intra_op.set_threads(2)
    monkeypatch.setattr(intra_op, "MIN_MACS", 1)
    monkeypatch.setattr(conv_ops, "CHUNK_BYTES", 4096)  # a few images per chunk
    yield
    intra_op.set_threads(previous)
