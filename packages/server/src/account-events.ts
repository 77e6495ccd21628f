/**
 * Account events on the bus (DESIGN.md sections 2 and 6): the engine's journaled events, turned into
 * protocol-neutral payloads and published on `account.{login}` with the journal sequence as `seq`. Every
 * stream adapter (the native stream of ws-stream.ts, the Pusher endpoint) reads them from the bus only;
 * the same builder serves the replay of a resuming client from the journal, so a replayed event is the
 * very payload the live one was.
 *
 * Payloads are a pure function of the journal record (plus the static instrument table and the account's
 * currency): nothing depends on the engine's state at publish time, which a replay after a restart could
 * not reproduce. The few events that do not name their symbol (OrderChanged, OrderStatusChanged,
 * PositionChanged) resolve it from the engine's working orders and open positions, from a small map of
 * the orders and positions seen since start, and, when replaying finished ones, from the read models.
 *
 * Types and payloads (every one has `accountId`, `seq`, `time`, `event`):
 * - `executionEvent`: `ORDER_ACCEPTED` {orderId, symbol, status: "PLACED", order}, `ORDER_STATUS` {orderId,
 *   symbol, status (PARTIALLY_FILLED, FILLED, CANCELLED, EXPIRED, REJECTED), filledVolume, statusReason},
 *   `DEAL` {orderId, symbol, deal} (each fill; the order's PARTIALLY_FILLED / FILLED status follows),
 *   `ORDER_MODIFIED` {orderId, symbol, price, stopLimitPrice, sl, tp, trailingDistance, expiration,
 *   triggered}, and `ORDER_REJECTED` for a rejected order command (see below);
 * - `portfolioEvent`: `DEAL` {positionId, symbol, side, entry, effect (OPEN, INCREASE, DECREASE), volume,
 *   positionVolume (the position's lots after the deal, 0 once closed; null for events journaled before it was kept),
 *   price, balanceChange, and the stops the deal set on the position, when it set some: sl, tp (OPEN and a netting
 *   INCREASE), trailingDistance (OPEN)}, `POSITION_MODIFIED` {positionId, symbol, sl, tp, trailingDistance, reason},
 *   `BALANCE` {operationId, kind, amount, balanceChange, creditChange}, `SWAP` {positionId, amount} (a rollover's charge, or a deferred one's),
 *   `MARGIN_CALL_ENTERED` / `MARGIN_CALL_CLEARED` / `STOP_OUT` {equity, margin}, `ACCOUNT_CHANGED` {leverage,
 *   group, tradingEnabled}, `POSITION_MARGIN_CHANGED` {positionId, symbol, margin} (a leverage change rescales it);
 * - `balanceEvent` (seed 000's balance stream), every change of the balance or credit: `BALANCE_OPERATION`
 *   {operationId, kind, amount, comment} (deposit, withdrawal, credit, correction), `DEAL` {dealId, positionId,
 *   amount} (a deal's profit − commission + swap, when not 0). A rollover's charge accrues on its position (the
 *   portfolioEvent `SWAP`) and reaches the balance in the closing deal, so it is no balanceEvent of its own.
 * Money is in the account currency's digits, prices and lots in the instrument's, times ISO 8601.
 *
 * A journal event may give several messages with the same `seq` (a deal: an `executionEvent`, a `portfolioEvent`
 * and, when it moves money, a `balanceEvent`; a rollover: a `portfolioEvent` per position charged);
 * `seq` orders each account's events and is the resume point (`sinceSeq`), it is not unique per message.
 *
 * Rejected order commands: the engine journals nothing for them (the command is refused before any
 * state changes), so the service layer (trading-service.ts) publishes a live-only `executionEvent`
 * `ORDER_REJECTED` with `seq: null`: the requester also gets the error answer, and a replay cannot
 * return it. Orders the engine rejects later (a triggered stop without margin) are journaled
 * `OrderStatusChanged` REJECTED events and carry their seq like any other.
 */
import type { DealExecutedEvent, EngineEvent, InstrumentSpec, PlaceOrderCommand, PositionEffect } from "@bourse/core";
import { encodeCursor, eventAccountId, type JournalRecord } from "@bourse/store";
import { BusTopics, type BusMessage } from "./bus.ts";
import type { ApiError } from "./errors.ts";
import type { Platform, UntimedCommand } from "./platform.ts";
import { dealView, orderHistoryRow, orderView } from "./trading-views.ts";
import { lotsToWire, moneyToWire, optionalPriceToWire, optionalTimeToWire, priceToWire, timeToWire } from "./wire.ts";

