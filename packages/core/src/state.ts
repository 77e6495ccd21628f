/**
 * Engine state and the fold: `applyEvent(state, event)` is the only code that changes state.
 * The live engine folds each event as it emits it, and recovery folds the journal, so both
 * reach the same state (and the same `stateHash`) by construction.
 *
 * The state has two parts: the hashed records (accounts, working orders, open positions,
 * counters, remembered client order ids) and derived indexes (price heaps, per-account sets)
 * that are rebuilt by the same fold and never hashed.
 */
import { CurrencyConverter } from "./money.ts";
import type { InstrumentSpec } from "./instruments.ts";
import { assertOrderTransition, isWorkingStatus } from "./order-status.ts";
import { PriceHeap } from "./price-heap.ts";
import type {
  Account,
  BalanceOperationKind,
  EngineConfig,
  EngineEvent,
  LedgerTotals,
  Order,
  Position,
  Side,
} from "./types.ts";

/** What the engine remembers of a balance operation made with a reference (`BalanceCommand.reference`). */
export interface BalanceReferenceMemory {
  readonly operationId: number;
  readonly kind: BalanceOperationKind;
  /** The signed amount, as the event has it. */
  readonly amount: number;
}

/**
 * References an account remembers at most, the oldest forgotten first. Money operations are few per account (a
 * payment bridge's deposits and withdrawals), so this covers years of them; a retry comes within minutes.
 */
export const BALANCE_REFERENCES_PER_ACCOUNT = 1_000;

/** What the engine remembers of an order placed with a client order id: its latest record and deals. */
export interface ClientOrderMemory {
  order: Order;
  dealIds: number[];
}

/** Price indexes of one symbol. */
export class SymbolIndex {
  readonly buyLimits: PriceHeap;
  readonly sellLimits: PriceHeap;
  readonly buyStops: PriceHeap;
  readonly sellStops: PriceHeap;
  readonly buyStopLosses: PriceHeap;
  readonly buyTakeProfits: PriceHeap;
  readonly sellStopLosses: PriceHeap;
  readonly sellTakeProfits: PriceHeap;
  /** STOP orders whose stop price was reached and that still wait for liquidity, by id. */
  readonly triggeredStops = new Set<number>();
  /** Positions with a trailing stop. */
  readonly trailingPositions = new Set<number>();
  /** Risk thresholds (see engine.ts): re-evaluate an account when the bid falls to its floor... */
  readonly riskBidFloors: PriceHeap;
  /** ...or the ask rises to its ceiling... */
  readonly riskAskCeilings: PriceHeap;
  /** ...or, for a conversion rate's band (a rate read at the bid or divided by the ask), the bid rises to its ceiling... */
  readonly riskBidCeilings: PriceHeap;
  /** ...or the ask falls to its floor. */
  readonly riskAskFloors: PriceHeap;

  constructor(
    orderLive: (id: number, version: number) => boolean,
    stopLive: (id: number, version: number) => boolean,
    riskLive: (id: number, version: number) => boolean,
  ) {
    this.riskBidFloors = new PriceHeap("MAX", riskLive);
    this.riskAskCeilings = new PriceHeap("MIN", riskLive);
    this.riskBidCeilings = new PriceHeap("MIN", riskLive);
    this.riskAskFloors = new PriceHeap("MAX", riskLive);
    // Buy limit: ask ≤ price, the highest price first. Sell limit: bid ≥ price, the lowest first.
    this.buyLimits = new PriceHeap("MAX", orderLive);
    this.sellLimits = new PriceHeap("MIN", orderLive);
    // Buy stop: ask ≥ price, the lowest first. Sell stop: bid ≤ price, the highest first.
    this.buyStops = new PriceHeap("MIN", orderLive);
    this.sellStops = new PriceHeap("MAX", orderLive);
    // A buy position closes at the bid: SL when bid ≤ sl, TP when bid ≥ tp; a sell position at the ask.
    this.buyStopLosses = new PriceHeap("MAX", stopLive);
    this.buyTakeProfits = new PriceHeap("MIN", stopLive);
    this.sellStopLosses = new PriceHeap("MIN", stopLive);
    this.sellTakeProfits = new PriceHeap("MAX", stopLive);
  }
}

/** Swap a position still owes for rollovers that had no conversion rate (`SwapsDeferred`). */
export interface DeferredSwap {
  readonly accountId: number;
  days: number;
}

/** The key of `EngineState.deferredSwapsByConversion` for a position's swap in its account's currency. */
function swapConversionKey(state: EngineState, position: Position): string {
  const account = requireAccount(state, position.accountId);
  return `${state.instrument(position.symbol).profitCurrency}>${account.currency}`;
}

