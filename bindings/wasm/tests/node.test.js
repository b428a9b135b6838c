// The keygate WASM package under Node: every outcome, refused artifacts keep
// state, and the same verdicts as the Rust verifier on the committed vectors.
// Run by tests/run.sh: KEYGATE_FIXTURES=dir node --test tests/node.test.js
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { Verifier, Reload, notLoaded, version } = require("../pkg/node");
// A second copy of wasm-bindgen's module, with its own WASM instance and its
// own, unpatched `verify`: the reference the fast path is held against.
const gluePath = require.resolve("../pkg/node/keygate.js");
delete require.cache[gluePath];
const Reference = require(gluePath);
delete require.cache[gluePath];

const fixtures = process.env.KEYGATE_FIXTURES;
const vectors = path.join(__dirname, "../../../tests/vectors");
const read = (dir, name) => new Uint8Array(fs.readFileSync(path.join(dir, name)));
const keys = Object.fromEntries(
  fs.readFileSync(path.join(fixtures, "keys.txt"), "utf8").trim().split("\n").map((l) => l.split(" ")),
);
const NOW = Number(keys.now);

function loaded() {
  const v = new Verifier(read(fixtures, "trust.kgt"));
  assert.deepEqual(v.loadSnapshot(read(fixtures, "snapshot-1.kgs")), { changed: true, from: 0, to: 1 });
  return v;
}

test("version", () => assert.match(version(), /^keygate \d/));

test("every outcome", () => {
  const v = loaded();
  const at = (k, scope, now = NOW) => v.verify(keys[k], { scope, now });
  const r = at("valid", "invoices:write");
  assert.equal(r.outcome, "valid");
  assert.equal(r.principal, "billing-service");
  assert.match(r.keyId, /^[0-9a-f]{32}$/);
  assert.equal(r.snapshotVersion, 1);
  assert.equal(r.revocationSeq, 0);
  assert.equal(r.expiresAt, null);
  assert.equal(r.stale, false);
  const d = at("deprecated", "invoices:read");
  assert.equal(d.outcome, "valid_deprecated");
  assert.equal(d.deprecatedAt, NOW - 3600);
  assert.equal(d.sunsetAt, NOW + 7 * 86400);
  assert.equal(at("revoked").outcome, "revoked");
  assert.equal(at("expired").outcome, "expired");
  assert.equal(at("not_yet_valid").outcome, "not_yet_valid");
  assert.equal(at("unknown").outcome, "unknown");
  assert.equal(at("valid", "nope").outcome, "insufficient_scope");
  assert.equal(v.verify("acme_live_typo", { now: NOW }).outcome, "malformed");
  assert.equal(v.verify("", { now: NOW }).keyId, null);
  const stale = at("valid", undefined, NOW + 86400 + 10);
  assert.equal(stale.outcome, "valid");
  assert.equal(stale.stale, true);
  assert.equal(at("valid", undefined, NOW + 3 * 86400).outcome, "stale");
  // Options are optional: the current time is long past this fixture.
  assert.equal(v.verify(keys.valid).outcome, "stale");
  assert.throws(() => v.verify(keys.valid, { scope: 7 }), /scope must be a string/);
  // The revocation update revokes one more key, reporting its sequence.
  assert.equal(at("revoked_by_update").outcome, "valid");
  v.loadRevocations(read(fixtures, "revocations-1.kgr"));
  const rv = at("revoked_by_update");
  assert.equal(rv.outcome, "revoked");
  assert.equal(rv.revocationSeq, 1);
  const s = v.stats();
  assert.equal(s.outcomes.valid_deprecated, 1);
  assert.equal(s.deprecated.length, 1);
  assert.equal(s.deprecated[0].principal, "billing-service");
  assert.match(v.statsPrometheus(), /keygate_verify_total\{outcome="revoked"\} 2/);
});

test("an update that carries records: an added key verifies, a changed one is deprecated", () => {
  const v = loaded();
  const at = (k, scope) => v.verify(keys[k], { now: NOW, scope });
  assert.equal(at("added_by_update").outcome, "unknown");
  v.loadRevocations(read(fixtures, "update-with-records-1.kgr"));
  const a = at("added_by_update", "invoices:read");
  assert.equal(a.outcome, "valid");
  assert.equal(a.principal, "added-later");
  assert.equal(a.revocationSeq, 2);
  const d = at("valid");
  assert.equal(d.outcome, "valid_deprecated");
  assert.equal(d.sunsetAt, NOW + 3600);
  assert.equal(at("revoked_by_update").outcome, "revoked");
});

