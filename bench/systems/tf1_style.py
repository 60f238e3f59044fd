"""Shared adapter for TF1-style graph APIs: TensorFlow's tf.compat.v1 and graphexec.

Subclasses set `self.api` (the module), `self.target` (session target, "" for in-process)
and may override `device` to pin graphs to a job. Every build gets its own graph and session.
"""

import contextlib

from bench import graphs
from bench.systems import System


class Tf1StyleSystem(System):
    api = None
    target = ""
    device = None  # e.g. "/job:worker/task:0"

    def __init__(self):
        self._sessions = []

    def new_graph(self):
        return self.api.Graph()

    def new_session(self, graph, target=None):
        session = self.api.Session(self.target if target is None else target, graph=graph)
        self._sessions.append(session)
        return session

    def build_graph(self, builder, *args):
        """(graph, builder's outputs) with the graph built under `self.device`."""
        graph = self.new_graph()
        device = self.api.device(self.device) if self.device else contextlib.nullcontext()
        with graph.as_default(), device:
            return graph, builder(self.api, *args)

    def close(self):
        while self._sessions:
            self._sessions.pop().close()

    # -- workloads -----------------------------------------------------------------------
    def build_w1(self):
        graph, (a, b, c) = self.build_graph(graphs.add_graph)
        session = self.new_session(graph)
        return lambda va, vb: session.run(c, {a: va, b: vb})

    def build_w2(self):
        graph, (x, y) = self.build_graph(graphs.double_graph)
        session = self.new_session(graph)
        return lambda vx: session.run(y, {x: vx})

    def build_w3(self):
        graph, (x, labels, train, loss, init) = self.build_graph(graphs.mlp_graph)
        session = self.new_session(graph)
        session.run(init)
        return lambda vx, vlabels: session.run([train, loss], {x: vx, labels: vlabels})[1]

    def build_w10(self):
        graph, (images, labels, keep_prob, train, loss, init) = self.build_graph(graphs.cnn_graph)
        session = self.new_session(graph)
        session.run(init)

        def step(vx, vlabels):
            return session.run([train, loss], {images: vx, labels: vlabels})[1]

        def first_loss(vx, vlabels):
            return session.run(loss, {images: vx, labels: vlabels, keep_prob: 1.0})

        return step, first_loss

    def build_w5(self, first_add):
        graph, (x, y) = self.build_graph(graphs.chain_graph, first_add)
        session = self.new_session(graph)
        return lambda vx: session.run(y, {x: vx})

    def build_w8(self):
        graph, (x, probabilities, init) = self.build_graph(graphs.mlp_forward_graph)
        session = self.new_session(graph)
        session.run(init)  # every client writes the same initial values
        return lambda vx: session.run(probabilities, {x: vx})
