// The verify fast path, installed on the wasm-bindgen `Verifier` by the
// package's index.js (build.sh wraps this file for CommonJS and ES modules).
//
// wasm-bindgen's own `verify(key, options)` pays for generality on every call:
// a malloc'd copy of the key, two imported getter calls for the options, two
// strings decoded back (principal, key id) and a verdict object built through
// another import — ~1.5 µs in Node, several times the verify itself. Here the
// key and scope are encoded straight into a fixed scratch area of WASM memory,
// one call passes plain numbers (`__verifyRaw`), the numeric fields come back
// through a Float64Array over the same area, and a principal name is decoded
// once per verifier (Rust numbers the names). The layout is `mod io` in
// src/lib.rs. Anything the scratch area cannot hold (a key over 512 bytes, a
// scope over 256) or an option of the wrong type goes to the original
// `verify`, which answers or throws exactly as before.
function installFastVerify(core) {
  const OUTCOMES = ["valid", "valid_deprecated", "revoked", "expired", "not_yet_valid", "unknown",
    "malformed", "insufficient_scope", "stale"];
  const KEY_CAP = 512, SCOPE_AT = 512, SCOPE_CAP = 256, OUT_AT = 768, HEX_AT = 848, NAME_AT = 896;
  // (No test hook on the prototype: the tests hold this path against a
  // second, unpatched copy of wasm-bindgen's module.)
  const reference = core.Verifier.prototype.verify;
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  let io = null, keyArea, scopeArea, out, hex;
  // The scope last written to the scratch area (routes reuse a few scopes).
  let lastScope = null, lastScopeLen = -1;

  // (Re)creates the views; WASM memory growth detaches the old ones.
  function views() {
    io = core.__keygateIo();
    keyArea = io.subarray(0, KEY_CAP);
    scopeArea = io.subarray(SCOPE_AT, SCOPE_AT + SCOPE_CAP);
    out = new Float64Array(io.buffer, io.byteOffset + OUT_AT, 10);
    hex = io.subarray(HEX_AT, HEX_AT + 32);
  }

  // The 32 ASCII hex digits of the key id as a string: a TextDecoder call
  // cost ~60 ns per verify, this builtin ~40 (node 20, measured apart).
  function hexString(h) {
    return String.fromCharCode(h[0],h[1],h[2],h[3],h[4],h[5],h[6],h[7],h[8],h[9],h[10],h[11],h[12],h[13],h[14],h[15],h[16],h[17],h[18],h[19],h[20],h[21],h[22],h[23],h[24],h[25],h[26],h[27],h[28],h[29],h[30],h[31]);
  }

  core.Verifier.prototype.verify = function verify(key, options) {
    let scope, now;
    if (options !== undefined && options !== null) {
      scope = options.scope;
      now = options.now;
    }
    const scopeOk = scope === undefined || scope === null || (typeof scope === "string" && scope.length <= SCOPE_CAP);
    const nowOk = now === undefined || now === null || (typeof now === "number" && now >= 0 && now <= 1e15);
    // (wasm-bindgen's glue does not check types: a number would trap in WASM.)
    if (typeof key !== "string") throw new TypeError("key must be a string");
    if (key.length > KEY_CAP || !scopeOk || !nowOk) {
      return reference.call(this, key, options);
    }
    if (io === null || io.byteLength === 0) views();
    const k = encoder.encodeInto(key, keyArea);
    if (k.read !== key.length) return reference.call(this, key, options);
    let scopeLen = -1;
    if (typeof scope === "string") {
      if (scope !== lastScope) {
        const s = encoder.encodeInto(scope, scopeArea);
        if (s.read !== scope.length) {
          lastScope = null; // the area now holds part of this scope
          return reference.call(this, key, options);
        }
        lastScope = scope;
        lastScopeLen = s.written;
      }
      scopeLen = lastScopeLen;
    }
    const r = this.__verifyRaw(k.written, scopeLen, typeof now === "number" ? now : -1);
    if (io.byteLength === 0) views(); // the call may have grown memory
    let names = this.__names;
    if (names === undefined || names.epoch !== out[9]) {
      names = this.__names = [""];
      names.epoch = out[9];
    }
    const id = out[7];
    if (out[8] >= 0) names[id] = decoder.decode(io.subarray(NAME_AT, NAME_AT + out[8]));
    return {
      outcome: OUTCOMES[r & 0xff],
      principal: names[id],
      keyId: r & 0x100 ? hexString(hex) : null,
      expiresAt: out[1] < 0 ? null : out[1],
      deprecatedAt: out[2] < 0 ? null : out[2],
      sunsetAt: out[3] < 0 ? null : out[3],
      snapshotVersion: out[4],
      revocationSeq: out[5],
      stale: out[6] === 1,
    };
  };
}
