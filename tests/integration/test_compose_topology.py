"""docker-compose.yml, run without a container engine: every service of the default profile starts as
local processes from its own command, entrypoint and environment, then the quickstart service runs the
README quickstart through that topology.

How a compose service becomes local processes:
* The image's ENTRYPOINT, CMD and ENV come from the Dockerfile that compose builds it from; executables
  the Dockerfile COPYs into the image map back to their source (graphexec-healthcheck ->
  server/healthcheck.py), `graphexec` to `python -m graphexec`, `python` to this interpreter.
* Service host names map to 127.0.0.1 and container ports to free local ports, one per replica:
  `redis://redis:6379` becomes `redis://127.0.0.1:P`, and `dns:///server:7470` (every replica behind
  one name) becomes the gRPC address list `ipv4:127.0.0.1:P1,127.0.0.1:P2`. Wildcard hosts bind 127.0.0.1.
* Bind mounts map to the repository's folders, named volumes to temporary folders (the working directory).
* Secrets (/run/secrets/NAME in the services that list them) map to files tools/make_secrets.py makes
  in the working directory, as an operator makes deploy/secrets/.
* Services start in depends_on order; `condition: service_healthy` waits for the service's own healthcheck.
So a change to docker-compose.yml that breaks the topology (a wrong host name, port, variable, command or
healthcheck) breaks this test.
"""
from __future__ import annotations

import functools
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

import graphexec as tf
from graphexec.runtime.worker import WorkerCore
from graphexec.server.auth import WorkerSecret, read_secret
from graphexec.server.pool import LocalWorker, WorkerPool
from graphexec.server.redis_store import RedisStore

yaml = pytest.importorskip("yaml")

ROOT = pathlib.Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
READY_TIMEOUT_S = 60
# What compose cannot tell: where each image listens by default, and how to make it listen elsewhere.
# Our images listen where their environment says (GRAPHEXEC_PORT / GRAPHEXEC_WORKER_PORT).
REGISTRY_IMAGES = {
    "redis": {"port": 6379, "listen_args": lambda port: ["--port", str(port), "--bind", "127.0.0.1"],
              "client_args": lambda port: ["-p", str(port)]},
}
PORT_VARIABLE = {"serve": "GRAPHEXEC_PORT", "worker": "GRAPHEXEC_WORKER_PORT"}
HOST_VARIABLE = {"serve": "GRAPHEXEC_HOST", "worker": "GRAPHEXEC_WORKER_HOST"}
METRICS_VARIABLE = "GRAPHEXEC_METRICS_PORT"
DIRECT_PORT_VARIABLES = ("GRAPHEXEC_WORKER_DIRECT_PORT", "GRAPHEXEC_DIRECT_PORT")
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- reading docker-compose.yml and the Dockerfiles ---------------------------------------------------
def load_compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@dataclass(frozen=True)
class Image:
    """What a Dockerfile's final stage gives a container: entrypoint, command, environment, copied files."""

    entrypoint: tuple = ()
    cmd: tuple = ()
    env: dict = field(default_factory=dict)
    copies: dict = field(default_factory=dict)  # path in the image -> path in the repository


@functools.cache
def parse_dockerfile(path: pathlib.Path) -> Image:
    text = re.sub(r"\\\n", " ", path.read_text())  # join continuation lines
    final_stage = re.split(r"^FROM\s", text, flags=re.M)[-1]
    entrypoint = cmd = ()
    env, copies = {}, {}
    for line in final_stage.splitlines():
        instruction, _, rest = line.strip().partition(" ")
        if instruction == "ENTRYPOINT":
            entrypoint = tuple(json.loads(rest))
        elif instruction == "CMD":
            cmd = tuple(json.loads(rest))
        elif instruction == "ENV":
            env.update(dict(pair.split("=", 1) for pair in rest.split()))
        elif instruction == "COPY" and "--from" not in rest:
            *sources, destination = [word for word in rest.split() if not word.startswith("--")]
            if len(sources) == 1:
                copies[destination] = ROOT / sources[0]
    return Image(entrypoint, cmd, env, copies)


def image_of(compose: dict, service: dict) -> Image | None:
    """The Dockerfile behind a service's image (its own build, or the service that builds that image)."""
    for candidate in [service, *compose["services"].values()]:
        build = candidate.get("build")
        if candidate.get("image") == service.get("image") and isinstance(build, dict):
            return parse_dockerfile(ROOT / build.get("context", ".") / build["dockerfile"])
    return None