function addDeferredSwap(state: EngineState, positionId: number, accountId: number, days: number): void {
  const deferred = state.deferredSwaps.get(positionId);
  if (deferred) {
    deferred.days += days;
    return;
  }
  state.deferredSwaps.set(positionId, { accountId, days });
  const key = swapConversionKey(state, requirePosition(state, positionId));
  let group = state.deferredSwapsByConversion.get(key);
  if (!group) state.deferredSwapsByConversion.set(key, (group = new Set()));
  group.add(positionId);
}

function removeDeferredSwap(state: EngineState, position: Position): void {
  if (!state.deferredSwaps.delete(position.id)) return;
  const key = swapConversionKey(state, position);
  const group = state.deferredSwapsByConversion.get(key);
  group?.delete(position.id);
  if (group?.size === 0) state.deferredSwapsByConversion.delete(key);
}

interface SymbolMargin {
  buy: number;
  sell: number;
}

export class EngineState {
  // ---- hashed records ----
  nextAccountId = 100_001;
  nextOrderId = 1;
  nextDealId = 1;
  nextPositionId = 1;
  nextOperationId = 1;
  lastRolloverAt: number | null = null;
  readonly accounts = new Map<number, Account>();
  /** Working orders only; finished orders live in the journal and the read models. */
  readonly orders = new Map<number, Order>();
  readonly positions = new Map<number, Position>();
  /** Per account, client order id → memory, oldest first (bounded by config). */
  readonly clientOrders = new Map<number, Map<string, ClientOrderMemory>>();
  /** Per account, the references of its balance operations, oldest first (bounded: BALANCE_REFERENCES_PER_ACCOUNT). */
  readonly balanceReferences = new Map<number, Map<string, BalanceReferenceMemory>>();
  /** Position id → the days of swap rollovers could not charge yet (`SwapsDeferred`). */
  readonly deferredSwaps = new Map<number, DeferredSwap>();

  // ---- derived indexes ----
  readonly instruments: ReadonlyMap<string, InstrumentSpec>;
  readonly converter: CurrencyConverter;
  readonly symbolIndexes = new Map<string, SymbolIndex>();
  readonly orderVersions = new Map<number, number>();
  readonly stopVersions = new Map<number, number>();
  readonly expirations: PriceHeap;
  readonly accountPositions = new Map<number, Set<number>>();
  readonly accountWorkingOrders = new Map<number, Set<number>>();
  /** Netting accounts: "accountId:symbol" → the one position. */
  readonly nettingPositions = new Map<string, number>();
  readonly symbolMargins = new Map<number, Map<string, SymbolMargin>>();
  readonly usedMargins = new Map<number, number>();
  /** Account id → version of its registered risk thresholds. */
  readonly riskVersions = new Map<number, number>();
  /** Account id → the heaps holding its registered thresholds (one element per entry), to retire them. */
  readonly riskEntries = new Map<number, PriceHeap[]>();
  /** Accounts whose equity or margin changed by an event and must be risk-checked before the command ends. */
  readonly riskDirty = new Set<number>();
  /**
   * The deferred swaps by the conversion they wait for ("JPY>USD": profit currency > account currency), so a
   * tick asks for each missing rate once, not once per position.
   */
  readonly deferredSwapsByConversion = new Map<string, Set<number>>();
  private versionCounter = 0;

  constructor(readonly config: EngineConfig) {
    this.instruments = new Map(config.instruments.map((instrument) => [instrument.symbol, instrument]));
    this.converter = new CurrencyConverter(config.instruments);
    const orderLive = (id: number, version: number): boolean => this.orderVersions.get(id) === version;
    this.expirations = new PriceHeap("MIN", orderLive);
  }

  symbolIndex(symbol: string): SymbolIndex {
    let index = this.symbolIndexes.get(symbol);
    if (!index) {
      index = new SymbolIndex(
        (id, version) => this.orderVersions.get(id) === version,
        (id, version) => this.stopVersions.get(id) === version,
        (id, version) => this.riskVersions.get(id) === version,
      );
      this.symbolIndexes.set(symbol, index);
    }
    return index;
  }

  instrument(symbol: string): InstrumentSpec {
    const instrument = this.instruments.get(symbol);
    if (!instrument) throw new Error(`unknown instrument ${symbol}`);
    return instrument;
  }

  /** The account's used margin: per symbol, the larger of the buy and sell legs (hedged margin). */
  usedMargin(accountId: number): number {
    return this.usedMargins.get(accountId) ?? 0;
  }

  symbolMargin(accountId: number, symbol: string): SymbolMargin {
    return this.symbolMargins.get(accountId)?.get(symbol) ?? { buy: 0, sell: 0 };
  }

