// Hono middleware (Node, via @hono/node-server):
//   app.use("/invoices/*", require("keygate/hono")(keygate, { scope: "invoices:read" }))
// A refused request is answered by the gateway contract; a forwarded one
// reaches the handler with c.get("keygate") = { principal, keyId, outcome,
// deprecated }. Hono's request is immutable, so the key headers stay on
// c.req: a handler that calls another service must not pass them on. A
// rotated key's response gets Deprecation/Sunset.
"use strict";
const { principalOf } = require("./node.js");

function keygateHono(keygate, { scope } = {}) {
  return async function keygateMiddleware(c, next) {
    const a = keygate.check([...c.req.raw.headers], scope);
    if (!a.forward) {
      return c.text(a.body, a.status, Object.fromEntries(a.responseHeaders));
    }
    c.set("keygate", principalOf(a));
    await next();
    for (const [n, v] of a.responseHeaders) c.res.headers.set(n, v);
  };
}

module.exports = keygateHono;
module.exports.default = keygateHono;
