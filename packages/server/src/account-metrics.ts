/**
 * Account metrics on the bus: `metricsEvent` {accountId, balance, credit, equity, margin, freeMargin,
 * marginLevel, profit, positions, ts} on `metrics.{login}`, computed only for accounts someone subscribes to (bus
 * interest), at most once per interval (250 ms by default) and only when a value changed. Money in the
 * account currency's digits, marginLevel in percent (null without margin), ts ISO 8601. `positions`: each open
 * position's {positionId, currentPrice, profit, swap}, oldest first (at most the engine's bound of positions an
 * account holds): a terminal shows each position's profit live without the conversion rates the engine values it at
 * (found by the audit of a terminal's journey of 7 December, sixth session: only the account's total came).
 * Protocol-neutral: the native stream and the Pusher adapter forward it as it is.
 */
import { BusTopics } from "./bus.ts";
import type { Platform } from "./platform.ts";
import { accountPositions } from "./trading-service.ts";
import { livePositionFigures } from "./trading-views.ts";
import { accountMoneyView } from "./views.ts";
import { timeToWire } from "./wire.ts";

export const METRICS_INTERVAL_MS = 250;

export interface MetricsPayload {
  readonly accountId: number;
  readonly balance: number;
  readonly credit: number;
  readonly equity: number;
  readonly margin: number;
  readonly freeMargin: number;
  readonly marginLevel: number | null;
  readonly profit: number;
  readonly positions: readonly PositionMetrics[];
  readonly ts: string;
}

/** One open position's live figures: the price it would close at, its floating profit and its swap. */
export interface PositionMetrics {
  readonly positionId: number;
  readonly currentPrice: number | null;
  readonly profit: number;
  readonly swap: number;
}

/** The account's metrics now, or null when the account does not exist (or the engine is not ready). */
export function metricsPayload(platform: Platform, accountId: number): MetricsPayload | null {
  if (!platform.ready) return null;
  const account = platform.engine.state.accounts.get(accountId);
  if (!account) return null;
  return {
    accountId,
    ...accountMoneyView(platform, account),
    // Only the figures that move, not each position's whole view (the review of 7 December, sixth session: the views
    // of 1,000 positions cost 2.2 ms a publish).
    positions: accountPositions(platform, account).map((position) => ({
      positionId: position.id,
      ...livePositionFigures(platform, account, position),
    })),
    ts: timeToWire(platform.clock.now()),
  };
}

const PREFIX = "metrics.";

export class MetricsPublisher {
  /** Watched accounts → the values last published (without ts), to publish changes only. */
  private readonly watched = new Map<number, string>();
  private timer: NodeJS.Timeout | null = null;
  private intervalMs = METRICS_INTERVAL_MS;
  private started = false;

  private constructor(private readonly platform: Platform) {}

  static for(platform: Platform): MetricsPublisher {
    let publisher = registry.get(platform);
    if (!publisher) registry.set(platform, (publisher = new MetricsPublisher(platform)));
    return publisher;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    const stop = this.platform.bus.onInterest((topic, active) => {
      if (!topic.startsWith(PREFIX)) return;
      const accountId = Number(topic.slice(PREFIX.length));
      if (active) this.watched.set(accountId, "");
      else this.watched.delete(accountId);
    });
    this.schedule();
    this.platform.onClose(() => {
      stop();
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
    });
  }

  /** Changes the interval (tests, benchmarks). */
  setInterval(ms: number): void {
    this.intervalMs = ms;
    if (this.timer) this.schedule();
  }

  private schedule(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = setInterval(() => this.publishChanges(), this.intervalMs);
    this.timer.unref();
  }

  /** Publishes the metrics of every watched account whose values changed since the last publish. */
  publishChanges(): void {
    if (this.watched.size === 0 || !this.platform.ready) return;
    for (const [accountId, last] of this.watched) {
      const payload = metricsPayload(this.platform, accountId);
      if (!payload) continue;
      const { ts: _ts, ...values } = payload;
      const key = JSON.stringify(values);
      if (key === last) continue;
      this.watched.set(accountId, key);
      this.platform.bus.publish(BusTopics.metrics(accountId), { type: "metricsEvent", payload });
    }
  }
}

const registry = new WeakMap<Platform, MetricsPublisher>();