  nextVersion(): number {
    return ++this.versionCounter;
  }
}

function requireAccount(state: EngineState, accountId: number): Account {
  const account = state.accounts.get(accountId);
  if (!account) throw new Error(`event for unknown account ${accountId}`);
  return account;
}

function requirePosition(state: EngineState, positionId: number): Position {
  const position = state.positions.get(positionId);
  if (!position) throw new Error(`event for unknown position ${positionId}`);
  return position;
}

function addToSetMap(map: Map<number, Set<number>>, key: number, value: number): void {
  let set = map.get(key);
  if (!set) map.set(key, (set = new Set()));
  set.add(value);
}

function indexOrder(state: EngineState, order: Order): void {
  const version = state.nextVersion();
  const previous = state.orderVersions.get(order.id);
  state.orderVersions.set(order.id, version);
  const index = state.symbolIndex(order.symbol);
  if (previous !== undefined) noteOrderStale(state, index);
  if (order.expiration !== null) state.expirations.push(order.expiration, order.id, version);
  const buy = order.side === "BUY";
  if (order.type === "LIMIT") {
    (buy ? index.buyLimits : index.sellLimits).push(order.price as number, order.id, version);
  } else if (order.type === "STOP_LIMIT") {
    if (order.triggered)
      (buy ? index.buyLimits : index.sellLimits).push(order.stopLimitPrice as number, order.id, version);
    else (buy ? index.buyStops : index.sellStops).push(order.price as number, order.id, version);
  } else if (order.type === "STOP") {
    if (order.triggered) index.triggeredStops.add(order.id);
    else (buy ? index.buyStops : index.sellStops).push(order.price as number, order.id, version);
  }
}

/** Puts a popped but still working order back into its price index (an index-only operation). */
export function reinsertOrder(state: EngineState, order: Order): void {
  const version = state.orderVersions.get(order.id);
  if (version === undefined) return;
  const index = state.symbolIndex(order.symbol);
  const buy = order.side === "BUY";
  if (order.type === "LIMIT" || (order.type === "STOP_LIMIT" && order.triggered)) {
    const price = (order.type === "LIMIT" ? order.price : order.stopLimitPrice) as number;
    (buy ? index.buyLimits : index.sellLimits).push(price, order.id, version);
  } else if (!order.triggered) {
    (buy ? index.buyStops : index.sellStops).push(order.price as number, order.id, version);
  }
}

/** Puts a popped position's SL or TP back into the index (an index-only operation). */
export function reinsertPositionStop(state: EngineState, position: Position, which: "SL" | "TP"): void {
  const version = state.stopVersions.get(position.id);
  if (version === undefined) return;
  const index = state.symbolIndex(position.symbol);
  const buy = position.side === "BUY";
  if (which === "SL" && position.sl !== null)
    (buy ? index.buyStopLosses : index.sellStopLosses).push(position.sl, position.id, version);
  if (which === "TP" && position.tp !== null)
    (buy ? index.buyTakeProfits : index.sellTakeProfits).push(position.tp, position.id, version);
}

function noteOrderStale(state: EngineState, index: SymbolIndex): void {
  index.buyLimits.noteStale();
  index.sellLimits.noteStale();
  index.buyStops.noteStale();
  index.sellStops.noteStale();
  state.expirations.noteStale();
}

function unindexOrder(state: EngineState, order: Order): void {
  state.orderVersions.delete(order.id);
  const index = state.symbolIndex(order.symbol);
  index.triggeredStops.delete(order.id);
  noteOrderStale(state, index);
}

function indexPositionStops(state: EngineState, position: Position): void {
  const index = state.symbolIndex(position.symbol);
  const previous = state.stopVersions.get(position.id);
  if (previous !== undefined) noteStopsStale(index);
  const version = state.nextVersion();
  state.stopVersions.set(position.id, version);
  const buy = position.side === "BUY";
  if (position.sl !== null) (buy ? index.buyStopLosses : index.sellStopLosses).push(position.sl, position.id, version);
  if (position.tp !== null)
    (buy ? index.buyTakeProfits : index.sellTakeProfits).push(position.tp, position.id, version);
  if (position.trailingDistance !== null) index.trailingPositions.add(position.id);
  else index.trailingPositions.delete(position.id);
}

function noteStopsStale(index: SymbolIndex): void {
  index.buyStopLosses.noteStale();
  index.buyTakeProfits.noteStale();
  index.sellStopLosses.noteStale();
  index.sellTakeProfits.noteStale();
}

