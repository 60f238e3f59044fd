"""The in-flight table a worker that takes clients' runs shares with its parent process
(graphexec.server.supervisor): what the child marks is what the parent reads after it died."""
from __future__ import annotations

import os
import signal

from graphexec.server import supervisor


def test_the_parent_reads_the_plans_a_killed_child_was_running():
    table = supervisor.InFlight.shared()
    ready_read, ready_write = os.pipe()
    child = os.fork()
    if child == 0:  # the worker: one run finished, two in progress when it is killed
        table.set_worker_id("worker-7")
        table.leave(table.enter("finished-plan"))
        table.enter("plan-a"), table.enter("plan-b" * 100)  # the second cut to fit its slot
        os.write(ready_write, b"x")
        signal.pause()
        os._exit(0)
    os.read(ready_read, 1)
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
    busy = table.busy()
    assert busy[0] == "plan-a" and busy[1].startswith("plan-bplan-b") and len(busy) == 2
    assert len(busy[1]) == supervisor.SLOT_BYTES - 3
    assert table.worker_id() == "worker-7"


def test_runs_beyond_the_slots_run_unwatched_and_freed_slots_are_reused():
    table = supervisor.InFlight.shared()
    held = [table.enter(f"plan-{i}") for i in range(supervisor.SLOTS + 1)]
    assert len(table.busy()) == supervisor.SLOTS and held[-1] == -1  # the last one runs unwatched
    for slot in held:
        table.leave(slot)
    assert table.busy() == []
    slot = table.enter("again")
    assert table.busy() == ["again"]
    table.leave(slot)
    assert table.busy() == []
