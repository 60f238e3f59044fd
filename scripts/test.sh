#!/usr/bin/env bash
# Make (once) the project's virtual environment (.venv; see scripts/venv.sh) with the test dependencies,
# install redis-server and Node.js when missing, then run every test tier that can run here. Arguments go
# to pytest (e.g. -k quickstart).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh

if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server"; (apt-get update -qq && apt-get install -y -qq redis-server) >/dev/null
fi
use_venv test,kernels

# The Node.js client's tests and buf lint first, so pytest's summary is the last line printed.
bash .ci/node_and_buf.sh

echo "== ruff check (pyproject.toml [tool.ruff]: syntax errors and pyflakes)"
python -m ruff check --quiet .
echo "ruff: clean"

python -m pytest tests/unit tests/integration tests/tutorials tests/gpu -q -p no:cacheprovider "$@"
