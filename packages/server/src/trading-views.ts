/**
 * What the Client API shows of trading records (orders, positions, deals, ledger rows): the engine's
 * integers turned into decimals with the instrument's digits (prices, lots) or the account currency's
 * digits (money), times into ISO strings (wire.ts). One view and one TypeBox schema per record, with the
 * column order of its table. The account view itself lives in views.ts.
 */
import { Rounding, divideRounded, type Account, type Deal, type Order, type Position } from "@bourse/core";
import {
  DEFAULT_HISTORY_LIMIT,
  HISTORY_DIRECTIONS,
  MAX_HISTORY_LIMIT,
  cursorMismatch,
  decodeCursor,
  encodeCursor,
  type HistoryCursor,
  type HistoryDirection,
  type HistoryQuery,
  type LedgerRow,
  type OrderHistoryRow,
  type PositionHistoryRow,
} from "@bourse/store";
import { Type, type Static } from "@sinclair/typebox";
import { ApiError } from "./errors.ts";
import { tradedSymbol } from "./market-views.ts";
import type { Platform } from "./platform.ts";
import { Closed, Nullable, TableOf, TimeInput } from "./schemas.ts";
import {
  lotsToWire,
  moneyToWire,
  optionalPriceToWire,
  optionalTimeToWire,
  priceToWire,
  quantityToWire,
  queryTimeFromWire,
  timeToWire,
} from "./wire.ts";

const Time = Type.String({ format: "date-time" });
const SideSchema = Type.Union([Type.Literal("BUY"), Type.Literal("SELL")]);
const OrderTypeSchema = Type.Union([
  Type.Literal("MARKET"),
  Type.Literal("LIMIT"),
  Type.Literal("STOP"),
  Type.Literal("STOP_LIMIT"),
]);
const TimeInForceSchema = Type.Union(["GTC", "DAY", "GTD", "IOC", "FOK"].map((value) => Type.Literal(value)));
const OrderStatusSchema = Type.Union(
  ["PLACED", "PARTIALLY_FILLED", "FILLED", "CANCELLED", "EXPIRED", "REJECTED"].map((value) => Type.Literal(value)),
);
const ReasonSchema = Type.Union(
  ["CLIENT", "DEALER", "STOP_LOSS", "TAKE_PROFIT", "STOP_OUT"].map((value) => Type.Literal(value)),
  {
    description:
      "Who made the record: the client, the broker's dealing desk (DEALER: a close made for the client), or the " +
      "server for a stop loss, take profit or stop-out",
  },
);

/** Seed 003's order types: 0 Buy, 1 Sell (market), 2 Buy Limit, 3 Sell Limit, 4 Buy Stop, 5 Sell Stop. */
export const CMD_TO_ORDER: readonly { side: "BUY" | "SELL"; type: "MARKET" | "LIMIT" | "STOP" }[] = [
  { side: "BUY", type: "MARKET" },
  { side: "SELL", type: "MARKET" },
  { side: "BUY", type: "LIMIT" },
  { side: "SELL", type: "LIMIT" },
  { side: "BUY", type: "STOP" },
  { side: "SELL", type: "STOP" },
];

/** The seed 003 code of a side and type; null for stop-limit orders, which seed 003 has no code for. */
export function orderCmd(side: "BUY" | "SELL", type: Order["type"]): number | null {
  const index = CMD_TO_ORDER.findIndex((entry) => entry.side === side && entry.type === type);
  return index < 0 ? null : index;
}

/** An average price (Σ price × volume / Σ volume) rounded half up to the instrument's points. */
export function averagePrice(cost: number, volume: number): number | null {
  return volume === 0 ? null : divideRounded(cost, volume, Rounding.HALF_UP);
}

// ---------------------------------------------------------------------------------------------
// Orders

