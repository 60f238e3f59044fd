"""The control-flow programs of golden/control_flow/programs.py give real TensorFlow's numbers (values and
gradients), kept in golden.json by make_golden.py."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import graphexec as tf
from tests.unit.golden.control_flow.programs import CASES, PROGRAMS

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "control_flow", "golden.json")


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_matches_tensorflow(name):
    with open(GOLDEN) as f:
        golden = json.load(f)[name]
    graph = tf.Graph()
    with graph.as_default():
        feeds, fetches = PROGRAMS[name](tf)
    with tf.Session(graph=graph) as sess:
        for case, want in zip(CASES[name], golden):
            got = sess.run(fetches, {feeds[k]: v for k, v in case.items()})
            assert set(got) == set(want)
            for key, value in want.items():
                np.testing.assert_allclose(got[key], value, rtol=1e-10, atol=1e-12, err_msg=f"{name} {key}")
