#!/usr/bin/env bash
# Prepares what scripts/gpu_check.sh needs on a GPU machine without network access (run here, in the
# repository's root): .whl/ with cp312 wheels of graphexec's packages that the GPU image lacks, at the
# versions installed here, and .gpu_extra/bin/redis-server with the libraries it loads that such an
# image may lack. Both folders are ignored by git; name them in the device call's `carry`.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
grep -qx '/.gpu_extra/' .git/info/exclude 2>/dev/null || echo /.gpu_extra/ >> .git/info/exclude
pins=$(python3 -m pip list --format=freeze 2>/dev/null | grep -i -E \
  '^(grpcio|grpcio-health-checking|grpcio-reflection|protobuf|redis|tensorboardX|crc32c)==' || true)
[ -n "$pins" ] || { echo "install graphexec here first (pip install -e .)"; exit 1; }
rm -rf .whl && python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl $pins
server=$(command -v redis-server || true)
if [ -n "$server" ]; then
  rm -rf .gpu_extra && mkdir -p .gpu_extra/bin .gpu_extra/lib
  cp "$server" .gpu_extra/lib/redis-server.real
  for lib in liblzf.so.1 libjemalloc.so.2 libatomic.so.1; do
    path=$(ldd "$server" | awk -v l="$lib" '$1 == l {print $3}')
    [ -n "$path" ] && cp -L "$path" .gpu_extra/lib/
  done
  cat > .gpu_extra/bin/redis-server <<'WRAP'
#!/bin/sh
# This machine's redis-server with the libraries an image may lack beside it.
here=$(dirname "$(readlink -f "$0")")/../lib
LD_LIBRARY_PATH="$here${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/redis-server.real" "$@"
WRAP
  chmod +x .gpu_extra/bin/redis-server
fi
ls .whl; du -sh .whl .gpu_extra 2>/dev/null
echo 'then: device run `bash scripts/gpu_check.sh` with carry [".whl", ".gpu_extra"]'