const orderProperties = {
  id: Type.Integer({ description: "The order's ticket" }),
  accountId: Type.Integer({ description: "The account's login" }),
  symbol: Type.String(),
  side: SideSchema,
  type: OrderTypeSchema,
  cmd: Nullable(Type.Integer({ minimum: 0, maximum: 5 }), "Seed 003's code (0-5); null for STOP_LIMIT"),
  volume: Type.Number({ description: "Lots" }),
  quantity: Type.Number({ description: "Units of the base asset: volume × contract size" }),
  filledVolume: Type.Number({ description: "Lots filled so far" }),
  price: Nullable(Type.Number(), "Limit or stop price; for a market order the requested price, if any"),
  stopLimitPrice: Nullable(Type.Number(), "STOP_LIMIT: the limit price placed once the stop is reached"),
  sl: Nullable(Type.Number()),
  tp: Nullable(Type.Number()),
  timeInForce: TimeInForceSchema,
  expiration: Nullable(Time),
  status: OrderStatusSchema,
  statusReason: Nullable(Type.String(), "Why the order was cancelled, expired or rejected"),
  reason: ReasonSchema,
  clientOrderId: Nullable(Type.String()),
  comment: Type.String(),
  magic: Type.Integer(),
  closePositionId: Nullable(Type.Integer(), "Closing orders (close, stop loss, take profit): the position they close"),
  createdAt: Time,
  updatedAt: Time,
};

export const OrderViewSchema = Type.Object({
  ...orderProperties,
  trailingDistance: Nullable(Type.Number(), "Price distance of the trailing stop the position will get"),
  deviation: Nullable(Type.Number(), "Price distance bounding slippage from `price` (market orders)"),
  triggered: Type.Boolean({ description: "STOP and STOP_LIMIT: the stop price was reached" }),
});
export type OrderView = Static<typeof OrderViewSchema>;

export const WORKING_ORDER_COLUMNS = [
  "id",
  "symbol",
  "side",
  "type",
  "cmd",
  "volume",
  "filledVolume",
  "price",
  "stopLimitPrice",
  "sl",
  "tp",
  "trailingDistance",
  "timeInForce",
  "expiration",
  "status",
  "triggered",
  "clientOrderId",
  "comment",
  "magic",
  "createdAt",
  "updatedAt",
] as const satisfies readonly (keyof OrderView)[];

/** An account's working orders as a table. */
export const WorkingOrderTable = TableOf(WORKING_ORDER_COLUMNS, OrderViewSchema);

/** A live order: its history view's fields, then the ones only a working order has. */
export function orderView(platform: Platform, order: Readonly<Order>): OrderView {
  const instrument = platform.instrument(order.symbol);
  return {
    ...orderHistoryView(platform, order),
    trailingDistance: optionalPriceToWire(order.trailingDistance, instrument),
    deviation: optionalPriceToWire(order.deviation, instrument),
    triggered: order.triggered,
  };
}

export const OrderHistoryViewSchema = Type.Object(orderProperties);
export type OrderHistoryView = Static<typeof OrderHistoryViewSchema>;

export const ORDER_HISTORY_COLUMNS = [
  "id",
  "symbol",
  "side",
  "type",
  "cmd",
  "volume",
  "filledVolume",
  "price",
  "stopLimitPrice",
  "sl",
  "tp",
  "timeInForce",
  "expiration",
  "status",
  "statusReason",
  "reason",
  "clientOrderId",
  "comment",
  "magic",
  "closePositionId",
  "createdAt",
  "updatedAt",
] as const satisfies readonly (keyof OrderHistoryView)[];

/** A page of the order history as a table. */
export const OrderHistoryTable = TableOf(ORDER_HISTORY_COLUMNS, OrderHistoryViewSchema);

