/**
 * The trading engine: `execute(command)` decides, emits events and folds each one as it is
 * emitted (state.ts `applyEvent`), so the live state is always the fold of its events.
 * Time passes first: expirations and rollovers due by a command's time are emitted before it is
 * decided, whatever its fate. Beyond those, a rejected command emits nothing and changes nothing.
 * No IO, no clock: time is the command's.
 *
 * Market data (quotes and the liquidity left at each book level) is input, not state: it is not
 * journaled or hashed; every event that depended on it carries the prices it used.
 */
import { Rounding, formatDecimal, multiplyDivide, multiplyDivideAtMost, powerOfTen } from "./fixed.ts";
import {
  currencyDigits,
  isAccountCurrency,
  isSessionOpen,
  isSessionOpenThroughout,
  nextSessionChange,
  maxPricePoints,
  swapDaysAt,
  type InstrumentSpec,
  type TradingHours,
} from "./instruments.ts";
import {
  commissionInAccountCurrency,
  marginInAccountCurrency,
  rescaledMargin,
  profitInAccountCurrency,
  proRata,
  swapInAccountCurrency,
  swapMilliPoints,
  type ConversionRate,
} from "./money.ts";
import { isWorkingStatus } from "./order-status.ts";
import {
  lastRolloverAtOrBefore,
  nextRolloverAfter,
  rolloverFollowing,
  tradingDayWeekday,
} from "./rollover-calendar.ts";
import type { PriceHeap } from "./price-heap.ts";
import { reject, type Rejection, type RejectionCode } from "./rejections.ts";
import {
  EngineState,
  applyEvent,
  boundMemories,
  reinsertOrder,
  reinsertPositionStop,
  restoreState,
  snapshotState,
  stateHash,
  type StateSnapshot,
  type ClientOrderMemory,
  type DeferredSwap,
} from "./state.ts";
import type {
  Account,
  BalanceCommand,
  BookLevel,
  ChangeAccountCommand,
  ClosePositionCommand,
  CloseAllPositionsCommand,
  Command,
  Deal,
  DealEntry,
  EngineConfig,
  EngineEvent,
  ModifyOrderCommand,
  ModifyPositionCommand,
  OpenAccountCommand,
  Order,
  OrderReason,
  OrderStatus,
  OrderType,
  PlaceOrderCommand,
  Position,
  PositionEffect,
  Side,
  SwapCharge,
  TickCommand,
  TimeInForce,
} from "./types.ts";

const TIMES_IN_FORCE: ReadonlySet<string> = new Set<TimeInForce>(["GTC", "DAY", "GTD", "IOC", "FOK"]);
const UNLIMITED = Number.POSITIVE_INFINITY;
/** Bound on book levels per side a tick may carry. */
export const MAX_BOOK_LEVELS = 50;
/**
 * The most an account's balance, or its credit, may reach through balance operations, in minor units: 10^13 (a
 * hundred billion dollars in cents). Equity and the stop-out rule's `equity × 100` then stay safe integers; a
 * deposit or credit that would pass it is refused (INVALID_AMOUNT) instead of overflowing later.
 */
export const MAX_ACCOUNT_MONEY = 10_000_000_000_000;
/**
 * The latest time the engine takes, in epoch milliseconds: 9999-12-31T23:59:59.999Z, the last instant an ISO 8601
 * time with a four-digit year names. A safe integer may be far later (2^53 ms is year 287,396), past what a
 * JavaScript date holds (8.64 × 10^15): a GTD expiration of 9 × 10^15 was journaled, and every view of the order
 * then failed to write its time (500), after restarts too.
 */
export const MAX_TIME_MILLISECONDS = 253_402_300_799_999;

/** Whether `value` is a time the engine takes: whole epoch milliseconds from 1970 to the end of year 9999. */
export function isEngineTime(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0 && (value as number) <= MAX_TIME_MILLISECONDS;
}
/** The margin level shown at most, in basis points of a percent (10^15: ten trillion percent). */
export const MAX_MARGIN_LEVEL_BASIS_POINTS = 1_000_000_000_000_000;

/**
 * How far above the margin-call level (in percentage points of margin level) an account in margin call must come
 * back before the call clears: entering is at the level or below, clearing above level + this (MARGIN CALL
 * HYSTERESIS).
 */
export const MARGIN_CALL_CLEARED_ABOVE_PERCENT = 5;

/**
 * The widest band a conversion rate may move within before an account whose profit converts through it is evaluated
 * again, as a fraction of the rate per conversion step (RISK RATE BAND; `registerRiskThresholds`): 1/20. Wider bands
 * mean fewer evaluations on the rate's ticks and nearer thresholds on the traded prices, drawn at the band's top.
 */
export const RISK_RATE_BAND = { numerator: 1, denominator: 20 } as const;

export interface CommandSuccess {
  readonly ok: true;
  readonly events: readonly EngineEvent[];
  readonly accountId?: number;
  readonly orderId?: number;
  readonly positionId?: number;
  readonly operationId?: number;
  /** The order as it stands after the command (placeOrder), or as first placed (a duplicate client order id). */
  readonly order?: Readonly<Order>;
  readonly dealIds?: readonly number[];
  /** True when a client order id (or a balance operation's reference) repeated an earlier one: nothing was done again. */
  readonly duplicate?: boolean;
}

/** A rejection, with the time-driven events (expirations, rollovers) that fell due before it, if any. */
export interface CommandRejection extends Rejection {
  readonly events: readonly EngineEvent[];
}

export type CommandResult = CommandSuccess | CommandRejection;

/** What the deciding methods return; `execute` attaches the events. */
type Decision = CommandSuccess | Rejection;

/** A book level with the volume still available on this quote (consumed by fills until the next tick). */
interface LiveLevel {
  readonly price: number;
  volume: number;
}

export interface MarketQuote {
  readonly symbol: string;
  readonly bid: number;
  readonly ask: number;
  readonly time: number;
  readonly bids: LiveLevel[];
  readonly asks: LiveLevel[];
  /**
   * Kept from before a restart (`restoreQuote`), not yet replaced by a live tick of its symbol: hours or days old,
   * so it is for display, valuation and swap conversion only. No deal is priced or converted at it and no account
   * is judged at it, else a client trades the gap to the live market, or a stop-out closes at the old price.
   */
  readonly restored?: true;
}

/** What a batch changed of the market data: see `TradingEngine.takeMarketDataChange`. */
export interface MarketDataChange {
  readonly quotes: readonly MarketQuote[];
  readonly time: number;
}

export interface AccountMetrics {
  readonly accountId: number;
  readonly currency: string;
  readonly balance: number;
  readonly credit: number;
  /** balance + credit + profit. */
  readonly equity: number;
  readonly margin: number;
  readonly freeMargin: number;
  /** Equity / margin in basis points of a percent ×100 (10000 = 100 %), rounded down; null without margin. */
  readonly marginLevelBasisPoints: number | null;
  /** Floating profit of open positions including their accrued swaps. */
  readonly profit: number;
}

/**
 * What placing an order would do now (`checkOrder`), as MetaTrader 5's OrderCheck answers: the order decided as
 * `execute` decides it, nothing emitted. Money in the account's minor units.
 */
export interface OrderCheck {
  readonly ok: true;
  /** The order placed before with this clientOrderId: placing again answers that one and changes nothing. */
  readonly duplicateOfOrderId: number | null;
  /** Whether it executes now (MARKET, IOC, FOK), or rests as a pending order (then the figures: filled at its price). */
  readonly executesNow: boolean;
  /** The volume the figures are for: what the book fills now, or the pending order's whole volume. */
  readonly volume: number;
  /**
   * Used margin it adds at current rates (negative: a netting reduction releases it). Null, with the figures below, for
   * a pending order whose money has no live conversion rate yet: placing it needs none, its fill will.
   */
  readonly marginChange: number | null;
  readonly commission: number | null;
  /** Profit with swap it would realise (a netting account's opposite order), at its fill prices. */
  readonly realisedProfit: number | null;
  /**
   * The account after it: its deals applied (commission and realised profit to the balance, the margin), what stays
   * open valued at the current quote, and what it opens at its fill price (PROFIT rounding per deal, so a position's
   * own figure may differ by a minor unit). For an order executing now its fill price is the book's now, so what it
   * opens floats its spread; a pending order's is its own price.
   */
  readonly after: AccountMetrics | null;
}

interface Fill {
  readonly price: number;
  readonly volume: number;
}

interface PlannedDeal {
  readonly deal: Deal;
  readonly effect: PositionEffect;
}

/** An order command decided (`planOrder`): what `placeOrder` emits and `checkOrder` reports. */
type OrderPlan =
  | { readonly ok: true; readonly kind: "DUPLICATE"; readonly result: Decision }
  | {
      readonly ok: true;
      readonly kind: "PENDING";
      readonly account: Account;
      readonly instrument: InstrumentSpec;
      readonly order: Order;
    }
  | {
      readonly ok: true;
      readonly kind: "IMMEDIATE";
      readonly account: Account;
      readonly instrument: InstrumentSpec;
      readonly order: Order;
      readonly quote: MarketQuote;
      readonly levels: LiveLevel[];
      readonly fills: Fill[];
      readonly filled: number;
      readonly deals: PlannedDeal[];
    };

/** A position as a plan sees it while it walks the fills of one order. */
interface SimulatedPosition {
  id: number;
  side: Side;
  volume: number;
  openCost: number;
  margin: number;
  swap: number;
}

interface FillRequest {
  readonly account: Account;
  readonly instrument: InstrumentSpec;
  readonly orderId: number;
  readonly side: Side;
  readonly closePositionId: number | null;
  readonly reason: OrderReason;
  readonly sl: number | null;
  readonly tp: number | null;
  readonly trailingDistance: number | null;
  readonly comment: string;
  readonly magic: number;
  readonly time: number;
  /** The order already has fills (a working order filled again). */
  readonly continuesFill: boolean;
}

export const DEFAULT_ENGINE_CONFIG_VALUES = {
  defaultGroup: "standard",
  rollover: { minuteOfDay: 22 * 60, timeZone: "UTC" },
  tripleSwapWeekday: 3,
  leverageMin: 1,
  leverageMax: 1000,
  maxWorkingOrdersPerAccount: 500,
  maxPositionsAndOrdersPerAccount: 1000,
  // A retry comes within seconds; each memory holds a copy of its order, twice in a server (the follower): 10,000 an
  // account were 11.5 MB of it, filled in 100 s at the request budget (found by the audit of limits of 7 December).
  clientOrderIdMemoryPerAccount: 1_000,
  maxQuoteAgeMs: null,
} as const;

/**
 * DUPLICATE_CLIENT_ORDER_ID naming the order that has the id: a client that lost the first answer (a phone's dropped
 * connection) looks it up instead of guessing (found by the audit of a mobile client's journey of 7 December).
 */
function duplicateClientOrderIdRefusal(first: Order): Rejection {
  const holder =
    first.closePositionId === null
      ? `order #${first.id}`
      : `order #${first.id}, the close of position #${first.closePositionId},`;
  return reject(
    "DUPLICATE_CLIENT_ORDER_ID",
    `The client order id was already used for a different request: ${holder} has it`,
  );
}

/** A deal record of one fill; module-level so the hot path allocates only the record itself. */
function newDeal(
  request: FillRequest,
  id: number,
  positionId: number,
  entry: DealEntry,
  volume: number,
  price: number,
  profit: number,
  commission: number,
  swap: number,
): Deal {
  return {
    id,
    orderId: request.orderId,
    positionId,
    accountId: request.account.id,
    symbol: request.instrument.symbol,
    side: request.side,
    entry,
    volume,
    price,
    profit,
    commission,
    swap,
    reason: request.reason,
    time: request.time,
  };
}

/** The plan's working copy of a position (null when there is none). */
function simulate(position: Position | undefined): SimulatedPosition | null {
  return position
    ? {
        id: position.id,
        side: position.side,
        volume: position.volume,
        openCost: position.openCost,
        margin: position.margin,
        swap: position.swap,
      }
    : null;
}

/** The limit a stop-limit places must not be marketable beyond its stop: a buy limit ≤ the stop, a sell limit ≥ it. */
function stopLimitBeyondStop(side: Side, stopPrice: number, stopLimitPrice: number): boolean {
  return side === "BUY" ? stopLimitPrice > stopPrice : stopLimitPrice < stopPrice;
}

function opposite(side: Side): Side {
  return side === "BUY" ? "SELL" : "BUY";
}

/**
 * A tick's quote as the engine takes it, or the rejection the engine answers it with: bid and ask positive
 * points within `maxPrice` (the instrument's `maxPricePoints`), ask ≥ bid, and book levels that start at the
 * quote, run best first, carry positive volumes and stay within the bound. A side without levels has unlimited
 * volume at the top of book. Pure, so a feed bridge can check a whole batch before it pushes any of it.
 */
export function readTick(
  tick: Pick<TickCommand, "bid" | "ask" | "bids" | "asks">,
  maxPrice: number,
): { readonly ok: true; readonly bids: LiveLevel[]; readonly asks: LiveLevel[] } | Rejection {
  const { bid, ask } = tick;
  // Bids fall from the bid; asks rise from the ask, so the last ask level must be within the bound too.
  if (!isPositiveInteger(bid) || !isPositiveInteger(ask) || ask < bid || ask > maxPrice)
    return reject("INVALID_PRICE", "bid and ask must be positive points within the instrument's bound, ask ≥ bid");
  const bids = bookSide(tick.bids, bid, "SELL");
  const asks = bookSide(tick.asks, ask, "BUY");
  if (asks && asks[asks.length - 1]!.price > maxPrice)
    return reject("INVALID_PRICE", "book levels must be within the instrument's price bound");
  if (!bids || !asks)
    return reject(
      "INVALID_PRICE",
      "book levels must start at the quote, be ordered best first and carry positive volumes",
    );
  return { ok: true, bids, asks };
}

/** Validates one side of a book; without levels the top of book has unlimited volume. */
function bookSide(levels: readonly BookLevel[] | undefined, top: number, side: Side): LiveLevel[] | null {
  if (levels === undefined || (Array.isArray(levels) && levels.length === 0))
    return [{ price: top, volume: UNLIMITED }];
  if (!Array.isArray(levels) || levels.length > MAX_BOOK_LEVELS) return null;
  const result: LiveLevel[] = [];
  let previous: number | null = null;
  for (const level of levels as unknown[]) {
    if (typeof level !== "object" || level === null) return null;
    const { price, volume } = level as Partial<BookLevel>;
    if (!isPositiveInteger(price) || !isPositiveInteger(volume)) return null;
    if (previous === null ? price !== top : side === "BUY" ? price <= previous : price >= previous) return null;
    result.push({ price, volume });
    previous = price;
  }
  return result;
}

/** An account's figures from its balance, equity, used margin and floating profit with swap. */
function metricsView(
  account: Account,
  balance: number,
  equity: number,
  margin: number,
  profit: number,
): AccountMetrics {
  return {
    accountId: account.id,
    currency: account.currency,
    balance,
    credit: account.credit,
    equity,
    margin,
    freeMargin: equity - margin,
    // Margin level is informational: rounded down so a displayed level never overstates safety.
    // Saturating: a large equity over a margin of a few minor units is far past any safe integer, and means no risk.
    marginLevelBasisPoints:
      margin === 0
        ? null
        : multiplyDivideAtMost([equity, 10_000], [margin], Rounding.FLOOR, MAX_MARGIN_LEVEL_BASIS_POINTS),
    profit,
  };
}

/** A command's or a kept quote's time outside the engine's (`isEngineTime`). */
function invalidTime(): Rejection {
  return reject("INVALID_DATA", "time must be whole epoch milliseconds up to the end of year 9999");
}

