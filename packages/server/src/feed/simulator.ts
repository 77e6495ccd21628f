/**
 * The quote simulator (`BOURSE_FEED=simulator`, the default): a demo server that looks alive.
 *
 * Two halves:
 * - a pure generator, `nextSimulatedTick(state, instrument, time)`: the state (a seeded PRNG and the mid
 *   price) and the time in, the quote and the next state out. Same seed, same times → same quotes, on
 *   any machine (mulberry32 and IEEE arithmetic only: +, −, ×, ÷ and √, which are exactly rounded);
 * - a driver, `startSimulator(platform, options)`: one timer per symbol on its own schedule, pushing each
 *   quote through `platform.pushQuote`, one at a time per symbol (a quote that comes while the previous
 *   is still being taken replaces any waiting one: conflation, never a queue).
 *
 * The walk: the mid price moves by a normal-like step whose spread grows with √(time since the last tick),
 * scaled to the instrument's daily volatility, with a weak pull back to its starting level so a server
 * running for months stays near realistic prices. The spread varies around the instrument's typical one
 * (never below 1 point). Each side carries five book levels, best first, starting at the quote, strictly
 * ordered, with volumes growing away from the top, as the engine's tick validation requires. No ticks
 * while the instrument's session is closed.
 */
import { isSessionOpen, nextSessionChange, type BookLevel, type InstrumentSpec } from "@bourse/core";
import { isMarketClosed } from "../errors.ts";
import type { Platform, QuoteInput } from "../platform.ts";

/** How an instrument moves: a typical starting price, spread, daily volatility and tick rate. */
export interface SimulationProfile {
  /** Starting mid price, as a decimal number (1.085 for EURUSD). */
  readonly price: number;
  /** Typical spread in points. */
  readonly spreadPoints: number;
  /** Standard deviation of one day's move, as a fraction of the price (0.006 = 0.6 %). */
  readonly dailyVolatility: number;
  /** Average ticks per second while the session is open. */
  readonly ticksPerSecond: number;
  /** Volume of the best level in lots; deeper levels carry more. */
  readonly topLots: number;
}

/** Typical figures of the default instruments (mid-2024 levels, retail ECN spreads). */
export const SIMULATION_PROFILES: Readonly<Record<string, SimulationProfile>> = {
  EURUSD: { price: 1.085, spreadPoints: 8, dailyVolatility: 0.005, ticksPerSecond: 4, topLots: 2 },
  GBPUSD: { price: 1.27, spreadPoints: 12, dailyVolatility: 0.006, ticksPerSecond: 3, topLots: 2 },
  USDJPY: { price: 155.2, spreadPoints: 10, dailyVolatility: 0.006, ticksPerSecond: 4, topLots: 2 },
  USDCHF: { price: 0.9, spreadPoints: 14, dailyVolatility: 0.005, ticksPerSecond: 2, topLots: 1 },
  AUDUSD: { price: 0.665, spreadPoints: 10, dailyVolatility: 0.007, ticksPerSecond: 2, topLots: 1 },
  USDCAD: { price: 1.365, spreadPoints: 15, dailyVolatility: 0.0045, ticksPerSecond: 2, topLots: 1 },
  EURJPY: { price: 168.4, spreadPoints: 18, dailyVolatility: 0.006, ticksPerSecond: 2, topLots: 1 },
  EURGBP: { price: 0.855, spreadPoints: 12, dailyVolatility: 0.0035, ticksPerSecond: 1, topLots: 1 },
  XAUUSD: { price: 2350, spreadPoints: 25, dailyVolatility: 0.01, ticksPerSecond: 3, topLots: 1 },
  XAGUSD: { price: 28, spreadPoints: 25, dailyVolatility: 0.016, ticksPerSecond: 1.5, topLots: 1 },
  US500: { price: 5300, spreadPoints: 50, dailyVolatility: 0.009, ticksPerSecond: 3, topLots: 5 },
  NAS100: { price: 18_500, spreadPoints: 150, dailyVolatility: 0.012, ticksPerSecond: 3, topLots: 2 },
  GER40: { price: 18_400, spreadPoints: 120, dailyVolatility: 0.01, ticksPerSecond: 2, topLots: 2 },
  USOIL: { price: 78, spreadPoints: 3, dailyVolatility: 0.02, ticksPerSecond: 2, topLots: 1 },
  BTCUSD: { price: 65_000, spreadPoints: 2500, dailyVolatility: 0.03, ticksPerSecond: 3, topLots: 0.5 },
  ETHUSD: { price: 3400, spreadPoints: 150, dailyVolatility: 0.035, ticksPerSecond: 2, topLots: 2 },
};