def registry_image(service: dict) -> dict | None:
    name = service.get("image", "").rsplit("/", 1)[-1].split(":")[0]
    return REGISTRY_IMAGES.get(name)


def start_order(compose: dict, names: list[str]) -> list[str]:
    order, seen = [], set()

    def visit(name):
        if name not in seen:
            seen.add(name)
            for dependency in compose["services"][name].get("depends_on", {}):
                visit(dependency)
            order.append(name)

    for name in names:
        visit(name)
    return order


# -- the local topology ----------------------------------------------------------------------------------
@dataclass
class Replica:
    service: str
    index: int
    port: int  # where this replica listens locally
    metrics_port: int = 0  # where it serves /metrics locally (graphexec services)
    process: subprocess.Popen | None = None
    log: pathlib.Path | None = None
    stopped: bool = False  # stopped on purpose (docker stop), not crashed

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index}"


class LocalCompose:
    def __init__(self, compose: dict, workdir: pathlib.Path):
        self.compose = compose
        self.workdir = workdir
        self.replicas: dict[str, list[Replica]] = {}
        self.volumes = {name: workdir / f"volume-{name}" for name in compose.get("volumes", {})}
        self.secrets_dir = workdir / "secrets"
        if compose.get("secrets") and workdir.exists():
            subprocess.run([sys.executable, str(ROOT / "tools" / "make_secrets.py"), "--dir", str(self.secrets_dir)],
                           check=True, capture_output=True, timeout=60)

    def service(self, name: str) -> dict:
        return self.compose["services"][name]

    def plan(self, names):
        for name in names:
            count = int(self.service(name).get("deploy", {}).get("replicas", 1))
            self.replicas[name] = [Replica(name, i + 1, free_port(), free_port()) for i in range(count)]

    # -- translation --------------------------------------------------------------------------------
    def container_port(self, name: str) -> int | None:
        service = self.service(name)
        if registry_image(service):
            return registry_image(service)["port"]
        env = self.environment(service)
        variable = PORT_VARIABLE.get(self.subcommand(service))
        return int(env[variable]) if variable and variable in env else None

    def environment(self, service: dict) -> dict:
        image = image_of(self.compose, service)
        env = dict(image.env) if image else {}
        declared = service.get("environment", {})
        if isinstance(declared, list):
            declared = dict(item.split("=", 1) for item in declared)
        env.update({k: str(v) for k, v in declared.items()})
        return env

    def argv(self, service: dict) -> list[str]:
        image = image_of(self.compose, service)
        entrypoint = service.get("entrypoint", image.entrypoint if image else ())
        command = service.get("command", image.cmd if image and "entrypoint" not in service else ())
        return [*entrypoint, *command]

    def subcommand(self, service: dict) -> str | None:
        argv = self.argv(service)
        return argv[1] if len(argv) > 1 and argv[0] == "graphexec" else None

    def local_executable(self, service: dict, argv: list[str]) -> list[str]:
        image = image_of(self.compose, service)
        head, rest = argv[0], list(argv[1:])
        if head == "graphexec":
            return [sys.executable, "-m", "graphexec", *rest]
        if head == "python":
            return [sys.executable, *rest]
        copied = image.copies if image else {}
        source = copied.get(head) or copied.get(f"/usr/local/bin/{head}")
        if source is not None:
            return [sys.executable, str(source), *rest]
        assert shutil.which(head), f"{head} (from docker-compose.yml) is not installed here"
        return [head, *rest]

    def rewrite(self, text: str, own_container_port: int | None = None, own_port: int | None = None) -> str:
        """Compose-network addresses (`redis:6379`, `dns:///server:7470`, a service's own `127.0.0.1:PORT`)
        -> the local ones."""
        def dns(match):
            name, port = match.group(1), int(match.group(2))
            assert name in self.replicas and self.container_port(name) == port, f"{match.group(0)}: no such service port"
            return "ipv4:" + ",".join(f"127.0.0.1:{r.port}" for r in self.replicas[name])

        def host_port(match):
            name, port = match.group(1), int(match.group(2))
            if name in ("127.0.0.1", "localhost") and own_container_port == port:
                return f"127.0.0.1:{own_port}"
            if name not in self.compose["services"]:
                return match.group(0)
            assert name in self.replicas, f"{match.group(0)}: service {name} is not running in this profile"
            assert self.container_port(name) == port, f"{match.group(0)}: {name} listens on {self.container_port(name)}"
            assert len(self.replicas[name]) == 1, f"{match.group(0)}: {name} has replicas; use dns:///{name}:{port}"
            return f"127.0.0.1:{self.replicas[name][0].port}"

        text = re.sub(r"dns:///([\w.-]+):(\d+)", dns, text)
        text = re.sub(r"(?<![\w.-])([\w.-]+):(\d+)(?![\d])", host_port, text)
        return text

    def bind_mounts(self, service: dict) -> list[tuple[str, pathlib.Path]]:
        mounts = []
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            mounts.append((target, (ROOT / source).resolve() if source.startswith(".") else self.volumes[source]))
        return mounts

    def local_command(self, name: str, replica: Replica | None, argv=None):
        """(argv, env, cwd) of one replica (or a one-off run) of a service, translated to this machine."""
        service = self.service(name)
        argv = list(argv if argv is not None else self.argv(service))
        container_port, own_port = self.container_port(name), replica.port if replica else None
        mounts = self.bind_mounts(service)
        for target, source in mounts:
            argv = [str(source) + arg[len(target):] if arg.startswith(target) else arg for arg in argv]
        argv = [self.secret_paths(service, self.rewrite(arg, container_port, own_port)) for arg in argv]
        env = {k: self.secret_paths(service, self.rewrite(v, container_port, own_port))
               for k, v in self.environment(service).items()}
        subcommand = self.subcommand(service)
        if replica and subcommand:
            env[PORT_VARIABLE[subcommand]] = str(replica.port)
            env[HOST_VARIABLE[subcommand]] = "127.0.0.1"
            if METRICS_VARIABLE in env:
                env[METRICS_VARIABLE] = str(replica.metrics_port)
            for variable in DIRECT_PORT_VARIABLES:  # each container has its own address; here all share one
                if variable in env:
                    env[variable] = "0"
        if replica and registry_image(service):
            argv += registry_image(service)["listen_args"](replica.port)
        cwd = next((source for _, source in mounts if source.is_relative_to(self.workdir)), self.workdir)
        cwd.mkdir(parents=True, exist_ok=True)
        # This checkout's graphexec, whatever the interpreter has installed (processes run in other folders).
        python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        return self.local_executable(service, argv), {**os.environ, **env, "PYTHONPATH": python_path}, cwd

    def secret_paths(self, service: dict, text: str) -> str:
        """/run/secrets/NAME -> the local file of secret NAME, for the secrets `service` lists."""
        for name in service.get("secrets", []):
            source = pathlib.Path(self.compose["secrets"][name]["file"]).name
            text = text.replace(f"/run/secrets/{name}", str(self.secrets_dir / source))
        return text

    # -- running ----------------------------------------------------------------------------------------
    def start(self, name: str) -> None:
        for replica in self.replicas[name]:
            argv, env, cwd = self.local_command(name, replica)
            replica.log = self.workdir / f"{replica.name}.log"
            with open(replica.log, "wb") as log:
                replica.process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                                   start_new_session=True)

    def healthy(self, name: str, replica: Replica) -> bool:
        service = self.service(name)
        test = service.get("healthcheck", {}).get("test")
        if not test:
            return True
        argv = test[1:] if test[0] in ("CMD", "CMD-SHELL") else test
        if registry_image(service):  # e.g. redis-cli -p PORT ping
            argv = [argv[0], *registry_image(service)["client_args"](replica.port), *argv[1:]]
        argv, env, cwd = self.local_command(name, replica, argv)
        done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, timeout=30)
        return done.returncode == 0 and b"LOADING" not in done.stdout  # redis-cli ping exits 0 while loading

    def wait_healthy(self, name: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        for replica in (r for r in self.replicas[name] if not r.stopped):
            while not self.healthy(name, replica):
                assert replica.process.poll() is None, f"{replica.name} exited:\n{self.logs()}"
                assert time.monotonic() < deadline, f"{replica.name} never became healthy:\n{self.logs()}"
                time.sleep(0.2)

    def up(self, names) -> None:
        order = start_order(self.compose, names)
        self.plan(order)
        for name in order:
            for dependency, spec in self.service(name).get("depends_on", {}).items():
                if spec.get("condition") == "service_healthy":
                    self.wait_healthy(dependency)
            self.start(name)
        for name in order:
            self.wait_healthy(name)

    def run(self, name: str) -> subprocess.CompletedProcess:
        """`docker compose run --rm NAME`: a one-off process of a service, after its dependencies are healthy."""
        for dependency, spec in self.service(name).get("depends_on", {}).items():
            if spec.get("condition") == "service_healthy":
                self.wait_healthy(dependency)
        argv, env, cwd = self.local_command(name, None)
        return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)

    def stop(self, replica: Replica) -> int:
        """`docker stop`: SIGTERM, then the exit status (killed after 10 s, as Docker does)."""
        replica.stopped = True
        if replica.process.poll() is None:
            replica.process.send_signal(signal.SIGTERM)
        try:
            return replica.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            replica.process.kill()
            return replica.process.wait(timeout=10)

    def down(self) -> dict[str, int]:
        order = start_order(self.compose, list(self.replicas))
        return {r.name: self.stop(r) for name in reversed(order) for r in self.replicas[name] if r.process}

    def logs(self) -> str:
        return "\n".join(f"--- {r.name}\n{r.log.read_text(errors='replace')[-3000:]}"
                         for replicas in self.replicas.values() for r in replicas if r.log and r.log.exists())


