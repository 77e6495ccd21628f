/**
 * Engine benchmarks (the core alone, in process, no IO):
 *
 * - engine.ticks, ticks/s with a loaded book: 100,000 resting pending orders (limits and stops on both
 *   sides, over several symbols) and 20,000 open positions with SL and TP, fed a pre-generated random
 *   walk that stays inside a band so nothing triggers. Baselines: a loop that only reads the same tick
 *   array, a loop that keeps the last quote per symbol, and the same engine code with an empty book.
 * - engine.orders, market orders/s: open a market order and close its position, again and again, over
 *   many funded accounts (opens and closes both count as orders); events/s alongside. Baselines: the
 *   same loop building the same command objects without executing them; allocating as many events.
 * - engine.conversion: ticks of USDJPY while USD accounts hold USDJPY, whose profit converts through
 *   that very quote (such accounts were re-evaluated on every tick until their rates had bands, 7 December).
 *   Baseline: the same ticks, nothing open.
 *
 * Every command is built before the timer starts where the engine allows it (a close names the
 * position the open returned, so the close command is built inside the loop, in the baseline too).
 */
import {
  TradingEngine,
  defaultEngineConfig,
  type ClosePositionCommand,
  type CommandResult,
  type CommandSuccess,
  type EngineConfig,
  type PlaceOrderCommand,
  type Side,
  type TickCommand,
} from "@bourse/core";
import {
  counterMeasurement,
  measureTogether,
  row,
  type BenchContext,
  type BenchGroup,
  type Measurement,
  type Row,
} from "./harness.ts";

/** Tuesday 2 June 2026, 12:00 UTC: every symbol used here is in session, and the next rollover (22:00) is hours away. */
export const START = Date.UTC(2026, 5, 2, 12, 0);

/** Goals stated by the issue. */
export const TICK_GOAL = 1_000_000;
export const ORDER_GOAL = 300_000;

/** Sizes of the loaded-book scenario. */
export const LOADED_BOOK = {
  accounts: 2_000,
  pendingOrdersPerAccount: 50,
  positionsPerAccount: 10,
  /** Pre-generated ticks (the runs walk through them, wrapping around); kept modest so the array does not dominate the heap. */
  ticks: 200_000,
  ticksPerRun: 500_000,
  runs: 9,
};

/** Sizes of the market-order scenario. */
export const ORDER_FLOW = {
  accounts: 1_000,
  /** Open + close pairs per timed run (two orders each). */
  roundTripsPerRun: 100_000,
  runs: 9,
};

/** A symbol's market for the benchmark: a centre bid, a fixed spread, and a band the random walk stays in (all points). */
interface Market {
  readonly symbol: string;
  readonly centreBid: number;
  readonly spread: number;
  /** The walk stays within centreBid ± band. */
  readonly band: number;
  /** Largest move of one tick. */
  readonly step: number;
}

/** USD-quoted symbols, so USD accounts need no conversion quote (see BENCHMARKS.md for the converted case). */
export const MARKETS: readonly Market[] = [
  { symbol: "EURUSD", centreBid: 108_430, spread: 10, band: 300, step: 3 },
  { symbol: "GBPUSD", centreBid: 127_000, spread: 12, band: 300, step: 3 },
  { symbol: "AUDUSD", centreBid: 66_000, spread: 10, band: 300, step: 3 },
  { symbol: "XAUUSD", centreBid: 235_000, spread: 30, band: 1_000, step: 10 },
  { symbol: "US500", centreBid: 530_000, spread: 50, band: 2_000, step: 20 },
];

/** Builds the engine a scenario runs on; an experiment can pass a modified copy of the engine to compare. */
export type EngineFactory = (config: EngineConfig) => TradingEngine;
const newEngine: EngineFactory = (config) => new TradingEngine(config);