export type AccountEventType = "executionEvent" | "portfolioEvent" | "balanceEvent";
export const ACCOUNT_EVENT_TYPES: readonly AccountEventType[] = ["executionEvent", "portfolioEvent", "balanceEvent"];

export interface AccountEventPayload {
  readonly accountId: number;
  /** The journal sequence of the event; null for a live-only rejection of an order command. */
  readonly seq: number | null;
  readonly event: string;
  readonly time: string;
  readonly symbol?: string;
  readonly [field: string]: unknown;
}

export interface AccountBusMessage extends BusMessage {
  readonly type: AccountEventType;
  readonly payload: AccountEventPayload;
}

/** Resolves the symbol of an order or position the event does not name. */
export interface SymbolResolver {
  order(accountId: number, orderId: number): string | undefined | Promise<string | undefined>;
  position(accountId: number, positionId: number): string | undefined | Promise<string | undefined>;
}

interface Built {
  readonly accountId: number;
  readonly message: AccountBusMessage;
}

/**
 * The stops a deal set on its position, as the DEAL portfolioEvent shows them: an opening deal's, and a netting
 * increase's that carried its own (the position takes them; found by the audit of accounts of 7 December, when no
 * event said so). None when it set none.
 */
function stopsSetBy(effect: PositionEffect, instrument: InstrumentSpec): Record<string, number> {
  const stops: Record<string, number> = {};
  if (effect.kind !== "OPEN" && effect.kind !== "INCREASE") return stops;
  if (effect.sl !== null) stops.sl = priceToWire(effect.sl, instrument);
  if (effect.tp !== null) stops.tp = priceToWire(effect.tp, instrument);
  if (effect.kind === "OPEN" && effect.trailingDistance !== null)
    stops.trailingDistance = priceToWire(effect.trailingDistance, instrument);
  return stops;
}

function message(
  type: AccountEventType,
  accountId: number,
  seq: number | null,
  time: number,
  event: string,
  fields: Record<string, unknown>,
): Built {
  return {
    accountId,
    message: { type, seq: seq ?? undefined, payload: { accountId, seq, event, time: timeToWire(time), ...fields } },
  };
}

/**
 * The account events one journal record gives, in order. `symbols` resolves what the event does not
 * name (synchronously for live events; a replay may wait on the read models).
 */
export async function accountEventsOf(
  platform: Platform,
  record: JournalRecord,
  symbols: SymbolResolver,
): Promise<Built[]> {
  const { event, sequence } = record;
  switch (event.type) {
    case "OrderChanged":
      return buildWithSymbol(platform, event, sequence, await symbols.order(event.accountId, event.orderId));
    case "OrderStatusChanged":
      return buildWithSymbol(platform, event, sequence, await symbols.order(event.accountId, event.orderId));
    case "PositionChanged":
    case "PositionMarginChanged":
      return buildWithSymbol(platform, event, sequence, await symbols.position(event.accountId, event.positionId));
    default:
      return buildWithSymbol(platform, event, sequence, undefined);
  }
}

/** The same, synchronously: live events always resolve from the engine or the map of seen records. */
export function accountEventsOfSync(platform: Platform, record: JournalRecord, symbols: SyncResolver): Built[] {
  const { event, sequence } = record;
  switch (event.type) {
    case "OrderChanged":
    case "OrderStatusChanged":
      return buildWithSymbol(platform, event, sequence, symbols.order(event.accountId, event.orderId));
    case "PositionChanged":
    case "PositionMarginChanged":
      return buildWithSymbol(platform, event, sequence, symbols.position(event.accountId, event.positionId));
    default:
      return buildWithSymbol(platform, event, sequence, undefined);
  }
}

interface SyncResolver {
  order(accountId: number, orderId: number): string | undefined;
  position(accountId: number, positionId: number): string | undefined;
}

function currencyOf(platform: Platform, accountId: number) {
  return platform.engine.state.accounts.get(accountId)?.currency;
}

