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
