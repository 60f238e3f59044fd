#!/usr/bin/env python3
"""Container health check: ask the local graphexec process's gRPC health service whether it is SERVING.

Used by the images' HEALTHCHECK, by docker-compose.yml and by Kubernetes exec probes where the servers
serve TLS (the kubelet's own gRPC probes speak no TLS). Exit status 0 means healthy, 1 unhealthy, as
Docker expects. With no --target or --address it asks the server port ($GRAPHEXEC_PORT, 7470) and the
worker port ($GRAPHEXEC_WORKER_PORT, 7471) of 127.0.0.1, and the container is healthy when either answers
SERVING: one image runs either role. `--service graphexec.v1.GraphExecService` asks for readiness (Redis
reachable, a worker live), the default "" for liveness (graphexec/server/readiness.py).

TLS: a grpcs://HOST:PORT target is dialled with the clients' settings (graphexec/rpc/tls.py):
GRAPHEXEC_TLS_CA (the CA of the server's certificate; the system's roots without it), and
GRAPHEXEC_TLS_CERT/GRAPHEXEC_TLS_KEY as the client certificate for servers that require one (mutual TLS).
A bare --address (and the default ports) is dialled over TLS when this container's process serves TLS,
that is when GRAPHEXEC_TLS_CERT is set: there it names the process's own certificate, which then also
serves as the client certificate, so it must be signed by the CA that --tls-client-ca names.
--tls-server-name is the name the certificate must bear when it does not name the address dialled
(127.0.0.1). The health service needs no token.
Standalone on purpose: it needs only grpcio and grpcio-health-checking (graphexec dependencies), and does
not pay for importing graphexec on every probe.
Usage: graphexec-healthcheck [--target grpc[s]://HOST:PORT ...] [--address HOST:PORT ...] [--service NAME]
                             [--timeout SECONDS] [--tls-server-name NAME]
"""
import argparse
import os
import pathlib
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def default_addresses() -> list[str]:
    ports = (os.environ.get("GRAPHEXEC_PORT", "7470"), os.environ.get("GRAPHEXEC_WORKER_PORT", "7471"))
    return [f"127.0.0.1:{port}" for port in dict.fromkeys(ports)]


def parse_target(target: str) -> tuple[str, bool]:
    """(HOST:PORT, over TLS) of grpc://HOST:PORT or grpcs://HOST:PORT."""
    scheme, _, address = target.partition("://")
    if scheme not in ("grpc", "grpcs") or not address:
        raise ValueError(f"targets look like grpc://HOST:PORT or grpcs://HOST:PORT, got {target!r}")
    return address.rstrip("/"), scheme == "grpcs"


def read_pem(variable: str) -> bytes | None:
    path = os.environ.get(variable, "")
    if not path:
        return None
    try:
        data = pathlib.Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {variable} {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data:
        raise ValueError(f"{variable} {path} is not a PEM file")
    return data


def tls_credentials() -> grpc.ChannelCredentials:
    """As graphexec.rpc.tls.client_channel_credentials: GRAPHEXEC_TLS_CA, _CERT and _KEY."""
    cert, key = read_pem("GRAPHEXEC_TLS_CERT"), read_pem("GRAPHEXEC_TLS_KEY")
    if (cert is None) != (key is None):
        raise ValueError("a TLS client certificate needs both GRAPHEXEC_TLS_CERT and GRAPHEXEC_TLS_KEY")
    return grpc.ssl_channel_credentials(root_certificates=read_pem("GRAPHEXEC_TLS_CA"), private_key=key,
                                        certificate_chain=cert)


def channel(address: str, secure: bool, server_name: str) -> grpc.Channel:
    if not secure:
        return grpc.insecure_channel(address)
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    return grpc.secure_channel(address, tls_credentials(), options=options)


def status_of(address: str, service: str, timeout: float, secure: bool = False, server_name: str = "") -> str:
    """The health status name `address` reports for `service` ("" is the whole process)."""
    with channel(address, secure, server_name) as open_channel:
        response = health_pb2_grpc.HealthStub(open_channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", action="append", default=[],
                        help="grpc://HOST:PORT or grpcs://HOST:PORT to ask (repeatable)")
    parser.add_argument("--address", action="append", default=[],
                        help="HOST:PORT to ask (repeatable), over TLS when GRAPHEXEC_TLS_CERT is set")
    parser.add_argument("--service", default="")
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--tls-server-name", default="",
                        help="name the server's certificate must bear (default: the target's host)")
    args = parser.parse_args(argv)
    serves_tls = bool(os.environ.get("GRAPHEXEC_TLS_CERT"))
    addresses = args.address or ([] if args.target else default_addresses())
    try:
        targets = [parse_target(t) for t in args.target] + [(a, serves_tls) for a in addresses]
    except ValueError as exc:
        parser.error(str(exc))
    for address, secure in targets:
        shown = f"{'grpcs' if secure else 'grpc'}://{address}"
        try:
            status = status_of(address, args.service, args.timeout, secure, args.tls_server_name)
        except grpc.RpcError as exc:
            print(f"{shown}: {exc.code().name}: {exc.details()}", file=sys.stderr)
            continue
        except ValueError as exc:  # unreadable TLS settings: no target can be asked
            print(f"{shown}: {exc}", file=sys.stderr)
            return 1
        print(f"{shown}: {status}")
        if status == "SERVING":
            return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
