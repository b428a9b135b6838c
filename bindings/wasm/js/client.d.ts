export declare class RotatingKey {
  constructor(current: string, next?: string | null, options?: { retryAfter?: number });
  readonly inUse: string;
  switches: number;
  retryAfter: number;
  offerNext(key: string): void;
  send<R extends { status: number; headers: { get(name: string): string | null } }>(call: (key: string) => Promise<R>): Promise<R>;
}
