#!/usr/bin/env bash
# Install everything the tests need on a fresh machine, then run every test tier that can run here.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server"; (apt-get update -qq && apt-get install -y -qq redis-server) >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e '.[test]'

# The Node.js client's tests and buf lint first, so pytest's summary is the last line printed.
bash .ci/node_and_buf.sh

python3 -m pytest tests/unit tests/integration tests/tutorials tests/gpu -q -p no:cacheprovider "$@"
