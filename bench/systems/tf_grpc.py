"""TensorFlow's gRPC session: a `tf.distribute.Server` process and a graph-mode client
`tf.compat.v1.Session("grpc://localhost:PORT")` with every op and variable on /job:worker/task:0.

TF's server listens on all interfaces whatever it is told, so `start` refuses to run unless
this process is in a network namespace that has only loopback (bench.run arranges that with
`unshare --net`). `python -m bench.systems.tf_grpc PORT` is the server process.
"""

import sys

from bench import procs
from bench.systems import Unavailable
from bench.systems.tf1_style import Tf1StyleSystem
from bench.systems.tf_inprocess import import_tf1


class TfGrpc(Tf1StyleSystem):
    name = "tf_grpc"
    device = "/job:worker/task:0"

    def __init__(self):
        super().__init__()
        self._server = None

    def start(self):
        if not procs.only_loopback():
            raise Unavailable("refusing to start TF's gRPC server (it binds 0.0.0.0) outside a "
                              "private network namespace; run as root so bench.run can use unshare --net")
        self.api = import_tf1()
        port = procs.free_port()
        self._server = procs.ServerProcess(
            "tf-server", [sys.executable, "-m", "bench.systems.tf_grpc", str(port)],
            ready=r"serving on (grpc://\S+)", timeout_s=120)
        self.target = self._server.match.group(1)

    def close(self):
        super().close()
        if self._server:
            self._server.stop()

    def client_config(self):
        return {"target": self.target}

    @classmethod
    def connect(cls, config):
        client = cls()
        client.api = import_tf1()
        client.target = config["target"]
        return client


def serve(port: int):
    import tensorflow as tf

    cluster = tf.train.ClusterSpec({"worker": [f"localhost:{port}"]})
    server = tf.distribute.Server(cluster, job_name="worker", task_index=0, protocol="grpc", start=True)
    print(f"tf server serving on grpc://localhost:{port}", flush=True)
    server.join()


if __name__ == "__main__":
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    serve(int(sys.argv[1]))
