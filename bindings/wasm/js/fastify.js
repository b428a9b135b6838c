// Fastify: an onRequest hook.
//   fastify.addHook("onRequest", require("keygate/fastify")(keygate, { scope: "invoices:read" }))
// (or in a route's `onRequest` option, for one route). A refused request is
// answered by the gateway contract; a forwarded one reaches the handler
// without its key headers, with the principal header set and
// `request.keygate` = { principal, keyId, outcome, deprecated }.
"use strict";
const { principalOf } = require("./node.js");

function keygateFastify(keygate, { scope } = {}) {
  return async function keygateOnRequest(request, reply) {
    const a = keygate.check(request.raw.rawHeaders, scope);
    if (!a.forward) {
      reply.code(a.status);
      for (const [n, v] of a.responseHeaders) reply.header(n, v);
      reply.type("text/plain; charset=utf-8").send(a.body);
      return reply;
    }
    for (const n of a.strip) delete request.headers[n];
    request.headers[a.principalHeader] = a.principalValue;
    request.keygate = principalOf(a);
    for (const [n, v] of a.responseHeaders) reply.header(n, v);
  };
}

module.exports = keygateFastify;
module.exports.default = keygateFastify;
