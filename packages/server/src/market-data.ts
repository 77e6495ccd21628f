/**
 * Market data: what the platform knows of prices beyond the engine's current quote.
 *
 * The service listens to every accepted quote (`platform.onQuote`) and keeps:
 * - the last quote per symbol;
 * - candles M1 … MN1 aggregated from the bid (OHLC and tick volume), bars starting on the chart clock of
 *   BOURSE_CANDLE_DAY_START (candle-clock.ts): UTC days by default (H4 at 00, 04, …; W1 on Monday 00:00; MN1 on
 *   the 1st), or days starting at 17:00 New York as forex brokers chart (D1 at 21:00 or 22:00 UTC, W1 at Sunday's
 *   17:00, MN1 at 17:00 the day before the 1st, H4 every 4 hours from the day's start). The live bar of each symbol and timeframe is in memory; what
 *   changed since the last flush is a per-bar *delta* (first, high, low and last price of the ticks since,
 *   and their count) that `flush` hands to `platform.store.upsertCandles`, which merges it into the stored
 *   bar (open kept, high max, low min, close replaced, volumes added). Flushes run every second, when
 *   many bars wait, and on close. A candle query reads the store and merges the deltas not yet flushed,
 *   so a read right after a tick sees it. Store writes and the reads that merge deltas are serialized, so
 *   a bar is never counted twice or missed;
 * - daily statistics: the live D1 bar (open of the chart day, high, low, by bid) and the change of the last
 *   bid from the day's open in percent, computed from integers.
 *
 * It publishes to the bus, as decimals with the instrument's digits and ISO times:
 * `quoteEvent` {symbol, bid, ask, ts} on `quotes.{SYMBOL}`, `depthEvent` {symbol, bids, asks, ts} on
 * `depth.{SYMBOL}`, and `candleEvent` {symbol, timeframe, time, open, high, low, close, tickVolume, closed}
 * on `candles.{SYMBOL}.{TF}`: the updated live bar on every tick, and the finished bar (`closed: true`)
 * when the first tick of the next bar arrives.
 */
import { Rounding, divideRounded, type BookLevel, type InstrumentSpec, type WeekSessions } from "@bourse/core";
import { CANDLE_TIMEFRAMES, PLATFORM_LIMITS, type Candle, type CandleTimeframe } from "@bourse/store";
import { BusTopics } from "./bus.ts";
import { errorText } from "./errors.ts";
import { CandleClock, TIMEFRAME_MS } from "./candle-clock.ts";
import type { AcceptedQuote, Platform } from "./platform.ts";
import { lotsToWire, priceToWire, timeToWire } from "./wire.ts";

export { CANDLE_TIMEFRAMES, type CandleTimeframe };

/** Candles one query answers at most (the store's bound). */
export const MAX_CANDLES_PER_QUERY = PLATFORM_LIMITS.candleLimit;

export { TIMEFRAME_MS };

// ---- sessions ----

const WEEKDAY_NAMES = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"] as const;

/** A minute of the day as a clock reads it: 1020 → "17:00". */
export function minuteText(minute: number): string {
  return `${String(Math.floor(minute / 60)).padStart(2, "0")}:${String(minute % 60).padStart(2, "0")}`;
}

/** One day's sessions as "22:00-24:00" strings (on the clock of the instrument's session time zone). */
export function daySessionsText(sessions: WeekSessions, weekday: number): string[] {
  return (sessions[weekday as 0] ?? []).map(([from, to]) => `${minuteText(from)}-${minuteText(to)}`);
}

/** The week's sessions, day by day, as readable intervals (on the clock of the instrument's session time zone). */
export function weekSessionsView(sessions: WeekSessions): { day: string; intervals: string[] }[] {
  return WEEKDAY_NAMES.map((day, weekday) => ({ day, intervals: daySessionsText(sessions, weekday) }));
}

// ---- the service ----

interface Bar {
  symbol: string;
  timeframe: CandleTimeframe;
  openTime: number;
  open: number;
  high: number;
  low: number;
  close: number;
  tickVolume: number;
}

export interface DailyStats {
  /** Points: the day's first bid, highest and lowest bid. */
  readonly open: number;
  readonly high: number;
  readonly low: number;
  /** (last bid − open) / open in hundredths of a percent, rounded half away from zero. */
  readonly changeHundredths: number;
  /** Start of the chart day (BOURSE_CANDLE_DAY_START). */
  readonly day: number;
}

