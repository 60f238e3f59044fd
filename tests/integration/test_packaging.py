"""The release artifacts: `python -m build` makes an sdist and a wheel that carry the license, py.typed and
the proto descriptors; the wheel installs into an empty virtual environment (dependencies from the package
index) and, from a folder outside the repository, runs the quickstart in-process and against its own
`graphexec serve`."""
from __future__ import annotations

import email
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest

from conftest import Process  # tests/integration is on sys.path (rootdir-relative conftest)

ROOT = pathlib.Path(__file__).resolve().parents[2]
QUICKSTART_OUTPUT = "[ 4  7 10]\n[5 6]\n[[3 5]\n [7 4]\n [6 8]]\n5\n"
SHIPPED = ("graphexec/py.typed", "graphexec/proto/v1/graphexec_v1.binpb", "graphexec/cli.py")

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(900)]


def run(argv, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False, **kwargs)
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, pathlib.Path]:
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(dist), str(ROOT)])
    return {"sdist": next(dist.glob("graphexec-*.tar.gz")), "wheel": next(dist.glob("graphexec-*.whl"))}


def test_sdist_carries_the_sources_license_and_markers(artifacts):
    with tarfile.open(artifacts["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"LICENSE", "README.md", "pyproject.toml", *SHIPPED} <= names


def test_wheel_carries_the_license_markers_and_metadata(artifacts):
    with zipfile.ZipFile(artifacts["wheel"]) as wheel:
        names = set(wheel.namelist())
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(wheel.read(f"{info}/METADATA"))
        license_text = wheel.read(f"{info}/licenses/LICENSE").decode()
    assert set(SHIPPED) <= names
    assert not any(name.startswith(("tests/", "server/", "client/", "bench/")) for name in names)
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata["Requires-Python"] == ">=3.10"
    assert "Typing :: Typed" in metadata.get_all("Classifier")
    assert info == f"graphexec-{metadata['Version']}.dist-info"


def test_installed_wheel_runs_the_quickstart_outside_the_repository(artifacts, tmp_path, processes):
    venv, outside = tmp_path / "venv", tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copy(ROOT / "examples" / "quickstart.py", outside)
    # An empty environment; this interpreter's pip installs into it (no ensurepip needed).
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    # Without PYTHONPATH: pip would count a checkout on it as graphexec installed, and skip the wheel.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GRAPHEXEC_TARGET", "VIRTUAL_ENV")}
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--disable-pip-version-check",
         str(artifacts["wheel"])], env=env)

    where = run([str(python), "-c", "import graphexec; print(graphexec.__file__)"], cwd=outside, env=env).stdout
    assert pathlib.Path(where.strip()).is_relative_to(venv)
    version = re.search(r"graphexec-([^-]+)-", artifacts["wheel"].name).group(1)
    assert run([str(venv / "bin" / "graphexec"), "--version"], cwd=outside, env=env).stdout == f"graphexec {version}\n"

    assert run([str(python), "quickstart.py"], cwd=outside, env=env).stdout == QUICKSTART_OUTPUT
    server = Process([str(venv / "bin" / "graphexec"), "serve", "--port", "0"], r"serving on (grpc://\S+)",
                     env={"PYTHONPATH": ""})
    processes.append(server)
    remote = run([str(python), "quickstart.py"], cwd=outside, env={**env, "GRAPHEXEC_TARGET": server.match.group(1)})
    assert remote.stdout == QUICKSTART_OUTPUT
