"""The core issue's error acceptance: a shape mistake names the op, both shapes and the user's line."""
import inspect
import os

import pytest

import graphexec as tf


def test_matmul_of_two_2x3_constants_names_op_shapes_and_this_line():
    a = tf.constant([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    b = tf.constant([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    line = inspect.currentframe().f_lineno + 2  # the tf.matmul line below
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        tf.matmul(a, b)
    message = str(info.value)
    assert "MatMul" in message
    assert message.count("[2,3]") >= 2
    assert f"{os.path.basename(__file__)}:{line}" in message


def test_dtype_mistake_names_both_dtypes():
    with pytest.raises(tf.errors.InvalidArgumentError, match="float32.*int32|int32.*float32") as info:
        tf.add(tf.constant([1.0]), tf.constant([1]))
    assert "Add" in str(info.value) and "test_build_errors.py" in str(info.value)