function changeSymbolMargin(state: EngineState, accountId: number, symbol: string, side: Side, delta: number): void {
  if (delta === 0) return;
  let perSymbol = state.symbolMargins.get(accountId);
  if (!perSymbol) state.symbolMargins.set(accountId, (perSymbol = new Map()));
  let margin = perSymbol.get(symbol);
  if (!margin) perSymbol.set(symbol, (margin = { buy: 0, sell: 0 }));
  const before = Math.max(margin.buy, margin.sell);
  if (side === "BUY") margin.buy += delta;
  else margin.sell += delta;
  const after = Math.max(margin.buy, margin.sell);
  // The record stays when it reaches zero: at most one per symbol, and no churn on every round trip.
  state.usedMargins.set(accountId, (state.usedMargins.get(accountId) ?? 0) + after - before);
}

function rememberClientOrder(state: EngineState, order: Order): void {
  if (order.clientOrderId === null) return;
  let memory = state.clientOrders.get(order.accountId);
  if (!memory) state.clientOrders.set(order.accountId, (memory = new Map()));
  memory.set(order.clientOrderId, { order: { ...order }, dealIds: [] });
  forgetOldestClientOrders(state, memory);
}

/** Bounded: forgets the oldest ids first (Map iteration is insertion order, identical on replay). */
function forgetOldestClientOrders(state: EngineState, memory: Map<string, ClientOrderMemory>): void {
  while (memory.size > state.config.clientOrderIdMemoryPerAccount) memory.delete(memory.keys().next().value as string);
}

/**
 * Cuts what the state remembers to the configuration's bounds: a state restored from a snapshot taken under a larger
 * bound holds what a replay under this one forgets. Keeping the newest is what that replay keeps: ids are remembered
 * in the order their orders were accepted, under any bound, since an id remembered is never accepted again.
 */
export function boundMemories(state: EngineState): void {
  for (const memory of state.clientOrders.values()) forgetOldestClientOrders(state, memory);
}

function rememberBalanceReference(
  state: EngineState,
  accountId: number,
  reference: string,
  memory: BalanceReferenceMemory,
): void {
  let references = state.balanceReferences.get(accountId);
  if (!references) state.balanceReferences.set(accountId, (references = new Map()));
  references.set(reference, memory);
  // Bounded: forget the oldest first (insertion order, identical on replay).
  if (references.size > BALANCE_REFERENCES_PER_ACCOUNT) references.delete(references.keys().next().value as string);
}

function clientOrderMemory(state: EngineState, order: Order): ClientOrderMemory | undefined {
  if (order.clientOrderId === null) return undefined;
  const memory = state.clientOrders.get(order.accountId)?.get(order.clientOrderId);
  return memory && memory.order.id === order.id ? memory : undefined;
}

