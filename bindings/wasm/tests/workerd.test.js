// The Worker under real workerd on 127.0.0.1: artifacts published by the
// keygate CLI to a local origin, a local upstream, every outcome over HTTP, and
// a revocation published to the origin enforced after the next refresh.
// Run by tests/run.sh: KEYGATE_BIN=path/to/keygate node --test tests/workerd.test.js
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const http = require("node:http");
const { spawn, execFileSync } = require("node:child_process");
const { serveArtifacts, freePort } = require("./origin.js");

const HERE = path.join(__dirname, "..");
const BIN = process.env.KEYGATE_BIN;
const work = fs.mkdtempSync(path.join(os.tmpdir(), "keygate-workerd-"));
const store = path.join(work, "store");
const site = path.join(work, "site");
const kg = (...args) => execFileSync(BIN, ["--store", store, "--json", ...args], { encoding: "utf8" });

function listen(handler) {
  return new Promise((resolve) => {
    const s = http.createServer(handler);
    s.listen(0, "127.0.0.1", () => resolve(s));
  });
}

async function waitForPort(port, ms) {
  const until = Date.now() + ms;
  for (;;) {
    try {
      await fetch(`http://127.0.0.1:${port}/`, { headers: {} });
      return;
    } catch (e) {
      if (Date.now() > until) throw new Error(`workerd did not listen on ${port}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

let origin, upstream, workerd, port;
const seen = [];
const recorded = new Map();
const keys = {};

test.before(async () => {
  kg("init", "--keyset", "edge", "--prefix", "edge_live");
  const issue = (...a) => JSON.parse(kg("issue", ...a)).key;
  keys.valid = issue("--principal", "billing-service", "--scope", "invoices:read");
  keys.old = issue("--principal", "mobile-app", "--scope", "invoices:read");
  keys.rotated = JSON.parse(kg("rotate", "--principal", "mobile-app", "--grace", "7d")).key;
  keys.noscope = issue("--principal", "search-indexer", "--scope", "search:read");
  keys.revoked = issue("--principal", "leaky", "--scope", "invoices:read");
  kg("revoke", "--key", keys.revoked);
  keys.later = issue("--principal", "partner", "--scope", "invoices:read", "--not-before", String(Math.floor(Date.now() / 1000) + 86400));
  keys.expiring = issue("--principal", "batch", "--scope", "invoices:read", "--expires", "1s");
  keys.toRevoke = issue("--principal", "breach-target", "--scope", "invoices:read");
  keys.toRotate = issue("--principal", "rotating-service", "--scope", "invoices:read");
  // The contract's principal cases (tests/vectors/contract.json).
  keys.unicode = issue("--principal", "z\u00fcrich b\u00fcro", "--scope", "invoices:read");
  keys.long = issue("--principal", "p".repeat(126) + "\u00fc", "--scope", "invoices:read");
  kg("publish", "--out", site);
  // Well-formed, the same prefix, from another keyset: unknown here.
  const other = path.join(work, "other");
  const kgOther = (...args) => execFileSync(BIN, ["--store", other, "--json", ...args], { encoding: "utf8" });
  kgOther("init", "--keyset", "edge", "--prefix", "edge_live");
  keys.unknown = JSON.parse(kgOther("issue", "--principal", "elsewhere")).key;
  keys.evil = JSON.parse(kgOther("issue", "--principal", "admin", "--scope", "invoices:read")).key;
  kgOther("publish", "--out", path.join(work, "evil"));
  origin = await serveArtifacts(site);
  upstream = await listen((req, res) => {
    // The conformance runner asks what the upstream received, per request id.
    if (req.url.startsWith("/__recorded/")) {
      const got = recorded.get(req.url.slice("/__recorded/".length));
      recorded.delete(req.url.slice("/__recorded/".length));
      return got ? res.writeHead(200).end(JSON.stringify(got)) : res.writeHead(404).end();
    }
    const lines = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push([req.rawHeaders[i].toLowerCase(), req.rawHeaders[i + 1]]);
    const rid = req.headers["x-conformance-id"];
    if (rid) recorded.set(rid, lines);
    seen.push({ principal: req.headers["x-keygate-principal"], auth: req.headers.authorization, apiKey: req.headers["x-api-key"] });
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ ok: true }));
  });
  port = await freePort();
  const cfg = path.join(work, "config.capnp");
  fs.copyFileSync(path.join(HERE, "worker/worker.js"), path.join(work, "worker.js"));
  fs.copyFileSync(path.join(HERE, "pkg/web/index.js"), path.join(work, "index.js"));
  fs.copyFileSync(path.join(HERE, "pkg/web/edge.js"), path.join(work, "edge.js"));
  fs.copyFileSync(path.join(HERE, "pkg/web/keygate.js"), path.join(work, "keygate.js"));
  fs.copyFileSync(path.join(HERE, "pkg/web/keygate_bg.wasm"), path.join(work, "keygate_bg.wasm"));
  // wasm-bindgen's JS snippets are modules the glue imports by relative path.
  const snippets = [];
  const snippetRoot = path.join(HERE, "pkg/web");
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".js")) snippets.push(path.relative(snippetRoot, p));
    }
  };
  if (fs.existsSync(path.join(snippetRoot, "snippets"))) walk(path.join(snippetRoot, "snippets"));
  for (const rel of snippets) {
    fs.mkdirSync(path.join(work, path.dirname(rel)), { recursive: true });
    fs.copyFileSync(path.join(snippetRoot, rel), path.join(work, rel));
  }
  const snippetModules = snippets.map((rel) => `    (name = "${rel}", esModule = embed "${rel}"),\n`).join("");
  fs.writeFileSync(cfg, `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .gate),
    (name = "origin", external = (address = "127.0.0.1:${origin.port}", http = ())),
    (name = "upstream", external = (address = "127.0.0.1:${upstream.address().port}", http = ())),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],
);
const gate :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "worker.js"),
    (name = "index.js", esModule = embed "index.js"),
    (name = "edge.js", esModule = embed "edge.js"),
    (name = "keygate.js", esModule = embed "keygate.js"),
    (name = "keygate_bg.wasm", wasm = embed "keygate_bg.wasm"),
