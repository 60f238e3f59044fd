"""Fixtures that start real processes on 127.0.0.1 and free ports, always killed at teardown.

* `redis_server`: a private `redis-server --port <free> --save '' --appendonly no`.
* `serve(...)`: `python -m graphexec serve --port 0 [...]`, waiting for its "serving on" line.
* `worker(redis_url)`: `python -m graphexec worker --redis URL`, waiting until it has registered.
* `embedded`: one `graphexec serve` with no Redis (module-scoped: most tests share it).
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest

READY_TIMEOUT_S = 30


def started_tunables(pid: int) -> set[str]:
    """The glibc tunables (`name=value`) process `pid` was started with, from /proc/PID/environ. glibc parses
    GLIBC_TUNABLES where it lies, and some builds (Debian's 2.36-9+deb12u14) leave a NUL in place of each
    ':' there: the variable then reads as its first tunable, each other one an entry of its own after it."""
    seen, inside = set(), False
    for entry in open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace").split("\0"):
        if entry.startswith("GLIBC_TUNABLES="):
            entry, inside = entry[len("GLIBC_TUNABLES="):], True
        elif not (inside and entry.startswith("glibc.")):
            inside = False
            continue
        seen.update(part for part in entry.split(":") if part)
    return seen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A child process whose first output lines are read until one matches `ready`."""

    def __init__(self, argv, ready: str, env=None):
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, **(env or {})}, start_new_session=True)
        self.output: list[str] = []
        self.match = self._wait_for(re.compile(ready))

    def _wait_for(self, pattern):
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                if self.proc.poll() is not None:
                    break
                continue
            self.output.append(line)
            match = pattern.search(line)
            if match:
                return match
        self.kill()
        raise RuntimeError(f"{self.argv} did not become ready:\n{''.join(self.output)}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture
def processes():
    started: list[Process] = []
    yield started
    for process in reversed(started):
        process.kill()


class RedisServer:
    def __init__(self, processes):
        self.processes = processes
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.start()

    def start(self):
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.process = Process([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no"], r"Ready to accept connections")
        self.processes.append(self.process)


@pytest.fixture
def redis_server(processes):
    return RedisServer(processes)


def start_serve(processes, *args, env=None) -> str:
    process = Process([sys.executable, "-m", "graphexec", "serve", "--port", "0", *args],
                      r"serving on (grpcs?://\S+)", env)
    processes.append(process)
    return process.match.group(1)


def start_worker(processes, redis_url, *args) -> Process:
    process = Process([sys.executable, "-m", "graphexec", "worker", "--redis", redis_url, *args],
                      r"graphexec worker (\S+) .*serving on")
    processes.append(process)
    return process


@pytest.fixture
def serve(processes):
    return lambda *args, env=None: start_serve(processes, *args, env=env)


@pytest.fixture
def worker(processes):
    return lambda redis_url, *args: start_worker(processes, redis_url, *args)


@pytest.fixture(scope="module")
def embedded():
    """The target of a `graphexec serve` with no Redis, shared by a module's tests."""
    started: list[Process] = []
    try:
        yield start_serve(started)
    finally:
        for process in started:
            process.kill()


def live_workers(target: str) -> set[str]:
    import graphexec as tf

    with tf.Session(target, graph=tf.Graph()) as sess:
        return {d.worker for d in sess.list_devices()}


@pytest.fixture
def wait_for_workers():
    def wait(target: str, count: int, timeout_s: float = 15.0) -> set[str]:
        """Until the server at `target` sees exactly `count` live workers; returns their ids."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            workers = live_workers(target)
            if len(workers) == count:
                return workers
            time.sleep(0.1)
        raise AssertionError(f"{target} did not see {count} workers within {timeout_s} s")

    return wait


def deadline_model():
    """(graph, x, counter, long_update, quick_update, value): `long_update` bumps `counter` after 300
    512x512 matmuls (far past a 50 ms deadline); `quick_update` bumps the same counter at once."""
    import numpy as np

    import graphexec as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [512, 512])
        counter = tf.Variable(0, name="deadline_counter")
        y = x
        for _ in range(300):
            y = tf.tanh(tf.matmul(y, x))
        with tf.control_dependencies([y]):
            long_update = counter.assign_add(1)
        quick_update = counter.assign_add(1)
    value = np.random.default_rng(0).normal(size=(512, 512)).astype(np.float32) * 0.05
    return graph, x, counter, long_update, quick_update, value
