"""Redis's jemalloc keeps freed values' pages for the next commit (docs/configuration.md, "Redis's memory
allocator"): the deployment files set it, and a redis-server started so faults few pages per commit."""
from __future__ import annotations

import pathlib
import shutil

import numpy as np
import pytest
import yaml

from bench import procs
from conftest import Process, free_port
from graphexec.server.redis_store import RedisStore

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_deployments_redis_keeps_freed_pages():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["redis"]["environment"]
    redis_set = next(d for d in yaml.safe_load_all((ROOT / "deploy/k8s/base/redis.yaml").read_text())
                     if d and d["kind"] == "StatefulSet")
    k8s = {e["name"]: e.get("value") for e in redis_set["spec"]["template"]["spec"]["containers"][0]["env"]}
    for environment in (compose, k8s):
        assert environment["JE_MALLOC_CONF"] == environment["MALLOC_CONF"] == procs.REDIS_MALLOC_CONF


def test_the_deployments_redis_runs_without_jemallocs_background_thread():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["redis"]["command"]
    config = next(d for d in yaml.safe_load_all((ROOT / "deploy/k8s/base/redis.yaml").read_text())
                  if d and d["kind"] == "ConfigMap")["data"]["redis.conf"].splitlines()
    assert " ".join(compose).count(" ".join(procs.REDIS_ARGS)) == 1
    assert "jemalloc-bg-thread no" in config
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server, url = procs.start_redis(shutil.which("redis-server"))
    try:
        store = RedisStore(url)
        assert store.client.config_get("jemalloc-bg-thread") == {"jemalloc-bg-thread": "no"}
        store.close()
    finally:
        server.stop()


def _minor_faults(pid: int) -> int:
    return int(pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])


def _faults_of_a_commit(processes, env) -> int:
    """Pages a redis-server started with `env` faults in while a commit replaces three 16 MiB values."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    server = Process([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                     r"Ready to accept connections", env=env)
    processes.append(server)
    store = RedisStore(f"redis://127.0.0.1:{port}")
    values = {f"w{i}": np.full((2048, 2048), i, np.float32) for i in range(3)}
    version = 0
    # jemalloc settles after three commits (the second frees values, the third still faults one value's
    # pages in: 8200, 4100, then 0-1 faults with the setting, 12290 each without it); measure the fourth.
    for step in range(1, 4):
        version = store.commit("c", version, values, step, b"")
    before = _minor_faults(server.pid)
    store.commit("c", version, values, 4, b"")
    faults = _minor_faults(server.pid) - before
    _, stored = store.read_variables("c")
    np.testing.assert_array_equal(stored["w2"], values["w2"])
    if env:
        stats = store.client.execute_command("MEMORY", "MALLOC-STATS")
        assert "dirty_decay_ms: -1" in (stats.decode() if isinstance(stats, bytes) else stats)
    return faults


def test_commits_of_large_values_fault_few_pages_with_the_setting(processes):
    pages = 3 * 16 * 1024 * 1024 // 4096
    without = _faults_of_a_commit(processes, {})
    assert without > pages // 2, without  # the premise: each commit faults its values' pages in again
    kept = _faults_of_a_commit(processes, {k: v for k, v in procs.redis_env().items() if k.endswith("MALLOC_CONF")})
    assert kept < without // 10, (kept, without)
