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
// once per verifier (Rust numbers the names); the current time is read here
// (a call out of WASM for it cost ~20 ns). The layout is `mod io` in
// src/lib.rs. Anything the scratch area cannot hold (a key over 512 bytes, a
// scope over 256) or an option of the wrong type goes to the original
// `verify`, which answers or throws exactly as before.
function installFastVerify(core) {
  const OUTCOMES = ["valid", "valid_deprecated", "revoked", "expired", "not_yet_valid", "unknown",
    "malformed", "insufficient_scope", "stale"];
  const KEY_CAP = 512, SCOPE_AT = 512, SCOPE_CAP = 256, OUT_AT = 768, HEX_AT = 848, NAME_AT = 896;
  const HDR_AT = 1024, HDR_CAP = 4096, HDR_MAX = 16, CHECK_OUT_AT = 5120, TEXT_AT = 5168, VALUE_AT = 6192, SCOPES_AT = 6576;
  // (No test hook on the prototype: the tests hold this path against a
  // second, unpatched copy of wasm-bindgen's module.)
  const reference = core.Verifier.prototype.verify;
  const referenceCheck = core.Verifier.prototype.check;
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  let io = null, keyArea, scopeArea, out, hex, hdrArea, checkOut;
  // The scope last written to the scratch area (routes reuse a few scopes).
  let lastScope = null, lastScopeLen = -1;

  // (Re)creates the views; WASM memory growth detaches the old ones.
  function views() {
    io = core.__keygateIo();
    keyArea = io.subarray(0, KEY_CAP);
    scopeArea = io.subarray(SCOPE_AT, SCOPE_AT + SCOPE_CAP);
    out = new Float64Array(io.buffer, io.byteOffset + OUT_AT, 10);
    hex = io.subarray(HEX_AT, HEX_AT + 32);
    hdrArea = io.subarray(HDR_AT, HDR_AT + HDR_CAP);
    checkOut = new Float64Array(io.buffer, io.byteOffset + CHECK_OUT_AT, 6);
  }

  // The principal the last raw call numbered (out[7..9]; see verify_raw).
  function principalName(verifier) {
    let names = verifier.__names;
    if (names === undefined || names.epoch !== out[9]) {
      names = verifier.__names = [""];
      names.epoch = out[9];
    }
    const id = out[7];
    if (out[8] >= 0) names[id] = decoder.decode(io.subarray(NAME_AT, NAME_AT + out[8]));
    return names[id];
  }

  // The scope into the scratch area (unless it is there already); its byte
  // length, -1 for none, or null when it does not fit.
  function putScope(scope) {
    if (typeof scope !== "string") return -1;
    if (scope !== lastScope) {
      const s = encoder.encodeInto(scope, scopeArea);
      if (s.read !== scope.length) {
        lastScope = null; // the area now holds part of this scope
        return null;
      }
      lastScope = scope;
      lastScopeLen = s.written;
    }
    return lastScopeLen;
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
    const scopeLen = putScope(scope);
    if (scopeLen === null) return reference.call(this, key, options);
    const r = this.__verifyRaw(k.written, scopeLen, typeof now === "number" ? now : Date.now() / 1000);
    if (io.byteLength === 0) views(); // the call may have grown memory
    return {
      outcome: OUTCOMES[r & 0xff],
      principal: principalName(this),
      keyId: r & 0x100 ? hexString(hex) : null,
      expiresAt: out[1] < 0 ? null : out[1],
      deprecatedAt: out[2] < 0 ? null : out[2],
      sunsetAt: out[3] < 0 ? null : out[3],
      snapshotVersion: out[4],
      revocationSeq: out[5],
      stale: out[6] === 1,
    };
  };

  // check(headers, options) the same way: the request's [name, value] pairs
  // length-prefixed into the scratch area, the gateway settings checked
  // once per distinct (realm, principalHeader, retryAfter) in a
  // __CheckPolicy, and the answer's texts (body, challenge) decoded once
  // per policy and answer kind — only a deprecated key's dates are read
  // every time. Anything unusual (a value of the wrong type, more than 16
  // pairs, more than 4 KiB of them) goes to the original check, which
  // answers or throws exactly as before.
  let policy = null, policyRealm, policyHeader, policyRetry, texts, known = 0;

  // Writes `s` at `at` in the header area after its u16 length; the end, or
  // -1 when it does not fit.
  function putField(s, at) {
    const n = s.length;
    if (at + 2 + n > HDR_CAP) return -1;
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      hdrArea[at + 2 + i] = c;
    }
    let len = n;
    if (i < n) {
      const w = encoder.encodeInto(s, hdrArea.subarray(at + 2));
      if (w.read !== n) return -1;
      len = w.written;
    }
    if (len > 0xffff) return -1;
    hdrArea[at] = len & 0xff;
    hdrArea[at + 1] = len >> 8;
    return at + 2 + len;
  }

  function setPolicy(realm, principalHeader, retryAfter) {
    const p = new core.__CheckPolicy({ realm, principalHeader, retryAfter });
    if (policy !== null) policy.free();
    policy = p;
    policyRealm = realm;
    policyHeader = principalHeader;
    policyRetry = retryAfter;
    texts = { header: p.principalHeader };
    known = 0;
  }

  core.Verifier.prototype.check = function check(headers, options) {
    let scope, now, realm, principalHeader, retryAfter;
    if (options !== undefined && options !== null) {
      scope = options.scope;
      now = options.now;
      realm = options.realm;
      principalHeader = options.principalHeader;
      retryAfter = options.retryAfter;
    }
    const nowOk = now === undefined || now === null || (typeof now === "number" && now >= 0 && now <= 1e15);
    if (!Array.isArray(headers) || headers.length > HDR_MAX || !nowOk) return referenceCheck.call(this, headers, options);
    if (policy === null || realm !== policyRealm || principalHeader !== policyHeader || retryAfter !== policyRetry) {
      try {
        setPolicy(realm, principalHeader, retryAfter);
      } catch (e) {
        return referenceCheck.call(this, headers, options);
      }
    }
    if (io === null || io.byteLength === 0) views();
    let at = 0;
    for (let i = 0; i < headers.length; i++) {
      const h = headers[i];
      if (!Array.isArray(h) || typeof h[0] !== "string" || typeof h[1] !== "string") return referenceCheck.call(this, headers, options);
      at = putField(h[0], at);
      if (at >= 0) at = putField(h[1], at);
      if (at < 0) return referenceCheck.call(this, headers, options);
    }
    const scopeOk = scope === undefined || scope === null || (typeof scope === "string" && scope.length <= SCOPE_CAP);
    const scopeLen = scopeOk ? putScope(scope) : null;
    if (scopeLen === null) return referenceCheck.call(this, headers, options);
    const r = this.__checkRaw(policy, at, scopeLen, typeof now === "number" ? now : Date.now() / 1000, known) >>> 0;
    if (r === 0xffffffff) return referenceCheck.call(this, headers, options);
    if (io.byteLength === 0) views();
    const status = r >>> 16, forward = status === 200, textId = (r >> 10) & 15;
    let text = texts[textId];
    if (checkOut[1] >= 0) {
      const parts = decoder.decode(io.subarray(TEXT_AT, TEXT_AT + checkOut[1])).split("\0");
      const responseHeaders = [];
      for (let i = 1; i + 1 < parts.length - 1; i += 2) responseHeaders.push([parts[i], parts[i + 1]]);
      text = { body: parts[0], responseHeaders };
      if (textId !== 0) {
        texts[textId] = text;
        known |= 1 << textId;
      }
    }
    let principal = null, principalValue = null, scopes = null;
    if (forward) {
      principal = principalName(this);
      principalValue = checkOut[2] < 0 ? principal : decoder.decode(io.subarray(VALUE_AT, VALUE_AT + checkOut[2]));
      // The key's scope names, numbered per verifier as the principals are.
      let sets = this.__scopeSets;
      if (sets === undefined || sets.epoch !== checkOut[5]) {
        sets = this.__scopeSets = [];
        sets.epoch = checkOut[5];
      }
      if (checkOut[4] >= 0) {
        const list = decoder.decode(io.subarray(SCOPES_AT, SCOPES_AT + checkOut[4])).split("\0");
        list.pop();
        sets[checkOut[3]] = list;
      }
      scopes = sets[checkOut[3]].slice();
    }
    const strip = [];
    for (let mask = checkOut[0], i = 0; mask !== 0; i++, mask >>>= 1) {
      if (mask & 1) strip.push(headers[i][0].toLowerCase());
    }
    const responseHeaders = [];
    for (const [n, v] of text.responseHeaders) responseHeaders.push([n, v]);
    return {
      status,
      forward,
      body: text.body,
      outcome: (r & 0xff) === 0xff ? null : OUTCOMES[r & 0xff],
      principal,
      principalValue,
      principalHeader: texts.header,
      scopes,
      keyId: r & 0x100 ? hexString(hex) : null,
      responseHeaders,
      strip,
    };
  };
}
