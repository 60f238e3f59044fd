"""The API's direct link (graphexec.server.direct_api): Python sessions send their runs as frames on a
socket, with gRPC's answers, limits and security, against real `graphexec serve` processes."""
from __future__ import annotations

import logging
import socket
import ssl
import threading
import time

import numpy as np
import pytest
from conftest import Process, free_port, start_serve  # tests/integration is on sys.path
from security_setup import ALICE_TOKEN, BOB_TOKEN, client_env, make_pki, write_tokens
from test_cancellation import _big_product  # a product of many seconds, fed a scalar

import graphexec as tf
from graphexec import errors
from graphexec.client import direct
from graphexec.client.remote import RemoteSession
from graphexec.proto.v1 import service_pb2 as spb
from graphexec.rpc import codec, frames, status
from graphexec.rpc.frames import API_PREFIX

pytestmark = pytest.mark.timeout(240)
SLACK_S = 1.5


# One thread serves the link's connections without TLS (graphexec.server.direct_batching), batching their
# runs with dynamic batching on: every test of the link runs against both.
BATCHING = {"unbatched": (), "batching": ("--max-batch-size", "8", "--max-batch-delay-us", "2000")}


@pytest.fixture(scope="module", params=list(BATCHING))
def one_thread(request):
    """A server that runs one run at a time, with short idle connections and a small message limit."""
    started: list[Process] = []
    try:
        yield start_serve(started, "--threads", "1", "--queue-depth", "8", "--stream-idle-timeout", "1",
                          "--max-message-bytes", "4MiB", *BATCHING[request.param])
    finally:
        for process in started:
            process.kill()


def _mlp():
    rng = np.random.default_rng(3)
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(1)
        x = tf.placeholder(tf.float32, [None, 20])
        y = tf.placeholder(tf.int64, [None])
        hidden = tf.layers.dense(x, 16, tf.nn.relu)
        logits = tf.layers.dense(hidden, 3)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        train = tf.train.AdamOptimizer(0.01).minimize(loss)
        init = tf.global_variables_initializer()
    batches = [(rng.normal(size=(32, 20)).astype(np.float32), rng.integers(0, 3, 32)) for _ in range(20)]
    return graph, x, y, loss, train, init, batches


def _train(target, direct_on: bool, monkeypatch) -> tuple[list, int]:
    monkeypatch.setenv("GRAPHEXEC_DIRECT", "1" if direct_on else "0")
    graph, x, y, loss, train, init, batches = _mlp()
    with tf.Session(target, graph=graph) as sess:
        sess.run(init)
        losses = [sess.run([train, loss], {x: bx, y: by})[1] for bx, by in batches]
        link = sess._connection.direct
        return losses, 0 if link is None else link.calls


def test_runs_take_the_direct_link_and_answer_as_grpc_does(one_thread, monkeypatch):
    over_direct, calls = _train(one_thread, True, monkeypatch)
    over_grpc, grpc_calls = _train(one_thread, False, monkeypatch)
    assert calls == 21 and grpc_calls == 0  # the initializer and 20 steps
    assert over_direct == over_grpc  # bit for bit
    assert over_direct[-1] < over_direct[0]

    monkeypatch.setenv("GRAPHEXEC_DIRECT", "1")
    with tf.Graph().as_default():
        a = tf.placeholder(tf.float32, [None])
        b = tf.placeholder(tf.float32, [None])
        total = tf.reduce_sum(a * b)
        with tf.Session(one_thread) as sess:
            values = np.random.default_rng(0).normal(size=(2, 1000)).astype(np.float32)
            assert np.isclose(sess.run(total, {a: values[0], b: values[1]}), (values[0] * values[1]).sum(), rtol=1e-5)
            assert sess._connection.direct.calls == 1
            assert sess._connection.direct.other_calls == 1  # its MakeCallable came over the link too


