"""TLS credentials from PEM files: a server's (optionally requiring client certificates), a channel's.

Clients read their settings from the environment: GRAPHEXEC_TLS_CA (the CA that signed the server's
certificate; the system's roots without it), GRAPHEXEC_TLS_CERT and GRAPHEXEC_TLS_KEY (a client
certificate, for servers that require one), GRAPHEXEC_TOKEN (the bearer token of the caller's tenant)
or GRAPHEXEC_TOKEN_FILE (a file holding it).
Servers dial workers with the same GRAPHEXEC_TLS_CA and their own certificate as the client's.
"""
from __future__ import annotations

import os
import pathlib
import ssl

import grpc


def read_pem(path: str, what: str) -> bytes:
    """A PEM file's bytes; ValueError in one line naming it when it is unreadable or not PEM."""
    try:
        data = pathlib.Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data:
        raise ValueError(f"{what} {path} is not a PEM file")
    return data


def server_credentials(cert: str, key: str, client_ca: str = "") -> grpc.ServerCredentials:
    """TLS with this certificate and key; with `client_ca`, callers must present a certificate it signed."""
    pair = [(read_pem(key, "TLS key"), read_pem(cert, "TLS certificate"))]
    if not client_ca:
        return grpc.ssl_server_credentials(pair)
    return grpc.ssl_server_credentials(pair, root_certificates=read_pem(client_ca, "TLS client CA"),
                                       require_client_auth=True)


def channel_credentials(ca: str = "", cert: str = "", key: str = "") -> grpc.ChannelCredentials:
    """TLS trusting `ca` (the system's roots without it), presenting `cert`/`key` when given."""
    if bool(cert) != bool(key):
        raise ValueError("a TLS client certificate needs both GRAPHEXEC_TLS_CERT and GRAPHEXEC_TLS_KEY")
    return grpc.ssl_channel_credentials(
        root_certificates=read_pem(ca, "TLS CA") if ca else None,
        private_key=read_pem(key, "TLS key") if key else None,
        certificate_chain=read_pem(cert, "TLS certificate") if cert else None)


def client_channel_credentials() -> grpc.ChannelCredentials:
    """A client's TLS settings, from GRAPHEXEC_TLS_CA, GRAPHEXEC_TLS_CERT and GRAPHEXEC_TLS_KEY."""
    env = os.environ.get
    return channel_credentials(env("GRAPHEXEC_TLS_CA", ""), env("GRAPHEXEC_TLS_CERT", ""),
                               env("GRAPHEXEC_TLS_KEY", ""))


def bearer_metadata() -> tuple:
    """The `authorization` metadata of GRAPHEXEC_TOKEN (or of the file GRAPHEXEC_TOKEN_FILE names);
    empty when neither is set."""
    token, path = os.environ.get("GRAPHEXEC_TOKEN", ""), os.environ.get("GRAPHEXEC_TOKEN_FILE", "")
    if not token and path:
        try:
            token = pathlib.Path(path).read_text().strip()
        except OSError as exc:
            raise ValueError(f"cannot read GRAPHEXEC_TOKEN_FILE {path}: {exc.strerror or exc}") from None
    return (("authorization", f"Bearer {token}"),) if token else ()


# The direct links (frames on a socket, graphexec.rpc.frames) use Python's ssl with the same files.
def ssl_server_context(cert: str, key: str, client_ca: str = "") -> ssl.SSLContext:
    """server_credentials' TLS for a plain socket."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    if client_ca:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    return context


def ssl_client_context(ca: str = "", cert: str = "", key: str = "") -> ssl.SSLContext:
    """channel_credentials' TLS for a plain socket (the server's name is checked as gRPC checks it)."""
    context = ssl.create_default_context(cafile=ca or None)
    if cert:
        context.load_cert_chain(cert, key)
    return context


def client_ssl_context() -> ssl.SSLContext:
    """A client's TLS settings for a plain socket, from the same variables as client_channel_credentials."""
    env = os.environ.get
    return ssl_client_context(env("GRAPHEXEC_TLS_CA", ""), env("GRAPHEXEC_TLS_CERT", ""), env("GRAPHEXEC_TLS_KEY", ""))