/** A price on the wire in the instrument's digits, or its points as they are when the symbol is unknown. */
function priceOrPoints(points: number | null, instrument: InstrumentSpec | undefined): number | null {
  return instrument ? optionalPriceToWire(points, instrument) : points;
}

/**
 * The position's lots after a deal, 0 once it closed it: an opening deal's own volume, else what the effect carries.
 * Null for an event journaled before 7 December 2026, whose effect did not carry it (a terminal could not tell from
 * the stream that a position closed: the audit of a terminal's journey of 7 December, sixth session).
 */
function positionVolumeAfter(event: DealExecutedEvent, instrument: InstrumentSpec): number | null {
  const effect = event.effect;
  const volume = effect.kind === "OPEN" ? event.deal.volume : effect.positionVolume;
  return volume === undefined ? null : lotsToWire(volume, instrument);
}

function buildWithSymbol(platform: Platform, event: EngineEvent, seq: number, symbol: string | undefined): Built[] {
  const instrument: InstrumentSpec | undefined = symbol === undefined ? undefined : platform.instruments.get(symbol);
  switch (event.type) {
    case "OrderAccepted": {
      const order = event.order;
      return [
        message("executionEvent", order.accountId, seq, event.time, "ORDER_ACCEPTED", {
          orderId: order.id,
          symbol: order.symbol,
          status: "PLACED",
          order: orderView(platform, order),
        }),
      ];
    }
    case "OrderStatusChanged":
      return [
        message("executionEvent", event.accountId, seq, event.time, "ORDER_STATUS", {
          orderId: event.orderId,
          ...(symbol === undefined ? {} : { symbol }),
          status: event.status,
          filledVolume: instrument ? lotsToWire(event.filledVolume, instrument) : event.filledVolume,
          // The order's own `statusReason` in REST: its `reason` says who made the order (CLIENT, STOP_LOSS…). Sent as
          // `reason` until the audit of a terminal's journey of 7 December (sixth session), which found a terminal
          // merging the two records mis-rendering a cancelled order.
          statusReason: event.reason,
        }),
      ];
    case "OrderChanged":
      return [
        message("executionEvent", event.accountId, seq, event.time, "ORDER_MODIFIED", {
          orderId: event.orderId,
          ...(symbol === undefined ? {} : { symbol }),
          price: priceOrPoints(event.price, instrument),
          stopLimitPrice: priceOrPoints(event.stopLimitPrice, instrument),
          sl: priceOrPoints(event.sl, instrument),
          tp: priceOrPoints(event.tp, instrument),
          trailingDistance: priceOrPoints(event.trailingDistance, instrument),
          expiration: optionalTimeToWire(event.expiration),
          triggered: event.triggered,
        }),
      ];
    case "DealExecuted": {
      const deal = event.deal;
      const account = platform.engine.state.accounts.get(deal.accountId);
      if (!account) return [];
      const dealInstrument = platform.instrument(deal.symbol);
      const balanceChange = deal.profit - deal.commission + deal.swap;
      return [
        message("executionEvent", deal.accountId, seq, event.time, "DEAL", {
          orderId: deal.orderId,
          symbol: deal.symbol,
          deal: dealView(platform, account, deal),
        }),
        message("portfolioEvent", deal.accountId, seq, event.time, "DEAL", {
          positionId: deal.positionId,
          symbol: deal.symbol,
          side: deal.side,
          entry: deal.entry,
          effect: event.effect.kind,
          volume: lotsToWire(deal.volume, dealInstrument),
          positionVolume: positionVolumeAfter(event, dealInstrument),
          price: priceToWire(deal.price, dealInstrument),
          balanceChange: moneyToWire(balanceChange, account.currency),
          ...stopsSetBy(event.effect, dealInstrument),
        }),
        // Seed 000's balance stream is every balance update: it told only balance operations, not a close's profit,
        // a commission or a swap (found by the audit of the stream of 7 December). No symbol, so a symbol filter
        // never hides one; none when the deal moves no money.
        ...(balanceChange === 0
          ? []
          : [
              message("balanceEvent", deal.accountId, seq, event.time, "DEAL", {
                dealId: deal.id,
                positionId: deal.positionId,
                amount: moneyToWire(balanceChange, account.currency),
              }),
            ]),
      ];
    }
    case "PositionChanged":
      return [
        message("portfolioEvent", event.accountId, seq, event.time, "POSITION_MODIFIED", {
          positionId: event.positionId,
          ...(symbol === undefined ? {} : { symbol }),
          sl: priceOrPoints(event.sl, instrument),
          tp: priceOrPoints(event.tp, instrument),
          trailingDistance: priceOrPoints(event.trailingDistance, instrument),
          reason: event.reason,
        }),
      ];
    case "BalanceOperation": {
      const currency = currencyOf(platform, event.accountId);
      if (!currency) return [];
      const amount = moneyToWire(event.amount, currency);
      const credit = event.kind === "CREDIT";
      return [
        message("balanceEvent", event.accountId, seq, event.time, "BALANCE_OPERATION", {
          operationId: event.operationId,
          kind: event.kind,
          amount,
          comment: event.comment,
        }),
        message("portfolioEvent", event.accountId, seq, event.time, "BALANCE", {
          operationId: event.operationId,
          kind: event.kind,
          amount,
          balanceChange: credit ? 0 : amount,
          creditChange: credit ? amount : 0,
        }),
      ];
    }
    case "SwapsDeferred":
      // Moves no money: the charge is told when it comes.
      return [];
    case "Rollover":
    case "DeferredSwapsCharged": {
      const built: Built[] = [];
      for (const charge of event.charges) {
        const currency = currencyOf(platform, charge.accountId);
        if (!currency) continue;
        built.push(
          message("portfolioEvent", charge.accountId, seq, event.time, "SWAP", {
            positionId: charge.positionId,
            amount: moneyToWire(charge.amount, currency),
          }),
        );
      }
      return built;
    }
    case "MarginCallEntered":
    case "MarginCallCleared":
    case "StopOut": {
      const currency = currencyOf(platform, event.accountId);
      if (!currency) return [];
      const name =
        event.type === "StopOut"
          ? "STOP_OUT"
          : event.type === "MarginCallEntered"
            ? "MARGIN_CALL_ENTERED"
            : "MARGIN_CALL_CLEARED";
      return [
        message("portfolioEvent", event.accountId, seq, event.time, name, {
          equity: moneyToWire(event.equity, currency),
          margin: moneyToWire(event.margin, currency),
          ...(event.type === "StopOut" ? { positionId: event.positionId } : {}),
        }),
      ];
    }
    case "AccountChanged":
      return [
        message("portfolioEvent", event.accountId, seq, event.time, "ACCOUNT_CHANGED", {
          leverage: event.leverage,
          group: event.group,
          tradingEnabled: event.tradingEnabled,
        }),
      ];
    case "PositionMarginChanged": {
      const currency = currencyOf(platform, event.accountId);
      if (!currency) return [];
      return [
        message("portfolioEvent", event.accountId, seq, event.time, "POSITION_MARGIN_CHANGED", {
          positionId: event.positionId,
          ...(symbol === undefined ? {} : { symbol }),
          margin: moneyToWire(event.margin, currency),
        }),
      ];
    }
    case "AccountOpened":
      return [];
  }
}

