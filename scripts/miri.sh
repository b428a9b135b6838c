#!/usr/bin/env bash
# Runs the core's parsers and lookups under Miri (nightly). Signature checks
# (ring's C and assembly) and the proptests cannot run under Miri: see
# docs/security.md. Without a nightly toolchain this says so loudly and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! rustup run nightly cargo miri --version >/dev/null 2>&1; then
    echo "MIRI SKIPPED: no nightly toolchain with the miri component on this machine" >&2
    exit 0
fi
MIRIFLAGS=-Zmiri-strict-provenance cargo +nightly miri test -p keygate --no-default-features --lib -- \
    --skip prop_ --skip no_alloc_tests::views_answer
