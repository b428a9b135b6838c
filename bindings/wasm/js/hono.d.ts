import type { Keygate } from "./types";
declare function keygateHono(keygate: Keygate, options?: { scope?: string }): (c: any, next: () => Promise<void>) => Promise<any>;
export = keygateHono;
