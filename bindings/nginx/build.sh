#!/usr/bin/env bash
# Builds ngx_http_keygate_module.so against the installed nginx (Debian's
# nginx-dev sources and its configure flags, --with-compat), linking
# libkeygate_c.a. Output: bindings/nginx/build/ngx_http_keygate_module.so
set -euo pipefail
cd "$(dirname "$0")"
HERE=$PWD
ROOT=$(cd ../.. && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
[ -d /usr/share/nginx/src ] || { echo "build.sh: needs nginx-dev (apt install nginx nginx-dev libpcre2-dev)" >&2; exit 1; }
(cd "$ROOT" && cargo build --release -q -p keygate-c)
export KEYGATE_LIB_DIR="$TARGET/release"
work="$HERE/build/nginx-src"
rm -rf "$work"
mkdir -p "$work"
cp -r /usr/share/nginx/src/. "$work/"
# shellcheck disable=SC1091
source "$work/conf_flags"
cd "$work"
# Only the flags that shape the module ABI; --with-compat makes the .so load
# into the distribution's binary.
./configure --with-compat "${NGX_CONF_FLAGS[@]}" --add-dynamic-module="$HERE" >/dev/null
make -s -f objs/Makefile modules >/dev/null
cp objs/ngx_http_keygate_module.so "$HERE/build/"
echo "built $HERE/build/ngx_http_keygate_module.so"
