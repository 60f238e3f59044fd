"""tf.Print / tf.print output of a graph run on a server reaches the client's stderr, in order: with the
server's embedded worker, and through a `graphexec worker` process (server and worker are real
processes; so is the client, whose stderr is what the test reads). Text printed before a run fails
arrives too, before the error; assertion and check_numerics errors name the node and the user's line."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(120)
ROOT = pathlib.Path(__file__).resolve().parents[2]

CLIENT = r'''
import sys
import numpy as np
import graphexec as tf

x = tf.placeholder(tf.float32, [None], name="x")
first = tf.print("first", tf.reduce_max(x))
with tf.control_dependencies([first]):
    second = tf.print("second", {"n": tf.size(x)}, end="!\n")
with tf.control_dependencies([second]):
    y = tf.Print(x * 2, [x, "sum", tf.reduce_sum(x)], "run: ")
with tf.control_dependencies([tf.Print(x, [x], "before failing: ")]):
    check = tf.Assert(tf.reduce_all(x > 0), ["x must be positive:", x])  # line 13
with tf.control_dependencies([check]):
    guarded = tf.identity(x)
numerics = tf.check_numerics(tf.log(x), "log of x")  # line 16
with tf.Session(sys.argv[1]) as sess:
    for values in ([1.0, 2.0], [3.0]):
        sess.run(y, {x: values})
        print("ran", values, flush=True)
    for result in sess.stream(y, [{x: [4.0]}, {x: [5.0, 6.0]}]):
        print("streamed", result, flush=True)
    for fetch in (guarded, numerics):
        try:
            sess.run(fetch, {x: [7.0, -1.0]})
        except tf.errors.InvalidArgumentError as exc:
            print("error:", exc, flush=True)
            sys.stderr.write("raised\n")
'''

EXPECTED_STDERR = """\
first 2
second {'n': 2}!
run: [1 2][sum][3]
first 3
second {'n': 1}!
run: [3][sum][3]
first 4
second {'n': 1}!
run: [4][sum][4]
first 6
second {'n': 2}!
run: [5 6][sum][11]
before failing: [7 -1]
raised
raised
"""


def _run_client(target: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", CLIENT, target], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=90)


def _check(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stderr
    assert done.stderr == EXPECTED_STDERR
    errors = [line for line in done.stdout.splitlines() if line.startswith("error:")]
    assert errors[0] == "error: assertion failed: [x must be positive:] [7 -1]"
    assert errors[1] == "error: log of x : Tensor had NaN values"
    assert "(Assert) (defined at <string>:13)" in done.stdout
    assert "(CheckNumerics) (defined at <string>:16)" in done.stdout


def test_printed_text_reaches_the_client_from_the_embedded_worker(embedded):
    _check(_run_client(embedded))


@pytest.mark.parametrize("direct_link", ["1", "0"])
def test_a_failed_run_that_printed_much_keeps_the_end_of_it(embedded, direct_link):
    """Failed unary runs over gRPC carry their printed text in trailing metadata, which gRPC limits: the
    error still arrives, with the last 4096 characters and a note of what was dropped. Over the direct
    link the failure's body carries all of it."""
    script = CLIENT.split("with tf.Session")[0] + r'''
big = tf.Print(x, [tf.range(3000)], "big: ", summarize=-1)
with tf.control_dependencies([big]):
    failing = tf.identity(tf.check_numerics(tf.log(x), "log"))
with tf.Session(sys.argv[1]) as sess:
    try:
        sess.run(failing, {x: [-1.0]})
    except tf.errors.InvalidArgumentError as exc:
        print("raised", str(exc).splitlines()[0])
'''
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRAPHEXEC_DIRECT": direct_link}
    done = subprocess.run([sys.executable, "-c", script, embedded], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=90)
    assert done.stdout == "raised log : Tensor had NaN values\n", done.stderr
    full = "big: [" + " ".join(str(i) for i in range(3000)) + "]\n"
    note = f"[graphexec: {len(full) - 4096} earlier characters of printed output were dropped]\n"
    assert done.stderr == (full if direct_link == "1" else note + full[-4096:])


def test_printed_text_reaches_the_client_through_a_worker_process(redis_server, serve, worker, wait_for_workers):
    target = serve("--redis", redis_server.url)  # with Redis, runs go to the worker processes
    worker(redis_server.url)
    wait_for_workers(target, 1)
    _check(_run_client(target))
