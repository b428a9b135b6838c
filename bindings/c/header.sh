#!/usr/bin/env bash
# Regenerates include/keygate.h with the pinned cbindgen; `--check` fails if
# the committed header differs from what the source generates.
set -euo pipefail
cd "$(dirname "$0")"
want="0.27.0"
have=$(cbindgen --version 2>/dev/null | awk '{print $2}')
if [ "$have" != "$want" ]; then
    echo "header.sh: need cbindgen $want (have ${have:-none}): cargo install cbindgen --version $want --locked" >&2
    exit 1
fi
out=../../include/keygate.h
if [ "${1:-}" = "--check" ]; then
    tmp=$(mktemp)
    cbindgen --quiet --config cbindgen.toml --crate keygate-c --output "$tmp" .
    if ! diff -u "$out" "$tmp"; then
        echo "include/keygate.h is stale: run bindings/c/header.sh and commit it" >&2
        rm -f "$tmp"
        exit 1
    fi
    rm -f "$tmp"
    echo "include/keygate.h is up to date"
else
    cbindgen --quiet --config cbindgen.toml --crate keygate-c --output "$out" .
    echo "wrote include/keygate.h"
fi
