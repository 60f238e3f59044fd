"""tf.device given a device function (called with each op, as TF1's multi-GPU and parameter-server programs
do) and tf.train.replica_device_setter; the op string TF1 prints for a node."""
import numpy as np

import graphexec as tf


def test_a_device_function_places_each_op_by_its_type():
    def place(op):
        return "/cpu:0" if op.type == "MatMul" else "/device:GPU:0"

    x = tf.placeholder(tf.float32, [None, 2])
    with tf.device(place):
        w = tf.Variable(tf.ones([2, 2]), name="w")
        y = tf.matmul(x, w)
        z = tf.add(y, 1.0)
        with tf.device("/cpu:0"):  # an inner string wins over the outer function
            q = tf.multiply(z, 2.0)
    assert x.op.device == "" and y.op.device == "/cpu:0" and z.op.device == "/device:GPU:0"
    assert w.op.device == "/device:GPU:0" and q.op.device == "/cpu:0"
    graph = tf.get_default_graph()
    assert graph.digest()  # the graph is named and serialized with the devices as strings
    config = tf.ConfigProto(allow_soft_placement=True)
    with tf.Session(config=config) as sess:
        sess.run(tf.global_variables_initializer())
        np.testing.assert_allclose(sess.run(q, {x: [[1.0, 2.0]]}), [[8.0, 8.0]])


def test_a_device_function_returning_none_leaves_the_device_open():
    with tf.device(lambda op: None):
        c = tf.constant(1.0)
    assert c.op.device == ""


def test_replica_device_setter_puts_variables_on_ps_tasks_round_robin():
    with tf.device(tf.train.replica_device_setter(ps_tasks=2)):
        a = tf.get_variable("a", [2])
        b = tf.get_variable("b", [2])
        c = tf.get_variable("c", [2])
        total = a + b + c
        update = a.assign_add(b)
    assert [v.op.device for v in (a, b, c)] == ["/job:ps/task:0", "/job:ps/task:1", "/job:ps/task:0"]
    assert update.op.device == "/job:ps/task:0"  # an op that updates a variable goes with it
    assert total.op.device == "/job:worker"
    assert tf.train.replica_device_setter(ps_tasks=0) is None
    cluster = {"ps": ["ps0:2222"], "worker": ["w0:2222", "w1:2222"]}
    with tf.device(tf.train.replica_device_setter(cluster=cluster, worker_device="/job:worker/task:1")):
        d = tf.get_variable("d", [1])
        e = tf.identity(d)
    assert d.op.device == "/job:ps/task:0" and e.op.device == "/job:worker/task:1"
    with tf.Session() as sess:  # job and task only label the nodes: the program runs as written
        sess.run(tf.global_variables_initializer())
        sess.run(update)
        assert sess.run(total).shape == (2,)


def test_an_operation_prints_as_tf1_prints_its_node_def():
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    with tf.control_dependencies([x.op]), tf.device("/cpu:0"):
        y = tf.identity(x, name="y")
    assert str(y.op) == ('name: "y"\nop: "Identity"\ninput: "x"\ninput: "^x"\ndevice: "/cpu:0"\n')
    assert str(x.op).startswith('name: "x"\nop: "Placeholder"\nattr {\n  key: "dtype"\n  value: float32\n}')
    assert repr(y.op) == "<tf.Operation 'y' type=Identity>"
