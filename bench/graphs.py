"""The workload graphs, written once against the TF1 graph API.

`api` is `tensorflow.compat.v1` or `graphexec` (`import graphexec as tf` mirrors TF1), so
TensorFlow and graphexec run exactly the same graphs. Input data lives here too, so every
system, numpy included, sees the same numbers.
"""

import numpy as np

W1_SIZE = 3
W2_ELEMENTS = 64 * 2**20 // 4  # 64 MiB of float32
MLP_SIZES = (784, 256, 10)
BATCH = 128
LEARNING_RATE = 0.1
CHAIN_LENGTH = 1000
CHAIN_WIDTH = 1000
CHAIN_ADD, CHAIN_MUL = 0.001, 0.999


# -- inputs ----------------------------------------------------------------------------
def w1_inputs():
    return (np.array([1.0, 2.0, 3.0], np.float32), np.array([0.5, 0.25, 0.125], np.float32))


def w2_input():
    return np.full(W2_ELEMENTS, 1.5, np.float32)


def w5_input():
    return np.linspace(-1.0, 1.0, CHAIN_WIDTH, dtype=np.float32)


def mlp_initial_values(seed=0):
    """(w1, b1, w2, b2) float32, the same for every system."""
    rng = np.random.default_rng(seed)
    n_in, n_hidden, n_out = MLP_SIZES
    return (
        rng.normal(0.0, 0.05, (n_in, n_hidden)).astype(np.float32),
        np.zeros(n_hidden, np.float32),
        rng.normal(0.0, 0.05, (n_hidden, n_out)).astype(np.float32),
        np.zeros(n_out, np.float32),
    )


def mlp_batches(count=8, seed=1):
    """`count` (x float32[128, 784], one-hot labels float32[128, 10]) batches to cycle through."""
    rng = np.random.default_rng(seed)
    n_in, _, n_out = MLP_SIZES
    batches = []
    for _ in range(count):
        x = rng.normal(0.0, 1.0, (BATCH, n_in)).astype(np.float32)
        labels = np.eye(n_out, dtype=np.float32)[rng.integers(0, n_out, BATCH)]
        batches.append((x, labels))
    return batches


def w8_rows(count=64, seed=2):
    """W8: one float32[1, 784] request per client."""
    rng = np.random.default_rng(seed)
    return [rng.normal(0.0, 1.0, (1, MLP_SIZES[0])).astype(np.float32) for _ in range(count)]


def mlp_forward_reference(x):
    """W8's answer computed with numpy (float64): the MLP's softmax probabilities for the rows of x."""
    w1, b1, w2, b2 = (v.astype(np.float64) for v in mlp_initial_values())
    logits = np.maximum(x @ w1 + b1, 0.0) @ w2 + b2
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def chain_reference(x, first_add=CHAIN_ADD):
    """W5 computed eagerly with numpy: the expected result and the numpy system's W5."""
    y = x
    for i in range(CHAIN_LENGTH):
        y = y + (first_add if i == 0 else CHAIN_ADD) if i % 2 == 0 else y * CHAIN_MUL
    return y


# -- graphs ----------------------------------------------------------------------------
def add_graph(api):
    """W1, W4, W7: c = a + b on float32[3] placeholders. Returns (a, b, c)."""
    a = api.placeholder(api.float32, [W1_SIZE], name="a")
    b = api.placeholder(api.float32, [W1_SIZE], name="b")
    return a, b, a + b


def double_graph(api):
    """W2: y = x * 2 on a 64 MiB placeholder. Returns (x, y)."""
    x = api.placeholder(api.float32, [W2_ELEMENTS], name="x")
    return x, x * 2.0


def mlp_graph(api):
    """W3: 784-256-10 MLP, ReLU, softmax cross-entropy, SGD. Returns (x, labels, train, loss, init)."""
    w1, b1, w2, b2 = mlp_initial_values()
    n_in, _, n_out = MLP_SIZES
    x = api.placeholder(api.float32, [BATCH, n_in], name="x")
    labels = api.placeholder(api.float32, [BATCH, n_out], name="labels")
    weights1, bias1 = api.Variable(w1, name="w1"), api.Variable(b1, name="b1")
    weights2, bias2 = api.Variable(w2, name="w2"), api.Variable(b2, name="b2")
    hidden = api.nn.relu(api.matmul(x, weights1) + bias1)
    logits = api.matmul(hidden, weights2) + bias2
    xent = getattr(api.nn, "softmax_cross_entropy_with_logits_v2", None)
    xent = xent or api.nn.softmax_cross_entropy_with_logits
    loss = api.reduce_mean(xent(labels=labels, logits=logits))
    train = api.train.GradientDescentOptimizer(LEARNING_RATE).minimize(loss)
    return x, labels, train, loss, api.global_variables_initializer()


def mlp_forward_graph(api):
    """W8: W3's MLP for serving, its forward pass on any number of rows (`[None, 784]`, as servers that
    batch requests need), variables on the server. Returns (x, probabilities, init)."""
    w1, b1, w2, b2 = mlp_initial_values()
    x = api.placeholder(api.float32, [None, MLP_SIZES[0]], name="x")
    weights1, bias1 = api.Variable(w1, name="w1"), api.Variable(b1, name="b1")
    weights2, bias2 = api.Variable(w2, name="w2"), api.Variable(b2, name="b2")
    hidden = api.nn.relu(api.matmul(x, weights1) + bias1)
    probabilities = api.nn.softmax(api.matmul(hidden, weights2) + bias2)
    return x, probabilities, api.global_variables_initializer()


def chain_graph(api, first_add=CHAIN_ADD):
    """W5, W6: 1000 ops alternating + 0.001 and * 0.999. Returns (x, y).

    W5 and W6 pass a slightly different `first_add` each time, so the graph is new to every cache.
    """
    x = api.placeholder(api.float32, [CHAIN_WIDTH], name="x")
    y = x
    for i in range(CHAIN_LENGTH):
        y = y + (first_add if i == 0 else CHAIN_ADD) if i % 2 == 0 else y * CHAIN_MUL
    return x, y
