import type { Keygate, KeygatePrincipal } from "./edge";
type KeygateSource = Pick<Keygate, "check"> & { ready?(ctx?: any): Promise<unknown> | null };
export declare function keygate(source: KeygateSource | ((c: any) => KeygateSource), options?: { scope?: string }): (c: any, next: () => Promise<void>) => Promise<any>;
export default keygate;
export type { KeygatePrincipal };
