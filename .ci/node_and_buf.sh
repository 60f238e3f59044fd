#!/usr/bin/env bash
# The Node.js client's tests (node --test, against real `graphexec serve` processes) and `buf lint` of
# protos/ (buf ships in the @bufbuild/buf npm package). Node packages come from the lock file (npm ci).
# Needs graphexec importable by python3 (or $GRAPHEXEC_PYTHON), as scripts/test.sh installs it.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v npm >/dev/null 2>&1; then
  echo "installing Node.js"; (apt-get update -qq && apt-get install -y -qq nodejs npm) >/dev/null
fi

echo "== npm ci (client/node)"
(cd client/node && npm ci --no-audit --no-fund --loglevel=error)

echo "== node --test (client/node)"
(cd client/node && npm test)

echo "== buf lint (buf.yaml: STANDARD and COMMENTS rules over protos/)"
client/node/node_modules/.bin/buf lint
echo "buf lint: clean"
