"""Workers that take clients' runs themselves (`graphexec worker --run-port`, graphexec/server/worker_runs.py),
against a real redis-server, `serve --redis` replicas and workers: servers name such a worker in
CreateSession only when its tokens, limits and TLS equal theirs; runs there commit to the shared store
like runs through a server; tokens and TLS hold on the worker; when it goes away runs go through a server."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import Process, start_serve, start_worker
from security_setup import ALICE_TOKEN, BOB_TOKEN, client_env, make_pki, write_tokens

import graphexec as tf
from graphexec import errors
from graphexec.client import direct
from graphexec.proto.v1 import service_pb2 as spb
from graphexec.rpc import frames, status

pytestmark = pytest.mark.timeout(240)
RUNS_ON = r"takes clients' runs on (\S+)"
LEARNING_RATE = 0.1


def run_address(worker) -> str:
    """HOST:PORT the worker printed for the runs it takes itself."""
    found = re.search(RUNS_ON, "".join(worker.output))
    assert found, worker.output
    return found.group(1)


def regression():
    """(graph, x, y, w, loss, train, init): linear least squares trained by gradient descent."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, 3], name="x")
        y = tf.placeholder(tf.float32, [None, 1], name="y")
        w = tf.Variable(np.zeros((3, 1), np.float32), name="w")
        loss = tf.reduce_mean(tf.square(tf.matmul(x, w) - y))
        train = tf.train.GradientDescentOptimizer(LEARNING_RATE).minimize(loss)
    return graph, x, y, w, loss, train, w.initializer


def numpy_regression(batches):
    w = np.zeros((3, 1), np.float64)
    for bx, by in batches:
        w -= LEARNING_RATE * 2.0 * bx.T @ (bx @ w - by) / len(bx)
    return w


def batches(count=12):
    rng = np.random.default_rng(7)
    true_w = np.array([[1.0], [-2.0], [0.5]])
    out = []
    for _ in range(count):
        bx = rng.normal(size=(16, 3)).astype(np.float32)
        out.append((bx, (bx @ true_w).astype(np.float32)))
    return out