/** Folds one event into the state. Deterministic; reads nothing but the state and the event. */
export function applyEvent(state: EngineState, event: EngineEvent): void {
  switch (event.type) {
    case "AccountOpened": {
      state.accounts.set(event.accountId, {
        id: event.accountId,
        userId: event.userId,
        currency: event.currency,
        leverage: event.leverage,
        mode: event.mode,
        group: event.group,
        balance: 0,
        credit: 0,
        ledger: { deposits: 0, withdrawals: 0, realisedProfit: 0, commissions: 0, swaps: 0, corrections: 0 },
        tradingEnabled: true,
        marginCall: false,
        createdAt: event.time,
      });
      state.nextAccountId = Math.max(state.nextAccountId, event.accountId + 1);
      return;
    }
    case "AccountChanged": {
      const account = requireAccount(state, event.accountId);
      account.leverage = event.leverage;
      account.group = event.group;
      account.tradingEnabled = event.tradingEnabled;
      state.riskDirty.add(account.id);
      return;
    }
    case "BalanceOperation": {
      const account = requireAccount(state, event.accountId);
      switch (event.kind) {
        case "DEPOSIT":
          account.balance += event.amount;
          account.ledger.deposits += event.amount;
          break;
        case "WITHDRAWAL":
          // amount is the signed change: negative.
          account.balance += event.amount;
          account.ledger.withdrawals -= event.amount;
          break;
        case "CORRECTION":
          account.balance += event.amount;
          account.ledger.corrections += event.amount;
          break;
        case "CREDIT":
          account.credit += event.amount;
          break;
      }
      state.nextOperationId = Math.max(state.nextOperationId, event.operationId + 1);
      state.riskDirty.add(account.id);
      if (typeof event.reference === "string")
        rememberBalanceReference(state, account.id, event.reference, {
          operationId: event.operationId,
          kind: event.kind,
          amount: event.amount,
        });
      return;
    }
    case "OrderAccepted": {
      const order: Order = { ...event.order };
      state.orders.set(order.id, order);
      state.nextOrderId = Math.max(state.nextOrderId, order.id + 1);
      if (order.type !== "MARKET") {
        addToSetMap(state.accountWorkingOrders, order.accountId, order.id);
        indexOrder(state, order);
      }
      rememberClientOrder(state, order);
      return;
    }
    case "OrderChanged": {
      const order = state.orders.get(event.orderId);
      if (!order) throw new Error(`event for unknown order ${event.orderId}`);
      order.price = event.price;
      order.stopLimitPrice = event.stopLimitPrice;
      order.sl = event.sl;
      order.tp = event.tp;
      order.trailingDistance = event.trailingDistance;
      order.expiration = event.expiration;
      order.triggered = event.triggered;
      order.updatedAt = event.time;
      indexOrder(state, order);
      const memory = clientOrderMemory(state, order);
      if (memory) memory.order = { ...order };
      return;
    }
    case "OrderStatusChanged": {
      const order = state.orders.get(event.orderId);
      if (!order) throw new Error(`event for unknown order ${event.orderId}`);
      assertOrderTransition(order.id, order.status, event.status);
      order.status = event.status;
      order.filledVolume = event.filledVolume;
      order.statusReason = event.reason;
      order.updatedAt = event.time;
      if (!isWorkingStatus(event.status)) {
        state.orders.delete(order.id);
        state.accountWorkingOrders.get(order.accountId)?.delete(order.id);
        if (order.type !== "MARKET") unindexOrder(state, order);
      }
      const memory = clientOrderMemory(state, order);
      if (memory) memory.order = { ...order };
      return;
    }
    case "DealExecuted": {
      const { deal, effect } = event;
      const account = requireAccount(state, deal.accountId);
      account.balance += deal.profit - deal.commission + deal.swap;
      account.ledger.realisedProfit += deal.profit;
      account.ledger.commissions += deal.commission;
      account.ledger.swaps += deal.swap;
      state.riskDirty.add(account.id);
      state.nextDealId = Math.max(state.nextDealId, deal.id + 1);
      const working = state.orders.get(deal.orderId);
      if (working) {
        const memory = clientOrderMemory(state, working);
        if (memory) memory.dealIds.push(deal.id);
      }
      if (effect.kind === "OPEN") {
        const position: Position = {
          id: deal.positionId,
          accountId: deal.accountId,
          symbol: deal.symbol,
          side: deal.side,
          volume: deal.volume,
          openCost: deal.price * deal.volume,
          margin: effect.margin,
          swap: 0,
          commission: deal.commission,
          sl: effect.sl,
          tp: effect.tp,
          trailingDistance: effect.trailingDistance,
          comment: effect.comment,
          magic: effect.magic,
          openOrderId: deal.orderId,
          openTime: event.time,
          updatedAt: event.time,
        };
        state.positions.set(position.id, position);
        state.nextPositionId = Math.max(state.nextPositionId, position.id + 1);
        addToSetMap(state.accountPositions, account.id, position.id);
        if (account.mode === "NETTING") state.nettingPositions.set(`${account.id}:${position.symbol}`, position.id);
        changeSymbolMargin(state, account.id, position.symbol, position.side, effect.margin);
        indexPositionStops(state, position);
        return;
      }
      const position = requirePosition(state, deal.positionId);
      position.updatedAt = event.time;
      if (effect.kind === "INCREASE") {
        position.volume += deal.volume;
        position.openCost += deal.price * deal.volume;
        position.margin += effect.margin;
        position.commission += deal.commission;
        changeSymbolMargin(state, account.id, position.symbol, position.side, effect.margin);
        if (effect.sl !== null || effect.tp !== null) {
          if (effect.sl !== null) position.sl = effect.sl;
          if (effect.tp !== null) position.tp = effect.tp;
          indexPositionStops(state, position);
        }
        return;
      }
      position.volume -= deal.volume;
      position.openCost -= effect.closedCost;
      position.margin -= effect.marginReleased;
      position.swap -= deal.swap;
      position.commission += deal.commission;
      changeSymbolMargin(state, account.id, position.symbol, position.side, -effect.marginReleased);
      if (position.volume === 0) {
        // Never holds a deferral here: a deal needs the rate the deferral waits for, and the tick that brought
        // it charged the deferral first (engine.ts chargeDeferredSwaps). Dropped all the same, so no entry
        // outlives its position.
        removeDeferredSwap(state, position);
        state.positions.delete(position.id);
        state.accountPositions.get(account.id)?.delete(position.id);
        if (account.mode === "NETTING") state.nettingPositions.delete(`${account.id}:${position.symbol}`);
        state.stopVersions.delete(position.id);
        const index = state.symbolIndex(position.symbol);
        index.trailingPositions.delete(position.id);
        noteStopsStale(index);
      }
      return;
    }
    case "PositionChanged": {
      const position = requirePosition(state, event.positionId);
      position.sl = event.sl;
      position.tp = event.tp;
      position.trailingDistance = event.trailingDistance;
      position.updatedAt = event.time;
      indexPositionStops(state, position);
      return;
    }
    case "PositionMarginChanged": {
      const position = requirePosition(state, event.positionId);
      changeSymbolMargin(state, position.accountId, position.symbol, position.side, event.margin - position.margin);
      position.margin = event.margin;
      state.riskDirty.add(position.accountId);
      return;
    }
    case "Rollover": {
      for (const charge of event.charges) {
        const position = requirePosition(state, charge.positionId);
        position.swap += charge.amount;
        state.riskDirty.add(position.accountId);
      }
      state.lastRolloverAt = event.rolloverTime;
      return;
    }
    case "SwapsDeferred":
      for (const deferral of event.deferrals)
        addDeferredSwap(state, deferral.positionId, deferral.accountId, deferral.days);
      return;
    case "DeferredSwapsCharged":
      for (const charge of event.charges) {
        const position = requirePosition(state, charge.positionId);
        position.swap += charge.amount;
        removeDeferredSwap(state, position);
        state.riskDirty.add(position.accountId);
      }
      return;
    case "MarginCallEntered":
      requireAccount(state, event.accountId).marginCall = true;
      state.riskDirty.add(event.accountId);
      return;
    case "MarginCallCleared":
      requireAccount(state, event.accountId).marginCall = false;
      state.riskDirty.add(event.accountId);
      return;
    case "StopOut":
      return;
  }
}

