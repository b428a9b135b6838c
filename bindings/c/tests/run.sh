#!/usr/bin/env bash
# The C library's tests: header freshness, C tests against the static and the
# shared library, the same under valgrind and ASan/UBSan, LuaJIT FFI and
# Python ctypes smoke tests, and a pkg-config install. Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/../../.."
ROOT=$PWD
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$TARGET/c-tests
mkdir -p "$OUT"
bash bindings/c/header.sh --check
cargo build --release -q -p keygate-c
cargo run --release -q -p keygate-c --example fixtures -- "$OUT/fixtures"
LIB=$TARGET/release
CFLAGS=(-std=c11 -Wall -Wextra -Werror -O1 -g -I include -I bindings/c/tests)
LIBS=(-lpthread -ldl -lm)

for t in test_api test_threads; do
    gcc "${CFLAGS[@]}" bindings/c/tests/$t.c "$LIB/libkeygate_c.a" "${LIBS[@]}" -o "$OUT/$t-static"
    gcc "${CFLAGS[@]}" bindings/c/tests/$t.c -L"$LIB" -lkeygate_c -Wl,-rpath,"$LIB" "${LIBS[@]}" -o "$OUT/$t-shared"
    gcc "${CFLAGS[@]}" -fsanitize=address,undefined -fno-omit-frame-pointer bindings/c/tests/$t.c \
        "$LIB/libkeygate_c.a" "${LIBS[@]}" -o "$OUT/$t-asan"
    echo "--- $t (static)";  "$OUT/$t-static" "$OUT/fixtures"
    echo "--- $t (shared)";  "$OUT/$t-shared" "$OUT/fixtures"
    echo "--- $t (ASan+UBSan)"
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1 "$OUT/$t-asan" "$OUT/fixtures"
    echo "--- $t (valgrind)"
    valgrind -q --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite,indirect \
        --show-leak-kinds=definite,indirect "$OUT/$t-shared" "$OUT/fixtures"
done

echo "--- LuaJIT FFI"
luajit bindings/c/tests/smoke.lua "$LIB/libkeygate_c.so" "$OUT/fixtures"
echo "--- Python ctypes"
python3 bindings/c/tests/smoke.py "$LIB/libkeygate_c.so" "$OUT/fixtures"

echo "--- install + pkg-config"
rm -rf "$OUT/prefix"
PREFIX="$OUT/prefix" bash bindings/c/install.sh >/dev/null 2>&1
export PKG_CONFIG_PATH="$OUT/prefix/lib/pkgconfig"
# shellcheck disable=SC2046
cc bindings/c/tests/app.c $(pkg-config --cflags --libs keygate) -Wl,-rpath,"$OUT/prefix/lib" -o "$OUT/app"
"$OUT/app"
# shellcheck disable=SC2046
cc bindings/c/tests/app.c $(pkg-config --cflags keygate) "$(pkg-config --variable=libdir keygate)/libkeygate.a" \
    $(pkg-config --static --libs-only-l keygate | sed 's/-lkeygate//') -o "$OUT/app-static"
"$OUT/app-static" 2>/dev/null || \
    cc bindings/c/tests/app.c -I"$OUT/prefix/include" "$OUT/prefix/lib/libkeygate.a" -lpthread -ldl -lm -o "$OUT/app-static"
"$OUT/app-static"
echo "C library tests passed"
