/**
 * The topic bus (DESIGN.md section 2): quotes, depth, candles and per-account events are published
 * to topics; faces subscribe to topics and never read the engine directly, so a face does not care
 * where the engine runs (in one process this bus is in memory; scaled out, NATS carries the topics).
 *
 * Topic names: `quotes.{SYMBOL}`, `depth.{SYMBOL}`, `candles.{SYMBOL}.{TIMEFRAME}`, `account.{login}`,
 * `user.{userId}`, `metrics.{login}`; and the revocations of credentials, `session.{sessionId}` and
 * `apiKey.{keyId}` (one `revoked` message each: the streams end what the session or key authorised).
 */
export interface BusMessage {
  /** The event's type on the wire (`quoteEvent`, `executionEvent`, ...). */
  readonly type: string;
  readonly payload: unknown;
  /** Account events: the journal sequence of the event it came from (resume points). */
  readonly seq?: number;
}

export type BusHandler = (topic: string, message: BusMessage) => void;

export const BusTopics = {
  quotes: (symbol: string) => `quotes.${symbol}`,
  depth: (symbol: string) => `depth.${symbol}`,
  candles: (symbol: string, timeframe: string) => `candles.${symbol}.${timeframe}`,
  account: (accountId: number) => `account.${accountId}`,
  /** Per-user streams: `notificationEvent` and `priceAlertEvent` (they belong to a user, not an account). */
  user: (userId: string) => `user.${userId}`,
  /** `metricsEvent` of one account, published while someone subscribes (account-metrics.ts). */
  metrics: (accountId: number) => `metrics.${accountId}`,
  /**
   * A session's revocation (logout, password change, a sign-in past the user's session bound): one
   * `revoked` message (auth.ts); the streams close or end what the session authorised. A topic per session,
   * so a socket hears only its own (scaled out, a NATS subject each).
   */
  session: (sessionId: string) => `session.${sessionId}`,
  /** An API key's revocation (revoked or rotated away, api-keys.ts): one `revoked` message, as for sessions. */
  apiKey: (keyId: string) => `apiKey.${keyId}`,
} as const;

/** Credentials a stream was authorised with: a Client API session (a JWT's `jti`) or an API key. */
export interface Credential {
  readonly kind: "session" | "apiKey";
  readonly id: string;
}

export type RevocationReason =
  | "logout"
  | "passwordChange"
  | "passwordReset"
  | "sessionsEnded"
  | "userDisabled"
  | "sessionLimit"
  | "refreshTokenReused"
  | "apiKeyRevoked"
  | "apiKeyRotated";

/** The `revoked` message of `session.{id}` and `apiKey.{id}`. */
export interface RevokedMessage extends BusMessage {
  readonly type: "revoked";
  readonly payload: Credential & { readonly reason: RevocationReason };
}

/** The topic that announces the revocation of `credential`. */
export function revocationTopic(credential: Credential): string {
  return credential.kind === "session" ? BusTopics.session(credential.id) : BusTopics.apiKey(credential.id);
}

/** Announces that `credential` was revoked (after the store committed it): its open streams end at once. */
export function publishRevocation(bus: Bus, credential: Credential, reason: RevocationReason): void {
  bus.revocations += 1;
  const message: RevokedMessage = {
    type: "revoked",
    payload: { kind: credential.kind, id: credential.id, reason },
  };
  bus.publish(revocationTopic(credential), message);
}

/** Called when a topic gets its first subscriber (`active`) or loses its last one (publishers that work on demand). */
export type InterestListener = (topic: string, active: boolean) => void;

export class Bus {
  /**
   * Revocations published so far (`publishRevocation`): a request authorised before one and handled after it asks
   * again (app.ts), since its body may have arrived after the revocation was acknowledged.
   */
  revocations = 0;
  private readonly handlers = new Map<string, Set<BusHandler>>();
  private readonly interestListeners: InterestListener[] = [];

  constructor(private readonly onHandlerError: (error: unknown, topic: string) => void = () => {}) {}

  /** Calls `handler` for every message published to `topic` from now on; returns the unsubscribe. */
  subscribe(topic: string, handler: BusHandler): () => void {
    let set = this.handlers.get(topic);
    if (!set) {
      this.handlers.set(topic, (set = new Set()));
      this.interest(topic, true);
    }
    set.add(handler);
    return () => {
      const current = this.handlers.get(topic);
      if (!current || !current.delete(handler)) return;
      if (current.size === 0) {
        this.handlers.delete(topic);
        this.interest(topic, false);
      }
    };
  }

  publish(topic: string, message: BusMessage): void {
    const set = this.handlers.get(topic);
    if (!set) return;
    for (const handler of set) {
      try {
        handler(topic, message);
      } catch (error) {
        // One failing subscriber must not stop the others (or the publisher: the engine's event path).
        this.onHandlerError(error, topic);
      }
    }
  }

  /**
   * Interest in topics (like NATS's): `listener` hears when a topic gets its first subscriber or loses its
   * last one, so a publisher computes only what someone reads. Returns the removal.
   */
  onInterest(listener: InterestListener): () => void {
    this.interestListeners.push(listener);
    return () => {
      const index = this.interestListeners.indexOf(listener);
      if (index >= 0) this.interestListeners.splice(index, 1);
    };
  }

  private interest(topic: string, active: boolean): void {
    for (const listener of this.interestListeners) {
      try {
        listener(topic, active);
      } catch (error) {
        this.onHandlerError(error, topic);
      }
    }
  }

  hasSubscribers(topic: string): boolean {
    return this.handlers.has(topic);
  }

  /** Topics with at least one subscriber (metrics). */
  get topicCount(): number {
    return this.handlers.size;
  }
}
