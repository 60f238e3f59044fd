"""Who is calling: tenants by bearer token (clients), and the worker secret (servers <-> workers).

Tokens file (`graphexec serve --auth-tokens FILE`): one `TENANT TOKEN` per line, the token either as
it is or as `sha256:HEX` (the hex sha256 of the token, so the file need not hold the secret itself);
`#` starts a comment, blank lines are skipped. Tenant names are letters, digits and `_.@-`.

Clients send `authorization: Bearer TOKEN`. The presented token is hashed and compared with every
tenant's digest in constant time (no early exit), and any failure, a missing header included, is the
same UNAUTHENTICATED message, so an answer never tells which tenants exist.

Workers: servers send the shared worker secret as `graphexec-worker-secret` metadata on RunPlan, and
workers sign their registration record in Redis with an HMAC keyed by the same secret, so a record
written straight into Redis by anyone without the secret is ignored.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import pathlib
import re
import time

from graphexec import errors

SINGLE_TENANT = ""  # the tenant of every caller of a server without --auth-tokens
TENANT_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,128}")
WORKER_SECRET_HEADER = "graphexec-worker-secret"
MAX_RECORD_AGE_S = 300.0  # a signed record older than this (a replayed one) is not trusted
_UNAUTHENTICATED = "missing or invalid credentials: send `authorization: Bearer TOKEN` (GRAPHEXEC_TOKEN)"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenTable:
    """Tenant by token. `tenant_of(metadata)` raises UnauthenticatedError unless a known token came."""

    def __init__(self, digests: list[tuple[bytes, str]]):
        self._digests = digests

    @classmethod
    def load(cls, path: str) -> TokenTable:
        """The table of a tokens file; ValueError with one line naming the file and line on any problem."""
        try:
            text = pathlib.Path(path).read_text()
        except OSError as exc:
            raise ValueError(f"cannot read tokens file {path}: {exc.strerror or exc}") from None
        digests, seen = [], set()
        for number, line in enumerate(text.splitlines(), 1):
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            where = f"tokens file {path} line {number}"
            if len(fields) != 2:
                raise ValueError(f"{where}: expected `TENANT TOKEN` or `TENANT sha256:HEX`")
            tenant, token = fields
            if not TENANT_NAME.fullmatch(tenant):
                raise ValueError(f"{where}: tenant names are 1-128 letters, digits or _.@-")
            if token.startswith("sha256:"):
                try:
                    digest = bytes.fromhex(token[len("sha256:"):])
                except ValueError:
                    digest = b""
                if len(digest) != 32:
                    raise ValueError(f"{where}: sha256: needs 64 hex digits")
            else:
                digest = _digest(token)
            if digest in seen:
                raise ValueError(f"{where}: this token is already given to a tenant")
            seen.add(digest)
            digests.append((digest, tenant))
        if not digests:
            raise ValueError(f"tokens file {path} names no tenant")
        return cls(digests)

    def fingerprint(self) -> str:
        """A digest of the whole table (of the tokens' digests, never the tokens): two processes with the
        same one admit the same callers as the same tenants."""
        entries = sorted(f"{tenant} {digest.hex()}" for digest, tenant in self._digests)
        return hashlib.sha256("\n".join(entries).encode()).hexdigest()

    def tenant_of(self, metadata) -> str:
        presented = b""
        for key, value in metadata or ():
            if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
                presented = _digest(value[len("Bearer "):].strip())
        presented = presented or bytes(32)  # no token hashes to zeros
        tenant = None
        for digest, name in self._digests:  # every entry, every time: the time says nothing
            if hmac.compare_digest(digest, presented):
                tenant = name
        if tenant is None:
            raise errors.UnauthenticatedError(None, None, _UNAUTHENTICATED)
        return tenant


def read_secret(path: str, what: str) -> str:
    """A secret's file content, stripped; ValueError in one line when it is unreadable or empty."""
    try:
        secret = pathlib.Path(path).read_text().strip()
    except OSError as exc:
        raise ValueError(f"cannot read {what} file {path}: {exc.strerror or exc}") from None
    if len(secret) < 16:
        raise ValueError(f"{what} file {path} must hold a secret of at least 16 characters")
    return secret


class WorkerSecret:
    """The secret shared by servers and workers: it authenticates RunPlan calls and signs registrations."""

    def __init__(self, secret: str):
        self._secret = secret.encode()

    def metadata(self) -> tuple:
        return ((WORKER_SECRET_HEADER, self._secret.decode()),)

    def check_caller(self, metadata) -> None:
        presented = next((v for k, v in metadata or () if k == WORKER_SECRET_HEADER), "")
        if not hmac.compare_digest(presented.encode() if isinstance(presented, str) else b"", self._secret):
            raise errors.UnauthenticatedError(None, None, "workers run plans for graphexec servers only")

    def sign(self, info: dict) -> dict:
        body = json.dumps({**info, "signed_at": time.time()}, sort_keys=True)
        return {"record": body, "mac": hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest()}

    def verify(self, signed: dict) -> dict | None:
        """The worker info of a record this secret signed recently; None for anything else."""
        body, mac = signed.get("record"), signed.get("mac")
        if not isinstance(body, str) or not isinstance(mac, str):
            return None
        expected = hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, mac):
            return None
        info = json.loads(body)
        if abs(time.time() - float(info.pop("signed_at", 0))) > MAX_RECORD_AGE_S:
            return None
        return info