export function orderHistoryView(platform: Platform, row: OrderHistoryRow): OrderHistoryView {
  const instrument = platform.instrument(row.symbol);
  return {
    id: row.id,
    accountId: row.accountId,
    symbol: row.symbol,
    side: row.side,
    type: row.type,
    cmd: orderCmd(row.side, row.type),
    volume: lotsToWire(row.volume, instrument),
    quantity: quantityToWire(row.volume, instrument),
    filledVolume: lotsToWire(row.filledVolume, instrument),
    price: optionalPriceToWire(row.price, instrument),
    stopLimitPrice: optionalPriceToWire(row.stopLimitPrice, instrument),
    sl: optionalPriceToWire(row.sl, instrument),
    tp: optionalPriceToWire(row.tp, instrument),
    timeInForce: row.timeInForce,
    expiration: optionalTimeToWire(row.expiration),
    status: row.status,
    statusReason: row.statusReason,
    reason: row.reason,
    clientOrderId: row.clientOrderId,
    comment: row.comment,
    magic: row.magic,
    closePositionId: row.closePositionId,
    createdAt: timeToWire(row.createdAt),
    updatedAt: timeToWire(row.updatedAt),
  };
}

// ---------------------------------------------------------------------------------------------
// Deals

export const DealViewSchema = Type.Object({
  id: Type.Integer({ description: "The deal's ticket" }),
  orderId: Type.Integer(),
  positionId: Type.Integer(),
  symbol: Type.String(),
  side: SideSchema,
  entry: Type.Union([Type.Literal("IN"), Type.Literal("OUT")], {
    description: "IN opens or increases a position, OUT decreases or closes it",
  }),
  volume: Type.Number({ description: "Lots" }),
  price: Type.Number(),
  profit: Type.Number({ description: "Realised profit (OUT deals), account currency" }),
  commission: Type.Number({ description: "Commission charged (subtracted from the balance), account currency" }),
  swap: Type.Number({ description: "Swap realised by this deal, account currency" }),
  reason: ReasonSchema,
  time: Time,
});
export type DealView = Static<typeof DealViewSchema>;

export const DEAL_COLUMNS = [
  "id",
  "orderId",
  "positionId",
  "symbol",
  "side",
  "entry",
  "volume",
  "price",
  "profit",
  "commission",
  "swap",
  "reason",
  "time",
] as const satisfies readonly (keyof DealView)[];

/** A page of the deal history as a table. */
export const DealTable = TableOf(DEAL_COLUMNS, DealViewSchema);

export function dealView(platform: Platform, account: Account, deal: Deal): DealView {
  const instrument = platform.instrument(deal.symbol);
  return {
    id: deal.id,
    orderId: deal.orderId,
    positionId: deal.positionId,
    symbol: deal.symbol,
    side: deal.side,
    entry: deal.entry,
    volume: lotsToWire(deal.volume, instrument),
    price: priceToWire(deal.price, instrument),
    profit: moneyToWire(deal.profit, account.currency),
    commission: moneyToWire(deal.commission, account.currency),
    swap: moneyToWire(deal.swap, account.currency),
    reason: deal.reason,
    time: timeToWire(deal.time),
  };
}

// ---------------------------------------------------------------------------------------------
// Positions

export const PositionViewSchema = Type.Object({
  id: Type.Integer({ description: "The position's ticket" }),
  symbol: Type.String(),
  side: SideSchema,
  volume: Type.Number({ description: "Lots open" }),
  openPrice: Type.Number({ description: "Volume-weighted open price, rounded half up to the instrument's digits" }),
  currentPrice: Nullable(Type.Number(), "The price the position would close at: bid for BUY, ask for SELL"),
  sl: Nullable(Type.Number()),
  tp: Nullable(Type.Number()),
  trailingDistance: Nullable(Type.Number(), "Price distance the stop loss trails at"),
  profit: Type.Number({ description: "Floating profit at the current price, account currency (swap apart)" }),
  swap: Type.Number({ description: "Swap accrued, account currency" }),
  commission: Type.Number({
    description: "Commission charged so far, account currency: on opening and on each partial close",
  }),
  margin: Type.Number({ description: "Margin held, account currency" }),
  comment: Type.String(),
  magic: Type.Integer(),
  openOrderId: Type.Integer(),
  openTime: Time,
  updatedAt: Time,
});
export type PositionView = Static<typeof PositionViewSchema>;

