#!/usr/bin/env bash
# Runs every fenced block of docs/clients.md and docs/integrations/*.md in the
# real thing (nginx, the Lua module, Envoy, Caddy, curl, Python, node, cc);
# see test_docs.py. 127.0.0.1 only. The runbooks: cargo test -p keygate-cli --test runbooks.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
# nginx, Caddy, Envoy (venv), requests, node: installed by setup.sh when missing.
[ -n "${KEYGATE_SETUP_DONE:-}" ] || source scripts/setup.sh
cargo build --release -q -p keygate-cli
python3 docs/tests/test_docs.py "$TARGET/release/keygate" "$ROOT/.venv/bin/python" "$ROOT/.venv/bin/envoy"