// ---------------------------------------------------------------------------------------------
// The state hash: a canonical rendering of the hashed records, so a live engine and any replay
// of its journal can be compared in one string.

function sortedById<T extends { id: number }>(values: Iterable<T>): T[] {
  return [...values].sort((a, b) => a.id - b.id);
}

/**
 * The state's hashed records as a snapshot lists them (accounts, orders and positions by id, client order
 * memories by account), not copied: what both its canonical text and its snapshots are made from.
 */
function stateRecords(state: EngineState): StateSnapshot {
  return {
    version: 1,
    counters: {
      nextAccountId: state.nextAccountId,
      nextOrderId: state.nextOrderId,
      nextDealId: state.nextDealId,
      nextPositionId: state.nextPositionId,
      nextOperationId: state.nextOperationId,
    },
    lastRolloverAt: state.lastRolloverAt,
    // Only when there are any, so the text of every state without deferrals (and its hash) is what it was
    // before deferrals existed.
    ...(state.deferredSwaps.size > 0 && {
      deferredSwaps: [...state.deferredSwaps.entries()]
        .sort(([a], [b]) => a - b)
        .map(([positionId, deferred]) => [positionId, deferred.accountId, deferred.days] as const),
    }),
    accounts: sortedById(state.accounts.values()),
    orders: sortedById(state.orders.values()),
    positions: sortedById(state.positions.values()),
    clientOrders: [...state.clientOrders.entries()]
      .sort(([a], [b]) => a - b)
      .map(([accountId, memory]) => [accountId, [...memory.entries()]] as const),
    // Balance references, per account [reference, operation id, kind, amount] oldest first: a record array after
    // the others, only when there are any, so the text of every state without them (and its hash) is unchanged.
    ...(state.balanceReferences.size > 0 && {
      balanceReferences: [...state.balanceReferences.entries()]
        .sort(([a], [b]) => a - b)
        .map(
          ([accountId, references]) =>
            [
              accountId,
              [...references.entries()].map(
                ([reference, memory]) => [reference, memory.operationId, memory.kind, memory.amount] as const,
              ),
            ] as const,
        ),
    }),
  };
}

/** The canonical text of the state: the text a snapshot of it hashes in parts (`canonicalStateHead`, `snapshotRecordParts`). */
export function canonicalState(state: EngineState): string {
  const records = stateRecords(state);
  return canonicalStateHead(records) + [...snapshotRecordParts(records)].join("");
}

/**
 * The state hash's function over text given in parts: `update` each part in order, then `digest`, which
 * equals `hashText` of the parts joined. A snapshot's hash is computed this way a part at a time, between
 * other work (packages/store records.ts `encodeSnapshotInSlices`).
 */
export class TextHasher {
  private first = 0x811c9dc5;
  private second = 0x01000193 ^ 0x5bd1e995;