# -- tests -----------------------------------------------------------------------------------------------
def default_services(compose: dict) -> list[str]:
    return [name for name, service in compose["services"].items() if not service.get("profiles")]


def quickstart_expectations() -> str:
    """The values examples/quickstart.py says it prints (its trailing comments), whitespace-normalized."""
    comments = re.findall(r"print\(.*#\s*(.+)$", (ROOT / "examples" / "quickstart.py").read_text(), re.M)
    return " ".join(" ".join(comments).split())


def established_connections_to(ports) -> dict[int, int]:
    """Count of ESTABLISHED TCP connections in this network namespace whose remote port is in `ports`
    (gRPC's sockets are often IPv6 ones carrying IPv4-mapped addresses, so both tables are read)."""
    counts = dict.fromkeys(ports, 0)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in pathlib.Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            remote_port, state = int(fields[2].rsplit(":", 1)[1], 16), fields[3]
            if state == "01" and remote_port in counts:
                counts[remote_port] += 1
    return counts


def health_status(address: str) -> str:
    with grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        except grpc.RpcError as exc:
            return exc.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def registered_addresses(topology) -> set[str]:
    """The addresses in the workers' registrations, read from Redis with the servers' secrets."""
    env = topology.local_command("server", None)[1]
    store = RedisStore(env["GRAPHEXEC_REDIS_URL"], read_secret(env["GRAPHEXEC_REDIS_PASSWORD_FILE"], "password"))
    pool = WorkerPool(store, LocalWorker(WorkerCore(store)),
                      WorkerSecret(read_secret(env["GRAPHEXEC_WORKER_SECRET_FILE"], "worker secret")))
    try:
        return {pool._trusted(record)["address"] for record in store.live_workers()}
    finally:
        store.close()


