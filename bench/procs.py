"""Starting and stopping the server processes the adapters talk to."""

import os
import queue
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time


# Redis as docker-compose.yml and deploy/k8s run it: its jemalloc keeps the pages of freed values for the
# next ones instead of handing them back to the kernel at once (docs/configuration.md, "Redis's memory
# allocator"; a 200 MB commit faulted in all 49K of its pages each time). Debian's redis-server links the
# system jemalloc, which reads MALLOC_CONF; Redis's own build prefixes jemalloc's names: JE_MALLOC_CONF.
REDIS_MALLOC_CONF = "dirty_decay_ms:-1"
# With nothing to purge, jemalloc's background thread only costs wake-ups: W3's commit (its 800 KB value
# renamed over the last) took 40 us of Redis's EVALSHA without it against 59 with it (docs/configuration.md).
REDIS_ARGS = ("--jemalloc-bg-thread", "no")


def redis_env() -> dict:
    """The environment to start a redis-server with."""
    return {**os.environ, "MALLOC_CONF": REDIS_MALLOC_CONF, "JE_MALLOC_CONF": REDIS_MALLOC_CONF}


def start_redis(redis_server: str) -> tuple["ServerProcess", str]:
    """A private, unpersisted `redis_server` on a free port of 127.0.0.1, and its URL."""
    port = free_port()
    process = ServerProcess("redis", [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", *REDIS_ARGS], ready=r"Ready to accept connections",
                            env=redis_env())
    return process, f"redis://127.0.0.1:{port}"


class ServerStartError(RuntimeError):
    """A server process exited or stayed silent instead of reporting that it is ready."""


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now (for servers that need one up front)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def only_loopback() -> bool:
    """True inside a network namespace whose only interface is loopback."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def child_env(log_dir: str) -> dict:
    """The environment of a benchmark child (bench.child, bench.paired): its servers log to `log_dir`."""
    return {**os.environ, "BENCH_LOG_DIR": log_dir, "TF_CPP_MIN_LOG_LEVEL": "2"}


def kill_group(child: subprocess.Popen) -> None:
    """Kill a child started in a session of its own, and its process group with it (the servers it
    started), and reap it."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    child.wait()


def log_dir() -> str:
    """Where server logs go: $BENCH_LOG_DIR (set by bench.run) or a fresh temp dir."""
    path = os.environ.get("BENCH_LOG_DIR") or tempfile.mkdtemp(prefix="bench-logs-")
    os.environ["BENCH_LOG_DIR"] = path
    os.makedirs(path, exist_ok=True)
    return path


class ServerProcess:
    """`argv` run as a child; waits for a stdout line matching `ready` and keeps its match.

    stderr goes to a log file whose tail is quoted if the server fails to start. With
    `ready=None` the process only has to stay alive for `settle_s` seconds.
    """

    def __init__(self, name, argv, ready=None, timeout_s=60.0, settle_s=0.5, env=None):
        self.name = name
        self.log_path = os.path.join(log_dir(), f"{name}-{os.getpid()}-{time.monotonic_ns()}.log")
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL, env=env
        )
        self._lines = queue.Queue()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        self.match = self._wait_ready(re.compile(ready), timeout_s) if ready else None
        if not ready:
            time.sleep(settle_s)
            if self.process.poll() is not None:
                self._fail(f"exited with code {self.process.returncode}")

    def _read_stdout(self):
        for raw in self.process.stdout:
            self._lines.put(raw.decode(errors="replace").rstrip("\n"))
        self._lines.put(None)

    def _wait_ready(self, pattern, timeout_s):
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self._fail(f"printed no line matching {pattern.pattern!r} within {timeout_s:.0f} s")
            if line is None:
                self.process.wait()
                self._fail(f"exited with code {self.process.returncode}")
            match = pattern.search(line)
            if match:
                return match

    def _fail(self, what):
        self.stop()
        with open(self.log_path, "rb") as log:
            tail = log.read()[-600:].decode(errors="replace").strip()
        raise ServerStartError(f"{self.name} {what}; log {self.log_path}: {tail}")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
