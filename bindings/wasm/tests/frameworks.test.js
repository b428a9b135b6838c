// The Node adapters in real servers: Express, Fastify and Hono (on
// @hono/node-server), each guarding a route with keygate loaded from a
// directory the keygate CLI publishes to; every answer over HTTP with fetch,
// what the handler sees, a revocation while they run, and the metrics.
// Run by tests/run.sh: KEYGATE_BIN=... node --test tests/frameworks.test.js
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { execFileSync } = require("node:child_process");
const { serveArtifacts } = require("./origin.js");
const { Keygate } = require("../pkg/node/node.js");
const keygateExpress = require("../pkg/node/express.js");
const keygateFastify = require("../pkg/node/fastify.js");
const keygateHono = require("../pkg/node/hono.js");

const BIN = process.env.KEYGATE_BIN;
const work = fs.mkdtempSync(path.join(os.tmpdir(), "keygate-frameworks-"));
const store = path.join(work, "store");
const pub = path.join(work, "pub");
const kg = (...args) => JSON.parse(execFileSync(BIN, ["--store", store, "--json", ...args], { encoding: "utf8" }) || "null");
const issue = (principal, scope) => kg("issue", "--principal", principal, "--scope", scope).key;

kg("init", "--keyset", "node", "--prefix", "acme_live");
const keys = {
  valid: issue("billing-service", "invoices:read"),
  old: issue("mobile-app", "invoices:read"),
  noscope: issue("search-indexer", "search:read"),
  revoked: issue("leaky", "invoices:read"),
  toRevoke: issue("breach", "invoices:read"),
  unicode: issue("z\u00fcrich b\u00fcro", "invoices:read"),
};
keys.rotated = kg("rotate", "--principal", "mobile-app", "--grace", "7d").key;
kg("revoke", "--key", keys.revoked);
kg("publish", "--out", pub);

function seen(headers, who) {
  const auth = headers["authorization"] || headers["x-api-key"] ? "set" : "-";
  return `principal=${headers["x-keygate-principal"] || "-"} auth=${auth} verdict=${who.principal} scopes=${who.scopes}\n`;
}