/** A small seeded generator (mulberry32): the same scenario on every run. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function mustSucceed(result: CommandResult, what: string): CommandSuccess {
  if (!result.ok) throw new Error(`${what} was rejected: ${result.code} ${result.message}`);
  return result;
}

export function quoteAll(engine: TradingEngine, time: number, markets: readonly Market[] = MARKETS): void {
  for (const market of markets)
    mustSucceed(
      engine.execute({
        kind: "tick",
        time,
        symbol: market.symbol,
        bid: market.centreBid,
        ask: market.centreBid + market.spread,
      }),
      `quote ${market.symbol}`,
    );
}

export function openFundedAccounts(engine: TradingEngine, count: number, time: number): number[] {
  const ids: number[] = [];
  for (let index = 0; index < count; index++) {
    const opened = mustSucceed(
      engine.execute({
        kind: "openAccount",
        time,
        userId: `bench-${index}`,
        currency: "USD",
        leverage: 100,
        mode: "HEDGING",
      }),
      "openAccount",
    );
    const accountId = opened.accountId as number;
    // $1,000,000: far more than the margin of the small positions below, so no margin call or stop-out fires.
    mustSucceed(engine.execute({ kind: "deposit", time, accountId, amount: 100_000_000 }), "deposit");
    ids.push(accountId);
  }
  return ids;
}

/** A distance from the centre well outside the walk's band: between 2 and 20 bands. */
function farDistance(market: Market, random: () => number): number {
  return market.band * 2 + market.spread + Math.floor(random() * market.band * 18);
}

const PENDING_KINDS: readonly { type: "LIMIT" | "STOP"; side: Side }[] = [
  { type: "LIMIT", side: "BUY" },
  { type: "LIMIT", side: "SELL" },
  { type: "STOP", side: "BUY" },
  { type: "STOP", side: "SELL" },
];

/** A pending order far from the market; every other one carries SL and TP. */
function pendingOrder(
  accountId: number,
  market: Market,
  serial: number,
  random: () => number,
  time: number,
): PlaceOrderCommand {
  const kind = PENDING_KINDS[serial % PENDING_KINDS.length] as (typeof PENDING_KINDS)[number];
  const ask = market.centreBid + market.spread;
  const distance = farDistance(market, random);
  // Buy limits below the ask, sell limits above the bid; buy stops above the ask, sell stops below the bid.
  const below = (kind.type === "LIMIT") === (kind.side === "BUY");
  const price = below
    ? (kind.side === "BUY" ? ask : market.centreBid) - distance
    : (kind.side === "BUY" ? ask : market.centreBid) + distance;
  const withStops = serial % 2 === 0;
  const stopDistance = market.band;
  return {
    kind: "placeOrder",
    time,
    accountId,
    symbol: market.symbol,
    side: kind.side,
    type: kind.type,
    volume: 1,
    price,
    ...(withStops
      ? kind.side === "BUY"
        ? { sl: price - stopDistance, tp: price + stopDistance }
        : { sl: price + stopDistance, tp: price - stopDistance }
      : {}),
  };
}

/** A market order whose SL and TP are both outside the walk's band. */
function positionWithStops(
  accountId: number,
  market: Market,
  serial: number,
  random: () => number,
  time: number,
): PlaceOrderCommand {
  const side: Side = serial % 2 === 0 ? "BUY" : "SELL";
  const ask = market.centreBid + market.spread;
  const slDistance = farDistance(market, random);
  const tpDistance = farDistance(market, random);
  return {
    kind: "placeOrder",
    time,
    accountId,
    symbol: market.symbol,
    side,
    type: "MARKET",
    volume: 1,
    ...(side === "BUY"
      ? { sl: market.centreBid - slDistance, tp: market.centreBid + tpDistance }
      : { sl: ask + slDistance, tp: ask - tpDistance }),
  };
}

export interface LoadedBook {
  readonly engine: TradingEngine;
  readonly pendingOrders: number;
  readonly positions: number;
  readonly setupSeconds: number;
}

