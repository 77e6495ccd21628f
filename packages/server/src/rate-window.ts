/**
 * Fixed-window rate limits: the Client API's per-user budget (per address before sign-in), the Automation API's
 * per-key budget, the failed API keys and the sign-ups per address.
 */
import type { FastifyReply } from "fastify";
import type { Platform } from "./platform.ts";

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
 * A fixed window per key, shared by whoever holds it: the Client API's budget (every route and the native stream count
 * a user together), the Automation API's per-key budget (both listeners, every route and the native stream count a
 * key together), the failed API keys (api-keys.ts) and the sign-ups (routes/auth.ts) of each client address.
 */
export class FixedWindowLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();

  constructor(
    readonly limit: number,
    readonly windowMs = 1000,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /**
   * Counts a request of `weight` units (a native stream replay spends one per journal page it reads); `exceeded`
   * when it goes past the limit. An exceeded hit counts nothing: for a hit of one the window is full either way, and
   * a heavy hit refused leaves the rest for smaller ones.
   */
  hit(keyId: string, weight = 1): RateLimitState {
    if (!Number.isSafeInteger(weight) || weight < 1)
      throw new RangeError(`A rate limit hit weighs a positive integer, not ${weight}`);
    const now = this.now();
    let window = this.windows.get(keyId);
    if (!window || now - window.start >= this.windowMs || now < window.start) {
      if (window) this.windows.delete(keyId);
      window = { start: now, count: 0 };
      this.windows.set(keyId, window);
      if (this.windows.size > MAX_RATE_WINDOWS) this.forget(now);
    }
    const exceeded = window.count + weight > this.limit;
    if (!exceeded) window.count += weight;
    return {
      limit: this.limit,
      remaining: this.limit - window.count,
      resetSeconds: Math.max(1, Math.ceil((window.start + this.windowMs - now) / 1000)),
      exceeded,
    };
  }

  /**
   * Seconds until `key`'s window resets when it has already used its limit, or would with `pending` more hits (the
   * next hit would exceed it); null otherwise. Counts nothing.
   */
  blocked(key: string, pending = 0): number | null {
    const now = this.now();
    const window = this.windows.get(key);
    const current = !window || now - window.start >= this.windowMs || now < window.start ? null : window;
    if ((current?.count ?? 0) + pending < this.limit) return null;
    // Only attempts under way fill it (no window yet): they are refused until one of them ends.
    if (!current) return 1;
    return Math.max(1, Math.ceil((current.start + this.windowMs - now) / 1000));
  }

  /** Windows are kept in the order they started (a new window is re-inserted): expired ones come first. */
  private forget(now: number): void {
    for (const [key, window] of this.windows) {
      if (now - window.start < this.windowMs && this.windows.size <= MAX_RATE_WINDOWS) break;
      this.windows.delete(key);
    }
  }
}

const clientLimiters = new WeakMap<Platform, FixedWindowLimiter>();

/**
 * The Client API's budget, BOURSE_RATE_LIMIT_PER_SECOND requests a second per user once signed in and per client
 * address before (`clientRequestKey`): one counter per platform for every Client API route (app.ts) and the trading
 * and history messages of a user's JWT sockets (ws-stream.ts), so more faces or sockets buy no more requests.
 */
export function clientRateLimiterOf(platform: Platform): FixedWindowLimiter {
  let limiter = clientLimiters.get(platform);
  if (!limiter)
    clientLimiters.set(
      platform,
      (limiter = new FixedWindowLimiter(platform.config.rateLimitPerSecond, 1000, () => platform.clock.now())),
    );
  return limiter;
}

/** A caller's key in the Client API's budget: its user once signed in, else its client address. */
export function clientRequestKey(caller: { readonly userId: string } | { readonly address: string }): string {
  return "userId" in caller ? `user:${caller.userId}` : `address:${caller.address}`;
}

/**
 * Where the caller stands in a budget, on its answer: `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`
 * (seconds; the IETF draft's names), and `Retry-After` when this request went past it. The Client API and the
 * Automation API send the same headers.
 */
export function sendRateLimitHeaders(reply: FastifyReply, state: RateLimitState): void {
  void reply.headers(rateLimitHeaders(state));
}

/** The RateLimit-* headers of `state` (and Retry-After past the limit), for an answer or an ApiError's headers. */
export function rateLimitHeaders(state: RateLimitState): Record<string, string> {
  return {
    "ratelimit-limit": String(state.limit),
    "ratelimit-remaining": String(state.remaining),
    "ratelimit-reset": String(state.resetSeconds),
    ...(state.exceeded ? { "retry-after": String(state.resetSeconds) } : {}),
  };
}
