// Types both packages share (pkg/node and pkg/web).

/** An outcome's name. */
export type Outcome = "valid" | "valid_deprecated" | "revoked" | "expired" | "not_yet_valid" | "unknown"
  | "malformed" | "insufficient_scope" | "stale";

/** What `verify` returns. */
export interface Verdict {
  outcome: Outcome;
  principal: string;
  keyId: string | null;
  expiresAt: number | null;
  deprecatedAt: number | null;
  sunsetAt: number | null;
  snapshotVersion: number;
  revocationSeq: number;
  stale: boolean;
}

/** The gateway contract's answer to one request (`check`). */
export interface Answer {
  /** 200 (forward), 400, 401, 403 or 503. */
  status: number;
  forward: boolean;
  /** The refusal's body (plain text). */
  body: string;
  /** null when no key, two keys, or nothing loaded. */
  outcome: Outcome | null;
  /** When forwarded: the principal, its header value (percent-encoded where needed), the key's scopes. */
  principal: string | null;
  principalValue: string | null;
  principalHeader: string;
  scopes: string[] | null;
  keyId: string | null;
  /** On the refusal, or on the upstream's response when forwarded (Deprecation/Sunset). */
  responseHeaders: Array<[string, string]>;
  /** Request headers to delete before forwarding (lowercase). */
  strip: string[];
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

export declare function principalOf(answer: Answer): KeygatePrincipal;