function capitalized(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Refuses trading at a quote kept from before a restart (`MarketQuote.restored`) until the symbol ticks live. */
function noLivePrice(symbol: string): Rejection {
  return reject("NO_QUOTES", `No live price of ${symbol} since the restart yet`);
}

/** INVALID_STOPS for a trailing distance: what it must be. */
function trailingRefusal(instrument: InstrumentSpec): Rejection {
  return reject(
    "INVALID_STOPS",
    `The trailing distance must be a price distance of at least ${Math.max(instrument.stopsLevelPoints, 1)} points`,
  );
}

/** A quote and its levels, copied (a kept one stays `restored`): an engine takes liquidity from its levels in place. */
function copyQuote(quote: MarketQuote): MarketQuote {
  return { ...quote, bids: quote.bids.map((level) => ({ ...level })), asks: quote.asks.map((level) => ({ ...level })) };
}

/** A UTF-16 surrogate without its pair: text UTF-8 (and so PostgreSQL's text) cannot hold. */
const UNPAIRED_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Whether `value` is text of at most `maxLength` UTF-16 units that every journal driver keeps exactly: no NUL
 * and no lone surrogate, which PostgreSQL's text refuses. One order comment of "x\u0000y" made PostgreSQL refuse
 * its whole group-committed batch: every command in it (other users' too) answered 503 and the engine rebuilt
 * from the journal. The engine refuses such text in every string it journals.
 */
export function isPortableText(value: unknown, maxLength: number): value is string {
  return (
    typeof value === "string" &&
    textLength(value) <= maxLength &&
    !value.includes("\u0000") &&
    !hasUnpairedSurrogate(value)
  );
}

/** Whether `value` holds a UTF-16 surrogate without its pair, which UTF-8 writes as U+FFFD (so two such texts are one). */
export function hasUnpairedSurrogate(value: string): boolean {
  return UNPAIRED_SURROGATE.test(value);
}

/**
 * A text's length in characters (Unicode code points), as the faces' schemas count `maxLength` (JSON Schema, Ajv):
 * counted in UTF-16 units, a name of 100 emoji that the schema took was then refused as 200 characters long (found by
 * the audit of user data of 7 December).
 */
export function textLength(value: string): number {
  let length = value.length;
  for (let index = 0; index < value.length; index++) {
    const unit = value.charCodeAt(index);
    // The second half of a pair is not a character of its own.
    if (unit >= 0xdc00 && unit <= 0xdfff && index > 0) {
      const before = value.charCodeAt(index - 1);
      if (before >= 0xd800 && before <= 0xdbff) length--;
    }
  }
  return length;
}

/** The longest comment a balance operation takes (the admin API's bound). */
export const MAX_BALANCE_COMMENT_LENGTH = 200;

function isPositiveInteger(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0;
}

/** The refusal of a client's id (a client order id, a balance reference) that is not 1 to 64 portable characters. */
function idTextRefusal(field: string, text: string): Rejection | null {
  return isPortableText(text, 64) && text.length > 0
    ? null
    : reject("INVALID_DATA", `${field} must be 1 to 64 characters, without NUL or unpaired surrogates`);
}

function balanceCommentRefusal(comment: string): Rejection | null {
  return isPortableText(comment, MAX_BALANCE_COMMENT_LENGTH)
    ? null
    : reject(
        "INVALID_DATA",
        `comment is text of at most ${MAX_BALANCE_COMMENT_LENGTH} characters, without NUL or unpaired surrogates`,
      );
}

/** The answer to a retried client order id: the first order or close as remembered, nothing done again. */
function duplicateAnswer(memory: ClientOrderMemory): CommandSuccess {
  return {
    ok: true,
    events: [],
    orderId: memory.order.id,
    order: { ...memory.order },
    dealIds: [...memory.dealIds],
    duplicate: true,
  };
}

export class TradingEngine {
  readonly state: EngineState;
  private readonly quotes = new Map<string, MarketQuote>();
  /** Symbols whose quote or book liquidity changed since a follower last took them (bounded by the instruments). */
  private readonly changedMarketData = new Set<string>();
  private clock = Number.NEGATIVE_INFINITY;
  /** `rolloverAfter`'s last answer. */
  private rolloverMemo = { after: Number.NaN, next: 0 };
  private events: EngineEvent[] = [];
  /** A reused id buffer for the per-tick risk scan (no allocation on the common path). */
  private readonly scratchIds: number[] = [];
  private readonly quoteLookup = (symbol: string): MarketQuote | undefined => this.quotes.get(symbol);
  /** The quotes a deal or a risk judgement may use: live ones, not those kept from before a restart. */
  private readonly liveQuoteLookup = (symbol: string): MarketQuote | undefined => {
    const quote = this.quotes.get(symbol);
    return quote === undefined || (quote.restored && !this.lastOfClosedSession(quote)) ? undefined : quote;
  };

  /** Whether the symbol's quote is one kept from before a restart that is not yet a live one (`liveQuoteLookup`). */
  private keptNotLive(symbol: string): boolean {
    return this.quotes.get(symbol)?.restored === true && !this.liveQuoteLookup(symbol);
  }

  /**
   * Whether a quote kept from before a restart is its market's last price: it came inside a session that has closed
   * since, and no session has opened after it. While the market stays closed no live tick can replace it (a quote
   * outside the session is not taken), and a live engine values positions, and judges accounts, at exactly its last
   * quote of the session; so does a restarted one. Nothing trades at it (`tradable`: the market is closed, then the
   * session's first tick is awaited).
   */
  private lastOfClosedSession(quote: MarketQuote): boolean {
    let bounds = this.restoredSessionBounds.get(quote);
    if (bounds === undefined) {
      const hours = this.state.instrument(quote.symbol);
      const closedAt = isSessionOpen(hours, quote.time) ? nextSessionChange(hours, quote.time) : null;
      bounds = { closedAt, reopensAt: closedAt === null ? null : nextSessionChange(hours, closedAt) };
      this.restoredSessionBounds.set(quote, bounds);
    }
    const { closedAt, reopensAt } = bounds;
    return closedAt !== null && closedAt <= this.clock && (reopensAt === null || reopensAt > this.clock);
  }

  /**
   * When the session of each kept quote closed and next opens (`lastOfClosedSession`), worked out once per quote: it is
   * asked on every tick that judges an account holding it, all weekend after a restart. Null closedAt: a quote from
   * outside a session, or of a market that never closes.
   */
  private readonly restoredSessionBounds = new WeakMap<
    MarketQuote,
    { readonly closedAt: number | null; readonly reopensAt: number | null }
  >();

  /** Each instrument's `maxPricePoints`, computed once. */
  private readonly maxPriceBySymbol = new Map<string, number>();

  constructor(readonly config: EngineConfig) {
    this.state = new EngineState(config);
  }

  /** Builds an engine whose state is the fold of `events`: recovery and the replay check. */
  static replay(config: EngineConfig, events: Iterable<EngineEvent>): TradingEngine {
    const engine = new TradingEngine(config);
    for (const event of events) engine.applyRecovered(event);
    return engine;
  }

  /** Builds an engine from a snapshot; fold the journal's later events into it with `applyRecovered`. */
  static fromSnapshot(config: EngineConfig, snapshot: StateSnapshot): TradingEngine {
    const engine = new TradingEngine(config);
    restoreState(engine.state, snapshot);
    return engine;
  }

  snapshot(): StateSnapshot {
    return snapshotState(this.state);
  }

  /**
   * Cuts the state's memories to this engine's configured bounds (state.ts `boundMemories`): for an engine restored
   * from a snapshot, once its state hash has been checked against the one stored with it.
   */
  boundMemories(): void {
    boundMemories(this.state);
  }

  /**
   * A read-only copy of `source` to follow it with `followDurable`: a durable engine executes a batch
   * before its events are journaled, and serves reads from a follower that folds each batch only once
   * it is durable (DESIGN.md section 2: nothing that depends on an unjournaled event leaves the process).
   * It must never be given commands.
   */
  static follower(source: TradingEngine): TradingEngine {
    const follower = TradingEngine.fromSnapshot(source.config, source.snapshot());
    for (const symbol of source.quotes.keys()) source.changedMarketData.add(symbol);
    follower.followDurable([], source.takeMarketDataChange());
    return follower;
  }

  /**
   * The market data this engine's commands changed since the last call (quotes with the liquidity left at
   * each level, copied) and its clock: taken when a batch ends, so a follower can fold the batch later,
   * once it is durable, even after this engine has executed the next ones.
   */
  takeMarketDataChange(): MarketDataChange {
    const quotes: MarketQuote[] = [];
    for (const symbol of this.changedMarketData) {
      const quote = this.quotes.get(symbol);
      if (quote) quotes.push(copyQuote(quote));
    }
    this.changedMarketData.clear();
    return { quotes, time: this.clock };
  }

  /**
   * Folds `events`, a batch its source emitted and which is now durable, with the market data the source
   * had when that batch ended (`takeMarketDataChange`): the follower's state, quotes and clock are then
   * exactly the source's as of the batch's last event.
   */
  followDurable(events: Iterable<EngineEvent>, change: MarketDataChange): void {
    for (const event of events) this.applyRecovered(event);
    // A follower never evaluates risk (the executing engine did): nothing would drain this set.
    this.state.riskDirty.clear();
    for (const quote of change.quotes) this.quotes.set(quote.symbol, quote);
    if (change.time > this.clock) this.clock = change.time;
  }

  /**
   * Takes `source`'s quotes, copied, for the symbols this engine has none of, without running anything at them.
   * Quotes are not state, so an engine rebuilt from the journal has none until the next ticks: a durable engine
   * that rebuilds while the feed goes on gives it the quotes of its follower, the market as of the last durable
   * batch, whose triggers have all run (packages/store durable-engine.ts). Its accounts are then risk-checked
   * by the next command, at those prices.
   */
  adoptQuotes(source: TradingEngine): void {
    for (const [symbol, quote] of source.quotes)
      if (!this.quotes.has(symbol)) this.quotes.set(symbol, copyQuote(quote));
  }

  /**
   * Takes a quote kept from before a restart (the platform store's last quotes) for a symbol that has none, without
   * running anything at it: quotes are not state, and its triggers ran when it first came (what a kill -9 lost of
   * their events runs at the next tick). Marked `restored` until the symbol's next tick: positions show their profit
   * at it and swaps convert at it, but nothing trades at it and no account is judged at it (`tradable`,
   * `rates`, `accountPriced`). Checked as a tick is (`readTick`), its time as the engine's; a symbol with a quote
   * keeps it (newer).
   */
  restoreQuote(quote: Omit<TickCommand, "kind">): Rejection | null {
    const instrument = this.state.instruments.get(quote.symbol);
    if (!instrument) return reject("UNKNOWN_SYMBOL");
    if (!isEngineTime(quote.time)) return invalidTime();
    const book = readTick(quote, this.maxPrice(instrument));
    if (!book.ok) return book;
    if (this.quotes.has(instrument.symbol)) return null;
    const { bid, ask, time } = quote;
    this.quotes.set(instrument.symbol, {
      symbol: instrument.symbol,
      bid,
      ask,
      time,
      bids: book.bids,
      asks: book.asks,
      restored: true,
    });
    return null;
  }

  /**
   * Sets the clock to `time` unless it is past it: an engine restored from a snapshot takes the time of the last
   * event the snapshot folded, which a state does not hold (recovery.ts reads it from the journal). Without it the
   * clock started again from nothing, and a command stamped before the last journaled event, with a wall clock set
   * back, was journaled earlier than it, which the histories' time order does not allow (found by the audit of
   * durability of 7 December).
   */
  resumeClock(time: number): void {
    if (time > this.clock) this.clock = time;
  }

  /** Folds a journaled event (recovery). */
  applyRecovered(event: EngineEvent): void {
    applyEvent(this.state, event);
    if (event.time > this.clock) this.clock = event.time;
  }

  stateHash(): string {
    return stateHash(this.state);
  }

  /** The engine's clock: the latest time it has seen. */
  get time(): number {
    return this.clock;
  }

  /**
   * When the next expiration or rollover is due (engine time, ms), or null before the first command anchors the
   * rollover calendar: a command at or after it, `advanceTime` among them, runs it. The server's clock sends
   * `advanceTime` then, so an order expires on time and a day rolls over when no quote or request comes.
   */
  nextDueTime(): number | null {
    const state = this.state;
    if (state.lastRolloverAt === null) return null;
    const nextRollover = this.rolloverAfter(state.lastRolloverAt);
    const nextExpiration = state.expirations.peekPrice();
    return nextExpiration === null ? nextRollover : Math.min(nextRollover, nextExpiration);
  }

  quote(symbol: string): Readonly<MarketQuote> | undefined {
    return this.quotes.get(symbol);
  }

  execute(command: Command): CommandResult {
    if (!isEngineTime(command.time))
      return {
        ...invalidTime(),
        events: [],
      };
    // A command older than the clock runs at the clock's time: time never goes backwards inside the engine.
    const time = Math.max(command.time, this.clock);
    this.events = [];
    // Time passes whatever the command's fate: expirations and rollovers due by now happen first, and are
    // reported (and must be journaled) even when the command itself is rejected.
    this.advanceClock(time);
    this.clock = time;
    const timeEvents = this.events.length;
    const result = this.decide(command, time);
    if (!result.ok) {
      if (this.events.length > timeEvents)
        throw new Error(`engine bug: ${command.kind} rejected after emitting events`);
      this.evaluateDirtyAccounts(time);
      return this.withEvents(result);
    }
    this.evaluateDirtyAccounts(time);
    return this.withEvents(result);
  }

  /** Attaches the command's events to its (freshly built) result, without copying it on the hot path. */
  private withEvents<T extends Decision>(result: T): T & { events: readonly EngineEvent[] } {
    const events = this.events;
    this.events = [];
    (result as { events: readonly EngineEvent[] }).events = events;
    return result as T & { events: readonly EngineEvent[] };
  }

  private emit(event: EngineEvent): void {
    applyEvent(this.state, event);
    this.events.push(event);
  }

  private decide(command: Command, time: number): Decision {
    switch (command.kind) {
      case "tick":
        return this.tick(command, time);
      case "advanceTime":
        return { ok: true, events: [] };
      case "openAccount":
        return this.openAccount(command, time);
      case "deposit":
      case "withdraw":
      case "credit":
        return this.balanceOperation(command, time);
      case "changeAccount":
        return this.changeAccount(command, time);
      case "placeOrder":
        return this.placeOrder(command, time);
      case "modifyOrder":
        return this.modifyOrder(command, time);
      case "cancelOrder": {
        const order = this.ownedOrder(command.accountId, command.orderId);
        if (!order.ok) return order;
        if (!this.state.orders.has(order.order.id)) return reject("ORDER_NOT_MODIFIABLE");
        this.setStatus(order.order, "CANCELLED", "CLIENT_CANCEL", time);
        return { ok: true, events: [], orderId: order.order.id };
      }
      case "modifyPosition":
        return this.modifyPosition(command, time);
      case "closePosition":
        return this.closePositionOnRequest(command, time);
      case "closeAllPositions":
        return this.closeAllPositions(command, time);
      default:
        // The faces' schemas never send one; a command from elsewhere must still be refused, not throw.
        return reject("INVALID_DATA", "unknown command kind");
    }
  }

  // -------------------------------------------------------------------------------------------
  // Accounts and balance

  private openAccount(command: OpenAccountCommand, time: number): Decision {
    if (!isAccountCurrency(command.currency)) return reject("INVALID_CURRENCY");
    if (
      !Number.isSafeInteger(command.leverage) ||
      command.leverage < this.config.leverageMin ||
      command.leverage > this.config.leverageMax
    )
      return reject("INVALID_LEVERAGE");
    if (command.mode !== "HEDGING" && command.mode !== "NETTING")
      return reject("INVALID_DATA", "mode must be HEDGING or NETTING");
    const group = command.group ?? this.config.defaultGroup;
    if (!this.config.groups.some((candidate) => candidate.name === group)) return reject("INVALID_GROUP");
    if (!isPortableText(command.userId, 200) || command.userId.length === 0)
      return reject("INVALID_DATA", "userId is required: text without NUL or unpaired surrogates");
    const accountId = command.accountId ?? this.state.nextAccountId;
    if (!isPositiveInteger(accountId)) return reject("INVALID_DATA", "accountId must be a positive integer");
    if (this.state.accounts.has(accountId)) return reject("ACCOUNT_EXISTS");
    const deposit = command.deposit;
    // Checked before the account is opened: the deposit below must not be refused once it is.
    if (deposit !== undefined) {
      if (!Number.isSafeInteger(deposit.amount) || deposit.amount <= 0 || deposit.amount > MAX_ACCOUNT_MONEY)
        return reject("INVALID_AMOUNT");
      const refused = balanceCommentRefusal(deposit.comment ?? "");
      if (refused) return refused;
    }
    this.emit({
      type: "AccountOpened",
      time,
      accountId,
      userId: command.userId,
      currency: command.currency,
      leverage: command.leverage,
      mode: command.mode,
      group,
    });
    if (deposit !== undefined) {
      const funded = this.balanceOperation(
        { kind: "deposit", time, accountId, amount: deposit.amount, comment: deposit.comment },
        time,
      );
      if (!funded.ok) throw new Error(`engine bug: the checked first deposit was refused: ${funded.code}`);
    }
    return { ok: true, events: [], accountId };
  }

  private changeAccount(command: ChangeAccountCommand, time: number): Decision {
    const account = this.state.accounts.get(command.accountId);
    if (!account) return reject("ACCOUNT_NOT_FOUND");
    const leverage = command.leverage ?? account.leverage;
    // Only a new leverage is held to the bounds: an account opened under a higher maximum than the one configured now
    // keeps its leverage, and its group or trading permission can still be changed.
    if (
      command.leverage !== undefined &&
      (!Number.isSafeInteger(leverage) || leverage < this.config.leverageMin || leverage > this.config.leverageMax)
    )
      return reject("INVALID_LEVERAGE");
    const group = command.group ?? account.group;
    if (!this.config.groups.some((candidate) => candidate.name === group)) return reject("INVALID_GROUP");
    const tradingEnabled = command.tradingEnabled ?? account.tradingEnabled;
    if (typeof tradingEnabled !== "boolean") return reject("INVALID_DATA", "tradingEnabled must be true or false");
    if (leverage === account.leverage && group === account.group && tradingEnabled === account.tradingEnabled)
      return reject("NO_CHANGES");
    const previousLeverage = account.leverage;
    this.emit({ type: "AccountChanged", time, accountId: account.id, leverage, group, tradingEnabled });
    // Open positions are margined at the new leverage (MetaTrader 5 margins them at the account's): found by an audit,
    // lowering an account's leverage before news, a broker's risk control, did nothing to its open positions. Their
    // margin is rescaled, not recomputed (the rate it was converted at is the opening deal's): MARGIN_RESCALE, the
    // margin × old leverage / new leverage, rounded up as every margin is. The account is judged at once (the fold marks
    // it), so a lower leverage can take it to a margin call or a stop-out in this command.
    if (leverage !== previousLeverage)
      for (const positionId of [...(this.state.accountPositions.get(account.id) ?? [])].sort((a, b) => a - b)) {
        const position = this.state.positions.get(positionId) as Position;
        if (this.state.instrument(position.symbol).marginMode === "CFD") continue;
        const margin = rescaledMargin(position.margin, previousLeverage, leverage);
        if (margin !== position.margin)
          this.emit({ type: "PositionMarginChanged", time, accountId: account.id, positionId, margin });
      }
    return { ok: true, events: [], accountId: account.id };
  }

  private balanceOperation(command: BalanceCommand, time: number): Decision {
    const account = this.state.accounts.get(command.accountId);
    if (!account) return reject("ACCOUNT_NOT_FOUND");
    if (!Number.isSafeInteger(command.amount) || command.amount === 0) return reject("INVALID_AMOUNT");
    const reference = command.reference ?? null;
    if (reference !== null) {
      const malformed = idTextRefusal("reference", reference);
      if (malformed) return malformed;
      // A payment bridge retries after a lost answer: the first operation's result, no money moved again (found by
      // the audit of the back office of 7 December: a retried deposit was deposited twice).
      const first = this.state.balanceReferences.get(account.id)?.get(reference);
      if (first) {
        const kind = command.kind === "deposit" ? "DEPOSIT" : command.kind === "withdraw" ? "WITHDRAWAL" : "CREDIT";
        const amount = command.kind === "withdraw" ? -command.amount : command.amount;
        if (first.kind !== kind || first.amount !== amount) return reject("DUPLICATE_REFERENCE");
        return { ok: true, events: [], accountId: account.id, operationId: first.operationId, duplicate: true };
      }
    }
    const referenced = reference === null ? {} : { reference };
    const comment = command.comment ?? "";
    const malformedComment = balanceCommentRefusal(comment);
    if (malformedComment) return malformedComment;
    const operationId = this.state.nextOperationId;
    const overLimit = `The account would hold more than ${MAX_ACCOUNT_MONEY} minor units`;
    if (command.kind === "deposit") {
      if (command.amount < 0) return reject("INVALID_AMOUNT");
      if (account.balance + command.amount > MAX_ACCOUNT_MONEY) return reject("INVALID_AMOUNT", overLimit);
      this.emit({
        type: "BalanceOperation",
        time,
        accountId: account.id,
        operationId,
        kind: "DEPOSIT",
        amount: command.amount,
        comment,
        ...referenced,
      });
    } else if (command.kind === "withdraw") {
      if (command.amount < 0) return reject("INVALID_AMOUNT");
      // Only the client's own money that no position needs: at most the balance, and at most the free margin
      // left without the credit (the broker's credit may carry margin or losses, never leave as a withdrawal).
      const unpriced = this.unpricedMoney(account, true);
      if (unpriced) return unpriced;
      const { equity, margin } = this.equityAndMargin(account.id);
      if (command.amount > account.balance || command.amount > equity - account.credit - margin)
        return reject("NO_MONEY", "The withdrawal exceeds the balance or the free margin not held by credit");
      this.emit({
        type: "BalanceOperation",
        time,
        accountId: account.id,
        operationId,
        kind: "WITHDRAWAL",
        amount: -command.amount,
        comment,
        ...referenced,
      });
    } else {
      if (account.credit + command.amount < 0) return reject("INVALID_AMOUNT", "Credit cannot become negative");
      if (account.credit + command.amount > MAX_ACCOUNT_MONEY) return reject("INVALID_AMOUNT", overLimit);
      if (command.amount < 0) {
        const unpriced = this.unpricedMoney(account, true);
        if (unpriced) return unpriced;
        if (-command.amount > this.accountMetrics(account.id).freeMargin)
          return reject("NO_MONEY", "Removing this credit would leave less than the used margin");
      }
      this.emit({
        type: "BalanceOperation",
        time,
        accountId: account.id,
        operationId,
        kind: "CREDIT",
        amount: command.amount,
        comment,
        ...referenced,
      });
    }
    return { ok: true, events: [], accountId: account.id, operationId };
  }

  // -------------------------------------------------------------------------------------------
  // Metrics

  /** Floating profit of one position at the current top of book, in account minor units (0 without a quote). */
  positionProfit(position: Position): number {
    const quote = this.quotes.get(position.symbol);
    const account = this.state.accounts.get(position.accountId);
    if (!quote || !account) return 0;
    const instrument = this.state.instrument(position.symbol);
    const rate = this.state.converter.rate(instrument.profitCurrency, account.currency, this.quoteLookup);
    if (!rate) return 0;
    const closePrice = position.side === "BUY" ? quote.bid : quote.ask;
    return profitInAccountCurrency(
      instrument,
      position.side,
      position.openCost,
      closePrice * position.volume,
      rate,
      currencyDigits(account.currency),
    );
  }

  accountMetrics(accountId: number): AccountMetrics {
    const { account, equity, margin, profit } = this.equityAndMargin(accountId);
    return metricsView(account, account.balance, equity, margin, profit);
  }

  /**
   * What placing the order would do now (OrderCheck): a read, the state untouched. Refused as `execute` would refuse
   * it; time does not pass (expirations and rollovers due by the command's time are the next command's).
   */
  checkOrder(command: PlaceOrderCommand): OrderCheck | Rejection {
    if (!isEngineTime(command.time)) return invalidTime();
    const emitted = this.events.length;
    const planned = this.planOrder(command, Math.max(command.time, this.clock));
    if (this.events.length !== emitted) throw new Error("engine bug: checking an order emitted events");
    if (!planned.ok) return planned;
    const { account, equity, margin, profit } = this.equityAndMargin(command.accountId);
    if (planned.kind === "DUPLICATE") {
      if (!planned.result.ok) return planned.result;
      return {
        ok: true,
        duplicateOfOrderId: planned.result.orderId ?? null,
        executesNow: false,
        volume: 0,
        marginChange: 0,
        commission: 0,
        realisedProfit: 0,
        after: metricsView(account, account.balance, equity, margin, profit),
      };
    }
    const { instrument, order } = planned;
    const executesNow = planned.kind === "IMMEDIATE";
    let deals: readonly PlannedDeal[];
    if (planned.kind === "IMMEDIATE") deals = planned.deals;
    else {
      // As if filled now at its price (a stop-limit's at its limit), at current rates. Placing a pending order reads no
      // rate, so a missing one is no refusal of the check (found by the review of 7 December, sixth session): only
      // its figures are unknown.
      const price = order.type === "STOP_LIMIT" ? (order.stopLimitPrice as number) : (order.price as number);
      const plan = this.planDeals(this.fillRequest(account, instrument, order, order.createdAt), [
        { price, volume: order.volume },
      ]);
      if (!plan.ok)
        return {
          ok: true,
          duplicateOfOrderId: null,
          executesNow,
          volume: order.volume,
          marginChange: null,
          commission: null,
          realisedProfit: null,
          after: null,
        };
      deals = plan.deals;
    }
    const { used, usedAfter, commissions } = this.usedMarginAfter(account, instrument, deals);
    let realised = 0;
    for (const { deal } of deals) realised += deal.profit + deal.swap;
    const quote = this.quotes.get(instrument.symbol) as MarketQuote;
    const floatingAfter = profit + this.floatingChange(account, instrument, quote, deals, executesNow);
    const balanceAfter = account.balance + realised - commissions;
    return {
      ok: true,
      duplicateOfOrderId: null,
      executesNow,
      volume: planned.kind === "IMMEDIATE" ? planned.filled : order.volume,
      marginChange: usedAfter - used,
      commission: commissions,
      realisedProfit: realised,
      after: metricsView(
        account,
        balanceAfter,
        balanceAfter + account.credit + floatingAfter,
        usedAfter,
        floatingAfter,
      ),
    };
  }

  /**
   * How the deals change the account's floating profit with swap: what they close stops floating (valued at `quote`; its
   * profit and swap move to the balance); what they open floats from its fill price to `quote` when `openedAtQuote`,
   * else nothing (valued at its own fill price: a pending order's).
   */
  private floatingChange(
    account: Account,
    instrument: InstrumentSpec,
    quote: MarketQuote,
    deals: readonly PlannedDeal[],
    openedAtQuote: boolean,
  ): number {
    const rate = this.state.converter.rate(instrument.profitCurrency, account.currency, this.quoteLookup);
    if (!rate) return 0;
    const digits = currencyDigits(account.currency);
    const closePrice = (side: Side) => (side === "BUY" ? quote.bid : quote.ask);
    let change = 0;
    for (const { deal, effect } of deals) {
      if (effect.kind === "DECREASE") {
        const side = opposite(deal.side);
        const closed = effect.closedCost;
        change -= profitInAccountCurrency(instrument, side, closed, closePrice(side) * deal.volume, rate, digits);
        change -= deal.swap;
      } else if (openedAtQuote) {
        const cost = deal.price * deal.volume;
        change += profitInAccountCurrency(
          instrument,
          deal.side,
          cost,
          closePrice(deal.side) * deal.volume,
          rate,
          digits,
        );
      }
    }
    return change;
  }

  /** What the risk rules need, without the display-only margin level. */
  private equityAndMargin(accountId: number): { account: Account; equity: number; margin: number; profit: number } {
    const account = this.state.accounts.get(accountId);
    if (!account) throw new Error(`no account ${accountId}`);
    let profit = 0;
    const positions = this.state.accountPositions.get(accountId);
    if (positions) {
      for (const positionId of positions) {
        const position = this.state.positions.get(positionId);
        if (position) profit += this.positionProfit(position) + position.swap;
      }
    }
    return this.metricsWithProfit(account, profit);
  }

  /** An account's risk figures, given what its positions float (profit with swap): equity = balance + credit + that. */
  private metricsWithProfit(
    account: Account,
    profit: number,
  ): { account: Account; equity: number; margin: number; profit: number } {
    return {
      account,
      equity: account.balance + account.credit + profit,
      margin: this.state.usedMargin(account.id),
      profit,
    };
  }

  // -------------------------------------------------------------------------------------------
  // Orders

  private ownedAccount(accountId: number): { ok: true; account: Account } | Rejection {
    const account = this.state.accounts.get(accountId);
    if (!account) return reject("ACCOUNT_NOT_FOUND");
    return { ok: true, account };
  }

  private ownedOrder(accountId: number, orderId: number): { ok: true; order: Order } | Rejection {
    const order = this.state.orders.get(orderId);
    if (!order || order.accountId !== accountId || order.type === "MARKET") return reject("ORDER_NOT_FOUND");
    return { ok: true, order };
  }

  /**
   * Why the symbol cannot be traded at `time`, or null. `opens`: the command could open or add to a position (a new
   * order), which a CLOSE_ONLY instrument refuses (MetaTrader's SYMBOL_TRADE_MODE_CLOSEONLY: closes and changes of
   * what is open only). The README documented the mode and the market view showed it, but orders were taken
   * (found by the audit of the order lifecycle of 7 December).
   */
  private tradable(instrument: InstrumentSpec | undefined, time: number, opens = false): Rejection | null {
    if (!instrument) return reject("UNKNOWN_SYMBOL");
    if (instrument.tradeMode === "DISABLED") return reject("TRADE_DISABLED");
    if (opens && instrument.tradeMode === "CLOSE_ONLY")
      return reject(
        "TRADE_DISABLED",
        `${instrument.symbol} is close-only: positions may be closed and their stops changed, no order placed`,
      );
    if (!isSessionOpen(instrument, time)) return reject("MARKET_CLOSED");
    return this.quoteRefusal(instrument, time);
  }

  /**
   * Why the symbol's quote is no price to trade at `time`, or null when it is one: every order, close and stops change
   * is decided against the current price, and a stop-out closes only a position it can price so (`stopOutRanking`).
   */
  private quoteRefusal(instrument: InstrumentSpec, time: number): Rejection | null {
    const quote = this.quotes.get(instrument.symbol);
    if (!quote) return reject("NO_QUOTES");
    // A quote kept from before a restart is not yet a live one.
    if (quote.restored) return noLivePrice(instrument.symbol);
    switch (this.staleness(quote, instrument, time)) {
      case "BEFORE_OPEN":
        return reject("NO_QUOTES", `No price of ${instrument.symbol} since the market opened yet`);
      case "TOO_OLD":
        return reject("NO_QUOTES", `The last price of ${instrument.symbol} is ${this.tooOld(quote, time)}`);
      case null:
        return null;
    }
  }

  /**
   * Whether a live quote is too old to decide at `time`: from before its market last closed (Friday's close at
   * Sunday's open: a client traded the weekend gap at a two-day-old price; trading waits for the session's first
   * tick), or older than `maxQuoteAgeMs` in an open market (its feed has gone silent). The one rule for a symbol's own
   * price (`quoteRefusal`) and for a conversion rate (`staleConversion`).
   */
  private staleness(quote: MarketQuote, hours: TradingHours, time: number): "BEFORE_OPEN" | "TOO_OLD" | null {
    if (!isSessionOpenThroughout(hours, quote.time, time)) return "BEFORE_OPEN";
    const limit = this.config.maxQuoteAgeMs;
    return limit !== null && time - quote.time > limit ? "TOO_OLD" : null;
  }

  /** The end of a TOO_OLD refusal: how old the quote is, against the limit. */
  private tooOld(quote: MarketQuote, time: number): string {
    return `${Math.floor((time - quote.time) / 1000)} s old, more than ${(this.config.maxQuoteAgeMs as number) / 1000} s: trading waits for its next tick`;
  }

  private validVolume(instrument: InstrumentSpec, volume: number): boolean {
    return (
      Number.isSafeInteger(volume) &&
      volume >= instrument.volumeMin &&
      volume <= instrument.volumeMax &&
      volume % instrument.volumeStep === 0
    );
  }

  /** A trailing distance is a positive number of points, at least the stops level. */
  private trailingValid(instrument: InstrumentSpec, distance: number | null): boolean {
    return distance === null || (this.isPrice(instrument, distance) && distance >= instrument.stopsLevelPoints);
  }

  /** A positive number of points within the instrument's price bound (`maxPricePoints`). */
  private isPrice(instrument: InstrumentSpec, value: unknown): value is number {
    return isPositiveInteger(value) && value <= this.maxPrice(instrument);
  }

  private maxPrice(instrument: InstrumentSpec): number {
    let bound = this.maxPriceBySymbol.get(instrument.symbol);
    if (bound === undefined) this.maxPriceBySymbol.set(instrument.symbol, (bound = maxPricePoints(instrument)));
    return bound;
  }

  /**
   * Pending prices must sit on the waiting side of the market by at least the stops level (MetaTrader's
   * rule): a buy limit below the ask, a buy stop (or stop-limit) above it; a sell the reverse at the bid.
   */
  private pendingPriceValid(
    instrument: InstrumentSpec,
    quote: MarketQuote,
    side: Side,
    type: OrderType,
    price: number,
  ): boolean {
    const market = side === "BUY" ? quote.ask : quote.bid;
    const gap = Math.max(instrument.stopsLevelPoints, 1);
    const below = market - price >= gap;
    const above = price - market >= gap;
    return type === "LIMIT" ? (side === "BUY" ? below : above) : side === "BUY" ? above : below;
  }

  /**
   * SL/TP rule (MetaTrader's): for a buy, SL below and TP above the reference price; for a sell the reverse;
   * each at least the instrument's stops level away (and at least one point).
   */
  /**
   * INVALID_STOPS naming the stop and the price it may take at most or at least, or null: a stop loss of a buy at
   * least the stops level (at least a point) below `reference`, a take profit as far above; a sell's the reverse. The
   * registry's message said only "invalid or too close to the market", and a client could not tell which stop, nor
   * where it could go (found by the audit of a terminal's journey of 7 December, sixth session).
   */
  private stopsRefusal(
    instrument: InstrumentSpec,
    side: Side,
    reference: number,
    sl: number | null,
    tp: number | null,
  ): Rejection | null {
    const distance = Math.max(instrument.stopsLevelPoints, 1);
    const price = (points: number) => formatDecimal(points, instrument.digits);
    const limit = (name: string, below: boolean) =>
      reject(
        "INVALID_STOPS",
        `The ${name} must be ${below ? "at most" : "at least"} ${price(below ? reference - distance : reference + distance)}: ` +
          `${distance} point${distance === 1 ? "" : "s"} ${below ? "below" : "above"} ${price(reference)}, the price it ` +
          "is measured from",
      );
    if (sl !== null) {
      if (!this.isPrice(instrument, sl))
        return reject("INVALID_STOPS", "The stop loss is not a price of this instrument");
      if (side === "BUY" ? reference - sl < distance : sl - reference < distance)
        return limit("stop loss", side === "BUY");
    }
    if (tp !== null) {
      if (!this.isPrice(instrument, tp))
        return reject("INVALID_STOPS", "The take profit is not a price of this instrument");
      if (side === "BUY" ? tp - reference < distance : reference - tp < distance)
        return limit("take profit", side === "SELL");
    }
    return null;
  }

  /** A netting account's one position on the symbol, if it has one. */
  private nettingPosition(accountId: number, symbol: string): Position | undefined {
    const positionId = this.state.nettingPositions.get(`${accountId}:${symbol}`);
    return positionId === undefined ? undefined : this.state.positions.get(positionId);
  }

  /** Whether the order is a netting account's market order against its position, for no more than the position. */
  private onlyReducesNetting(account: Account, command: PlaceOrderCommand): boolean {
    if (account.mode !== "NETTING" || command.type !== "MARKET") return false;
    const position = this.nettingPosition(account.id, command.symbol);
    return (
      position !== undefined &&
      position.side !== command.side &&
      Number.isSafeInteger(command.volume) &&
      command.volume > 0 &&
      command.volume <= position.volume
    );
  }

  /**
   * The rollover that follows one made at `lastRollover` (`rolloverFollowing`), kept for the last one asked: every
   * command and tick asks it (`advanceClock`), and a New York calendar's answer takes civil-date arithmetic. A pure
   * function of its argument and the configuration, so the memo changes no result.
   */
  private rolloverAfter(lastRollover: number): number {
    if (this.rolloverMemo.after !== lastRollover)
      this.rolloverMemo = { after: lastRollover, next: rolloverFollowing(this.config.rollover, lastRollover) };
    return this.rolloverMemo.next;
  }

  /** The end of the trading day that contains `time`: the next rollover instant. */
  private tradingDayEnd(time: number): number {
    const last = this.state.lastRolloverAt;
    // The calendar's own next rollover, which follows the last one made: after a rollover time changed between
    // starts the rule's next instant may come sooner, and a DAY order expired there, at no rollover (found by the
    // review of 7 December, seventh session).
    if (last === null) return nextRolloverAfter(this.config.rollover, time);
    let next = this.rolloverAfter(last);
    while (next <= time) next = rolloverFollowing(this.config.rollover, next);
    return next;
  }

  private placeOrder(command: PlaceOrderCommand, time: number): Decision {
    const planned = this.planOrder(command, time);
    if (!planned.ok) return planned;
    if (planned.kind === "DUPLICATE") return planned.result;
    const { order } = planned;
    const orderId = order.id;
    if (planned.kind === "PENDING") {
      this.emit({ type: "OrderAccepted", time, order });
      return { ok: true, events: [], orderId, order: { ...(this.state.orders.get(orderId) ?? order) } };
    }
    const { quote, levels, fills, filled, deals } = planned;
    this.emit({ type: "OrderAccepted", time, order });
    this.commitFills(quote.symbol, levels, fills);
    const dealIds = this.emitDeals(deals, time);
    if (filled === command.volume) this.setStatus(this.requireOrder(orderId), "FILLED", null, time, filled);
    else {
      this.setStatus(this.requireOrder(orderId), "PARTIALLY_FILLED", null, time, filled);
      this.setStatus(this.requireOrder(orderId), "CANCELLED", "IOC_REMAINDER", time, filled);
    }
    const finalOrder = {
      ...order,
      filledVolume: filled,
      status: (filled === command.volume ? "FILLED" : "CANCELLED") as OrderStatus,
      statusReason: filled === command.volume ? null : ("IOC_REMAINDER" as const),
      updatedAt: time,
    };
    const positionId = deals[deals.length - 1]?.deal.positionId;
    return {
      ok: true,
      events: [],
      orderId,
      order: finalOrder,
      dealIds,
      ...(positionId === undefined ? {} : { positionId }),
    };
  }

  /**
   * What an order command would do, decided and emitting nothing: every refusal `placeOrder` makes, and for an order
   * that executes now its fills and deals, margin checked. `placeOrder` emits it; `checkOrder` reports it.
   */
  private planOrder(command: PlaceOrderCommand, time: number): OrderPlan | Rejection {
    const owned = this.ownedAccount(command.accountId);
    if (!owned.ok) return owned;
    const account = owned.account;
    const clientOrderId = command.clientOrderId ?? null;
    if (clientOrderId !== null) {
      const memory = this.clientOrderMemory(account, clientOrderId);
      if (!memory.ok) return memory;
      if (memory.memory) return { ok: true, kind: "DUPLICATE", result: this.duplicateResult(command, memory.memory) };
    }
    // Close-only (an account whose trading is disabled, a CLOSE_ONLY instrument) still takes a netting account's
    // market order that only reduces its position: on netting that is how a position is closed in part, and it was
    // refused (found by the audit of the back office of 7 December).
    const reduces = this.onlyReducesNetting(account, command);
    if (!account.tradingEnabled && !reduces) return reject("ACCOUNT_DISABLED");
    const instrument = this.state.instruments.get(command.symbol);
    const closed = this.tradable(instrument, time, !reduces);
    if (closed) return closed;
    if (!instrument) return reject("UNKNOWN_SYMBOL");
    if (command.side !== "BUY" && command.side !== "SELL") return reject("INVALID_DATA", "side must be BUY or SELL");
    if (!this.validVolume(instrument, command.volume)) return reject("INVALID_VOLUME");
    const quote = this.quotes.get(instrument.symbol) as MarketQuote;
    const type = command.type;
    const side = command.side;
    const price = command.price ?? null;
    const stopLimitPrice = command.stopLimitPrice ?? null;
    const sl = command.sl ?? null;
    const tp = command.tp ?? null;
    const trailingDistance = command.trailingDistance ?? null;
    const deviation = command.deviation ?? null;
    const comment = command.comment ?? "";
    const magic = command.magic ?? 0;
    if (!isPortableText(comment, 64))
      return reject("INVALID_DATA", "comment is at most 64 characters, without NUL or unpaired surrogates");
    if (!Number.isSafeInteger(magic) || magic < 0)
      return reject("INVALID_DATA", "magic must be a non-negative integer");
    if (price !== null && !this.isPrice(instrument, price)) return reject("INVALID_PRICE");
    if (stopLimitPrice !== null && !this.isPrice(instrument, stopLimitPrice)) return reject("INVALID_PRICE");
    if (deviation !== null && deviation !== 0 && !this.isPrice(instrument, deviation))
      return reject("INVALID_DATA", "deviation must be a non-negative number of points");
    if (!this.trailingValid(instrument, trailingDistance)) return trailingRefusal(instrument);

    let timeInForce: TimeInForce;
    switch (type) {
      case "MARKET":
        // Market orders fill completely or not at all unless the client asks for IOC.
        timeInForce = command.timeInForce ?? "FOK";
        if (timeInForce !== "FOK" && timeInForce !== "IOC") return reject("INVALID_FILL_POLICY");
        if (stopLimitPrice !== null) return reject("INVALID_PRICE", "stopLimitPrice applies to STOP_LIMIT orders");
        break;
      case "LIMIT":
        timeInForce = command.timeInForce ?? "GTC";
        if (price === null) return reject("INVALID_PRICE", "A limit order needs a price");
        if (stopLimitPrice !== null) return reject("INVALID_PRICE", "stopLimitPrice applies to STOP_LIMIT orders");
        break;
      case "STOP":
      case "STOP_LIMIT":
        timeInForce = command.timeInForce ?? "GTC";
        if (timeInForce === "IOC" || timeInForce === "FOK") return reject("INVALID_FILL_POLICY");
        if (price === null) return reject("INVALID_PRICE", "A stop order needs a stop price");
        if (type === "STOP_LIMIT") {
          if (stopLimitPrice === null) return reject("INVALID_PRICE", "A stop-limit order needs stopLimitPrice");
          // The limit placed at the stop must not be marketable beyond the stop: buy limit ≤ stop, sell limit ≥ stop.
          if (stopLimitBeyondStop(side, price, stopLimitPrice))
            return reject("INVALID_PRICE", "stopLimitPrice is on the wrong side of the stop price");
        } else if (stopLimitPrice !== null)
          return reject("INVALID_PRICE", "stopLimitPrice applies to STOP_LIMIT orders");
        break;
      default:
        return reject("INVALID_ORDER_TYPE");
    }
    if (!TIMES_IN_FORCE.has(timeInForce)) return reject("INVALID_FILL_POLICY");
    let expiration: number | null = command.expiration ?? null;
    if (timeInForce === "GTD") {
      if (expiration === null || !isEngineTime(expiration) || expiration <= time) return reject("INVALID_EXPIRATION");
    } else {
      if (expiration !== null) return reject("INVALID_EXPIRATION", "expiration applies to GTD orders only");
      if (timeInForce === "DAY") expiration = this.tradingDayEnd(time);
    }

    const immediate = type === "MARKET" || timeInForce === "IOC" || timeInForce === "FOK";
    // A hedging account's new order opens a position of its own (a netting account holds one per symbol at most).
    if (
      account.mode === "HEDGING" &&
      (this.state.accountPositions.get(account.id)?.size ?? 0) +
        (this.state.accountWorkingOrders.get(account.id)?.size ?? 0) >=
        this.config.maxPositionsAndOrdersPerAccount
    )
      return reject("TOO_MANY_POSITIONS");
    if (!immediate) {
      if (!this.pendingPriceValid(instrument, quote, side, type, price as number)) return reject("INVALID_PRICE");
      if ((this.state.accountWorkingOrders.get(account.id)?.size ?? 0) >= this.config.maxWorkingOrdersPerAccount)
        return reject("TOO_MANY_ORDERS");
    }
    const stopsReference =
      type === "MARKET"
        ? side === "BUY"
          ? quote.bid
          : quote.ask
        : type === "STOP_LIMIT"
          ? (stopLimitPrice as number)
          : type === "LIMIT" && immediate
            ? side === "BUY"
              ? quote.bid
              : quote.ask
            : (price as number);
    const stopsRefused = this.stopsRefusal(instrument, side, stopsReference, sl, tp);
    if (stopsRefused) return stopsRefused;

    const orderId = this.state.nextOrderId;
    const order: Order = {
      id: orderId,
      accountId: account.id,
      symbol: instrument.symbol,
      side,
      type,
      volume: command.volume,
      filledVolume: 0,
      price,
      stopLimitPrice,
      sl,
      tp,
      trailingDistance,
      timeInForce,
      expiration,
      deviation,
      clientOrderId,
      comment,
      magic,
      status: "PLACED",
      triggered: false,
      closePositionId: null,
      reason: "CLIENT",
      createdAt: time,
      updatedAt: time,
      statusReason: null,
    };

    if (!immediate) return { ok: true, kind: "PENDING", account, instrument, order };

    // Immediate execution: a marketable IOC/FOK limit, or a market order bounded by price ± deviation when either is
    // given. A deviation without a price is MetaTrader's: points from the price quoted when the order arrives (it
    // bounded nothing on the Client API, found by the audit of 7 December, second session).
    let worst: number | null = null;
    if (type === "LIMIT") worst = price;
    else if (price !== null || deviation !== null) {
      const reference = price ?? (side === "BUY" ? quote.ask : quote.bid);
      worst = side === "BUY" ? reference + (deviation ?? 0) : reference - (deviation ?? 0);
    }
    const levels = side === "BUY" ? quote.asks : quote.bids;
    const fills = this.planFills(levels, side, command.volume, worst, false);
    const filled = fills.reduce((sum, fill) => sum + fill.volume, 0);
    const firstLevel = levels.find((level) => level.volume > 0);
    const topOutOfBound =
      worst !== null &&
      firstLevel !== undefined &&
      (side === "BUY" ? firstLevel.price > worst : firstLevel.price < worst);
    if (filled === 0 || (timeInForce === "FOK" && filled < command.volume))
      return reject(topOutOfBound || (worst !== null && filled > 0) ? "PRICE_OFF" : "NO_LIQUIDITY");
    // The TP was checked against the quote; a fill of the walk past it would open a position already beyond its own
    // take profit, which the next tick closes as TAKE_PROFIT at a loss (found by the audit of 7 December).
    if (tp !== null && fills.some((fill) => (side === "BUY" ? fill.price > tp : fill.price < tp)))
      return reject("INVALID_STOPS", "The order would fill beyond its take profit");
    const request = this.fillRequest(account, instrument, order, time);
    const plan = this.planDeals(request, fills);
    if (!plan.ok) return plan;
    // A deal that opens or adds to exposure is not decided at a stale rate; one that only reduces it (a netting
    // account's opposite order) converts at the last rate, as a close does: a client can always get out.
    if (plan.deals.some(({ effect }) => effect.kind !== "DECREASE")) {
      const staleRate = this.staleConversion(account, instrument, time);
      if (staleRate) return staleRate;
    }
    const marginProblem = this.checkMargin(account, instrument, plan.deals, true);
    if (marginProblem) return marginProblem;
    return { ok: true, kind: "IMMEDIATE", account, instrument, order, quote, levels, fills, filled, deals: plan.deals };
  }

  /** What the account remembers of a client order id (a valid one), or its refusal. */
  private clientOrderMemory(
    account: Account,
    clientOrderId: string,
  ): { ok: true; memory: ClientOrderMemory | undefined } | Rejection {
    return (
      idTextRefusal("clientOrderId", clientOrderId) ?? {
        ok: true,
        memory: this.state.clientOrders.get(account.id)?.get(clientOrderId),
      }
    );
  }

  private duplicateResult(command: PlaceOrderCommand, memory: ClientOrderMemory): Decision {
    const first = memory.order;
    const same =
      first.closePositionId === null &&
      first.symbol === command.symbol &&
      first.side === command.side &&
      first.type === command.type &&
      first.volume === command.volume;
    if (!same) return duplicateClientOrderIdRefusal(first);
    return duplicateAnswer(memory);
  }

  private requireOrder(orderId: number): Order {
    const order = this.state.orders.get(orderId);
    if (!order) throw new Error(`engine bug: order ${orderId} is not working`);
    return order;
  }

  private setStatus(
    order: Order,
    status: OrderStatus,
    reason: Order["statusReason"],
    time: number,
    filledVolume = order.filledVolume,
  ): void {
    this.emit({
      type: "OrderStatusChanged",
      time,
      accountId: order.accountId,
      orderId: order.id,
      status,
      filledVolume,
      reason,
    });
  }

  private fillRequest(account: Account, instrument: InstrumentSpec, order: Order, time: number): FillRequest {
    return {
      account,
      instrument,
      orderId: order.id,
      side: order.side,
      closePositionId: order.closePositionId,
      reason: order.reason,
      sl: order.sl,
      tp: order.tp,
      trailingDistance: order.trailingDistance,
      comment: order.comment,
      magic: order.magic,
      time,
      continuesFill: order.filledVolume > 0,
    };
  }

  /**
   * Walks book levels best first, taking what each offers within `worst` (null: no bound).
   * `guaranteed` (closing a position): a remainder the book cannot take fills at the worst level offered.
   */
  private planFills(
    levels: readonly LiveLevel[],
    side: Side,
    volume: number,
    worst: number | null,
    guaranteed: boolean,
  ): Fill[] {
    const fills: Fill[] = [];
    let remaining = volume;
    for (const level of levels) {
      if (remaining === 0) break;
      if (worst !== null && (side === "BUY" ? level.price > worst : level.price < worst)) break;
      if (level.volume <= 0) continue;
      const take = Math.min(remaining, level.volume);
      fills.push({ price: level.price, volume: take });
      remaining -= take;
    }
    if (remaining > 0 && guaranteed && levels.length > 0) {
      const worstLevel = levels[levels.length - 1] as LiveLevel;
      const last = fills[fills.length - 1];
      if (last && last.price === worstLevel.price)
        fills[fills.length - 1] = { price: last.price, volume: last.volume + remaining };
      else fills.push({ price: worstLevel.price, volume: remaining });
    }
    return fills;
  }

  private commitFills(symbol: string, levels: LiveLevel[], fills: readonly Fill[]): void {
    this.changedMarketData.add(symbol);
    for (const fill of fills) {
      const level = levels.find((candidate) => candidate.price === fill.price);
      if (level && level.volume !== UNLIMITED) level.volume = Math.max(0, level.volume - fill.volume);
    }
  }

  /**
   * The rates a deal converts its money at, from live quotes only (a kept quote's rate is as old as its price).
   * `lookup` other than the default serves `missingRates` alone.
   */
  private rates(
    account: Account,
    instrument: InstrumentSpec,
    lookup = this.liveQuoteLookup,
  ): { profit: ConversionRate; margin: ConversionRate; commission: ConversionRate } | null {
    const converter = this.state.converter;
    const profit = converter.rate(instrument.profitCurrency, account.currency, lookup);
    const margin = converter.rate(instrument.marginCurrency, account.currency, lookup);
    const commission = converter.rate(instrument.commissionCurrency, account.currency, lookup);
    if (!profit || !margin || !commission) return null;
    return { profit, margin, commission };
  }

  /**
   * Why a deal on `instrument` that opens or adds to a client's exposure cannot convert its money at current rates now,
   * or null: a conversion quote of a market that is open but has not ticked since it opened, or not for longer than
   * `maxQuoteAgeMs`, is no rate to decide it at, as the instrument's own quote would be no price (found by the audit
   * of 6 December: a silent USDJPY feed priced the EURJPY deals of USD accounts). A closed market's last quote is its
   * rate until it opens; a missing or kept quote is `missingRates`'. Closes, reductions, stop-outs, SL, TP and
   * triggered orders convert at the last rate there is: they must not be held back.
   */
  private staleConversion(account: Account, instrument: InstrumentSpec, time: number): Rejection | null {
    for (const currency of [instrument.profitCurrency, instrument.marginCurrency, instrument.commissionCurrency])
      for (const symbol of this.state.converter.symbolsFor(currency, account.currency)) {
        const quote = this.quotes.get(symbol);
        if (symbol === instrument.symbol || quote === undefined || quote.restored) continue;
        const hours = this.state.instrument(symbol);
        if (!isSessionOpen(hours, time)) continue;
        const converts = `the ${symbol} rate that converts ${instrument.symbol}'s money into ${account.currency}`;
        switch (this.staleness(quote, hours, time)) {
          case "BEFORE_OPEN":
            return reject("NO_QUOTES", `No ${converts} since its market opened yet`);
          case "TOO_OLD":
            return reject("NO_QUOTES", `${capitalized(converts)} is ${this.tooOld(quote, time)}`);
        }
      }
    return null;
  }

  /**
   * Why `rates` has none: a conversion quote kept from before a restart and not yet live, or quotes never received,
   * named (the soak audit of 7 December: an EUR account's GBPUSD order was refused for "a quote" it could not find
   * out, EURGBP never having ticked), else `message`.
   */
  private missingRates(account: Account, instrument: InstrumentSpec, message?: string): Rejection {
    const currencies = [instrument.profitCurrency, instrument.marginCurrency, instrument.commissionCurrency];
    if (this.rates(account, instrument, this.quoteLookup)) {
      for (const currency of currencies)
        for (const symbol of this.state.converter.symbolsFor(currency, account.currency))
          if (this.keptNotLive(symbol)) return noLivePrice(symbol);
    }
    const unquoted = new Set<string>();
    for (const currency of currencies)
      for (const symbol of this.state.converter.symbolsFor(currency, account.currency))
        if (!this.liveQuoteLookup(symbol)) unquoted.add(symbol);
    if (unquoted.size === 0) return reject("NO_QUOTES", message);
    return reject(
      "NO_QUOTES",
      `No price of ${[...unquoted].join(" or ")} yet, which converts ${instrument.symbol}'s money into ${account.currency}`,
    );
  }

  /** Turns fills into deals: which position each opens, increases or decreases, with its money. Changes nothing. */
  private planDeals(request: FillRequest, fills: readonly Fill[]): { ok: true; deals: PlannedDeal[] } | Rejection {
    const { account, instrument } = request;
    const rates = this.rates(account, instrument);
    if (!rates)
      return this.missingRates(account, instrument, "A quote needed to convert into the account currency is missing");
    const digits = currencyDigits(account.currency);
    let simulated: SimulatedPosition | null = null;
    const closing = request.closePositionId !== null;
    if (request.closePositionId !== null) {
      simulated = simulate(this.state.positions.get(request.closePositionId));
      if (!simulated) return reject("POSITION_NOT_FOUND");
    } else if (account.mode === "NETTING") {
      // Netting: the symbol's one position.
      const position = this.nettingPosition(account.id, instrument.symbol);
      simulated = position === undefined ? null : simulate(position);
    } else if (request.continuesFill) {
      // Hedging: later fills of a partly filled order add to the position its first fill opened.
      const positionId = this.positionOpenedBy(account.id, request.orderId);
      simulated = positionId === undefined ? null : simulate(this.state.positions.get(positionId));
    }
    let nextDealId = this.state.nextDealId;
    let nextPositionId = this.state.nextPositionId;
    let openedByThisOrder = false;
    const deals: PlannedDeal[] = [];
    for (const fill of fills) {
      let volume = fill.volume;
      if (simulated && simulated.side !== request.side && simulated.volume > 0) {
        const closeVolume = Math.min(volume, simulated.volume);
        const closedCost = proRata(simulated.openCost, closeVolume, simulated.volume);
        const marginReleased = proRata(simulated.margin, closeVolume, simulated.volume);
        const swap = proRata(simulated.swap, closeVolume, simulated.volume);
        const profit = profitInAccountCurrency(
          instrument,
          simulated.side,
          closedCost,
          fill.price * closeVolume,
          rates.profit,
          digits,
        );
        const commission = commissionInAccountCurrency(instrument, closeVolume, rates.commission, digits);
        deals.push({
          deal: newDeal(request, nextDealId++, simulated.id, "OUT", closeVolume, fill.price, profit, commission, swap),
          // The position's volume after the deal rides on the event, so a stream can say "closed" (the audit of a
          // terminal's journey of 7 December, sixth session: a DEAL portfolioEvent did not tell).
          effect: { kind: "DECREASE", closedCost, marginReleased, positionVolume: simulated.volume - closeVolume },
        });
        simulated.volume -= closeVolume;
        simulated.openCost -= closedCost;
        simulated.margin -= marginReleased;
        simulated.swap -= swap;
        if (simulated.volume === 0) simulated = null;
        volume -= closeVolume;
      }
      if (volume === 0) continue;
      if (closing) throw new Error("engine bug: a closing order exceeded its position");
      const cost = fill.price * volume;
      const margin = marginInAccountCurrency(instrument, volume, cost, account.leverage, rates.margin, digits);
      const commission = commissionInAccountCurrency(instrument, volume, rates.commission, digits);
      if (simulated && simulated.side === request.side) {
        // Netting adds to its position; a hedging order's later fills add to the position its first fill opened.
        // A new order's deal sets the position's SL/TP from the order when it carries them (MetaTrader's rule
        // for a deal with stops). A later fill of an order already filled into the position sets none: since
        // its first fill the position's stops may have trailed or been moved by the client, and changes made
        // to the order's own stops reached the position when they were made (modifyOrder).
        const setStops = !openedByThisOrder && !request.continuesFill;
        deals.push({
          deal: newDeal(request, nextDealId++, simulated.id, "IN", volume, fill.price, 0, commission, 0),
          effect: {
            kind: "INCREASE",
            margin,
            sl: setStops ? request.sl : null,
            tp: setStops ? request.tp : null,
            positionVolume: simulated.volume + volume,
          },
        });
        simulated.volume += volume;
        simulated.openCost += cost;
        simulated.margin += margin;
      } else {
        const positionId = nextPositionId++;
        openedByThisOrder = true;
        deals.push({
          deal: newDeal(request, nextDealId++, positionId, "IN", volume, fill.price, 0, commission, 0),
          effect: {
            kind: "OPEN",
            margin,
            sl: request.sl,
            tp: request.tp,
            trailingDistance: request.trailingDistance,
            comment: request.comment,
            magic: request.magic,
          },
        });
        simulated = { id: positionId, side: request.side, volume, openCost: cost, margin, swap: 0 };
      }
    }
    return { ok: true, deals };
  }

  /** The position a partly filled order's fills went into, while it is open on the order's side. */
  private positionFilledBy(order: Order): Position | undefined {
    const account = this.state.accounts.get(order.accountId) as Account;
    const positionId =
      account.mode === "NETTING"
        ? this.state.nettingPositions.get(`${account.id}:${order.symbol}`)
        : this.positionOpenedBy(account.id, order.id);
    const position = positionId === undefined ? undefined : this.state.positions.get(positionId);
    return position && position.side === order.side ? position : undefined;
  }

  /** A position's new SL and TP against the market (only those that change are checked: MetaTrader's rule). */
  /** A position's stops as `stopsRefusal` judges them, from its closing price; a stop it keeps is not judged again. */
  private positionStopsRefusal(
    instrument: InstrumentSpec,
    position: Position,
    quote: MarketQuote,
    sl: number | null,
    tp: number | null,
  ): Rejection | null {
    const reference = position.side === "BUY" ? quote.bid : quote.ask;
    return this.stopsRefusal(
      instrument,
      position.side,
      reference,
      sl === position.sl ? null : sl,
      tp === position.tp ? null : tp,
    );
  }

  private positionOpenedBy(accountId: number, orderId: number): number | undefined {
    for (const positionId of this.state.accountPositions.get(accountId) ?? []) {
      if (this.state.positions.get(positionId)?.openOrderId === orderId) return positionId;
    }
    return undefined;
  }

  /**
   * Margin rule: a deal that raises used margin must leave free margin ≥ 0 after its commissions. `clientRequest`: a
   * client's order, decided now, as opposed to a triggered pending order's fill (`unpricedMoney`).
   */
  private checkMargin(
    account: Account,
    instrument: InstrumentSpec,
    deals: readonly PlannedDeal[],
    clientRequest: boolean,
  ): Rejection | null {
    const { used, usedAfter, commissions } = this.usedMarginAfter(account, instrument, deals);
    if (usedAfter <= used) return null;
    const unpriced = this.unpricedMoney(account, clientRequest);
    if (unpriced) return unpriced;
    if (this.equityAndMargin(account.id).equity - commissions - usedAfter < 0) return reject("NO_MONEY");
    return null;
  }

  /** The account's used margin now and after the deals (the larger leg per symbol), and their commissions. */
  private usedMarginAfter(
    account: Account,
    instrument: InstrumentSpec,
    deals: readonly PlannedDeal[],
  ): { used: number; usedAfter: number; commissions: number } {
    const current = this.state.symbolMargin(account.id, instrument.symbol);
    let buy = current.buy;
    let sell = current.sell;
    let commissions = 0;
    for (const { deal, effect } of deals) {
      commissions += deal.commission;
      if (effect.kind === "DECREASE") {
        const position = this.state.positions.get(deal.positionId);
        const side = position ? position.side : opposite(deal.side);
        if (side === "BUY") buy -= effect.marginReleased;
        else sell -= effect.marginReleased;
      } else if (deal.side === "BUY") buy += effect.margin;
      else sell += effect.margin;
    }
    const used = this.state.usedMargin(account.id);
    return { used, usedAfter: used - Math.max(current.buy, current.sell) + Math.max(buy, sell), commissions };
  }

  private emitDeals(deals: readonly PlannedDeal[], time: number): number[] {
    const ids: number[] = [];
    for (const planned of deals) {
      this.emit({ type: "DealExecuted", time, deal: planned.deal, effect: planned.effect });
      ids.push(planned.deal.id);
    }
    return ids;
  }

  private modifyOrder(command: ModifyOrderCommand, time: number): Decision {
    const owned = this.ownedOrder(command.accountId, command.orderId);
    if (!owned.ok) return owned;
    const order = owned.order;
    const instrument = this.state.instrument(order.symbol);
    const closed = this.tradable(instrument, time);
    if (closed) return closed;
    // As placeOrder refuses it: a LIMIT or STOP record kept a stop-limit price (found by the audit of 7 December).
    if (command.stopLimitPrice !== undefined && order.type !== "STOP_LIMIT")
      return reject("INVALID_PRICE", "stopLimitPrice applies to STOP_LIMIT orders");
    const quote = this.quotes.get(order.symbol) as MarketQuote;
    const price = command.price ?? order.price;
    const stopLimitPrice = command.stopLimitPrice ?? order.stopLimitPrice;
    const sl = command.sl === undefined ? order.sl : command.sl;
    const tp = command.tp === undefined ? order.tp : command.tp;
    const trailingDistance = command.trailingDistance === undefined ? order.trailingDistance : command.trailingDistance;
    let expiration = command.expiration === undefined ? order.expiration : command.expiration;
    if (price !== order.price || stopLimitPrice !== order.stopLimitPrice) {
      if (order.triggered && price !== order.price)
        return reject("ORDER_NOT_MODIFIABLE", "The stop price was already reached");
      if (!this.isPrice(instrument, price) || (stopLimitPrice !== null && !this.isPrice(instrument, stopLimitPrice)))
        return reject("INVALID_PRICE");
      if (!order.triggered && !this.pendingPriceValid(instrument, quote, order.side, order.type, price))
        return reject("INVALID_PRICE");
      if (
        order.type === "STOP_LIMIT" &&
        stopLimitPrice !== null &&
        stopLimitBeyondStop(order.side, price, stopLimitPrice)
      )
        return reject("INVALID_PRICE", "stopLimitPrice is on the wrong side of the stop price");
    }
    if (order.timeInForce === "GTD") {
      if (expiration === null || !isEngineTime(expiration) || expiration <= time) return reject("INVALID_EXPIRATION");
    } else if (command.expiration !== undefined && command.expiration !== order.expiration)
      return reject("INVALID_EXPIRATION", "expiration applies to GTD orders only");
    if (!this.trailingValid(instrument, trailingDistance)) return trailingRefusal(instrument);
    const reference = order.type === "STOP_LIMIT" ? (stopLimitPrice as number) : (price as number);
    const stopsRefused = this.stopsRefusal(instrument, order.side, reference, sl, tp);
    if (stopsRefused) return stopsRefused;
    if (
      price === order.price &&
      stopLimitPrice === order.stopLimitPrice &&
      sl === order.sl &&
      tp === order.tp &&
      trailingDistance === order.trailingDistance &&
      expiration === order.expiration
    )
      return reject("NO_CHANGES");
    expiration = expiration ?? null;
    if (!this.state.orders.has(order.id)) return reject("ORDER_NOT_MODIFIABLE");
    // A partly filled order's stops are also its position's: what changes on the order changes there now, the
    // rest of the position's stops (trailed, or moved by the client) stays.
    const filledInto = order.filledVolume > 0 ? this.positionFilledBy(order) : undefined;
    let positionStops: { sl: number | null; tp: number | null; trailingDistance: number | null } | null = null;
    if (filledInto) {
      const next = {
        sl: sl !== order.sl ? sl : filledInto.sl,
        tp: tp !== order.tp ? tp : filledInto.tp,
        trailingDistance: trailingDistance !== order.trailingDistance ? trailingDistance : filledInto.trailingDistance,
      };
      if (
        next.sl !== filledInto.sl ||
        next.tp !== filledInto.tp ||
        next.trailingDistance !== filledInto.trailingDistance
      ) {
        if (this.positionStopsRefusal(instrument, filledInto, quote, next.sl, next.tp))
          return reject("INVALID_STOPS", "The new stops are invalid for the position the order has filled into");
        positionStops = next;
      }
    }
    this.emit({
      type: "OrderChanged",
      time,
      accountId: order.accountId,
      orderId: order.id,
      price,
      stopLimitPrice,
      sl,
      tp,
      trailingDistance,
      expiration,
      triggered: order.triggered,
    });
    if (filledInto && positionStops)
      this.emit({
        type: "PositionChanged",
        time,
        accountId: filledInto.accountId,
        positionId: filledInto.id,
        ...positionStops,
        reason: "CLIENT",
      });
    return { ok: true, events: [], orderId: order.id, order: { ...order } };
  }

  // -------------------------------------------------------------------------------------------
  // Positions

  private ownedPosition(accountId: number, positionId: number): { ok: true; position: Position } | Rejection {
    const position = this.state.positions.get(positionId);
    if (!position || position.accountId !== accountId) return reject("POSITION_NOT_FOUND");
    return { ok: true, position };
  }

  private modifyPosition(command: ModifyPositionCommand, time: number): Decision {
    const owned = this.ownedPosition(command.accountId, command.positionId);
    if (!owned.ok) return owned;
    const position = owned.position;
    const instrument = this.state.instrument(position.symbol);
    const closed = this.tradable(instrument, time);
    if (closed) return closed;
    const quote = this.quotes.get(position.symbol) as MarketQuote;
    const sl = command.sl === undefined ? position.sl : command.sl;
    const tp = command.tp === undefined ? position.tp : command.tp;
    const trailingDistance =
      command.trailingDistance === undefined ? position.trailingDistance : command.trailingDistance;
    if (!this.trailingValid(instrument, trailingDistance)) return trailingRefusal(instrument);
    const stopsRefused = this.positionStopsRefusal(instrument, position, quote, sl, tp);
    if (stopsRefused) return stopsRefused;
    if (sl === position.sl && tp === position.tp && trailingDistance === position.trailingDistance)
      return reject("NO_CHANGES");
    if (!this.state.positions.has(position.id)) return reject("POSITION_NOT_FOUND");
    this.emit({
      type: "PositionChanged",
      time,
      accountId: position.accountId,
      positionId: position.id,
      sl,
      tp,
      trailingDistance,
      reason: "CLIENT",
    });
    return { ok: true, events: [], positionId: position.id };
  }

  private closePositionOnRequest(command: ClosePositionCommand, time: number): Decision {
    const initiator = command.initiator ?? "CLIENT";
    if (initiator !== "CLIENT" && initiator !== "DEALER")
      return reject("INVALID_DATA", "initiator must be CLIENT or DEALER");
    const clientOrderId = command.clientOrderId ?? null;
    if (clientOrderId !== null) {
      // Before the position is looked up: a retry of a close that closed it whole finds no position any more.
      const account = this.ownedAccount(command.accountId);
      if (!account.ok) return account;
      const memory = this.clientOrderMemory(account.account, clientOrderId);
      if (!memory.ok) return memory;
      if (memory.memory) return this.duplicateCloseResult(command, memory.memory);
    }
    const owned = this.ownedPosition(command.accountId, command.positionId);
    if (!owned.ok) return owned;
    const position = owned.position;
    const instrument = this.state.instrument(position.symbol);
    const closed = this.tradable(instrument, time);
    if (closed) return closed;
    const volume = command.volume ?? position.volume;
    if (
      !Number.isSafeInteger(volume) ||
      volume <= 0 ||
      volume > position.volume ||
      volume % instrument.volumeStep !== 0
    )
      return reject("INVALID_VOLUME");
    const remainder = position.volume - volume;
    if (remainder !== 0 && remainder < instrument.volumeMin)
      return reject("INVALID_VOLUME", "The volume left open would be below the minimum");
    const comment = command.comment ?? "";
    if (!isPortableText(comment, 64))
      return reject("INVALID_DATA", "comment is at most 64 characters, without NUL or unpaired surrogates");
    const account = this.state.accounts.get(position.accountId) as Account;
    if (!this.rates(account, instrument)) return this.missingRates(account, instrument);
    if (!this.state.positions.has(position.id)) return reject("POSITION_NOT_FOUND");
    return this.closePosition(position, volume, initiator, comment, time, clientOrderId);
  }

  /**
   * A close whose client order id the account already used: the first close's result when it closed the same
   * position by the same volume, else DUPLICATE_CLIENT_ORDER_ID. A retry without a volume (the whole position)
   * is the same close while the position is closed; while some of it is open, the first close was a part and
   * the retry asks for more.
   */
  private duplicateCloseResult(command: ClosePositionCommand, memory: ClientOrderMemory): Decision {
    const first = memory.order;
    // The dealing desk's close is not the client's retry, nor the other way round (found by the review of 7 December,
    // seventh session: a desk close with the client's id answered the client's close and closed nothing).
    const same =
      first.closePositionId === command.positionId &&
      first.reason === (command.initiator ?? "CLIENT") &&
      (command.volume === undefined ? !this.state.positions.has(command.positionId) : first.volume === command.volume);
    if (!same) return duplicateClientOrderIdRefusal(first);
    return { ...duplicateAnswer(memory), positionId: command.positionId };
  }

  private closeAllPositions(command: CloseAllPositionsCommand, time: number): Decision {
    const owned = this.ownedAccount(command.accountId);
    if (!owned.ok) return owned;
    if (command.symbol !== undefined && !this.state.instruments.has(command.symbol)) return reject("UNKNOWN_SYMBOL");
    const positions = [...(this.state.accountPositions.get(owned.account.id) ?? [])]
      .map((id) => this.state.positions.get(id) as Position)
      .filter((position) => command.symbol === undefined || position.symbol === command.symbol)
      .sort((a, b) => a.id - b.id);
    // All or nothing at the validation stage: every position must be closable now. The refusal names the position
    // that blocks the rest (found by the audit of the Automation API of 7 December, sixth session: "The market is
    // closed" left a bot with EURUSD and GER40 positions to guess which).
    for (const position of positions) {
      const instrument = this.state.instrument(position.symbol);
      const refusal =
        this.tradable(instrument, time) ??
        (this.rates(owned.account, instrument) ? null : this.missingRates(owned.account, instrument));
      if (refusal)
        return reject(
          refusal.code,
          `${refusal.message}: position ${position.id} (${position.symbol}) cannot be closed now, so none was closed`,
        );
    }
    const dealIds: number[] = [];
    for (const position of positions) {
      if (!this.state.positions.has(position.id)) continue;
      const result = this.closePosition(position, position.volume, "CLIENT", "", time);
      if (result.ok) dealIds.push(...(result.dealIds ?? []));
    }
    return { ok: true, events: [], accountId: owned.account.id, dealIds };
  }

  /**
   * Closes `volume` of a position with a closing market order. Closes always complete: the book is
   * walked best first and any remainder fills at the worst level the quote offers (CLOSE RULE).
   */
  private closePosition(
    position: Position,
    volume: number,
    reason: OrderReason,
    comment: string,
    time: number,
    clientOrderId: string | null = null,
  ): Decision {
    const account = this.state.accounts.get(position.accountId) as Account;
    const instrument = this.state.instrument(position.symbol);
    const quote = this.quotes.get(position.symbol);
    if (!quote) return reject("NO_QUOTES");
    const side = opposite(position.side);
    const levels = side === "BUY" ? quote.asks : quote.bids;
    const fills = this.planFills(levels, side, volume, null, true);
    const orderId = this.state.nextOrderId;
    const order: Order = {
      id: orderId,
      accountId: account.id,
      symbol: position.symbol,
      side,
      type: "MARKET",
      volume,
      filledVolume: 0,
      price: null,
      stopLimitPrice: null,
      sl: null,
      tp: null,
      trailingDistance: null,
      timeInForce: "FOK",
      expiration: null,
      deviation: null,
      clientOrderId,
      comment,
      magic: position.magic,
      status: "PLACED",
      triggered: false,
      closePositionId: position.id,
      reason,
      createdAt: time,
      updatedAt: time,
      statusReason: null,
    };
    const plan = this.planDeals(this.fillRequest(account, instrument, order, time), fills);
    if (!plan.ok) return plan;
    this.emit({ type: "OrderAccepted", time, order });
    this.commitFills(position.symbol, levels, fills);
    const dealIds = this.emitDeals(plan.deals, time);
    this.setStatus(this.requireOrder(orderId), "FILLED", null, time, volume);
    return { ok: true, events: [], orderId, positionId: position.id, dealIds };
  }

  // -------------------------------------------------------------------------------------------
  // Ticks, triggers and time

  private tick(command: TickCommand, time: number): Decision {
    const instrument = this.state.instruments.get(command.symbol);
    if (!instrument) return reject("UNKNOWN_SYMBOL");
    const book = readTick(command, this.maxPrice(instrument));
    if (!book.ok) return book;
    // A quote while the market is closed (a feed stamping ticks with the server's clock on a weekend) is not taken,
    // as MetaTrader 5 takes no quote outside a symbol's quote sessions: it would be shown, and would value positions,
    // at a price nobody can trade at, and its valuation could stop out positions of markets that are open.
    if (!isSessionOpen(instrument, time))
      return reject("MARKET_CLOSED", `${instrument.symbol} is closed: a quote outside its sessions is not taken`);
    const { bid, ask } = command;
    const { bids, asks } = book;
    this.quotes.set(instrument.symbol, { symbol: instrument.symbol, bid, ask, time, bids, asks });
    this.changedMarketData.add(instrument.symbol);
    if (this.state.deferredSwapsByConversion.size > 0) this.chargeDeferredSwaps(time);
    this.processTriggers(instrument.symbol, time);
    this.evaluateRiskForSymbol(instrument.symbol, time);
    return { ok: true, events: [] };
  }

  private processTriggers(symbol: string, time: number): void {
    const index = this.state.symbolIndex(symbol);
    const quote = this.quotes.get(symbol) as MarketQuote;
    const { bid, ask } = quote;

    // 1. Trailing stops follow the price before SL is checked (MetaTrader: trail once in profit by the distance).
    if (index.trailingPositions.size > 0) {
      for (const positionId of [...index.trailingPositions].sort((a, b) => a - b)) {
        const position = this.state.positions.get(positionId);
        if (!position || position.trailingDistance === null) continue;
        const distance = position.trailingDistance;
        const buy = position.side === "BUY";
        // The stop sits `distance` behind the closing price; it moves only once it locks in the open price, and only forward.
        const candidate = buy ? bid - distance : ask + distance;
        const lockedIn = buy
          ? candidate * position.volume >= position.openCost
          : candidate * position.volume <= position.openCost;
        const tighter = position.sl === null || (buy ? candidate > position.sl : candidate < position.sl);
        if (lockedIn && tighter)
          this.emit({
            type: "PositionChanged",
            time,
            accountId: position.accountId,
            positionId,
            sl: candidate,
            tp: position.tp,
            trailingDistance: distance,
            reason: "TRAILING",
          });
      }
    }

    // 2. Position SL and TP: a buy closes at the bid, a sell at the ask.
    this.processStops(symbol, time);

    // An instrument that takes no new orders (CLOSE_ONLY, DISABLED) fills none of its working ones either: they wait,
    // untriggered (or triggered, waiting as they do for liquidity), until it trades again. They filled into positions
    // nobody could then close (found by the audit of the order lifecycle of 7 December).
    if (this.state.instrument(symbol).tradeMode !== "FULL") return;

    // 3. Stops already triggered that wait for liquidity, oldest first.
    if (index.triggeredStops.size > 0) {
      for (const orderId of [...index.triggeredStops].sort((a, b) => a - b)) {
        const order = this.state.orders.get(orderId);
        if (order) this.fillWorkingOrder(order, time, false);
      }
    }

    // 4. Pending orders, each exactly on its side of the quote (DESIGN.md section 3).
    const triggered: number[] = [];
    index.buyLimits.popReached(ask, triggered);
    index.sellLimits.popReached(bid, triggered);
    index.buyStops.popReached(ask, triggered);
    index.sellStops.popReached(bid, triggered);
    for (const orderId of triggered) {
      const order = this.state.orders.get(orderId);
      if (!order) continue;
      // Not even triggered while its account's trading is disabled: a stop triggered then would fill whenever trading
      // is enabled again, at that day's price.
      if (!(this.state.accounts.get(order.accountId) as Account).tradingEnabled) {
        reinsertOrder(this.state, order);
        continue;
      }
      // Popped from its heap: if it keeps working it must go back in, unless triggering re-indexes it.
      let popped = true;
      if ((order.type === "STOP" || order.type === "STOP_LIMIT") && !order.triggered) {
        popped = false;
        this.emit({
          type: "OrderChanged",
          time,
          accountId: order.accountId,
          orderId,
          price: order.price,
          stopLimitPrice: order.stopLimitPrice,
          sl: order.sl,
          tp: order.tp,
          trailingDistance: order.trailingDistance,
          expiration: order.expiration,
          triggered: true,
        });
        const limit = order.stopLimitPrice;
        // A stop-limit becomes a limit: it fills now only if the market is already at its limit.
        if (order.type === "STOP_LIMIT" && limit !== null && (order.side === "BUY" ? ask > limit : bid < limit))
          continue;
      }
      this.fillWorkingOrder(order, time, popped);
    }

    // 5. A position those fills opened or grew may already be past its SL or TP on this very quote.
    this.processStops(symbol, time);
  }

  private processStops(symbol: string, time: number): void {
    const index = this.state.symbolIndex(symbol);
    const { bid, ask } = this.quotes.get(symbol) as MarketQuote;
    const stopLosses: number[] = [];
    const takeProfits: number[] = [];
    index.buyStopLosses.popReached(bid, stopLosses);
    index.sellStopLosses.popReached(ask, stopLosses);
    index.buyTakeProfits.popReached(bid, takeProfits);
    index.sellTakeProfits.popReached(ask, takeProfits);
    for (const positionId of stopLosses) this.closeByTrigger(positionId, "STOP_LOSS", time);
    for (const positionId of takeProfits) this.closeByTrigger(positionId, "TAKE_PROFIT", time);
  }

  private closeByTrigger(positionId: number, reason: "STOP_LOSS" | "TAKE_PROFIT", time: number): void {
    const position = this.state.positions.get(positionId);
    if (!position) return;
    const result = this.closePosition(position, position.volume, reason, reason === "STOP_LOSS" ? "sl" : "tp", time);
    // A close that could not be priced (a conversion quote is missing) waits for the next tick.
    if (!result.ok) reinsertPositionStop(this.state, position, reason === "STOP_LOSS" ? "SL" : "TP");
  }

  /** Fills what the book offers for a triggered pending order; the rest keeps working. */
  private fillWorkingOrder(order: Order, time: number, popped: boolean): void {
    const quote = this.quotes.get(order.symbol) as MarketQuote;
    const account = this.state.accounts.get(order.accountId) as Account;
    // An account whose trading is disabled opens nothing: its reached orders wait, working, until it is enabled
    // again (found by an audit: they were rejected and lost, a protective stop among them).
    if (!account.tradingEnabled) {
      if (popped) reinsertOrder(this.state, order);
      return;
    }
    // The rest of a partly filled order does not open a position (or set its stops on one) where they would close it on
    // the same quote: after its position closed at its SL or TP, each tick filled it again into a new position that
    // closed at once at a loss (found by the audit of the order lifecycle of 7 December). It waits for the market
    // to come back between its stops. A fill into the position it opened, whose own stops rule, goes on. (A first
    // fill past them on a gap still happens, as MetaTrader's does.)
    if (order.filledVolume > 0 && this.beyondOwnStops(order, quote) && this.fillTakesOrderStops(order, account)) {
      if (popped) reinsertOrder(this.state, order);
      return;
    }
    const instrument = this.state.instrument(order.symbol);
    const remaining = order.volume - order.filledVolume;
    const isStopMarket = order.type === "STOP";
    const limit = order.type === "LIMIT" ? order.price : order.type === "STOP_LIMIT" ? order.stopLimitPrice : null;
    const levels = order.side === "BUY" ? quote.asks : quote.bids;
    const fills = this.planFills(levels, order.side, remaining, isStopMarket ? null : limit, false);
    const filled = fills.reduce((sum, fill) => sum + fill.volume, 0);
    if (filled === 0) {
      if (popped) reinsertOrder(this.state, order);
      return;
    }
    const plan = this.planDeals(this.fillRequest(account, instrument, order, time), fills);
    const problem: RejectionCode | null = !plan.ok
      ? plan.code
      : (this.checkMargin(account, instrument, plan.deals, false)?.code ?? null);
    if (problem === "NO_QUOTES") {
      if (popped) reinsertOrder(this.state, order);
      return;
    }
    if (!plan.ok || problem !== null) {
      const code = plan.ok ? (problem as RejectionCode) : plan.code;
      if (order.status === "PLACED") this.setStatus(order, "REJECTED", code, time);
      else this.setStatus(order, "CANCELLED", code, time);
      return;
    }
    this.commitFills(order.symbol, levels, fills);
    this.emitDeals(plan.deals, time);
    const totalFilled = order.filledVolume + filled;
    if (totalFilled === order.volume) this.setStatus(order, "FILLED", null, time, totalFilled);
    else {
      this.setStatus(order, "PARTIALLY_FILLED", null, time, totalFilled);
      const still = this.state.orders.get(order.id);
      if (still && popped) reinsertOrder(this.state, still);
    }
  }

  /**
   * Whether the order's next fill gives a position the order's SL and TP: a hedging order's when the position it
   * opened is gone; a netting order's unless it only reduces the symbol's position (an increase sets the stops it
   * carries, a reversal opens a position with them).
   */
  private fillTakesOrderStops(order: Order, account: Account): boolean {
    if (account.mode === "HEDGING") return this.positionFilledBy(order) === undefined;
    const position = this.nettingPosition(account.id, order.symbol);
    if (!position || position.side === order.side) return true;
    return order.volume - order.filledVolume > position.volume;
  }

  /** Whether a position the order opened now would be at or past its SL or TP at once (on its closing side). */
  private beyondOwnStops(order: Order, quote: MarketQuote): boolean {
    const closing = order.side === "BUY" ? quote.bid : quote.ask;
    const buy = order.side === "BUY";
    const stopLossHit = order.sl !== null && (buy ? closing <= order.sl : closing >= order.sl);
    const takeProfitHit = order.tp !== null && (buy ? closing >= order.tp : closing <= order.tp);
    return stopLossHit || takeProfitHit;
  }

  /** Runs expirations and rollovers due up to `time`, in time order. */
  private advanceClock(time: number): void {
    const state = this.state;
    if (state.lastRolloverAt === null) {
      // The first command anchors the rollover calendar: the last rollover before it counts as done.
      this.emit({
        type: "Rollover",
        time,
        rolloverTime: lastRolloverAtOrBefore(this.config.rollover, time),
        multiplier: 0,
        charges: [],
      });
    }
    for (;;) {
      const nextRollover = this.rolloverAfter(state.lastRolloverAt as number);
      const nextExpiration = state.expirations.peekPrice();
      const rolloverDue = nextRollover <= time;
      const expirationDue = nextExpiration !== null && nextExpiration <= time;
      if (!rolloverDue && !expirationDue) return;
      if (expirationDue && (!rolloverDue || (nextExpiration as number) <= nextRollover)) {
        const due: number[] = [];
        const at = nextExpiration as number;
        state.expirations.popReached(at, due);
        for (const orderId of due) {
          const order = state.orders.get(orderId);
          if (order && isWorkingStatus(order.status)) this.setStatus(order, "EXPIRED", "EXPIRED", at);
        }
      } else {
        this.rollover(nextRollover);
      }
    }
  }

  private rollover(rolloverTime: number): void {
    // Stamped no earlier than the last event: a rollover time moved earlier between starts may bring a rollover whose
    // instant the journal has passed (the old rule's day was still running), and its events were stamped before ones
    // already journaled, time going back in the histories (found by the review of 7 December, ninth session). The
    // calendar's instant stays the event's `rolloverTime`.
    const time = Math.max(rolloverTime, this.clock);
    // A DAY order ends with its trading day, whatever expiry it was given: one placed under another rollover time (a
    // change between starts) kept the old rule's, an hour into the next trading day (found by the audit of time of
    // 7 December, ninth session). Under an unchanged rule none is left here: each expired at this instant already.
    const dayOrders = [...this.state.orders.values()].filter(
      (order) => order.timeInForce === "DAY" && order.createdAt < rolloverTime && isWorkingStatus(order.status),
    );
    for (const order of dayOrders.sort((a, b) => a.id - b.id)) this.setStatus(order, "EXPIRED", "EXPIRED", time);
    // The trading day that ends at this rollover decides the days charged: the instrument's own calendar (swapDays),
    // else the engine's, none for Saturday and Sunday and triple on the configured day. The event's `multiplier` is
    // the engine's calendar; each charge holds its own days.
    const weekday = tradingDayWeekday(this.config.rollover, rolloverTime);
    const multiplier = swapDaysAt(null, weekday, this.config.tripleSwapWeekday);
    const charges: SwapCharge[] = [];
    const deferrals: { accountId: number; positionId: number; days: number }[] = [];
    for (const position of [...this.state.positions.values()].sort((a, b) => a.id - b.id)) {
      const instrument = this.state.instrument(position.symbol);
      const days = swapDaysAt(instrument, weekday, this.config.tripleSwapWeekday);
      if (days === 0) continue;
      const rate = this.swapConversion(position);
      if (rate === null) {
        // No rate to convert with: the position owes these days until the quote comes (DeferredSwapsCharged).
        if (swapMilliPoints(instrument, position.side) !== 0)
          deferrals.push({ accountId: position.accountId, positionId: position.id, days });
        continue;
      }
      const amount = this.swapOf(position, days, rate);
      if (amount !== 0) charges.push({ accountId: position.accountId, positionId: position.id, amount });
    }
    this.emit({ type: "Rollover", time, rolloverTime, multiplier, charges });
    if (deferrals.length > 0) this.emit({ type: "SwapsDeferred", time, rolloverTime, deferrals });
  }

  /** The rate from the position's profit currency to its account's, or null while a quote it needs is missing. */
  private swapConversion(position: Position): ConversionRate | null {
    const account = this.state.accounts.get(position.accountId) as Account;
    return this.state.converter.rate(
      this.state.instrument(position.symbol).profitCurrency,
      account.currency,
      this.quoteLookup,
    );
  }

  /** `days` of swap for the position in its account's currency. */
  private swapOf(position: Position, days: number, rate: ConversionRate): number {
    const account = this.state.accounts.get(position.accountId) as Account;
    const instrument = this.state.instrument(position.symbol);
    return swapInAccountCurrency(
      instrument,
      position.side,
      position.volume,
      days,
      rate,
      currencyDigits(account.currency),
    );
  }

  /**
   * Charges the deferred swaps whose conversion has a rate now, all the days each owes in one amount, at the
   * current rate: run on every tick while any wait, before the tick can fill or close anything, so no deal
   * ever meets a position that still owes swap. One rate lookup per conversion, not per position.
   */
  private chargeDeferredSwaps(time: number): void {
    const state = this.state;
    let charges: SwapCharge[] | null = null;
    for (const positionIds of state.deferredSwapsByConversion.values()) {
      // Every position of the group converts the same way: the first one asks for the group's rate.
      const rate = this.swapConversion(state.positions.get(positionIds.values().next().value as number) as Position);
      if (rate === null) continue;
      for (const positionId of positionIds) {
        const position = state.positions.get(positionId) as Position;
        const deferred = state.deferredSwaps.get(positionId) as DeferredSwap;
        (charges ??= []).push({
          accountId: position.accountId,
          positionId,
          amount: this.swapOf(position, deferred.days, rate),
        });
      }
    }
    if (charges === null) return;
    charges.sort((a, b) => a.positionId - b.positionId);
    this.emit({ type: "DeferredSwapsCharged", time, charges });
  }

  // -------------------------------------------------------------------------------------------
  // Risk: margin call and stop-out
  //
  // Evaluating every account on every tick does not scale, so each evaluation registers, per symbol
  // leg the account holds, the price at which that leg alone would have lost its share of the
  // account's slack (equity above the margin-call level, less a rounding allowance). No combination
  // of moves short of those thresholds can reach the level, so an account is re-evaluated only when
  // a threshold is crossed or an event touches it. Accounts in margin call are evaluated on every
  // tick of their symbols.
  //
  // An account whose profit converts through other quotes (a USD account holding EURJPY reads USDJPY; one holding
  // USDJPY divides by USDJPY's own ask) also gets a band on each conversion symbol's price, and its slack is split:
  // the rate part bounds what a rate moving within its band does to the profit floating now, and the price legs'
  // thresholds are drawn at the band's highest rate (see `registerRiskThresholds`). Until the audit of complexity of
  // 7 December (sixth session) such accounts were evaluated on every tick of the conversion symbol: 136 ms of the
  // engine's one thread a USDJPY tick at 20,000 USD accounts holding USDJPY.

  private evaluateRiskForSymbol(symbol: string, time: number): void {
    const index = this.state.symbolIndex(symbol);
    const quote = this.quotes.get(symbol) as MarketQuote;
    const crossed = this.scratchIds;
    crossed.length = 0;
    index.riskBidFloors.popReached(quote.bid, crossed);
    index.riskAskCeilings.popReached(quote.ask, crossed);
    index.riskBidCeilings.popReached(quote.bid, crossed);
    index.riskAskFloors.popReached(quote.ask, crossed);
    const dirty = this.state.riskDirty;
    // The common tick: no threshold crossed, nothing changed.
    if (crossed.length === 0 && dirty.size === 0) return;
    for (const accountId of dirty) crossed.push(accountId);
    dirty.clear();
    const due = crossed.length === 1 ? [crossed[0] as number] : [...new Set(crossed)].sort((a, b) => a - b);
    for (const accountId of due) this.evaluateAccount(accountId, time);
    // An evaluation's own events (stop-out deals) mark its account again; it has just been settled.
    if (dirty.size > 0) dirty.clear();
  }

  private evaluateDirtyAccounts(time: number): void {
    const dirty = this.state.riskDirty;
    if (dirty.size === 0) return;
    const accounts = dirty.size === 1 ? [dirty.values().next().value as number] : [...dirty].sort((a, b) => a - b);
    dirty.clear();
    for (const accountId of accounts) this.evaluateAccount(accountId, time);
    if (dirty.size > 0) dirty.clear();
  }

  private group(account: Account): { marginCallLevelPercent: number; stopOutLevelPercent: number } {
    const group = this.config.groups.find((candidate) => candidate.name === account.group);
    if (!group) throw new Error(`account ${account.id} has unknown group ${account.group}`);
    return group;
  }

  private evaluateAccount(accountId: number, time: number): void {
    const account = this.state.accounts.get(accountId);
    if (!account) return;
    if (!this.accountPriced(account)) {
      // After a restart the feed re-quotes symbols one by one: an account is judged only once every
      // position it holds can be priced (an unpriced position would count as zero profit).
      this.watchEveryTick(account, this.newRiskVersion(account.id));
      return;
    }
    if (this.state.usedMargin(accountId) === 0 && !account.marginCall) {
      // Nothing held and no call to clear: nothing to watch until the account trades again. A close that left
      // nothing held may have left the balance below zero (a stop loss filled past a gap).
      this.protectNegativeBalance(account, "close", time);
      this.newRiskVersion(accountId);
      return;
    }
    const group = this.group(account);
    let metrics = this.equityAndMargin(accountId);
    // Stop-out: close the most losing position, again and again, until the level is restored. The ranking is taken
    // once: within one evaluation no price, rate or time moves (a close only takes liquidity from the book's levels),
    // so the positions left keep their profit, and equity follows from the balance and what they float. Found by the
    // audit of complexity of 7 December (sixth session): each close ranked and summed every position again, 385 ms
    // for an account of 1,000 positions, on the one engine thread, in a crash when many accounts stop out at once.
    let stoppedOut = false;
    let ranking: readonly { readonly position: Position; readonly profit: number }[] | null = null;
    let next = 0;
    let floating = metrics.profit;
    while (metrics.margin > 0 && metrics.equity * 100 <= group.stopOutLevelPercent * metrics.margin) {
      ranking ??= this.stopOutRanking(accountId, time);
      const ranked = ranking[next++];
      if (!ranked) break;
      const victim = ranked.position;
      stoppedOut = true;
      this.emit({
        type: "StopOut",
        time,
        accountId,
        equity: metrics.equity,
        margin: metrics.margin,
        positionId: victim.id,
      });
      const result = this.closePosition(victim, victim.volume, "STOP_OUT", "so", time);
      if (!result.ok) break;
      floating -= ranked.profit;
      metrics = this.metricsWithProfit(account, floating);
    }
    if (this.protectNegativeBalance(account, stoppedOut ? "stop-out" : "close", time))
      metrics = this.equityAndMargin(accountId);
    const inCall = metrics.margin > 0 && metrics.equity * 100 <= group.marginCallLevelPercent * metrics.margin;
    // The call clears only MARGIN_CALL_CLEARED_ABOVE_PERCENT points above its level (a Schmitt trigger): a level
    // hovering at the margin-call level entered and cleared the call on every tick that crossed it by a point, each a
    // journal event and a client notification, twice a second in a quiet market (found by the audit of trading
    // semantics of 7 December, sixth session).
    const clear =
      metrics.margin === 0 ||
      metrics.equity * 100 > (group.marginCallLevelPercent + MARGIN_CALL_CLEARED_ABOVE_PERCENT) * metrics.margin;
    if (inCall && !account.marginCall)
      this.emit({ type: "MarginCallEntered", time, accountId, equity: metrics.equity, margin: metrics.margin });
    else if (clear && account.marginCall)
      this.emit({ type: "MarginCallCleared", time, accountId, equity: metrics.equity, margin: metrics.margin });
    // Watched at the higher of the two levels: a group whose stop-out level is above its margin-call level (nothing
    // refuses one) was stopped out only once the margin-call level was crossed (found by an audit).
    this.registerRiskThresholds(account, metrics, Math.max(group.marginCallLevelPercent, group.stopOutLevelPercent));
  }

  /**
   * Negative balance protection: once nothing is held, the client owes nothing. The broker's credit covers the loss
   * first: as much of it as the negative balance is taken back, then the balance is corrected to zero (the part the
   * credit covered, and what neither covered). Found by an audit: the balance stayed negative beside a credit that
   * covered it, and the client's next deposit silently repaid the broker's credit (nothing of it could be withdrawn).
   * Only once every position is closed: a position still open means equity covers the balance, nothing is owed, and a
   * correction then paid out what open profit already covered. Whatever closed the last position: found by the audit
   * of trading semantics of 7 December (sixth session), a stop loss filled past a gap left the balance at -1,440.00
   * where the same gap without a stop loss was stopped out and corrected to zero. Answers whether it corrected.
   */
  private protectNegativeBalance(account: Account, after: "stop-out" | "close", time: number): boolean {
    if (account.balance >= 0 || (this.state.accountPositions.get(account.id)?.size ?? 0) > 0) return false;
    const owed = -account.balance;
    const creditUsed = Math.min(account.credit, owed);
    const cause = after === "stop-out" ? "after stop-out" : "after the last position closed";
    if (creditUsed > 0)
      this.emit({
        type: "BalanceOperation",
        time,
        accountId: account.id,
        operationId: this.state.nextOperationId,
        kind: "CREDIT",
        amount: -creditUsed,
        comment: `credit applied to the loss ${cause}`,
      });
    this.emit({
      type: "BalanceOperation",
      time,
      accountId: account.id,
      operationId: this.state.nextOperationId,
      kind: "CORRECTION",
      amount: owed,
      comment:
        creditUsed === owed
          ? `credit applied to the negative balance ${cause}`
          : `negative balance correction ${cause}`,
    });
    return true;
  }

  /**
   * Whether every open position of the account has a live quote and a live conversion rate. A quote kept from
   * before a restart does not count: the account is judged (margin call, stop-out) only once live ticks price it.
   */
  /**
   * Refuses what takes money or margin out of an account whose equity cannot be valued at live prices (a position
   * quoted only by a price kept from before a restart): found by a review, a withdrawal was taken against equity at
   * an hours-old price and the first live tick stopped the account out.
   */
  private unpricedMoney(account: Account, clientRequest: boolean): Rejection | null {
    if (!this.accountPriced(account)) {
      for (const positionId of this.state.accountPositions.get(account.id) ?? []) {
        const position = this.state.positions.get(positionId);
        if (position && this.keptNotLive(position.symbol)) return noLivePrice(position.symbol);
      }
      return reject("NO_QUOTES", "A position of the account has no live price yet");
    }
    // Nor, for a client's request, is equity valued at a quote no trade could be decided at while its market is open
    // (older than the limit: a silent feed; or from before the session opened): found by a review, a withdrawal was
    // taken against open profit at an hour-old price. A client can ask again after the next tick; a triggered pending
    // order, whose price is live, is not held back by another symbol's silence (it could miss its price). A closed
    // market's last quote is its price until it opens, and does not stop money here.
    if (!clientRequest) return null;
    for (const positionId of this.state.accountPositions.get(account.id) ?? []) {
      const position = this.state.positions.get(positionId);
      if (!position) continue;
      const instrument = this.state.instrument(position.symbol);
      const refusal =
        (isSessionOpen(instrument, this.clock) ? this.quoteRefusal(instrument, this.clock) : null) ??
        this.staleConversion(account, instrument, this.clock);
      if (refusal) return refusal;
    }
    return null;
  }

  private accountPriced(account: Account): boolean {
    for (const positionId of this.state.accountPositions.get(account.id) ?? []) {
      const position = this.state.positions.get(positionId);
      if (!position) continue;
      if (!this.liveQuoteLookup(position.symbol)) return false;
      // Every conversion its close needs (profit, margin, commission), or a stop-out is emitted whose close is then
      // refused, once a tick (found by a review: a kept EURUSD, EURJPY falling).
      if (!this.rates(account, this.state.instrument(position.symbol))) return false;
    }
    return true;
  }

  /**
   * The positions a stop-out may close now, most losing first (profit with swap; then the older ticket), each with that
   * profit. A position whose market is closed, has not ticked since it opened, or has not ticked for longer than
   * `maxQuoteAgeMs`, is left out (`quoteRefusal`): closed on a Saturday at Friday's last bid, a stop-out realised a
   * price no market offered. It is judged again at its market's next tick.
   */
  private stopOutRanking(accountId: number, time: number): { position: Position; profit: number }[] {
    const ranking: { position: Position; profit: number }[] = [];
    for (const positionId of this.state.accountPositions.get(accountId) ?? []) {
      const position = this.state.positions.get(positionId);
      if (!position || this.quoteRefusal(this.state.instrument(position.symbol), time) !== null) continue;
      ranking.push({ position, profit: this.positionProfit(position) + position.swap });
    }
    return ranking.sort((a, b) => a.profit - b.profit || a.position.id - b.position.id);
  }

  /**
   * Registers the prices at which the account is evaluated again. Slack S (minor units) is what equity may lose before
   * the level; it is split between the price legs (S_price) and the conversion rates (S_rate).
   *
   * Leg j floats V_j in its profit currency, converted at rate r_j: the loss is Σ (V_j − V_j') r_j' + V_j (r_j − r_j').
   * Each conversion symbol's price (the bid a direct step reads, the ask an inverse step divides by) is held within a
   * band of δ = ⌊p × num / (den + num)⌋ points, so each step's rate moves by a factor within [1/(1+ε), 1+ε], ε =
   * num/den, and a path of k steps by at most (1+ε)^k − 1 ≤ (2^k − 1) ε of the rate (ε ≤ 1). So the second sum is
   * at most Σ |V_j r_j| (2^k − 1) ε, with |V_j r_j| at most each position's rounded profit + 1: that is S_rate. The
   * first sum is what the price thresholds bound, drawn at the band's highest rate r_j (1+ε)^k. Without conversion
   * (k = 0) S_rate is 0 and the thresholds are those drawn at the rate itself.
   *
   * ε is `RISK_RATE_BAND` (a move beyond it is rare enough to evaluate then) when its S_rate leaves at least half the
   * slack to the prices; otherwise S_rate is half the slack and ε what that half allows.
   */
  private registerRiskThresholds(
    account: Account,
    metrics: { equity: number; margin: number },
    marginCallLevelPercent: number,
  ): void {
    const version = this.newRiskVersion(account.id);
    if (metrics.margin === 0 || account.marginCall) {
      if (account.marginCall) this.watchEveryTick(account, version);
      return;
    }
    const positions = this.state.accountPositions.get(account.id) ?? new Set<number>();
    // Slack above the margin-call level, less one minor unit per position for per-position profit rounding.
    const slack =
      multiplyDivide([metrics.equity * 100 - marginCallLevelPercent * metrics.margin], [100], Rounding.FLOOR) -
      positions.size -
      1;
    if (slack <= 0) {
      // Without slack: look again on the next tick of any symbol it reads.
      this.watchEveryTick(account, version);
      return;
    }
    const converter = this.state.converter;
    // Per symbol held: its volume each side and the symbols its profit converts through (one a step of the path).
    const legs = new Map<string, { buy: number; sell: number; conversion: readonly string[] }>();
    // Σ over positions whose profit converts of |rounded profit| + 1: at least Σ |V_j r_j| (HALF_UP is within ½).
    let convertedProfit = 0;
    let mostSteps = 0;
    for (const positionId of positions) {
      const position = this.state.positions.get(positionId) as Position;
      let leg = legs.get(position.symbol);
      if (!leg) {
        const conversion = converter.symbolsFor(
          this.state.instrument(position.symbol).profitCurrency,
          account.currency,
        );
        legs.set(position.symbol, (leg = { buy: 0, sell: 0, conversion }));
        mostSteps = Math.max(mostSteps, conversion.length);
      }
      if (position.side === "BUY") leg.buy += position.volume;
      else leg.sell += position.volume;
      if (leg.conversion.length > 0) convertedProfit += Math.abs(this.positionProfit(position)) + 1;
    }
    // ε = bandNumerator / bandDenominator, and S_rate ≥ convertedProfit × (2^k − 1) × ε.
    const growth = 2 ** mostSteps - 1;
    let bandNumerator: number = RISK_RATE_BAND.numerator;
    let bandDenominator: number = RISK_RATE_BAND.denominator;
    let rateSlack = multiplyDivide([convertedProfit, growth, bandNumerator], [bandDenominator], Rounding.CEILING);
    if (rateSlack * 2 > slack) {
      rateSlack = Math.floor(slack / 2);
      bandNumerator = rateSlack;
      bandDenominator = convertedProfit * growth;
    }
    const priceSlack = slack - rateSlack;
    let legCount = 0;
    for (const leg of legs.values()) legCount += (leg.buy > 0 ? 1 : 0) + (leg.sell > 0 ? 1 : 0);
    const digits = currencyDigits(account.currency);
    const bands = new Map<string, MarketQuote>();
    for (const [symbol, leg] of legs) {
      const index = this.state.symbolIndex(symbol);
      const quote = this.quotes.get(symbol);
      const instrument = this.state.instrument(symbol);
      const rate = converter.rate(instrument.profitCurrency, account.currency, this.quoteLookup);
      if (!quote || !rate) {
        // Unpriced (evaluateAccount checks first, so this is a safeguard): look again on the next tick it reads.
        this.watchEveryTick(account, version);
        continue;
      }
      // The band's highest rate: r × ((den + num) / den)^k.
      const bandFactors: number[] = [];
      const bandDivisors: number[] = [];
      for (let step = 0; step < leg.conversion.length; step++) {
        bandFactors.push(bandDenominator + bandNumerator);
        bandDivisors.push(bandDenominator);
      }
      for (const side of ["BUY", "SELL"] as const) {
        const units = side === "BUY" ? leg.buy : leg.sell;
        if (units === 0) continue;
        // Points this leg may move against the account before losing S_price / legCount at the band's highest rate. At
        // most the highest price the instrument takes, where no price reaches: found by the review of 7 December (sixth
        // session), an instrument of 8 digits and 8 volume digits made the quotient pass 2^53, and every command threw.
        const allowedPoints = multiplyDivideAtMost(
          [
            priceSlack,
            powerOfTen(instrument.digits),
            powerOfTen(instrument.volumeDigits),
            ...rate.divisors,
            ...bandDivisors,
          ],
          [legCount, units, instrument.contractSize, powerOfTen(digits), ...rate.factors, ...bandFactors],
          Rounding.FLOOR,
          maxPricePoints(instrument),
        );
        if (side === "BUY") this.pushRiskEntry(account.id, index.riskBidFloors, quote.bid - allowedPoints, version);
        else this.pushRiskEntry(account.id, index.riskAskCeilings, quote.ask + allowedPoints, version);
      }
      for (const conversionSymbol of leg.conversion) {
        const conversionQuote = this.quotes.get(conversionSymbol);
        if (conversionQuote) bands.set(conversionSymbol, conversionQuote);
      }
    }
    for (const [symbol, quote] of bands) {
      // Both sides of the quote, whichever the path reads: a few more evaluations, one rule.
      const index = this.state.symbolIndex(symbol);
      const bidBand = multiplyDivide([quote.bid, bandNumerator], [bandDenominator + bandNumerator], Rounding.FLOOR);
      const askBand = multiplyDivide([quote.ask, bandNumerator], [bandDenominator + bandNumerator], Rounding.FLOOR);
      this.pushRiskEntry(account.id, index.riskBidFloors, quote.bid - bidBand, version);
      this.pushRiskEntry(account.id, index.riskBidCeilings, quote.bid + bidBand, version);
      this.pushRiskEntry(account.id, index.riskAskFloors, quote.ask - askBand, version);
      this.pushRiskEntry(account.id, index.riskAskCeilings, quote.ask + askBand, version);
    }
  }

  /**
   * Evaluates the account again on the next tick of every symbol it reads: those it holds, and those their profit,
   * margin and commission convert through (`accountPriced` needs them all).
   */
  private watchEveryTick(account: Account, version: number): void {
    const converter = this.state.converter;
    const symbols = new Set<string>();
    for (const symbol of this.accountSymbols(account.id)) {
      symbols.add(symbol);
      const instrument = this.state.instrument(symbol);
      for (const currency of [instrument.profitCurrency, instrument.marginCurrency, instrument.commissionCurrency])
        for (const conversionSymbol of converter.symbolsFor(currency, account.currency)) symbols.add(conversionSymbol);
    }
    for (const symbol of symbols)
      this.pushRiskEntry(account.id, this.state.symbolIndex(symbol).riskAskCeilings, 0, version);
  }

  /** Retires the account's registered thresholds (their heaps learn they are stale) and returns the new version. */
  private newRiskVersion(accountId: number): number {
    const previous = this.state.riskEntries.get(accountId);
    if (previous) {
      for (const heap of previous) heap.noteStale();
      previous.length = 0;
    }
    const version = this.state.nextVersion();
    this.state.riskVersions.set(accountId, version);
    return version;
  }

  private pushRiskEntry(accountId: number, heap: PriceHeap, price: number, version: number): void {
    heap.push(price, accountId, version);
    let entries = this.state.riskEntries.get(accountId);
    if (!entries) this.state.riskEntries.set(accountId, (entries = []));
    entries.push(heap);
  }

  private accountSymbols(accountId: number): Set<string> {
    const symbols = new Set<string>();
    for (const positionId of this.state.accountPositions.get(accountId) ?? []) {
      const position = this.state.positions.get(positionId);
      if (position) symbols.add(position.symbol);
    }
    return symbols;
  }
}
