// keygate for Workers and other fetch-based runtimes (workerd, Deno, Bun):
// one Verifier per isolate, kept current from an artifact origin by the
// core's reload rules (Reload), and the gateway contract for a request
// (check). The Worker (worker/worker.js) and keygate/hono run on it.
//
//   const gate = Keygate.fromEnv(env);   // once per isolate
//   await gate.ready(ctx);               // first load waits, later ones run behind
//   const a = gate.check(request.headers, "invoices:read");
//
// Settings (fromEnv reads the Worker's bindings of the same names):
// TRUST_ANCHOR / anchor (required: the pinned trust.kgt, bytes or base64
// text — the origin may only serve newer bundles that chain from it),
// ORIGIN / origin (a URL or a service binding serving trust.kgt,
// snapshot.kgs, revocations.kgr), REFRESH_SECONDS / refreshSeconds (default
// 1), MAX_BACKOFF_SECONDS / maxBackoffSeconds (while the origin fails the
// wait doubles up to this, default 30), REALM / realm, PRINCIPAL_HEADER /
// principalHeader, RETRY_AFTER /
// retryAfter (the contract's defaults when absent), MAX_ARTIFACT /
// maxArtifact (the largest artifact read from the origin, default 2 GiB as
// the core's Origin: a Worker's memory is smaller, so set it).
import { Verifier, Reload, notLoaded, principalOf, readCapped, __setting as setting } from "./index.js";

function anchorBytes(anchor) {
  if (anchor instanceof ArrayBuffer) return new Uint8Array(anchor);
  if (ArrayBuffer.isView(anchor)) return new Uint8Array(anchor.buffer, anchor.byteOffset, anchor.byteLength);
  if (typeof anchor === "string") return Uint8Array.from(atob(anchor.trim()), (c) => c.charCodeAt(0));
  throw new Error("no trust anchor (pin trust.kgt as bytes or base64 text)");
}

// The Keygate fromEnv made, with the anchor it was made from: one per
// isolate, made again only if the anchor binding changes.
let isolate = null;

function sameAnchor(a, b) {
  if (a === b) return true;
  if (typeof a === "string" || typeof b === "string" || a == null || b == null) return false;
  let x, y;
  try {
    x = anchorBytes(a);
    y = anchorBytes(b);
  } catch (e) {
    return false;
  }
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

export class Keygate {
  constructor({ anchor, origin, refreshSeconds, maxBackoffSeconds, realm, principalHeader, retryAfter, maxArtifact } = {}) {
    this.origin = origin;
    this.maxArtifact = setting("maxArtifact", maxArtifact, 2 ** 31);
    this.interval = setting("refreshSeconds", refreshSeconds, 1) * 1000;
    this.maxBackoff = Math.max(setting("maxBackoffSeconds", maxBackoffSeconds, 30) * 1000, this.interval);
    // The wait before the next refresh: the interval, doubled while the
    // origin fails (the core's Poller does the same).
    this.wait = this.interval;
    this.options = { realm: realm || undefined, principalHeader: principalHeader || undefined, retryAfter: retryAfter === undefined || retryAfter === "" ? undefined : Number(retryAfter) };
    notLoaded(this.options); // the settings, checked by the core (throws when invalid)
    this.verifier = null;
    try {
      this.verifier = new Verifier(anchorBytes(anchor));
    } catch (e) {
      // Logged once; every request answers 503 until the anchor is fixed.
      console.error(`keygate: trust anchor not usable: ${e.message}`);
    }
    this.reload = new Reload();
    this.checkedAt = 0;
    this.refreshing = null;
    this.loaded = false;
    this.errors = 0;
  }

  // The one Keygate of this isolate for a Worker's bindings (made on first
  // use; its origin is the binding of the request at hand, as a runtime may
  // hand each request its own binding objects).
  static fromEnv(env) {
    if (isolate === null || !sameAnchor(isolate.anchor, env.TRUST_ANCHOR)) {
      const keygate = new Keygate({
        anchor: env.TRUST_ANCHOR, origin: env.ORIGIN, refreshSeconds: env.REFRESH_SECONDS,
        maxBackoffSeconds: env.MAX_BACKOFF_SECONDS, realm: env.REALM,
        principalHeader: env.PRINCIPAL_HEADER, retryAfter: env.RETRY_AFTER, maxArtifact: env.MAX_ARTIFACT,
      });
      isolate = { anchor: env.TRUST_ANCHOR, keygate };
    }
    isolate.keygate.origin = env.ORIGIN;
    return isolate.keygate;
  }

  fetchArtifact(name, etag) {
    const headers = etag ? { "if-none-match": etag } : {};
    if (typeof this.origin === "string") return fetch(new URL(name, this.origin), { headers });
    return this.origin.fetch(`http://origin/${name}`, { headers });
  }

  // Fetches what changed and installs it by the core's reload rules: trust
  // first, so a snapshot by a rotated signer is never refused; a trust
  // update or revocations the origin does not have (404) are none yet; a
  // missing snapshot, a failed fetch or a refused artifact keep the current
  // state, are logged, and are tried again on the next tick. Resolves to
  // whether the origin answered (not: a failed fetch, no snapshot there).
  async refresh() {
    let answered = true;
    for (const name of Reload.order()) {
      let step;
      try {
        const res = await this.fetchArtifact(name, this.reload.validator(name));
        const bytes = res.status === 200 ? await readCapped(res, this.maxArtifact) : undefined;
        step = this.reload.offer(this.verifier, name, res.status, bytes, res.headers.get("etag") ?? undefined);
      } catch (e) {
        step = { step: "failed", error: e.message };
      }
      if (step.step === "installed" && name === "snapshot.kgs") this.loaded = true;
      if (step.step === "failed" || step.step === "snapshot_missing") answered = false;
      if (step.error) {
        this.errors++;
        console.error(`keygate: ${name} not installed: ${step.error}`);
      }
    }
    this.checkedAt = Date.now();
    this.wait = answered ? this.interval : Math.min(this.wait * 2, this.maxBackoff);
    return answered;
  }

  // Resolves when a request can be checked: until a snapshot is installed
  // every request waits for the refresh; later ones are answered at once
  // while a due refresh runs in the background (ctx.waitUntil).
  ready(ctx) {
    if (this.verifier === null) return null;
    if (Date.now() - this.checkedAt < this.wait || this.refreshing) {
      return this.loaded ? null : this.refreshing;
    }
    this.refreshing = this.refresh().finally(() => (this.refreshing = null));
    if (!this.loaded) return this.refreshing;
    ctx?.waitUntil?.(this.refreshing);
    return null;
  }

  // The gateway contract for one request: `headers` a fetch `Headers` or
  // [name, value] pairs (a caller that never forwards the request can pass
  // only the key headers). No usable anchor: 503.
  check(headers, scope) {
    const options = { ...this.options, scope };
    if (this.verifier === null) return notLoaded(options);
    return this.verifier.check(Array.isArray(headers) ? headers : [...headers], options);
  }

  // The counters as Prometheus text (null without a usable anchor).
  metrics() {
    return this.verifier === null ? null : this.verifier.statsPrometheus();
  }
}

export { principalOf };
