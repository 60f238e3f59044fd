#!/usr/bin/env bash
# The GPU check, run once on a lent GPU machine (no network there): tests/gpu and the GPU benchmark.
# The machine's image has CuPy, numpy and grpcio; the other Python packages travel as wheels in .whl/
# (see README "Development"). Logs go to $OUT when set.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp}
python3 --version; nvidia-smi -L || true
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/redis-*.whl .whl/grpcio_health*.whl .whl/grpcio_reflection*.whl .whl/protobuf-*.whl \
    .whl/tensorboard[xX]-*.whl .whl/tqdm-*.whl .whl/packaging-*.whl
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/grpcio-1*.whl || echo "keeping the image's grpcio"
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
python3 -m pytest tests/gpu -q -p no:cacheprovider 2>&1 | tee "$out/gpu_tests.log"
tests=${PIPESTATUS[0]}
python3 -m bench.gpu 2>&1 | tee "$out/gpu_bench.log"
exit "$tests"
