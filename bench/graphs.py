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
CNN_BATCH, CNN_KEEP_PROB, CNN_LEARNING_RATE = 128, 0.75, 1e-3


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


def cnn_initial_values(seed=2):
    """W10's (conv1 w, b, conv2 w, b, dense w, b, logits w, b) float32, the same for every system."""
    rng = np.random.default_rng(seed)
    shapes = ((5, 5, 1, 32), (5, 5, 32, 64), (7 * 7 * 64, 1024), (1024, 10))
    values = []
    for shape in shapes:
        values.append(rng.normal(0.0, 0.1, shape).astype(np.float32))  # the tutorial's truncated_normal(0.1)
        values.append(np.full(shape[-1], 0.1, np.float32))
    return tuple(values)


def cnn_batches(count=4, seed=3):
    """`count` (images float32[128, 28, 28, 1], one-hot labels float32[128, 10]) batches to cycle through."""
    rng = np.random.default_rng(seed)
    return [(rng.random((CNN_BATCH, 28, 28, 1), dtype=np.float32),
             np.eye(10, dtype=np.float32)[rng.integers(0, 10, CNN_BATCH)]) for _ in range(count)]


def _conv_same_relu(x, w, b):
    """Reference 5x5 SAME convolution + bias + ReLU: one product per filter offset, no im2col."""
    kh, kw = w.shape[:2]
    padded = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    out = np.zeros(x.shape[:3] + (w.shape[3],), np.float64)
    for i in range(kh):
        for j in range(kw):
            out += padded[:, i:i + x.shape[1], j:j + x.shape[2], :] @ w[i, j].astype(np.float64)
    return np.maximum(out + b, 0)


def _max_pool_2(x):
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def cnn_reference_loss(images, labels):
    """W10's loss before any step with dropout off (keep_prob 1), in float64 numpy."""
    c1w, c1b, c2w, c2b, d1w, d1b, d2w, d2b = cnn_initial_values()
    h = _max_pool_2(_conv_same_relu(images.astype(np.float64), c1w, c1b))
    h = _max_pool_2(_conv_same_relu(h, c2w, c2b))
    h = np.maximum(h.reshape(len(h), -1) @ d1w + d1b, 0)
    logits = h @ d2w + d2b
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-(labels * log_probs).sum(axis=1).mean())


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


def cnn_graph(api):
    """W10: the classic TF1 MNIST CNN (the "Deep MNIST for experts" tutorial) trained with Adam.

    Returns (images, labels, keep_prob, train, loss, init); keep_prob defaults to 0.75 and is fed 1.0
    for the check against numpy.
    """
    c1w, c1b, c2w, c2b, d1w, d1b, d2w, d2b = (api.Variable(v) for v in cnn_initial_values())
    images = api.placeholder(api.float32, [CNN_BATCH, 28, 28, 1], name="images")
    labels = api.placeholder(api.float32, [CNN_BATCH, 10], name="labels")
    keep_prob = api.placeholder_with_default(np.float32(CNN_KEEP_PROB), [], name="keep_prob")

    def conv_pool(x, w, b):
        h = api.nn.relu(api.nn.conv2d(x, w, strides=[1, 1, 1, 1], padding="SAME") + b)
        return api.nn.max_pool(h, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")

    h = conv_pool(conv_pool(images, c1w, c1b), c2w, c2b)
    h = api.nn.relu(api.matmul(api.reshape(h, [-1, 7 * 7 * 64]), d1w) + d1b)
    logits = api.matmul(api.nn.dropout(h, keep_prob=keep_prob), d2w) + d2b
    xent = getattr(api.nn, "softmax_cross_entropy_with_logits_v2", None)
    xent = xent or api.nn.softmax_cross_entropy_with_logits
    loss = api.reduce_mean(xent(labels=labels, logits=logits))
    train = api.train.AdamOptimizer(CNN_LEARNING_RATE).minimize(loss)
    return images, labels, keep_prob, train, loss, api.global_variables_initializer()


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
