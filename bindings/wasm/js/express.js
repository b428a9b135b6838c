// Express (and connect, and plain node:http) middleware:
//   app.use("/invoices", require("keygate/express")(keygate, { scope: "invoices:read" }))
// A refused request is answered here by the gateway contract; a forwarded
// one reaches the route without its key headers, with the principal header
// set and `req.keygate` = { principal, keyId, outcome, deprecated }.
"use strict";
const { principalOf } = require("./node.js");

function keygateExpress(keygate, { scope } = {}) {
  return function keygateMiddleware(req, res, next) {
    const a = keygate.check(req.rawHeaders, scope);
    if (!a.forward) {
      res.statusCode = a.status;
      for (const [n, v] of a.responseHeaders) res.setHeader(n, v);
      res.setHeader("content-type", "text/plain; charset=utf-8");
      res.end(a.body);
      return;
    }
    for (const n of a.strip) delete req.headers[n.toLowerCase()];
    req.headers[a.principalHeader] = a.principalValue;
    req.keygate = principalOf(a);
    for (const [n, v] of a.responseHeaders) res.setHeader(n, v);
    next();
  };
}

module.exports = keygateExpress;
module.exports.default = keygateExpress;
