"""System adapters: one module per system, all behind the small `System` interface.

A workload asks an adapter for a callable (`build_w1()` returns `run(a, b) -> c`, ...) and
times it; see bench/workloads.py. An adapter says why it cannot take part by raising:

- `NotApplicable` - the workload does not exist for this system (numpy has no server);
  shown as "-" in the table.
- `Unavailable`   - the system could take part but cannot right now (package missing,
  feature not written yet); shown as "n/a" with the reason as a footnote.
"""

import importlib


class NotApplicable(Exception):
    """The workload has no meaning for this system."""


class Unavailable(Exception):
    """The system or one of its features cannot run here; the message says why."""


class System:
    """Base adapter. Subclasses override `start`/`close` and the `build_*` they support.

    Inputs and outputs are numpy float32 arrays. Every `build_*` sets up what it needs
    (graph, session, channel) and returns the callable that is timed.
    """

    name = "system"
    # False where results are not the real computation (the echo server returns its input).
    computes_results = True
    # False for in-process systems: W4 (clients sharing a server) does not apply to them.
    has_server = True

    def start(self):
        """Start servers and connect; raise Unavailable if that cannot be done here."""

    def close(self):
        """Stop everything `start` and the `build_*` calls created."""

    # -- W4 client processes -------------------------------------------------------------
    def client_config(self) -> dict:
        """JSON-able settings a client process passes to `connect` to reach this system."""
        raise NotApplicable("no server to connect further clients to")

    @classmethod
    def connect(cls, config: dict) -> "System":
        """A client-only adapter for `config`, used inside W4 client processes."""
        raise NotApplicable("no server to connect further clients to")

    def w8_config(self, batching: bool) -> dict:
        """W8: the `client_config` of a server that batches runs dynamically (`batching`) or not."""
        if batching:
            raise NotApplicable("no dynamic batching")
        return self.client_config()

    # -- workloads -----------------------------------------------------------------------
    def build_w1(self):
        """`run(a, b) -> a + b` for float32[3] inputs (W1, W4)."""
        raise NotApplicable("not defined for this system")

    def build_w2(self):
        """`run(x) -> x * 2` for a 64 MiB float32 vector."""
        raise NotApplicable("not defined for this system")

    def build_w3(self):
        """`step(x, labels) -> loss`: one SGD step of the 784-256-10 MLP."""
        raise NotApplicable("not defined for this system")

    def build_w8(self):
        """`run(x) -> probabilities`: W3's MLP forward pass on float32[n, 784], in a session of its own."""
        raise NotApplicable("not defined for this system")

    def build_w5(self, first_add: float):
        """`run(x) -> y` for the 1000-op chain on float32[1000], `graphs.chain_graph(api, first_add)`."""
        raise NotApplicable("not defined for this system")

    def build_w6(self, first_add: float):
        """`(run_on_replica_a, run_on_replica_b)` for `graphs.chain_graph(api, first_add)`."""
        raise NotApplicable("needs two server replicas sharing a cache")

    def build_w7(self):
        """`stream(a, b, n) -> iterator of n results` over one streaming call."""
        raise NotApplicable("no streaming call")

    def build_w10(self):
        """`(step(images, labels) -> loss, first_loss(images, labels) -> loss)`: one Adam step of the
        MNIST CNN, and its loss with dropout off and no step taken."""
        raise NotApplicable("not defined for this system")


# name -> (module:class, column label). Modules are imported only in the process that
# runs that system, so the driver never imports TensorFlow.
SYSTEMS = {
    "graphexec": ("bench.systems.graphexec_sys:GraphexecEmbedded", "graphexec"),
    "graphexec_grpc": ("bench.systems.graphexec_sys:GraphexecGrpc", "graphexec over gRPC"),
    "graphexec_inprocess": ("bench.systems.graphexec_sys:GraphexecInProcess", "graphexec in-process"),
    "graphexec_redis": ("bench.systems.graphexec_sys:GraphexecRedis", "graphexec+redis"),
    "tf_grpc": ("bench.systems.tf_grpc:TfGrpc", "TF-grpc"),
    "tf_inprocess": ("bench.systems.tf_inprocess:TfInProcess", "TF in-process"),
    "grpc_echo": ("bench.systems.grpc_echo:GrpcEcho", "grpcio echo"),
    "numpy": ("bench.systems.numpy_ref:NumpyReference", "numpy"),
}


def load(name: str) -> type[System]:
    """The adapter class registered under `name`."""
    module_name, class_name = SYSTEMS[name][0].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def label(name: str) -> str:
    return SYSTEMS[name][1]
