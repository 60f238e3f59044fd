"""Compile processes for large graphs (graphexec.server.compile_process), with a compile deadline.

A graph of at least `--compile-process-nodes` nodes is decoded and compiled by one of
`--compile-processes` child processes instead of the server's own threads, so that its seconds of
pure Python do not hold the GIL that every other tenant's runs need. Each request must be answered
within `--compile-timeout-s` (waiting for a free process included): past it, the process is killed
(a fresh one is started on the next request) and the call fails DEADLINE_EXCEEDED naming the graph's
node count. A process that dies (e.g. of its memory limit) fails the call RESOURCE_EXHAUSTED.
"""
from __future__ import annotations

import json
import logging
import os
import selectors
import subprocess
import sys
import threading
import time

from graphexec import errors
from graphexec.server import compile_process

RECENT_GRAPHS = 16
STARTUP_TIMEOUT_S = 60.0  # a process's imports, which the compile deadline does not count
log = logging.getLogger("graphexec.compile")
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(compile_process.__file__))))
# The child imports this same copy of graphexec, whatever the current folder holds (as cli's re-exec).
_START = ("import sys\n"
          f"sys.path.insert(0, {_PACKAGE_ROOT!r})\n"
          "from graphexec.server.compile_process import main\n"
          "main()")


class _TimedOut(Exception):
    pass


class _Died(Exception):
    pass


class _Child:
    """One compile process and its pipes; used by one request at a time."""

    def __init__(self):
        self.process = subprocess.Popen([sys.executable, "-c", _START], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, bufsize=0)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.process.stdout, selectors.EVENT_READ)
        self._buffer = bytearray()
        self.ready = False

    def request(self, header: dict, blobs: list[bytes], timeout_s: float) -> tuple[dict, bytes | None]:
        """The answer, within `timeout_s` of the process being ready (its start is not the compile's time)."""
        if not self.ready:
            if self._frame(time.monotonic() + STARTUP_TIMEOUT_S) != compile_process.READY:
                raise _Died("it did not start")
            self.ready = True
        give_up_at = time.monotonic() + timeout_s
        try:
            frames = [json.dumps({**header, "segments": len(blobs)}).encode(), *blobs]
            for frame in frames:  # the child reads as we write (and is started fresh if it died)
                compile_process.write_frame(self.process.stdin, frame)
        except (BrokenPipeError, OSError) as exc:
            raise _Died(str(exc)) from None
        reply = json.loads(self._frame(give_up_at))
        plan = self._frame(give_up_at) if reply.get("ok") and header["op"] == "compile" else None
        return reply, plan

    def _frame(self, give_up_at: float) -> bytes:
        size = None
        while True:
            if size is None and len(self._buffer) >= 8:
                size = int.from_bytes(self._buffer[:8], "little")
            if size is not None and len(self._buffer) >= 8 + size:
                frame = bytes(self._buffer[8:8 + size])
                del self._buffer[:8 + size]
                return frame
            left = give_up_at - time.monotonic()
            if left <= 0 or not self._selector.select(left):
                raise _TimedOut()
            chunk = os.read(self.process.stdout.fileno(), 1 << 20)
            if not chunk:
                raise _Died(f"exit status {self.process.wait()}")
            self._buffer += chunk

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        self._selector.close()
        self.process.stdin.close()
        self.process.stdout.close()


class _Slot:
    """A place for one compile process (started on first use, again after one is killed), and the graphs
    it decoded last, so a graph's requests go where it is decoded already when that process is free."""

    def __init__(self):
        self.child: _Child | None = None
        self.recent: list[str] = []

    def restart(self) -> None:
        """Kill the process (timed out or dead) and start its successor now, so it is ready sooner."""
        self.child.kill()
        self.child, self.recent = _Child(), []

    def used_for(self, chain: str) -> None:
        if chain in self.recent:
            self.recent.remove(chain)
        self.recent = [chain, *self.recent[:RECENT_GRAPHS - 1]]


class CompilePool:
    def __init__(self, processes: int, timeout_s: float):
        self.timeout_s = timeout_s
        self._idle = [_Slot() for _ in range(processes)]
        self._slots = list(self._idle)
        self._free = threading.Condition()

    def check(self, blobs: list[bytes], node_count: int, base_chain: str, chain: str) -> int:
        """Decode and verify the last of `blobs` (a graph's segments, oldest first: the last extends the
        graph of `base_chain` to `chain`, both hex); its node count."""
        return self._request({"op": "check"}, blobs, node_count, base_chain, chain)[0]["node_count"]

    def compile(self, blobs: list[bytes], node_count: int, **signature) -> bytes:
        """The serialized plan of a signature (compile_process's "compile" fields) of the graph."""
        return self._request({"op": "compile", **signature}, blobs, node_count, signature["chain"],
                             signature["chain"])[1]

    def _request(self, header: dict, blobs: list[bytes], node_count: int, prefer: str, holds: str
                 ) -> tuple[dict, bytes | None]:
        """The answer of the process that decoded graph `prefer` last, when free; it then holds `holds`."""
        give_up_at = time.monotonic() + self.timeout_s
        what = "compiling" if header["op"] == "compile" else "decoding"
        slot = self._take(prefer, give_up_at)
        if slot is None:
            raise self._late(what, node_count, "waiting for a free compile process")
        try:
            if slot.child is None:
                slot.child, slot.recent = _Child(), []
            elif slot.child.process.poll() is not None:  # died while idle (killed from outside): start anew
                slot.restart()
            started = time.monotonic()
            reply, plan = slot.child.request(header, blobs, max(give_up_at - time.monotonic(), 0.0))
            slot.used_for(holds)
        except _TimedOut:
            slot.restart()
            raise self._late(what, node_count, "") from None
        except _Died as exc:
            slot.restart()
            raise errors.ResourceExhaustedError(None, None, f"the compile process died {what} a graph of {node_count} "
                                                            f"nodes ({exc}); it may need more memory") from None
        finally:
            with self._free:
                self._idle.append(slot)
                self._free.notify()
        log.info("%s a graph of %d nodes in compile process %d took %.2f s", what, node_count, slot.child.process.pid,
                 time.monotonic() - started)
        if not reply["ok"]:
            raise errors.from_code(reply["code"], reply["message"])
        return reply, plan

    def _take(self, chain: str, give_up_at: float) -> _Slot | None:
        """An idle slot, preferring one that decoded `chain` (or its prefix) last; None past `give_up_at`."""
        with self._free:
            while not self._idle:
                left = give_up_at - time.monotonic()
                if left <= 0:
                    return None
                self._free.wait(left)
            slot = next((s for s in self._idle if chain in s.recent), self._idle[0])
            self._idle.remove(slot)
            return slot

    def _late(self, what: str, node_count: int, where: str) -> errors.DeadlineExceededError:
        during = f" ({where})" if where else ""
        return errors.DeadlineExceededError(None, None, f"{what} a graph of {node_count} nodes took longer than the "
                                                        f"compile deadline of {self.timeout_s:g} s{during} "
                                                        f"(--compile-timeout-s)")

    def close(self) -> None:
        for slot in self._slots:
            if slot.child is not None:
                slot.child.kill()
