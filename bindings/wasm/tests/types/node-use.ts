// Every entry point of pkg/node as an application uses it (type-checked by
// tests/types/check.sh, never run).
import { Keygate, principalOf, KeygatePrincipal } from "keygate/node";
import keygateExpress = require("keygate/express");
import keygateFastify = require("keygate/fastify");
import keygateHono = require("keygate/hono");
import { RotatingKey } from "keygate/client";
import { Verifier, readCapped, Answer, Verdict } from "keygate";

const k: Keygate = Keygate.fromDir("/srv/keygate", { pollInterval: 1000, maxArtifact: 1 << 20 });
const a: Answer = k.check(["authorization", "Bearer x"], "invoices:read");
const pairs: Answer = k.check([["x-api-key", "k"]]);
const p: KeygatePrincipal = principalOf(a);
const scopes: string[] = p.scopes;
const v: Verdict = k.verify("x");
keygateExpress(k, { scope: "invoices:read" });
keygateFastify(k);
keygateHono(k, { scope: "invoices:read" });
keygateHono.keygate(k);
const keys = new RotatingKey("current", "next");
// @ts-expect-error: scopes are strings
const wrong: number[] = p.scopes;
void [pairs, scopes, v, keys, wrong, Verifier, readCapped];
