"""A rolling upgrade over one Redis: servers and workers of two versions of graphexec share the store, and
each version keeps to its own workers and its own plans (graphexec.compiler.plan.compiler_version)."""
from __future__ import annotations

import pathlib
import select
import shutil
import sys
import time

import numpy as np
import pytest
from conftest import Process, start_serve, start_worker

import graphexec as tf
from graphexec import errors
from graphexec.compiler.plan import PACKAGE_ROOT


def _other_version(tmp_path) -> str:
    """A copy of this graphexec with one source line more: another release, as far as plans go."""
    root = tmp_path / "other-release"
    shutil.copytree(PACKAGE_ROOT, root / "graphexec", ignore=shutil.ignore_patterns("__pycache__"))
    with open(root / "graphexec" / "ops" / "math_ops.py", "a") as source:
        source.write("\n# another release\n")
    return str(root)


def _release_before_direct_make_callable(tmp_path) -> str:
    """A copy of this graphexec whose direct link carries runs only, as releases before MakeCallable did."""
    root = _other_version(tmp_path)
    frames = pathlib.Path(root, "graphexec", "rpc", "frames.py")
    text = frames.read_text()
    assert '3: "MakeCallable"' in text
    frames.write_text(text.replace(', 3: "MakeCallable"', ""))
    return root


def _command(root: str, *args) -> list[str]:
    """`graphexec ARGS` run from the copy at `root` (not `python -m`, which would find this checkout first)."""
    start = f"import sys; sys.path.insert(0, {root!r}); from graphexec.cli import main; main()"
    return [sys.executable, "-c", start, *args]


def _doubling_graph():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [3], name="x")
        y = x * 2.0
    return graph, x, y


def _run(target: str):
    """y = x * 2 on [1, 2, 3] through `target`, and whether its plan came from a cache."""
    graph, x, y = _doubling_graph()
    metadata = tf.RunMetadata()
    with tf.Session(target, graph=graph) as sess:
        value = sess.run(y, {x: np.array([1, 2, 3], np.float32)}, run_metadata=metadata)
    return value, metadata.plan_cache_hit


def _wait_for_line(process: Process, text: str, timeout_s: float = 15.0) -> str:
    """The first line of the process's output with `text` (its first refresh may log it before it is ready)."""
    deadline = time.monotonic() + timeout_s
    while True:
        for line in process.output:
            if text in line:
                return line
        if time.monotonic() > deadline:
            raise AssertionError(f"no line with {text!r} in:\n{''.join(process.output)}")
        if select.select([process.proc.stdout], [], [], 0.1)[0]:
            process.output.append(process.proc.stdout.readline())


def test_servers_and_workers_of_two_versions_over_one_redis_keep_to_their_own(tmp_path, processes, redis_server,
                                                                              wait_for_workers):
    other = _other_version(tmp_path)
    old_worker = Process(_command(other, "worker", "--redis", redis_server.url),
                         r"graphexec worker (\S+) .*serving on")
    processes.append(old_worker)
    server = Process([sys.executable, "-m", "graphexec", "serve", "--port", "0", "--redis", redis_server.url],
                     r"serving on (grpc://\S+)")
    processes.append(server)
    target = server.match.group(1)
    warning = _wait_for_line(server, "runs another version of graphexec")
    assert old_worker.match.group(1) in warning
    with pytest.raises(errors.UnavailableError, match="no live worker"):
        _run(target)  # the other version's worker is there, but gets nothing of this server's

    new_worker = start_worker(processes, redis_server.url)
    assert wait_for_workers(target, 1) == {new_worker.match.group(1)}
    value, cached = _run(target)
    np.testing.assert_array_equal(value, [2, 4, 6])
    assert not cached

    # The same graph through a second replica of this version: its plan, from the shared store. Through a
    # replica of the other version: compiled there, run on that version's worker only.
    value, cached = _run(start_serve(processes, "--redis", redis_server.url))
    np.testing.assert_array_equal(value, [2, 4, 6])
    assert cached
    old_server = Process(_command(other, "serve", "--port", "0", "--redis", redis_server.url),
                         r"serving on (grpc://\S+)")
    processes.append(old_server)
    old_target = old_server.match.group(1)
    assert wait_for_workers(old_target, 1) == {old_worker.match.group(1)}
    value, cached = _run(old_target)
    np.testing.assert_array_equal(value, [2, 4, 6])
    assert not cached


def test_runs_sent_to_a_worker_of_another_version_go_through_the_server(tmp_path, processes, redis_server,
                                                                        wait_for_workers):
    """A session whose runs go straight to a worker (`--run-port`) of the release being replaced, while its
    callables are made by a server of the new one: the old worker does not run the new plans (NOT_FOUND), so
    the client sets its link aside and the server runs them, on a worker of its own release."""
    old_worker = Process(_command(_other_version(tmp_path), "worker", "--redis", redis_server.url, "--run-port", "0"),
                         r"takes clients' runs on (\S+)")
    processes.append(old_worker)
    target = start_serve(processes, "--redis", redis_server.url)
    new_worker = start_worker(processes, redis_server.url)
    assert wait_for_workers(target, 1) == {new_worker.match.group(1)}
    graph, x, y = _doubling_graph()
    with tf.Session(target, graph=graph) as sess:
        sess._connection.use_direct(0, old_worker.match.group(1))  # as a session made before the upgrade
        link = sess._connection.direct
        assert link.worker and link.usable()
        for value in range(3):
            np.testing.assert_array_equal(sess.run(y, {x: np.full(3, value, np.float32)}), [2 * value] * 3)
        assert not link.usable()  # set aside: runs go through the server for a while
        assert link.calls == 1  # one NOT_FOUND answer, then none


def test_a_server_whose_direct_link_lacks_make_callable_makes_callables_over_grpc(tmp_path, processes):
    """The older server answers MakeCallable on its link UNIMPLEMENTED: the client makes callables over gRPC
    from then on, and its runs keep the link."""
    old_server = Process(_command(_release_before_direct_make_callable(tmp_path), "serve", "--port", "0"),
                         r"serving on (grpc://\S+)")
    processes.append(old_server)
    graph, x, y = _doubling_graph()
    with tf.Session(old_server.match.group(1), graph=graph) as sess:
        for value in range(3):
            np.testing.assert_array_equal(sess.run(y, {x: np.full(3, value, np.float32)}), [2 * value] * 3)
        np.testing.assert_array_equal(sess.run(x * 3.0, {x: np.ones(3, np.float32)}), [3, 3, 3])
        link = sess._connection.direct
        assert (link.calls, link.other_calls) == (4, 1)  # one UNIMPLEMENTED, then no more tries
        assert link.lacks == {"MakeCallable"}
