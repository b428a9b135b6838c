#!/usr/bin/env bash
# Builds the nginx module and runs the same HTTP matrix in real nginx
# (127.0.0.1 only) three ways: the native module, the Lua module
# (resty.keygate over libkeygate via LuaJIT FFI), and auth_request → keygate serve.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(cd ../.. && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
bash build.sh
(cd "$ROOT" && cargo build --release -q -p keygate-cli -p keygate-c)
python3 tests/test_nginx.py "$TARGET/release/keygate" "$PWD/build/ngx_http_keygate_module.so" native
python3 tests/test_nginx.py "$TARGET/release/keygate" "$TARGET/release/libkeygate_c.so" lua
python3 tests/test_nginx.py "$TARGET/release/keygate" none authreq
