"""Load, run and compare the tutorial programs of `programs/` (shared by make_golden.py and the tests).

A program is a plain TF1 script that starts with `import graphexec as tf`. Two kinds:

* a program with `main()` returning a dict runs in the calling process; its dict, made JSON-plain, is
  the result;
* a program with a module-level `ARGV` list runs as a script (`python program.py *ARGV`); its stdout and
  stderr are the result (tf.Print writes to stderr, tf.app.run parses ARGV's flags).

Under real TensorFlow the same source runs with the name `graphexec` bound to `tensorflow.compat.v1`
(v2 behaviour disabled): `load(name, tf_module)` for in-process programs, `as_tensorflow.py` for scripts.
"""
from __future__ import annotations

import ast
import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PROGRAMS = HERE / "programs"
GOLDEN = HERE / "golden"
VALUE_TOLERANCE = 1e-5  # deterministic values: absolute difference
ACCURACY_TOLERANCE = 0.02  # keys naming an accuracy: two points


def program_names() -> list[str]:
    return sorted(path.stem for path in PROGRAMS.glob("*.py") if not path.stem.startswith("_"))


def script_argv(name: str) -> list[str] | None:
    """A script program's ARGV (read from its source: running it here would define its flags twice), or
    None for a program with main()."""
    tree = ast.parse((PROGRAMS / f"{name}.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["ARGV"]:
            return ast.literal_eval(node.value)
    return None


def load(name: str, tf_module=None):
    """The program's module, executed with `graphexec` bound to `tf_module` when one is given."""
    spec = importlib.util.spec_from_file_location(f"tutorial_{name}", PROGRAMS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    saved = sys.modules.get("graphexec")
    if tf_module is not None:
        sys.modules["graphexec"] = tf_module
    try:
        spec.loader.exec_module(module)
    finally:
        if tf_module is not None:
            sys.modules["graphexec"] = saved if saved is not None else sys.modules.pop("graphexec")
    return module


def plain(value):
    """`value` as JSON-plain data: arrays and numpy scalars become lists and numbers, bytes become str."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"non-finite value {value} in a program's result")
    return value


def run_main(module) -> dict:
    return plain(module.main())


def run_script(name: str, argv, env: dict, launcher=()) -> dict:
    """Run programs/<name>.py as a script with `argv`; its stdout and stderr."""
    # A script's own folder heads sys.path, so PYTHONPATH names this checkout for `import graphexec`.
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, *launcher, str(PROGRAMS / f"{name}.py"), *argv], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": path, **env}, capture_output=True, text=True, timeout=120,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{name} exited with {done.returncode}:\n{done.stderr}")
    return {"stdout": done.stdout, "stderr": done.stderr}


def differences(result, golden, tolerance: float = VALUE_TOLERANCE, path: str = "") -> list[str]:
    """Where `result` departs from `golden`: numbers beyond `tolerance` (two points for accuracies),
    anything else unequal. Empty when they agree."""
    if "accuracy" in path.rsplit(".", 1)[-1]:
        tolerance = ACCURACY_TOLERANCE
    if isinstance(golden, dict) and isinstance(result, dict):
        if set(golden) != set(result):
            return [f"{path or 'result'}: keys {sorted(result)} != {sorted(golden)}"]
        return [d for key in golden for d in differences(result[key], golden[key], tolerance, f"{path}.{key}")]
    if isinstance(golden, list) and isinstance(result, list):
        if len(golden) != len(result):
            return [f"{path}: length {len(result)} != {len(golden)}"]
        return [d for i, (r, g) in enumerate(zip(result, golden)) for d in differences(r, g, tolerance, f"{path}[{i}]")]
    numbers = (int, float)
    if isinstance(golden, numbers) and isinstance(result, numbers) and not isinstance(golden, bool):
        return [] if abs(result - golden) <= tolerance else [f"{path}: {result!r} != {golden!r} (tolerance {tolerance})"]
    return [] if result == golden else [f"{path}: {result!r} != {golden!r}"]
