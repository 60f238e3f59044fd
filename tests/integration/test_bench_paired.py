"""bench.paired measures two systems' W3 in alternating blocks, each in a child of its own, and leaves
nothing running (the benchmark's TF-grpc is not installed in CI: graphexec's two local systems stand in)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from bench import paired

pytestmark = pytest.mark.timeout(300)


def _running_in_groups(groups: set[int]) -> list[int]:
    """Processes (not zombies) whose process group is one of `groups`."""
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # not a process, or it ended meanwhile
        if fields[0] != "Z" and int(fields[2]) in groups:
            found.append(int(name))
    return found


def test_w3_in_alternating_blocks_gives_each_system_its_steps_per_second(tmp_path, monkeypatch):
    monkeypatch.chdir(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    groups = set()  # each child leads a process group of its own, its system's servers in it
    started = subprocess.Popen
    monkeypatch.setattr(paired.subprocess, "Popen", lambda *a, **k: groups.add((p := started(*a, **k)).pid) or p)
    results = paired.measure("W3", True, [], False, str(tmp_path), systems=("graphexec", "graphexec_inprocess"))
    assert set(results) == {"graphexec", "graphexec_inprocess"}
    for system, result in results.items():
        assert result["status"] == "ok", (system, result)
        blocks = result["blocks_s"]
        assert len(blocks) == paired.BLOCKS["quick"] and all(seconds > 0 for seconds in blocks)
        steps = paired.steps_per_block("W3", True) * len(blocks)
        assert result["figures"]["w3p_steps_per_s"] == pytest.approx(steps / sum(blocks))
    assert len(groups) == 2 and not _running_in_groups(groups)  # the children and the server one started are gone


def test_a_child_that_ends_before_it_is_ready_is_an_error_for_both(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", shutil.which("false"))  # each child exits at once, saying nothing
    results = paired.measure("W3", True, [], False, str(tmp_path), systems=("graphexec", "graphexec_inprocess"))
    assert [r["status"] for r in results.values()] == ["error", "error"]
    assert "graphexec's paired child exited" in results["graphexec"]["reason"]
