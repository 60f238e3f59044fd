"""The tutorial programs of programs/ against TensorFlow's own results (golden/, written by make_golden.py
under tf.compat.v1): each runs in-process and must match its golden (values to 1e-5, accuracies to two
points, printed text exactly); then the same program runs against a real `graphexec serve` process
(GRAPHEXEC_TARGET) and must give exactly the in-process result. Script programs (tf.Print, tf.app.run)
run as subprocesses, so a remote run's tf.Print lines are read from the client's own stderr, in order."""
from __future__ import annotations

import json

import pytest
import tutorial_programs as programs

import graphexec as tf

pytestmark = pytest.mark.timeout(300)
NAMES = programs.program_names()
LOCAL: dict[str, dict] = {}  # in-process results, for the remote runs to equal


def run(name: str, target: str) -> dict:
    if target:  # variables outlive sessions on a server (as on TF1's): start each program from none
        tf.Session.reset(target)
    argv = programs.script_argv(name)
    if argv is not None:
        return programs.run_script(name, argv, {"GRAPHEXEC_TARGET": target})
    return programs.run_main(programs.load(name))


def golden(name: str) -> dict:
    path = programs.GOLDEN / f"{name}.json"
    if not path.exists():
        pytest.fail(f"no golden for {name}: run python3 tests/tutorials/make_golden.py {name} (needs TensorFlow)")
    return json.loads(path.read_text())


@pytest.mark.parametrize("name", NAMES)
def test_program_matches_tensorflow(name, monkeypatch):
    monkeypatch.delenv("GRAPHEXEC_TARGET", raising=False)
    result = run(name, "")
    LOCAL[name] = result
    assert programs.differences(result, golden(name)) == []


@pytest.mark.parametrize("name", NAMES)
def test_program_runs_identically_on_a_server(name, server, monkeypatch):
    monkeypatch.setenv("GRAPHEXEC_TARGET", server)
    if name not in LOCAL:
        pytest.skip("the in-process run did not finish")
    assert run(name, server) == LOCAL[name]


def test_remote_print_lines_reach_the_clients_stderr_in_order(server):
    """Remote tf.Print: the lines the server-side ops printed arrive on the client's stderr, in run
    order, the same as TensorFlow's; first_n stops the gradient's after two runs."""
    tf.Session.reset(server)
    printed = programs.run_script("print_debugging", [], {"GRAPHEXEC_TARGET": server})["stderr"].splitlines()
    assert printed == golden("print_debugging")["stderr"].splitlines()
    assert [line.split(":")[0] for line in printed] == (["weights (1/1000)", "gradient shape and value (1/1000)"] * 2
                                                        + ["weights (1/1000)"] * 3 + ["loss (1/1000)"])


def test_programs_are_plain_tf1_sources():
    """The same source runs under TensorFlow: graphexec is imported once, as tf, and nowhere else."""
    for name in NAMES:
        source = (programs.PROGRAMS / f"{name}.py").read_text()
        imports = [line for line in source.splitlines() if "graphexec" in line and "import" in line]
        assert imports == ["import graphexec as tf"], name


def test_every_golden_has_its_program():
    assert sorted(p.stem for p in programs.GOLDEN.glob("*.json")) == NAMES


def test_comparison_reports_what_departs():
    reference = {"losses": [1.0, 0.5], "test_accuracy": 0.9, "text": "a", "names": ["w"]}
    assert programs.differences(reference, reference) == []
    assert programs.differences({**reference, "losses": [1.0, 0.50002]}, reference) == [
        ".losses[1]: 0.50002 != 0.5 (tolerance 1e-05)"]
    assert programs.differences({**reference, "test_accuracy": 0.885}, reference) == []
    assert programs.differences({**reference, "test_accuracy": 0.87}, reference) == [
        ".test_accuracy: 0.87 != 0.9 (tolerance 0.02)"]
    assert programs.differences({**reference, "text": "b"}, reference) == [".text: 'b' != 'a'"]
    assert programs.differences({**reference, "losses": [1.0]}, reference) == [".losses: length 1 != 2"]
    assert programs.differences({"losses": [1.0, 0.5]}, reference)[0].startswith("result: keys")
