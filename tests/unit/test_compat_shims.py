"""TF1 compatibility shims: tf.compat.v1, the v2-behavior switches, old op names, tf.app/tf.flags,
tf.logging and tf.gfile (behaviour as TF 2.21's tf.compat.v1)."""
import importlib
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import graphexec as tf

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_compat_v1_is_graphexec():
    v1 = importlib.import_module("graphexec.compat.v1")
    assert v1 is tf and tf.compat.v1 is tf and tf.compat.v1.compat.v1 is tf
    tf.compat.v1.disable_v2_behavior()
    tf.compat.v1.disable_eager_execution()
    assert tf.executing_eagerly() is False
    x = tf.compat.v1.placeholder(tf.float32, [2])
    with tf.compat.v1.Session() as sess:
        np.testing.assert_array_equal(sess.run(x * 2, {x: [1, 2]}), [2, 4])
    with pytest.raises(NotImplementedError, match="eager"):
        tf.enable_eager_execution()
    assert tf.compat.as_bytes("é") == "é".encode() and tf.compat.as_text(b"ab") == "ab"


def test_import_compat_v1_in_a_fresh_process():
    script = ("import graphexec.compat.v1 as tf\nx = tf.placeholder(tf.float32, [2])\n"
              "print(tf.Session().run(tf.reduce_sum(x), {x: [1, 2]}))")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout == "3.0\n", done.stderr


def test_old_names():
    m = tf.constant([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    with tf.Session() as sess:
        got = sess.run([tf.arg_max(m, 1), tf.arg_min(m, dimension=0), tf.to_int32(m), tf.to_int64(m),
                        tf.to_double(m), tf.to_float(tf.to_int32(m)), tf.diag([1, 2, 3]), tf.diag([[1, 2], [3, 4]])])
    np.testing.assert_array_equal(got[0], [1, 0])
    assert got[0].dtype == np.int64 and got[2].dtype == np.int32 and got[3].dtype == np.int64
    assert got[4].dtype == np.float64 and got[5].dtype == np.float32
    np.testing.assert_array_equal(got[6], np.diag([1, 2, 3]))
    want = np.zeros((2, 2, 2, 2), np.int32)
    for i, j in np.ndindex(2, 2):
        want[i, j, i, j] = [[1, 2], [3, 4]][i][j]
    np.testing.assert_array_equal(got[7], want)  # as tf.diag of a matrix: shape + shape
    with tf.container("experiment"):
        assert tf.constant(1).op.type == "Const"


def test_diag_gradient():
    v = tf.constant([1.0, 2.0])
    (grad,) = tf.gradients(tf.reduce_sum(tf.diag(v) * [[3.0, 4.0], [5.0, 6.0]]), [v])
    np.testing.assert_array_equal(tf.Session().run(grad), [3.0, 6.0])


APP = r'''
import sys
import graphexec as tf

tf.app.flags.DEFINE_string("name", "world", "who to greet")
tf.flags.DEFINE_integer("times", 1, "how often")
tf.flags.DEFINE_float("scale", 0.5, "a number")
tf.flags.DEFINE_boolean("loud", False, "shout")
FLAGS = tf.flags.FLAGS


def main(argv):
    text = f"hello {FLAGS.name}" * FLAGS.times
    print(text.upper() if FLAGS.loud else text, FLAGS.scale * 2, argv[1:])
    return 3


if __name__ == "__main__":
    tf.app.run()
'''


def test_app_run_parses_flags_and_exits_with_mains_result(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(APP)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(script), "--name=graphs", "--times", "2", "--loud", "--scale=1.5",
                           "extra"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 3, done.stderr
    assert done.stdout == "HELLO GRAPHSHELLO GRAPHS 3.0 ['extra']\n"
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert done.stdout == "hello world 1.0 []\n"
    done = subprocess.run([sys.executable, str(script), "--times=many"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode != 0 and "times" in done.stderr


def test_logging_levels(capsys):
    tf.logging.set_verbosity(tf.logging.WARN)
    tf.logging.info("hidden %d", 1)
    tf.logging.warn("shown %d", 2)
    tf.logging.set_verbosity(tf.logging.INFO)
    assert tf.logging.get_verbosity() == tf.logging.INFO
    tf.logging.info("now %s", "visible")
    for _ in range(3):
        tf.logging.log_first_n(tf.logging.INFO, "first", 2)
    tf.logging.debug("never")
    err = capsys.readouterr().err
    assert err == "WARNING:graphexec:shown 2\nINFO:graphexec:now visible\nINFO:graphexec:first\nINFO:graphexec:first\n"
    assert (tf.logging.DEBUG, tf.logging.INFO, tf.logging.WARN, tf.logging.ERROR) == (10, 20, 30, 40)


def test_gfile(tmp_path):
    g = tf.gfile
    root = str(tmp_path / "a")
    g.MakeDirs(root + "/b")
    g.MakeDirs(root + "/b")
    g.MkDir(root)
    with g.GFile(root + "/x.txt", "w") as f:
        f.write("hello\nworld\n")
    with g.Open(root + "/x.txt") as f:
        assert list(f) == ["hello\n", "world\n"] and f.size() == 12
    with g.GFile(root + "/x.txt", "rb") as f:
        assert f.read() == b"hello\nworld\n"
    assert g.ListDirectory(root) == ["b", "x.txt"] and g.Glob(root + "/*") == [root + "/b", root + "/x.txt"]
    assert g.Exists(root + "/x.txt") and g.IsDirectory(root) and not g.Exists(root + "/nope")
    g.Copy(root + "/x.txt", root + "/y.txt")
    with pytest.raises(tf.errors.AlreadyExistsError):
        g.Copy(root + "/x.txt", root + "/y.txt")
    with pytest.raises(tf.errors.AlreadyExistsError):
        g.Rename(root + "/x.txt", root + "/y.txt")
    g.Rename(root + "/x.txt", root + "/y.txt", overwrite=True)
    assert g.Stat(root + "/y.txt").length == 12
    assert list(g.Walk(str(tmp_path))) == [(str(tmp_path), ["a"], []), (root, ["b"], ["y.txt"]), (root + "/b", [], [])]
    for failing in (lambda: g.Remove(root + "/nope"), lambda: g.ListDirectory(root + "/nope"),
                    lambda: g.GFile(root + "/nope").read(), lambda: g.DeleteRecursively(root + "/nope"),
                    lambda: g.MkDir(root + "/c/d")):
        with pytest.raises(tf.errors.NotFoundError):
            failing()
    g.DeleteRecursively(root)
    assert not g.Exists(root)


def test_session_reset_in_process_is_a_no_op():
    tf.Session.reset("")
