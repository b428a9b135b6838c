import type { Verifier } from "./keygate";

export interface KeygateOptions {
  /** ms between polls (default 1000; 0: only on reload()). */
  pollInterval?: number;
  /** the longest wait between polls while the origin fails (default 30000 ms). */
  maxBackoff?: number;
  realm?: string;
  principalHeader?: string;
  retryAfter?: number;
  /** the largest artifact read from an origin (default 2 GiB). */
  maxArtifact?: number;
}

/** What a middleware hands the application. Holds no secret. */
export interface KeygatePrincipal {
  principal: string;
  keyId: string;
  /** The scopes the key holds, in the keyset's order. */
  scopes: string[];
  outcome: "valid" | "valid_deprecated";
  deprecated: boolean;
}

export declare class Keygate {
  readonly verifier: Verifier;
  static fromDir(dir: string, options?: KeygateOptions): Keygate;
  static fromUrl(anchor: Uint8Array, url: string, options?: KeygateOptions): Promise<Keygate>;
  reload(): Promise<boolean>;
  close(): void;
  /** `headers`: [name, value] pairs, or Node's flat `rawHeaders`. */
  check(headers: Array<[string, string]> | string[], scope?: string): any;
  verify(key: string, scope?: string): any;
  metrics(): string;
}

export declare function principalOf(answer: any): KeygatePrincipal;
