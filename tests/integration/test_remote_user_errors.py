"""The errors of tests/unit/test_user_errors.py through real servers: a kernel failure comes back over
gRPC (from the embedded worker, and from a `graphexec worker` through its server) as TF's class with
the op, the node, the input shapes and the user's line; feed errors name the feed; the server keeps
serving."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import graphexec as tf
from graphexec import errors

pytestmark = pytest.mark.timeout(120)


def here() -> str:
    frame = inspect.currentframe().f_back
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def check_errors_and_recovery(target: str) -> None:
    graph = tf.Graph()
    with graph.as_default():
        a = tf.placeholder(tf.float32, [None, None], name="a")
        b = tf.placeholder(tf.float32, [None, None], name="b")
        product = tf.matmul(a, b, name="product"); line = here()  # noqa: E702
        small = tf.placeholder(tf.int16, [2], name="small"); small_line = here()  # noqa: E702
        images = tf.placeholder(tf.float32, [None, 3], name="images")
    with tf.Session(target, graph=graph) as sess:
        with pytest.raises(errors.InvalidArgumentError) as caught:
            sess.run(product, {a: np.ones((2, 3)), b: np.ones((4, 5))})
        message = str(caught.value)
        assert "MatMul 'product'" in message and "float32[2,3], float32[4,5]" in message
        assert f"(defined at {line})" in message
        with pytest.raises(TypeError, match=rf"'small:0' \(defined at {small_line}\).*\[-32768, 32767\]"):
            sess.run(small, {small: [70000, 1]})
        with pytest.raises(ValueError, match=r"'images:0'.*inhomogeneous"):
            sess.run(images, {images: [[1, 2, 3], [4, 5]]})
        np.testing.assert_array_equal(sess.run(product, {a: np.ones((2, 3)), b: np.ones((3, 1))}), [[3], [3]])


def test_errors_over_the_embedded_worker(embedded):
    check_errors_and_recovery(embedded)


def test_errors_through_a_worker_process(redis_server, serve, worker, wait_for_workers):
    worker(redis_server.url)
    target = serve("--redis", redis_server.url)
    wait_for_workers(target, 1)
    check_errors_and_recovery(target)
