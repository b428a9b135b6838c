#!/usr/bin/env bash
# Builds the wheel (maturin) into the repository's venv and runs the Python
# package in real uvicorn servers (FastAPI, Starlette), 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(cd ../.. && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
bash build.sh >/dev/null
(cd "$ROOT" && cargo build --release -q -p keygate-cli)
"$ROOT/.venv/bin/python" tests/test_python.py "$TARGET/release/keygate"
