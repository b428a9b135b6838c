// keygate/hono in real workerd: a Hono app (tests/hono-worker/worker.js)
// bundled with esbuild, artifacts published by the keygate CLI to a local
// origin; every answer over HTTP, a revocation published while it runs, and
// the isolate's counters.
// Run by tests/run.sh: KEYGATE_BIN=path/to/keygate node --test tests/hono-workerd.test.js
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
const work = fs.mkdtempSync(path.join(os.tmpdir(), "keygate-hono-workerd-"));
const store = path.join(work, "store");
const site = path.join(work, "site");
const kg = (...args) => JSON.parse(execFileSync(BIN, ["--store", store, "--json", ...args], { encoding: "utf8" }) || "null");
const issue = (principal, scope) => kg("issue", "--principal", principal, "--scope", scope).key;

let origin, workerd, port;
const keys = {};

test.before(async () => {
  kg("init", "--keyset", "edge", "--prefix", "edge_live");
  keys.valid = issue("billing-service", "invoices:read");
  keys.old = issue("mobile-app", "invoices:read");
  keys.rotated = kg("rotate", "--principal", "mobile-app", "--grace", "7d").key;
  keys.noscope = issue("search-indexer", "search:read");
  keys.revoked = issue("leaky", "invoices:read");
  keys.toRevoke = issue("breach", "invoices:read");
  kg("revoke", "--key", keys.revoked);
  kg("publish", "--out", site);
  origin = await serveArtifacts(site);
  // The app bundled as wrangler does: Hono and keygate's JS inlined, the
  // WASM module left as its own module.
  execFileSync(path.join(HERE, "node_modules/.bin/esbuild"), [
    path.join(__dirname, "hono-worker/worker.js"), "--bundle", "--format=esm", "--log-level=warning",
    `--outfile=${path.join(work, "worker.js")}`, "--external:./keygate_bg.wasm",
    `--alias:keygate=${path.join(HERE, "pkg/web")}`,
  ], { stdio: "inherit" });
  fs.copyFileSync(path.join(HERE, "pkg/web/keygate_bg.wasm"), path.join(work, "keygate_bg.wasm"));
  port = await freePort();
  const cfg = path.join(work, "config.capnp");
  fs.writeFileSync(cfg, `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .app),
    (name = "origin", external = (address = "127.0.0.1:${origin.port}", http = ())),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],
);
const app :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "worker.js"),
    (name = "keygate_bg.wasm", wasm = embed "keygate_bg.wasm"),
  ],
  bindings = [
    (name = "TRUST_ANCHOR", text = "${fs.readFileSync(path.join(site, "trust.kgt")).toString("base64")}"),
    (name = "ORIGIN", service = "origin"),
    (name = "REFRESH_SECONDS", text = "1"),
  ],
  compatibilityDate = "2024-09-01",
);
`);
  workerd = spawn(path.join(HERE, "node_modules/.bin/workerd"), ["serve", cfg], { stdio: ["ignore", "inherit", "inherit"] });
  const until = Date.now() + 20000;
  for (;;) {
    try {
      await fetch(`http://127.0.0.1:${port}/metrics`);
      break;
    } catch (e) {
      if (Date.now() > until) throw new Error(`workerd did not listen on ${port}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
});

test.after(() => {
  workerd?.kill();
  origin?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

async function get(headers = {}) {
  const r = await fetch(`http://127.0.0.1:${port}/invoices/5`, { headers });
  return { status: r.status, headers: r.headers, body: await r.text() };
}
const bearer = (k) => ({ authorization: `Bearer ${k}` });

test("Hono in workerd answers by the gateway contract", async () => {
  let r = await get(bearer(keys.valid));
  assert.equal(r.status, 200, r.body);
  assert.match(r.body, /^verdict=billing-service key=[0-9a-f]{32} scopes=invoices:read deprecated=false\n$/);
  assert.equal(r.headers.get("deprecation"), null);
  assert.equal((await get({ "x-api-key": keys.valid })).status, 200, "X-API-Key");
  r = await get();
  assert.equal(r.status, 401);
  assert.equal(r.headers.get("www-authenticate"), 'Bearer realm="keygate"');
  r = await get(bearer(keys.revoked));
  assert.equal(r.status, 401);
  assert.match(r.headers.get("www-authenticate"), /error="invalid_token", error_description="revoked"/);
  r = await get(bearer("edge_live_nope"));
  assert.match(r.headers.get("www-authenticate"), /error_description="malformed"/);
  r = await get(bearer(keys.noscope));
  assert.equal(r.status, 403);
  assert.match(r.headers.get("www-authenticate"), /error="insufficient_scope"/);
  r = await get(bearer(keys.old));
  assert.equal(r.status, 200, "a deprecated key is still taken");
  assert.match(r.body, /verdict=mobile-app .* deprecated=true/);
  assert.match(r.headers.get("deprecation") || "", /^@\d+$/);
  assert.match(r.headers.get("sunset") || "", /GMT$/);
  assert.equal((await get(bearer(keys.rotated))).status, 200);
  r = await get({ ...bearer(keys.valid), "x-api-key": keys.noscope });
  assert.equal(r.status, 400, "two different keys");
  // Two copies of the header, joined by fetch into one comma list.
  const h = new Headers();
  h.append("x-api-key", keys.valid);
  h.append("x-api-key", keys.noscope);
  assert.equal((await get(h)).status, 400, "a repeated X-API-Key with two keys");
});

test("a revocation published while it runs is in force after the next refresh", async () => {
  assert.equal((await get(bearer(keys.toRevoke))).status, 200);
  kg("revoke", "--key", keys.toRevoke);
  const t0 = Date.now();
  kg("publish", "--out", site);
  while ((await get(bearer(keys.toRevoke))).status === 200) {
    assert.ok(Date.now() - t0 < 4000, "revocation not in force within 4 s (refresh 1 s)");
    await new Promise((r) => setTimeout(r, 50));
  }
  console.log(`hono in workerd: revocation in force ${Date.now() - t0} ms after the publish (refresh 1 s)`);
  assert.equal((await get(bearer(keys.valid))).status, 200);
  const m = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  assert.match(m, /^keygate_verify_total\{outcome="valid"\} [1-9]/m);
  assert.match(m, /^keygate_verify_total\{outcome="revoked"\} [1-9]/m);
  for (const k of Object.values(keys)) assert.ok(!m.includes(k), "no key in the metrics");
});

test("keygate/edge: an artifact over the size limit or a forged Content-Length changes nothing", async () => {
  const { pathToFileURL } = require("node:url");
  const web = await import(pathToFileURL(path.join(HERE, "pkg/web/index.js")));
  web.initSync({ module: fs.readFileSync(path.join(HERE, "pkg/web/keygate_bg.wasm")) });
  const { Keygate } = await import(pathToFileURL(path.join(HERE, "pkg/web/edge.js")));
  const hostile = await serveArtifacts(site);
  const url = hostile.url;
  const anchor = fs.readFileSync(path.join(site, "trust.kgt")).toString("base64");
  try {
    // A snapshot over a small limit is not installed: nothing loaded, 503.
    const small = new Keygate({ anchor, origin: url, maxArtifact: 100 });
    await small.ready();
    assert.equal(small.loaded, false);
    assert.ok(small.errors >= 1);
    assert.equal(small.check([["authorization", `Bearer ${keys.valid}`]], "invoices:read").status, 503);
    // Loaded under the default limit; then the origin forges a huge
    // snapshot: the refresh fails at once and the state is kept.
    const k = new Keygate({ anchor, origin: url });
    await k.ready();
    assert.equal(k.check([["authorization", `Bearer ${keys.valid}`]], "invoices:read").status, 200);
    hostile.forge();
    const errors = k.errors, t0 = Date.now();
    await k.refresh();
    assert.ok(Date.now() - t0 < 2000, "a forged Content-Length must not be waited for");
    assert.equal(k.errors, errors + 1);
    assert.equal(k.check([["authorization", `Bearer ${keys.valid}`]], "invoices:read").status, 200);
    // A failing origin is asked less and less often: the wait doubles up
    // to the bound (requests keep being answered from what is loaded).
    let asked = 0;
    const down = http.createServer((req, res) => {
      asked++;
      res.writeHead(500).end();
    });
    await new Promise((r) => down.listen(0, "127.0.0.1", r));
    try {
      const b = new Keygate({ anchor, origin: `http://127.0.0.1:${down.address().port}/`, refreshSeconds: 0.02, maxBackoffSeconds: 0.16 });
      const waits = [];
      const until = Date.now() + 1500;
      while (Date.now() < until) {
        const w = b.ready();
        if (w) {
          await w;
          waits.push(b.wait);
        }
        await new Promise((r) => setTimeout(r, 5));
      }
      assert.deepEqual(waits.slice(0, 4), [40, 80, 160, 160], `waits ${waits}`);
      // Without the backoff ~75 looks at 20 ms; with it about 12 (each
      // look asks for the three artifacts).
      assert.ok(asked / 3 <= 14, `${asked / 3} looks at a failing origin in 1.5 s`);
      assert.equal(b.check([["authorization", `Bearer ${keys.valid}`]], "invoices:read").status, 503);
    } finally {
      down.close();
    }
    // A bad setting is refused when the Keygate is made (a binding that
    // parsed as NaN would refresh on every request or lift the size limit).
    assert.throws(() => new Keygate({ anchor, origin: url, realm: 'a"b' }), /realm/);
    for (const [name, value] of [["refreshSeconds", "abc"], ["refreshSeconds", "-1"], ["maxArtifact", -1],
      ["maxArtifact", "1e999"], ["maxBackoffSeconds", "soon"], ["refreshSeconds", 0], ["retryAfter", "x"]]) {
      assert.throws(() => new Keygate({ anchor, origin: url, [name]: value }), new RegExp(name), `${name}=${value}`);
    }
    assert.equal(new Keygate({ anchor, origin: url, refreshSeconds: "0.5", maxArtifact: "1000" }).maxArtifact, 1000);
  } finally {
    hostile.close();
  }
});
