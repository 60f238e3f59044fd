"""Long chains: the 1000-op affine chain compiles to a tiny plan; a 100,000-node chain builds, compiles, runs."""
import numpy as np

import graphexec as tf


def test_thousand_op_chain_compiles_to_at_most_three_steps():
    tf.reset_default_graph()
    x = tf.placeholder(tf.float32, [1000], name="x")
    y = x
    for i in range(1000):
        y = y + 0.001 if i % 2 == 0 else y * 0.999
    value = np.random.default_rng(0).random(1000, dtype=np.float32) + 0.5
    metadata = tf.RunMetadata()
    with tf.Session() as sess:
        out = sess.run(y, {x: value}, options=tf.RunOptions(trace_level=3), run_metadata=metadata)
        again = sess.run(y, {x: value})
    steps = metadata.plan_text.count("\n  $")
    assert 1 <= steps <= 3, metadata.plan_text
    add, mul = np.float32(0.001), np.float32(0.999)  # the graph's float32 constants, in float64 arithmetic
    exact = value.astype(np.float64)
    sequential = value.copy()
    for i in range(1000):
        exact = exact + float(add) if i % 2 == 0 else exact * float(mul)
        sequential = sequential + add if i % 2 == 0 else sequential * mul
    np.testing.assert_allclose(out, exact, rtol=1e-5)
    # numpy stepping in float32 rounds 1000 times and drifts ~2e-5 from the exact value; the collapsed
    # affine map rounds twice, so it is compared with the exact result above and loosely with numpy here.
    np.testing.assert_allclose(out, sequential, rtol=5e-5)
    np.testing.assert_array_equal(out, again)


def test_hundred_thousand_node_chain_builds_compiles_and_runs():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [4], name="x")
        y = x
        for _ in range(50_000):  # two ops per iteration: 100,000 nodes
            y = tf.sin(y) + 0.5
        assert graph.version >= 100_000
        with tf.Session(graph=graph) as sess:
            out = sess.run(y, {x: np.zeros(4, np.float32)})
    ref = np.zeros(4, np.float32)
    for _ in range(50_000):
        ref = np.sin(ref) + np.float32(0.5)
    np.testing.assert_allclose(out, ref, rtol=1e-4)
