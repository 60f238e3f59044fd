#!/usr/bin/env python3
"""Container health check: ask the local graphexec process's gRPC health service whether it is SERVING.

Used by the images' HEALTHCHECK and by docker-compose.yml (Kubernetes probes gRPC health natively).
Exit status 0 means healthy, 1 unhealthy, as Docker expects. With no --address it asks the server
port ($GRAPHEXEC_PORT, 7470) and the worker port ($GRAPHEXEC_WORKER_PORT, 7471) of 127.0.0.1, and the
container is healthy when either answers SERVING: one image runs either role.
Standalone on purpose: it needs only grpcio and grpcio-health-checking, both graphexec dependencies.
Usage: graphexec-healthcheck [--address HOST:PORT ...] [--service NAME] [--timeout SECONDS]
"""
import argparse
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def default_addresses() -> list[str]:
    ports = (os.environ.get("GRAPHEXEC_PORT", "7470"), os.environ.get("GRAPHEXEC_WORKER_PORT", "7471"))
    return [f"127.0.0.1:{port}" for port in dict.fromkeys(ports)]


def status_of(address: str, service: str, timeout: float) -> str:
    """The health status name `address` reports for `service` ("" is the whole process)."""
    with grpc.insecure_channel(address) as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", action="append", help="HOST:PORT to ask (repeatable)")
    parser.add_argument("--service", default="")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    for address in args.address or default_addresses():
        try:
            status = status_of(address, args.service, args.timeout)
        except grpc.RpcError as exc:
            print(f"{address}: {exc.code().name}: {exc.details()}", file=sys.stderr)
            continue
        print(f"{address}: {status}")
        if status == "SERVING":
            return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