test("refused artifacts throw with the reason and keep state", () => {
  const v = loaded();
  const before = v.verify(keys.valid, { now: NOW });
  const s2 = read(fixtures, "snapshot-2.kgs");
  assert.throws(() => v.loadSnapshot(s2.slice(0, 100)), /truncated/);
  const flipped = s2.slice();
  flipped[300] ^= 1;
  assert.throws(() => v.loadSnapshot(flipped), /signature does not verify/);
  assert.throws(() => v.loadSnapshot(read(fixtures, "snapshot-other-signer.kgs")), /untrusted signer/);
  assert.throws(() => v.loadSnapshot(read(fixtures, "snapshot-other-keyset.kgs")), /keyset 'globex'/);
  assert.throws(() => v.loadRevocations(read(fixtures, "revocations-2.kgr")), /snapshot version 2, installed is 1/);
  assert.throws(() => v.loadTrust(read(fixtures, "untrusted-chain.kgt")), /not signed by a trusted signer/);
  assert.throws(() => new Verifier(new Uint8Array([1, 2, 3])), /truncated/);
  assert.deepEqual(v.verify(keys.valid, { now: NOW }), before);
  assert.deepEqual(v.loadSnapshot(s2), { changed: true, from: 1, to: 2 });
  assert.deepEqual(v.loadSnapshot(s2), { changed: false });
  assert.throws(() => v.loadSnapshot(read(fixtures, "snapshot-1.kgs")), /rollback refused: offered 1, installed 2/);
  assert.equal(v.stats().refused.snapshot, 5);
  assert.equal(v.stats().refused.revocations, 1);
  assert.equal(v.stats().refused.trust, 1);
});

test("the fast path answers exactly as the reference verify, and falls back to it", () => {
  const v = loaded();
  assert.equal(Verifier.prototype.__verifyReference, undefined, "no test hook on the shipped prototype");
  assert.notEqual(Reference.Verifier.prototype.verify, Verifier.prototype.verify);
  const r = new Reference.Verifier(read(fixtures, "trust.kgt"));
  r.loadSnapshot(read(fixtures, "snapshot-1.kgs"));
  v.__verifyReference = (k, o) => r.verify(k, o); // on this instance only
  const presented = [...Object.values(keys), "", "x", "acme_live_typo", "ключ", "acme_live_" + "é".repeat(45),
    keys.valid + "\u0000", "a".repeat(512), "a".repeat(513), keys.valid.repeat(20)];
  const scopes = [undefined, null, "invoices:read", "invoices:write", "nope", "", "s".repeat(256), "s".repeat(300), "范围"];
  const times = [NOW, NOW - 86400 * 400, NOW + 86400 + 10, NOW + 3 * 86400, 0.5, 1e15];
  const pass = () => {
    let n = 0;
    for (const k of presented) {
      for (const scope of scopes) {
        for (const now of times) {
          assert.deepStrictEqual(v.verify(k, { scope, now }), v.__verifyReference(k, { scope, now }), `${k} ${scope} ${now}`);
          n++;
        }
      }
      // No options, and options without `now`: both read the clock, within a second of each other.
      const a = v.verify(k), b = v.__verifyReference(k);
      assert.equal(a.outcome, b.outcome);
      assert.equal(a.keyId, b.keyId);
    }
    return n;
  };
  assert.equal(pass(), presented.length * scopes.length * times.length);
  for (const x of [v, r]) {
    x.loadRevocations(read(fixtures, "revocations-1.kgr"));
    x.loadSnapshot(read(fixtures, "snapshot-2.kgs"));
  }
  pass();
  // A scope too long for the scratch area between two uses of a short one
  // (100 chars, 300 UTF-8 bytes: only the encoder finds it too long).
  for (const scope of ["invoices:read", "范".repeat(100), "invoices:read", "x".repeat(257), "invoices:write"]) {
    assert.deepStrictEqual(v.verify(keys.valid, { scope, now: NOW }), v.__verifyReference(keys.valid, { scope, now: NOW }));
  }
  // Option values the scratch area does not take go to the reference, which throws.
  assert.throws(() => v.verify(keys.valid, { scope: 7 }), /scope must be a string/);
  assert.throws(() => v.verify(keys.valid, { now: -1 }), /now must be unix seconds/);
  assert.throws(() => v.verify(keys.valid, { now: "1767225600" }), /now must be unix seconds/);
  assert.throws(() => v.verify(7), /key must be a string/);
  assert.throws(() => v.verify(undefined), /key must be a string/);
  // Two verifiers number their principals independently.
  const w = loaded();
  assert.equal(w.verify(keys.deprecated, { now: NOW }).principal, "billing-service");
  assert.equal(v.verify(keys.valid, { now: NOW }).principal, v.__verifyReference(keys.valid, { now: NOW }).principal);
});

