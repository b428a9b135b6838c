#!/usr/bin/env bash
# Builds the nginx module and runs it in real nginx (127.0.0.1 only).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(cd ../.. && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
bash build.sh
(cd "$ROOT" && cargo build --release -q -p keygate-cli)
python3 tests/test_nginx.py "$TARGET/release/keygate" "$PWD/build/ngx_http_keygate_module.so"
