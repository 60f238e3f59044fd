"""The digits example end to end: each model reaches >= 97% test accuracy in under 60 s of training on
the fixed split (random_state=0). Marked `training` (they run in CI) with a timeout above the budget."""
import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "train_digits.py"
BUDGET_S = 60


def load_example():
    spec = importlib.util.spec_from_file_location("train_digits", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.training
@pytest.mark.timeout(180)
@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_digits_model_reaches_97_percent_within_a_minute(model):
    lines = []
    accuracy, seconds = load_example().train(model, log=lines.append)
    print(f"{model}: accuracy {accuracy:.4f} in {seconds:.1f} s")
    assert accuracy >= 0.97, "\n".join(lines)
    assert seconds < BUDGET_S, "\n".join(lines)


@pytest.mark.timeout(120)
def test_the_example_script_checkpoints_and_resumes(tmp_path):
    command = [sys.executable, str(EXAMPLE), "--model", "mlp", "--epochs", "1", "--checkpoint-dir", str(tmp_path)]
    first = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "saved" in first.stdout and (tmp_path / "checkpoint").exists()
    second = subprocess.run(command, capture_output=True, text=True, check=True)
    assert f"restored {tmp_path}/mlp-23" in second.stdout and "mlp-46" in second.stdout


@pytest.mark.timeout(120)
def test_training_on_a_server_gives_the_in_process_result(embedded):
    """The same example program, unchanged, on `graphexec serve` (GRAPHEXEC_TARGET): the optimizer's
    update ops run on the server and the model ends where the in-process run ends."""
    example = load_example()
    local_lines, remote_lines = [], []
    local, _ = example.train("mlp", epochs=2, log=local_lines.append)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRAPHEXEC_TARGET", embedded)
        remote, _ = example.train("mlp", epochs=2, log=remote_lines.append)
    assert remote == pytest.approx(local, abs=1e-9), (local_lines, remote_lines)
    assert remote_lines[-1].split(" in ")[0] == local_lines[-1].split(" in ")[0]


@pytest.mark.timeout(120)
def test_without_scikit_learn_the_example_says_what_to_install(tmp_path):
    """A machine with graphexec but not scikit-learn (a plain `pip install graphexec`) gets one line naming
    the extra to install, not a traceback. An `sklearn` that fails to import stands in for a missing one."""
    (tmp_path / "sklearn").mkdir()
    (tmp_path / "sklearn" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'sklearn'\", name='sklearn')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(EXAMPLE.parents[1])])}
    result = subprocess.run([sys.executable, str(EXAMPLE), "--epochs", "1"], check=False, capture_output=True,
                            text=True, env=env, timeout=90)
    assert result.returncode == 1
    assert "pip install 'graphexec[examples]'" in result.stderr and "No module named 'sklearn'" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr
