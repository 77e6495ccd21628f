/**
 * Records, commands and events of the trading core. Every number is an integer:
 * prices in points, volumes in volume units, money in minor units of the account currency,
 * times in milliseconds since the epoch (UTC), supplied by the caller.
 */
import type { RolloverTime } from "./rollover-calendar.ts";
import type { AccountCurrency, InstrumentSpec } from "./instruments.ts";
import type { RejectionCode } from "./rejections.ts";

export type Side = "BUY" | "SELL";
export type PositionMode = "HEDGING" | "NETTING";
export type OrderType = "MARKET" | "LIMIT" | "STOP" | "STOP_LIMIT";
export type TimeInForce = "GTC" | "DAY" | "GTD" | "IOC" | "FOK";
export type OrderStatus = "PLACED" | "PARTIALLY_FILLED" | "FILLED" | "CANCELLED" | "EXPIRED" | "REJECTED";
/** Why an order or deal exists: the client, or the server acting for the account. */
/**
 * Who made an order (and its deals): the client; the broker's dealing desk (`DEALER`, MetaTrader 5's
 * ORDER_REASON_DEALER: a close the back office made for the client); or the server, for a stop loss, take profit or
 * stop-out.
 */
export type OrderReason = "CLIENT" | "DEALER" | "STOP_LOSS" | "TAKE_PROFIT" | "STOP_OUT";
export type DealEntry = "IN" | "OUT";
export type BalanceOperationKind = "DEPOSIT" | "WITHDRAWAL" | "CREDIT" | "CORRECTION";

/** One level of a book side: price in points, volume in volume units available at it. */
export interface BookLevel {
  readonly price: number;
  readonly volume: number;
}

/** Margin-call and stop-out levels in percent of margin level (equity / margin × 100). */
export interface AccountGroup {
  readonly name: string;
  readonly marginCallLevelPercent: number;
  readonly stopOutLevelPercent: number;
}

export interface LedgerTotals {
  deposits: number;
  withdrawals: number;
  realisedProfit: number;
  commissions: number;
  swaps: number;
  corrections: number;
}

export interface Account {
  readonly id: number;
  readonly userId: string;
  readonly currency: AccountCurrency;
  leverage: number;
  readonly mode: PositionMode;
  group: string;
  balance: number;
  credit: number;
  ledger: LedgerTotals;
  tradingEnabled: boolean;
  marginCall: boolean;
  readonly createdAt: number;
}

export interface Order {
  readonly id: number;
  readonly accountId: number;
  readonly symbol: string;
  readonly side: Side;
  readonly type: OrderType;
  readonly volume: number;
  filledVolume: number;
  /** Limit or stop price; for MARKET the requested price that bounds slippage with `deviation`, or null. */
  price: number | null;
  /** STOP_LIMIT: the limit price of the order placed when `price` is reached. */
  stopLimitPrice: number | null;
  sl: number | null;
  tp: number | null;
  trailingDistance: number | null;
  readonly timeInForce: TimeInForce;
  expiration: number | null;
  readonly deviation: number | null;
  readonly clientOrderId: string | null;
  readonly comment: string;
  readonly magic: number;
  status: OrderStatus;
  /** STOP and STOP_LIMIT: the stop price was reached (a STOP then works as market, a STOP_LIMIT as limit). */
  triggered: boolean;
  /** Closing orders: the position they close (hedging close by ticket, SL/TP, stop-out). */
  readonly closePositionId: number | null;
  readonly reason: OrderReason;
  readonly createdAt: number;
  updatedAt: number;
  /** The last rejection or cancellation cause, from the registry. */
  statusReason: RejectionCode | "CLIENT_CANCEL" | "IOC_REMAINDER" | "EXPIRED" | null;
}

export interface Deal {
  readonly id: number;
  readonly orderId: number;
  readonly positionId: number;
  readonly accountId: number;
  readonly symbol: string;
  readonly side: Side;
  readonly entry: DealEntry;
  readonly volume: number;
  /** Always a price the quote offered at the time (one book level). */
  readonly price: number;
  /** Realised profit in account minor units (OUT deals). */
  readonly profit: number;
  /** Commission charged in account minor units (≥ 0, subtracted from the balance). */
  readonly commission: number;
  /** Accumulated swap realised by this deal (OUT deals). */
  readonly swap: number;
  readonly reason: OrderReason;
  readonly time: number;
}

export interface Position {
  readonly id: number;
  readonly accountId: number;
  readonly symbol: string;
  readonly side: Side;
  volume: number;
  /** Σ price × volume of the volume still open, in points × volume units: the exact open price is openCost / volume. */
  openCost: number;
  /** Margin held for this position in account minor units. */
  margin: number;
  /** Swap accrued and not yet realised, account minor units. */
  swap: number;
  /**
   * Commission charged so far on its deals, the entry deals and the partial closes', account minor units (informational:
   * already in the balance).
   */
  commission: number;
  sl: number | null;
  tp: number | null;
  trailingDistance: number | null;
  readonly comment: string;
  readonly magic: number;
  readonly openOrderId: number;
  readonly openTime: number;
  updatedAt: number;
}

// ---------------------------------------------------------------------------------------------
// Commands: everything that can change state. Each carries the time it happens at.

interface CommandBase {
  readonly time: number;
}

export interface OpenAccountCommand extends CommandBase {
  readonly kind: "openAccount";
  /** The account login; when omitted the engine assigns the next one. */
  readonly accountId?: number;
  readonly userId: string;
  readonly currency: string;
  readonly leverage: number;
  readonly mode: PositionMode;
  readonly group?: string;
  /**
   * A first deposit, in the same command: the account is opened funded or not at all. A demo sign-up opened the
   * account and funded it in two commands, and a failed second left it open and empty (found by the audit of races
   * of 7 December).
   */
  readonly deposit?: { readonly amount: number; readonly comment?: string };
}

export interface BalanceCommand extends CommandBase {
  readonly kind: "deposit" | "withdraw" | "credit";
  readonly accountId: number;
  /** Minor units; positive for deposit and withdraw, signed for credit. */
  readonly amount: number;
  readonly comment?: string;
  /**
   * The back office's id of the operation (a payment's), unique per account: a retry with it answers the first
   * operation and moves no money again.
   */
  readonly reference?: string | null;
}

export interface ChangeAccountCommand extends CommandBase {
  readonly kind: "changeAccount";
  readonly accountId: number;
  readonly leverage?: number;
  readonly group?: string;
  readonly tradingEnabled?: boolean;
}

export interface PlaceOrderCommand extends CommandBase {
  readonly kind: "placeOrder";
  readonly accountId: number;
  readonly symbol: string;
  readonly side: Side;
  readonly type: OrderType;
  readonly volume: number;
  readonly price?: number | null;
  readonly stopLimitPrice?: number | null;
  readonly sl?: number | null;
  readonly tp?: number | null;
  readonly trailingDistance?: number | null;
  readonly timeInForce?: TimeInForce;
  readonly expiration?: number | null;
  readonly deviation?: number | null;
  readonly clientOrderId?: string | null;
  readonly comment?: string;
  readonly magic?: number;
}

export interface ModifyOrderCommand extends CommandBase {
  readonly kind: "modifyOrder";
  readonly accountId: number;
  readonly orderId: number;
  readonly price?: number;
  readonly stopLimitPrice?: number;
  readonly sl?: number | null;
  readonly tp?: number | null;
  readonly trailingDistance?: number | null;
  readonly expiration?: number | null;
}

export interface CancelOrderCommand extends CommandBase {
  readonly kind: "cancelOrder";
  readonly accountId: number;
  readonly orderId: number;
}

export interface ModifyPositionCommand extends CommandBase {
  readonly kind: "modifyPosition";
  readonly accountId: number;
  readonly positionId: number;
  readonly sl?: number | null;
  readonly tp?: number | null;
  readonly trailingDistance?: number | null;
}

export interface ClosePositionCommand extends CommandBase {
  readonly kind: "closePosition";
  readonly accountId: number;
  readonly positionId: number;
  /** Volume units to close; the whole position when omitted. */
  readonly volume?: number;
  readonly comment?: string;
  /**
   * The client's id of the close, unique per account among orders and closes alike: a retry answers the first
   * close and closes nothing again.
   */
  readonly clientOrderId?: string | null;
  /**
   * Who closes: the client (the default), or the broker's dealing desk (`DEALER`), whose close is recorded so on its
   * order and deal. The same rules hold for both.
   */
  readonly initiator?: "CLIENT" | "DEALER";
}

export interface CloseAllPositionsCommand extends CommandBase {
  readonly kind: "closeAllPositions";
  readonly accountId: number;
  readonly symbol?: string;
}

export interface TickCommand extends CommandBase {
  readonly kind: "tick";
  readonly symbol: string;
  readonly bid: number;
  readonly ask: number;
  /** Book levels, best first. When omitted the top of book has unlimited volume. */
  readonly bids?: readonly BookLevel[];
  readonly asks?: readonly BookLevel[];
}

/** Moves the clock without a quote: expirations, rollovers (swaps). */
export interface AdvanceTimeCommand extends CommandBase {
  readonly kind: "advanceTime";
}

export type Command =
  | OpenAccountCommand
  | BalanceCommand
  | ChangeAccountCommand
  | PlaceOrderCommand
  | ModifyOrderCommand
  | CancelOrderCommand
  | ModifyPositionCommand
  | ClosePositionCommand
  | CloseAllPositionsCommand
  | TickCommand
  | AdvanceTimeCommand;

// ---------------------------------------------------------------------------------------------
// Events: the only way state changes. Each is complete enough to fold without market data.

interface EventBase {
  readonly time: number;
}

export interface AccountOpenedEvent extends EventBase {
  readonly type: "AccountOpened";
  readonly accountId: number;
  readonly userId: string;
  readonly currency: AccountCurrency;
  readonly leverage: number;
  readonly mode: PositionMode;
  readonly group: string;
}

export interface AccountChangedEvent extends EventBase {
  readonly type: "AccountChanged";
  readonly accountId: number;
  readonly leverage: number;
  readonly group: string;
  readonly tradingEnabled: boolean;
}

/**
 * A position's margin set anew: a leverage change rescales the margin of the account's open positions whose margin
 * depends on leverage (FOREX and CFD_LEVERAGE), as MetaTrader 5 margins them at the account's leverage. `margin` is
 * the position's margin after, in the account currency's minor units.
 */
export interface PositionMarginChangedEvent extends EventBase {
  readonly type: "PositionMarginChanged";
  readonly accountId: number;
  readonly positionId: number;
  readonly margin: number;
}

export interface BalanceOperationEvent extends EventBase {
  readonly type: "BalanceOperation";
  readonly accountId: number;
  readonly operationId: number;
  readonly kind: BalanceOperationKind;
  /** Signed change of the balance (DEPOSIT, WITHDRAWAL, CORRECTION) or of the credit (CREDIT). */
  readonly amount: number;
  readonly comment: string;
  /** The command's reference, when it had one (absent otherwise, as in every event before references). */
  readonly reference?: string;
}

export interface OrderAcceptedEvent extends EventBase {
  readonly type: "OrderAccepted";
  readonly order: Readonly<Order>;
}

export interface OrderChangedEvent extends EventBase {
  readonly type: "OrderChanged";
  readonly accountId: number;
  readonly orderId: number;
  readonly price: number | null;
  readonly stopLimitPrice: number | null;
  readonly sl: number | null;
  readonly tp: number | null;
  readonly trailingDistance: number | null;
  readonly expiration: number | null;
  readonly triggered: boolean;
}

export interface OrderStatusChangedEvent extends EventBase {
  readonly type: "OrderStatusChanged";
  readonly accountId: number;
  readonly orderId: number;
  readonly status: OrderStatus;
  readonly filledVolume: number;
  readonly reason: Order["statusReason"];
}

/** What a deal does to its position; computed when the deal is decided, applied as is when folded. */
export type PositionEffect =
  | {
      readonly kind: "OPEN";
      readonly margin: number;
      readonly sl: number | null;
      readonly tp: number | null;
      readonly trailingDistance: number | null;
      readonly comment: string;
      readonly magic: number;
    }
  | {
      readonly kind: "INCREASE";
      readonly margin: number;
      readonly sl: number | null;
      readonly tp: number | null;
      /** The position's volume after the deal. Absent in events journaled before 7 December 2026. */
      readonly positionVolume?: number;
    }
  | {
      readonly kind: "DECREASE";
      readonly closedCost: number;
      readonly marginReleased: number;
      /** The position's volume after the deal, 0 once it is closed. Absent in events journaled before 7 December 2026. */
      readonly positionVolume?: number;
    };

