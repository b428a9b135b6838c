import type { Verifier } from "./keygate";
import type { Answer, KeygatePrincipal } from "./answer";
export type { Answer, KeygatePrincipal, Verdict } from "./answer";

export interface EdgeOptions {
  /** The pinned trust.kgt: bytes or base64 text. */
  anchor: ArrayBuffer | ArrayBufferView | string;
  /** A URL, or a service binding (anything with fetch), serving the artifacts. */
  origin: string | { fetch(input: string, init?: any): Promise<Response> };
  /** Seconds between refreshes (default 1). */
  refreshSeconds?: number | string;
  /** While the origin fails, the wait doubles up to this many seconds (default 30). */
  maxBackoffSeconds?: number | string;
  realm?: string;
  principalHeader?: string;
  retryAfter?: number | string;
  /** The largest artifact read from the origin (default 2 GiB; a Worker has less memory: set it). */
  maxArtifact?: number | string;
}

export declare class Keygate {
  constructor(options: EdgeOptions);
  /** The one Keygate of this isolate for a Worker's bindings (TRUST_ANCHOR, ORIGIN, REFRESH_SECONDS, REALM, PRINCIPAL_HEADER, RETRY_AFTER). */
  static fromEnv(env: any): Keygate;
  readonly verifier: Verifier | null;
  /** null when a request can be checked now; else wait for the returned promise (the first load). */
  ready(ctx?: { waitUntil(p: Promise<any>): void }): Promise<boolean> | null;
  /** One look at the origin now; resolves to whether it answered. */
  refresh(): Promise<boolean>;
  check(headers: Headers | Array<[string, string]>, scope?: string): Answer;
  metrics(): string | null;
}

export declare function principalOf(answer: Answer): KeygatePrincipal;