export interface CandleRequest {
  readonly symbol: string;
  readonly timeframe: CandleTimeframe;
  /** Inclusive bounds on the bar's open time. */
  readonly from: number;
  readonly to: number;
  readonly limit: number;
}

export interface MarketDataOptions {
  /** How often the deltas are written to the store. Default 1 s. */
  readonly flushIntervalMs?: number;
  /** Deltas waiting that trigger a flush at once. Default 1,000. */
  readonly flushThreshold?: number;
}

/** Deltas kept at most while the store fails; beyond, the oldest are dropped (and logged). */
const MAX_PENDING_BARS = 100_000;

function barKey(symbol: string, timeframe: string): string {
  return `${symbol}\u0000${timeframe}`;
}

function deltaKey(symbol: string, timeframe: string, openTime: number): string {
  return `${symbol}\u0000${timeframe}\u0000${openTime}`;
}

function newBar(symbol: string, timeframe: CandleTimeframe, openTime: number, price: number): Bar {
  return { symbol, timeframe, openTime, open: price, high: price, low: price, close: price, tickVolume: 1 };
}

function addPrice(bar: Bar, price: number): void {
  if (price > bar.high) bar.high = price;
  if (price < bar.low) bar.low = price;
  bar.close = price;
  bar.tickVolume += 1;
}

/** `older` then `newer` of the same bar, as the store merges them. */
function mergeBars(older: Candle | Bar, newer: Candle | Bar): Bar {
  return {
    symbol: older.symbol,
    timeframe: older.timeframe,
    openTime: older.openTime,
    open: older.open,
    high: Math.max(older.high, newer.high),
    low: Math.min(older.low, newer.low),
    close: newer.close,
    tickVolume: older.tickVolume + newer.tickVolume,
  };
}

function toCandle(bar: Bar): Candle {
  return { ...bar };
}

export function levelsToWire(levels: readonly BookLevel[], instrument: InstrumentSpec) {
  return levels.map((level) => ({
    price: priceToWire(level.price, instrument),
    // The engine's top of book without levels has unlimited volume: null on the wire.
    volume: Number.isFinite(level.volume) ? lotsToWire(level.volume, instrument) : null,
  }));
}

/** A `quoteEvent`'s payload (seed 002): the live stream's and a subscription's first one alike. */
export function quotePayload(instrument: InstrumentSpec, quote: AcceptedQuote) {
  return {
    symbol: instrument.symbol,
    bid: priceToWire(quote.bid, instrument),
    ask: priceToWire(quote.ask, instrument),
    ts: timeToWire(quote.time),
  };
}

export type DepthPayload = ReturnType<typeof depthPayload>;

/**
 * A `depthEvent`'s payload (seed 002), at most `levels` a side: each side's book levels, or, when the feed sent
 * none, the top of book alone as one level of unlimited volume (null on the wire).
 */
export function depthPayload(instrument: InstrumentSpec, quote: AcceptedQuote, levels = Infinity) {
  return {
    symbol: instrument.symbol,
    bids: depthSide(quote.bids, quote.bid, levels, instrument),
    asks: depthSide(quote.asks, quote.ask, levels, instrument),
    ts: timeToWire(quote.time),
  };
}

/** One side of a `depthEvent`: its book's first `levels` levels, or the top of book as one level. */
function depthSide(book: readonly BookLevel[] | undefined, top: number, levels: number, instrument: InstrumentSpec) {
  return levelsToWire(
    (book && book.length > 0 ? book : [{ price: top, volume: Infinity }]).slice(0, levels),
    instrument,
  );
}

/** `payload` with at most `levels` a side; the same object when it has no more. */
export function truncateDepth(payload: DepthPayload, levels: number): DepthPayload {
  if (payload.bids.length <= levels && payload.asks.length <= levels) return payload;
  return { ...payload, bids: payload.bids.slice(0, levels), asks: payload.asks.slice(0, levels) };
}

