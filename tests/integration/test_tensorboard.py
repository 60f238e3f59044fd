"""examples/tensorboard_training.py, run in-process and against a real `graphexec serve` whose runs go to
a `graphexec worker` process (through Redis): TensorBoard's own event reader (EventAccumulator) loads its
scalars, histogram, image, text and graph, and its timeline trace names each step's node, op, worker and
device."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import Process, free_port
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "tensorboard_training.py"
KEEP_ALL = {"scalars": 0, "histograms": 0, "images": 0, "tensors": 0}  # 0: the reader keeps every event
STEPS = 20


def _run_example(logdir: Path, target: str) -> str:
    env = {**os.environ, "GRAPHEXEC_TARGET": target, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(EXAMPLE), str(logdir)], env=env, capture_output=True, text=True, check=False,
                          timeout=100, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


def assert_tensorboard_reads(logdir: Path) -> None:
    """Every kind of data the run wrote is there for TensorBoard; any one missing fails."""
    events = EventAccumulator(str(logdir), size_guidance=KEEP_ALL).Reload()
    tags = events.Tags()
    assert sorted(tags["scalars"]) == ["bias", "loss"]
    losses = events.Scalars("loss")
    assert [e.step for e in losses] == list(range(STEPS))
    assert losses[-1].value < losses[0].value / 10  # the run trained
    assert tags["histograms"] == ["weights"]
    weights = events.Histograms("weights")
    assert len(weights) == STEPS and weights[0].histogram_value.num == 3
    assert weights[0].histogram_value.min == weights[0].histogram_value.max == 0.0  # zeros before the first step
    assert tags["images"] == ["weights_as_image/image/0"]
    image = events.Images("weights_as_image/image/0")[-1]
    pixels = np.array(Image.open(io.BytesIO(image.encoded_image_string)))
    assert (image.height, image.width) == pixels.shape == (3, 1)
    assert pixels[1, 0] < 128 < pixels[0, 0]  # w trains towards [1, -2, 0.5]: 0 is grey 128
    assert events.Tensors("about")[0].tensor_proto.string_val == [b"linear regression y = x.w + b"]
    assert tags["graph"] is True
    nodes = {n.name: n for n in events.Graph().node}
    assert nodes["mse"].op == "Mean" and nodes["model/w"].op == "ReadVariable"
    assert list(nodes["model/MatMul"].input) == ["x", "model/w"]
    assert nodes["x"].attr["_output_shapes"].list.shape[0].dim[0].size == -1  # [?, 3]
    assert any(n.op == "ScalarSummary" for n in nodes.values())


def assert_trace(trace_file: Path, worker: str) -> None:
    trace = json.loads(trace_file.read_text())
    steps = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    names = {e["pid"]: e["args"]["name"] for e in trace["traceEvents"] if e["ph"] == "M"}
    assert steps and names
    for event in steps:
        assert {"ts", "dur", "pid", "tid", "name"} <= set(event) and event["dur"] >= 0
        args = event["args"]
        assert args["op"] == event["name"] and args["device"] == "/cpu:0" and args["worker"]
        assert args["worker"].startswith(f"{worker}@") if worker else args["worker"].endswith("@in-process")
        assert args["worker"] in names[event["pid"]]
    assert "mse" in {name for e in steps for name in e["args"]["covers"]}


def test_in_process_training_run_is_readable_by_tensorboard(tmp_path):
    printed = _run_example(tmp_path, "")
    assert f"events in {tmp_path}" in printed
    assert_tensorboard_reads(tmp_path)
    assert_trace(tmp_path / "timeline.json", worker="")


def test_remote_training_run_is_readable_by_tensorboard(redis_server, serve, worker, wait_for_workers, tmp_path):
    target = serve("--redis", redis_server.url)
    worker(redis_server.url)
    (worker_id,) = wait_for_workers(target, 1)
    printed = _run_example(tmp_path, target)
    assert f"events in {tmp_path}" in printed
    assert_tensorboard_reads(tmp_path)
    assert_trace(tmp_path / "timeline.json", worker=worker_id)


def test_tensorboard_server_serves_every_tab(processes, tmp_path):
    """The real `tensorboard` server, started on the run's logdir, lists the run in its scalars, histograms,
    images and text tabs and serves its graph."""
    _run_example(tmp_path / "run1", "")
    port = free_port()
    processes.append(Process([sys.executable, "-m", "tensorboard.main", "--logdir", str(tmp_path), "--port", str(port),
                              "--host", "127.0.0.1"], r"TensorBoard \S+ at http"))

    def get(path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
            return response.read().decode()

    assert json.loads(get("/data/runs")) == ["run1"]
    assert sorted(json.loads(get("/data/plugin/scalars/tags"))["run1"]) == ["bias", "loss"]
    assert list(json.loads(get("/data/plugin/histograms/tags"))["run1"]) == ["weights"]
    assert list(json.loads(get("/data/plugin/images/tags"))["run1"]) == ["weights_as_image/image/0"]
    assert json.loads(get("/data/plugin/text/tags")) == {"run1": ["about"]}
    loss = json.loads(get("/data/plugin/scalars/scalars?run=run1&tag=loss"))
    assert [step for _, step, _ in loss] == list(range(STEPS))
    graph = get("/data/plugin/graphs/graph?run=run1&conceptual=false")  # the GraphDef as text
    assert 'name: "model/MatMul"' in graph and 'input: "model/w"' in graph and 'op: "ApplyGradientDescent"' in graph
