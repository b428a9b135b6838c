// The Node adapters' cost per request: one hello-world route in Express,
// Fastify and Hono, each without auth, behind a middleware that does
// nothing (what any middleware costs in that framework: the peer of
// keygate's own work) and with keygate, served from this process on
// 127.0.0.1; bench/frameworks.sh drives them with wrk.
// Usage: node bench/frameworks.js PUBLISH_DIR (prints "name port" lines, then serves)
"use strict";
const { Keygate } = require("../pkg/node/node.js");
const keygate = Keygate.fromDir(process.argv[2]);
const opts = { scope: "invoices:read" };

async function main() {
  const out = [];
  for (const mode of ["", "_noop", "_keygate"]) {
    const withKeygate = mode === "_keygate", noop = mode === "_noop";
    const e = require("express")();
    if (withKeygate) e.use(require("../pkg/node/express.js")(keygate, opts));
    if (noop) e.use((req, res, next) => next());
    e.get("/hello", (req, res) => res.type("text/plain").send("hello\n"));
    const s = e.listen(0, "127.0.0.1");
    await new Promise((r) => s.once("listening", r));
    out.push([`express${mode}`, s.address().port]);

    const f = require("fastify")();
    if (withKeygate) f.addHook("onRequest", require("../pkg/node/fastify.js")(keygate, opts));
    if (noop) f.addHook("onRequest", async () => {});
    f.get("/hello", async (req, reply) => {
      reply.type("text/plain");
      return "hello\n";
    });
    await f.listen({ port: 0, host: "127.0.0.1" });
    out.push([`fastify${mode}`, f.server.address().port]);

    const { Hono } = require("hono");
    const { serve } = require("@hono/node-server");
    const h = new Hono();
    if (withKeygate) h.use("/hello", require("../pkg/node/hono.js")(keygate, opts));
    if (noop) h.use("/hello", async (c, next) => { await next(); });
    h.get("/hello", (c) => c.text("hello\n"));
    const hs = await new Promise((resolve) => {
      const s2 = serve({ fetch: h.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s2));
    });
    out.push([`hono${mode}`, hs.address().port]);
  }
  for (const [n, p] of out) console.log(`${n} ${p}`);
}
main();
