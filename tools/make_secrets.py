"""Make the secrets docker-compose.yml and deploy/k8s/ expect, as files in one folder (default: deploy/secrets,
which git ignores):

  tokens          `TENANT sha256:HEX` lines for graphexec serve --auth-tokens (the tokens themselves are
                  not kept in it)
  token-TENANT    each tenant's token, to hand to that tenant (GRAPHEXEC_TOKEN or GRAPHEXEC_TOKEN_FILE)
  worker-secret   shared by servers and workers (--worker-secret-file)
  redis-password  Redis's password (--redis-password-file)
  redis-auth.conf the same as Redis configuration (`requirepass ...`), for redis-server to read

Existing files are kept, so running it again only adds what is missing (new tenants, say).
Usage: python tools/make_secrets.py [--dir DIR] [TENANT ...]   (default tenant: default)
Kubernetes: kubectl create secret generic graphexec-secrets --from-file=DIR
"""
import argparse
import hashlib
import pathlib
import secrets

ROOT = pathlib.Path(__file__).resolve().parent.parent


def write_new(path: pathlib.Path, text: str) -> bool:
    """Write `text` to a new file; False when the file exists already. Files are readable by all (the
    containers' own user reads them through compose's bind mounts); the folder is the owner's only."""
    try:
        with open(path, "x", encoding="ascii") as file:
            file.write(text)
    except FileExistsError:
        return False
    path.chmod(0o644)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=pathlib.Path, default=ROOT / "deploy" / "secrets")
    parser.add_argument("tenants", nargs="*", default=["default"])
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    args.dir.chmod(0o700)
    write_new(args.dir / "worker-secret", secrets.token_urlsafe(32) + "\n")
    if write_new(args.dir / "redis-password", secrets.token_urlsafe(32) + "\n") or not (
            args.dir / "redis-auth.conf").exists():
        password = (args.dir / "redis-password").read_text().strip()
        (args.dir / "redis-auth.conf").write_text(f"requirepass {password}\n")
    tokens = args.dir / "tokens"
    lines = tokens.read_text().splitlines() if tokens.exists() else ["# TENANT sha256:HEX (tools/make_secrets.py)"]
    for tenant in args.tenants:
        token = secrets.token_urlsafe(32)
        if write_new(args.dir / f"token-{tenant}", token + "\n"):
            lines.append(f"{tenant} sha256:{hashlib.sha256(token.encode()).hexdigest()}")
    tokens.write_text("\n".join(lines) + "\n")
    tokens.chmod(0o644)
    print(f"secrets in {args.dir}: tokens, token-<tenant>, worker-secret, redis-password, redis-auth.conf")


if __name__ == "__main__":
    main()