test("the check fast path answers exactly as the reference check, and falls back to it", () => {
  const v = loaded();
  const r = new Reference.Verifier(read(fixtures, "trust.kgt"));
  r.loadSnapshot(read(fixtures, "snapshot-1.kgs"));
  assert.notEqual(Reference.Verifier.prototype.check, Verifier.prototype.check);
  const k = keys.valid;
  const requests = [
    [],
    [["Host", "x"]],
    [["Authorization", `Bearer ${k}`]],
    [["authorization", `bearer\t ${k} `], ["X_Keygate_Principal", "admin"], ["x-keygate-principal", "root"]],
    [["Authorization", "Basic dXNlcjpwdw=="], ["X-API-Key", k]],
    [["Authorization", `Bearer ${k}`], ["X-API-Key", keys.deprecated]],
    [["X-API-Key", `${k}, ${k}`]],
    [["X_API_Key", k]],
    [["Authorization", `Bearerx${k}`]],
    [["X-Api-Key", "ключ"]],
    [["X-Api-Key", "\u00ff\u00fe"]],
    [["X-Api-Key", "é".repeat(3000)]],
    [["X-Api-Key", "a".repeat(5000)]],
    Array.from({ length: 17 }, () => ["X-API-Key", k]),
    Array.from({ length: 16 }, () => ["X-API-Key", k]),
  ];
  for (const name of Object.keys(keys)) {
    if (name !== "now") requests.push([["Authorization", `Bearer ${keys[name]}`], ["x-keygate-principal", "forged"]]);
  }
  const optionSets = [
    undefined,
    {},
    { scope: "invoices:read" },
    { scope: "invoices:write", realm: "api" },
    { scope: "nope", realm: "other realm", principalHeader: "X-User", retryAfter: 30 },
    { scope: "范围", principalHeader: "x-keygate-principal" },
    { scope: "s".repeat(300) },
    { retryAfter: 0 },
    { realm: "keygate" },
  ];
  const times = [NOW, NOW + 3 * 86400, 1e15];
  let n = 0;
  const pass = () => {
    for (const h of requests) {
      for (const o of optionSets) {
        for (const now of times) {
          const options = { ...(o ?? {}), now };
          assert.deepStrictEqual(v.check(h, options), r.check(h, options), JSON.stringify([h, options]).slice(0, 300));
          n++;
        }
        // Without `now` both read the clock.
        assert.equal(v.check(h, o).status, r.check(h, o).status);
      }
    }
  };
  pass();
  for (const x of [v, r]) {
    x.loadRevocations(read(fixtures, "revocations-1.kgr"));
    x.loadSnapshot(read(fixtures, "snapshot-2.kgs"));
  }
  pass();
  assert.equal(n, 2 * requests.length * optionSets.length * times.length);
  // A deprecated key forwarded: its dates are read every time, not cached.
  const dep = v.check([["X-API-Key", keys.deprecated]], { now: NOW });
  assert.deepEqual(dep.responseHeaders.map(([h]) => h), ["Deprecation", "Sunset"]);
  // Values of the wrong type go to the reference, which throws.
  assert.throws(() => v.check([["a"]]), /pairs of strings/);
  assert.throws(() => v.check([["a", 1]]), /pairs of strings/);
  assert.throws(() => v.check("x"), /./);
  assert.throws(() => v.check([], { now: -1 }), /now/);
  assert.throws(() => v.check([], { realm: 7 }), /realm must be a string/);
  // A caller changing an answer it got changes no later answer.
  const first = v.check([], {});
  first.responseHeaders[0][1] = "changed";
  first.responseHeaders.push(["x", "y"]);
  assert.deepStrictEqual(v.check([], {}), r.check([], {}));
});