/** For instruments a broker adds without a profile: by asset class, at a neutral price. */
function fallbackProfile(instrument: InstrumentSpec): SimulationProfile {
  switch (instrument.assetClass) {
    case "forex":
      return { price: 1, spreadPoints: 15, dailyVolatility: 0.006, ticksPerSecond: 1, topLots: 1 };
    case "crypto":
      return { price: 100, spreadPoints: 50, dailyVolatility: 0.04, ticksPerSecond: 1, topLots: 1 };
    default:
      return { price: 100, spreadPoints: 20, dailyVolatility: 0.012, ticksPerSecond: 1, topLots: 1 };
  }
}

export function simulationProfile(instrument: InstrumentSpec): SimulationProfile {
  // Own properties only: a broker's symbol may be named like an object's (`constructor`).
  return Object.hasOwn(SIMULATION_PROFILES, instrument.symbol)
    ? SIMULATION_PROFILES[instrument.symbol]!
    : fallbackProfile(instrument);
}

/** Book levels per side. */
export const SIMULATED_LEVELS = 5;
const DAY_MS = 86_400_000;
/** A gap longer than this (a weekend, a restart) moves the price as much as this much time would. */
const MAX_STEP_GAP_MS = 15 * 60_000;
/** The pull back to the starting level closes the gap over about this long: the walk looks free but cannot wander off. */
const REVERSION_MS = 5 * DAY_MS;

/** The generator's whole state for one symbol: plain data, so a step is a pure function. */
export interface SimulatorState {
  /** mulberry32's 32-bit state. */
  readonly rng: number;
  /** Mid price in points (fractional: sub-point moves accumulate). */
  readonly mid: number;
  /** Where the walk started, in points (the pull's anchor). */
  readonly anchor: number;
  /** Time of the previous tick; null before the first. */
  readonly lastTime: number | null;
}

export interface SimulatedTick {
  /** Null while the session is closed. */
  readonly quote: QuoteInput | null;
  readonly state: SimulatorState;
  /** When to call again, in milliseconds from `time` (at the profile's nominal rate). */
  readonly delayMs: number;
}

/** mulberry32: a small, fast, well-distributed 32-bit PRNG. Returns the next state and a uniform [0, 1). */
function mulberry32(state: number): [number, number] {
  const next = (state + 0x6d2b79f5) | 0;
  let t = next;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return [next, ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296];
}

/** Draws `count` uniforms from `state`. */
function draw(state: number, count: number): [number, number[]] {
  const values: number[] = [];
  let current = state;
  for (let index = 0; index < count; index++) {
    const [next, value] = mulberry32(current);
    current = next;
    values.push(value);
  }
  return [current, values];
}

/** FNV-1a of the symbol mixed with the seed: each symbol its own independent stream. */
function symbolSeed(seed: number, symbol: string): number {
  let hash = 0x811c9dc5 ^ seed;
  for (let index = 0; index < symbol.length; index++) {
    hash ^= symbol.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193);
  }
  // One round of mixing so seeds 1 and 2 do not start side by side.
  return mulberry32(hash | 0)[0] ^ Math.imul(seed | 0, 0x9e3779b1);
}

function pointsPerUnit(instrument: InstrumentSpec): number {
  return 10 ** instrument.digits;
}

