/**
 * What the Automation API (seed 003) shows: its own field names (ticket, type "buy"/"sell", order types
 * 2-5 with their MetaTrader meaning, volume in lots), built from the Client API's views where the fields
 * are the same (trading-views.ts, views.ts), so a number is converted once, in one place (wire.ts).
 *
 * Envelope: `{"success": true, "data": ...}` or `{"success": false, "error": "<message>", "code": "<CODE>"}`:
 * `error` is the message for people, as seed 003's example (`"Insufficient margin"`), and `code` the
 * stable code of the error registry (errors.ts) that programs switch on.
 */
import type { Account, Deal, InstrumentSpec, OrderType, Position } from "@bourse/core";
import type { LedgerRow, OrderHistoryRow } from "@bourse/store";
import { Type, type Static, type TSchema } from "@sinclair/typebox";
import { marketStatus, specificationFields, specificationProperties, type MarketStatus } from "./market-views.ts";
import type { Platform } from "./platform.ts";
import { ErrorCode, Nullable } from "./schemas.ts";
import { dealView, orderCmd, orderHistoryView, positionView } from "./trading-views.ts";
import { accountMoneyView } from "./views.ts";
import { moneyToWire, optionalPriceToWire, priceToWire, timeToWire } from "./wire.ts";

const Time = Type.String({ format: "date-time" });

// ---------------------------------------------------------------------------------------------
// Envelope

export function Success<Schema extends TSchema>(schema: Schema) {
  return Type.Object({ success: Type.Literal(true), data: schema });
}

/** The statuses seed 003 lists (and 429); any other client error is answered as 400 with its code. */
export const AUTOMATION_STATUSES: ReadonlySet<number> = new Set([400, 401, 403, 404, 429, 500, 503]);

export const AutomationErrorSchema = Type.Object(
  {
    success: Type.Literal(false),
    error: Type.String({ description: "What went wrong, for people (seed 003: e.g. `Insufficient margin`)" }),
    code: ErrorCode,
  },
  {
    title: "AutomationError",
    description:
      `An Automation API error. Its statuses are seed 003's and 429 (${[...AUTOMATION_STATUSES].join(", ")}): ` +
      "an error the Client API answers with another status (409 DUPLICATE_CLIENT_ORDER_ID, 413 PAYLOAD_TOO_LARGE, " +
      "415 UNSUPPORTED_MEDIA_TYPE…) is answered 400 here, with the same registry code in `code`. 403 is the key's " +
      "own refusal only (INVALID_API_KEY, INSUFFICIENT_SCOPE); a disabled account (ACCOUNT_DISABLED) is 400.",
  },
);
export type AutomationError = Static<typeof AutomationErrorSchema>;

/** The error statuses every Automation API route can answer (seed 003's table, plus 429). */
export const automationErrors = {
  400: AutomationErrorSchema,
  401: AutomationErrorSchema,
  403: AutomationErrorSchema,
  404: AutomationErrorSchema,
  429: AutomationErrorSchema,
  503: AutomationErrorSchema,
} as const;

// ---------------------------------------------------------------------------------------------
// Order types (seed 003, MetaTrader's ORDER_TYPE_*)

/**
 * The order type code: seed 003's 0 Buy, 1 Sell, 2 Buy Limit, 3 Sell Limit, 4 Buy Stop, 5 Sell Stop (the
 * Client API's `cmd`, trading-views.ts), and MetaTrader 5's 6 Buy Stop Limit, 7 Sell Stop Limit for the
 * stop-limit orders placed through the Client API.
 */
export function orderTypeCode(side: "BUY" | "SELL", type: OrderType): number {
  return orderCmd(side, type) ?? (side === "BUY" ? 6 : 7);
}

/**
 * A commission as the Automation API writes it: negative, as MetaTrader and cTrader write a charge, so a bot's
 * `profit + swap + commission` is the net, as swap already reads. The Client API shows the charge as a positive amount
 * (its ledger's `commissions`). Found by the audit of the Automation API of 7 December (sixth session).
 */
function asCharge(commission: number): number {
  return commission === 0 ? 0 : -commission;
}

const sideName = (side: "BUY" | "SELL") => (side === "BUY" ? ("buy" as const) : ("sell" as const));
const SideSchema = Type.Union([Type.Literal("buy"), Type.Literal("sell")]);

// ---------------------------------------------------------------------------------------------
// Account

export const AutomationAccountSchema = Type.Object({
  login: Type.Integer({ description: "The account's number (its id)" }),
  currency: Type.String(),
  leverage: Type.Integer({ description: "1:leverage" }),
  mode: Type.Union([Type.Literal("hedging"), Type.Literal("netting")]),
  balance: Type.Number(),
  credit: Type.Number(),
  equity: Type.Number({ description: "balance + credit + floating profit (swaps included)" }),
  margin: Type.Number(),
  freeMargin: Type.Number(),
  marginLevel: Nullable(Type.Number(), "Percent, 2 decimals; null without margin in use"),
  profit: Type.Number({ description: "Floating profit of the open positions, swaps included" }),
});
export type AutomationAccount = Static<typeof AutomationAccountSchema>;

