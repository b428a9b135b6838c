#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 10): nightly with ASan when a
# nightly toolchain is installed, otherwise stable with --sanitizer none. The
# committed corpus seeds each run; new inputs go to a scratch copy.
#   bash fuzz/run.sh 10          # the test suite's smoke run
#   bash fuzz/run.sh 3600        # a long run (an hour per target)
# A crash leaves its input in fuzz/artifacts/<target>/: add it to tests as a
# regression case and to fuzz/corpus/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-10}
sanitizer=()
if rustup run nightly rustc --version >/dev/null 2>&1; then
    fuzz=(cargo +nightly fuzz); mode="nightly, ASan"
else
    fuzz=(cargo fuzz); sanitizer=(--sanitizer none); mode="stable, no sanitizer (no nightly toolchain installed)"
    echo "fuzz: WARNING: running without ASan: $mode" >&2
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
targets=$(sed -n 's/^name = "\(.*\)"/\1/p' Cargo.toml | grep -v keygate-fuzz)
for t in $targets; do
    mkdir -p "$scratch/$t"
    "${fuzz[@]}" run "${sanitizer[@]}" "$t" "$scratch/$t" "corpus/$t" -- -max_total_time="$secs" \
        -print_final_stats=1 2>&1 | grep -E 'Done|stat::number_of_executed_units|ERROR|panicked' | tail -2 | sed "s/^/fuzz $t: /"
    [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "fuzz $t: FAILED ($mode)"; exit 1; }
done
echo "fuzz: every target ran ${secs}s ($mode)"
