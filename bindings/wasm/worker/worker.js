// keygate as a Cloudflare-style Worker: verifies the API key of every request
// in-process and forwards good ones to UPSTREAM with the principal header.
// It applies the core's gateway contract (Verifier.check): the same statuses,
// challenges and stripped headers as every other keygate surface.
//
// Bindings: TRUST_ANCHOR (required: the pinned trust.kgt, as base64 text or
// a data binding — the origin may only serve newer bundles that chain from
// it), ORIGIN (service or URL serving trust.kgt, snapshot.kgs,
// revocations.kgr), UPSTREAM (service), SCOPE (required scope, optional),
// REFRESH_SECONDS (artifact poll interval, default 1), MAX_BACKOFF_SECONDS
// (the longest wait while the origin fails, default 30), PRINCIPAL_HEADER
// (default x-keygate-principal), REALM (default "keygate"), RETRY_AFTER
// (seconds on a 503, default 5), MAX_ARTIFACT (bytes, default 2 GiB: the
// largest artifact read from the origin), METRICS_PATH with METRICS_TOKEN (both or
// neither: GET METRICS_PATH with `x-keygate-metrics-token: METRICS_TOKEN`
// answers this isolate's counters as Prometheus text).
import { initSync } from "./index.js";
import { Keygate } from "./edge.js";
import wasmModule from "./keygate_bg.wasm";

initSync({ module: wasmModule });

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
function metrics(request, env, gate) {
  if (!env.METRICS_TOKEN) return new Response("keygate: METRICS_PATH needs METRICS_TOKEN\n", { status: 500 });
  if (!sameSecret(request.headers.get("x-keygate-metrics-token") ?? "", env.METRICS_TOKEN)) {
    return new Response("forbidden\n", { status: 403 });
  }
  const text = gate.metrics();
  if (text === null) return new Response("keygate: no trust anchor\n", { status: 503 });
  return new Response(text, { headers: { "content-type": "text/plain; version=0.0.4" } });
}

function reply(a) {
  return new Response(a.body, { status: a.status, headers: [...a.responseHeaders, ["content-type", "text/plain"]] });
}

export default {
  async fetch(request, env, ctx) {
    const gate = Keygate.fromEnv(env);
    if (env.METRICS_PATH && new URL(request.url).pathname === env.METRICS_PATH) return metrics(request, env, gate);
    const waiting = gate.ready(ctx);
    if (waiting) await waiting;
    const a = gate.check(request.headers, env.SCOPE || undefined);
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
