#!/usr/bin/env bash
# Issue 18, same run: at N keys (default 1 000 000), publishing one added
# key, one rotation and 1 000 added keys as the update, next to a full
# snapshot — bytes written and time taken, each a one-shot `keygate publish`
# (a fresh process: it reads and checks the store once; the API's long-lived
# publisher does that once per connection — see `keygate drill --scenario
# new-keys` for its per-update figures).
#   cargo build --release -p keygate-cli && bash cli/bench/update_bench.sh [N]
set -euo pipefail
N=${1:-1000000}
BIN=${KEYGATE_BIN:-$(dirname "$0")/../../target/release/keygate}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
kg() { "$BIN" --store "$work/store" --json "$@"; }
ms() { python3 -c "import time; print(int(time.time() * 1000))"; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d['$1'])"; }
kg init --keyset bench --prefix bench_live >/dev/null
kg issue --principal bulk --count "$N" --keys-out "$work/bulk.keys" >/dev/null
kg issue --principal rotating >/dev/null
t=$(ms); r=$(kg publish --out "$work/pub" --full); t=$(( $(ms) - t ))
echo "full snapshot, $N keys: $(echo "$r" | field snapshot_bytes) bytes, $t ms"
step() { # what, then the command that changes the store
    local what=$1; shift
    "$@" >/dev/null
    local t r; t=$(ms); r=$(kg publish --out "$work/pub"); t=$(( $(ms) - t ))
    echo "$what: the update $(echo "$r" | field revocations_bytes) bytes ($(echo "$r" | field records_in_update) records, snapshot bytes written: $(echo "$r" | field snapshot_bytes)), $t ms"
}
step "one added key" kg issue --principal added-1
step "one rotation" kg rotate --principal rotating
step "1 000 added keys" kg issue --principal added-many --count 1000 --keys-out "$work/many.keys"
