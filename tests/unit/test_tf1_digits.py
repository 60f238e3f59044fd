"""An MLP and a CNN written with tf.layers train on the bundled digits to TensorFlow's accuracy (within 2
points of golden/tf1_api/digits.json, made by make_digits.py under real TensorFlow)."""
import json
import os

import pytest

import graphexec as tf

from tf1_digits_programs import train

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "tf1_api", "digits.json")


@pytest.mark.training
@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_tf_layers_model_trains_to_tensorflows_accuracy(model):
    with open(GOLDEN) as f:
        expected = json.load(f)["test_accuracy"][model]
    accuracy = train(tf, model)
    assert accuracy == pytest.approx(expected, abs=0.02)
    assert accuracy > 0.93