  update(text: string): void {
    let first = this.first;
    let second = this.second;
    for (let index = 0; index < text.length; index++) {
      const code = text.charCodeAt(index);
      first = Math.imul(first ^ code, 0x01000193);
      second = Math.imul(second ^ code, 0x5bd1e995);
      second ^= second >>> 15;
    }
    this.first = first;
    this.second = second;
  }

  digest(): string {
    const hex = (value: number): string => (value >>> 0).toString(16).padStart(8, "0");
    return hex(this.first) + hex(this.second);
  }
}

/** A 64-bit hash (two 32-bit FNV-1a-style lanes) of the canonical state, as 16 hex digits. Not cryptographic: a fingerprint for replay checks. */
export function hashText(text: string): string {
  const hasher = new TextHasher();
  hasher.update(text);
  return hasher.digest();
}

/** `hashText(canonicalState(state))`, fed a part at a time: the whole text is never built. */
export function stateHash(state: EngineState): string {
  const records = stateRecords(state);
  const hasher = new TextHasher();
  hasher.update(canonicalStateHead(records));
  for (const part of snapshotRecordParts(records)) hasher.update(part);
  return hasher.digest();
}

/**
 * The ledger invariant of DESIGN.md section 3: the balance an account must have given its ledger,
 * deposits − withdrawals + realised profit − commissions + swaps + corrections. The one definition;
 * tests, `verify` and the crash checks all compare against it.
 */
export function ledgerBalance(ledger: LedgerTotals): number {
  return (
    ledger.deposits -
    ledger.withdrawals +
    ledger.realisedProfit -
    ledger.commissions +
    ledger.swaps +
    ledger.corrections
  );
}

/** The record arrays of a snapshot, in the order both its canonical text and its JSON list them. */
export const SNAPSHOT_RECORD_KEYS = ["accounts", "orders", "positions", "clientOrders"] as const;

/**
 * Record arrays a snapshot holds after those only when not empty (the text of a state without them is what it was
 * before they existed): written a record at a time like the others, as they may be many.
 */
export const SNAPSHOT_OPTIONAL_RECORD_KEYS = ["balanceReferences"] as const;

/**
 * The records of `snapshot` as JSON, a part per record: `"accounts":[…],"orders":[…],"positions":[…],
 * "clientOrders":[…]}`. Both texts made of a snapshot end with exactly these parts: its canonical text after
 * `canonicalStateHead` (joined, `canonicalState` of the state it was taken from, whose records it copies in
 * order) and its JSON after `snapshotJsonHead` (joined, `JSON.stringify(snapshot)`). So a snapshot's hash and
 * its stored row are made from one JSON text per record, a part at a time (packages/store records.ts
 * `encodeSnapshotInSlices`). `each` sees every record, with its path, before its part.
 */
export function* snapshotRecordParts(
  snapshot: StateSnapshot,
  each?: (record: unknown, path: string) => void,
): Generator<string> {
  const keys = [
    ...SNAPSHOT_RECORD_KEYS,
    ...SNAPSHOT_OPTIONAL_RECORD_KEYS.filter((key) => snapshot[key] !== undefined),
  ] as const;
  for (const [keyIndex, key] of keys.entries()) {
    const records: readonly unknown[] = snapshot[key]!;
    yield `${keyIndex === 0 ? "" : ","}${JSON.stringify(key)}:[`;
    for (let index = 0; index < records.length; index++) {
      each?.(records[index], `${key}[${index}]`);
      yield index === 0 ? JSON.stringify(records[index]) : `,${JSON.stringify(records[index])}`;
    }
    yield "]";
  }
  yield "}";
}

/** The canonical text of the state `snapshot` was taken from, up to its records (`snapshotRecordParts`). */
export function canonicalStateHead(snapshot: StateSnapshot): string {
  const { counters } = snapshot;
  const head = JSON.stringify({
    counters: [
      counters.nextAccountId,
      counters.nextOrderId,
      counters.nextDealId,
      counters.nextPositionId,
      counters.nextOperationId,
    ],
    lastRolloverAt: snapshot.lastRolloverAt,
    ...(snapshot.deferredSwaps && { deferredSwaps: snapshot.deferredSwaps }),
  });
  return `${head.slice(0, -1)},`;
}

/** `JSON.stringify(snapshot)` up to its records (`snapshotRecordParts`): every other field, in its order. */
export function snapshotJsonHead(snapshot: StateSnapshot): string {
  const rest: Record<string, unknown> = { ...snapshot };
  for (const key of [...SNAPSHOT_RECORD_KEYS, ...SNAPSHOT_OPTIONAL_RECORD_KEYS]) delete rest[key];
  const head = JSON.stringify(rest);
  return head === "{}" ? "{" : `${head.slice(0, -1)},`;
}