export const POSITION_COLUMNS = [
  "id",
  "symbol",
  "side",
  "volume",
  "openPrice",
  "currentPrice",
  "sl",
  "tp",
  "trailingDistance",
  "profit",
  "swap",
  "commission",
  "margin",
  "comment",
  "magic",
  "openOrderId",
  "openTime",
  "updatedAt",
] as const satisfies readonly (keyof PositionView)[];

/** An account's open positions as a table. */
export const PositionTable = TableOf(POSITION_COLUMNS, PositionViewSchema);

/** What moves with the market in a position: the price it would close at, its floating profit and its swap. */
export function livePositionFigures(
  platform: Platform,
  account: Account,
  position: Readonly<Position>,
): { currentPrice: number | null; profit: number; swap: number } {
  const engine = platform.engine;
  const quote = engine.quote(position.symbol);
  const currentPrice = quote ? (position.side === "BUY" ? quote.bid : quote.ask) : null;
  return {
    currentPrice: optionalPriceToWire(currentPrice, platform.instrument(position.symbol)),
    profit: moneyToWire(engine.positionProfit(position as Position), account.currency),
    swap: moneyToWire(position.swap, account.currency),
  };
}

export function positionView(platform: Platform, account: Account, position: Readonly<Position>): PositionView {
  const instrument = platform.instrument(position.symbol);
  const { currentPrice, profit, swap } = livePositionFigures(platform, account, position);
  return {
    id: position.id,
    symbol: position.symbol,
    side: position.side,
    volume: lotsToWire(position.volume, instrument),
    openPrice: priceToWire(averagePrice(position.openCost, position.volume) ?? 0, instrument),
    currentPrice,
    sl: optionalPriceToWire(position.sl, instrument),
    tp: optionalPriceToWire(position.tp, instrument),
    trailingDistance: optionalPriceToWire(position.trailingDistance, instrument),
    profit,
    swap,
    commission: moneyToWire(position.commission, account.currency),
    margin: moneyToWire(position.margin, account.currency),
    comment: position.comment,
    magic: position.magic,
    openOrderId: position.openOrderId,
    openTime: timeToWire(position.openTime),
    updatedAt: timeToWire(position.updatedAt),
  };
}

export const PositionHistoryViewSchema = Type.Object({
  id: Type.Integer(),
  symbol: Type.String(),
  side: SideSchema,
  volume: Type.Number({ description: "Lots still open; 0 once closed" }),
  openedVolume: Type.Number({ description: "Lots opened in all (IN deals)" }),
  openPrice: Type.Number({ description: "Average price of the IN deals" }),
  closedVolume: Type.Number({ description: "Lots closed so far (OUT deals)" }),
  closePrice: Nullable(Type.Number(), "Average price of the OUT deals; null before any"),
  profit: Type.Number({ description: "Realised profit of the OUT deals, account currency" }),
  swap: Type.Number({ description: "Swap realised plus swap still accrued, account currency" }),
  commission: Type.Number({ description: "Commission of every deal of the position, account currency" }),
  sl: Nullable(Type.Number()),
  tp: Nullable(Type.Number()),
  comment: Type.String(),
  magic: Type.Integer(),
  openOrderId: Type.Integer(),
  openTime: Time,
  closeTime: Nullable(Time, "When the volume reached zero; null while open"),
  updatedAt: Time,
});
export type PositionHistoryView = Static<typeof PositionHistoryViewSchema>;

export const POSITION_HISTORY_COLUMNS = [
  "id",
  "symbol",
  "side",
  "volume",
  "openedVolume",
  "openPrice",
  "closedVolume",
  "closePrice",
  "profit",
  "swap",
  "commission",
  "sl",
  "tp",
  "comment",
  "magic",
  "openOrderId",
  "openTime",
  "closeTime",
  "updatedAt",
] as const satisfies readonly (keyof PositionHistoryView)[];

/** A page of the position history as a table. */
export const PositionHistoryTable = TableOf(POSITION_HISTORY_COLUMNS, PositionHistoryViewSchema);

