"""Bad feeds and shapes raise TF's exception class (tests/unit/golden/errors/tf_errors.json, made by
make_tf_errors.py with real TensorFlow) with a message that names the feed or op, the shapes, and the
user's line: in-process here, over gRPC in tests/integration/test_remote_user_errors.py."""
from __future__ import annotations

import builtins
import inspect
import json
import pathlib

import numpy as np
import pytest

import graphexec as tf

GOLDEN = json.loads((pathlib.Path(__file__).parent / "golden" / "errors" / "tf_errors.json").read_text())["cases"]


def tf_class(case: str) -> type[Exception]:
    name = GOLDEN[case]["raises"]
    return getattr(tf.errors, name, None) or getattr(builtins, name)


def here() -> str:
    """file:line of the caller's line."""
    frame = inspect.currentframe().f_back
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def test_ragged_feed_names_the_placeholder_and_its_line():
    images = tf.placeholder(tf.float32, [None, 3], name="images"); line = here()  # noqa: E702
    with tf.Session() as sess, pytest.raises(tf_class("ragged_feed")) as caught:
        sess.run(images, {images: [[1, 2, 3], [4, 5]]})
    message = str(caught.value)
    assert "'images:0'" in message and line in message and "[?,3]" in message
    assert GOLDEN["ragged_feed"]["message"].split(".")[0] in message  # numpy's own words stay


@pytest.mark.parametrize("value", [70000, -40000, [70000, 1], [[1], [32768]]])
def test_python_ints_outside_the_placeholder_type_raise_instead_of_wrapping(value):
    shape = np.shape(value)
    small = tf.placeholder(tf.int16, shape, name="small"); line = here()  # noqa: E702
    with tf.Session() as sess, pytest.raises(tf_class("python_int_out_of_int16")) as caught:
        sess.run(small, {small: value})
    message = str(caught.value)
    assert "'small:0'" in message and line in message and "int16" in message and "[-32768, 32767]" in message
    worst = max(np.ravel(value).tolist(), key=abs)
    assert str(worst) in message


def test_python_list_outside_int16_is_stricter_than_tf():
    """TF wraps a list (4464) though it rejects the same number alone; graphexec rejects both."""
    assert GOLDEN["python_list_out_of_int16"] == {"value": [4464, 1]}
    small = tf.placeholder(tf.int16, [2])
    with tf.Session() as sess, pytest.raises(TypeError):
        sess.run(small, {small: [70000, 1]})


def test_python_ints_inside_the_type_and_numpy_arrays_convert_as_in_tf():
    small = tf.placeholder(tf.int16, [2])
    with tf.Session() as sess:
        assert sess.run(small, {small: [-32768, 32767]}).tolist() == [-32768, 32767]
        wrapped = sess.run(small, {small: np.array([70000, 1])})  # numpy's astype, like TF
    assert wrapped.tolist() == GOLDEN["numpy_int64_array_to_int16"]["value"]


def test_python_int_beyond_64_bits_is_an_overflow():
    small = tf.placeholder(tf.int16, [], name="small")
    with tf.Session() as sess, pytest.raises(tf_class("python_int_beyond_int64"), match=r"'small:0'.*64 bits"):
        sess.run(small, {small: 2**70})


def test_placeholder_shape_beyond_int64_is_tfs_type_error():
    golden = GOLDEN["placeholder_shape_beyond_int64"]
    with pytest.raises(tf_class("placeholder_shape_beyond_int64")) as caught:
        tf.placeholder(tf.float32, [2**70])
    assert str(caught.value) == golden["message"]
    with pytest.raises(TypeError, match="Value out of range: 9223372036854775808"):
        tf.placeholder(tf.float32, [None, 2**63])
    assert tf.placeholder(tf.float32, [2**63 - 1]).shape.as_list() == [2**63 - 1]


@pytest.mark.parametrize("build", [lambda: tf.zeros([2**70]), lambda: tf.ones([2**63]), lambda: tf.fill([3, 2**64], 1.0),
                                   lambda: tf.reshape(tf.zeros([6]), [2**63]), lambda: tf.tile(tf.zeros([1]), [2**66])])
def test_shape_arguments_beyond_int64_overflow_instead_of_wrapping(build):
    with pytest.raises(tf_class("zeros_shape_beyond_int64"), match="does not fit in int64"):
        build()


def test_large_shape_arguments_that_fit_int64_are_kept():
    x = tf.placeholder(tf.float32, [None])
    assert tf.reshape(x, [2**32 + 3]).shape.as_list() == [2**32 + 3]  # int64, not wrapped to 3
    assert tf.reshape(x, [2, -1]).shape.as_list() == [2, None]


def test_kernel_failure_names_op_node_input_shapes_and_line():
    a = tf.placeholder(tf.float32, [None, None], name="a")
    b = tf.placeholder(tf.float32, [None, None], name="b")
    product = tf.matmul(a, b, name="product"); line = here()  # noqa: E702
    with tf.Session() as sess, pytest.raises(tf_class("matmul_mismatch_at_run_time")) as caught:
        sess.run(product, {a: np.ones((2, 3)), b: np.ones((4, 5))})
    message = str(caught.value)
    assert "MatMul 'product'" in message and "float32[2,3], float32[4,5]" in message
    assert f"(defined at {line})" in message
    assert caught.value.op == "product"
