"""A remote session's pipelined sess.stream over a sized input shows the same progress bar as in-process."""
from __future__ import annotations

import pytest

import graphexec as tf

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("setting, shown", [("1", True), ("0", False)])
def test_remote_stream_shows_a_bar_when_asked(setting, shown, embedded, monkeypatch, capsys):
    monkeypatch.setenv("GRAPHEXEC_PROGRESS", setting)
    x = tf.placeholder(tf.float32, [])
    with tf.Session(embedded) as sess:
        assert [float(v) for v in sess.stream(x * 3, [{x: i} for i in range(5)])] == [0.0, 3.0, 6.0, 9.0, 12.0]
    err = capsys.readouterr().err
    assert ("sess.stream" in err and "0/5" in err) == shown, err