export class MarketDataService {
  private readonly last = new Map<string, AcceptedQuote>();
  /** Symbols quoted since the last flush: their last quote is kept at the next (`flushLastQuotes`). */
  private readonly changedQuotes = new Set<string>();
  /** The live bar per symbol and timeframe: complete (stored part included once `load` ran). */
  private readonly bars = new Map<string, Bar>();
  /** What changed since the last flush, per bar. */
  private pending = new Map<string, Bar>();
  /** Store writes and delta-merging reads, one at a time. */
  private exclusive: Promise<unknown> = Promise.resolve();
  private readonly timer: NodeJS.Timeout;
  private readonly flushThreshold: number;
  private flushRequested = false;
  private closed = false;
  private droppedDeltas = 0;
  /** Where bars start (BOURSE_CANDLE_DAY_START). */
  readonly candleClock: CandleClock;

  constructor(
    private readonly platform: Platform,
    options: MarketDataOptions = {},
  ) {
    this.candleClock = new CandleClock(platform.config.candleDayStart);
    this.flushThreshold = options.flushThreshold ?? 1000;
    platform.onQuote((quote) => this.ingest(quote));
    this.timer = setInterval(() => void this.flush(), options.flushIntervalMs ?? 1000);
    this.timer.unref();
    platform.onClose(() => this.close());
  }

  /** The last accepted quote of `symbol`. */
  lastQuote(symbol: string): AcceptedQuote | undefined {
    return this.last.get(symbol);
  }

  /**
   * The latest time a bar of `symbol` may start at: the clock's, or its last quote's when that is later (quote times
   * never go back, the clock may be set back). The candle routes read up to it by default.
   */
  latestTime(symbol: string): number {
    const now = this.platform.clock.now();
    return Math.max(now, this.last.get(symbol)?.time ?? now);
  }

  /** The statistics of the day of the last quote; undefined before the first quote. */
  dailyStats(symbol: string): DailyStats | undefined {
    const quote = this.last.get(symbol);
    const bar = this.bars.get(barKey(symbol, "D1"));
    if (!quote || !bar || bar.open <= 0) return undefined;
    return {
      open: bar.open,
      high: bar.high,
      low: bar.low,
      changeHundredths: divideRounded((quote.bid - bar.open) * 10_000, bar.open, Rounding.HALF_UP),
      day: bar.openTime,
    };
  }

  /** The start of the bar of `timeframe` that holds `time` (on the chart clock, BOURSE_CANDLE_DAY_START). */
  barStart(timeframe: CandleTimeframe, time: number): number {
    return this.candleClock.barStart(timeframe, time);
  }

  /** The live (latest) bar of a symbol and timeframe. */
  liveBar(symbol: string, timeframe: CandleTimeframe): Candle | undefined {
    const bar = this.bars.get(barKey(symbol, timeframe));
    return bar ? toCandle(bar) : undefined;
  }

  /** Takes one accepted quote (called by the platform for every quote; tests call it directly). */
  ingest(quote: AcceptedQuote): void {
    const instrument = this.platform.instruments.get(quote.symbol);
    if (!instrument || this.closed) return;
    this.last.set(quote.symbol, quote);
    this.changedQuotes.add(quote.symbol);
    const price = quote.bid;
    for (const timeframe of CANDLE_TIMEFRAMES) {
      const openTime = this.candleClock.barStart(timeframe, quote.time);
      const key = deltaKey(quote.symbol, timeframe, openTime);
      const delta = this.pending.get(key);
      if (delta) addPrice(delta, price);
      else this.pending.set(key, newBar(quote.symbol, timeframe, openTime, price));

      const liveKey = barKey(quote.symbol, timeframe);
      let bar = this.bars.get(liveKey);
      if (bar && openTime === bar.openTime) addPrice(bar, price);
      else if (!bar || openTime > bar.openTime) {
        if (bar) this.publishCandle(instrument, bar, true);
        bar = newBar(quote.symbol, timeframe, openTime, price);
        this.bars.set(liveKey, bar);
      } else continue; // A quote older than the live bar (a clock set back): stored, not streamed.
      this.publishCandle(instrument, bar, false);
    }
    this.publishQuote(instrument, quote);
    if (this.pending.size >= this.flushThreshold && !this.flushRequested) {
      this.flushRequested = true;
      void this.flush();
    }
    if (this.pending.size > MAX_PENDING_BARS) this.dropOldestDeltas();
  }