/** The state before the first tick: a start a little off the profile's price, so seeds differ from the first quote. */
export function initialSimulatorState(seed: number, instrument: InstrumentSpec): SimulatorState {
  const profile = simulationProfile(instrument);
  const [rng, [offset = 0.5]] = draw(symbolSeed(seed, instrument.symbol), 1);
  const anchor = Math.round(profile.price * pointsPerUnit(instrument));
  // Within ±0.3 of a day's volatility of the profile's price.
  const mid = anchor * (1 + (offset - 0.5) * 0.6 * profile.dailyVolatility);
  return { rng, mid, anchor, lastTime: null };
}

/**
 * The state that goes on from a quote kept from before a restart: the walk continues from its mid and its time
 * (the first step spans the gap, as after a weekend), around the same anchor, instead of jumping back to the start.
 */
export function resumedSimulatorState(
  state: SimulatorState,
  quote: { readonly bid: number; readonly ask: number; readonly time: number },
): SimulatorState {
  return { ...state, mid: (quote.bid + quote.ask) / 2, lastTime: quote.time };
}

/** Approximately standard normal from four uniforms (Irwin–Hall): no transcendental functions, so exact everywhere. */
function normalish(uniforms: readonly number[]): number {
  let sum = 0;
  for (const value of uniforms) sum += value;
  return (sum - uniforms.length / 2) * Math.sqrt(12 / uniforms.length);
}

function bookSide(
  top: number,
  direction: 1 | -1,
  spread: number,
  topUnits: number,
  step: number,
  uniforms: readonly number[],
  /** The instrument's largest order: the deepest level offers it, so any order the contract allows can fill. */
  volumeMax: number,
): BookLevel[] {
  const levels: BookLevel[] = [];
  let price = top;
  let previousVolume = 0;
  for (let level = 0; level < SIMULATED_LEVELS; level++) {
    const u = uniforms[level] ?? 0.5;
    if (level > 0) price += direction * Math.max(1, Math.round(spread * (0.3 + 0.5 * u)));
    const wanted = Math.round((topUnits * (level + 1) * (0.6 + 0.8 * u)) / step) * step;
    // A large order walks the book and slips, as a dealer fills it; it was refused NO_LIQUIDITY past the book's
    // 15 or so top sizes (found by the audit of market data of 7 December: 5-9 lots of BTCUSD, 20 allowed).
    const deepest = level === SIMULATED_LEVELS - 1 ? volumeMax : 0;
    const volume = Math.max(wanted, previousVolume + step, step, deepest);
    levels.push({ price, volume });
    previousVolume = volume;
  }
  return levels;
}

/**
 * One step of the walk at `time`. Pure: the same state, instrument and time always give the same result.
 * While the session is closed it returns no quote, the state unchanged, and the delay to the next open
 * (at most a minute, so a changed clock is noticed).
 */
export function nextSimulatedTick(state: SimulatorState, instrument: InstrumentSpec, time: number): SimulatedTick {
  const profile = simulationProfile(instrument);
  if (!isSessionOpen(instrument, time)) {
    const opens = nextSessionChange(instrument, time);
    const delayMs = opens === null ? 60_000 : Math.min(60_000, Math.max(1, opens - time));
    return { quote: null, state, delayMs };
  }
  // 4 for the step, 1 for the spread, 1 for the delay, 5 + 5 for the book.
  const [rng, u] = draw(state.rng, 16);
  const gap = state.lastTime === null ? 1000 / profile.ticksPerSecond : Math.max(1, time - state.lastTime);
  const elapsed = Math.min(gap, MAX_STEP_GAP_MS);
  const stepSd = state.mid * profile.dailyVolatility * Math.sqrt(elapsed / DAY_MS);
  const pull = ((state.anchor - state.mid) * elapsed) / REVERSION_MS;
  let mid = state.mid + stepSd * normalish(u.slice(0, 4)) + pull;
  // Never near zero or absurdly far: the book's deepest bid stays positive.
  mid = Math.min(Math.max(mid, state.anchor / 4, profile.spreadPoints * 20), state.anchor * 4);

  const spread = Math.max(1, Math.round(profile.spreadPoints * (0.7 + 0.6 * u[4]!)));
  const bid = Math.round(mid - spread / 2);
  const ask = bid + spread;
  const step = instrument.volumeStep;
  const topUnits = Math.max(step, Math.round(profile.topLots * 10 ** instrument.volumeDigits));
  const quote: QuoteInput = {
    symbol: instrument.symbol,
    bid,
    ask,
    bids: bookSide(bid, -1, spread, topUnits, step, u.slice(6, 11), instrument.volumeMax),
    asks: bookSide(ask, 1, spread, topUnits, step, u.slice(11, 16), instrument.volumeMax),
  };
  const meanDelay = 1000 / profile.ticksPerSecond;
  const delayMs = Math.max(1, Math.round(meanDelay * (0.25 + 1.5 * u[5]!)));
  return { quote, state: { rng, mid, anchor: state.anchor, lastTime: time }, delayMs };
}