def test_large_feeds_written_from_their_arrays_arrive_exactly(one_thread, monkeypatch):
    """A run's feeds go to the link as views of their arrays (no joined copy): feeds above the frame
    copy threshold, a transposed (non-contiguous) one, a big-endian one, strings and a scalar all arrive
    bit for bit, over the link and not over gRPC."""
    monkeypatch.setenv("GRAPHEXEC_DIRECT", "1")
    rng = np.random.default_rng(5)
    big = rng.normal(size=(300, 257)).astype(np.float32)  # 308 KB, above frames.COPY_BELOW
    transposed = rng.normal(size=(257, 300)).T  # float64, a view in Fortran order
    swapped = rng.integers(-1 << 40, 1 << 40, size=(40000,)).astype(">i8")
    words = np.array([b"a", b"", "naïve".encode()], dtype=object)
    with tf.Graph().as_default():
        fed = [tf.placeholder(tf.float32, [None, 257]), tf.placeholder(tf.float64, [None, 257]),
               tf.placeholder(tf.int64, [None]), tf.placeholder(tf.string, [None]), tf.placeholder(tf.float32, [])]
        outs = [tf.identity(p) for p in fed]
        with tf.Session(one_thread) as sess:
            got = sess.run(outs, dict(zip(fed, (big, transposed, swapped, words, np.float32(2.5)))))
            assert sess._connection.direct.calls == 1
    assert got[0].tobytes() == big.tobytes()
    assert np.array_equal(got[1], transposed) and got[1].dtype == np.float64
    assert np.array_equal(got[2], swapped.astype(np.int64))
    assert list(got[3]) == list(words) and got[4] == np.float32(2.5)


def test_runs_that_repeat_a_layout_each_apply_their_own_feeds_once(one_thread, monkeypatch):
    """Runs repeating one request's layout are read through the connection's template (without parsing,
    servicer.run_callable_decoder), small ones and large ones (401 KB, in shared memory on this host), with
    other layouts between them: each applies its own feeds, once. A stale feed would add an earlier run's
    values; a stale request id would be answered from the earlier run's stored result, adding nothing."""
    monkeypatch.setenv("GRAPHEXEC_DIRECT", "1")
    rng = np.random.default_rng(9)
    with tf.Graph().as_default():
        small, large = tf.placeholder(tf.float32, [3]), tf.placeholder(tf.float32, [128, 784])
        totals = tf.Variable(np.zeros(3, np.float32)), tf.Variable(np.zeros((128, 784), np.float32))
        adds = {small: tf.assign_add(totals[0], small), large: tf.assign_add(totals[1], large)}
        want = {small: np.zeros(3, np.float32), large: np.zeros((128, 784), np.float32)}
        with tf.Session(one_thread) as sess:
            sess.run(tf.global_variables_initializer())
            runs = 0
            for fed in (large, large, large, small, small, small, large, small, large, large):
                value = rng.normal(size=fed.shape.as_list()).astype(np.float32)
                want[fed] += value
                assert sess.run(adds[fed], {fed: value}).tobytes() == want[fed].tobytes()
                runs += 1
            assert sess._connection.direct.calls == runs + 1  # and the initializer
            got = sess.run(list(totals))
    assert got[0].tobytes() == want[small].tobytes() and got[1].tobytes() == want[large].tobytes()


def test_feeds_above_a_chunk_go_in_one_frame_up_to_the_servers_limit_then_in_parts(one_thread, monkeypatch):
    """A run whose feeds are above the Run stream's chunk (1 MiB) but within DIRECT_RUN_BYTES takes the link
    in one frame; one above the server's --max-message-bytes (4 MiB here, less room for the rest of the
    request, as CreateSession says) goes on the Run stream in parts."""
    monkeypatch.setenv("GRAPHEXEC_DIRECT", "1")
    rng = np.random.default_rng(6)
    medium = rng.normal(size=(512, 784)).astype(np.float32)  # 1.6 MB
    large = rng.normal(size=(1536, 784)).astype(np.float32)  # 4.8 MB
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, 784])
        doubled = x * 2.0
        with tf.Session(one_thread) as sess:
            np.testing.assert_array_equal(sess.run(doubled, {x: medium}), medium * 2.0)
            assert sess._connection.direct.calls == 1
            np.testing.assert_array_equal(sess.run(doubled, {x: large}), large * 2.0)
            np.testing.assert_array_equal(sess.run(doubled, {x: medium}), medium * 2.0)
            assert sess._connection.direct.calls == 2  # not the large one


