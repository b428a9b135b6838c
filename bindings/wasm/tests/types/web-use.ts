// Every entry point of pkg/web as a Worker uses it (type-checked by
// tests/types/check.sh, never run).
import { Keygate } from "keygate-web/edge";
import { keygate } from "keygate-web/hono";
import { initSync, principalOf, Answer } from "keygate-web";

declare const wasm: WebAssembly.Module;
initSync({ module: wasm });
const gate = Keygate.fromEnv({ TRUST_ANCHOR: "", ORIGIN: "https://keys.example/" });
const waiting: Promise<unknown> | null = gate.ready({ waitUntil() {} });
const a: Answer = gate.check(new Headers(), "invoices:read");
const mine = new Keygate({ anchor: new Uint8Array(0), origin: "https://keys.example/", maxArtifact: 1 << 20 });
keygate((c: { env: unknown }) => Keygate.fromEnv(c.env), { scope: "invoices:read" });
keygate(mine);
const scopes: string[] = principalOf(a).scopes;
// @ts-expect-error: the status is a number
const wrong: string = a.status;
void [waiting, scopes, wrong];