${snippetModules}  ],
  bindings = [
    (name = "TRUST_ANCHOR", text = "${fs.readFileSync(path.join(site, "trust.kgt")).toString("base64")}"),
    (name = "ORIGIN", service = "origin"),
    (name = "UPSTREAM", service = "upstream"),
    (name = "SCOPE", text = "invoices:read"),
    (name = "METRICS_PATH", text = "/_keygate/metrics"),
    (name = "METRICS_TOKEN", text = "metrics-secret-for-the-test"),
    (name = "REFRESH_SECONDS", text = "1"),
  ],
  compatibilityDate = "2024-09-01",
);
`);
  workerd = spawn(path.join(HERE, "node_modules/.bin/workerd"), ["serve", cfg], { stdio: ["ignore", "inherit", "inherit"] });
  await waitForPort(port, 20000);
});

test.after(() => {
  workerd?.kill();
  origin?.close();
  upstream?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

const get = (headers) => fetch(`http://127.0.0.1:${port}/invoices`, { headers });

test("every outcome over HTTP", async () => {
  let r = await get({ authorization: `Bearer ${keys.valid}` });
  assert.equal(r.status, 200);
  assert.equal(seen.at(-1).principal, "billing-service");
  assert.equal(seen.at(-1).auth, undefined, "the key is not passed upstream");

  r = await get({ "x-api-key": keys.valid });
  assert.equal(r.status, 200);

  r = await get({ authorization: `Bearer ${keys.old}` });
  assert.equal(r.status, 200);
  assert.match(r.headers.get("deprecation"), /^@\d+$/);
  assert.match(r.headers.get("sunset"), /GMT$/);
  assert.equal(seen.at(-1).principal, "mobile-app");
  r = await get({ authorization: `Bearer ${keys.rotated}` });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("deprecation"), null);

  r = await get({});
  assert.equal(r.status, 401);
  assert.equal(r.headers.get("www-authenticate"), 'Bearer realm="keygate"');

  for (const [k, want] of [["revoked", "revoked"], ["later", "not_yet_valid"]]) {
    r = await get({ authorization: `Bearer ${keys[k]}` });
    assert.equal(r.status, 401, k);
    assert.match(r.headers.get("www-authenticate"), new RegExp(`error="invalid_token", error_description="${want}"`));
  }
  r = await get({ authorization: "Bearer edge_live_notakey" });
  assert.equal(r.status, 401);
  assert.match(r.headers.get("www-authenticate"), /malformed/);
  r = await get({ authorization: "Bearer edge_live_000000000000000000000000000000000ZZZZZZ" });
  assert.equal(r.status, 401);

  r = await get({ authorization: `Bearer ${keys.noscope}` });
  assert.equal(r.status, 403);
  assert.match(r.headers.get("www-authenticate"), /error="insufficient_scope"/);

  await new Promise((res) => setTimeout(res, 1200));
  r = await get({ authorization: `Bearer ${keys.expiring}` });
  assert.equal(r.status, 401);
  assert.match(r.headers.get("www-authenticate"), /expired/);
});