def test_large_fetches_come_in_one_frame_up_to_the_servers_limit_then_in_parts(one_thread, monkeypatch):
    """A run whose fetches are statically above the Run stream's chunk (1 MiB) comes back over the link in
    one frame while they are within what the server reads in one message (4 MiB here, less room for the
    rest); a larger one takes the Run stream in parts. Both answer the same values."""
    monkeypatch.setenv("GRAPHEXEC_DIRECT", "1")
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [784])
        medium = tf.tile(x[None], [512, 1]) * 2.0  # 1.6 MB, its shape known when the graph is built
        large = tf.tile(x[None], [1536, 1]) + 1.0  # 4.8 MB
        row = np.arange(784, dtype=np.float32)
        with tf.Session(one_thread) as sess:
            np.testing.assert_array_equal(sess.run(medium, {x: row}), np.tile(row * 2.0, (512, 1)))
            assert sess._connection.direct.calls == 1
            np.testing.assert_array_equal(sess.run(large, {x: row}), np.tile(row + 1.0, (1536, 1)))
            assert sess._connection.direct.calls == 1  # the stream's
            np.testing.assert_array_equal(sess.run(medium, {x: row + 1}), np.tile((row + 1) * 2.0, (512, 1)))
            assert sess._connection.direct.calls == 2


def test_a_failed_run_raises_its_class_message_and_printed_text(one_thread, monkeypatch, capsys):
    answers = []
    for switch in ("1", "0"):
        monkeypatch.setenv("GRAPHEXEC_DIRECT", switch)
        with tf.Graph().as_default():
            v = tf.Variable(1.0, name="never_initialized")
            x = tf.placeholder(tf.float32, [None])
            printed = tf.Print(x, [x], message="seen: ")
            with tf.control_dependencies([printed]):
                out = tf.identity(v) + 1.0
            with tf.Session(one_thread) as sess:
                with pytest.raises(errors.FailedPreconditionError) as failure:
                    sess.run(out, {x: np.array([7.0], np.float32)})
                answers.append((type(failure.value), failure.value.message))
        assert "seen: [7]" in capsys.readouterr().err
    assert answers[0] == answers[1]
    assert "never_initialized" in answers[0][1]


def test_past_its_deadline_a_run_is_deadline_exceeded_and_the_server_is_free(one_thread):
    with tf.Graph().as_default():
        s, total, _ = _big_product()
        quick = s * 2.0
        with tf.Session(one_thread) as sess:
            assert sess.run(quick, {s: 1.0}) == 2.0
            started = time.monotonic()
            with pytest.raises(errors.DeadlineExceededError):
                sess.run(total, {s: 1.0}, options=tf.RunOptions(timeout_in_ms=500))
            assert sess.run(quick, {s: 3.0}) == 6.0
            assert time.monotonic() - started < 0.5 + SLACK_S
            assert sess._connection.direct.calls == 3


def _direct_port(target: str) -> int:
    with tf.Graph().as_default(), tf.Session(target) as sess:
        return sess._connection.direct.port


