"""Early staging: a training step's large new variable values travel to Redis while the step still runs.

Why: a commit sends every changed value, then the EVALSHA that applies them (redis_store._COMMIT). W10's
step changes ~38 MB (the dense layer's weights and Adam's two slots for them); sending it took 36-40 ms
of a 216 ms step through the Redis deployment, all after the kernels. The dense layer's update is done
long before the step ends (the convolutions' gradients come after it), so its values can travel while
the remaining kernels run.

How: the executor announces each variable once no later step of the run writes it
(executor.final_writes), and the worker offers the changed ones here. Values of at least EARLY_BYTES are
sent by a thread of the run, on a connection of its own, as the commit's staged SETs would be (keys of
this run, the same expiry); the commit then sends the smaller values and the EVALSHA on that connection,
after them (Redis runs one connection's commands in order), and reads every reply. Nothing is applied
before the EVALSHA: a run that fails or writes nothing deletes what it staged (which would expire
anyway), and a send that fails makes the commit send everything itself, as without staging.
"""
from __future__ import annotations

import queue
import secrets
import threading

import redis

from graphexec.rpc import codec
from graphexec.server.resp import Lanes, pack, send

EARLY_BYTES = 1 << 20  # smaller values go with the commit: a thread and a connection are not worth it


class Staging:
    """One run's early staging, under keys starting with `prefix` and a token of the run's own."""

    def __init__(self, lanes: Lanes, prefix: str, ttl_ms: int):
        self._lanes, self._prefix, self._ttl_ms = lanes, prefix, ttl_ms
        self.staged: dict[str, tuple[str, bytes, object]] = {}  # name -> (key, head, the array sent)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._sender: threading.Thread | None = None
        self._connection = None
        self._sent = 0  # SETs written, each owing a reply
        self._failure: BaseException | None = None

    def offer(self, name: str, value) -> None:
        """Stage `value` (the run's final value of variable `name`) now, if it is large enough to pay."""
        if value.nbytes < EARLY_BYTES or name in self.staged:
            return
        head, content = codec.tensor_parts(value)
        if self._sender is None:  # the first: most runs stage nothing, and pay for none of this
            self._prefix = f"{self._prefix}{secrets.token_hex(8)}:early"
            self._connection = self._lanes.take()
            self._sender = threading.Thread(target=self._send, name="graphexec-staging", daemon=True)
            self._sender.start()
        key = f"{self._prefix}{len(self.staged)}"
        self.staged[name] = (key, head, value)
        self._queue.put((key, content))

    def _send(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._failure is not None:
                continue
            key, content = item
            try:
                send(self._connection, pack([(b"SET", key, content, b"PX", self._ttl_ms)]))
                self._sent += 1
            except BaseException as exc:  # Redis went away: the commit sends everything itself, and finds out
                self._failure = exc

    def finish(self):
        """Wait until everything offered was sent. Returns (connection, replies it owes) to carry the
        commit, or None: nothing was staged, or a send failed (then nothing counts as staged)."""
        if self._sender is None:
            return None
        self._queue.put(None)
        self._sender.join()
        self._sender, connection = None, self._connection
        if self._failure is not None:
            connection.disconnect()
            self.staged.clear()
            return None
        return connection, self._sent

    def discard(self) -> None:
        """Delete what was staged and not committed (the run failed, or the commit never came)."""
        finished = self.finish()
        if finished is None:
            return
        keys = [key for key, _, _ in self.staged.values()]
        self.staged.clear()
        try:
            self._lanes.call([(b"DEL", *keys)], *finished)
        except (redis.RedisError, OSError):
            pass  # they expire
