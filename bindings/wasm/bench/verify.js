// Verify latency of the WASM package in Node: the loop of
// examples/native_verify.rs, over the same artifacts and keys.
//   node bench/verify.js DIR KEYS_FILE          → ns per verify through the package (best of 5)
//   node bench/verify.js DIR KEYS_FILE --core M → ns per verify inside WASM, no JS around it:
//     M is a build with the bench-floors feature, whose benchCoreVerify runs the loop in Rust
//   node bench/verify.js DIR KEYS_FILE --peer   → ns per lookup of the peer a Node user writes
//     by hand: crypto.createHash("sha256") of the key, hex, in a Map, then the scope checked
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const [dir, keysFile, flag, core] = process.argv.slice(2);
const crypto = require("node:crypto");
const { Verifier } = require(flag === "--core" ? path.resolve(core) : "../pkg/node");
const keys = fs.readFileSync(keysFile, "utf8").trim().split("\n");
const read = (n) => new Uint8Array(fs.readFileSync(path.join(dir, n)));
const v = new Verifier(read("trust.kgt"));
v.loadSnapshot(read("snapshot.kgs"));
const n = keys.length;
const iters = 400000;
const opts = { scope: "bench:read", now: Math.floor(Date.now() / 1000) };
const sha = (k) => crypto.createHash("sha256").update(k).digest("hex");
const peer = flag === "--peer" ? new Map(keys.map((k) => [sha(k), { principal: "bench", scopes: ["bench:read"] }])) : null;
let best = Infinity;
for (let round = 0; round < 5; round++) {
  if (peer) {
    const t = process.hrtime.bigint();
    let j = 0;
    let ok = 0;
    for (let i = 0; i < iters; i++) {
      const r = peer.get(sha(keys[j]));
      if (r !== undefined && r.scopes.includes(opts.scope)) ok++;
      j = (j + 7919) % n;
    }
    if (ok !== iters) throw new Error(`peer: only ${ok} of ${iters} found`);
    best = Math.min(best, Number(process.hrtime.bigint() - t) / iters);
    continue;
  }
  if (flag === "--core") {
    const ns = v.benchCoreVerify(keys.join("\n"), opts.scope, opts.now, iters);
    if (!(ns > 0)) throw new Error("core verify loop: not every key was valid");
    best = Math.min(best, ns);
    continue;
  }
  const t = process.hrtime.bigint();
  let j = 0;
  let ok = 0;
  for (let i = 0; i < iters; i++) {
    if (v.verify(keys[j], opts).outcome === "valid") ok++;
    j = (j + 7919) % n;
  }
  if (ok !== iters) throw new Error(`only ${ok} of ${iters} valid`);
  best = Math.min(best, Number(process.hrtime.bigint() - t) / iters);
}
console.log(best.toFixed(1));