/** Terminal order statuses: the order leaves the engine's working set. */
const FINISHED = new Set(["FILLED", "CANCELLED", "EXPIRED", "REJECTED"]);

/**
 * Publishes the engine's events on the account topics, in journal order, and resolves symbols for
 * replays. One per platform (`accountEventsOf(platform)` below).
 */
export class AccountEvents {
  /** Orders and positions held at start or seen since, that may have left the engine's state: id → symbol. */
  private readonly orderSymbols = new Map<number, string>();
  private readonly positionSymbols = new Map<number, string>();
  private started = false;

  constructor(private readonly platform: Platform) {}

  static for(platform: Platform): AccountEvents {
    let service = registry.get(platform);
    if (!service) registry.set(platform, (service = new AccountEvents(platform)));
    return service;
  }

  /** Follows the engine from now on. Call once the engine has recovered. */
  start(): void {
    if (this.started) return;
    this.started = true;
    // What the recovered engine holds, too: a working order is gone from its state by the time its fill is published,
    // and one placed before the restart was told without a symbol, its volume in raw steps (found by the audit of
    // races of 7 December).
    const state = this.platform.engine.state;
    for (const order of state.orders.values()) this.orderSymbols.set(order.id, order.symbol);
    for (const position of state.positions.values()) this.positionSymbols.set(position.id, position.symbol);
    this.platform.onEvents((records) => this.publish(records));
  }

