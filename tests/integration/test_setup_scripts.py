"""The README's two commands on a machine that has only its distribution's python3: a copy of the repository
(its tracked files, as a clone has them), an environment with nothing but HOME and PATH=/usr/bin:/bin, and
the commands started from the folder that holds the copy. The package caches of this machine are lent so
that the dependencies are not downloaded again."""
from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = pathlib.Path("/usr/bin/python3")
QUICKSTART_OUTPUT = "[ 4  7 10]\n[5 6]\n[[3 5]\n [7 4]\n [6 8]]\n5\n"

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(1200)]


def system_python_is_supported() -> bool:
    if not SYSTEM_PYTHON.exists():
        return False
    check = [str(SYSTEM_PYTHON), "-c", "import sys; sys.exit(sys.version_info < (3, 10))"]
    return subprocess.run(check, check=False).returncode == 0


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> pathlib.Path:
    if not system_python_is_supported() or shutil.which("git") is None:
        pytest.skip("needs /usr/bin/python3 >= 3.10 and git")
    parent = tmp_path_factory.mktemp("parent")
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (parent / "graphexec" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, parent / "graphexec" / name)
    (parent / "home").mkdir()
    return parent / "graphexec"


def clean_run(clone: pathlib.Path, *argv: str) -> subprocess.CompletedProcess:
    home = clone.parent / "home"
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "PIP_CACHE_DIR": str(pathlib.Path.home() / ".cache" / "pip"),
           "npm_config_cache": str(pathlib.Path.home() / ".npm"), "PYTHON": str(SYSTEM_PYTHON)}
    return subprocess.run(argv, cwd=clone.parent, env=env, capture_output=True, text=True, timeout=1100, check=False)


def test_run_sh_makes_a_venv_runs_the_quickstart_then_reuses_it(clone):
    first = clean_run(clone, "bash", "graphexec/scripts/run.sh", "--once")
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"making a virtual environment in .venv with {SYSTEM_PYTHON}" in first.stdout
    assert first.stdout.endswith(QUICKSTART_OUTPUT), first.stdout
    again = clean_run(clone, "bash", "graphexec/scripts/run.sh", "--once")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "using .venv (up to date with pyproject.toml)" in again.stdout
    assert "installing" not in again.stdout and again.stdout.endswith(QUICKSTART_OUTPUT)


def test_test_sh_runs_node_buf_and_pytest_in_the_venv(clone):
    done = clean_run(clone, "bash", "graphexec/scripts/test.sh", "-k", "test_docs_table_states_the_cli_settings")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "installing graphexec[test,kernels]" in done.stdout
    assert "buf lint: clean" in done.stdout
    assert done.stdout.strip().splitlines()[-1].startswith("1 passed, ")
