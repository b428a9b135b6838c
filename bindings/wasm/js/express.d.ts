import type { Keygate } from "./types";
declare function keygateExpress(keygate: Keygate, options?: { scope?: string }): (req: any, res: any, next: (err?: any) => void) => void;
export = keygateExpress;
