/** Fixed-window rate limits: the Automation API's per-key budget and the failed API keys per address. */

export interface RateLimitState {
  readonly limit: number;
  readonly remaining: number;
  /** Seconds until the window resets (rounded up). */
  readonly resetSeconds: number;
  readonly exceeded: boolean;
}

/** Windows remembered at most; past this, expired ones are dropped, then the oldest (a fresh window). */
const MAX_RATE_WINDOWS = 10_000;

/**
 * A fixed window per key, like @fastify/rate-limit's local store, shared by whoever holds it: the Automation
 * API's per-key budget (one per platform: both listeners and every route count the same key together, where
 * the plugin keeps one counter per route), and the failed API keys of each client address (api-keys.ts).
 */
export class FixedWindowLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();

  constructor(
    readonly limit: number,
    readonly windowMs = 1000,
    private readonly now: () => number = () => Date.now(),
  ) {}

  hit(keyId: string): RateLimitState {
    const now = this.now();
    let window = this.windows.get(keyId);
    if (!window || now - window.start >= this.windowMs || now < window.start) {
      if (window) this.windows.delete(keyId);
      window = { start: now, count: 0 };
      this.windows.set(keyId, window);
      if (this.windows.size > MAX_RATE_WINDOWS) this.forget(now);
    }
    window.count += 1;
    return {
      limit: this.limit,
      remaining: Math.max(0, this.limit - window.count),
      resetSeconds: Math.max(1, Math.ceil((window.start + this.windowMs - now) / 1000)),
      exceeded: window.count > this.limit,
    };
  }

  /**
   * Seconds until `key`'s window resets when it has already used its limit (the next hit would exceed it);
   * null otherwise. Counts nothing.
   */
  blocked(key: string): number | null {
    const now = this.now();
    const window = this.windows.get(key);
    if (!window || now - window.start >= this.windowMs || now < window.start || window.count < this.limit) return null;
    return Math.max(1, Math.ceil((window.start + this.windowMs - now) / 1000));
  }

  /** Windows are kept in the order they started (a new window is re-inserted): expired ones come first. */
  private forget(now: number): void {
    for (const [key, window] of this.windows) {
      if (now - window.start < this.windowMs && this.windows.size <= MAX_RATE_WINDOWS) break;
      this.windows.delete(key);
    }
  }
}
