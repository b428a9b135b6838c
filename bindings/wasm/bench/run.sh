#!/usr/bin/env bash
# WASM budgets, measured in one run: .wasm size (raw, gzip) and verify latency
# in Node against the native Rust verify at N = 10 000 and 100 000 keys.
#   bash bindings/wasm/bench/run.sh      (after bindings/wasm/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(cd ../.. && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
(cd "$ROOT" && cargo build --release -q -p keygate-cli -p keygate-wasm --example native_verify)
raw=$(stat -c %s pkg/node/keygate_bg.wasm); gz=$(gzip -9 -c pkg/node/keygate_bg.wasm | wc -c)
echo "wasm size: $raw bytes raw, $gz bytes gzip (budget 200 KB raw)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for n in 10000 100000; do
    store="$work/store-$n"
    "$TARGET/release/keygate" --store "$store" init --keyset bench --prefix bench_live >/dev/null
    "$TARGET/release/keygate" --store "$store" issue --principal bench --scope bench:read --count "$n" \
        --keys-out "$work/keys-$n.txt" >/dev/null
    "$TARGET/release/keygate" --store "$store" publish --out "$work/pub-$n" >/dev/null
    native=$("$TARGET/release/examples/native_verify" "$work/pub-$n" "$work/keys-$n.txt")
    wasm=$(node bench/verify.js "$work/pub-$n" "$work/keys-$n.txt")
    ratio=$(awk -v a="$wasm" -v b="$native" 'BEGIN { printf "%.2f", a / b }')
    echo "verify N=$n: native Rust $native ns, WASM in node $wasm ns, ratio ${ratio}x (budget 3x)"
done