export function positionHistoryView(
  platform: Platform,
  account: Account,
  row: PositionHistoryRow,
): PositionHistoryView {
  const instrument = platform.instrument(row.symbol);
  return {
    id: row.id,
    symbol: row.symbol,
    side: row.side,
    volume: lotsToWire(row.volume, instrument),
    openedVolume: lotsToWire(row.openedVolume, instrument),
    openPrice: priceToWire(averagePrice(row.openedCost, row.openedVolume) ?? 0, instrument),
    closedVolume: lotsToWire(row.closedVolume, instrument),
    closePrice: optionalPriceToWire(averagePrice(row.closedCost, row.closedVolume), instrument),
    profit: moneyToWire(row.realisedProfit, account.currency),
    swap: moneyToWire(row.realisedSwap + row.swap, account.currency),
    commission: moneyToWire(row.commission, account.currency),
    sl: optionalPriceToWire(row.sl, instrument),
    tp: optionalPriceToWire(row.tp, instrument),
    comment: row.comment,
    magic: row.magic,
    openOrderId: row.openOrderId,
    openTime: timeToWire(row.openTime),
    closeTime: optionalTimeToWire(row.closeTime),
    updatedAt: timeToWire(row.updatedAt),
  };
}

// ---------------------------------------------------------------------------------------------
// Ledger

export const LedgerViewSchema = Type.Object({
  id: Type.Integer({ description: "Unique and increasing in the order the operations happened" }),
  kind: Type.Union(
    ["DEPOSIT", "WITHDRAWAL", "CREDIT", "CORRECTION", "PROFIT", "COMMISSION", "SWAP"].map((value) =>
      Type.Literal(value),
    ),
    { description: "A balance operation, or the realised profit, commission or swap of a deal" },
  ),
  amount: Type.Number({ description: "Signed change of the balance (of the credit for CREDIT), account currency" }),
  balanceAfter: Type.Number(),
  creditAfter: Type.Number(),
  dealId: Nullable(Type.Integer()),
  operationId: Nullable(Type.Integer()),
  comment: Type.String(),
  time: Time,
});
export type LedgerView = Static<typeof LedgerViewSchema>;

export const LEDGER_COLUMNS = [
  "id",
  "kind",
  "amount",
  "balanceAfter",
  "creditAfter",
  "dealId",
  "operationId",
  "comment",
  "time",
] as const satisfies readonly (keyof LedgerView)[];

/** A page of an account's balance ledger as a table. */
export const LedgerTable = TableOf(LEDGER_COLUMNS, LedgerViewSchema);

export function ledgerView(account: Account, row: LedgerRow): LedgerView {
  return {
    id: row.id,
    kind: row.kind,
    amount: moneyToWire(row.amount, account.currency),
    balanceAfter: moneyToWire(row.balanceAfter, account.currency),
    creditAfter: moneyToWire(row.creditAfter, account.currency),
    dealId: row.dealId,
    operationId: row.operationId,
    comment: row.comment,
    time: timeToWire(row.time),
  };
}

// ---------------------------------------------------------------------------------------------
// History queries (ledger and the three histories)

/**
 * The sort direction of a history, every face's. Named `direction`, asc or desc, as Alpaca's trading API names it on
 * its orders and account activities: `order` would read as a trading order in this API (orders, orderId,
 * orderHistory), and where `sort` is a parameter of the public APIs it mostly names the field sorted by (GitHub's
 * `sort` with `direction`, Polygon's `sort` with `order`). Ascending by default, so a client that never sends it
 * reads what it always read.
 */
export const HistoryDirectionSchema = Type.Union(
  HISTORY_DIRECTIONS.map((direction) => Type.Literal(direction)),
  {
    default: "asc",
    description:
      "asc: oldest first (the default); desc: newest first. Rows with the same time come in id order, reversed " +
      "for desc. A `cursor` pages on only in the direction of the page that gave it",
  },
);

