import type { Keygate } from "./types";
/** Anything with the gateway contract's check: keygate/node's Keygate (or keygate/edge's). */
type KeygateSource = Pick<Keygate, "check"> & { ready?(ctx?: any): Promise<unknown> | null };
declare function keygateHono(source: KeygateSource | ((c: any) => KeygateSource), options?: { scope?: string }): (c: any, next: () => Promise<void>) => Promise<any>;
declare namespace keygateHono {
  /** The same function, for `const { keygate } = require("keygate/hono")`. */
  const keygate: typeof keygateHono;
}
export = keygateHono;
