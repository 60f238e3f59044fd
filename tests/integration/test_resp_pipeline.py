"""Hand-packed Redis pipelines (graphexec/server/resp.py) against a real redis-server: what they write
reads back through redis-py, large contents are written from where they are, an error reply is raised
after every reply was read (the connection goes on serving), and a Redis that went away is a
ConnectionError whose connection the next call replaces."""
from __future__ import annotations

import numpy as np
import pytest
import redis

from graphexec.server import resp

pytestmark = pytest.mark.timeout(60)


def test_a_pipeline_writes_what_redis_py_reads_back(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    lanes = resp.Lanes(client.connection_pool)
    big = np.arange(resp.COPY_BELOW, dtype=np.float32)  # 4 x COPY_BELOW bytes: written from the array
    pieces = resp.pack([(b"SET", "k1", memoryview(big).cast("B"))])
    assert any(isinstance(p, memoryview) for p in pieces)
    replies = lanes.call([(b"SET", "k1", memoryview(big).cast("B")), (b"SET", "k2", "é\r\n", b"PX", 60_000),
                          (b"INCRBY", "n", 7), (b"GET", "k2")])
    assert replies == [b"OK", b"OK", 7, "é\r\n".encode()]  # raw replies: no response callbacks
    assert client.get("k1") == big.tobytes() and 0 < client.pttl("k2") <= 60_000
    lanes.close()


def test_arrays_are_written_as_their_bytes_whatever_their_size(redis_server):
    """An ndarray argument is a buffer like any other: its bytes go out, small (packed with the command)
    or large (written from the array). Before, a small one was added to the packed bytes as numbers."""
    client = redis.Redis.from_url(redis_server.url)
    lanes = resp.Lanes(client.connection_pool)
    small = np.arange(6, dtype=np.float32).reshape(2, 3)
    large = np.arange(resp.COPY_BELOW // 2, dtype=np.float64).reshape(-1, 8)
    assert lanes.call([(b"SET", "small", small), (b"SET", "large", large)]) == [b"OK", b"OK"]
    assert client.get("small") == small.tobytes() and client.get("large") == large.tobytes()
    lanes.close()


def test_an_error_reply_is_raised_once_every_reply_was_read(redis_server):
    lanes = resp.Lanes(redis.Redis.from_url(redis_server.url).connection_pool)
    with pytest.raises(redis.exceptions.NoScriptError):
        lanes.call([(b"SET", "a", 1), (b"EVALSHA", "0" * 40, 0), (b"SET", "b", 2)])
    assert lanes.call([(b"MGET", "a", "b")]) == [[b"1", b"2"]]  # the same connection, nothing left unread


def test_a_redis_that_went_away_is_a_connection_error_and_a_new_connection_follows(redis_server):
    lanes = resp.Lanes(redis.Redis.from_url(redis_server.url).connection_pool)
    assert lanes.call([(b"SET", "a", 1)]) == [b"OK"]
    redis_server.process.kill()
    with pytest.raises(redis.ConnectionError):
        lanes.call([(b"GET", "a")])
    redis_server.start()
    assert lanes.call([(b"GET", "a")]) == [None]  # (the restarted Redis kept nothing: --save '')