def _raw_connection(port: int, token: str = "", context: ssl.SSLContext | None = None):
    """A direct-link connection made by hand: (socket, reader, HELLO's answer)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    if context is not None:
        sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
    reader = sock.makefile("rb")
    frames.send_frame(sock, frames.HELLO, token.encode())
    return sock, reader, frames.read_frame(reader)


def test_a_client_that_hangs_up_mid_run_cancels_it(one_thread):
    """gRPC cancels a call whose client went away; so does the direct link: the one run thread is soon
    free for the next run, which waited for it."""
    with tf.Graph().as_default():
        s, total, _ = _big_product()
        quick = s * 2.0
        with tf.Session(one_thread) as sess:
            assert sess.run(quick, {s: 1.0}) == 2.0
            made = sess._callable((s.name,), (total.name,), ())
            request = spb.RunCallableRequest(session_handle=sess._handle, callable_handle=made.handle)
            sock, reader, hello = _raw_connection(sess._connection.direct.port)
            assert hello == (frames.RESULT, b"")
            frames.send_frame(sock, frames.RUN, API_PREFIX.pack(-1.0, 1),
                              codec.encode_tensor_message(request, "feeds", [np.float32(1.0)]))
            time.sleep(1.0)  # well into the product
            next_run = {}
            waiting = threading.Thread(target=lambda: next_run.update(value=sess.run(quick, {s: 3.0}),
                                                                      at=time.monotonic()))
            waiting.start()
            time.sleep(0.2)
            assert "value" not in next_run  # it waits for the one run thread
            hung_up = time.monotonic()
            reader.close()
            sock.close()
            waiting.join(timeout=60)
    assert next_run["value"] == 6.0
    print(f"\nhung-up product: the next run answered {(next_run['at'] - hung_up) * 1e3:.0f} ms after")
    assert next_run["at"] - hung_up < SLACK_S


def test_frames_above_the_limit_and_unknown_methods_get_precise_statuses(one_thread):
    sock, reader, _ = _raw_connection(_direct_port(one_thread))
    with sock:
        frames.send_frame(sock, frames.RUN, API_PREFIX.pack(-1.0, 9), b"")
        kind, body = frames.read_frame(reader)
        assert kind == frames.FAILURE
        assert isinstance(status.error_from_failure_bytes(body), errors.UnimplementedError)
        frames.send_frame(sock, frames.RUN, API_PREFIX.pack(-1.0, 1), b"\xff\xff\xff")  # not a message
        kind, body = frames.read_frame(reader)
        assert isinstance(status.error_from_failure_bytes(body), errors.InvalidArgumentError)
        sock.sendall(frames.HEAD.pack(frames.RUN, 5 << 20))  # above --max-message-bytes 4MiB: never read
        kind, body = frames.read_frame(reader)
        failure = status.error_from_failure_bytes(body)
        assert isinstance(failure, errors.ResourceExhaustedError) and "--max-message-bytes" in failure.message
        with pytest.raises(frames.Closed):
            frames.read_frame(reader)  # and the connection is closed
    with tf.Graph().as_default():  # the server serves on
        x = tf.placeholder(tf.float32, [2])
        with tf.Session(one_thread) as sess:
            assert list(sess.run(x * 2, {x: [1, 2]})) == [2, 4]


def test_an_idle_connection_closed_by_the_server_is_replaced(one_thread):
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [2])
        with tf.Session(one_thread) as sess:
            assert list(sess.run(x + 1, {x: [1, 2]})) == [2, 3]
            time.sleep(3.0)  # past --stream-idle-timeout 1: the server closed the connection
            assert list(sess.run(x + 1, {x: [3, 4]})) == [4, 5]
            assert sess._connection.direct.calls == 2  # both over the link, the second on a new connection


def test_an_unreachable_direct_port_falls_back_to_grpc_with_one_warning(one_thread, caplog):
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [2])
        with tf.Session(one_thread) as sess:
            closed_port = free_port()
            sess._connection.direct = None
            sess._connection.use_direct(closed_port)
            with caplog.at_level(logging.WARNING, logger="graphexec.client"):
                for value in range(3):
                    assert list(sess.run(x * value, {x: [1, 2]})) == [value, 2 * value]
            assert sess._connection.direct.calls == 0
    warnings = [r.getMessage() for r in caplog.records if r.name == "graphexec.client"]
    assert len(warnings) == 1 and f"cannot connect to 127.0.0.1:{closed_port}" in warnings[0], warnings


def test_a_server_without_the_link_and_a_full_server_serve_over_grpc(processes):
    without = start_serve(processes, "--direct-port", "-1")
    full = start_serve(processes, "--max-streams", "1")
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [2])
        with tf.Session(without) as sess:
            assert list(sess.run(x * 3, {x: [1, 2]})) == [3, 6]
            assert sess._connection.direct is None
        with tf.Session(full) as first, tf.Session(full) as second:
            assert first._connection.direct is second._connection.direct  # a process's sessions share it
            assert list(first.run(x * 3, {x: [1, 2]})) == [3, 6]
            assert list(second.run(x * 3, {x: [1, 2]})) == [3, 6]  # on the one connection the server allows
            assert first._connection.direct.calls == 2
            port = first._connection.direct.port
        deadline = time.monotonic() + 10
        while True:  # the sessions' connection closed with them; until the server has seen it, it is refused
            sock, reader, (kind, _) = _raw_connection(port)
            if kind == frames.RESULT:
                break
            sock.close()
            assert time.monotonic() < deadline, "the server kept counting a closed connection"
            time.sleep(0.05)
        with sock, tf.Session(full) as third:  # the one allowed connection is held: runs go over gRPC
            assert list(third.run(x * 3, {x: [1, 2]})) == [3, 6]
            assert third._connection.direct.calls == 0


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = make_pki(tmp_path_factory.mktemp("pki"))
    write_tokens(folder)
    return folder


def test_over_mutual_tls_with_tokens_runs_are_the_tenants_own(pki, processes):
    target = start_serve(processes, "--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"),
                         "--tls-client-ca", str(pki / "ca.pem"), "--auth-tokens", str(pki / "tokens"))
    tls_files = {"tls_ca": pki / "ca.pem", "tls_cert": pki / "client.pem", "tls_key": pki / "client.key"}
    with tf.Graph().as_default():
        w = tf.Variable(np.arange(6, dtype=np.float32).reshape(3, 2), name="w")
        total = tf.reduce_sum(w)
        with client_env(token=ALICE_TOKEN, **tls_files):
            alice = RemoteSession(target)
        with alice:
            alice.run(w.initializer)
            assert alice.run(total) == 15.0
            assert alice._connection.direct.calls == 2
            assert alice._connection.direct.local_name == ""  # no Unix socket beside TLS (no certificates there)
            made = alice._callable((), (total.name,), ())
            request = spb.RunCallableRequest(session_handle=alice._handle, callable_handle=made.handle)
            with client_env(token=BOB_TOKEN, **tls_files):
                bob = RemoteSession(target)
            with bob:
                with pytest.raises(errors.NotFoundError, match="does not exist"):  # alice's session is not bob's
                    bob._connection.call("RunCallable", request.SerializeToString())
                assert bob._connection.direct.calls == 1  # the failure came over the link
            context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
            context.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))
            port = alice._connection.direct.port
            sock, reader, (kind, body) = _raw_connection(port, "wrong-token", context)
            with sock:
                assert kind == frames.FAILURE
                assert isinstance(status.error_from_failure_bytes(body), errors.UnauthenticatedError)
                with pytest.raises(frames.Closed):
                    frames.read_frame(reader)
            no_certificate = ssl.create_default_context(cafile=str(pki / "ca.pem"))
            with pytest.raises((ssl.SSLError, OSError, frames.Closed)):
                sock, reader, _ = _raw_connection(port, ALICE_TOKEN, no_certificate)
                sock.close()


def test_host_of_leaves_address_lists_and_socket_files_on_grpc():
    assert direct.host_of("127.0.0.1:7470") == "127.0.0.1"
    assert direct.host_of("[::1]:7470") == "::1"
    assert direct.host_of("server.example:7470") == "server.example"
    assert direct.host_of("dns:///graphexec-server.ns.svc:7470") == "graphexec-server.ns.svc"
    for address in ("ipv4:10.0.0.1:7470,10.0.0.2:7470", "ipv4:10.0.0.1:7470", "unix:/tmp/sock"):
        assert direct.host_of(address) is None


def test_a_forked_child_opens_its_own_connections(one_thread):
    """A child forked after runs (multiprocessing's default on Linux) must not write into its parent's
    connection: both go on running, each over a connection of its own."""
    import multiprocessing

    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [2])
        doubled = x * 2
        with tf.Session(one_thread) as sess:
            assert list(sess.run(doubled, {x: [1, 2]})) == [2, 4]

            def child(answers):
                answers.put([list(sess.run(doubled, {x: [float(i), 1.0]})) for i in range(50)])

            answers = multiprocessing.get_context("fork").Queue()
            forked = multiprocessing.get_context("fork").Process(target=child, args=(answers,))
            forked.start()
            mine = [list(sess.run(doubled, {x: [1.0, float(i)]})) for i in range(50)]
            theirs = answers.get(timeout=60)
            forked.join(timeout=60)
            assert mine == [[2.0, 2.0 * i] for i in range(50)]
            assert theirs == [[2.0 * i, 2.0] for i in range(50)]
            assert sess._connection.direct.calls == 51
