"""A parent process that outlives a worker taking clients' runs, to refuse the runs that killed it.

A server notices when its worker dies under a run it placed (graphexec.server.poison); nobody does for a
run a client sent a worker itself (`graphexec worker --run-port`, graphexec.server.worker_runs). So such a
worker runs as the child of a small parent (`supervise`): before each of those runs the child writes the
run's plan key into a slot of memory it shares with the parent (`InFlight`), and clears it after. When
the child dies of a signal (a kernel crash, the OOM killer), the parent puts each plan still in a slot on
the store's poison list, plan-wide (the feeds are not hashed on this path: W3's 406 KB would take ~0.4
ms a run), so every server and worker refuses the plan for the cool-down, drops the dead worker's
registration, and exits with the child's status for the orchestrator to restart it. The parent forwards
SIGTERM, SIGINT and SIGHUP to the child; the child dies with the parent (PR_SET_PDEATHSIG).
"""
from __future__ import annotations

import contextlib
import ctypes
import logging
import mmap
import os
import signal
import struct
import threading

from graphexec.server.poison import COOLDOWN_S, plan_wide

log = logging.getLogger("graphexec.worker")

SLOTS = 256  # runs at once on the link (more are admitted, unwatched: Admission keeps far fewer running)
SLOT_BYTES = 256
_HEAD = struct.Struct("<BH")  # busy, key length; then the plan key (UTF-8)
_WORKER_ID = 64  # the table's first bytes hold the worker id, for the parent to drop its registration
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1


class InFlight:
    """Slots of the plan keys of runs in progress, in memory the parent reads after the child died."""

    def __init__(self, memory: mmap.mmap):
        self.memory = memory
        self._free = list(range(SLOTS - 1, -1, -1))
        self._lock = threading.Lock()

    @classmethod
    def shared(cls) -> InFlight:
        """A table in anonymous shared memory: made before fork, both processes see the same bytes."""
        return cls(mmap.mmap(-1, _WORKER_ID + SLOTS * SLOT_BYTES))

    def set_worker_id(self, worker_id: str) -> None:
        data = worker_id.encode()[:_WORKER_ID - 1]
        self.memory[:_WORKER_ID] = data.ljust(_WORKER_ID, b"\0")

    def worker_id(self) -> str:
        return bytes(self.memory[:_WORKER_ID]).rstrip(b"\0").decode(errors="replace")

    def enter(self, plan_key: str) -> int:
        """Note that a run of `plan_key` is in progress: its slot, for `leave` (-1: every slot is taken,
        nothing noted). Plain calls, not a context manager: a W3 step through the worker paid ~10 us for
        the generator's."""
        with self._lock:
            slot = self._free.pop() if self._free else -1
        if slot < 0:
            return slot
        start = _WORKER_ID + slot * SLOT_BYTES
        key = plan_key.encode()[:SLOT_BYTES - _HEAD.size]
        self.memory[start + _HEAD.size:start + _HEAD.size + len(key)] = key
        _HEAD.pack_into(self.memory, start, 1, len(key))  # busy last: a torn slot reads as free
        return slot

    def leave(self, slot: int) -> None:
        if slot < 0:
            return
        self.memory[_WORKER_ID + slot * SLOT_BYTES] = 0
        with self._lock:
            self._free.append(slot)

    def busy(self) -> list[str]:
        """The plan keys of the runs in progress (read by the parent once the child is gone)."""
        keys = []
        for slot in range(SLOTS):
            start = _WORKER_ID + slot * SLOT_BYTES
            busy, length = _HEAD.unpack_from(self.memory, start)
            if busy and length <= SLOT_BYTES - _HEAD.size:
                keys.append(bytes(self.memory[start + _HEAD.size:start + _HEAD.size + length]).decode(errors="replace"))
        return keys


def supervise(table: InFlight, open_store) -> None:
    """Fork: return in the child (which runs the worker); in the parent wait for it, and when a signal
    killed it, put the plans it was running on the poison list of `open_store()`'s store; then exit
    with the child's status. Call before any thread starts (gRPC, Redis, the heartbeat)."""
    parent = os.getpid()
    child = os.fork()
    if child == 0:
        _die_with_parent()
        if os.getppid() != parent:  # the parent died before the child asked to die with it
            os._exit(1)
        return
    for forwarded in _FORWARDED:
        signal.signal(forwarded, lambda number, _frame: _signal_child(child, number))
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    if code < 0 and -code not in _FORWARDED:
        _publish(table, open_store, -code)
    os._exit(128 - code if code < 0 else code)


def _publish(table: InFlight, open_store, number: int) -> None:
    keys, worker_id = table.busy(), table.worker_id()
    log.error("the worker process died of signal %d while running %d run(s) a client sent it; refusing their "
              "graphs for %.0f s", number, len(keys), COOLDOWN_S)
    try:
        store = open_store()
        for key in keys:
            plan_wide(store, key)
        if worker_id:
            store.unregister_worker(worker_id)
    except Exception as exc:  # noqa: BLE001 - the parent exits either way; say why nothing was refused
        log.error("could not put the runs that killed the worker on the poison list: %s", exc)


def _signal_child(child: int, number: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(child, number)


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
