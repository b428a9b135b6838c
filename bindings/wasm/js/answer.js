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
