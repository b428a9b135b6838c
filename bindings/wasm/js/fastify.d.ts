import type { Keygate } from "./types";
declare function keygateFastify(keygate: Keygate, options?: { scope?: string }): (request: any, reply: any) => Promise<any>;
export = keygateFastify;
