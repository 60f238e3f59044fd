"""server/healthcheck.py (the images' graphexec-healthcheck, which compose and the Kubernetes TLS overlay
run) against real servers and workers that serve TLS and mutual TLS, with certificates made for the test:
grpcs:// targets with the clients' GRAPHEXEC_TLS_* settings, TLS by default where the container's own
process serves it (GRAPHEXEC_TLS_CERT set), readiness and liveness as the plaintext probes answer them."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Process, start_serve
from security_setup import WORKER_SECRET, make_pki, write_secret, write_tokens

ROOT = Path(__file__).resolve().parents[2]
HEALTHCHECK = ROOT / "server" / "healthcheck.py"
READINESS = "graphexec.v1.GraphExecService"
CLIENT_SETTINGS = ("GRAPHEXEC_TLS_CA", "GRAPHEXEC_TLS_CERT", "GRAPHEXEC_TLS_KEY", "GRAPHEXEC_PORT",
                   "GRAPHEXEC_WORKER_PORT", "GRAPHEXEC_TOKEN")


def healthcheck(*args, **env) -> subprocess.CompletedProcess:
    """Run the health check as a container runs it: its environment is `env` (no client settings of ours)."""
    base = {k: v for k, v in os.environ.items() if k not in CLIENT_SETTINGS}
    return subprocess.run([sys.executable, str(HEALTHCHECK), "--timeout", "10", *args], check=False,
                          capture_output=True, text=True, timeout=60,
                          env={**base, **{k: str(v) for k, v in env.items()}})


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = make_pki(tmp_path_factory.mktemp("pki"))
    write_tokens(folder)
    write_secret(folder, "worker-secret", WORKER_SECRET)
    return folder


def tls_args(pki, mutual: bool = False) -> list[str]:
    args = ["--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key")]
    return args + (["--tls-client-ca", str(pki / "ca.pem")] if mutual else [])


@pytest.fixture(scope="module")
def tls_server(pki):
    """A TLS server with tenants' tokens (its embedded worker makes it ready): its HOST:PORT."""
    started: list[Process] = []
    try:
        target = start_serve(started, *tls_args(pki), "--auth-tokens", str(pki / "tokens"))
        yield target.removeprefix("grpcs://")
    finally:
        for process in started:
            process.kill()


def test_a_grpcs_target_is_checked_over_tls_without_a_token(pki, tls_server):
    for service in ("", READINESS):
        done = healthcheck("--target", f"grpcs://{tls_server}", "--service", service, GRAPHEXEC_TLS_CA=pki / "ca.pem")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"grpcs://{tls_server}: SERVING"


def test_plaintext_or_an_untrusted_ca_is_unhealthy(pki, tls_server, tmp_path):
    done = healthcheck("--target", f"grpc://{tls_server}")
    assert done.returncode == 1 and "UNAVAILABLE" in done.stderr, done.stderr
    other = make_pki(tmp_path / "other", "another CA")
    done = healthcheck("--target", f"grpcs://{tls_server}", GRAPHEXEC_TLS_CA=other / "ca.pem")
    assert done.returncode == 1 and "UNAVAILABLE" in done.stderr, done.stderr


def test_the_certificate_must_bear_the_server_name_asked_for(pki, tls_server):
    ca = pki / "ca.pem"
    assert healthcheck("--target", f"grpcs://{tls_server}", "--tls-server-name", "localhost",
                       GRAPHEXEC_TLS_CA=ca).returncode == 0
    done = healthcheck("--target", f"grpcs://{tls_server}", "--tls-server-name", "graphexec.example.com",
                       GRAPHEXEC_TLS_CA=ca)
    assert done.returncode == 1 and "UNAVAILABLE" in done.stderr, done.stderr


def test_in_the_servers_own_environment_the_default_probe_speaks_tls(pki, tls_server):
    """What the image's HEALTHCHECK and compose run: no target, the server's settings as its container has them."""
    port = tls_server.rsplit(":", 1)[1]
    container = {"GRAPHEXEC_PORT": port, "GRAPHEXEC_TLS_CERT": pki / "server.pem",
                 "GRAPHEXEC_TLS_KEY": pki / "server.key", "GRAPHEXEC_TLS_CA": pki / "ca.pem"}
    done = healthcheck(**container)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"grpcs://127.0.0.1:{port}: SERVING"
    done = healthcheck("--address", f"127.0.0.1:{port}", "--service", READINESS, **container)
    assert done.returncode == 0, done.stderr


def test_bad_tls_settings_say_which(pki, tls_server):
    done = healthcheck("--target", f"grpcs://{tls_server}", GRAPHEXEC_TLS_CA=pki / "tokens")
    assert done.returncode == 1 and "GRAPHEXEC_TLS_CA" in done.stderr and "not a PEM file" in done.stderr
    done = healthcheck("--target", f"grpcs://{tls_server}", GRAPHEXEC_TLS_CERT=pki / "client.pem")
    assert done.returncode == 1 and "needs both GRAPHEXEC_TLS_CERT and GRAPHEXEC_TLS_KEY" in done.stderr
    done = healthcheck("--target", f"https://{tls_server}")
    assert done.returncode == 2 and "grpcs://HOST:PORT" in done.stderr


def test_mutual_tls_servers_and_workers_admit_the_probe_with_their_own_certificate(pki, redis_server, processes):
    """serve --redis and a worker, both requiring client certificates: each container's probe presents
    its process's certificate; readiness follows the live workers, liveness does not."""
    secret = ["--worker-secret-file", str(pki / "worker-secret")]
    target = start_serve(processes, "--redis", redis_server.url, *tls_args(pki, mutual=True), "--tls-ca",
                         str(pki / "ca.pem"), "--auth-tokens", str(pki / "tokens"), *secret)
    server_port = target.rsplit(":", 1)[1]
    container = {"GRAPHEXEC_TLS_CERT": pki / "server.pem", "GRAPHEXEC_TLS_KEY": pki / "server.key",
                 "GRAPHEXEC_TLS_CA": pki / "ca.pem"}
    assert healthcheck(GRAPHEXEC_PORT=server_port, **container).returncode == 0  # alive
    not_ready = healthcheck("--service", READINESS, GRAPHEXEC_PORT=server_port, **container)
    assert not_ready.returncode == 1 and "NOT_SERVING" in not_ready.stdout, not_ready.stdout + not_ready.stderr

    worker = Process([sys.executable, "-m", "graphexec", "worker", "--redis", redis_server.url, "--port", "0",
                      *tls_args(pki, mutual=True), *secret], r"serving on \S+:(\d+)")
    processes.append(worker)
    worker_port = worker.match.group(1)
    done = healthcheck(GRAPHEXEC_WORKER_PORT=worker_port, GRAPHEXEC_PORT="1", **container)
    assert done.returncode == 0 and re.search(rf"grpcs://127.0.0.1:{worker_port}: SERVING", done.stdout), done
    anonymous = healthcheck("--target", f"grpcs://127.0.0.1:{worker_port}", GRAPHEXEC_TLS_CA=pki / "ca.pem")
    assert anonymous.returncode == 1, anonymous.stdout  # no client certificate: refused

    deadline = time.monotonic() + 30  # the server notices the worker within a heartbeat or two
    while (ready := healthcheck("--service", READINESS, GRAPHEXEC_PORT=server_port, **container)).returncode:
        assert time.monotonic() < deadline, ready.stdout + ready.stderr
        time.sleep(0.2)
