"""tf.data against a real `graphexec serve`: the golden programs give TensorFlow's batches and trained
numbers remotely too, and a training loop over client-side data streams its batches over ONE Run call
(the server's Prometheus counters say so) while the client's memory stays bounded.

GRAPHEXEC_DATA_STREAM_MB sizes the streamed data set (default 64 MB in CI; 1024 for the 1 GB check)."""
import json
import os
import pathlib
import sys

import numpy as np
import pytest
from conftest import (
    Process,  # tests/integration is on sys.path (rootdir-relative conftest)
)
from test_metrics import Scrape, metrics_url, moved

import graphexec as tf

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "unit" / "golden" / "data"
sys.path.insert(0, str(FIXTURES))
import programs

GOLDENS = json.loads((FIXTURES / "goldens.json").read_text())
RUN = "graphexec.v1.GraphExecService/Run"
RUN_CALLABLE = "graphexec.v1.GraphExecService/RunCallable"
STREAM_MB = int(os.environ.get("GRAPHEXEC_DATA_STREAM_MB", "64"))
RSS_LIMIT_MB = 300
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def server():
    started = []
    process = Process([sys.executable, "-m", "graphexec", "serve", "--port", "0", "--metrics-port", "0"],
                      r"serving on (grpc://\S+)")
    started.append(process)
    try:
        yield process.match.group(1), metrics_url(process)
    finally:
        process.kill()


def session_of(target):
    return lambda: tf.Session(target)


def test_golden_programs_match_tensorflow_remotely(server):
    target, _ = server
    tf.reset_default_graph()
    assert programs.one_shot(tf, session_of(target)) == GOLDENS["one_shot"]
    tf.reset_default_graph()
    got = programs.train_from_files(tf, session_of(target), FIXTURES)
    want = GOLDENS["train_from_files"]
    assert got["targets"] == want["targets"]
    np.testing.assert_allclose(got["losses"], want["losses"], rtol=1e-5)
    np.testing.assert_allclose(got["w"], want["w"], rtol=1e-5, atol=1e-6)
    tf.reset_default_graph()
    assert programs.parse_batch(tf, session_of(target), FIXTURES) == GOLDENS["parse_batch"]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_a_training_loop_streams_client_data_over_one_run_call(server):
    target, metrics = server
    rows, width = 512, 1024  # 2 MiB float32 batches
    steps = STREAM_MB * 2**20 // (rows * width * 4)
    true_w = np.linspace(-1, 1, width, dtype=np.float32)

    def batches():  # made lazily: the data set never exists in memory as a whole
        rng = np.random.default_rng(0)
        for _ in range(steps):
            x = rng.standard_normal((rows, width), dtype=np.float32)
            yield x, x @ true_w

    tf.reset_default_graph()
    ds = tf.data.Dataset.from_generator(batches, (tf.float32, tf.float32), ([rows, width], [rows])).prefetch(2)
    x, y = tf.data.make_one_shot_iterator(ds).get_next()
    w = tf.Variable(tf.zeros([width]))
    loss = tf.reduce_mean(tf.square(tf.linalg.matvec(x, w) - y))
    train = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
    with tf.Session(target) as sess:
        sess.run(tf.global_variables_initializer())
        sess.run([loss, train])  # the first step compiles and opens the stream
        baseline, before = rss_mb(), Scrape(metrics)
        done, peak, losses = 1, baseline, []
        while True:
            try:
                losses.append(sess.run([loss, train])[0])
            except tf.errors.OutOfRangeError:
                break
            done += 1
            peak = max(peak, rss_mb())
    after = Scrape(metrics)  # a streaming call is counted when it ends: the session's close ends it
    assert done == steps
    assert losses[-1] < losses[0] * 0.5  # it trained
    # 300 MB for the 1 GB run; half the data for smaller runs, so that keeping the batches would fail too
    limit = min(RSS_LIMIT_MB, STREAM_MB / 2)
    assert peak - baseline < limit, f"client RSS grew {peak - baseline:.0f} MB over {STREAM_MB} MB of data"
    assert moved(before, after, "graphexec_grpc_calls_total", method=RUN_CALLABLE) == 0
    assert moved(before, after, "graphexec_grpc_calls_total", method=RUN, code="OK") == 1
    assert moved(before, after, "graphexec_runs_total") == steps - 1
    assert moved(before, after, "graphexec_grpc_received_bytes_total", method=RUN) >= (steps - 1) * rows * width * 4
    print(f"streamed {STREAM_MB} MB in {steps} steps; client RSS grew {peak - baseline:.1f} MB")


def test_a_feedable_iterator_remotely(server):
    target, _ = server
    tf.reset_default_graph()
    assert programs.feedable(tf, session_of(target)) == GOLDENS["feedable"]
