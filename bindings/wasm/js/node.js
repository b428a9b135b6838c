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

class Keygate {
  constructor(verifier, source, options) {
    this.verifier = verifier;
    this.source = source;
    const o = { ...DEFAULTS, ...options };
    o.pollInterval = core.__setting("pollInterval", options.pollInterval, DEFAULTS.pollInterval, { zero: true });
    o.maxBackoff = core.__setting("maxBackoff", options.maxBackoff, DEFAULTS.maxBackoff);
    o.maxArtifact = core.__setting("maxArtifact", options.maxArtifact, DEFAULTS.maxArtifact);
    this.options = o;
    // The request headers the contract reads, by name (see relevantHeaders).
    const names = ["authorization", "x-api-key", o.principalHeader.toLowerCase().replace(/_/g, "-")];
    this.wanted = { names, lengths: new Set(names.map((n) => n.length)) };
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
          bytes = await core.readCapped(res, this.options.maxArtifact);
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

  // The gateway contract for one request: `headers` as [name, value] pairs
  // or as Node's flat `rawHeaders` ([name, value, name, value, ...]).
  check(headers, scope) {
    const { realm, principalHeader, retryAfter } = this.options;
    return this.verifier.check(this.relevantHeaders(headers), { scope, realm, principalHeader, retryAfter });
  }

  // The request headers the gateway contract reads: the key headers and
  // the principal header, by name compared as the core does (ASCII
  // case-insensitive, `_` and `-` alike). Only these cross into WASM: the
  // others are irrelevant to the answer, and converting all of them cost
  // most of a check. A name is lowercased only when its length is one of
  // theirs.
  relevantHeaders(headers) {
    const wanted = this.wanted;
    const out = [];
    const flat = headers.length > 0 && typeof headers[0] === "string";
    const step = flat ? 2 : 1;
    for (let i = 0; i < headers.length; i += step) {
      const n = flat ? headers[i] : headers[i][0];
      if (typeof n !== "string") {
        out.push(flat ? [n, headers[i + 1]] : headers[i]); // the check refuses it
        continue;
      }
      if (!wanted.lengths.has(n.length)) continue;
      const name = n.toLowerCase().replace(/_/g, "-");
      if (wanted.names.includes(name)) out.push(flat ? [n, headers[i + 1]] : headers[i]);
    }
    return out;
  }

  verify(key, scope) {
    return this.verifier.verify(key, scope === undefined ? undefined : { scope });
  }

  // The counters as Prometheus text (the names every keygate surface exports).
  metrics() {
    return this.verifier.statsPrometheus();
  }
}

module.exports = { Keygate, principalOf: core.principalOf };