/** The loaded-book scenario: funded accounts with resting pending orders and positions with SL/TP. */
export function buildLoadedBook(
  sizes: Pick<typeof LOADED_BOOK, "accounts" | "pendingOrdersPerAccount" | "positionsPerAccount"> = LOADED_BOOK,
  createEngine: EngineFactory = newEngine,
): LoadedBook {
  const started = performance.now();
  const engine = createEngine(
    defaultEngineConfig({ maxWorkingOrdersPerAccount: Math.max(500, sizes.pendingOrdersPerAccount) }),
  );
  const time = START - 60_000;
  quoteAll(engine, time);
  const random = seededRandom(1);
  const accounts = openFundedAccounts(engine, sizes.accounts, time);
  let serial = 0;
  for (const accountId of accounts) {
    for (let index = 0; index < sizes.pendingOrdersPerAccount; index++, serial++) {
      const market = MARKETS[serial % MARKETS.length] as Market;
      mustSucceed(engine.execute(pendingOrder(accountId, market, serial >> 1, random, time)), "pending order");
    }
    for (let index = 0; index < sizes.positionsPerAccount; index++, serial++) {
      const market = MARKETS[serial % MARKETS.length] as Market;
      mustSucceed(
        engine.execute(positionWithStops(accountId, market, serial >> 1, random, time)),
        "market order with SL/TP",
      );
    }
  }
  const pendingOrders = engine.state.orders.size;
  const positions = engine.state.positions.size;
  if (pendingOrders !== sizes.accounts * sizes.pendingOrdersPerAccount)
    throw new Error(`expected every pending order to rest, got ${pendingOrders}`);
  if (positions !== sizes.accounts * sizes.positionsPerAccount)
    throw new Error(`expected every position to stay open, got ${positions}`);
  return { engine, pendingOrders, positions, setupSeconds: (performance.now() - started) / 1000 };
}

/** An engine with the same quotes and one funded account, nothing resting: what a tick costs with an empty book. */
export function buildEmptyBook(createEngine: EngineFactory = newEngine): TradingEngine {
  const engine = createEngine(defaultEngineConfig());
  const time = START - 60_000;
  quoteAll(engine, time);
  openFundedAccounts(engine, 1, time);
  return engine;
}

/**
 * Ticks for all symbols, round robin, each symbol walking randomly inside its band (a step that would
 * leave the band is taken the other way). One millisecond apart from START.
 */
export function generateTicks(count: number, markets: readonly Market[] = MARKETS, seed = 7): TickCommand[] {
  const random = seededRandom(seed);
  const bids = markets.map((market) => market.centreBid);
  const ticks: TickCommand[] = new Array<TickCommand>(count);
  for (let index = 0; index < count; index++) {
    const which = index % markets.length;
    const market = markets[which] as Market;
    const bid = bids[which] as number;
    const move = Math.round((random() * 2 - 1) * market.step);
    const next = Math.abs(bid + move - market.centreBid) > market.band ? bid - move : bid + move;
    bids[which] = next;
    ticks[index] = { kind: "tick", time: START + index, symbol: market.symbol, bid: next, ask: next + market.spread };
  }
  return ticks;
}

/** Keeps the baseline loops' results alive so the JIT cannot drop them. */
export let sink = 0;
const retained: object[] = new Array<object>(1024).fill({});

/**
 * Walks a tick array in chunks, wrapping around, so successive runs continue the random walk. After the
 * first lap the ticks' times are behind the engine's clock, which the engine treats as "now" (same code path).
 */
export class TickCursor {
  private next = 0;
  constructor(readonly ticks: readonly TickCommand[]) {
    if (ticks.length === 0) throw new Error("no ticks");
  }

  /** The indexes of the next `count` ticks as [from, to) ranges (two when the chunk wraps). */
  take(count: number): [number, number][] {
    const ranges: [number, number][] = [];
    let remaining = count;
    while (remaining > 0) {
      const to = Math.min(this.ticks.length, this.next + remaining);
      ranges.push([this.next, to]);
      remaining -= to - this.next;
      this.next = to === this.ticks.length ? 0 : to;
    }
    return ranges;
  }
}

/** Baseline: read `count` ticks of the array and touch their fields, nothing else. */
export function readTicks(cursor: TickCursor, count: number): number {
  const ticks = cursor.ticks;
  let sum = 0;
  for (const [from, to] of cursor.take(count))
    for (let index = from; index < to; index++) {
      const tick = ticks[index] as TickCommand;
      sum += tick.bid + tick.ask + tick.time + tick.symbol.length;
    }
  sink ^= sum;
  return count;
}

