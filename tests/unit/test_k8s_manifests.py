"""deploy/k8s/: every manifest parses, every container has probes, requests and limits, and refers only to
images, ports, subcommands, flags and environment variables that exist.

"Exists" is checked against the sources of truth: images are those docker-compose.yml builds (from
server/Dockerfile*) or pulls (Redis); ports are the containers' own and the Dockerfiles' EXPOSE; flags and
subcommands are what `python -m graphexec SUBCOMMAND --help` accepts; GRAPHEXEC_* variables are read by
graphexec/cli.py and listed in docs/configuration.md. When kubectl is installed, every kustomization is
also rendered with `kubectl kustomize` and the rendered objects are checked the same way.
"""
from __future__ import annotations

import functools
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from graphexec import cli

yaml = pytest.importorskip("yaml")

ROOT = pathlib.Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet"}
GRAPHEXEC_IMAGES_BUILT_BY = {"server/Dockerfile", "server/Dockerfile.gpu"}


# -- loading ------------------------------------------------------------------------------------
def manifest_files() -> list[pathlib.Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def kustomization_files() -> list[pathlib.Path]:
    return sorted(K8S.rglob("kustomization.yaml"))


def load_documents(path: pathlib.Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


@functools.cache
def patch_files() -> frozenset[pathlib.Path]:
    """Strategic-merge patches that kustomizations list: partial objects, checked once rendered."""
    return frozenset((path.parent / p["path"]).resolve() for path in kustomization_files()
                     for p in (yaml.safe_load(path.read_text()).get("patches") or []) if "path" in p)


def all_objects() -> list[dict]:
    """The whole objects of the manifests (patches left out)."""
    return [doc for path in manifest_files() if path.resolve() not in patch_files() for doc in load_documents(path)]


def containers(obj: dict) -> list[dict]:
    spec = obj["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def workloads(objects) -> list[dict]:
    """Deployments and StatefulSets, less kustomize deletion patches (which have no spec)."""
    return [o for o in objects if o.get("kind") in WORKLOADS and "$patch" not in o]


def image_name(image: str) -> str:
    """'registry.example/team/graphexec:0.1.0' -> 'graphexec'; 'redis:7.2-alpine' -> 'redis'."""
    return image.rsplit("/", 1)[-1].split("@")[0].split(":")[0]


# -- sources of truth ---------------------------------------------------------------------------
@functools.cache
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@functools.cache
def known_images() -> dict[str, str]:
    """Image name -> where it comes from: a Dockerfile of ours, or a registry (pulled as compose pulls it)."""
    known = {}
    for service in compose()["services"].values():
        build = service.get("build")
        source = build["dockerfile"] if isinstance(build, dict) else "registry"
        known.setdefault(image_name(service["image"]), source)
    return known


def exposed_ports(dockerfile: str) -> set[int]:
    text = (ROOT / dockerfile).read_text()
    return {int(p.split("/")[0]) for line in re.findall(r"^EXPOSE\s+(.+)$", text, re.M) for p in line.split()}


@functools.cache
def cli_help(subcommand: str) -> str:
    done = subprocess.run([sys.executable, "-m", "graphexec", subcommand, "--help"], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, f"`graphexec {subcommand} --help` failed: {done.stderr}"
    return done.stdout


@functools.cache
def documented_variables() -> set[str]:
    return set(re.findall(r"`(GRAPHEXEC_[A-Z0-9_]+)`", (ROOT / "docs" / "configuration.md").read_text()))


@functools.cache
def cli_variables() -> set[str]:
    """Variables the CLI reads: those of its settings table (test_documented_variable_sets_its_flag checks
    that each one does set its flag)."""
    return {setting.variable for setting in cli.SETTINGS}


# -- checks shared by the raw files and the rendered kustomizations ------------------------------
def check_container(obj: dict, container: dict) -> None:
    where = f"{obj['kind']}/{obj['metadata']['name']} container {container['name']}"
    resources = container.get("resources", {})
    for section in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources.get(section, {})), f"{where}: needs cpu and memory {section}"
    for probe in ("readinessProbe", "livenessProbe"):
        assert probe in container, f"{where}: has no {probe}"
    name = image_name(container["image"])
    assert name in known_images(), f"{where}: image {container['image']} is neither built nor pulled by compose"
    if known_images()[name] in GRAPHEXEC_IMAGES_BUILT_BY:
        check_graphexec_container(where, container, known_images()[name])
        check_metrics_endpoint(obj, where, container)


def check_metrics_endpoint(obj: dict, where: str, container: dict) -> None:
    """Servers and workers serve metrics on a declared port named `metrics`, which the pod's scrape
    annotations and the label that the metrics Service (and its ServiceMonitor) selects point at."""
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    assert METRICS_VARIABLE in env, f"{where}: set {METRICS_VARIABLE} (Prometheus scrapes it)"
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    assert ports.get("metrics") == int(env[METRICS_VARIABLE]), f"{where}: no port `metrics` at {METRICS_VARIABLE}"
    template = obj["spec"]["template"]["metadata"]
    annotations = template.get("annotations", {})
    assert annotations.get("prometheus.io/scrape") == "true", f"{where}: pod not annotated for scraping"
    assert annotations.get("prometheus.io/port") == env[METRICS_VARIABLE], f"{where}: prometheus.io/port differs"
    assert annotations.get("prometheus.io/path") == "/metrics"
    assert template["labels"].get("graphexec/metrics") == "true", f"{where}: not selected by the metrics Service"


READINESS = "graphexec.v1.GraphExecService"
# Which variable names the port that each subcommand listens on (and must be probed on).
PORT_VARIABLE = {"serve": "GRAPHEXEC_PORT", "worker": "GRAPHEXEC_WORKER_PORT"}
METRICS_VARIABLE = "GRAPHEXEC_METRICS_PORT"


def check_graphexec_container(where: str, container: dict, dockerfile: str) -> None:
    """Our own containers: gRPC health probes on the port the subcommand listens on, declared and
    EXPOSEd; real subcommands, flags and variables; env references to variables defined before them."""
    ports = {p["containerPort"] for p in container.get("ports", [])}
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    args = container.get("args") or []
    assert args and args[0] in PORT_VARIABLE, f"{where}: args must start with a subcommand {sorted(PORT_VARIABLE)}"
    help_text = cli_help(args[0])
    for flag in (a.split("=")[0] for a in args[1:] if a.startswith("--")):
        assert flag in help_text, f"{where}: `graphexec {args[0]}` has no flag {flag}"
    listen_variable = PORT_VARIABLE[args[0]]
    assert listen_variable in env, f"{where}: set {listen_variable} explicitly (the probes depend on it)"
    listen_port = int(env[listen_variable])
    assert listen_port in ports, f"{where}: {listen_variable}={listen_port} is not a container port"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        if probe in container:
            port, _ = probed(f"{where}: {probe}", container[probe])
            assert port == listen_port, f"{where}: {probe} probes {port}, not {listen_port}"
    if args[0] == "serve":  # readiness is the API's service name, liveness the process (graphexec/server/readiness.py)
        assert probed(where, container["readinessProbe"])[1] == READINESS, f"{where}: readiness must ask {READINESS}"
        assert not probed(where, container["livenessProbe"])[1], f"{where}: liveness must ask the process (\"\")"
    assert ports <= exposed_ports(dockerfile), f"{where}: ports {ports} not all EXPOSEd by {dockerfile}"
    defined = []
    for item in container.get("env", []):
        for reference in re.findall(r"\$\((\w+)\)", item.get("value") or ""):
            assert reference in defined, f"{where}: {item['name']} refers to $({reference}), not defined before it"
        defined.append(item["name"])
        if item["name"].startswith("GRAPHEXEC_"):
            check_variable(where, item["name"])


HEALTHCHECK = "graphexec-healthcheck"  # server/healthcheck.py in the images (test_image_is_multi_stage_...)


@functools.cache
def healthcheck_flags() -> frozenset[str]:
    done = subprocess.run([sys.executable, str(ROOT / "server" / "healthcheck.py"), "--help"], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return frozenset(re.findall(r"(--[\w-]+)", done.stdout))


def probed(where: str, probe: dict) -> tuple[int, str]:
    """(port, health service name) a probe asks: the kubelet's gRPC probe, or, where servers serve TLS
    (which the kubelet's gRPC probes do not speak), the image's health check run in the container."""
    if "grpc" in probe:
        return probe["grpc"]["port"], probe["grpc"].get("service", "")
    command = probe.get("exec", {}).get("command") or []
    assert command[:1] == [HEALTHCHECK], f"{where}: must use the gRPC health service (a grpc probe or {HEALTHCHECK})"
    options = dict(zip(command[1::2], command[2::2]))
    assert set(options) <= healthcheck_flags() and len(command) % 2 == 1, f"{where}: {command} has unknown flags"
    assert "--address" in options and "--target" not in options, \
        f"{where}: probe the container's own --address (TLS follows its GRAPHEXEC_TLS_CERT)"
    host, port = options["--address"].rsplit(":", 1)
    assert host == "127.0.0.1", f"{where}: probe 127.0.0.1, the container itself"
    return int(port), options.get("--service", "")


def check_variable(where: str, variable: str) -> None:
    assert variable in cli_variables(), f"{where}: {variable} is not read by graphexec/cli.py"
    assert variable in documented_variables(), f"{where}: {variable} is not in docs/configuration.md"


def check_references(objects: list[dict]) -> None:
    """Services, HPAs and PDBs point at workloads that exist; ConfigMaps used by envFrom exist."""
    pod_labels = [(w, w["spec"]["template"]["metadata"]["labels"]) for w in workloads(objects)]
    by_kind_name = {(o["kind"], o["metadata"]["name"]) for o in objects}

    def selected(selector: dict) -> list[dict]:
        return [w for w, labels in pod_labels if selector.items() <= labels.items()]

    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        if kind == "Service":
            targets = selected(obj["spec"]["selector"])
            assert targets, f"Service/{name} selects no pods"
            port_names = {p.get("name") for w in targets for c in containers(w) for p in c.get("ports", [])}
            port_numbers = {p["containerPort"] for w in targets for c in containers(w) for p in c.get("ports", [])}
            for port in obj["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                assert target in (port_names if isinstance(target, str) else port_numbers), \
                    f"Service/{name}: targetPort {target} is not a port of the pods it selects"
        elif kind == "PodDisruptionBudget":
            assert selected(obj["spec"]["selector"]["matchLabels"]), f"PodDisruptionBudget/{name} selects no pods"
        elif kind == "HorizontalPodAutoscaler":
            ref = obj["spec"]["scaleTargetRef"]
            assert (ref["kind"], ref["name"]) in by_kind_name, f"HorizontalPodAutoscaler/{name}: no {ref}"
        elif kind in WORKLOADS:
            selector = obj["spec"]["selector"]["matchLabels"]
            assert selector.items() <= obj["spec"]["template"]["metadata"]["labels"].items(), \
                f"{kind}/{name}: selector does not match its own pod labels"
            for c in containers(obj):
                for source in c.get("envFrom", []):
                    ref = source.get("configMapRef", {}).get("name")
                    assert ref is None or ("ConfigMap", ref) in by_kind_name, f"{kind}/{name}: no ConfigMap {ref}"


def check_objects(objects: list[dict]) -> None:
    for obj in objects:
        assert {"apiVersion", "kind", "metadata"} <= set(obj), f"not a Kubernetes object: {obj}"
    for obj in workloads(objects):
        for container in containers(obj):
            check_container(obj, container)
    for obj in objects:
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == "graphexec-config":
            for variable in obj["data"]:
                check_variable(f"ConfigMap/{obj['metadata']['name']}", variable)


# -- tests --------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", manifest_files() + kustomization_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_every_file_parses(path):
    documents = load_documents(path)
    assert documents, f"{path} is empty"
    for doc in documents:
        assert doc.get("apiVersion") and doc.get("kind"), f"{path}: a document without apiVersion/kind"


def test_base_objects_have_probes_resources_and_real_references():
    base = [doc for path in sorted((K8S / "base").glob("*.yaml")) if path.name != "kustomization.yaml"
            for doc in load_documents(path)]
    check_objects(base)
    check_references(base)


def test_overlay_objects_have_probes_resources_and_real_images():
    for path in manifest_files():
        if "overlays" in path.parts and path.resolve() not in patch_files():
            for obj in workloads(load_documents(path)):
                for container in containers(obj):
                    check_container(obj, container)


def test_image_tags_match_compose():
    """Kustomize's image tags are the ones docker-compose.yml builds."""
    compose_tags = {image_name(s["image"]): s["image"].rsplit(":", 1)[-1] for s in compose()["services"].values()}
    for path in kustomization_files():
        for image in yaml.safe_load(path.read_text()).get("images", []):
            assert image["name"] in compose_tags, f"{path}: image {image['name']} is not built by docker-compose.yml"
            assert image.get("newTag") == compose_tags[image["name"]], f"{path}: {image['name']} tag differs from compose"


def test_topology_has_what_the_deployment_needs():
    objects = all_objects()
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert {("Deployment", "graphexec-server"), ("Deployment", "graphexec-worker"),
            ("Deployment", "graphexec-worker-gpu"), ("StatefulSet", "graphexec-redis"),
            ("HorizontalPodAutoscaler", "graphexec-server"), ("PodDisruptionBudget", "graphexec-server")} <= kinds
    server_service = next(o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "graphexec-server")
    assert server_service["spec"].get("clusterIP") == "None", "clients round-robin over DNS: the Service is headless"
    gpu = next(o for o in objects if o["metadata"]["name"] == "graphexec-worker-gpu" and o["kind"] == "Deployment")
    gpu_container = containers(gpu)[0]
    assert int(gpu_container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    assert known_images()[image_name(gpu_container["image"])] == "server/Dockerfile.gpu"


def test_service_monitor_scrapes_every_server_and_worker_pod():
    """The ServiceMonitor selects the metrics Service by its labels and scrapes its `metrics` port; that
    Service selects the pods of every server and worker Deployment (GPU workers included)."""
    objects = all_objects()
    monitors = [o for o in objects if o["kind"] == "ServiceMonitor"]
    assert monitors, "a ServiceMonitor for the Prometheus Operator"
    services = [o for o in objects if o["kind"] == "Service"]
    graphexec_workloads = [w for w in workloads(objects)
                           if any(known_images().get(image_name(c["image"])) in GRAPHEXEC_IMAGES_BUILT_BY
                                  for c in containers(w))]
    assert {w["metadata"]["name"] for w in graphexec_workloads} >= {"graphexec-server", "graphexec-worker",
                                                                    "graphexec-worker-gpu"}
    for monitor in monitors:
        selector = monitor["spec"]["selector"]["matchLabels"]
        selected = [s for s in services if selector.items() <= s["metadata"].get("labels", {}).items()]
        assert len(selected) == 1, f"ServiceMonitor/{monitor['metadata']['name']} selects {len(selected)} Services"
        service = selected[0]
        for endpoint in monitor["spec"]["endpoints"]:
            port = next((p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]), None)
            assert port and port["targetPort"] == "metrics", f"{service['metadata']['name']} has no {endpoint}"
            assert endpoint.get("path", "/metrics") == "/metrics"
        for workload in graphexec_workloads:
            labels = workload["spec"]["template"]["metadata"]["labels"]
            assert service["spec"]["selector"].items() <= labels.items(), \
                f"{workload['metadata']['name']} pods are not behind {service['metadata']['name']}"


@pytest.mark.parametrize("path", kustomization_files(), ids=lambda p: str(p.parent.relative_to(K8S)))
def test_kustomization_lists_files_that_exist(path):
    doc = yaml.safe_load(path.read_text())
    for entry in doc.get("resources", []) + [p["path"] for p in doc.get("patches", []) if "path" in p]:
        assert (path.parent / entry).exists(), f"{path}: {entry} does not exist"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("path", kustomization_files(), ids=lambda p: str(p.parent.relative_to(K8S)))
def test_kustomization_renders_to_valid_objects(path):
    done = subprocess.run(["kubectl", "kustomize", str(path.parent)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    objects = [doc for doc in yaml.safe_load_all(done.stdout) if doc is not None]
    check_objects(objects)
    check_references(objects)


# -- the configuration table ----------------------------------------------------------------------
def configuration_rows() -> list[tuple[str, str, str]]:
    """(command, flag, variable) rows of the server/worker table in docs/configuration.md."""
    row = re.compile(r"^\|\s*(serve|worker|both)\s*\|\s*`(--[\w-]+)`\s*\|\s*`(GRAPHEXEC_\w+)`", re.M)
    return row.findall((ROOT / "docs" / "configuration.md").read_text())


BOOLEAN_FLAGS = {"--insecure", "--no-reflection"}  # their variables are on when set to 1


# The limits are numbers (sizes, counts); each sample reads back as itself once parsed.
NUMERIC_SAMPLES = {"--stream-idle-timeout": "2.5", "--compile-timeout-s": "2.5", "--intra-op-spin-us": "2.5"} | dict.fromkeys(
    ("--memory-limit", "--max-message-bytes", "--max-graph-nodes", "--max-graph-bytes", "--max-string-bytes",
     "--run-memory-bytes", "--max-streams", "--max-streams-per-connection", "--queue-depth",
     "--max-sessions-per-tenant", "--cache-bytes", "--max-batch-size", "--max-batch-delay-us", "--compile-processes", "--compile-process-nodes",
     "--blas-threads", "--intra-op-threads", "--max-variable-bytes-per-tenant", "--max-graph-bytes-per-tenant", "--direct-port",
     "--run-port"), "3")


def sample_value(flag: str) -> str:
    if flag in BOOLEAN_FLAGS:
        return "1"
    return {"--port": "4321", "--threads": "3", "--device": "gpu", "--log-level": "DEBUG", "--log-format": "json",
            "--metrics-port": "9471", **NUMERIC_SAMPLES}.get(flag, "sample-value")


@pytest.mark.parametrize("command,flag,variable", configuration_rows())
def test_documented_variable_sets_its_flag(command, flag, variable, monkeypatch):
    """Each documented variable is read by the CLI as the default of the flag of the same row."""
    from graphexec import cli

    value = sample_value(flag)
    for subcommand in (("serve", "worker") if command == "both" else (command,)):
        monkeypatch.setenv("GRAPHEXEC_REDIS_URL", "redis://127.0.0.1:1/0")  # worker requires one
        monkeypatch.setenv(variable, value)
        args = cli._parser().parse_args([subcommand])
        expected = "True" if flag in BOOLEAN_FLAGS else value
        assert str(getattr(args, flag[2:].replace("-", "_"))) == expected, f"{variable} does not set {subcommand} {flag}"


def test_configuration_table_covers_every_cli_variable():
    assert {variable for _, _, variable in configuration_rows()} == cli_variables()


# -- the images ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dockerfile", sorted(GRAPHEXEC_IMAGES_BUILT_BY))
def test_image_is_multi_stage_non_root_and_checks_grpc_health(dockerfile):
    text = (ROOT / dockerfile).read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", text, re.M | re.I)
    assert len(stages) >= 2, f"{dockerfile}: build in one stage, run in a slim one"
    final = re.split(r"^FROM\s", text, flags=re.M)[-1]
    user = re.findall(r"^USER\s+(\S+)", final, re.M)
    assert user and user[-1].split(":")[0] not in ("root", "0"), f"{dockerfile}: the runtime stage must run as non-root"
    healthcheck = re.search(r"^HEALTHCHECK .*CMD \[\"([\w-]+)\"", final, re.M)
    copied = re.search(r"^COPY .*server/healthcheck\.py /usr/local/bin/([\w-]+)$", final, re.M)
    assert healthcheck and copied and healthcheck.group(1) == copied.group(1), \
        f"{dockerfile}: HEALTHCHECK must run server/healthcheck.py (the gRPC health service)"
    assert re.search(r'^ENTRYPOINT \["graphexec"\]', final, re.M), f"{dockerfile}: the command picks serve or worker"
    env = dict(re.findall(r"(GRAPHEXEC_\w+)=(\S+)", final))
    listening = {int(env[v]) for v in ("GRAPHEXEC_PORT", "GRAPHEXEC_DIRECT_PORT", "GRAPHEXEC_WORKER_PORT",
                                       "GRAPHEXEC_WORKER_DIRECT_PORT", METRICS_VARIABLE)}
    assert listening == exposed_ports(dockerfile)
    for variable in env:
        check_variable(dockerfile, variable)


def test_docker_build_context_keeps_out_what_images_do_not_need():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", ".dockerignore is an allowlist: everything out, then what the images COPY"
    for needed in ("!pyproject.toml", "!README.md", "!LICENSE", "!graphexec", "!server/healthcheck.py"):
        assert needed in patterns, f".dockerignore drops {needed[1:]}, which the Dockerfiles COPY"
