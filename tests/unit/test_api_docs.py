"""docs/api.md is generated from the code (tools/gen_api_docs.py) and must be up to date; TF1 names that
graphexec lacks raise an error that says so, while misspellings stay plain AttributeErrors with Python's
"Did you mean" suggestion."""
import pathlib
import subprocess
import sys

import pytest

import graphexec as tf
from graphexec.api_gaps import NotInGraphexecError, tf1_names

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_committed_api_docs_are_up_to_date():
    done = subprocess.run([sys.executable, "tools/gen_api_docs.py", "--check"], cwd=ROOT)
    assert done.returncode == 0, "docs/api.md is out of date: run python tools/gen_api_docs.py"


@pytest.mark.parametrize("namespace, name", [(tf, "image"), (tf.nn, "ctc_loss"), (tf.train, "SyncReplicasOptimizer"),
                                             (tf.losses, "hinge_loss")])
def test_tf1_names_graphexec_lacks_say_so(namespace, name):
    with pytest.raises(NotInGraphexecError, match=r"part of TensorFlow 1's API .* docs/api.md") as failure:
        getattr(namespace, name)
    assert isinstance(failure.value, AttributeError) and isinstance(failure.value, NotImplementedError)
    assert not hasattr(namespace, name)


def test_misspellings_stay_attribute_errors_with_suggestions():
    script = "import graphexec as tf\ntf.placeholdr\n"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert "AttributeError: module 'graphexec' has no attribute 'placeholdr'. Did you mean: 'placeholder'?" in \
        done.stderr
    with pytest.raises(AttributeError) as failure:
        tf.nn.relu7  # noqa: B018
    assert not isinstance(failure.value, NotInGraphexecError)
    assert failure.value.name == "relu7" and failure.value.obj is tf.nn


def test_implemented_names_are_tf1_names():
    """Every name the docs mark as TF1 really is one, and the list covers the namespaces with hooks."""
    names = tf1_names()
    assert {"", "nn", "train", "losses", "metrics", "debugging", "gfile", "logging", "app"} <= set(names)
    assert "placeholder" in names[""] and "sampled_softmax_loss" in names["nn"]
    for implemented in ("Print", "Assert", "check_numerics", "compat", "app", "gfile", "logging"):
        assert implemented in names[""] and hasattr(tf, implemented)
