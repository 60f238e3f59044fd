"""The graph's IR view and digest stay current as the graph grows and as shapes are refined."""
import graphexec as tf
from graphexec import digest


def test_digest_is_kept_current_and_equals_a_fresh_chain():
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    graph = tf.get_default_graph()
    first = graph.digest()
    y = x * 2.0
    assert graph.digest() != first
    assert graph.digest() == digest.graph_digest(graph.nodes(), graph.seed)
    tf.set_random_seed(7)
    assert graph.digest() == digest.graph_digest(graph.nodes(), 7)
    assert y.op.node_def.outputs[0].shape == (None, 3)


def test_set_shape_refreshes_the_ir_node_but_not_the_digest():
    x = tf.placeholder(tf.float32, None, name="x")
    graph = tf.get_default_graph()
    before_digest, before_nodes = graph.digest(), graph.nodes()
    assert before_nodes[0].outputs[0].shape is None
    x.set_shape([2, 3])
    assert graph.nodes()[0].outputs[0].shape == (2, 3)
    assert graph.digest() == before_digest  # the digest names the program, not its shape hints
