"""If/While/WhileGrad and TensorArray plans run on CuPy with the numbers numpy gives."""
from __future__ import annotations

import numpy as np
import pytest

from gpu_required import cupy  # noqa: E402 - skips this module without CuPy or a GPU

pytestmark = pytest.mark.timeout(300)

import graphexec as tf  # noqa: E402
from graphexec import ir  # noqa: E402
from graphexec.compiler.pipeline import compile_program  # noqa: E402
from graphexec.runtime.context import ExecContext  # noqa: E402
from graphexec.runtime.executor import LoadedPlan  # noqa: E402


def _plan():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float64, [4, 3], name="x")
        rows = tf.map_fn(lambda r: tf.reduce_sum(r * r), x)
        _, y = tf.while_loop(lambda i, y: i < 3, lambda i, y: (i + 1, tf.sin(y) * x), [0, x])
        z = tf.cond(tf.reduce_sum(rows) > 1.0, lambda: y * 2.0, lambda: y - 1.0)
        grad = tf.gradients(tf.reduce_sum(z * z) + tf.reduce_sum(rows), x)[0]
    program = ir.Program(graph.nodes(), feeds=("x:0",), fetches=(z.name, rows.name, grad.name))
    return compile_program(program, "gpu")


def test_control_flow_on_cupy_matches_numpy():
    plan = _plan()
    for feed in (np.random.default_rng(0).standard_normal((4, 3)), np.zeros((4, 3))):
        expected = LoadedPlan(plan).run(ExecContext(np), [feed])
        got = LoadedPlan(plan, cupy).run(ExecContext(cupy), [cupy.asarray(feed)])
        for g, e in zip(got, expected):
            np.testing.assert_allclose(cupy.asnumpy(g), e, rtol=1e-12, atol=1e-12)
