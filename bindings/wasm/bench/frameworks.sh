#!/usr/bin/env bash
# Per-request cost of the Node adapters (issue 20): hello-world routes in
# Express, Fastify and Hono without auth, with a middleware doing nothing
# (the peer) and with keygate, one Node process
# pinned to CPU 0, wrk -t1 -c16 on CPU 1; interleaved rounds, each best.
#   bash bindings/wasm/bench/frameworks.sh [SECONDS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(cd ../.. && pwd)
SECS=${1:-5}
ROUNDS=${2:-3}
command -v wrk >/dev/null || { echo "SKIPPED: wrk not installed"; exit 0; }
[ -f pkg/node/express.js ] || bash build.sh >/dev/null
(cd "$ROOT" && cargo build --release -q -p keygate-cli)
work=$(mktemp -d)
trap 'kill $srv 2>/dev/null; rm -rf "$work"' EXIT
# shellcheck source=../../../scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"
KEY=$(bench_keyset "$work")
(exec taskset -c 0 node bench/frameworks.js "$work/pub" > "$work/ports") &
srv=$!
for _ in $(seq 100); do [ "$(wc -l < "$work/ports")" -ge 9 ] && break; sleep 0.1; done
declare -A port best
while read -r name p; do port[$name]=$p; done < "$work/ports"
for _ in $(seq "$ROUNDS"); do
    for app in express express_noop express_keygate fastify fastify_noop fastify_keygate hono hono_noop hono_keygate; do
        out=$(pin 1 wrk -t1 -c16 -d"${SECS}s" -H "Authorization: Bearer $KEY" "http://127.0.0.1:${port[$app]}/hello")
        echo "$out" | grep -q "Non-2xx" && { echo "FAIL: $app refused requests: $out"; exit 1; }
        rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
        best[$app]=$(node -e "console.log(Math.max(${best[$app]:-0}, $rps))")
    done
done
for fw in express fastify hono; do
    node -e "const p=${best[$fw]}, n=${best[${fw}_noop]}, k=${best[${fw}_keygate]}; console.log(\`node $fw: no auth \${p.toFixed(0)} req/s, keygate \${k.toFixed(0)} req/s: \${(k/p).toFixed(3)}x, +\${(1e6/k-1e6/p).toFixed(1)} us/request (target: keygate costs <= 5 %); a middleware doing nothing \${n.toFixed(0)} req/s (\${(n/p).toFixed(3)}x): keygate \${(k/n).toFixed(3)}x of it, +\${(1e6/k-1e6/n).toFixed(1)} us\`)"
done
