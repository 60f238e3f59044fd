"""In-process numpy: the same computations with no graph, no session and no network."""

import numpy as np

from bench import graphs
from bench.systems import System


class NumpyReference(System):
    name = "numpy"
    has_server = False

    def build_w1(self):
        return lambda a, b: a + b

    def build_w2(self):
        return lambda x: x * 2.0

    def build_w3(self):
        return NumpyMlp().step

    def build_w5(self, first_add):
        return lambda x: graphs.chain_reference(x, first_add)


class NumpyMlp:
    """784-256-10 MLP, ReLU, softmax cross-entropy, SGD, with hand-written backprop."""

    def __init__(self):
        self.w1, self.b1, self.w2, self.b2 = graphs.mlp_initial_values()

    def step(self, x, labels):
        hidden = np.maximum(x @ self.w1 + self.b1, 0.0)
        logits = hidden @ self.w2 + self.b2
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss = -(labels * log_probs).sum(axis=1).mean()

        d_logits = (np.exp(log_probs) - labels) / len(x)
        d_hidden = (d_logits @ self.w2.T) * (hidden > 0)
        lr = np.float32(graphs.LEARNING_RATE)
        self.w2 -= lr * (hidden.T @ d_logits)
        self.b2 -= lr * d_logits.sum(axis=0)
        self.w1 -= lr * (x.T @ d_hidden)
        self.b1 -= lr * d_hidden.sum(axis=0)
        return float(loss)
