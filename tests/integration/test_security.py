"""A service many people share: TLS, tenants by token, isolation of their variables and sessions, the
declared dtype and shape of stored variables, workers that only servers may call and only signed
registrations, and Redis behind a password. Real processes, real certificates made here."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from concurrent import futures

import grpc
import numpy as np
import pytest
from conftest import Process, free_port, start_serve
from prometheus_client.parser import text_string_to_metric_families
from security_setup import (
    ALICE_TOKEN,
    BOB_TOKEN,
    WORKER_SECRET,
    client_env,
    make_pki,
    write_secret,
    write_tokens,
)

import graphexec as tf
from graphexec import errors
from graphexec.compiler.plan import compiler_version
from graphexec.client.connection import Connection
from graphexec.client.remote import RemoteSession
from graphexec.proto.v1 import service_pb2 as spb
from graphexec.rpc import convert, methods
from graphexec.server import redis_store
from graphexec.server.auth import WorkerSecret

CONTAINERS = ["", "shared", "alice", "alice/", "/", "bob/shared"]


def weights_graph(dtype=tf.float32, shape=(3, 2), name="w"):
    """(graph, w, initializer, read): a variable `name` initialized to 1..n."""
    graph = tf.Graph()
    with graph.as_default():
        w = tf.Variable(np.arange(1, np.prod(shape) + 1).reshape(shape).astype(dtype.np), name=name)
        total = tf.reduce_sum(w)
    return graph, w, w.initializer, total


def session(target, token=None, graph=None, container="", **tls_settings):
    with client_env(token=token, **tls_settings):
        return tf.Session(target, graph=graph if graph is not None else tf.Graph(),
                          config=tf.ConfigProto(container=container))


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = make_pki(tmp_path_factory.mktemp("pki"))
    write_tokens(folder)
    write_secret(folder, "worker-secret", WORKER_SECRET)
    return folder


@pytest.fixture(scope="module")
def shared_server(pki):
    """A TLS server with two tenants, alice and bob: (target, tls settings for clients)."""
    started: list[Process] = []
    try:
        target = start_serve(started, "--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"),
                             "--auth-tokens", str(pki / "tokens"))
        assert target.startswith("grpcs://")
        yield target, {"tls_ca": pki / "ca.pem"}
    finally:
        for process in started:
            process.kill()


# -- tenants ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("container", CONTAINERS)
def test_a_tenant_cannot_read_write_or_reset_another_tenants_variables(shared_server, container):
    target, tls_settings = shared_server
    graph, w, init, total = weights_graph()
    with session(target, ALICE_TOKEN, graph, container, **tls_settings) as alice:
        alice.run(init)
        assert alice.run(total) == 21.0
    for bobs_container in {container, "", "shared", "alice", "alice/" + container}:
        graph, w, init, total = weights_graph()
        with session(target, BOB_TOKEN, graph, bobs_container, **tls_settings) as bob:
            with pytest.raises(errors.FailedPreconditionError, match="uninitialized value w"):
                bob.run(total)  # alice's w is not bob's to read
            bob.run(w.assign(np.zeros((3, 2), np.float32)))  # bob's own w, in bob's own container
            assert bob.run(total) == 0.0
        with client_env(token=BOB_TOKEN, **tls_settings):
            RemoteSession.reset(target, [bobs_container, container])
    graph, w, init, total = weights_graph()
    with session(target, ALICE_TOKEN, graph, container, **tls_settings) as alice:
        assert alice.run(total) == 21.0  # neither bob's writes nor his resets reached alice's w
    with client_env(token=ALICE_TOKEN, **tls_settings):
        RemoteSession.reset(target, [container])
    with session(target, ALICE_TOKEN, graph, container, **tls_settings) as alice:
        with pytest.raises(errors.FailedPreconditionError, match="uninitialized value w"):
            alice.run(total)  # her own Reset cleared it


def test_a_tenant_cannot_use_another_tenants_session_handle(shared_server):
    target, tls_settings = shared_server
    graph, w, init, total = weights_graph()
    with session(target, ALICE_TOKEN, graph, **tls_settings) as alice:
        alice.run(init)
        handle = alice._handle
        with client_env(token=BOB_TOKEN, **tls_settings):
            bob = Connection(target)
        try:
            for method, request in (
                    ("MakeCallable", spb.MakeCallableRequest(session_handle=handle, fetches=[total.name])),
                    ("ExtendSession", spb.ExtendSessionRequest(session_handle=handle)),
                    ("RunStep", spb.RunStepRequest(session_handle=handle, fetches=[total.name]))):
                with pytest.raises(errors.NotFoundError, match="does not exist"):
                    bob.call(method, request.SerializeToString())
            bob.call("CloseSession", spb.CloseSessionRequest(session_handle=handle).SerializeToString())
        finally:
            bob.close()
        assert alice.run(total) == 21.0  # bob's CloseSession did not close alice's session


def test_missing_or_wrong_tokens_are_unauthenticated_without_naming_tenants(shared_server):
    target, tls_settings = shared_server
    messages = set()
    for token in (None, "wrong-token", "Bearer", ALICE_TOKEN + "x"):
        with pytest.raises(errors.UnauthenticatedError) as failure:
            session(target, token, **tls_settings)
        messages.add(str(failure.value))
    assert len(messages) == 1, messages  # the same answer whatever was sent
    assert "alice" not in messages.pop() and "bob" not in str(messages)


def test_tenants_do_not_get_worker_addresses(shared_server):
    target, tls_settings = shared_server
    with session(target, ALICE_TOKEN, **tls_settings) as alice:
        devices = alice.list_devices()
    assert devices and all(d.address == "" for d in devices)


def test_a_plaintext_client_of_a_tls_server_is_unavailable(shared_server):
    target, tls_settings = shared_server
    with pytest.raises(errors.UnavailableError):
        session(target.replace("grpcs://", "grpc://"), ALICE_TOKEN)


def test_a_client_that_does_not_trust_the_servers_ca_is_unavailable(shared_server, tmp_path):
    target, _ = shared_server
    other = make_pki(tmp_path / "other", "another CA")
    with pytest.raises(errors.UnavailableError):
        session(target, ALICE_TOKEN, tls_ca=other / "ca.pem")


def test_mutual_tls_admits_only_clients_with_a_certificate_of_the_ca(pki, processes, tmp_path):
    target = start_serve(processes, "--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"),
                         "--tls-client-ca", str(pki / "ca.pem"), "--auth-tokens", str(pki / "tokens"))
    graph, w, init, total = weights_graph()
    with session(target, ALICE_TOKEN, graph, tls_ca=pki / "ca.pem", tls_cert=pki / "client.pem",
                 tls_key=pki / "client.key") as alice:
        alice.run(init)
        assert alice.run(total) == 21.0
    with pytest.raises(errors.UnavailableError):
        session(target, ALICE_TOKEN, tls_ca=pki / "ca.pem")  # no client certificate
    other = make_pki(tmp_path / "other", "another CA")
    with pytest.raises(errors.UnavailableError):
        session(target, ALICE_TOKEN, tls_ca=pki / "ca.pem", tls_cert=other / "client.pem",
                tls_key=other / "client.key")  # a certificate of another CA


# -- the declared dtype and shape of stored variables -----------------------------------------------------
def test_a_new_users_uninitialized_variable_is_not_another_programs(embedded):
    graph, w, init, total = weights_graph(shape=(3, 2))
    with tf.Session(embedded, graph=graph, config=tf.ConfigProto(container="declared")) as first:
        first.run(init)
    graph = tf.Graph()
    with graph.as_default():
        w = tf.Variable(tf.zeros([2]), name="w")  # the new user's w, never initialized
        other = tf.Variable(tf.zeros([2]), name="never_initialized")
    with tf.Session(embedded, graph=graph, config=tf.ConfigProto(container="declared")) as second:
        with pytest.raises(errors.FailedPreconditionError) as failure:
            second.run(w)
        message = str(failure.value)
        assert "'w'" in message and "float32[2]" in message and "float32[3,2]" in message, message
        with pytest.raises(errors.FailedPreconditionError, match="Attempting to use uninitialized value "
                                                                 "never_initialized"):
            second.run(other)
    RemoteSession.reset(embedded, ["declared"])


def test_writing_or_reading_a_stored_variable_as_another_dtype_or_shape_fails_naming_both(embedded):
    container = tf.ConfigProto(container="mismatch")
    graph, w, init, total = weights_graph(tf.float32, (3, 2))
    with tf.Session(embedded, graph=graph, config=container) as owner:
        owner.run(init)
    for dtype, shape, declared in ((tf.int32, (3, 2), "int32[3,2]"), (tf.float32, (2, 3), "float32[2,3]"),
                                   (tf.float64, (6,), "float64[6]")):
        graph, w, init, total = weights_graph(dtype, shape)
        with tf.Session(embedded, graph=graph, config=container) as intruder:
            for fetch, action in ((init, "assign to"), (total, "read"), (w.assign_add(w), "read")):
                with pytest.raises(errors.FailedPreconditionError) as failure:
                    intruder.run(fetch)
                message = str(failure.value)
                assert f"Cannot {action} variable 'w'" in message, message
                assert declared in message and "float32[3,2]" in message, message
    graph, w, init, total = weights_graph(tf.float32, (3, 2))
    with tf.Session(embedded, graph=graph, config=container) as owner:
        assert owner.run(total) == 21.0 and owner.run(total).dtype == np.float32  # untouched
    RemoteSession.reset(embedded, ["mismatch"])


def test_in_process_sessions_check_the_declared_dtype_too():
    graph, w, init, total = weights_graph(tf.float32, (3, 2))
    with graph.as_default():
        as_ints = tf.Variable(np.zeros((3, 2), np.int32), name="w_ints")
    with tf.Session(graph=graph) as sess:
        sess.run(init)
        sess._runner.core.store.commit("", sess._runner.core.store.read_variables("")[0],
                                       {"w_ints": np.ones((3, 2), np.float32)}, 0, b"")
        with pytest.raises(errors.FailedPreconditionError, match=r"int32\[3,2\].*float32\[3,2\]"):
            sess.run(as_ints)


# -- workers -----------------------------------------------------------------------------------------------
class RecordingWorker:
    """A gRPC server posing as a worker: it answers RunPlan with a forged result and counts the calls."""

    def __init__(self):
        self.calls = []
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        handler = grpc.unary_unary_rpc_method_handler(self._run_plan)
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            methods.WORKER_SERVICE.full_name, {"RunPlan": handler}),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def _run_plan(self, data, context):
        self.calls.append(data)
        return convert.fetches_to_bytes([np.full((3, 2), 666, np.float32)])

    def stop(self):
        self.server.stop(0)


def redis_worker_record(port: int, signed_by: str | None = None) -> str:
    info = {"id": f"fake{port}", "address": f"127.0.0.1:{port}", "devices": [
        {"name": "/device:CPU:0", "device_type": "CPU", "memory_limit_bytes": 0}], "load": -1000,
        "compiler_version": compiler_version()}  # as a worker of this version registers: only the signature is wrong
    if signed_by is None:
        return json.dumps(info)
    return json.dumps(WorkerSecret(signed_by).sign(info))


def start_worker_process(processes, redis_url, *args) -> Process:
    process = Process([sys.executable, "-m", "graphexec", "worker", "--redis", redis_url, *args],
                      r"graphexec worker (\S+) .*serving on (\S+)")
    processes.append(process)
    return process


def test_a_worker_written_straight_into_redis_gets_no_work(pki, redis_server, processes, wait_for_workers):
    import redis

    secret = ["--worker-secret-file", str(pki / "worker-secret")]
    real = start_worker_process(processes, redis_server.url, *secret)
    target = start_serve(processes, "--redis", redis_server.url, *secret)
    fakes = [RecordingWorker(), RecordingWorker()]
    client = redis.Redis.from_url(redis_server.url)
    try:
        for fake, signer in zip(fakes, (None, "a-guessed-secret-that-is-wrong")):
            key = f"{redis_store.PREFIX}worker:fake{fake.port}"
            client.set(key, redis_worker_record(fake.port, signer), px=60_000)
            client.sadd(f"{redis_store.PREFIX}workers", f"fake{fake.port}")
        time.sleep(1.5)  # several registry refreshes
        assert wait_for_workers(target, 1) == {real.match.group(1)}
        graph, w, init, total = weights_graph()
        with graph.as_default():
            x = tf.placeholder(tf.float32, [3, 2])
            y = w * x
        with tf.Session(target, graph=graph) as sess:
            sess.run(init)
            for _ in range(10):
                np.testing.assert_array_equal(sess.run(y, {x: np.ones((3, 2), np.float32)}),
                                              np.arange(1, 7, dtype=np.float32).reshape(3, 2))
        assert [fake.calls for fake in fakes] == [[], []]
    finally:
        for fake in fakes:
            fake.stop()
        client.close()


def test_a_workers_run_plan_is_only_for_callers_with_the_worker_secret(pki, redis_server, processes):
    real = start_worker_process(processes, redis_server.url, "--worker-secret-file", str(pki / "worker-secret"))
    address = real.match.group(2)
    request = b"".join(convert.run_plan_request([], container="/", plan_key="no-such-plan", request_id=0,
                                                session_handle="", device_type="CPU", trace_level=0,
                                                host_steps=()))
    with grpc.insecure_channel(address) as channel:
        run_plan = methods.client_calls(channel, methods.WORKER_SERVICE)["RunPlan"]
        for metadata in (None, (("graphexec-worker-secret", "not-the-secret"),),
                         (("authorization", f"Bearer {ALICE_TOKEN}"),)):
            with pytest.raises(grpc.RpcError) as failure:
                run_plan(request, timeout=10, metadata=metadata)
            assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as failure:  # with the secret it gets as far as the plan
            run_plan(request, timeout=10, metadata=(("graphexec-worker-secret", WORKER_SECRET),))
        assert failure.value.code() == grpc.StatusCode.NOT_FOUND


def test_servers_reach_tls_workers_with_their_certificate(pki, redis_server, processes, wait_for_workers):
    tls_args = ["--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"),
                "--worker-secret-file", str(pki / "worker-secret")]
    worker = start_worker_process(processes, redis_server.url, *tls_args, "--tls-client-ca", str(pki / "ca.pem"))
    target = start_serve(processes, "--redis", redis_server.url, *tls_args, "--auth-tokens", str(pki / "tokens"),
                         env={"GRAPHEXEC_TLS_CA": str(pki / "ca.pem")})
    graph, w, init, total = weights_graph()
    with session(target, ALICE_TOKEN, graph, tls_ca=pki / "ca.pem") as alice:
        alice.run(init)
        assert alice.run(total) == 21.0
        assert alice.list_devices()[0].worker == worker.match.group(1)


# -- starting up -------------------------------------------------------------------------------------------
def run_cli(*args, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "graphexec", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("command", [["serve", "--host", "0.0.0.0", "--port", "0"],
                                     ["worker", "--redis", "redis://127.0.0.1:1", "--host", "0.0.0.0"]])
def test_a_public_listener_without_tls_and_authentication_refuses_to_start(command):
    done = run_cli(*command)
    assert done.returncode != 0 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(r"refusing to listen on 0\.0\.0\.0 without TLS", lines[0]), done.stderr
    assert "--insecure" in lines[0]


def test_a_public_listener_starts_with_insecure(processes):
    target = start_serve(processes, "--host", "0.0.0.0", "--insecure")
    with tf.Session(target.replace("0.0.0.0", "127.0.0.1"), graph=tf.Graph()) as sess:
        assert sess.list_devices()


@pytest.mark.parametrize("content, complaint", [
    ("alice\n", "line 1: expected `TENANT TOKEN`"),
    ("# nobody\n", "names no tenant"),
    ("al/ice token\n", "line 1: tenant names"),
    ("alice sha256:abc\n", "line 1: sha256: needs 64 hex digits"),
    ("alice same-token\nbob same-token\n", "line 2: this token is already given"),
])
def test_a_bad_tokens_file_is_a_one_line_startup_error(tmp_path, content, complaint):
    path = tmp_path / "tokens"
    path.write_text(content)
    done = run_cli("serve", "--port", "0", "--auth-tokens", str(path))
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert complaint in done.stderr and "same-token" not in done.stderr
    missing = run_cli("serve", "--port", "0", "--auth-tokens", str(tmp_path / "absent"))
    assert missing.returncode != 0 and "cannot read tokens file" in missing.stderr


# -- Redis behind a password --------------------------------------------------------------------------------
def test_redis_with_a_password_works_through_the_url(processes):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port, password = free_port(), "redis-pass-0123456789"
    processes.append(Process([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                              "no", "--requirepass", password], r"Ready to accept connections"))
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    start_worker_process(processes, url)
    target = start_serve(processes, "--redis", url)
    graph, w, init, total = weights_graph()
    with tf.Session(target, graph=graph) as sess:
        sess.run(init)
        sess.run(w.assign_add(w))
        assert sess.run(total) == 42.0
    refused = run_cli("serve", "--port", "0", "--redis", f"redis://127.0.0.1:{port}/0")
    assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "refused" in refused.stderr
    wrong = run_cli("serve", "--port", "0", "--redis", f"redis://:wrong-password@127.0.0.1:{port}/0")
    assert wrong.returncode != 0 and "wrong-password" not in wrong.stderr and "***" in wrong.stderr, wrong.stderr


# -- metrics by tenant ---------------------------------------------------------------------------------
def test_metrics_count_runs_and_sessions_by_authenticated_tenant(pki, processes):
    """The tenant label of a server's metrics is the tenant its caller's token names."""
    server = Process([sys.executable, "-m", "graphexec", "serve", "--port", "0", "--metrics-port", "0",
                      "--auth-tokens", str(pki / "tokens")], r"serving on (grpc://\S+)")
    processes.append(server)
    target = server.match.group(1)
    url = next(re.search(r"metrics on (http://\S+)", line).group(1) for line in server.output if "metrics on" in line)
    for token, runs in ((ALICE_TOKEN, 2), (BOB_TOKEN, 1)):
        graph, _, init, total = weights_graph()
        with session(target, token=token, graph=graph) as sess:
            sess.run(init)
            for _ in range(runs - 1):
                sess.run(total)
    with urllib.request.urlopen(url, timeout=10) as response:
        families = text_string_to_metric_families(response.read().decode())
    samples = {(s.name, s.labels.get("tenant"), s.labels.get("code")): s.value for f in families for s in f.samples}
    assert samples[("graphexec_runs_total", "alice", "OK")] == 2
    assert samples[("graphexec_runs_total", "bob", "OK")] == 1
    assert samples[("graphexec_sessions_created_total", "alice", None)] == 1
    assert samples[("graphexec_sessions_created_total", "bob", None)] == 1
    assert not any(tenant in ("", "default") for (_, tenant, _) in samples if tenant is not None)