export function automationAccountView(platform: Platform, account: Account): AutomationAccount {
  return {
    login: account.id,
    currency: account.currency,
    leverage: account.leverage,
    mode: account.mode === "HEDGING" ? "hedging" : "netting",
    ...accountMoneyView(platform, account),
  };
}

// ---------------------------------------------------------------------------------------------
// Positions

export const AutomationPositionSchema = Type.Object({
  ticket: Type.Integer({ description: "The position's ticket" }),
  symbol: Type.String(),
  type: SideSchema,
  volume: Type.Number({ description: "Lots open" }),
  openPrice: Type.Number({ description: "Volume-weighted open price" }),
  currentPrice: Nullable(Type.Number(), "The price it would close at: bid for buy, ask for sell"),
  sl: Nullable(Type.Number()),
  tp: Nullable(Type.Number()),
  profit: Type.Number({ description: "Floating profit at currentPrice, account currency (swap apart)" }),
  swap: Type.Number({ description: "Swap accrued, account currency" }),
  commission: Type.Number({
    description:
      "Commission charged so far (on opening and on each partial close), account currency, negative as MetaTrader " +
      "writes a charge: profit + swap + commission is the position's net",
  }),
  openTime: Time,
  comment: Type.String(),
  magic: Type.Integer(),
});
export type AutomationPosition = Static<typeof AutomationPositionSchema>;

export function automationPositionView(
  platform: Platform,
  account: Account,
  position: Readonly<Position>,
): AutomationPosition {
  const view = positionView(platform, account, position);
  return {
    ticket: view.id,
    symbol: view.symbol,
    type: sideName(view.side),
    volume: view.volume,
    openPrice: view.openPrice,
    currentPrice: view.currentPrice,
    sl: view.sl,
    tp: view.tp,
    profit: view.profit,
    swap: view.swap,
    commission: asCharge(view.commission),
    openTime: view.openTime,
    comment: view.comment,
    magic: view.magic,
  };
}

// ---------------------------------------------------------------------------------------------
// Orders

const OrderStatusSchema = Type.Union(
  ["placed", "partially_filled", "filled", "cancelled", "expired", "rejected"].map((value) => Type.Literal(value)),
);

export const AutomationOrderSchema = Type.Object({
  ticket: Type.Integer({ description: "The order's ticket" }),
  symbol: Type.String(),
  type: Type.Integer({
    minimum: 0,
    maximum: 7,
    description:
      "0 Buy, 1 Sell, 2 Buy Limit, 3 Sell Limit, 4 Buy Stop, 5 Sell Stop (6 Buy Stop Limit, 7 Sell Stop Limit: " +
      "placed through the Client API)",
  }),
  volume: Type.Number({ description: "Lots" }),
  filledVolume: Type.Number({ description: "Lots filled so far" }),
  price: Nullable(Type.Number(), "The limit or stop price"),
  stopLimitPrice: Nullable(Type.Number(), "Types 6 and 7: the limit price placed once the stop is reached"),
  currentPrice: Nullable(Type.Number(), "The price the order triggers on: ask for buy types, bid for sell types"),
  sl: Nullable(Type.Number()),
  tp: Nullable(Type.Number()),
  expiration: Nullable(Time, "null: good till cancelled"),
  status: OrderStatusSchema,
  openTime: Time,
  comment: Type.String(),
  magic: Type.Integer(),
});
export type AutomationOrder = Static<typeof AutomationOrderSchema>;

/** An order as the Automation API shows it: a working one from the engine, a finished one from the order history. */
export function automationOrderView(platform: Platform, order: OrderHistoryRow): AutomationOrder {
  const view = orderHistoryView(platform, order);
  const quote = platform.engine.quote(order.symbol);
  const current = quote ? (order.side === "BUY" ? quote.ask : quote.bid) : null;
  return {
    ticket: view.id,
    symbol: view.symbol,
    type: orderTypeCode(order.side, order.type),
    volume: view.volume,
    filledVolume: view.filledVolume,
    price: view.price,
    stopLimitPrice: view.stopLimitPrice,
    currentPrice: optionalPriceToWire(current, platform.instrument(order.symbol)),
    sl: view.sl,
    tp: view.tp,
    expiration: view.expiration,
    status: view.status.toLowerCase() as AutomationOrder["status"],
    openTime: view.createdAt,
    comment: view.comment,
    magic: view.magic,
  };
}

// ---------------------------------------------------------------------------------------------
// History: deals and balance operations

