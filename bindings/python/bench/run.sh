#!/usr/bin/env bash
# Per-request cost of the Python middleware (issue 20): the same hello-world
# app without auth and with keygate, FastAPI (dependency) and Starlette (ASGI
# middleware), one uvicorn worker each pinned to CPU 0, wrk -t1 -c16 on CPU 1;
# interleaved rounds, each variant's best.
#   bash bindings/python/bench/run.sh [SECONDS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(cd ../../.. && pwd)
SECS=${1:-5}
ROUNDS=${2:-3}
PY="$ROOT/.venv/bin/python"
command -v wrk >/dev/null || { echo "SKIPPED: wrk not installed"; exit 0; }
bash ../build.sh >/dev/null 2>&1
(cd "$ROOT" && cargo build --release -q -p keygate-cli)
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT
# shellcheck source=../../../scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"
KEY=$(bench_keyset "$work")
declare -A port
for app in fastapi_plain fastapi_emptydep fastapi_keygate starlette_plain starlette_keygate; do
    port[$app]=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    (export KEYGATE_PUB="$work/pub"; exec taskset -c 0 "$PY" -m uvicorn "apps:$app" --host 127.0.0.1 \
        --port "${port[$app]}" --log-level warning --no-access-log) >"$work/$app.log" 2>&1 &
    pids+=($!)
done
for app in "${!port[@]}"; do
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:${port[$app]}/hello" && break; sleep 0.1; done
done
declare -A best
for _ in $(seq "$ROUNDS"); do
    for app in fastapi_plain fastapi_emptydep fastapi_keygate starlette_plain starlette_keygate; do
        out=$(pin 1 wrk -t1 -c16 -d"${SECS}s" -H "Authorization: Bearer $KEY" "http://127.0.0.1:${port[$app]}/hello")
        echo "$out" | grep -q "Non-2xx" && { echo "FAIL: $app refused requests: $out"; exit 1; }
        rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
        best[$app]=$("$PY" -c "print(max(${best[$app]:-0}, $rps))")
    done
done
for fw in fastapi starlette; do
    plain=${best[${fw}_plain]}; with=${best[${fw}_keygate]}
    "$PY" -c "p, k = $plain, $with; print(f'python $fw: no auth {p:.0f} req/s, keygate {k:.0f} req/s: {k / p:.3f}x, +{1e6 / k - 1e6 / p:.1f} us/request (target: keygate costs <= 5 %)')"
done
e=${best[fastapi_emptydep]}; k=${best[fastapi_keygate]}
"$PY" -c "e, k = $e, $k; print(f'python fastapi: a dependency of the same signature checking nothing {e:.0f} req/s; keygate {k:.0f} req/s: {k / e:.3f}x of it, keygate itself +{1e6 / k - 1e6 / e:.1f} us/request')"
