/**
 * The topic bus (DESIGN.md section 2): quotes, depth, candles and per-account events are published
 * to topics; faces subscribe to topics and never read the engine directly, so a face does not care
 * where the engine runs (in one process this bus is in memory; scaled out, NATS carries the topics).
 *
 * Topic names: `quotes.{SYMBOL}`, `depth.{SYMBOL}`, `candles.{SYMBOL}.{TIMEFRAME}`, `account.{login}`,
 * `user.{userId}`.
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
} as const;

export class Bus {
  private readonly handlers = new Map<string, Set<BusHandler>>();

  constructor(private readonly onHandlerError: (error: unknown, topic: string) => void = () => {}) {}

  /** Calls `handler` for every message published to `topic` from now on; returns the unsubscribe. */
  subscribe(topic: string, handler: BusHandler): () => void {
    let set = this.handlers.get(topic);
    if (!set) this.handlers.set(topic, (set = new Set()));
    set.add(handler);
    return () => {
      const current = this.handlers.get(topic);
      if (!current) return;
      current.delete(handler);
      if (current.size === 0) this.handlers.delete(topic);
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

  hasSubscribers(topic: string): boolean {
    return this.handlers.has(topic);
  }

  /** Topics with at least one subscriber (metrics). */
  get topicCount(): number {
    return this.handlers.size;
  }
}