def scrape(port: int) -> dict[str, float]:
    """Sum of each sample name's values in a replica's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    return sums


def test_prometheus_scrapes_every_graphexec_service_on_its_metrics_port():
    """deploy/prometheus/prometheus.yml (the `monitoring` profile's Prometheus) targets every service running
    `graphexec`, at the port its environment serves metrics on."""
    compose = load_compose()
    local = LocalCompose(compose, pathlib.Path("/nonexistent"))
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = set()
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            targets |= {tuple(t.rsplit(":", 1)) for t in static["targets"]}
        for dns in job.get("dns_sd_configs", []):
            targets |= {(name, str(dns["port"])) for name in dns["names"]}
    expected = {(name, local.environment(service)[METRICS_VARIABLE]) for name, service in compose["services"].items()
                if local.subcommand(service)}
    assert expected and targets == expected
    prometheus = compose["services"]["prometheus"]
    assert "monitoring" in prometheus["profiles"]
    assert any(v.startswith("./deploy/prometheus/prometheus.yml:") for v in prometheus["volumes"])


@pytest.fixture
def topology(tmp_path):
    local = LocalCompose(load_compose(), tmp_path)
    try:
        yield local
    finally:
        local.down()


def test_default_profile_is_redis_two_servers_and_two_workers():
    compose = load_compose()
    services = default_services(compose)
    replicas = {name: int(compose["services"][name].get("deploy", {}).get("replicas", 1)) for name in services}
    local = LocalCompose(compose, pathlib.Path("/nonexistent"))
    roles = {name: local.subcommand(compose["services"][name]) for name in services}
    assert sum(n for name, n in replicas.items() if roles[name] == "serve") == 2
    assert sum(n for name, n in replicas.items() if roles[name] == "worker") == 2
    assert any(registry_image(compose["services"][name]) for name in services), "Redis is part of the default profile"
    gpu = [s for s in compose["services"].values() if "gpu" in s.get("profiles", [])]
    assert gpu and all(local.environment(s)["GRAPHEXEC_DEVICE"] == "gpu" for s in gpu)


def test_every_graphexec_command_parses(monkeypatch):
    """Every service's command, GPU profile included, is a valid `graphexec` invocation in its environment."""
    from graphexec import cli

    compose = load_compose()
    local = LocalCompose(compose, pathlib.Path("/nonexistent"))
    for name, service in compose["services"].items():
        argv = local.argv(service)
        if argv and argv[0] == "graphexec":
            for key, value in local.environment(service).items():
                monkeypatch.setenv(key, value)
            cli._parser().parse_args(argv[1:])


@pytest.mark.timeout(240)
def test_quickstart_runs_through_the_compose_topology(topology, monkeypatch):
    topology.up(default_services(topology.compose))
    monkeypatch.setenv("GRAPHEXEC_TOKEN_FILE", topology.secret_paths(topology.service("quickstart"),
                                                                     "/run/secrets/token-default"))
    expected = quickstart_expectations()

    done = topology.run("quickstart")
    assert done.returncode == 0, f"{done.stderr}\n{topology.logs()}"
    assert " ".join(done.stdout.split()) == expected

    # Client-side round-robin: a client of dns:///server:PORT connects to every replica.
    target = topology.rewrite(topology.service("quickstart")["environment"]["GRAPHEXEC_TARGET"])
    server_ports = [r.port for r in topology.replicas["server"]]
    x = tf.placeholder(tf.float32, [3])
    with tf.Session(target) as sess:
        for _ in range(4):
            np.testing.assert_array_equal(sess.run(x * 2.0, {x: [1.0, 2.0, 3.0]}), [2.0, 4.0, 6.0])
        connections = established_connections_to(server_ports)
        devices = sess.list_devices()
    assert all(connections[p] >= 1 for p in server_ports), f"not round-robin over {server_ports}: {connections}"
    assert devices and not any(d.address for d in devices)  # tenants are not told where workers are

    # Every worker registered, signed, an address that servers can reach (what each worker advertises).
    advertised = registered_addresses(topology)
    assert len(advertised) == sum(len(topology.replicas[n]) for n in topology.replicas
                                  if topology.subcommand(topology.service(n)) == "worker"), advertised
    for address in advertised:
        assert health_status(address) == "SERVING", f"worker address {address} is not reachable"

    # Every server and worker serves the metrics Prometheus scrapes, and they counted these runs.
    runs = {"serve": 0.0, "worker": 0.0}
    for name, replicas in topology.replicas.items():
        role = topology.subcommand(topology.service(name))
        for replica in replicas if role else ():
            samples = scrape(replica.metrics_port)
            runs[role] += samples.get("graphexec_runs_total" if role == "serve" else "graphexec_worker_runs_total", 0)
    assert runs["serve"] >= 4 + 2 and runs["worker"] == runs["serve"], runs  # 4 runs here, the quickstart's before

    # No affinity: with one server replica stopped, the same target still serves the quickstart.
    assert topology.stop(topology.replicas["server"][0]) == 0
    again = topology.run("quickstart")
    assert again.returncode == 0, f"{again.stderr}\n{topology.logs()}"
    assert " ".join(again.stdout.split()) == expected

    # `docker compose down`: SIGTERM, and every process exits cleanly.
    statuses = topology.down()
    assert all(status == 0 for status in statuses.values()), f"{statuses}\n{topology.logs()}"