// ---------------------------------------------------------------------------------------------
// Snapshots: the hashed records as plain JSON. Restoring rebuilds every index from the records,
// so a snapshot plus the events after it folds to the same state as the whole journal.

export interface StateSnapshot {
  readonly version: 1;
  readonly counters: {
    readonly nextAccountId: number;
    readonly nextOrderId: number;
    readonly nextDealId: number;
    readonly nextPositionId: number;
    readonly nextOperationId: number;
  };
  readonly lastRolloverAt: number | null;
  /** [position id, account id, days] of each deferred swap, by position id; absent when there are none. */
  readonly deferredSwaps?: readonly (readonly [number, number, number])[];
  /** Per account (by id), its balance references oldest first as [reference, operation id, kind, signed amount]; absent when none. */
  readonly balanceReferences?: readonly (readonly [
    number,
    readonly (readonly [string, number, BalanceOperationKind, number])[],
  ])[];
  readonly accounts: readonly Account[];
  readonly orders: readonly Order[];
  readonly positions: readonly Position[];
  /** Per account, client order memories oldest first. */
  readonly clientOrders: readonly (readonly [number, readonly (readonly [string, ClientOrderMemory])[]])[];
}

/*
 * Copies of the hashed records, so a snapshot and the state never share an object. Orders and positions
 * hold only primitives, an account one nested object (its ledger), a client order memory an order and a
 * list of deal ids: copied by hand, about ten times faster than structuredClone, which made a snapshot of
 * a large book (100,000 working orders) stop the engine's thread for half a second. A nested field added
 * to a record must be copied here too (the snapshot tests change a restored engine and compare).
 */
function copyAccount(account: Account): Account {
  return { ...account, ledger: { ...account.ledger } };
}

function copyFlat<T extends Order | Position>(record: T): T {
  return { ...record };
}

function copyMemory(memory: ClientOrderMemory): ClientOrderMemory {
  return { order: { ...memory.order }, dealIds: [...memory.dealIds] };
}

export function snapshotState(state: EngineState): StateSnapshot {
  const records = stateRecords(state);
  return {
    ...records,
    accounts: records.accounts.map(copyAccount),
    orders: records.orders.map(copyFlat),
    positions: records.positions.map(copyFlat),
    clientOrders: records.clientOrders.map(
      ([accountId, entries]) => [accountId, entries.map(([id, entry]) => [id, copyMemory(entry)] as const)] as const,
    ),
  };
}

/** Fills an empty state from a snapshot and rebuilds its indexes. */
export function restoreState(state: EngineState, snapshot: StateSnapshot): void {
  if (snapshot.version !== 1) throw new Error(`unsupported snapshot version ${String(snapshot.version)}`);
  if (state.accounts.size > 0 || state.orders.size > 0 || state.positions.size > 0)
    throw new Error("restore needs an empty state");
  state.nextAccountId = snapshot.counters.nextAccountId;
  state.nextOrderId = snapshot.counters.nextOrderId;
  state.nextDealId = snapshot.counters.nextDealId;
  state.nextPositionId = snapshot.counters.nextPositionId;
  state.nextOperationId = snapshot.counters.nextOperationId;
  state.lastRolloverAt = snapshot.lastRolloverAt;
  for (const account of snapshot.accounts) {
    state.accounts.set(account.id, copyAccount(account));
    state.riskDirty.add(account.id);
  }
  for (const source of snapshot.orders) {
    const order = copyFlat(source);
    state.orders.set(order.id, order);
    if (order.type !== "MARKET") {
      addToSetMap(state.accountWorkingOrders, order.accountId, order.id);
      indexOrder(state, order);
    }
  }
  for (const source of snapshot.positions) {
    const position = copyFlat(source);
    const account = requireAccount(state, position.accountId);
    state.positions.set(position.id, position);
    addToSetMap(state.accountPositions, account.id, position.id);
    if (account.mode === "NETTING") state.nettingPositions.set(`${account.id}:${position.symbol}`, position.id);
    changeSymbolMargin(state, account.id, position.symbol, position.side, position.margin);
    indexPositionStops(state, position);
  }
  for (const [accountId, entries] of snapshot.clientOrders) {
    state.clientOrders.set(accountId, new Map(entries.map(([id, entry]) => [id, copyMemory(entry)])));
  }
  for (const [positionId, accountId, days] of snapshot.deferredSwaps ?? [])
    addDeferredSwap(state, positionId, accountId, days);
  for (const [accountId, references] of snapshot.balanceReferences ?? [])
    for (const [reference, operationId, kind, amount] of references)
      rememberBalanceReference(state, accountId, reference, { operationId, kind, amount });
}
