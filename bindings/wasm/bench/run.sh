#!/usr/bin/env bash
# WASM budgets, measured in one run: .wasm size (raw, gzip); verify latency in
# Node against the native Rust verify at N = 10 000 and 100 000 keys; and the
# floors inside WASM (one SHA-256 block, one random memory load) from a build
# with the `bench-floors` feature, so the ratios say what is overhead.
#   bash bindings/wasm/bench/run.sh      (after bindings/wasm/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(cd ../.. && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
(cd "$ROOT" && cargo build --release -q -p keygate-cli --bin keygate && cargo build --release -q -p keygate-wasm --example native_verify)
(cd "$ROOT" && cargo build --release -q -p keygate-wasm --features bench-floors --target wasm32-unknown-unknown \
    --target-dir "$TARGET/wasm-bench" --config 'profile.release.debug=0')
floors="$TARGET/wasm-bench/pkg"
wasm-bindgen --target nodejs --out-dir "$floors" --out-name keygate \
    "$TARGET/wasm-bench/wasm32-unknown-unknown/release/keygate_wasm.wasm"
./node_modules/.bin/wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals "$floors/keygate_bg.wasm" -o "$floors/keygate_bg.wasm"
raw=$(stat -c %s pkg/node/keygate_bg.wasm); gz=$(gzip -9 -c pkg/node/keygate_bg.wasm | wc -c)
echo "wasm size: $raw bytes raw, $gz bytes gzip (budget 200 KB raw)"
read -r sha load < <(node -e '
const f = require(process.argv[1]);
let s = Infinity, l = Infinity;
for (let r = 0; r < 5; r++) { s = Math.min(s, f.floorSha256(1000000)); l = Math.min(l, f.floorRandomLoad(2000000)); }
console.log(s.toFixed(1), l.toFixed(1));' "$floors/keygate.js")
echo "floors inside WASM (node): one SHA-256 block $sha ns, one random load from 64 MiB $load ns"
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
    # The same verify inside WASM with no JS around it (the bench-floors
    # build's loop over the same keys): what the glue costs is the difference.
    core=$(node bench/verify.js "$work/pub-$n" "$work/keys-$n.txt" --core "$floors/keygate.js")
    peer=$(node bench/verify.js "$work/pub-$n" "$work/keys-$n.txt" --peer)
    awk -v n="$n" -v a="$wasm" -v b="$native" -v s="$sha" -v c="$core" -v p="$peer" 'BEGIN {
        printf "verify N=%d: native Rust %s ns, WASM in node %s ns: %.2fx native (budget 3x), %.2fx the WASM SHA-256 floor\n",
            n, b, a, a / b, a / s
        printf "  of which the verify inside WASM (no JS glue) %s ns = %.2fx native; JS glue and call %.0f ns\n",
            c, c / b, a - c
        printf "  the peer a Node user writes (crypto.createHash sha256 hex + Map) %s ns: keygate %.2fx the peer\n", p, a / p }'
done