const historyQueryProperties = {
  from: Type.Optional(
    Type.Union([TimeInput, Type.String({ pattern: "^[0-9]{1,15}$" })], {
      description: "Inclusive lower bound: ISO 8601 with a zone, or epoch milliseconds",
    }),
  ),
  to: Type.Optional(
    Type.Union([TimeInput, Type.String({ pattern: "^[0-9]{1,15}$" })], {
      description: "Exclusive upper bound: ISO 8601 with a zone, or epoch milliseconds",
    }),
  ),
  limit: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: MAX_HISTORY_LIMIT,
      default: DEFAULT_HISTORY_LIMIT,
      description: `Rows per page, 1 to ${MAX_HISTORY_LIMIT}; ${DEFAULT_HISTORY_LIMIT} when omitted`,
    }),
  ),
  cursor: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 64,
      pattern: "^[A-Za-z0-9_-]+$",
      description: "The `nextCursor` of the previous page, sent with the same `direction`",
    }),
  ),
  direction: Type.Optional(HistoryDirectionSchema),
};

export const LedgerQuerySchema = Closed(historyQueryProperties);
export const HistoryQuerySchema = Closed({
  ...historyQueryProperties,
  symbol: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 32,
      pattern: "^[A-Za-z0-9._-]+$",
      description: "Only this symbol's rows (any case: eurusd is EURUSD)",
    }),
  ),
});
export type HistoryQueryInput = Static<typeof HistoryQuerySchema>;

/**
 * An order of the account as the order history keeps it, by id (a finished one: the engine keeps only working
 * orders), or undefined. Ids start at 1: "0" passes a path's pattern, and a cursor of -1 was a 500 (found by the
 * review of 7 December, sixth session).
 */
export async function orderHistoryRow(
  platform: Platform,
  accountId: number,
  orderId: number,
): Promise<OrderHistoryRow | undefined> {
  if (orderId < 1) return undefined;
  const page = await platform.readModels.orderHistory({
    accountId,
    cursor: encodeCursor(orderId - 1, "asc"),
    limit: 1,
  });
  const row = page.rows[0];
  return row !== undefined && row.id === orderId ? row : undefined;
}

/**
 * Refuses (400) a history cursor this server did not issue, or one from a page of the other direction (it would skip
 * every row on the wrong side of it), before it reaches the read models (never a 500).
 */
export function checkCursor(cursor: string, direction: HistoryDirection): void {
  let decoded: HistoryCursor;
  try {
    decoded = decodeCursor(cursor);
  } catch {
    throw new ApiError("INVALID_DATA", "cursor is not one this server issued");
  }
  const mismatch = cursorMismatch(decoded, direction);
  if (mismatch !== null) throw new ApiError("INVALID_DATA", mismatch);
}

/**
 * Reads a history query: times to ms, the cursor checked against the direction (a forged or mismatched one is a 400,
 * never a 500), the symbol as the platform trades it ("eurusd" is EURUSD; found by the audit of the Automation API of
 * 7 December, sixth session: a filter in lower case found nothing). A symbol no longer traded is taken as written:
 * its history stays readable.
 */
export function readHistoryQuery(platform: Platform, accountId: number, input: HistoryQueryInput): HistoryQuery {
  const from = input.from === undefined ? undefined : queryTimeFromWire(input.from, "from");
  const to = input.to === undefined ? undefined : queryTimeFromWire(input.to, "to");
  if (from !== undefined && to !== undefined && from > to)
    throw new ApiError("INVALID_DATA", "from must not be later than to");
  const direction = input.direction ?? "asc";
  if (input.cursor !== undefined) checkCursor(input.cursor, direction);
  return {
    accountId,
    direction,
    ...(from === undefined ? {} : { from }),
    ...(to === undefined ? {} : { to }),
    ...(input.symbol === undefined ? {} : { symbol: tradedSymbol(platform, input.symbol) }),
    ...(input.limit === undefined ? {} : { limit: input.limit }),
    ...(input.cursor === undefined ? {} : { cursor: input.cursor }),
  };
}

/** The query of a route that takes none: an unknown parameter is a 400 like an unknown body field. */
export const NoQuery = Closed({});
