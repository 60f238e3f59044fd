"""64 concurrent training clients against `serve --redis` with 2 workers, TLS and tokens on, first alone
and then with 1,000 idle Run streams held open: no errors, and the server's memory stays flat (a short
version of `python -m bench.shared_load`, which runs the full 60 s)."""
from __future__ import annotations

import pytest

from bench.shared_load import IdleStreams, run_load
from conftest import start_serve, start_worker  # tests/integration is on sys.path (rootdir-relative conftest)
from security_setup import ALICE_TOKEN, WORKER_SECRET, client_env, make_pki, write_secret, write_tokens

pytestmark = pytest.mark.timeout(300)


def test_64_clients_with_and_without_1000_idle_streams(processes, redis_server, tmp_path, wait_for_workers):
    pki = make_pki(tmp_path / "pki")
    secret = ["--worker-secret-file", str(write_secret(tmp_path, "worker-secret", WORKER_SECRET))]
    for _ in range(2):
        start_worker(processes, redis_server.url, *secret)
    target = start_serve(processes, "--redis", redis_server.url, *secret, "--tls-cert", str(pki / "server.pem"),
                         "--tls-key", str(pki / "server.key"), "--auth-tokens", str(write_tokens(tmp_path)))
    server_pid = processes[-1].pid
    with client_env(token=ALICE_TOKEN, tls_ca=pki / "ca.pem"):
        wait_for_workers(target, 2)
        alone = run_load(target, seconds=12, clients=64, server_pid=server_pid)
        streams = IdleStreams(target, 1000)
        try:
            crowded = run_load(target, seconds=12, clients=64, server_pid=server_pid)
        finally:
            streams.close()
    for report in (alone, crowded):
        assert report.runs > 64 and not report.errors, report.errors[:3]
        assert report.rss_growth(after_s=4.0) < 1.2, report.rss_mib