/** Baseline: keep the last quote of each symbol (a new record per tick in a Map), the least any tick handler does. */
export function storeQuotes(
  cursor: TickCursor,
  count: number,
  quotes: Map<string, { bid: number; ask: number; time: number }>,
): number {
  const ticks = cursor.ticks;
  for (const [from, to] of cursor.take(count))
    for (let index = from; index < to; index++) {
      const tick = ticks[index] as TickCommand;
      quotes.set(tick.symbol, { bid: tick.bid, ask: tick.ask, time: tick.time });
    }
  return count;
}

/** Feeds the next `count` ticks to the engine; counts the events they caused (triggers), which should be few. */
export function feedTicks(
  engine: TradingEngine,
  cursor: TickCursor,
  count: number,
): { operations: number; counters: { events: number } } {
  const ticks = cursor.ticks;
  let events = 0;
  for (const [from, to] of cursor.take(count))
    for (let index = from; index < to; index++) {
      const result = engine.execute(ticks[index] as TickCommand);
      if (!result.ok) throw new Error(`tick ${index} was rejected: ${result.code} ${result.message}`);
      events += result.events.length;
    }
  return { operations: count, counters: { events } };
}

export interface OrderFlow {
  readonly engine: TradingEngine;
  readonly accounts: readonly number[];
  /** One open command per (account, symbol, side) slot, built once and reused. */
  readonly opens: readonly PlaceOrderCommand[];
}

/** Funded accounts, a quote on every symbol, and the open commands the loop cycles through. */
export function buildOrderFlow(
  accountCount: number = ORDER_FLOW.accounts,
  createEngine: EngineFactory = newEngine,
): OrderFlow {
  const engine = createEngine(defaultEngineConfig());
  const time = START - 60_000;
  quoteAll(engine, time);
  const accounts = openFundedAccounts(engine, accountCount, time);
  const opens: PlaceOrderCommand[] = [];
  for (let index = 0; index < accounts.length * 2; index++) {
    const market = MARKETS[index % MARKETS.length] as Market;
    opens.push({
      kind: "placeOrder",
      time: START,
      accountId: accounts[index % accounts.length] as number,
      symbol: market.symbol,
      side: index % 2 === 0 ? "BUY" : "SELL",
      type: "MARKET",
      volume: 1,
    });
  }
  return { engine, accounts, opens };
}

function closeCommand(open: PlaceOrderCommand, positionId: number): ClosePositionCommand {
  return { kind: "closePosition", time: open.time, accountId: open.accountId, positionId };
}

/** Opens a market order and closes its position, `roundTrips` times; both count as orders. */
export function tradeRoundTrips(
  flow: OrderFlow,
  roundTrips: number,
): { operations: number; counters: { events: number } } {
  const { engine, opens } = flow;
  let events = 0;
  for (let index = 0; index < roundTrips; index++) {
    const open = opens[index % opens.length] as PlaceOrderCommand;
    const opened = engine.execute(open);
    if (!opened.ok || opened.positionId === undefined)
      throw new Error(`market order ${index} failed: ${opened.ok ? "no position" : opened.code}`);
    const closed = engine.execute(closeCommand(open, opened.positionId));
    if (!closed.ok) throw new Error(`close ${index} was rejected: ${closed.code} ${closed.message}`);
    events += opened.events.length + closed.events.length;
  }
  return { operations: roundTrips * 2, counters: { events } };
}

/**
 * Baseline for events/s: the same number of small event-shaped objects allocated and collected into
 * one array per command, as the engine returns them (the floor of producing that many events).
 */
export function allocateEvents(roundTrips: number, eventsPerCommand: number): number {
  let sum = 0;
  for (let index = 0; index < roundTrips * 2; index++) {
    const events: { type: string; time: number; id: number }[] = [];
    for (let event = 0; event < eventsPerCommand; event++)
      events.push({ type: "DealExecuted", time: START, id: index + event });
    retained[index & (retained.length - 1)] = events;
    sum += events.length + (events[0] as { id: number }).id;
  }
  sink ^= sum;
  return roundTrips * 2 * eventsPerCommand;
}

