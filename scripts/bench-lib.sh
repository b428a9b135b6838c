# Sourced by the middleware benches (bindings/tower/bench.sh,
# bindings/python/bench/run.sh, bindings/wasm/bench/frameworks.sh): the
# keyset they all serve and the CPU pinning they all use. Needs $ROOT.

# bench_keyset WORK: 10 001 keys (one for the load generator, 10 000 more so
# lookups leave the cache) published to WORK/pub; prints the key wrk sends.
bench_keyset() {
    local kg=("${CARGO_TARGET_DIR:-$ROOT/target}/release/keygate" --store "$1/store" --json)
    "${kg[@]}" init --keyset bench --prefix bench_live >/dev/null
    "${kg[@]}" issue --principal billing --scope invoices:read \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])'
    "${kg[@]}" issue --principal bulk --count 10000 --keys-out "$1/bulk.keys" >/dev/null
    "${kg[@]}" publish --out "$1/pub" >/dev/null
}

# pin CPU COMMAND...: COMMAND on that CPU when there are two or more.
pin() { if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then taskset -c "$1" "${@:2}"; else "${@:2}"; fi; }
