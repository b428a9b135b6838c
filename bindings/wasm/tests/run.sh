#!/usr/bin/env bash
# Builds the WASM package, then: node --test against pkg/node, the Worker
# under real workerd (npm), and the Express, Fastify and Hono adapters in
# real servers (Hono also in workerd, bundled with esbuild). Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(cd ../.. && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
bash build.sh
(cd "$ROOT" && cargo build --release -q -p keygate-cli && cargo run --release -q -p keygate-c --example fixtures -- "$TARGET/wasm-tests/fixtures")
(cd "$ROOT" && CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
    cargo test -p keygate-wasm --target wasm32-unknown-unknown --test wasm)
KEYGATE_FIXTURES="$TARGET/wasm-tests/fixtures" node --test tests/node.test.js
KEYGATE_BIN="$TARGET/release/keygate" node --test tests/workerd.test.js
KEYGATE_BIN="$TARGET/release/keygate" node --test tests/frameworks.test.js
KEYGATE_BIN="$TARGET/release/keygate" node --test tests/hono-workerd.test.js
bash tests/types/check.sh
