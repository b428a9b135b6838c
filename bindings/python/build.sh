#!/usr/bin/env bash
# Builds the abi3 wheel (maturin, from the repository's venv) into
# bindings/python/dist/ and installs it into that venv.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(cd ../.. && pwd)
VENV=${VENV:-$ROOT/.venv}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
rm -rf dist
"$VENV/bin/maturin" build --release --quiet --interpreter "$VENV/bin/python" --out dist
"$VENV/bin/pip" install --quiet --force-reinstall --no-deps dist/keygate-*.whl
ls dist/