/** A run of ticks at given times (tests, replays): the generator folded over the times. */
export function simulateTicks(
  seed: number,
  instrument: InstrumentSpec,
  times: readonly number[],
): (QuoteInput | null)[] {
  let state = initialSimulatorState(seed, instrument);
  return times.map((time) => {
    const tick = nextSimulatedTick(state, instrument, time);
    state = tick.state;
    return tick.quote;
  });
}

export interface SimulatorOptions {
  readonly seed: number;
  /** Multiplies every symbol's tick rate (0.5: half as many ticks). Default 1. */
  readonly rate?: number;
  /** The symbols to quote; default every instrument of the platform. */
  readonly symbols?: readonly string[];
}

export interface FeedHandle {
  /** Stops the timers and waits for the pushes in flight. */
  stop(): Promise<void>;
}

/** How many push failures per symbol are logged before the feed goes quiet about them. */
const LOGGED_FAILURES = 3;

/** Runs the simulator on timers until `stop`. */
export function startSimulator(platform: Platform, options: SimulatorOptions): FeedHandle {
  const rate = options.rate ?? 1;
  if (!(rate > 0) || !Number.isFinite(rate)) throw new Error(`the simulator's rate must be positive, got ${rate}`);
  const symbols = options.symbols ?? [...platform.instruments.keys()];
  let stopped = false;
  const timers = new Set<NodeJS.Timeout>();
  const inFlight = new Set<Promise<void>>();

  for (const [index, symbol] of symbols.entries()) {
    const instrument = platform.instrument(symbol);
    // After a restart the engine holds the last run's quote (MarketDataService.load): go on from there.
    const kept = platform.engine.quote(symbol);
    let state = kept
      ? resumedSimulatorState(initialSimulatorState(options.seed, instrument), kept)
      : initialSimulatorState(options.seed, instrument);
    let pushing = false;
    let waiting: QuoteInput | null = null;
    let failures = 0;

    const push = (quote: QuoteInput): void => {
      pushing = true;
      const done = platform
        .pushQuote(quote)
        .then(
          () => {
            failures = 0;
          },
          (error: unknown) => {
            // A tick racing its market's close (the engine's time is the latest of every symbol's) is not a failure.
            if (isMarketClosed(error)) return;
            failures += 1;
            if (failures <= LOGGED_FAILURES)
              platform.log.warn(`simulator: ${symbol} quote not taken: ${(error as Error).message}`);
          },
        )
        .finally(() => {
          inFlight.delete(done);
          pushing = false;
          const next = waiting;
          waiting = null;
          if (next && !stopped) push(next);
        });
      inFlight.add(done);
    };

    const schedule = (delayMs: number): void => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (stopped) return;
        const tick = nextSimulatedTick(state, instrument, platform.clock.now());
        state = tick.state;
        if (tick.quote) {
          if (pushing) waiting = tick.quote;
          else push(tick.quote);
        }
        schedule(tick.quote ? tick.delayMs / rate : tick.delayMs);
      }, delayMs);
      timers.add(timer);
    };
    // Symbols start spread over their first interval, not all in the same millisecond.
    schedule(Math.round((1000 / simulationProfile(instrument).ticksPerSecond / rate) * (((index % 8) + 1) / 8)));
  }

  return {
    async stop() {
      stopped = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
  };
}
