// keygate for Node services: one Verifier kept current from a publish
// directory or a static HTTP origin by the core's reload rules (Reload), and
// the gateway contract for a request (Verifier.check). The framework
// adapters (keygate/express, keygate/fastify, keygate/hono) are built on it.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const core = require("./index.js");

// maxArtifact: the largest artifact read from an origin, as the core's
// Origin (2 GiB; 66 MB per million keys).
const DEFAULTS = { pollInterval: 1000, maxBackoff: 30000, realm: "keygate", principalHeader: "x-keygate-principal", retryAfter: 5, maxArtifact: 2 ** 31 };

// A response body, refused past `max` bytes: a declared Content-Length over
// it before anything is read, a body that runs past it while reading.
async function readCapped(res, max) {
  const declared = Number(res.headers.get("content-length"));
  if (declared > max) throw new Error(`over ${max} bytes (Content-Length ${declared})`);
  const chunks = [];
  let n = 0;
  for await (const chunk of res.body) {
    n += chunk.length;
    if (n > max) throw new Error(`over ${max} bytes`);
    chunks.push(chunk);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

class Keygate {
  constructor(verifier, source, options) {
    this.verifier = verifier;
    this.source = source;
    this.options = { ...DEFAULTS, ...options };
    this.reloadState = new core.Reload();
    this.timer = null;
    this.events = [];
  }

  // A publish directory: the trust anchor is pinned from its trust.kgt now
  // (later bundles there must chain from it); the artifacts are loaded now
  // and then every `pollInterval` ms (0: only on reload()).
  static fromDir(dir, options = {}) {
    const anchor = new Uint8Array(fs.readFileSync(path.join(dir, "trust.kgt")));
    const k = new Keygate(new core.Verifier(anchor), { dir }, options);
    k.reloadDir();
    k.start();
    return k;
  }

  // A static HTTP(S) origin, fetched with If-None-Match; `anchor` is the
  // trust.kgt you trust (bytes).
  static async fromUrl(anchor, url, options = {}) {
    if (!/^https?:\/\//.test(url)) throw new TypeError("url must be http(s)");
    const k = new Keygate(new core.Verifier(new Uint8Array(anchor)), { url: url.endsWith("/") ? url : url + "/" }, options);
    await k.reload();
    k.start();
    return k;
  }

  offer(name, status, bytes, etag) {
    const r = this.reloadState.offer(this.verifier, name, status, bytes, etag);
    if (r.error) this.events.push(`${name}: ${r.step}: ${r.error}`);
    if (this.events.length > 100) this.events.shift();
    return r;
  }

  // One look at each artifact file (a stamp compared before reading, as
  // the core's look_at_file does); whether the origin answered.
  reloadDir() {
    let answered = true;
    for (const name of core.Reload.order()) {
      const file = path.join(this.source.dir, name);
      let st;
      try {
        st = fs.statSync(file, { bigint: true });
      } catch (e) {
        if (e.code !== "ENOENT") answered = false;
        const r = this.offer(name, e.code === "ENOENT" ? 404 : 500);
        if (r.step === "snapshot_missing") answered = false;
        continue;
      }
      const stamp = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
      if (this.reloadState.validator(name) === stamp) continue;
      let bytes;
      try {
        bytes = new Uint8Array(fs.readFileSync(file));
      } catch (e) {
        answered = false;
        this.offer(name, 500);
        continue;
      }
      this.offer(name, 200, bytes, stamp);
    }
    return answered;
  }

  // Loads what changed now; resolves to whether the origin answered.
  async reload() {
    if (this.source.dir) return this.reloadDir();
    let answered = true;
    for (const name of core.Reload.order()) {
      const headers = {};
      const etag = this.reloadState.validator(name);
      if (etag) headers["if-none-match"] = etag;
      let res;
      try {
        res = await fetch(this.source.url + name, { headers, signal: AbortSignal.timeout(5000) });
      } catch (e) {
        answered = false;
        this.offer(name, 0);
        continue;
      }
      let bytes;
      if (res.status === 200) {
        try {
          bytes = await readCapped(res, this.options.maxArtifact);
        } catch (e) {
          answered = false;
          this.offer(name, 0);
          this.events.push(`${name}: not fetched: ${e.message}`);
          continue;
        }
      }
      const r = this.offer(name, res.status, bytes, res.headers.get("etag"));
      if (r.step === "failed" || r.step === "snapshot_missing") answered = false;
    }
    return answered;
  }

  start() {
    const { pollInterval, maxBackoff } = this.options;
    if (!pollInterval) return;
    let wait = pollInterval;
    const tick = async () => {
      const answered = await this.reload().catch(() => false);
      // While the origin fails, twice as long each time, up to maxBackoff.
      wait = answered ? pollInterval : Math.min(wait * 2, Math.max(maxBackoff, pollInterval));
      this.timer = setTimeout(tick, wait);
      this.timer.unref();
    };
    this.timer = setTimeout(tick, wait);
    this.timer.unref();
  }

  close() {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  // The gateway contract for one request: `headers` as [name, value] pairs.
  check(headers, scope) {
    const { realm, principalHeader, retryAfter } = this.options;
    return this.verifier.check(relevantHeaders(headers, principalHeader), { scope, realm, principalHeader, retryAfter });
  }

  verify(key, scope) {
    return this.verifier.verify(key, scope === undefined ? undefined : { scope });
  }

  // The counters as Prometheus text (the names every keygate surface exports).
  metrics() {
    return this.verifier.statsPrometheus();
  }
}

// The request headers the gateway contract reads: the key headers and the
// principal header, by name compared as the core does (ASCII case-insensitive,
// `_` and `-` alike). Only these cross into WASM: every other header is
// irrelevant to the answer, and converting all of them cost most of a check.
function relevantHeaders(pairs, principalHeader) {
  const wanted = ["authorization", "x-api-key", principalHeader.toLowerCase().replace(/_/g, "-")];
  const longest = Math.max(13, principalHeader.length);
  const out = [];
  for (const [n, v] of pairs) {
    if (n.length > longest) continue;
    const name = n.toLowerCase().replace(/_/g, "-");
    if (wanted.includes(name)) out.push([n, v]);
  }
  return out;
}

// What a framework adapter hands the application (no secret in it).
function principalOf(a) {
  return { principal: a.principal, keyId: a.keyId, outcome: a.outcome, deprecated: a.outcome === "valid_deprecated" };
}

module.exports = { Keygate, principalOf };
