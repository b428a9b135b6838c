// keygate as a Cloudflare-style Worker: verifies the API key of every request
// in-process and forwards good ones to UPSTREAM with the principal header.
//
// Bindings: ORIGIN (service or URL serving trust.kgt, snapshot.kgs,
// revocations.kgr), UPSTREAM (service), SCOPE (required scope, optional),
// REFRESH_SECONDS (artifact poll interval, default 1), PRINCIPAL_HEADER
// (default x-keygate-principal), REALM (default "keygate").
import { initSync, Verifier } from "./index.js";
import wasmModule from "./keygate_bg.wasm";

initSync({ module: wasmModule });

const ARTIFACTS = ["trust.kgt", "snapshot.kgs", "revocations.kgr"];
const state = { verifier: null, etags: {}, checkedAt: 0, refreshing: null, errors: 0 };

function originFetch(env, name, etag) {
  const headers = etag ? { "if-none-match": etag } : {};
  if (typeof env.ORIGIN === "string") return fetch(new URL(name, env.ORIGIN), { headers });
  return env.ORIGIN.fetch(`http://origin/${name}`, { headers });
}

// Fetches the artifacts that changed (ETag) and installs them in order:
// trust first, so a snapshot by a rotated signer is never refused. A failed
// or refused fetch keeps the current state and is logged.
async function refresh(env) {
  for (const name of ARTIFACTS) {
    try {
      if (!state.verifier && name !== "trust.kgt") continue;
      const res = await originFetch(env, name, state.etags[name]);
      if (res.status === 304 || res.status === 404) continue;
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const bytes = new Uint8Array(await res.arrayBuffer());
      if (name === "trust.kgt") {
        if (state.verifier) state.verifier.loadTrust(bytes);
        else state.verifier = new Verifier(bytes);
      } else if (name === "snapshot.kgs") {
        state.verifier.loadSnapshot(bytes);
      } else {
        state.verifier.loadRevocations(bytes);
      }
      const etag = res.headers.get("etag");
      if (etag) state.etags[name] = etag;
    } catch (e) {
      state.errors++;
      console.error(`keygate: ${name} not installed: ${e.message}`);
    }
  }
  state.checkedAt = Date.now();
}

function fresh(env, ctx) {
  const interval = Number(env.REFRESH_SECONDS || 1) * 1000;
  if (!state.verifier) return (state.refreshing ||= refresh(env).finally(() => (state.refreshing = null)));
  if (Date.now() - state.checkedAt >= interval && !state.refreshing) {
    state.refreshing = refresh(env).finally(() => (state.refreshing = null));
    ctx.waitUntil(state.refreshing);
  }
  return null;
}

function presentedKey(request) {
  const auth = request.headers.get("authorization");
  if (auth && /^bearer\s+/i.test(auth)) return auth.replace(/^bearer\s+/i, "").trim();
  return request.headers.get("x-api-key");
}

function deny(status, realm, error, description) {
  let challenge = `Bearer realm="${realm}"`;
  if (error) challenge += `, error="${error}", error_description="${description}"`;
  return new Response(error ? `${error}\n` : "API key required\n", {
    status,
    headers: { "www-authenticate": challenge, "content-type": "text/plain" },
  });
}

export default {
  async fetch(request, env, ctx) {
    const waiting = fresh(env, ctx);
    if (waiting) await waiting;
    const realm = env.REALM || "keygate";
    const key = presentedKey(request);
    if (!key) return deny(401, realm);
    if (!state.verifier) return new Response("keygate: no artifacts yet\n", { status: 503 });
    const v = state.verifier.verify(key, { scope: env.SCOPE || undefined });
    switch (v.outcome) {
      case "valid":
      case "valid_deprecated":
        break;
      case "insufficient_scope":
        return deny(403, realm, "insufficient_scope", `scope ${env.SCOPE} required`);
      case "stale":
        return new Response("keygate: key data stale\n", { status: 503, headers: { "retry-after": "5" } });
      default:
        return deny(401, realm, "invalid_token", v.outcome);
    }
    const headers = new Headers(request.headers);
    headers.delete("authorization");
    headers.delete("x-api-key");
    headers.set(env.PRINCIPAL_HEADER || "x-keygate-principal", v.principal);
    headers.set("x-keygate-key-id", v.keyId);
    const upstream = await env.UPSTREAM.fetch(new Request(request, { headers }));
    if (v.outcome !== "valid_deprecated") return upstream;
    const res = new Response(upstream.body, upstream);
    res.headers.set("deprecation", `@${v.deprecatedAt}`);
    if (v.sunsetAt) res.headers.set("sunset", new Date(v.sunsetAt * 1000).toUTCString());
    return res;
  },
};
