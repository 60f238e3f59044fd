"""Progress bars: sess.stream over a sized input and large checkpoint saves/restores show a tqdm bar on stderr
when it is a terminal (or GRAPHEXEC_PROGRESS=1), and nothing when it is not or GRAPHEXEC_PROGRESS=0."""
from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import pytest

import graphexec as tf
from graphexec.train import saver as saver_module

ROOT = Path(__file__).resolve().parents[2]
STREAM_PROGRAM = """
import graphexec as tf
x = tf.placeholder(tf.float32, [])
with tf.Session() as sess:
    print([float(v) for v in sess.stream(x * 2, [{x: i} for i in range(3)])])
"""


def _stream(feeds):
    x = tf.placeholder(tf.float32, [])
    with tf.Session() as sess:
        return [float(v) for v in sess.stream(x + 1, feeds(x))]


@pytest.mark.parametrize("setting, shown", [("1", True), ("0", False), ("", False)])  # "": stderr is no terminal
def test_stream_over_a_list_shows_a_bar_only_when_asked(setting, shown, monkeypatch, capsys):
    monkeypatch.setenv("GRAPHEXEC_PROGRESS", setting)
    assert _stream(lambda x: [{x: i} for i in range(4)]) == [1.0, 2.0, 3.0, 4.0]
    err = capsys.readouterr().err
    assert ("sess.stream" in err and "0/4" in err) == shown, err  # (tqdm redraws at most every 0.1 s)


def test_stream_over_a_generator_has_no_bar(monkeypatch, capsys):
    monkeypatch.setenv("GRAPHEXEC_PROGRESS", "1")
    assert _stream(lambda x: ({x: i} for i in range(3))) == [1.0, 2.0, 3.0]
    assert capsys.readouterr().err == ""


def _run_on_a_terminal(env_setting: str | None) -> str:
    """Run STREAM_PROGRAM with its stderr on a pseudo-terminal; what the terminal received."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # rows, columns
    env = {k: v for k, v in os.environ.items() if k not in ("GRAPHEXEC_PROGRESS", "GRAPHEXEC_TARGET")}
    if env_setting is not None:
        env["GRAPHEXEC_PROGRESS"] = env_setting
    env["PYTHONPATH"] = str(ROOT)
    with subprocess.Popen([sys.executable, "-c", STREAM_PROGRAM], stderr=follower, stdout=subprocess.PIPE,
                          env=env, cwd=ROOT) as process:
        os.close(follower)
        received = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            received += chunk
        out = process.stdout.read()
    os.close(leader)
    assert process.returncode == 0 and out == b"[0.0, 2.0, 4.0]\n", (out, received)
    return received.decode(errors="replace")


def test_a_terminal_gets_a_bar_unless_disabled():
    assert "sess.stream" in _run_on_a_terminal(None)
    assert "sess.stream" not in _run_on_a_terminal("0")


def test_large_checkpoints_show_save_and_restore_bars(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GRAPHEXEC_PROGRESS", "1")
    weights = tf.Variable(np.arange(1000, dtype=np.float32), name="weights")
    bias = tf.Variable(np.ones(3, np.float32), name="bias")
    saver = tf.train.Saver()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        saver.save(sess, str(tmp_path / "small"))
        assert capsys.readouterr().err == ""  # below LARGE_CHECKPOINT_BYTES: quiet
        monkeypatch.setattr(saver_module, "LARGE_CHECKPOINT_BYTES", 1000)  # 4012 bytes of variables is "large"
        prefix = saver.save(sess, str(tmp_path / "model"), global_step=7)
        sess.run([weights.assign(weights * 0), bias.assign(bias * 0)])
        saver.restore(sess, prefix)
        np.testing.assert_array_equal(sess.run(weights), np.arange(1000, dtype=np.float32))
    err = capsys.readouterr().err
    assert "saving model-7.gxckpt" in err and "restoring model-7.gxckpt" in err
    assert "0.00/4.01k" in err  # the save bar counts the variables' bytes