export interface DealExecutedEvent extends EventBase {
  readonly type: "DealExecuted";
  readonly deal: Deal;
  readonly effect: PositionEffect;
}

export interface PositionChangedEvent extends EventBase {
  readonly type: "PositionChanged";
  readonly accountId: number;
  readonly positionId: number;
  readonly sl: number | null;
  readonly tp: number | null;
  readonly trailingDistance: number | null;
  readonly reason: "CLIENT" | "TRAILING";
}

export interface RolloverEvent extends EventBase {
  readonly type: "Rollover";
  /** The rollover instant this event accounts for. */
  readonly rolloverTime: number;
  /** 0 on weekends, 3 on the triple-swap day, else 1. */
  readonly multiplier: number;
  readonly charges: readonly SwapCharge[];
}

/** A swap charged to (negative) or paid on (positive) an open position, in account minor units. */
export interface SwapCharge {
  readonly accountId: number;
  readonly positionId: number;
  readonly amount: number;
}

/**
 * Positions a rollover could not charge because a quote its conversion needs was missing (after a restart
 * across the rollover, before that quote's first tick): each owes `days` more days of swap, charged by a
 * `DeferredSwapsCharged` on the first tick that brings the quote. Emitted right after its `Rollover`.
 */
export interface SwapsDeferredEvent extends EventBase {
  readonly type: "SwapsDeferred";
  readonly rolloverTime: number;
  readonly deferrals: readonly { readonly accountId: number; readonly positionId: number; readonly days: number }[];
}

/** Deferred swaps charged: each charge covers every day its position owed (`SwapsDeferred`), at the current rate. */
export interface DeferredSwapsChargedEvent extends EventBase {
  readonly type: "DeferredSwapsCharged";
  readonly charges: readonly SwapCharge[];
}

export interface MarginCallEvent extends EventBase {
  readonly type: "MarginCallEntered" | "MarginCallCleared";
  readonly accountId: number;
  readonly equity: number;
  readonly margin: number;
}

export interface StopOutEvent extends EventBase {
  readonly type: "StopOut";
  readonly accountId: number;
  readonly equity: number;
  readonly margin: number;
  /** The position the stop-out closes next (the most losing one). */
  readonly positionId: number;
}

export type EngineEvent =
  | AccountOpenedEvent
  | AccountChangedEvent
  | BalanceOperationEvent
  | OrderAcceptedEvent
  | OrderChangedEvent
  | OrderStatusChangedEvent
  | DealExecutedEvent
  | PositionChangedEvent
  | PositionMarginChangedEvent
  | RolloverEvent
  | SwapsDeferredEvent
  | DeferredSwapsChargedEvent
  | MarginCallEvent
  | StopOutEvent;

export type EngineEventType = EngineEvent["type"];

// ---------------------------------------------------------------------------------------------
// Configuration: the instrument table, groups and calendar rules the engine is built with.

export interface EngineConfig {
  readonly instruments: readonly InstrumentSpec[];
  readonly groups: readonly AccountGroup[];
  readonly defaultGroup: string;
  /** The daily rollover (swap) time, a clock time in a zone (rollover-calendar.ts). DAY orders expire at it too. */
  readonly rollover: RolloverTime;
  /** Weekday (0 = Sunday) whose rollover charges three days of swap. */
  readonly tripleSwapWeekday: number;
  readonly leverageMin: number;
  readonly leverageMax: number;
  /** Bound on working (pending) orders per account. */
  readonly maxWorkingOrdersPerAccount: number;
  /**
   * Bound on a hedging account's open positions and working orders together (each order may open a position):
   * every tick of a symbol values each of an account's positions, so one account's thousands slowed every tick.
   */
  readonly maxPositionsAndOrdersPerAccount: number;
  /**
   * Bound on remembered client order ids per account (oldest forgotten first). A state restored from a snapshot taken
   * under a larger bound is cut to it (`TradingEngine.boundMemories`), as a replay under this one would have kept it.
   */
  readonly clientOrderIdMemoryPerAccount: number;
  /**
   * The oldest a quote may be, in milliseconds, for an order, a close or a stops change to be decided at it, and for
   * a stop-out to close its position; null for no limit. An open market whose feed has gone silent keeps its last
   * quote: without a limit, clients traded and stop-outs closed at a price hours old.
   */
  readonly maxQuoteAgeMs: number | null;
}
