"""A server started from the command line runs every thread on one malloc arena (runtime/tuning.py,
arena_tunables): a training step reuses the memory of the step before it, where a thread's own arena (its
heaps at most 64 MB) mapped a new heap and page-faulted it in on every step."""
from __future__ import annotations

import pathlib
import platform

import numpy as np
import pytest

import graphexec as tf
from bench import graphs
from conftest import Process, started_tunables


def _minor_faults(pid: int) -> int:
    return int(pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's arenas")
def test_training_steps_through_serve_fault_few_pages_in(serve, processes):
    target = serve()
    server: Process = processes[-1]
    assert "glibc.malloc.arena_max=1" in started_tunables(server.pid)
    with tf.Graph().as_default():
        images, labels, _, train, loss, init = graphs.cnn_graph(tf)  # W10: the classic MNIST CNN
        with tf.Session(target) as session:
            session.run(init)
            batches = graphs.cnn_batches()
            steps = [{images: x, labels: y} for x, y in batches]
            for i in range(20):  # the heap grows to its size, the compiled loops come in
                session.run([train, loss], steps[i % len(steps)])
            losses, faults = [], []
            for i in range(20):
                before = _minor_faults(server.pid)
                losses.append(session.run([train, loss], steps[i % len(steps)])[1])
                faults.append(_minor_faults(server.pid) - before)
    assert np.isfinite(losses).all()
    # A heap of its own, made and unmapped, faulted ~3,100 pages (12 MB) in on most of these steps (1,438
    # a step averaged). With one arena a step faults a few pages; once in a full test run one step faulted
    # 3,141 (the heap grown once more), so a step or two that grow it do not fail the test.
    assert sum(step > 1000 for step in faults) <= 2, faults