/** Baseline: the same loop building the same commands (a close per open) without executing them. */
export function buildRoundTripCommands(flow: OrderFlow, roundTrips: number): number {
  const { opens } = flow;
  let sum = 0;
  for (let index = 0; index < roundTrips; index++) {
    const open = opens[index % opens.length] as PlaceOrderCommand;
    const close = closeCommand(open, index + 1);
    // Kept for a while, as the engine's journal would: the allocation cannot be optimised away.
    retained[index & (retained.length - 1)] = close;
    sum += open.volume + open.accountId + close.positionId + close.time;
  }
  sink ^= sum;
  return roundTrips * 2;
}

/** Entries in every symbol's risk-threshold heaps, live or stale (the engine reclaims stale ones only at the top). */
export function riskHeapEntries(engine: TradingEngine): number {
  let entries = 0;
  for (const index of engine.state.symbolIndexes.values())
    entries +=
      index.riskBidFloors.size + index.riskAskCeilings.size + index.riskBidCeilings.size + index.riskAskFloors.size;
  return entries;
}

function tickBenchmarks(context: BenchContext): Row[] {
  const { accounts, pendingOrdersPerAccount, positionsPerAccount, ticks: tickCount, ticksPerRun, runs } = LOADED_BOOK;
  context.log(
    `engine: building ${accounts} accounts, ${accounts * pendingOrdersPerAccount} pending orders, ${accounts * positionsPerAccount} positions with SL/TP...`,
  );
  const loaded = buildLoadedBook();
  context.log(`engine: built in ${loaded.setupSeconds.toFixed(1)} s; generating ${tickCount} ticks...`);
  const ticks = generateTicks(tickCount);
  const empty = buildEmptyBook();
  const cursors = {
    read: new TickCursor(ticks),
    store: new TickCursor(ticks),
    empty: new TickCursor(ticks),
    loaded: new TickCursor(ticks),
  };
  const lastQuotes = new Map<string, { bid: number; ask: number; time: number }>();

  context.log(`engine: measuring ticks (${runs} rounds of ${ticksPerRun} ticks)...`);
  const [baseline, storeRun, emptyRun, loadedRun] = measureTogether(
    [
      { name: "read tick array", fn: () => readTicks(cursors.read, ticksPerRun) },
      { name: "store last quote per symbol", fn: () => storeQuotes(cursors.store, ticksPerRun, lastQuotes) },
      { name: "engine ticks, empty book", fn: () => feedTicks(empty, cursors.empty, ticksPerRun) },
      {
        name: "engine ticks, 100k pending + 20k SL/TP",
        fn: () => feedTicks(loaded.engine, cursors.loaded, ticksPerRun),
      },
    ],
    { warmupRuns: 1, runs },
  ) as [Measurement, Measurement, Measurement, Measurement];

  // Sanity: the walk stayed inside the band, so the book is intact.
  if (
    loaded.engine.state.orders.size !== loaded.pendingOrders ||
    loaded.engine.state.positions.size !== loaded.positions
  )
    throw new Error("ticks triggered resting orders or positions: the band is too wide for the book");
  const triggeredEvents = loadedRun.countersPerSecond.events ?? 0;
  return [
    row("engine.ticks", "ticks/s", emptyRun, baseline, {
      note: `the same ticks, ${MARKETS.length} symbols, nothing resting`,
    }),
    row("engine.ticks", "ticks/s", loadedRun, baseline, {
      goal: TICK_GOAL,
      note: `${loaded.pendingOrders} pending orders, ${loaded.positions} positions with SL+TP over ${accounts} accounts and ${MARKETS.length} symbols; ${triggeredEvents} events/s triggered`,
    }),
    row("engine.ticks", "ticks/s", loadedRun, storeRun, { note: "against the least a tick handler does" }),
    row("engine.ticks", "ticks/s", loadedRun, emptyRun, { note: "the loaded book against the empty one" }),
  ];
}

