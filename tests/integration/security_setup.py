"""What the security tests set up: a CA with server and client certificates (made with `cryptography`),
tokens files, secrets, and environment switches for the client's settings."""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import ipaddress
import os
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ALICE_TOKEN = "alice-token-0123456789abcdef"
BOB_TOKEN = "bob-token-fedcba9876543210"
WORKER_SECRET = "worker-secret-0123456789abcdef"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, key, issuer: str, issuer_key, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_pair(folder: pathlib.Path, name: str, certificate, key) -> None:
    (folder / f"{name}.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))


def make_pki(folder: pathlib.Path, ca_name: str = "graphexec test CA") -> pathlib.Path:
    """ca.pem, server.pem/.key (for 127.0.0.1 and localhost) and client.pem/.key, signed by a fresh CA."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate(ca_name, ca_key, ca_name, ca_key, ca=True)
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        _write_pair(folder, name, _certificate(f"graphexec {name}", key, ca_name, ca_key, ca=False), key)
    return folder


def write_tokens(folder: pathlib.Path) -> pathlib.Path:
    """alice's token as it is, bob's as its sha256 (both forms of the file)."""
    path = folder / "tokens"
    path.write_text(f"# tenants of the test server\nalice {ALICE_TOKEN}\n\n"
                    f"bob sha256:{hashlib.sha256(BOB_TOKEN.encode()).hexdigest()}  # hashed form\n")
    return path


def write_secret(folder: pathlib.Path, name: str, secret: str) -> pathlib.Path:
    path = folder / name
    path.write_text(secret + "\n")
    return path


@contextlib.contextmanager
def client_env(**values):
    """The client's GRAPHEXEC_* settings (a Connection reads them when it is made); None unsets one."""
    names = ("GRAPHEXEC_TOKEN", "GRAPHEXEC_TLS_CA", "GRAPHEXEC_TLS_CERT", "GRAPHEXEC_TLS_KEY")
    saved = {name: os.environ.get(name) for name in names}
    try:
        for name in names:
            value = values.get(name.removeprefix("GRAPHEXEC_").lower())
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = str(value)
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
