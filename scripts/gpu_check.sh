#!/usr/bin/env bash
# The GPU check, run once on a lent GPU machine (no network there): tests/gpu and the GPU benchmark.
# The machine's image has CuPy, numpy, torch, numba and grpcio; graphexec's other packages travel as
# cp312 wheels in .whl/, and a redis-server (for the benchmark's deployment columns) may travel in
# .gpu_extra/bin/: scripts/gpu_bundle.sh makes both (README "Development"). Logs go to $OUT when set.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp}
python3 --version; nvidia-smi -L || true; nproc
if [ -d .whl ]; then
  # grpcio apart: where its wheel does not fit this Python, the image's grpcio stays.
  others=$(ls .whl/*.whl | grep -v '/grpcio-1')
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $others
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/grpcio-1*.whl || echo "keeping the image's grpcio"
  export PYTHONPATH=/tmp/site:$PWD
fi
[ -d .gpu_extra/bin ] && export PATH=$PWD/.gpu_extra/bin:$PATH
export PYTHONUNBUFFERED=1
python3 -c "import numpy, cupy, grpc, google.protobuf as p, redis; print('numpy', numpy.__version__, 'cupy',
cupy.__version__, 'grpcio', grpc.__version__, 'protobuf', p.__version__, 'redis', redis.__version__)"
redis-server --version || echo "no redis-server: the benchmark skips the deployment columns"
timeout 240 python3 -m pytest tests/gpu -q -rfE -p no:cacheprovider 2>&1 | tee "$out/gpu_tests.log"
tests=${PIPESTATUS[0]}
timeout 300 python3 -m bench.gpu 2>&1 | tee "$out/gpu_bench.log"
exit "$tests"
