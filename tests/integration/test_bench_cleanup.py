"""`python -m bench.run` stops what it started: a bench interrupted (Ctrl-C) or terminated mid-run leaves
no server, worker or child process of its own running."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = pytest.mark.timeout(120)


def _parents() -> dict[int, int]:
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    parents[int(name)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass  # it ended meanwhile
    return parents


def _descendants(pid: int) -> set[int]:
    parents, found, frontier = _parents(), set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for an init that may never reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["terminated", "interrupted"])
def test_a_stopped_bench_leaves_nothing_running(tmp_path, signum):
    # SIGINT's default action in the bench, as from a terminal, even when these tests run in the background
    # of a shell (which ignores SIGINT for its background jobs, and Python keeps an ignored SIGINT ignored).
    bench = subprocess.Popen([sys.executable, "-m", "bench.run", "--quick", "--systems", "graphexec", "--workloads",
                              "W1,W2,W3,W4,W5,W7", "--out", str(tmp_path)], cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    started: set[int] = set()
    try:
        deadline = time.monotonic() + 90
        while not any(" serve" in _command(pid) for pid in _descendants(bench.pid)):
            assert bench.poll() is None, bench.stderr.read()
            assert time.monotonic() < deadline, "no graphexec server started under the bench"
            time.sleep(0.1)
        started |= _descendants(bench.pid)
        bench.send_signal(signum)
        assert bench.wait(timeout=30) != 0
        deadline = time.monotonic() + 3  # (left alone, the bench's child would go on for tens of seconds)
        while any(_running(pid) for pid in started) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [_command(pid) for pid in started if _running(pid)] == []
        assert not (tmp_path / "latest.json").exists()  # an interrupted bench writes no results
    finally:
        for pid in started | _descendants(bench.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        bench.kill()
        bench.wait()