function orderBenchmarks(context: BenchContext): Row[] {
  const { accounts, roundTripsPerRun: trips, runs } = ORDER_FLOW;
  context.log(`engine: opening ${accounts} funded accounts for market orders...`);
  const flow = buildOrderFlow();
  const probe = tradeRoundTrips(flow, 1_000);
  const eventsPerOrder = probe.counters.events / probe.operations;
  context.log(`engine: measuring market orders (${runs} rounds of ${trips} round trips)...`);
  const [baseline, eventBaseline, orders] = measureTogether(
    [
      { name: "build order commands", fn: () => buildRoundTripCommands(flow, trips) },
      { name: "allocate as many event objects", fn: () => allocateEvents(trips, eventsPerOrder) },
      { name: "engine market orders (open + close)", fn: () => tradeRoundTrips(flow, trips) },
    ],
    { warmupRuns: 1, runs },
  ) as [Measurement, Measurement, Measurement];
  if (flow.engine.state.positions.size !== 0) throw new Error("round trips left positions open");
  const events = counterMeasurement(orders, "events", "engine events emitted by those orders");
  return [
    row("engine.orders", "orders/s", orders, baseline, {
      goal: ORDER_GOAL,
      note: `${accounts} accounts, ${MARKETS.length} symbols, 0.01 lot; afterwards no position is open but the risk heaps hold ${riskHeapEntries(flow.engine)} entries`,
    }),
    row("engine.orders", "events/s", events, eventBaseline, { note: `${eventsPerOrder} events per order` }),
  ];
}

/** USDJPY: its profit is in JPY, so a USD account converts it through USDJPY's own quote. */
const USDJPY: Market = { symbol: "USDJPY", centreBid: 156_000, spread: 10, band: 300, step: 3 };

/**
 * Accounts whose profit converts through a symbol are re-evaluated only when its price leaves the band their last
 * evaluation drew (engine.ts, risk section): here USD accounts holding USDJPY, fed USDJPY ticks within the band.
 * Until 7 December every such account was re-evaluated on every tick of the symbol: 1/1,400-1/1,700 of the baseline
 * at 200 accounts and 2,000 ticks a run, the size this group had then (BENCHMARKS.md).
 */
export const CONVERSION = { accounts: 2_000, ticks: 100_000, ticksPerRun: 20_000, runs: 5 };

function conversionBenchmarks(context: BenchContext): Row[] {
  const { accounts, ticks: tickCount, ticksPerRun, runs } = CONVERSION;
  context.log(`engine: ${accounts} USD accounts holding a USDJPY position...`);
  const time = START - 60_000;
  const holding = new TradingEngine(defaultEngineConfig());
  quoteAll(holding, time, [USDJPY]);
  const random = seededRandom(3);
  for (const accountId of openFundedAccounts(holding, accounts, time))
    mustSucceed(holding.execute(positionWithStops(accountId, USDJPY, 0, random, time)), "USDJPY position");
  const empty = new TradingEngine(defaultEngineConfig());
  quoteAll(empty, time, [USDJPY]);
  const ticks = generateTicks(tickCount, [USDJPY]);
  const cursors = { empty: new TickCursor(ticks), holding: new TickCursor(ticks) };
  const entriesBefore = riskHeapEntries(holding);
  const [emptyRun, holdingRun] = measureTogether(
    [
      { name: "engine USDJPY ticks, empty book", fn: () => feedTicks(empty, cursors.empty, ticksPerRun) },
      {
        name: `engine USDJPY ticks, ${accounts} USD accounts hold USDJPY`,
        fn: () => feedTicks(holding, cursors.holding, ticksPerRun),
      },
    ],
    { warmupRuns: 1, runs },
  ) as [Measurement, Measurement];
  if (holding.state.positions.size !== accounts) throw new Error("USDJPY ticks closed positions: the band is too wide");
  const ticksFed = ticksPerRun * (runs + 1);
  return [
    row("engine.conversion", "ticks/s", holdingRun, emptyRun, {
      note: `risk-heap entries ${entriesBefore} before and ${riskHeapEntries(holding)} after ${ticksFed} ticks (an evaluation adds entries: none means no account was evaluated again)`,
    }),
  ];
}

export const STOP_OUT = {
  /** Positions of the one account a crash stops out: the engine's bound per account. */
  positions: 1_000,
  /** The baseline's accounts: as many positions in all, ten times fewer each. */
  baselineAccounts: 10,
  runs: 7,
};

