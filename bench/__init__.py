"""Benchmark harness: graphexec against TensorFlow's gRPC session, TF in-process,
a grpcio echo floor and numpy. Run `python -m bench.run --quick` from the repo root."""
