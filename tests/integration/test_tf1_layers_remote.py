"""A scoped tf.layers model (variable scopes, conv/pool/batch norm/dropout/dense, a regularizer, the batch norm
updates through UPDATE_OPS, a replica_device_setter) trains on a `graphexec serve` exactly as in-process."""
from __future__ import annotations

import numpy as np
import pytest

import graphexec as tf

pytestmark = pytest.mark.timeout(120)


def _model():
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(11)
        images = tf.placeholder(tf.float32, [None, 6, 6, 1], name="images")
        labels = tf.placeholder(tf.int32, [None], name="labels")
        training = tf.placeholder_with_default(False, [], name="training")
        with tf.device(tf.train.replica_device_setter(ps_tasks=1)), tf.variable_scope("model"):
            with tf.variable_scope("features"):
                net = tf.layers.conv2d(images, 4, 3, padding="same", activation=tf.nn.relu)
                net = tf.layers.batch_normalization(net, training=training)
                net = tf.layers.max_pooling2d(net, 2, 2)
            net = tf.layers.flatten(net)
            net = tf.layers.dropout(net, rate=0.25, training=training)
            with tf.variable_scope("head", regularizer=tf.contrib.layers.l2_regularizer(0.01)):
                logits = tf.layers.dense(net, 3, kernel_regularizer=tf.contrib.layers.l2_regularizer(0.01))
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        loss += tf.add_n(tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES))
        with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
            train = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
        init = tf.global_variables_initializer()
    return graph, (images, labels, training), init, train, loss, logits


def test_scoped_layers_model_trains_remotely_as_in_process(embedded):
    _check_trains_as_in_process(embedded)


def test_the_fused_convolution_crosses_redis_to_a_worker(redis_server, serve, worker, wait_for_workers):
    """The plan (with its _FusedConv2D step: conv + bias + ReLU) goes through Redis to a worker process,
    which runs it with the same bits as in process."""
    target = serve("--redis", redis_server.url)
    worker(redis_server.url)
    wait_for_workers(target, 1)
    _check_trains_as_in_process(target)


def _check_trains_as_in_process(target):
    rng = np.random.default_rng(0)
    batch = rng.standard_normal((8, 6, 6, 1)).astype(np.float32)
    classes = rng.integers(0, 3, 8)
    results = []
    for target in ("", target):
        graph, (images, labels, training), init, train, loss, logits = _model()
        with tf.Session(target, graph=graph) as sess:
            sess.run(init)
            losses = [sess.run([train, loss], {images: batch, labels: classes, training: True})[1] for _ in range(5)]
            variables = sess.run({v.name: v for v in graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES)})
            results.append((losses, variables, sess.run(logits, {images: batch})))
            traced = tf.RunMetadata()
            sess.run(logits, {images: batch}, options=tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE),
                     run_metadata=traced)
            assert "_FusedConv2D" in traced.plan_text  # conv + bias + ReLU ran as one step
    (local_losses, local_vars, local_logits), (remote_losses, remote_vars, remote_logits) = results
    assert sorted(local_vars) == [
        "model/features/batch_normalization/beta:0", "model/features/batch_normalization/gamma:0",
        "model/features/batch_normalization/moving_mean:0", "model/features/batch_normalization/moving_variance:0",
        "model/features/conv2d/bias:0", "model/features/conv2d/kernel:0", "model/head/dense/bias:0",
        "model/head/dense/kernel:0"]
    np.testing.assert_array_equal(remote_losses, local_losses)
    for name, value in local_vars.items():
        np.testing.assert_array_equal(remote_vars[name], value, err_msg=name)
    np.testing.assert_array_equal(remote_logits, local_logits)
    assert local_losses[-1] < local_losses[0]
    assert local_vars["model/features/batch_normalization/moving_mean:0"].any()  # the updates ran