  private readonly liveResolver: SyncResolver = {
    order: (_accountId, orderId) =>
      this.platform.engine.state.orders.get(orderId)?.symbol ?? this.orderSymbols.get(orderId),
    position: (_accountId, positionId) =>
      this.platform.engine.state.positions.get(positionId)?.symbol ?? this.positionSymbols.get(positionId),
  };

  private publish(records: readonly JournalRecord[]): void {
    const bus = this.platform.bus;
    // Remember what this batch names first: an order accepted and filled in one command is gone from the
    // engine's state by now.
    for (const { event } of records) {
      if (event.type === "OrderAccepted") this.orderSymbols.set(event.order.id, event.order.symbol);
      else if (event.type === "DealExecuted") this.positionSymbols.set(event.deal.positionId, event.deal.symbol);
    }
    for (const record of records) {
      // Most accounts have no socket listening: skip building their messages (a rollover names many accounts).
      const single = eventAccountId(record.event);
      if (single !== null && !bus.hasSubscribers(BusTopics.account(single))) continue;
      for (const { accountId, message } of accountEventsOfSync(this.platform, record, this.liveResolver)) {
        const topic = BusTopics.account(accountId);
        if (bus.hasSubscribers(topic)) bus.publish(topic, message);
      }
    }
    // Forget what has left the engine (bounded by the working orders and open positions).
    const state = this.platform.engine.state;
    for (const { event } of records) {
      if (event.type === "OrderStatusChanged" && FINISHED.has(event.status) && !state.orders.has(event.orderId))
        this.orderSymbols.delete(event.orderId);
      else if (event.type === "DealExecuted" && !state.positions.has(event.deal.positionId))
        this.positionSymbols.delete(event.deal.positionId);
    }
  }

  /**
   * A resolver for a replay: the engine, what the replay itself has seen, then the read models (an
   * order or position finished before the replay's window).
   */
  replayResolver(): SymbolResolver & { note(record: JournalRecord): void } {
    const platform = this.platform;
    const orders = new Map<number, string>();
    const positions = new Map<number, string>();
    return {
      note(record) {
        const event = record.event;
        if (event.type === "OrderAccepted") orders.set(event.order.id, event.order.symbol);
        else if (event.type === "DealExecuted") positions.set(event.deal.positionId, event.deal.symbol);
      },
      order: async (accountId, orderId) => {
        const known = platform.engine.state.orders.get(orderId)?.symbol ?? orders.get(orderId);
        if (known !== undefined) return known;
        return (await orderHistoryRow(platform, accountId, orderId))?.symbol;
      },
      position: async (accountId, positionId) => {
        const known = platform.engine.state.positions.get(positionId)?.symbol ?? positions.get(positionId);
        if (known !== undefined) return known;
        const page = await platform.readModels.positionHistory({
          accountId,
          cursor: encodeCursor(positionId - 1, "asc"),
          limit: 1,
        });
        const row = page.rows[0];
        return row && row.id === positionId ? row.symbol : undefined;
      },
    };
  }
}

const registry = new WeakMap<Platform, AccountEvents>();

/**
 * Publishes the live-only `executionEvent` of a refused order command (no journal event, `seq: null`).
 * Only trading-rule rejections (the engine's codes) are published; an unavailable engine is not an
 * execution.
 */
export function publishRejectedOrder(platform: Platform, command: UntimedCommand, error: ApiError): void {
  if (command.kind !== "placeOrder") return;
  if (error.code === "ENGINE_UNAVAILABLE" || error.code === "OUTCOME_UNKNOWN" || error.code === "ENGINE_OVERLOADED")
    return;
  const topic = BusTopics.account(command.accountId);
  if (!platform.bus.hasSubscribers(topic)) return;
  const order = command as Omit<PlaceOrderCommand, "time">;
  const instrument = platform.instruments.get(order.symbol);
  const built = message("executionEvent", order.accountId, null, platform.clock.now(), "ORDER_REJECTED", {
    orderId: null,
    symbol: order.symbol,
    side: order.side,
    type: order.type,
    volume: instrument ? lotsToWire(order.volume, instrument) : order.volume,
    status: "REJECTED",
    statusReason: error.code,
    message: error.message,
    clientOrderId: order.clientOrderId ?? null,
  });
  platform.bus.publish(topic, built.message);
}
