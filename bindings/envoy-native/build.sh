#!/usr/bin/env bash
# Builds the Envoy dynamic module and leaves it at
# bindings/envoy-native/build/libkeygate_envoy.so: point
# ENVOY_DYNAMIC_MODULES_SEARCH_PATH at that folder and load it with
# `dynamic_module_config: {name: keygate_envoy}` (Envoy 1.40).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(cd ../.. && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
(cd "$ROOT" && cargo build --release -q -p keygate-envoy-native)
mkdir -p build
# Debug info stays in target/ (the release profile keeps it for profiling);
# the module Envoy loads is stripped.
strip --strip-debug -o build/libkeygate_envoy.so.tmp "$TARGET/release/libkeygate_envoy_native.so"
mv build/libkeygate_envoy.so.tmp build/libkeygate_envoy.so
echo "built $(pwd)/build/libkeygate_envoy.so"