export const AutomationDealSchema = Type.Object({
  ticket: Type.Integer({ description: "The deal's ticket" }),
  order: Type.Integer({ description: "The order that made it" }),
  position: Type.Integer({ description: "The position it opened, changed or closed" }),
  symbol: Type.String(),
  type: SideSchema,
  entry: Type.Union([Type.Literal("in"), Type.Literal("out")], {
    description: "in opens or increases a position, out decreases or closes it",
  }),
  volume: Type.Number({ description: "Lots" }),
  price: Type.Number(),
  profit: Type.Number({ description: "Realised profit (out deals), account currency" }),
  commission: Type.Number({
    description:
      "Commission charged, account currency, negative as MetaTrader writes a charge: profit + swap + commission is " +
      "what the deal moved the balance by",
  }),
  swap: Type.Number({ description: "Swap realised, account currency" }),
  reason: Type.Union(
    ["client", "dealer", "stop_loss", "take_profit", "stop_out"].map((value) => Type.Literal(value)),
    {
      description:
        "client, the broker's dealing desk (dealer: a close made for the client), or the server for a stop loss, " +
        "take profit or stop-out",
    },
  ),
  time: Time,
});
export type AutomationDeal = Static<typeof AutomationDealSchema>;

export function automationDealView(platform: Platform, account: Account, deal: Deal): AutomationDeal {
  const view = dealView(platform, account, deal);
  return {
    ticket: view.id,
    order: view.orderId,
    position: view.positionId,
    symbol: view.symbol,
    type: sideName(view.side),
    entry: view.entry === "IN" ? "in" : "out",
    volume: view.volume,
    price: view.price,
    profit: view.profit,
    commission: asCharge(view.commission),
    swap: view.swap,
    reason: view.reason.toLowerCase() as AutomationDeal["reason"],
    time: view.time,
  };
}

/** Ledger kinds that are balance operations (the others are parts of deals, shown with the deals). */
export const BALANCE_OPERATION_KINDS: ReadonlySet<string> = new Set(["DEPOSIT", "WITHDRAWAL", "CREDIT", "CORRECTION"]);

export const AutomationOperationSchema = Type.Object({
  ticket: Type.Integer({ description: "The ledger row's id: unique, increasing in the order of the operations" }),
  type: Type.Union(["deposit", "withdrawal", "credit", "correction"].map((value) => Type.Literal(value))),
  amount: Type.Number({ description: "Signed change of the balance (of the credit for credit), account currency" }),
  balance: Type.Number({ description: "The balance after the operation" }),
  credit: Type.Number({ description: "The credit after the operation" }),
  comment: Type.String(),
  time: Time,
});
export type AutomationOperation = Static<typeof AutomationOperationSchema>;

export function automationOperationView(account: Account, row: LedgerRow): AutomationOperation {
  return {
    ticket: row.id,
    type: row.kind.toLowerCase() as AutomationOperation["type"],
    amount: moneyToWire(row.amount, account.currency),
    balance: moneyToWire(row.balanceAfter, account.currency),
    credit: moneyToWire(row.creditAfter, account.currency),
    comment: row.comment,
    time: timeToWire(row.time),
  };
}

// ---------------------------------------------------------------------------------------------
// Market data

const StatusSchema = Type.Union(
  ["open", "close_only", "closed", "disabled"].map((value) => Type.Literal(value)),
  { description: "open: trading now; close_only: closing only; closed: outside the session; disabled" },
);
type SymbolStatus = Static<typeof StatusSchema>;

/** The market status (market-views.ts) in seed 003's lower case. */
const statusName = (status: MarketStatus) => status.toLowerCase() as SymbolStatus;

export function symbolStatus(instrument: InstrumentSpec, now: number): SymbolStatus {
  return statusName(marketStatus(instrument, now));
}

export const AutomationSymbolSchema = Type.Object({
  symbol: Type.String(),
  description: Type.String(),
  assetClass: Type.String(),
  digits: Type.Integer(),
  bid: Nullable(Type.Number(), "null before the first quote"),
  ask: Nullable(Type.Number()),
  status: StatusSchema,
});
export type AutomationSymbol = Static<typeof AutomationSymbolSchema>;

export function automationSymbolView(platform: Platform, instrument: InstrumentSpec, now: number): AutomationSymbol {
  const quote = platform.engine.quote(instrument.symbol);
  return {
    symbol: instrument.symbol,
    description: instrument.description,
    assetClass: instrument.assetClass,
    digits: instrument.digits,
    bid: quote ? priceToWire(quote.bid, instrument) : null,
    ask: quote ? priceToWire(quote.ask, instrument) : null,
    status: symbolStatus(instrument, now),
  };
}

export const AutomationSpecificationSchema = Type.Object(specificationProperties(StatusSchema));
export type AutomationSpecification = Static<typeof AutomationSpecificationSchema>;

export function automationSpecificationView(
  instrument: InstrumentSpec,
  now: number,
  tripleSwapWeekday: number,
): AutomationSpecification {
  const fields = specificationFields(instrument, now, tripleSwapWeekday);
  return { ...fields, status: statusName(fields.status) };
}

export const AutomationQuoteSchema = Type.Object({
  symbol: Type.String(),
  bid: Type.Number(),
  ask: Type.Number(),
  spread: Type.Integer({ description: "ask − bid in points (MetaTrader's spread)" }),
  time: Time,
});
