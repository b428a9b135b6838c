#!/usr/bin/env bash
# Every issuer test again with the store on PostgreSQL (a throw-away
# cluster, scripts/with-postgres.sh): the library's own tests and the CLI
# and API tests that use a store. Tests that cannot apply say SKIPPED.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
KEYGATE_TEST_BACKEND=postgres scripts/with-postgres.sh bash -c '
    cargo test -p keygate-issuer -- --nocapture &&
    cargo test -p keygate-cli --test cli --test issuer_hardening --test api --test api_crash \
        --test serve_hardening -- --nocapture' >"$out" 2>&1 || { cat "$out"; exit 1; }
grep -E '^with-postgres|SKIPPED|test result' "$out"
n=$(grep -Eo 'test result: ok\. [0-9]+ passed' "$out" | awk '{s+=$4} END {print s+0}')
echo "issuer on PostgreSQL: $n tests passed"
