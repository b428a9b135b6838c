// A Hono app in a Worker, guarded by keygate/hono on keygate/edge: the
// app a user writes, bundled by esbuild (tests/hono-workerd.test.js) as
// wrangler would. Bindings: TRUST_ANCHOR, ORIGIN, REFRESH_SECONDS.
import { Hono } from "hono";
import { initSync } from "keygate";
import { Keygate } from "keygate/edge";
import { keygate } from "keygate/hono";
import wasm from "./keygate_bg.wasm";

initSync({ module: wasm });

const app = new Hono();
app.use("/invoices/*", keygate((c) => Keygate.fromEnv(c.env), { scope: "invoices:read" }));
app.get("/invoices/:id", (c) => {
  const who = c.get("keygate");
  return c.text(`verdict=${who.principal} key=${who.keyId} scopes=${who.scopes.join(",")} deprecated=${who.deprecated}\n`);
});
app.get("/metrics", (c) => c.text(Keygate.fromEnv(c.env).metrics() ?? "no anchor\n"));
export default app;
