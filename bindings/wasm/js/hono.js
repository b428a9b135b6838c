// Hono middleware, the same in Node (@hono/node-server) and in Workers:
//   Node:    app.use("/invoices/*", keygate(Keygate.fromDir(dir), { scope: "invoices:read" }))
//            (const { keygate } = require("keygate/hono"); Keygate from "keygate/node")
//   Workers: app.use("/invoices/*", keygate((c) => Keygate.fromEnv(c.env), { scope: "invoices:read" }))
//            (import { keygate } from "keygate/hono"; Keygate from "keygate/edge")
// `source` is a Keygate, or a function of the context that returns one. A
// refused request is answered by the gateway contract; a forwarded one
// reaches the handler with c.get("keygate") = { principal, keyId, outcome,
// deprecated }. Hono's request is immutable, so the key headers stay on
// c.req: a handler that calls another service must not pass them on. A
// rotated key's response gets Deprecation/Sunset.

// The headers a key can travel in, from a fetch `Headers` (which joins a
// repeated field with commas, as the core reads it). Only these: the
// request is never forwarded from here, so nothing is stripped, and walking
// every header of a `Headers` costs more than the verify.
function keyHeaders(h) {
  const pairs = [];
  const auth = h.get("authorization");
  if (auth !== null) pairs.push(["authorization", auth]);
  const key = h.get("x-api-key");
  if (key !== null) pairs.push(["x-api-key", key]);
  return pairs;
}

function keygateHono(source, { scope } = {}) {
  return async function keygateMiddleware(c, next) {
    const gate = typeof source === "function" ? source(c) : source;
    if (typeof gate.ready === "function") {
      let ctx;
      try {
        ctx = c.executionCtx; // Hono throws where the runtime has none
      } catch (e) {
        ctx = undefined;
      }
      const waiting = gate.ready(ctx);
      if (waiting) await waiting;
    }
    // On @hono/node-server the Node request is at hand: its raw headers are
    // cheap to read, while touching c.req.raw.headers makes node-server
    // build a whole fetch Request (~30 us).
    const raw = c.env?.incoming?.rawHeaders;
    const a = gate.check(Array.isArray(raw) ? raw : keyHeaders(c.req.raw.headers), scope);
    if (!a.forward) {
      return c.text(a.body, a.status, Object.fromEntries(a.responseHeaders));
    }
    c.set("keygate", principalOf(a));
    await next();
    for (const [n, v] of a.responseHeaders) c.res.headers.set(n, v);
  };
}
