"""examples/notebook_tour.ipynb runs top to bottom in a real Jupyter kernel (nbclient + ipykernel), in-process
and with GRAPHEXEC_TARGET set to a real `graphexec serve`: graphs and plans display as SVG, a result as its
array, a failing run as one tf.errors message, and the training cell writes summaries and a trace."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import nbclient
import nbformat
import pytest

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "notebook_tour.ipynb"
SVG = "{http://www.w3.org/2000/svg}"


def _execute(monkeypatch, target: str):
    monkeypatch.setenv("GRAPHEXEC_TARGET", target)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the kernel imports this checkout's graphexec
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}}).execute()
    return [cell.outputs for cell in notebook.cells if cell.cell_type == "code"]


def _svg_nodes(output) -> list[str]:
    root = ET.fromstring(output["data"]["image/svg+xml"])
    return [g.find(f"{SVG}title").text for g in root.iter(f"{SVG}g") if g.get("class").startswith("node")]


@pytest.mark.parametrize("where", ["in-process", "remote"])
def test_notebook_runs_top_to_bottom(where, embedded, monkeypatch):
    graph, op, result, error, plan, training = _execute(monkeypatch, embedded if where == "remote" else "")
    assert sorted(_svg_nodes(graph[0])) == ["Const", "Const_1", "MatMul", "add", "mul", "w", "x", "y"]
    assert _svg_nodes(op[0]) == _svg_nodes(graph[0])  # y depends on every op of this graph
    assert result[0]["data"]["text/plain"] == "array([[3.],\n       [0.]], dtype=float32)"
    (failure,) = error
    assert failure["output_type"] == "error" and failure["ename"] == "InvalidArgumentError"
    assert failure["traceback"][0].startswith("tf.errors.InvalidArgumentError: You must feed a value for "
                                              "placeholder tensor 'x'")
    assert len(failure["traceback"]) <= 3  # the message, not a page of frames
    assert _svg_nodes(plan[0]) == ["feed x:0", "step 0: MatMul", "step 1: y", "fetch y:0"]
    (printed,) = training
    match = re.fullmatch(r"loss (\d+\.\d+), event files: 1, traced steps: (\d+)\n", printed["text"])
    assert match and float(match.group(1)) < 1.0 and int(match.group(2)) > 0