  /**
   * Candles of a symbol and timeframe with open times in [from, to], oldest first, at most `limit`:
   * the stored bars with the deltas not yet flushed merged in.
   */
  candles(request: CandleRequest): Promise<Candle[]> {
    return this.serialized(async () => {
      const stored = await this.platform.store.candles(request);
      const byTime = new Map<number, Candle | Bar>(stored.map((candle) => [candle.openTime, candle]));
      // Read the deltas after the store answered: none of them is in the rows read.
      for (const delta of this.pending.values()) {
        if (delta.symbol !== request.symbol || delta.timeframe !== request.timeframe) continue;
        if (delta.openTime < request.from || delta.openTime > request.to) continue;
        const storedBar = byTime.get(delta.openTime);
        byTime.set(delta.openTime, storedBar ? mergeBars(storedBar, delta) : delta);
      }
      return [...byTime.values()]
        .sort((a, b) => a.openTime - b.openTime)
        .slice(0, request.limit)
        .map((bar) => ({ ...bar }));
    });
  }

  /**
   * The latest `limit` bars with open times up to `to`, oldest first, looking back at most 5,000 bars.
   * A window of `limit` bars counted back on the chart clock (`barsBefore`, bar by bar across a daylight saving change)
   * holds `limit` rows or fewer, unless bars stored before BOURSE_CANDLE_DAY_START changed sit at other boundaries in
   * it: it is read whole (up to 5,000 rows, oldest first), and its last `limit` are the answer when there are as many
   * (read with `limit` rows it lost its newest bars then: found by the second review of 7 December, ninth session);
   * across gaps (weekends, closed sessions) one read of the 5,000-bar window, then its last `limit`.
   */
  async latestCandles(symbol: string, timeframe: CandleTimeframe, to: number, limit: number): Promise<Candle[]> {
    const clock = this.candleClock;
    const last = clock.barStart(timeframe, to);
    /** The stored bars of the window `bars` bars long that ends with `last`, oldest first. */
    const windowOf = (bars: number) =>
      this.candles({
        symbol,
        timeframe,
        from: clock.barsBefore(timeframe, last, bars - 1),
        to,
        limit: MAX_CANDLES_PER_QUERY,
      });
    const window = await windowOf(limit);
    if (window.length >= limit || limit >= MAX_CANDLES_PER_QUERY) return window.slice(-limit);
    return (await windowOf(MAX_CANDLES_PER_QUERY)).slice(-limit);
  }

  /**
   * Reads the live bars of every symbol from the store: those of its last quote, as a server that never stopped
   * has them (after a restart the day's open, high and low survive). Run once the store is open, before the feed
   * starts.
   */
  load(): Promise<void> {
    return this.serialized(async () => {
      // The market as the last run left it: the engine and the shortlist have prices before the feed's first tick.
      for (const quote of this.platform.restoreQuotes(await this.platform.store.lastQuotes()))
        if (!this.last.has(quote.symbol)) this.last.set(quote.symbol, quote);
      const now = this.platform.clock.now();
      for (const symbol of this.platform.instruments.keys()) {
        // The bars of the last quote's time, not of the clock's: the shortlist's day is the day of the last quote
        // (a restart over a weekend showed no high, low or change until Sunday's open), and quote times never go
        // back (a clock set back across a restart rebuilt the live bars from the next tick alone, on the streams).
        const at = this.last.get(symbol)?.time ?? now;
        for (const timeframe of CANDLE_TIMEFRAMES) {
          const openTime = this.candleClock.barStart(timeframe, at);
          const [stored] = await this.platform.store.candles({
            symbol,
            timeframe,
            from: openTime,
            to: openTime,
            limit: 1,
          });
          if (!stored) continue;
          const liveKey = barKey(symbol, timeframe);
          const live = this.bars.get(liveKey);
          if (live && live.openTime > openTime) continue;
          // Under the lock the store holds everything flushed; the deltas hold the rest.
          const delta = this.pending.get(deltaKey(symbol, timeframe, openTime));
          this.bars.set(liveKey, delta ? mergeBars(stored, delta) : { ...stored });
        }
      }
    });
  }

  /** Writes the deltas to the store (the store merges each into its bar), and the last quotes that changed. */
  flush(): Promise<void> {
    return this.serialized(async () => {
      this.flushRequested = false;
      await this.flushLastQuotes();
      if (this.pending.size === 0) return;
      const batch = [...this.pending.values()];
      this.pending = new Map();
      const chunk = PLATFORM_LIMITS.candleLimit;
      for (let index = 0; index < batch.length; index += chunk) {
        const part = batch.slice(index, index + chunk);
        try {
          await this.platform.store.upsertCandles(part.map(toCandle));
        } catch (error) {
          // Not written: back in front of whatever came meanwhile, for the next flush.
          this.restore(batch.slice(index));
          this.platform.log.warn(`market data: candles not saved, kept for the next flush: ${errorText(error)}`);
          return;
        }
      }
    });
  }

