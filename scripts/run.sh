#!/usr/bin/env bash
# Make (once) and use the project's virtual environment (.venv; see scripts/venv.sh), start the service on
# its embedded defaults (in-process CPU worker, in-memory caches; --redis URL uses Redis and starts a local
# `graphexec worker` when none is live), run the quickstart against it, and keep serving until Ctrl-C.
# Use --once to stop the service after the quickstart. Other arguments go to `graphexec serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
once=0; args=(); redis=${GRAPHEXEC_REDIS_URL:-}; previous=
for a in "$@"; do
  case "$a" in
    --once) once=1; continue ;;
    --redis=*) redis=${a#--redis=} ;;
  esac
  [ "$previous" = "--redis" ] && redis=$a
  args+=("$a"); previous=$a
done

use_venv
log=$(mktemp); worker_log=$(mktemp); pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -f "$log" "$worker_log"' EXIT

# wait_for PID LOG PATTERN: the first match of PATTERN in LOG, once the process prints it.
wait_for() {
  local found
  for _ in $(seq 1 300); do
    found=$(grep -o "$3" "$2" | head -n 1 || true)
    [ -n "$found" ] && { echo "$found"; return 0; }
    kill -0 "$1" 2>/dev/null || { cat "$2" >&2; return 1; }
    sleep 0.1
  done
  echo "timed out waiting for: $3" >&2; cat "$2" >&2; return 1
}

python -m graphexec serve --port "${GRAPHEXEC_PORT:-0}" ${args[@]+"${args[@]}"} >"$log" 2>&1 &
pids+=($!)
address=$(wait_for "${pids[0]}" "$log" 'grpc://[^ ]*')
echo "graphexec serving on $address"
if [ -n "$redis" ] && grep -q "no live worker" "$log"; then
  echo "no live worker in Redis at $redis: starting one (graphexec worker --redis $redis)"
  python -m graphexec worker --redis "$redis" >"$worker_log" 2>&1 &
  pids+=($!)
  wait_for "${pids[1]}" "$worker_log" 'serving on .*' >/dev/null
  sleep 1  # servers re-read the worker registry every 0.5 s
fi
GRAPHEXEC_TARGET="$address" python examples/quickstart.py
if [ "$once" = 0 ]; then
  echo "service still running on $address (Ctrl-C to stop)"
  wait "${pids[0]}"
fi
