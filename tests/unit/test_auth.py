"""graphexec.server.auth without processes: token lookup, and signed worker registrations."""
import hashlib
import json
import time

import pytest

from graphexec import errors
from graphexec.server import auth


def table(tmp_path, text):
    path = tmp_path / "tokens"
    path.write_text(text)
    return auth.TokenTable.load(str(path))


def test_tokens_name_their_tenant_in_either_form(tmp_path):
    tokens = table(tmp_path, f"alice a-token\nbob sha256:{hashlib.sha256(b'b-token').hexdigest()}\n")
    assert tokens.tenant_of((("authorization", "Bearer a-token"),)) == "alice"
    assert tokens.tenant_of([("x", "y"), ("authorization", "Bearer b-token")]) == "bob"
    for metadata in ((), (("authorization", "a-token"),), (("authorization", "Bearer "),),
                     (("authorization", "Bearer sha256:" + hashlib.sha256(b"b-token").hexdigest()),)):
        with pytest.raises(errors.UnauthenticatedError):
            tokens.tenant_of(metadata)


def test_a_signed_registration_is_trusted_only_unaltered_recent_and_with_the_same_secret(monkeypatch):
    secret = auth.WorkerSecret("s" * 32)
    info = {"id": "w1", "address": "10.0.0.1:7471", "load": 0}
    signed = secret.sign(info)
    assert secret.verify(signed) == info
    assert auth.WorkerSecret("t" * 32).verify(signed) is None
    altered = json.loads(signed["record"])
    altered["address"] = "10.6.6.6:7471"
    assert secret.verify({"record": json.dumps(altered, sort_keys=True), "mac": signed["mac"]}) is None
    assert secret.verify({"record": signed["record"]}) is None and secret.verify(info) is None
    later = time.time() + auth.MAX_RECORD_AGE_S + 1
    monkeypatch.setattr(auth.time, "time", lambda: later)
    assert secret.verify(signed) is None  # a replayed old registration


def test_the_worker_secret_checks_callers():
    secret = auth.WorkerSecret("s" * 32)
    secret.check_caller(secret.metadata())
    for metadata in ((), ((auth.WORKER_SECRET_HEADER, "s" * 31),), (("authorization", "Bearer " + "s" * 32),)):
        with pytest.raises(errors.UnauthenticatedError):
            secret.check_caller(metadata)