  /** Keeps the last quote of each symbol quoted since the last flush (`saveLastQuotes`); on failure, the next flush. */
  private async flushLastQuotes(): Promise<void> {
    if (this.changedQuotes.size === 0) return;
    const symbols = [...this.changedQuotes];
    this.changedQuotes.clear();
    // An accepted quote is a kept one's shape: symbol, bid, ask, its book if any, time.
    const quotes = symbols.map((symbol) => this.last.get(symbol)!);
    try {
      for (let index = 0; index < quotes.length; index += PLATFORM_LIMITS.lastQuotesBatch)
        await this.platform.store.saveLastQuotes(quotes.slice(index, index + PLATFORM_LIMITS.lastQuotesBatch));
    } catch (error) {
      for (const symbol of symbols) this.changedQuotes.add(symbol);
      this.platform.log.warn(`market data: last quotes not saved, kept for the next flush: ${errorText(error)}`);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await this.flush().catch((error: unknown) =>
      this.platform.log.error(`market data: last flush failed: ${errorText(error)}`),
    );
  }

  private restore(deltas: readonly Bar[]): void {
    for (const delta of deltas) {
      const key = deltaKey(delta.symbol, delta.timeframe, delta.openTime);
      const newer = this.pending.get(key);
      this.pending.set(key, newer ? mergeBars(delta, newer) : delta);
    }
  }

  private dropOldestDeltas(): void {
    const excess = this.pending.size - MAX_PENDING_BARS;
    const oldest = [...this.pending.entries()].sort((a, b) => a[1].openTime - b[1].openTime).slice(0, excess);
    for (const [key] of oldest) this.pending.delete(key);
    this.droppedDeltas += oldest.length;
    this.platform.log.error(`market data: the store is failing; ${this.droppedDeltas} candle updates dropped so far`);
  }

  private serialized<T>(work: () => Promise<T>): Promise<T> {
    const result = this.exclusive.then(work);
    this.exclusive = result.catch(() => undefined);
    return result;
  }

  private publishQuote(instrument: InstrumentSpec, quote: AcceptedQuote): void {
    const bus = this.platform.bus;
    const quoteTopic = BusTopics.quotes(instrument.symbol);
    if (bus.hasSubscribers(quoteTopic))
      bus.publish(quoteTopic, { type: "quoteEvent", payload: quotePayload(instrument, quote) });
    const depthTopic = BusTopics.depth(instrument.symbol);
    if (bus.hasSubscribers(depthTopic))
      bus.publish(depthTopic, { type: "depthEvent", payload: depthPayload(instrument, quote) });
  }

  private publishCandle(instrument: InstrumentSpec, bar: Bar, closed: boolean): void {
    const topic = BusTopics.candles(bar.symbol, bar.timeframe);
    if (!this.platform.bus.hasSubscribers(topic)) return;
    this.platform.bus.publish(topic, { type: "candleEvent", payload: candleEventPayload(instrument, bar, closed) });
  }
}

/** A `candleEvent`'s payload: one update of a bar (`closed`: its last, once the next bar began). */
export function candleEventPayload(instrument: InstrumentSpec, bar: Candle, closed: boolean) {
  return {
    symbol: bar.symbol,
    timeframe: bar.timeframe,
    time: timeToWire(bar.openTime),
    open: priceToWire(bar.open, instrument),
    high: priceToWire(bar.high, instrument),
    low: priceToWire(bar.low, instrument),
    close: priceToWire(bar.close, instrument),
    tickVolume: bar.tickVolume,
    closed,
  };
}

const services = new WeakMap<Platform, MarketDataService>();

/**
 * The platform's market data service, created on first use (one per platform): the market routes,
 * the Automation API's quote and candles, and the streams share it.
 */
export function marketDataOf(platform: Platform): MarketDataService {
  let service = services.get(platform);
  if (!service) services.set(platform, (service = new MarketDataService(platform)));
  return service;
}
