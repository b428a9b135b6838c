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
step "tests (default features)"      cargo test --workspace
step "tests (no default features)"   cargo test -p keygate --no-default-features
step "tests (all features)"          cargo test --workspace --all-features
step "concurrency: 4 threads, 10^7 verifies, 1000 installs (release)" \
                                     cargo test --release -p keygate --test concurrency
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
step "Envoy proxy-wasm filter in real Envoy 1.40" bash bindings/envoy/tests/run.sh
step "WASM (build, node --test, wasm32 tests, Worker in workerd)" \
                                     bash bindings/wasm/tests/run.sh
step "docs: every block of clients.md and integrations/ in real gateways" bash docs/tests/run.sh
step "fuzz smoke (every target 10 s)" bash fuzz/run.sh 10
step "README main command (demo)"    cargo run --release -q -p keygate-cli -- demo

echo
echo "== summary"
printf '  %s\n' "${STEPS[@]}"
passed=$(grep -Eo 'test result: ok\. [0-9]+ passed' "$LOG" | awk '{s+=$4} END {print s+0}')
c_checks=$(grep -Eo 'test_api: [0-9]+ checks passed' "$LOG" | awk '{s+=$2} END {print s+0}')
nginx_checks=$(grep -Eo 'nginx module: [0-9]+ checks passed' "$LOG" | awk '{s+=$3} END {print s+0}')
envoy_checks=$(grep -Eo 'envoy filter: [0-9]+ checks passed' "$LOG" | awk '{s+=$3} END {print s+0}')
echo "  Envoy filter checks passed: $envoy_checks"
if [ "$envoy_checks" -eq 0 ]; then
    echo "FAIL: the Envoy tests did not run" >&2
    exit 1
fi
echo "  nginx module checks passed: $nginx_checks"
if [ "$nginx_checks" -eq 0 ]; then
    echo "FAIL: the nginx tests did not run" >&2
    exit 1
fi
docs_checks=$(grep -Eo 'docs: [0-9]+ blocks on [0-9]+ pages, [0-9]+ checks passed' "$LOG" | awk '{s+=$7} END {print s+0}')
echo "  docs checks passed: $docs_checks"
if [ "$docs_checks" -eq 0 ]; then
    echo "FAIL: the docs tests did not run" >&2
    exit 1
fi
echo "  C API checks passed: $c_checks"
js_pass=$(grep -Eo '^# pass [0-9]+' "$LOG" | awk '{s+=$3} END {print s+0}')
echo "  JS tests passed (node, workerd): $js_pass"
if [ "$js_pass" -eq 0 ]; then
    echo "FAIL: the JS tests did not run" >&2
    exit 1
fi
if [ "$c_checks" -eq 0 ]; then
    echo "FAIL: the C tests did not run" >&2
    exit 1
fi
failed=$(grep -Eo '[0-9]+ failed' "$LOG" | awk '{s+=$1} END {print s+0}')
echo "  tests passed: $passed, failed: $failed"
if [ "$passed" -eq 0 ]; then
    echo "FAIL: no test was executed" >&2
    exit 1
fi
echo "all checks passed"
