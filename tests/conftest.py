"""Shared test setup: every test starts with an empty default graph and no default session."""
import pytest

import graphexec as tf


@pytest.fixture(autouse=True)
def fresh_default_graph():
    tf.reset_default_graph()
    yield