def answers(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    return True


def wait_until_gone(address: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while answers(address):
        assert time.monotonic() < deadline, f"{address} still answers"
        time.sleep(0.05)


def uses(sess, address: str) -> bool:
    link = sess._connection.direct
    return link is not None and f"{link.host}:{link.port}" == address


def test_runs_go_to_the_worker_and_commit_to_the_store_every_replica_reads(redis_server, processes):
    worker = start_worker(processes, redis_server.url, "--run-port", "0")
    address = run_address(worker)
    replica_a = start_serve(processes, "--redis", redis_server.url)
    replica_b = start_serve(processes, "--redis", redis_server.url)
    graph, x, y, w, loss, train, init = regression()
    data = batches()
    with tf.Session(replica_a, graph=graph) as sess:
        assert uses(sess, address)
        sess.run(init)
        for bx, by in data:
            sess.run(train, {x: bx, y: by})
        assert sess._connection.direct.calls == 1 + len(data)  # every run went to the worker itself
        trained = sess.run(w)
    np.testing.assert_allclose(trained, numpy_regression(data), rtol=1e-5, atol=1e-6)
    with tf.Session(replica_b, graph=graph) as other:  # committed to Redis, read through another replica
        np.testing.assert_array_equal(other.run(w), trained)


def test_the_worker_makes_callables_of_plans_servers_compiled_and_compiles_none(redis_server, processes):
    """A session's MakeCallable goes to its worker first: a new signature is answered UNAVAILABLE there and
    made on the server; one a server compiled before is made on the worker, even with the server gone."""
    worker = start_worker(processes, redis_server.url, "--run-port", "0")
    address = run_address(worker)
    server = Process([sys.executable, "-m", "graphexec", "serve", "--port", "0", "--redis", redis_server.url],
                     r"serving on (grpc://\S+)")
    processes.append(server)
    target = server.match.group(1)
    graph, x, y, w, loss, train, init = regression()
    bx, by = batches(1)[0]
    with tf.Session(target, graph=graph) as first:
        assert uses(first, address)
        first.run(init)
        metadata = tf.RunMetadata()
        assert first.run(loss, {x: bx, y: by}, run_metadata=metadata) == pytest.approx(np.mean(by ** 2), rel=1e-6)
        assert not metadata.plan_cache_hit  # compiled on the server
        np.testing.assert_array_equal(first.run(w), np.zeros((3, 1), np.float32))
        assert first._connection.direct.calls == 3  # every run on the worker
    second = tf.Session(target, graph=graph)
    with second:
        second.run(w)  # its graph reaches the store's session record through the server
        server.kill()
        metadata = tf.RunMetadata()
        assert second.run(loss, {x: bx, y: by}, run_metadata=metadata) == pytest.approx(np.mean(by ** 2), rel=1e-6)
        assert metadata.plan_cache_hit  # the server's plan, made into a callable by the worker alone
        assert (second._connection.direct.other_calls, second._connection.direct.calls) == (2, 2)


def test_same_host_clients_reach_the_worker_on_its_unix_socket_with_shared_memory(redis_server, processes,
                                                                                  monkeypatch):
    """The worker's link also listens on a Unix socket (servers pass its name on): large feeds travel in
    shared memory, and the store gets the same values as from a client on TCP."""
    worker = start_worker(processes, redis_server.url, "--run-port", "0")
    address = run_address(worker)
    target = start_serve(processes, "--redis", redis_server.url)
    graph, x, y, w, loss, train, init = regression()
    rng = np.random.default_rng(3)
    data = [(bx, (bx @ np.array([[1.0], [-2.0], [0.5]])).astype(np.float32))
            for bx in (rng.normal(size=(8192, 3)).astype(np.float32) for _ in range(4))]  # 96 KB feeds
    trained = {}
    for shared in ("1", "0"):
        monkeypatch.setenv("GRAPHEXEC_SHARED_MEMORY", shared)
        with tf.Session(target, graph=graph) as sess:
            link = sess._connection.direct
            assert uses(sess, address)
            assert link.local_name.startswith("graphexec-direct-") == (shared == "1")
            sess.run(init)
            for bx, by in data:
                sess.run(train, {x: bx, y: by})
            trained[shared] = sess.run(w)
            assert (link.calls, link.shared_calls) == (2 + len(data), len(data) if shared == "1" else 0)
    assert trained["1"].tobytes() == trained["0"].tobytes()
    np.testing.assert_allclose(trained["1"], numpy_regression(data), rtol=1e-5, atol=1e-6)


def test_a_worker_with_other_limits_or_tokens_is_not_named(redis_server, processes, tmp_path):
    tokens = write_tokens(tmp_path)
    start_worker(processes, redis_server.url, "--run-port", "0", "--max-message-bytes", "1MiB")
    start_worker(processes, redis_server.url, "--run-port", "0", "--auth-tokens", str(tokens))
    plain = start_serve(processes, "--redis", redis_server.url)
    with tf.Session(plain, graph=tf.Graph()) as sess:  # neither worker admits what this server admits
        assert not any(uses(sess, run_address(p)) for p in processes if "worker" in p.argv)
        with sess.graph.as_default():
            total = tf.constant(2.0) + tf.constant(3.0)
        assert sess.run(total) == 5.0  # runs go through the server


def test_tokens_hold_on_the_worker_and_tenants_stay_apart(redis_server, processes, tmp_path):
    tokens = write_tokens(tmp_path)
    worker = start_worker(processes, redis_server.url, "--run-port", "0", "--auth-tokens", str(tokens))
    address = run_address(worker)
    target = start_serve(processes, "--redis", redis_server.url, "--auth-tokens", str(tokens))
    graph, x, y, w, loss, train, init = regression()
    with client_env(token=ALICE_TOKEN):
        alice = tf.Session(target, graph=graph)
    with alice:
        assert uses(alice, address)
        alice.run(init)
        alice.run(train, {x: np.ones((2, 3), np.float32), y: np.ones((2, 1), np.float32)})
        handle = alice._handle
        # bob, on the worker's link with his own token, cannot run alice's session
        with client_env(token=BOB_TOKEN):
            bob = tf.Session(target, graph=tf.Graph())
        with bob:
            assert uses(bob, address)
            request = spb.RunStepRequest(session_handle=handle, fetches=["w:0"]).SerializeToString()
            with pytest.raises(errors.NotFoundError):
                bob._connection.direct.call(2, request, 10.0)
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:  # a wrong token: refused in HELLO
        direct.send_frame(sock, direct.HELLO, b"not-a-token")
        kind, body = frames.read_frame(sock.makefile("rb"))
    assert kind == direct.FAILURE
    assert isinstance(status.error_from_failure_bytes(body), errors.UnauthenticatedError)


def test_runs_go_through_a_server_when_the_worker_is_gone(redis_server, processes, wait_for_workers):
    taking = start_worker(processes, redis_server.url, "--run-port", "0")
    start_worker(processes, redis_server.url)  # takes runs from servers only
    target = start_serve(processes, "--redis", redis_server.url)
    wait_for_workers(target, 2)
    graph, x, y, w, loss, train, init = regression()
    data = batches()
    with tf.Session(target, graph=graph) as sess:
        assert uses(sess, run_address(taking))
        sess.run(init)
        for bx, by in data[:6]:
            sess.run(train, {x: bx, y: by})
        taking.kill()  # (its parent: the worker itself dies with it)
        wait_until_gone(run_address(taking))
        for bx, by in data[6:]:  # the first finds the link closed and goes through the server
            sess.run(train, {x: bx, y: by})
        np.testing.assert_allclose(sess.run(w), numpy_regression(data), rtol=1e-5, atol=1e-6)


def test_clients_reach_a_tls_worker_with_the_servers_ca(redis_server, processes, tmp_path):
    pki = make_pki(tmp_path / "pki")
    tls_args = ("--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"))
    worker = start_worker(processes, redis_server.url, "--run-port", "0", *tls_args)
    address = run_address(worker)
    target = start_serve(processes, "--redis", redis_server.url, *tls_args,
                         env={"GRAPHEXEC_TLS_CA": str(pki / "ca.pem")})
    graph, x, y, w, loss, train, init = regression()
    with client_env(tls_ca=pki / "ca.pem"):
        sess = tf.Session(target, graph=graph)
    with sess:
        assert uses(sess, address) and sess._connection.direct.ssl_context is not None
        assert sess._connection.direct.local_name == ""  # no Unix socket beside TLS
        sess.run(init)
        sess.run(train, {x: np.ones((2, 3), np.float32), y: np.ones((2, 1), np.float32)})
        assert sess._connection.direct.calls == 2
        np.testing.assert_allclose(sess.run(w), np.full((3, 1), 0.2, np.float32), rtol=1e-6)  # 0 + 0.1 * 2


def test_a_public_worker_that_takes_runs_needs_tokens_too():
    done = subprocess.run([sys.executable, "-m", "graphexec", "worker", "--redis", "redis://127.0.0.1:1",
                           "--host", "0.0.0.0", "--run-port", "0"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert re.fullmatch(r"graphexec worker: error: refusing to listen on 0\.0\.0\.0 without TLS \(--tls-cert/--tls-key\) "
                        r"and tokens \(--auth-tokens\) and a worker secret \(--worker-secret-file\).*\n",
                        done.stderr), done.stderr


def long_chain():
    """(x, total): 1500 products of a fed [n, n] x: seconds at n = 400, to be killed in."""
    x = tf.placeholder(tf.float32, [None, None])
    y = x
    for _ in range(1500):
        y = tf.tanh(tf.matmul(y, x))
    return x, tf.reduce_sum(y)


def child_of(process) -> int:
    """The worker process under a `graphexec worker --run-port` (its parent watches it)."""
    with open(f"/proc/{process.pid}/task/{process.pid}/children") as children:
        pids = [int(pid) for pid in children.read().split()]
    assert len(pids) == 1, pids
    return pids[0]


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_a_run_that_kills_the_worker_it_was_sent_to_is_refused_everywhere(redis_server, processes,
                                                                          wait_for_workers):
    taking = start_worker(processes, redis_server.url, "--run-port", "0")
    other = start_worker(processes, redis_server.url)
    replicas = [start_serve(processes, "--redis", redis_server.url) for _ in range(2)]
    for target in replicas:
        wait_for_workers(target, 2)
    child = child_of(taking)
    with tf.Graph().as_default():
        x, total = long_chain()
        value = np.random.default_rng(2).normal(size=(400, 400)).astype(np.float32) * 0.05  # < 1 MiB: not streamed
        with tf.Session(replicas[0]) as sess:
            assert uses(sess, run_address(taking))
            failure = {}

            def run_long():
                try:
                    sess.run(total, {x: value})
                except errors.OpError as exc:
                    failure["error"] = exc

            runner = threading.Thread(target=run_long)
            before = cpu_ticks(child)
            runner.start()
            deadline = time.monotonic() + 30
            while cpu_ticks(child) - before < 20:  # 0.2 s of CPU into the run, as the OOM killer would
                assert time.monotonic() < deadline
                time.sleep(0.02)
            os.kill(child, signal.SIGKILL)
            runner.join(timeout=120)
        # the client sent it to the server naming the broken link: not resent to the other worker
        assert isinstance(failure.get("error"), errors.AbortedError), failure
        assert "died while running this run" in failure["error"].message
        assert taking.proc.wait(timeout=10) == 128 + signal.SIGKILL  # the parent exits as the worker did
        time.sleep(1.0)  # replicas merge the shared list every 0.5 s
        small = np.eye(3, dtype=np.float32) * 0.1
        with tf.Session(replicas[1]) as again:  # the parent refused the graph, whatever its feeds
            with pytest.raises(errors.ResourceExhaustedError, match="a run of this graph killed the worker it was sent"):
                again.run(total, {x: small})
    assert other.proc.poll() is None


def test_concurrent_updates_on_two_workers_apply_each_fed_value_once(redis_server, processes, wait_for_workers):
    """Runs on a worker commit optimistically (no lock); one whose commit lost the race to the other
    worker's runs again under the lock, with its feeds as sent (`x * 2` could be computed into the fed
    buffer were it writable: executor._donors)."""
    takers = [start_worker(processes, redis_server.url, "--run-port", "0") for _ in range(2)]
    target = start_serve(processes, "--redis", redis_server.url)
    wait_for_workers(target, 2)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [4096], name="x")
        total = tf.Variable(np.zeros(4096, np.float32), name="total")
        add = total.assign_add(x * 2.0)
    sessions = {run_address(worker): [] for worker in takers}
    while min(map(len, sessions.values())) < 2:  # servers name one of the two at random: two sessions on each
        sess = tf.Session(target, graph=graph)
        mine = next((a for a in sessions if uses(sess, a)), None)
        assert mine is not None
        if len(sessions[mine]) < 2:
            sessions[mine].append(sess)
        else:
            sess.close()
    clients = [sess for pair in sessions.values() for sess in pair]
    clients[0].run(total.initializer)
    runs, failures = 40, []

    def client(index):
        try:
            for run in range(runs):
                clients[index].run(add.op, {x: np.full(4096, index * runs + run + 1, np.float32)})
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures
    assert all(sess._connection.direct.calls >= runs for sess in clients)  # every run on a worker itself
    expected = 2.0 * sum(range(1, len(clients) * runs + 1))
    np.testing.assert_array_equal(clients[0].run(total), np.full(4096, expected, np.float32))
    for sess in clients:
        sess.close()
