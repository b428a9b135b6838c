// keygate as a Cloudflare-style Worker: verifies the API key of every request
// in-process and forwards good ones to UPSTREAM with the principal header.
// It applies the core's gateway contract (Verifier.check): the same statuses,
// challenges and stripped headers as every other keygate surface.
//
// Bindings: TRUST_ANCHOR (required: the pinned trust.kgt, as base64 text or
// a data binding — the origin may only serve newer bundles that chain from
// it), ORIGIN (service or URL serving trust.kgt, snapshot.kgs,
// revocations.kgr), UPSTREAM (service), SCOPE (required scope, optional),
// REFRESH_SECONDS (artifact poll interval, default 1), PRINCIPAL_HEADER
// (default x-keygate-principal), REALM (default "keygate"), RETRY_AFTER
// (seconds on a 503, default 5), METRICS_PATH with METRICS_TOKEN (both or
// neither: GET METRICS_PATH with `x-keygate-metrics-token: METRICS_TOKEN`
// answers this isolate's counters as Prometheus text).
import { initSync, Verifier, Reload, notLoaded } from "./index.js";
import wasmModule from "./keygate_bg.wasm";

initSync({ module: wasmModule });

const state = { verifier: null, reload: null, anchorError: null, checkedAt: 0, refreshing: null, errors: 0, loaded: false };

function anchorBytes(anchor) {
  if (anchor instanceof ArrayBuffer) return new Uint8Array(anchor);
  if (ArrayBuffer.isView(anchor)) return new Uint8Array(anchor.buffer, anchor.byteOffset, anchor.byteLength);
  if (typeof anchor === "string") return Uint8Array.from(atob(anchor.trim()), (c) => c.charCodeAt(0));
  throw new Error("no TRUST_ANCHOR binding (pin trust.kgt as base64 text or data)");
}

// The verifier from the pinned anchor, made once; null while the anchor is
// missing or refused (logged once; every request answers 503).
function verifierFor(env) {
  if (state.verifier) return state.verifier;
  try {
    state.verifier = new Verifier(anchorBytes(env.TRUST_ANCHOR));
    state.reload = new Reload();
  } catch (e) {
    if (state.anchorError !== e.message) console.error(`keygate: trust anchor not usable: ${e.message}`);
    state.anchorError = e.message;
  }
  return state.verifier;
}

function originFetch(env, name, etag) {
  const headers = etag ? { "if-none-match": etag } : {};
  if (typeof env.ORIGIN === "string") return fetch(new URL(name, env.ORIGIN), { headers });
  return env.ORIGIN.fetch(`http://origin/${name}`, { headers });
}

// Fetches what changed and installs it by the core's reload rules (Reload):
// trust first, so a snapshot by a rotated signer is never refused; a trust
// update or revocations the origin does not have (404) are none yet; a
// missing snapshot, a failed fetch or a refused artifact keep the current
// state, are logged, and are tried again on the next tick.
async function refresh(env, v) {
  for (const name of Reload.order()) {
    let step;
    try {
      const res = await originFetch(env, name, state.reload.validator(name));
      const bytes = res.status === 200 ? new Uint8Array(await res.arrayBuffer()) : undefined;
      step = state.reload.offer(v, name, res.status, bytes, res.headers.get("etag") ?? undefined);
    } catch (e) {
      step = { step: "failed", error: e.message };
    }
    if (step.step === "installed" && name === "snapshot.kgs") state.loaded = true;
    if (step.error) {
      state.errors++;
      console.error(`keygate: ${name} not installed: ${step.error}`);
    }
  }
  state.checkedAt = Date.now();
}

// Until a snapshot is installed every request waits for the refresh; later
// ones are answered at once while the refresh runs in the background.
function fresh(env, ctx, v) {
  const interval = Number(env.REFRESH_SECONDS || 1) * 1000;
  if (Date.now() - state.checkedAt < interval || state.refreshing) {
    return state.loaded ? null : state.refreshing;
  }
  state.refreshing = refresh(env, v).finally(() => (state.refreshing = null));
  if (!state.loaded) return state.refreshing;
  ctx.waitUntil(state.refreshing);
  return null;
}

// Compares two strings in time that depends only on their lengths (a
// token's length is no secret worth the complexity of hiding it).
function sameSecret(a, b) {
  const x = new TextEncoder().encode(a), y = new TextEncoder().encode(b);
  if (x.length !== y.length) return false;
  let d = 0;
  for (let i = 0; i < x.length; i++) d |= x[i] ^ y[i];
  return d === 0;
}

// The counters of this isolate's verifier, for a caller holding the token.
function metrics(request, env, v) {
  if (!env.METRICS_TOKEN) return new Response("keygate: METRICS_PATH needs METRICS_TOKEN\n", { status: 500 });
  if (!sameSecret(request.headers.get("x-keygate-metrics-token") ?? "", env.METRICS_TOKEN)) {
    return new Response("forbidden\n", { status: 403 });
  }
  if (!v) return new Response("keygate: no trust anchor\n", { status: 503 });
  return new Response(v.statsPrometheus(), { headers: { "content-type": "text/plain; version=0.0.4" } });
}

function reply(a) {
  return new Response(a.body, { status: a.status, headers: [...a.responseHeaders, ["content-type", "text/plain"]] });
}

export default {
  async fetch(request, env, ctx) {
    const options = {
      scope: env.SCOPE || undefined,
      realm: env.REALM || undefined,
      principalHeader: env.PRINCIPAL_HEADER || undefined,
      retryAfter: env.RETRY_AFTER ? Number(env.RETRY_AFTER) : undefined,
    };
    const v = verifierFor(env);
    if (env.METRICS_PATH && new URL(request.url).pathname === env.METRICS_PATH) return metrics(request, env, v);
    if (!v) return reply(notLoaded(options));
    const waiting = fresh(env, ctx, v);
    if (waiting) await waiting;
    const a = v.check([...request.headers], options);
    if (!a.forward) return reply(a);
    const headers = new Headers(request.headers);
    for (const name of a.strip) headers.delete(name);
    headers.set(a.principalHeader, a.principalValue);
    headers.set("x-keygate-key-id", a.keyId);
    const upstream = await env.UPSTREAM.fetch(new Request(request, { headers }));
    if (a.responseHeaders.length === 0) return upstream;
    const res = new Response(upstream.body, upstream);
    for (const [name, value] of a.responseHeaders) res.headers.set(name, value);
    return res;
  },
};