test("a revocation published to the origin is enforced after the next refresh", async () => {
  let r = await get({ authorization: `Bearer ${keys.toRevoke}` });
  assert.equal(r.status, 200);
  // A corrupted snapshot on the origin changes nothing for valid keys.
  const snap = path.join(site, "snapshot.kgs");
  const good = fs.readFileSync(snap);
  const bad = Buffer.from(good);
  bad[300] ^= 0xff;
  fs.writeFileSync(snap, bad);
  kg("revoke", "--key", keys.toRevoke, "--reason", "breach drill");
  const t0 = Date.now();
  kg("publish", "--out", site, "--revocations-only");
  let ms = null;
  while (Date.now() - t0 < 5000) {
    r = await get({ authorization: `Bearer ${keys.toRevoke}` });
    if (r.status === 401) {
      ms = Date.now() - t0;
      break;
    }
    assert.equal(r.status, 200);
    assert.equal((await get({ authorization: `Bearer ${keys.valid}` })).status, 200);
    await new Promise((res) => setTimeout(res, 50));
  }
  console.log(`revocation enforced by the Worker ${ms} ms after publish (refresh interval 1 s)`);
  assert.ok(ms !== null && ms <= 2000, `not enforced within interval + 1 s (${ms})`);
  assert.equal((await get({ authorization: `Bearer ${keys.valid}` })).status, 200);
});

test("keys issued and rotated after the snapshot are accepted from the update", async () => {
  const added = JSON.parse(kg("issue", "--principal", "added-later", "--scope", "invoices:read")).key;
  const rotated = JSON.parse(kg("rotate", "--principal", "rotating-service", "--grace", "1d")).key;
  assert.equal((await get({ authorization: `Bearer ${added}` })).status, 401);
  const t0 = Date.now();
  const report = JSON.parse(kg("publish", "--out", site, "--update"));
  assert.equal(report.snapshot_bytes, 0);
  assert.ok(report.records_in_update >= 3, JSON.stringify(report));
  const update = fs.readFileSync(path.join(site, "revocations.kgr"));
  assert.equal(update.readUInt16LE(4), 2, "the update carries records (format version 2)");
  let ms = null;
  while (Date.now() - t0 < 5000) {
    const a = await get({ authorization: `Bearer ${added}` });
    const b = await get({ authorization: `Bearer ${rotated}` });
    if (a.status === 200 && b.status === 200) {
      ms = Date.now() - t0;
      break;
    }
    await new Promise((res) => setTimeout(res, 50));
  }
  console.log(`a new and a rotated key accepted by the Worker ${ms} ms after the update (refresh interval 1 s)`);
  assert.ok(ms !== null && ms <= 2000, `not accepted within interval + 1 s (${ms})`);
  const old = await get({ authorization: `Bearer ${keys.toRotate}` });
  assert.equal(old.status, 200);
  assert.ok(old.headers.get("deprecation") && old.headers.get("sunset"), "the rotated-out key is deprecated");
});

test("the gateway contract's table (bindings/testlib/conformance.py)", async () => {
  const keysFile = path.join(work, "keys.json");
  fs.writeFileSync(keysFile, JSON.stringify({ ...keys }));
  const runner = path.join(HERE, "../testlib/conformance.py");
  const code = await new Promise((resolve) => {
    const p = spawn("python3", [runner, "worker in workerd", String(port), keysFile,
      `http://127.0.0.1:${upstream.address().port}/__recorded/`], { stdio: ["ignore", "inherit", "inherit"] });
    p.on("exit", resolve);
  });
  assert.equal(code, 0, "the Worker disagrees with tests/vectors/contract.json");
});

test("the anchor is pinned: an origin serving another keyset's trust and snapshot changes nothing", async () => {
  const saved = {};
  for (const f of ["trust.kgt", "snapshot.kgs"]) {
    saved[f] = fs.readFileSync(path.join(site, f));
    fs.copyFileSync(path.join(work, "evil", f), path.join(site, f));
  }
  try {
    // Two refresh intervals: both artifacts fetched and refused.
    await new Promise((res) => setTimeout(res, 2500));
    assert.equal((await get({ authorization: `Bearer ${keys.evil}` })).status, 401, "a key signed by the origin's own signer got in");
    assert.equal((await get({ authorization: `Bearer ${keys.valid}` })).status, 200);
  } finally {
    for (const [f, b] of Object.entries(saved)) fs.writeFileSync(path.join(site, f), b);
  }
});

test("metrics: this isolate's counters, only with the token", async () => {
  const url = `http://127.0.0.1:${port}/_keygate/metrics`;
  assert.equal((await fetch(url)).status, 403);
  assert.equal((await fetch(url, { headers: { "x-keygate-metrics-token": "metrics-secret-for-the-tesX" } })).status, 403);
  const r = await fetch(url, { headers: { "x-keygate-metrics-token": "metrics-secret-for-the-test" } });
  assert.equal(r.status, 200);
  const body = await r.text();
  const valid = Number(/^keygate_verify_total\{outcome="valid"\} (\d+)$/m.exec(body)?.[1]);
  assert.ok(valid >= 1, body.slice(0, 300));
  assert.match(body, /^keygate_deprecated_key_uses_total\{key_id="[0-9a-f]{32}",principal="mobile-app"\} [1-9]/m);
  assert.match(body, /^keygate_snapshot_version [1-9]/m);
});
