#!/usr/bin/env bash
# The full keygate test suite: installs what it needs, then runs every check.
# Usage: bash scripts/test-all.sh        (CI runs it through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LOG="$ROOT/target/test-all.log"
mkdir -p target
: > "$LOG"

source scripts/setup.sh

STEPS=()
step() {
    local name=$1; shift
    local t0=$SECONDS
    echo "==> $name"
    "$@" 2>&1 | tee -a "$LOG"
    STEPS+=("$(printf '%-34s %4ds' "$name" $((SECONDS - t0)))")
}

export CARGO_TERM_COLOR=never
step "rustfmt check"                 cargo fmt --all --check
step "clippy (all features)"         cargo clippy --workspace --all-targets --all-features -- -D warnings
step "clippy (no default features)"  cargo clippy -p keygate --no-default-features -- -D warnings
step "clippy (Python extension)"     bash -c 'export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}; cd bindings/python && cargo clippy -q -- -D warnings && cargo fmt -- --check'
step "tests (default features)"      cargo test --workspace
step "issuer tests again on PostgreSQL" bash scripts/test-postgres.sh
# Needs a cluster (it says SKIPPED in the steps above, which have none).
step "two API instances on one PostgreSQL, 10 000 issues, one killed -9" \
                                     scripts/with-postgres.sh cargo test -p keygate-cli --test api_multi -- --nocapture
step "tests (no default features)"   cargo test -p keygate --no-default-features
step "tests (all features)"          cargo test --workspace --all-features
step "concurrency: 4 threads, 10^7 verifies, 1000 installs (release)" \
                                     cargo test --release -p keygate --test concurrency
step "hostile clients vs keygate serve (oversized, never-finished, 1000 idle, header floods, EMFILE; good client p99 <= 50 ms)" \
                                     cargo test --release -p keygate-cli --test serve_hardening -- --nocapture
step "constant time: dudect, 10^6 measurements per pair (|t| < 4.5)" \
                                     cargo run --release -q --example constant_time
step "Miri: the core's parsers and lookups (nightly)" bash scripts/miri.sh
step "build wasm32-unknown-unknown"  cargo build -p keygate --target wasm32-unknown-unknown
step "build no_std, no allocator"    cargo build -p keygate --no-default-features --target wasm32-unknown-unknown
step "docs (warnings are errors)"    env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features
step "benches compile"               cargo bench --workspace --no-run
step "C library (header, C tests, valgrind, ASan/UBSan, LuaJIT, Python, pkg-config)" \
                                     bash bindings/c/tests/run.sh
step "nginx module in real nginx (outcomes, revocation, reload under traffic)" \
                                     bash bindings/nginx/tests/run.sh
step "Envoy: proxy-wasm filter and native dynamic module in real Envoy 1.40" bash bindings/envoy/tests/run.sh
step "Python package (PyO3 wheel) in real uvicorn servers" bash bindings/python/tests/run.sh
step "WASM (build, node --test, wasm32 tests, Worker in workerd)" \
                                     bash bindings/wasm/tests/run.sh
step "docs: every block of clients.md and integrations/ in real gateways" \
                                     scripts/with-postgres.sh bash docs/tests/run.sh
step "formats: an independent reader (Python, from docs/format.md) agrees with every vector verdict" \
                                     bash tests/vectors/run_independent_reader.sh
step "fuzz smoke (every target 10 s)" bash fuzz/run.sh 10
step "README main command (demo)"    cargo run --release -q -p keygate-cli -- demo

echo
echo "== summary"
printf '  %s\n' "${STEPS[@]}"
# Each suite reports its count in its own words; a suite that counted nothing
# did not run, and the whole run fails.
count() { # what field pattern -> the sum of that field over matching lines
    grep -Eo "$2" "$LOG" | awk -v f="$1" '{s+=$f} END {print s+0}'
}
require_ran() { # label count
    echo "  $1: $2"
    if [ "$2" -eq 0 ]; then
        echo "FAIL: no $1 ran" >&2
        exit 1
    fi
}
require_ran "Envoy filter checks (proxy-wasm and native)" "$(count 3 'envoy filters?: [0-9]+ checks passed')"
require_ran "Python package checks" "$(count 3 'python package: [0-9]+ checks passed')"
require_ran "Envoy native module: bad configurations refused at load" "$(count 3 'envoy native: [0-9]+ bad filter_configs refused')"
require_ran "nginx module checks" "$(count 3 'nginx module: [0-9]+ checks passed')"
require_ran "docs checks" "$(count 7 'docs: [0-9]+ blocks on [0-9]+ pages, [0-9]+ checks passed')"
require_ran "C API checks" "$(count 2 'test_api: [0-9]+ checks passed')"
require_ran "gateway contract vectors through real gateways" "$(count 1 '[0-9]+ vectors passed')"
require_ran "issuer tests on PostgreSQL" "$(count 4 'issuer on PostgreSQL: [0-9]+ tests passed')"
require_ran "two API instances on PostgreSQL, one killed" "$(grep -c 'api multi-instance test: 2 instances, 1 kill -9' "$LOG" || true)"
require_ran "vector verdicts the independent reader agrees with" "$(count 3 'independent reader: [0-9]+ verdicts agree')"
require_ran "JS tests (node, workerd)" "$(count 3 '^# pass [0-9]+')"
echo "  Rust tests failed: $(count 1 '[0-9]+ failed')"
require_ran "Rust tests" "$(count 4 'test result: ok\. [0-9]+ passed')"
echo "all checks passed"