test("same verdicts as the Rust verifier on the committed vectors", () => {
  const v = new Verifier(read(vectors, "trust.kgt"));
  v.loadSnapshot(read(vectors, "snapshot.kgs"));
  const lines = fs.readFileSync(path.join(vectors, "verdicts.txt"), "utf8").trim().split("\n").slice(1);
  assert.equal(lines.length, 11);
  const check = (col) => {
    for (const line of lines) {
      const f = line.split(" ");
      const scope = f[1] === "-" ? undefined : f[1];
      assert.equal(v.verify(f[0], { scope, now: Number(f[2]) }).outcome, f[col], f[0]);
    }
  };
  check(3);
  v.loadRevocations(read(vectors, "revocations.kgr"));
  check(4);
  v.loadRevocations(read(vectors, "update.kgr"));
  check(5);
});

test("Reload: the core's reload rules for a JS poller", () => {
  const v = new Verifier(read(fixtures, "trust.kgt"));
  const r = new Reload();
  assert.deepEqual(Reload.order(), ["trust.kgt", "snapshot.kgs", "revocations.kgr"]);
  assert.equal(r.offer(v, "trust.kgt", 404).step, "none_yet");
  assert.equal(r.offer(v, "revocations.kgr", 404).step, "none_yet");
  const missing = r.offer(v, "snapshot.kgs", 404);
  assert.equal(missing.step, "snapshot_missing");
  assert.ok(missing.error);
  const snap = read(fixtures, "snapshot-1.kgs");
  // Refused: state kept, validator not remembered (retried next tick).
  const refused = r.offer(v, "snapshot.kgs", 200, snap.subarray(0, 50), '"x"');
  assert.equal(refused.step, "refused");
  assert.match(refused.error, /truncated/);
  assert.equal(r.validator("snapshot.kgs"), undefined);
  assert.deepEqual(r.offer(v, "snapshot.kgs", 200, snap, '"a"'), { from: 0, to: 1, step: "installed" });
  assert.equal(r.validator("snapshot.kgs"), '"a"');
  assert.equal(r.offer(v, "snapshot.kgs", 304).step, "unchanged");
  assert.equal(r.offer(v, "snapshot.kgs", 200, snap, '"b"').step, "unchanged");
  assert.equal(r.validator("snapshot.kgs"), '"b"');
  assert.deepEqual(r.offer(v, "snapshot.kgs", 503), { error: "HTTP 503", step: "failed" });
  assert.throws(() => r.offer(v, "nope.kgs", 200), /no artifact named/);
});

test("check: the contract's answer, and options and headers refused when malformed", () => {
  const v = loaded();
  const a = v.check([["Authorization", `Bearer ${keys.valid}`], ["X_Keygate_Principal", "admin"]],
    { scope: "invoices:read", now: NOW });
  assert.equal(a.status, 200);
  assert.equal(a.forward, true);
  assert.equal(a.principalValue, "billing-service");
  assert.deepEqual(a.strip, ["authorization", "x_keygate_principal"]);
  assert.deepEqual(a.scopes, ["invoices:read", "invoices:write"], "the key's scopes");
  assert.equal(v.check([["X-API-Key", keys.valid]], { scope: "nope", now: NOW }).scopes, null, "none when refused");
  // The update changes key 1's record: its scopes come from the update's table.
  const w = loaded();
  w.loadRevocations(read(fixtures, "update-with-records-1.kgr"));
  assert.deepEqual(w.check([["X-API-Key", keys.valid]], { now: NOW }).scopes, ["invoices:read", "invoices:write"]);
  assert.deepEqual(w.check([["X-API-Key", keys.added_by_update]], { now: NOW }).scopes, ["invoices:read"]);
  const two = v.check([["x-api-key", `${keys.valid}, ${keys.deprecated}`]], { now: NOW });
  assert.equal(two.status, 400, "a comma-joined pair of keys is two keys");
  const none = notLoaded({ retryAfter: 9 });
  assert.deepEqual([none.status, none.responseHeaders], [503, [["Retry-After", "9"]]]);
  assert.throws(() => v.check([["a"]]), /pairs of strings/);
  assert.throws(() => v.check(["x"]), /\[name, value\] pairs/);
  assert.throws(() => v.check([], { realm: 'a"b' }), /realm/);
  assert.throws(() => v.check([], { principalHeader: "x-api-key" }), /principal header/);
  assert.throws(() => v.check([], { retryAfter: -1 }), /retryAfter/);
  assert.throws(() => v.check([], { scope: 7 }), /scope must be a string/);
});
