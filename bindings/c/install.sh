#!/usr/bin/env bash
# Builds and installs libkeygate.{a,so}, include/keygate.h and keygate.pc.
#   PREFIX=/usr/local bash bindings/c/install.sh
# then: cc app.c $(pkg-config --cflags --libs keygate)
set -euo pipefail
cd "$(dirname "$0")/../.."
PREFIX=${PREFIX:-/usr/local}
cargo build --release -p keygate-c
target=${CARGO_TARGET_DIR:-target}/release
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
install -d "$PREFIX/lib" "$PREFIX/include" "$PREFIX/lib/pkgconfig"
install -m 0644 "$target/libkeygate_c.a" "$PREFIX/lib/libkeygate.a"
install -m 0755 "$target/libkeygate_c.so" "$PREFIX/lib/libkeygate.so.$version"
ln -sf "libkeygate.so.$version" "$PREFIX/lib/libkeygate.so"
install -m 0644 include/keygate.h "$PREFIX/include/keygate.h"
sed -e "s|@PREFIX@|$PREFIX|" -e "s|@VERSION@|$version|" bindings/c/keygate.pc.in > "$PREFIX/lib/pkgconfig/keygate.pc"
echo "installed keygate $version into $PREFIX"
