import type { Verifier } from "./keygate";
import type { Answer, KeygatePrincipal, Verdict } from "./answer";
export type { Answer, KeygatePrincipal, Verdict } from "./answer";

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

export declare class Keygate {
  readonly verifier: Verifier;
  static fromDir(dir: string, options?: KeygateOptions): Keygate;
  static fromUrl(anchor: Uint8Array, url: string, options?: KeygateOptions): Promise<Keygate>;
  reload(): Promise<boolean>;
  close(): void;
  /** `headers`: [name, value] pairs, or Node's flat `rawHeaders`. */
  check(headers: Array<[string, string]> | string[], scope?: string): Answer;
  verify(key: string, scope?: string): Verdict;
  metrics(): string;
}

export declare function principalOf(answer: Answer): KeygatePrincipal;
