"""The `graphexec` command as a person meets it: --version, --help with every default and variable, one-line
errors that say the fix (port in use, bad or unreachable Redis), `serve --redis` without workers, serving
from the folder that holds a clone (a folder named graphexec), and `scripts/run.sh --redis URL --once`."""
from __future__ import annotations

import os
import pathlib
import re
import socket
import subprocess
import sys

import pytest

import graphexec as tf
from graphexec import cli
from graphexec.runtime import tuning

from conftest import Process, free_port, started_tunables  # tests/integration is on sys.path (rootdir-relative conftest)

ROOT = pathlib.Path(__file__).resolve().parents[2]
QUICKSTART_OUTPUT = ("[ 4  7 10]", "[5 6]", "[[3 5]\n [7 4]\n [6 8]]", "5")


def graphexec_command(*args, cwd=None, env=None, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "graphexec", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def assert_one_line_error(done: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_version_is_the_package_version():
    done = graphexec_command("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"graphexec {cli.version()}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", cli.version())


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_help_shows_every_flag_with_its_default_and_variable(command):
    done = graphexec_command(command, "--help", env={"GRAPHEXEC_REDIS_URL": "redis://127.0.0.1:1/0", "COLUMNS": "300"})
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    settings = [s for s in cli.SETTINGS if command in s.commands()]
    assert {"--host", "--port", "--redis", "--device", "--threads", "--log-level"} <= {s.flag for s in settings}
    for setting in settings:
        entries = re.split(r"\n(?=  -)", done.stdout)  # one per option, however argparse wraps it
        entry = " ".join(next((e for e in entries if e.strip().startswith(setting.flag + " ")), "").split())
        assert f"(default: {setting.shown_default}; env {setting.variable}" in entry, (setting, entry)
    assert "now 'redis://127.0.0.1:1/0'" in text  # a variable that is set shows its value


def test_port_in_use_is_one_line_naming_the_flag():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = graphexec_command("serve", "--port", str(port))
    assert_one_line_error(done, 1, f"cannot listen on 127.0.0.1:{port}", "in use", "--port (GRAPHEXEC_PORT)")


def test_bad_redis_url_is_one_line_showing_the_right_form():
    for command in ("serve", "worker"):
        done = graphexec_command(command, "--port", "0", "--redis", "htp://127.0.0.1:6379")
        assert_one_line_error(done, 2, f"graphexec {command}: error: --redis 'htp://127.0.0.1:6379' is not a Redis URL",
                              "redis://HOST:6379/0")


def test_unreachable_redis_is_one_line_saying_what_to_do():
    url = f"redis://127.0.0.1:{free_port()}/0"
    for command in ("serve", "worker"):
        done = graphexec_command(command, "--port", "0", "--redis", url)
        assert_one_line_error(done, 1, f"Redis at {url} is unavailable", "start Redis there or point --redis")


def test_bad_variable_is_reported_like_a_bad_flag():
    done = graphexec_command("serve", env={"GRAPHEXEC_PORT": "seventy"})
    assert done.returncode == 2 and "argument --port: invalid int value: 'seventy'" in done.stderr, done.stderr
    done = graphexec_command("serve", env={"GRAPHEXEC_DEVICE": "tpu"})
    assert done.returncode == 2 and "GRAPHEXEC_DEVICE='tpu': choose from cpu, gpu" in done.stderr, done.stderr


def test_serve_with_redis_and_no_worker_warns_then_runs_fail_precisely(redis_server, processes):
    server = Process([sys.executable, "-m", "graphexec", "serve", "--port", "0", "--redis", redis_server.url],
                     r"serving on (grpc://\S+)")
    processes.append(server)
    warning = next(line for line in server.output if "warning" in line)
    assert f"no live worker is registered in Redis at {redis_server.url}" in warning
    assert f"graphexec worker --redis {redis_server.url}" in warning
    no_worker = "no live worker: start one with `graphexec worker --redis URL`"
    with tf.Session(server.match.group(1)) as session, pytest.raises(tf.errors.UnavailableError, match=no_worker):
        session.run(tf.add(tf.constant(1), tf.constant(2)))


def test_serve_from_the_folder_that_holds_a_clone(tmp_path, processes):
    """A folder named graphexec without __init__.py (a clone of the repository, with its server/ and client/
    folders) in the current folder must not stand in for the package, in the first process nor in the one it
    re-executes with a short BLAS spin."""
    for folder in ("graphexec/server", "graphexec/client", "graphexec/graphexec"):
        (tmp_path / folder).mkdir(parents=True)
    # As the console script starts: its own folder first on sys.path, the current folder not on it.
    console_script = f"import sys; sys.path[0] = {str(ROOT)!r}; from graphexec.cli import main; main()"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_THREAD_TIMEOUT", "PYTHONPATH", "GLIBC_TUNABLES")}
    server = subprocess.Popen([sys.executable, "-c", console_script, "serve", "--port", "0"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        line = server.stdout.readline()
        address = re.search(r"serving on (grpc://\S+)", line)
        assert address, line + server.stdout.read() if server.poll() is not None else line
        # The same process (execv keeps the pid) now runs with the short spin, set before numpy loaded.
        environment = pathlib.Path(f"/proc/{server.pid}/environ").read_bytes().split(b"\0")
        assert f"{cli.BLAS_SPIN_VARIABLE}={cli.BLAS_SPIN}".encode() in environment
        # glibc's: one malloc arena, and the copy setting on AMD processors with FSRM
        changes = tuning.server_tunables(env)
        assert set(changes) <= {"GLIBC_TUNABLES"}
        if changes:
            assert set(changes["GLIBC_TUNABLES"].split(":")) <= started_tunables(server.pid)
        with tf.Session(address.group(1)) as session:
            assert session.run(tf.add(tf.constant(2), tf.constant(3))) == 5
    finally:
        server.kill()
        server.wait(timeout=10)
        server.stdout.close()


@pytest.mark.timeout(600)
def test_run_sh_with_redis_starts_a_worker_when_none_is_live(redis_server):
    done = subprocess.run(["bash", str(ROOT / "scripts" / "run.sh"), "--redis", redis_server.url, "--once"],
                          capture_output=True, text=True, timeout=540, env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"starting one (graphexec worker --redis {redis_server.url})" in done.stdout
    for printed in QUICKSTART_OUTPUT:
        assert printed in done.stdout
