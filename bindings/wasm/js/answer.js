// Helpers the Node and the web package share (build.sh puts this file in
// both index.js files).

// What a framework adapter hands the application for a forwarded request
// (no secret in it).
function principalOf(a) {
  return { principal: a.principal, keyId: a.keyId, scopes: a.scopes, outcome: a.outcome, deprecated: a.outcome === "valid_deprecated" };
}

// A fetch Response's body, refused past `max` bytes: a declared
// Content-Length over it before anything is read, a body that runs past it
// while reading (an origin is untrusted: it must not exhaust memory).
async function readCapped(res, max) {
  const declared = Number(res.headers.get("content-length"));
  if (declared > max) throw new Error(`over ${max} bytes (Content-Length ${declared})`);
  const reader = res.body.getReader();
  const chunks = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.length;
    if (n > max) {
      await reader.cancel();
      throw new Error(`over ${max} bytes`);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(n);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

// A numeric setting of keygate/node or keygate/edge: `value` (a number, or
// a numeric string as Worker bindings give them), or `fallback` when it is
// absent. Anything else — not a number, negative, infinite, or 0 where 0
// means nothing — throws, naming the setting: a setting that parsed as NaN
// would poll on every request or lift the artifact size limit.
function setting(name, value, fallback, { zero = false } = {}) {
  if (value === undefined || value === null || value === "") return fallback;
  const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
  if (typeof n !== "number" || !Number.isFinite(n) || n < 0 || (n === 0 && !zero)) {
    throw new TypeError(`keygate: ${name} must be a ${zero ? "non-negative" : "positive"} number, not ${String(value).slice(0, 40)}`);
  }
  return n;
}