async function servers(keygate) {
  const out = {};
  const express = require("express")();
  express.use("/invoices", keygateExpress(keygate, { scope: "invoices:read" }));
  express.get("/invoices/:id", (req, res) => res.type("text/plain").send(seen(req.headers, req.keygate)));
  const e = express.listen(0, "127.0.0.1");
  await new Promise((r) => e.once("listening", r));
  out.express = { port: e.address().port, close: () => e.close() };

  const fastify = require("fastify")();
  fastify.addHook("onRequest", keygateFastify(keygate, { scope: "invoices:read" }));
  fastify.get("/invoices/:id", async (request, reply) => {
    reply.type("text/plain");
    return seen(request.headers, request.keygate);
  });
  await fastify.listen({ port: 0, host: "127.0.0.1" });
  out.fastify = { port: fastify.server.address().port, close: () => fastify.close() };

  const { Hono } = require("hono");
  const { serve } = require("@hono/node-server");
  const hono = new Hono();
  hono.use("/invoices/*", keygateHono(keygate, { scope: "invoices:read" }));
  hono.get("/invoices/:id", (c) => c.text(`verdict=${c.get("keygate").principal} scopes=${c.get("keygate").scopes}\n`));
  const h = await new Promise((resolve) => {
    const s = serve({ fetch: hono.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
  });
  out.hono = { port: h.address().port, close: () => h.close() };
  return out;
}

async function get(port, headers = {}) {
  const r = await fetch(`http://127.0.0.1:${port}/invoices/5`, { headers });
  return { status: r.status, headers: r.headers, body: await r.text() };
}
const bearer = (k) => ({ authorization: `Bearer ${k}` });

test("Express, Fastify and Hono answer by the gateway contract", async () => {
  const keygate = Keygate.fromDir(pub, { pollInterval: 200 });
  const all = await servers(keygate);
  try {
    for (const [name, { port }] of Object.entries(all)) {
      let r = await get(port, bearer(keys.valid));
      assert.equal(r.status, 200, `${name} valid: ${r.body}`);
      assert.match(r.body, /verdict=billing-service scopes=invoices:read\n/, name);
      assert.equal((await get(port, { "x-api-key": keys.valid })).status, 200, `${name} X-API-Key`);
      r = await get(port);
      assert.equal(r.status, 401, `${name} no key`);
      assert.equal(r.headers.get("www-authenticate"), 'Bearer realm="keygate"', name);
      r = await get(port, bearer(keys.revoked));
      assert.equal(r.status, 401, `${name} revoked`);
      assert.match(r.headers.get("www-authenticate"), /error_description="revoked"/, name);
      r = await get(port, bearer("acme_live_nope"));
      assert.match(r.headers.get("www-authenticate"), /malformed/, name);
      r = await get(port, bearer(keys.noscope));
      assert.equal(r.status, 403, `${name} scope`);
      assert.match(r.headers.get("www-authenticate"), /error="insufficient_scope"/, name);
      r = await get(port, bearer(keys.old));
      assert.equal(r.status, 200, `${name} deprecated`);
      assert.match(r.headers.get("deprecation") || "", /^@\d+$/, `${name}: Deprecation`);
      assert.match(r.headers.get("sunset") || "", /GMT$/, `${name}: Sunset`);
      r = await get(port, { ...bearer(keys.valid), "x-api-key": keys.noscope });
      assert.equal(r.status, 400, `${name}: two keys`);
    }
    // Express and Fastify hand the route a request without its key and
    // with the principal the middleware set (a client's own copy dropped).
    for (const name of ["express", "fastify"]) {
      const r = await get(all[name].port, { ...bearer(keys.valid), "x-keygate-principal": "admin" });
      assert.equal(r.body, "principal=billing-service auth=- verdict=billing-service scopes=invoices:read\n", name);
      const u = await get(all[name].port, bearer(keys.unicode));
      assert.match(u.body, /^principal=z%C3%BCrich%20b%C3%BCro /, `${name}: the principal header is ASCII`);
    }

    // A revocation published while they run: refused within the poll + 1 s.
    for (const { port } of Object.values(all)) assert.equal((await get(port, bearer(keys.toRevoke))).status, 200);
    kg("revoke", "--key", keys.toRevoke);
    const t0 = Date.now();
    kg("publish", "--out", pub);
    for (const [name, { port }] of Object.entries(all)) {
      while ((await get(port, bearer(keys.toRevoke))).status === 200) {
        assert.ok(Date.now() - t0 < 1500, `${name}: revocation not in force within 1.5 s`);
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    console.log(`node frameworks: revocation in force ${Date.now() - t0} ms after the publish (poll 200 ms)`);
    // A damaged update changes nothing, and is counted.
    fs.writeFileSync(path.join(pub, "revocations.kgr"), "KGR garbage");
    await new Promise((r) => setTimeout(r, 600));
    for (const [name, { port }] of Object.entries(all)) {
      assert.equal((await get(port, bearer(keys.valid))).status, 200, `${name} after a damaged update`);
      assert.equal((await get(port, bearer(keys.toRevoke))).status, 401, `${name} still revoked`);
    }
    const m = keygate.metrics();
    assert.match(m, /^keygate_verify_total\{outcome="valid"\} [1-9]/m);
    assert.match(m, /^keygate_artifact_refused_total\{artifact="revocations"\} [1-9]/m);
    for (const k of Object.values(keys)) assert.ok(!m.includes(k), "no key in the metrics");
  } finally {
    for (const s of Object.values(all)) await s.close();
    keygate.close();
  }
});

test("the client helper rotates through a live Express server with no refused request", async () => {
  const { RotatingKey } = require("../pkg/node/client.js");
  const first = issue("client-svc", "invoices:read");
  kg("publish", "--out", pub);
  const keygate = Keygate.fromDir(pub, { pollInterval: 200 });
  const all = await servers(keygate);
  const port = all.express.port;
  try {
    const rk = new RotatingKey(first);
    const statuses = [];
    let stop = false;
    const client = (async () => {
      while (!stop) {
        statuses.push((await rk.send((key) => get(port, bearer(key)))).status);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    const second = kg("rotate", "--principal", "client-svc", "--grace", "1d").key;
    rk.offerNext(second);
    kg("publish", "--out", pub);
    const t0 = Date.now();
    while (rk.inUse !== second) {
      assert.ok(Date.now() - t0 < 3000, "the helper never switched to the new key");
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await client;
    const refused = statuses.filter((s) => s !== 200);
    assert.deepEqual(refused, [], `${refused.length} of ${statuses.length} refused`);
    assert.ok(statuses.length > 20);
    assert.ok(!JSON.stringify(rk).includes(first) && !JSON.stringify(rk).includes(second), "no key in its JSON");
    console.log(`node client helper: ${statuses.length} requests through a rotation, 0 refused`);

    // The rules, against answers as the contract gives them.
    const answer = (status, headers = {}) => ({ status, headers: new Headers(headers) });
    const gw = (known, revoked = [], deprecated = []) => async (key) =>
      revoked.includes(key) ? answer(401, { "www-authenticate": 'Bearer error="invalid_token", error_description="revoked"' })
        : !known.includes(key) ? answer(401, { "www-authenticate": 'Bearer error="invalid_token", error_description="unknown"' })
          : answer(200, deprecated.includes(key) ? { deprecation: "@1" } : {});
    const r = new RotatingKey("old", "new", { retryAfter: 0 });
    assert.equal((await r.send(gw(["old"]))).status, 200);
    assert.equal(r.inUse, "old", "no signal: stays");
    await r.send(gw(["old"], [], ["old"]));
    assert.equal(r.inUse, "new", "Deprecation: switches");
    assert.equal((await r.send(gw(["old"]))).status, 200, "unknown next key: the old key again");
    assert.equal(r.inUse, "old");
    const b = new RotatingKey("leaked", "fresh");
    assert.equal((await b.send(gw(["fresh"], ["leaked"]))).status, 200, "revoked: the next key");
    assert.equal(b.inUse, "fresh");
  } finally {
    for (const s of Object.values(all)) await s.close();
    keygate.close();
  }
});

test("a bad setting is refused, naming it", () => {
  for (const [name, value] of [["pollInterval", -5], ["pollInterval", "often"], ["maxArtifact", "x"],
    ["maxArtifact", 0], ["maxBackoff", Infinity]]) {
    assert.throws(() => Keygate.fromDir(pub, { [name]: value }), new RegExp(name), `${name}=${value}`);
  }
  const k = Keygate.fromDir(pub, { pollInterval: 0, maxArtifact: "1000000" });
  assert.equal(k.options.maxArtifact, 1000000);
  k.close();
});

test("a bad anchor or origin is refused", async () => {
  assert.throws(() => Keygate.fromDir(path.join(work, "nowhere")));
  await assert.rejects(Keygate.fromUrl(new Uint8Array([1, 2, 3]), "http://127.0.0.1:1/"));
  await assert.rejects(Keygate.fromUrl(fs.readFileSync(path.join(pub, "trust.kgt")), "file:///etc/"));
  const k = Keygate.fromDir(pub, { pollInterval: 0 });
  assert.equal(k.verify(keys.valid, "invoices:read").outcome, "valid");
  k.close();
});

test("a hostile origin: an artifact over the size limit or a forged Content-Length changes nothing", async () => {
  const origin = await serveArtifacts(pub);
  const url = origin.url;
  const anchor = fs.readFileSync(path.join(pub, "trust.kgt"));
  try {
    // A snapshot over a small limit is not installed: nothing loaded, 503.
    const small = await Keygate.fromUrl(anchor, url, { pollInterval: 0, maxArtifact: 100 });
    assert.equal(small.check([["authorization", `Bearer ${keys.valid}`]], "invoices:read").status, 503);
    assert.ok(small.events.some((e) => e.includes("over 100 bytes")), small.events.join("; "));
    // Loaded under the default limit; then the origin forges a huge
    // snapshot: the reload fails at once and the state is kept.
    const k = await Keygate.fromUrl(anchor, url, { pollInterval: 0 });
    assert.equal(k.check([["authorization", `Bearer ${keys.valid}`]], "invoices:read").status, 200);
    origin.forge();
    const t0 = Date.now();
    assert.equal(await k.reload(), false);
    assert.ok(Date.now() - t0 < 2000, "a forged Content-Length must not be waited for");
    assert.equal(k.check([["authorization", `Bearer ${keys.valid}`]], "invoices:read").status, 200);
  } finally {
    origin.close();
  }
});

test.after(() => fs.rmSync(work, { recursive: true, force: true }));
