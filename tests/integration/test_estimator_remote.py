"""The digits Estimator program, unchanged, on a real `graphexec serve` (GRAPHEXEC_TARGET): it trains,
stops, resumes from the checkpoint the client wrote, evaluates and predicts, ending exactly where the
in-process run ends."""
from __future__ import annotations

import importlib.util
import os
import pathlib

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
PROGRAMS = pathlib.Path(__file__).resolve().parents[1] / "unit" / "estimator_programs.py"


def load_programs():
    spec = importlib.util.spec_from_file_location("estimator_programs", PROGRAMS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.training
@pytest.mark.timeout(600)
def test_the_estimator_on_a_server_gives_the_in_process_result(serve, tmp_path):
    # One BLAS thread on both sides: the same float sums in the same order, so the same model.
    target = serve(env=ONE_THREAD)
    programs = load_programs()
    with threadpool_limits(limits=1, user_api="blas"):
        local = programs.train_stop_resume_evaluate_predict(tmp_path / "local")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("GRAPHEXEC_TARGET", target)
            remote = programs.train_stop_resume_evaluate_predict(tmp_path / "remote")
    assert remote["final"]["accuracy"] >= 0.97
    for stage in ("early", "final"):
        assert remote[stage] == local[stage], stage
    assert [p["classes"] for p in remote["predictions"]] == [p["classes"] for p in local["predictions"]]
    np.testing.assert_array_equal(remote["kernel"], local["kernel"])
    assert os.path.basename(remote["latest"]) == "model.ckpt-400"
    checkpoints = [sorted(n for n in os.listdir(tmp_path / side) if "ckpt" in n) for side in ("local", "remote")]
    assert checkpoints[0] == checkpoints[1] == [f"model.ckpt-{step}.gxckpt" for step in (200, 300, 400)]
