#!/usr/bin/env bash
# Per-request cost of the tower layer (issue 20): an axum server (one
# thread, CPU 0) with a hello-world route without auth and behind keygate,
# wrk -t1 -c16 on CPU 1; interleaved rounds, each variant's best.
#   bash bindings/tower/bench.sh [SECONDS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(cd ../.. && pwd)
SECS=${1:-5}
ROUNDS=${2:-3}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
command -v wrk >/dev/null || { echo "SKIPPED: wrk not installed"; exit 0; }
(cd "$ROOT" && cargo build --release -q -p keygate-tower --example bench && cargo build --release -q -p keygate-cli)
work=$(mktemp -d)
trap 'kill $srv 2>/dev/null; rm -rf "$work"' EXIT
# shellcheck source=../../scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"
KEY=$(bench_keyset "$work")
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(exec taskset -c 0 "$TARGET/release/examples/bench" "$work/pub" "127.0.0.1:$PORT") &
srv=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/plain" && break; sleep 0.05; done
declare -A best=([plain]=0 [passthrough]=0 [keygate]=0)
for _ in $(seq "$ROUNDS"); do
    for path in plain passthrough keygate; do
        out=$(pin 1 wrk -t1 -c16 -d"${SECS}s" -H "Authorization: Bearer $KEY" "http://127.0.0.1:$PORT/$path")
        echo "$out" | grep -q "Non-2xx" && { echo "FAIL: /$path refused requests: $out"; exit 1; }
        rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
        best[$path]=$(python3 -c "print(max(${best[$path]}, $rps))")
    done
done
python3 -c "p, t, k = ${best[plain]}, ${best[passthrough]}, ${best[keygate]}; print(f'rust axum (tower layer): no auth {p:.0f} req/s, keygate {k:.0f} req/s: {k / p:.3f}x, +{1e6 / k - 1e6 / p:.2f} us/request (target: keygate costs <= 5 %); a layer that only passes the request on {t:.0f} req/s ({t / p:.3f}x): keygate {k / t:.3f}x of it, +{1e6 / k - 1e6 / t:.2f} us')"
