#!/usr/bin/env bash
# Builds the keygate WASM package for Node (pkg/node) and for the web and
# Workers (pkg/web): cargo → wasm-bindgen (pinned, = the crate's wasm-bindgen)
# → wasm-opt from the npm binaryen package (Debian's breaks in node).
set -euo pipefail
cd "$(dirname "$0")"
HERE=$PWD
ROOT=$(cd ../.. && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
want=$(sed -n 's/^wasm-bindgen = "=\(.*\)"/\1/p' Cargo.toml)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')
if [ "$have" != "$want" ]; then
    echo "build.sh: need wasm-bindgen-cli $want (have ${have:-none}): cargo install wasm-bindgen-cli --version $want" >&2
    exit 1
fi
[ -x node_modules/.bin/wasm-opt ] || npm install --no-audit --no-fund --silent
(cd "$ROOT" && cargo build --release -p keygate-wasm --target wasm32-unknown-unknown \
    --config 'profile.release.debug=0')
wasm="$TARGET/wasm32-unknown-unknown/release/keygate_wasm.wasm"
for t in node web; do
    out="$HERE/pkg/$t"
    rm -rf "$out"
    wasm-bindgen --target "$([ $t = node ] && echo nodejs || echo web)" --out-dir "$out" --out-name keygate "$wasm"
    ./node_modules/.bin/wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
        --enable-sign-ext --enable-mutable-globals "$out/keygate_bg.wasm" -o "$out/keygate_bg.wasm"
    # index.js: the package entry, wasm-bindgen's module plus the verify fast
    # path (js/fast.js) installed on its Verifier.
    if [ $t = node ]; then
        { echo '"use strict";'; cat "$HERE/js/fast.js" "$HERE/js/answer.js"
          echo 'const core = require("./keygate.js");'
          echo 'installFastVerify(core);'
          echo 'core.principalOf = principalOf;'
          echo 'core.readCapped = readCapped;'
          echo 'core.__setting = setting; // for keygate/node (not API)'
          echo 'module.exports = core;'; } > "$out/index.js"
        printf '%s\n' 'export * from "./keygate";' \
            'export { principalOf } from "./answer";' \
            'export type { Answer, KeygatePrincipal, Verdict } from "./answer";' \
            '/** A fetch Response body, refused past `max` bytes (a declared Content-Length first). */' \
            'export declare function readCapped(res: Response, max: number): Promise<Uint8Array>;' > "$out/index.d.ts"
        # The Node service adapters: keygate/node (loading and polling),
        # keygate/express, keygate/fastify, keygate/hono.
        for f in node express fastify client; do
            cp "$HERE/js/$f.js" "$HERE/js/$f.d.ts" "$out/"
        done
        { echo '"use strict";'; echo 'const { principalOf } = require("./index.js");'; cat "$HERE/js/hono.js"
          echo 'module.exports = keygateHono;'
          echo 'module.exports.keygate = keygateHono;'
          echo 'module.exports.default = keygateHono;'; } > "$out/hono.js"
        cp "$HERE/js/hono.d.ts" "$HERE/js/types.d.ts" "$HERE/js/answer.d.ts" "$out/"
    else
        { echo 'import * as core from "./keygate.js";'
          echo 'export * from "./keygate.js";'
          echo 'export { default } from "./keygate.js";'; cat "$HERE/js/fast.js" "$HERE/js/answer.js"
          echo 'installFastVerify(core);'
          echo 'export { principalOf, readCapped, setting as __setting };'; } > "$out/index.js"
        printf '%s\n' 'export * from "./keygate";' 'export { default } from "./keygate";' \
            'export { principalOf } from "./answer";' \
            'export type { Answer, KeygatePrincipal, Verdict } from "./answer";' \
            '/** A fetch Response body, refused past `max` bytes (a declared Content-Length first). */' \
            'export declare function readCapped(res: Response, max: number): Promise<Uint8Array>;' > "$out/index.d.ts"
        # Workers and other fetch runtimes: keygate/edge (loading from an
        # origin), keygate/hono (the same middleware as in Node).
        cp "$HERE/js/edge.js" "$HERE/js/edge.d.ts" "$HERE/js/answer.d.ts" "$out/"
        cp "$HERE/js/hono.web.d.ts" "$out/hono.d.ts"
        { echo 'import { principalOf } from "./index.js";'; cat "$HERE/js/hono.js"
          echo 'export { keygateHono as keygate };'
          echo 'export default keygateHono;'; } > "$out/hono.js"
    fi
    cat > "$out/package.json" <<JSON
{
  "name": "keygate",
  "version": "$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)",
  "description": "Embedded API-key verification against signed keygate snapshots (WASM, $t)",
  "license": "Apache-2.0 OR MIT",
  "main": "index.js",
  "types": "index.d.ts",
  $([ $t = web ] && echo '"type": "module",')
  $([ $t = web ] && echo '"exports": { ".": { "types": "./index.d.ts", "default": "./index.js" }, "./edge": { "types": "./edge.d.ts", "default": "./edge.js" }, "./hono": { "types": "./hono.d.ts", "default": "./hono.js" }, "./package.json": "./package.json" },')
  $([ $t = node ] && echo '"exports": { ".": { "types": "./index.d.ts", "default": "./index.js" }, "./node": { "types": "./node.d.ts", "default": "./node.js" }, "./express": { "types": "./express.d.ts", "default": "./express.js" }, "./fastify": { "types": "./fastify.d.ts", "default": "./fastify.js" }, "./hono": { "types": "./hono.d.ts", "default": "./hono.js" }, "./client": { "types": "./client.d.ts", "default": "./client.js" }, "./package.json": "./package.json" },')
  "files": ["index.js", "index.d.ts", "keygate.js", "keygate.d.ts", "keygate_bg.wasm", "keygate_bg.wasm.d.ts", "snippets/", "README.md"$([ $t = web ] && echo ', "edge.js", "edge.d.ts", "hono.js", "hono.d.ts", "answer.d.ts"')$([ $t = node ] && echo ', "node.js", "node.d.ts", "express.js", "express.d.ts", "fastify.js", "fastify.d.ts", "hono.js", "hono.d.ts", "client.js", "client.d.ts", "types.d.ts", "answer.d.ts"')]
}
JSON
    cp README.md "$out/README.md"
    raw=$(stat -c %s "$out/keygate_bg.wasm")
    gz=$(gzip -9 -c "$out/keygate_bg.wasm" | wc -c)
    echo "pkg/$t: keygate_bg.wasm $raw bytes raw, $gz gzip"
done
