#!/usr/bin/env bash
# Install graphexec, start the service on its embedded defaults (in-process CPU worker, in-memory caches;
# pass --redis URL to use Redis), run the quickstart against it, and keep serving until Ctrl-C.
# Use --once to stop the service after the quickstart.
set -euo pipefail
cd "$(dirname "$0")/.."
once=0; args=()
for a in "$@"; do if [ "$a" = "--once" ]; then once=1; else args+=("$a"); fi; done

python3 -m pip install -q --disable-pip-version-check -e .
log=$(mktemp)
python3 -m graphexec serve --port "${GRAPHEXEC_PORT:-0}" "${args[@]}" >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 100); do
  address=$(grep -o 'grpc://[^ ]*' "$log" | head -n 1 || true)
  [ -n "$address" ] && break
  kill -0 $server 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
[ -n "$address" ] || { echo "server did not start"; cat "$log"; exit 1; }
echo "graphexec serving on $address"
GRAPHEXEC_TARGET="$address" python3 examples/quickstart.py
if [ "$once" = 0 ]; then
  echo "service still running on $address (Ctrl-C to stop)"
  wait $server
fi