/** 1.06: 0.02440 below the buys at 1.08440, a loss of 244 % of the margin at 1:100, far past the 50 % stop-out. */
const CRASH_BID = 106_000;

/**
 * An engine with `accounts` accounts of `positionsPerAccount` small EURUSD buys each (0.05 lot), each account funded
 * with 120 % of its margin: the crash tick (CRASH_BID) stops them all out, closing every position one after another.
 */
function stopOutBook(accounts: number, positionsPerAccount: number): TradingEngine {
  const engine = new TradingEngine(defaultEngineConfig());
  const time = START - 60_000;
  quoteAll(engine, time, [MARKETS[0]!]);
  // A position's margin: 5,000 EUR at 1.08430 / 100 = 54.22 USD (rounded up).
  const deposit = Math.ceil(positionsPerAccount * 5_422 * 1.2);
  for (let index = 0; index < accounts; index++) {
    const opened = mustSucceed(
      engine.execute({
        kind: "openAccount",
        time,
        userId: `bench-stop-out-${index}`,
        currency: "USD",
        leverage: 100,
        mode: "HEDGING",
        deposit: { amount: deposit },
      }),
      "openAccount",
    );
    const accountId = opened.accountId as number;
    for (let position = 0; position < positionsPerAccount; position++)
      mustSucceed(
        engine.execute({
          kind: "placeOrder",
          time,
          accountId,
          symbol: "EURUSD",
          side: "BUY",
          type: "MARKET",
          volume: 5,
        }),
        "position",
      );
  }
  return engine;
}

/** One crash tick through `engine`, which must stop every account out; answers the positions it closed. */
function crash(engine: TradingEngine): number {
  const open = engine.state.positions.size;
  mustSucceed(
    engine.execute({ kind: "tick", time: START, symbol: "EURUSD", bid: CRASH_BID, ask: CRASH_BID + 10 }),
    "crash",
  );
  if (engine.state.positions.size > 0) throw new Error(`the crash left ${engine.state.positions.size} positions open`);
  return open;
}

function stopOutBenchmarks(context: BenchContext): Row[] {
  const { positions, baselineAccounts, runs } = STOP_OUT;
  const perBaselineAccount = positions / baselineAccounts;
  context.log(
    `engine: ${runs + 1} books of 1 account × ${positions} positions and of ${baselineAccounts} × ${perBaselineAccount}...`,
  );
  const large = Array.from({ length: runs + 1 }, () => stopOutBook(1, positions));
  const small = Array.from({ length: runs + 1 }, () => stopOutBook(baselineAccounts, perBaselineAccount));
  const [largeRun, smallRun] = measureTogether(
    [
      { name: `engine stop-out of 1 account × ${positions} positions`, fn: () => crash(large.pop()!) },
      {
        name: `engine stop-out of ${baselineAccounts} accounts × ${perBaselineAccount} positions`,
        fn: () => crash(small.pop()!),
      },
    ],
    { warmupRuns: 1, runs },
  ) as [Measurement, Measurement];
  return [
    row("engine.stopout", "closes/s", largeRun, smallRun, {
      note: "near 1: a stop-out's cost per close does not grow with the positions the account holds (before 7 December each close ranked and summed them all again: 1/8.4, 4.3 k closes/s)",
    }),
  ];
}

export const engineTicksGroup: BenchGroup = {
  name: "engine.ticks",
  description: "ticks through the trading core with 100,000 resting pending orders and 20,000 positions with SL/TP",
  run: tickBenchmarks,
};

export const engineOrdersGroup: BenchGroup = {
  name: "engine.orders",
  description: "market order round trips (open + close) through the trading core",
  run: orderBenchmarks,
};

export const engineConversionGroup: BenchGroup = {
  name: "engine.conversion",
  description: "ticks of a symbol that USD accounts' profit converts through (USDJPY held by USD accounts)",
  run: conversionBenchmarks,
};

export const engineStopOutGroup: BenchGroup = {
  name: "engine.stopout",
  description: "a crash tick that stops out one account of 1,000 positions, beside the same closes as client commands",
  run: stopOutBenchmarks,
};
