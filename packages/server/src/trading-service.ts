/**
 * The trading application service (DESIGN.md section 1: faces are thin adapters). Every face that trades
 * or reads trading history — the REST routes of routes/trade.ts, the native stream (ws-stream.ts), later
 * the Pusher adapter — calls these functions with (platform, userId, accountId, wire input) and gets the
 * wire answer back, so a rule or a validation lives once. The TypeBox schemas of the inputs are exported
 * here: Fastify validates REST bodies with them, the stream compiles them with TypeBox's TypeCompiler.
 * The Automation API (routes/automation.ts), which answers its own views and field names, uses the steps
 * below them (lookups of an account's orders and positions, changeOrder, cancelWorkingOrder,
 * changePosition, closeOpenPosition, orderDeals, closingDeals), so an engine command is built once.
 *
 * Every function checks that `userId` owns `accountId` first (403 FORBIDDEN for anything else); an order
 * or position of another account is the engine's 404 (ORDER_NOT_FOUND / POSITION_NOT_FOUND).
 *
 * Prices, price distances (deviation, trailing distance) and lots are read strictly with the instrument's
 * digits: more decimals than it has are a 400, never rounded. Rejections by the trading rules answer the
 * engine's code (NO_MONEY, MARKET_CLOSED, INVALID_VOLUME, ...) with the registry's status. A rejected
 * order command has no journal event; `placeOrder` publishes a live-only `executionEvent` (status
 * REJECTED, `seq: null`) for it on the account's topic (account-events.ts).
 */
import type {
  Account,
  CommandSuccess,
  Deal,
  EngineEvent,
  InstrumentSpec,
  Order,
  Position,
  PositionChangedEvent,
} from "@bourse/core";
import { encodeCursor, type HistoryPage, type HistoryQuery, type OrderHistoryRow } from "@bourse/store";
import { Type, type Static, type TObject } from "@sinclair/typebox";
import { publishRejectedOrder } from "./account-events.ts";
import { ApiError } from "./errors.ts";
import type { Platform, UntimedCommand } from "./platform.ts";
import {
  AccountIdParams,
  Closed,
  Decimal,
  ErrorCode,
  Nullable,
  TimeInput,
  toTable,
  type Table,
  type TableSchema,
} from "./schemas.ts";
import {
  CMD_TO_ORDER,
  DealTable,
  DealViewSchema,
  HistoryQuerySchema,
  OrderHistoryTable,
  OrderViewSchema,
  PositionHistoryTable,
  PositionTable,
  PositionViewSchema,
  WorkingOrderTable,
  dealView,
  orderHistoryRow,
  orderHistoryView,
  orderView,
  positionHistoryView,
  positionView,
  readHistoryQuery,
  type HistoryQueryInput,
  type OrderView,
  type PositionView,
  type DealView,
} from "./trading-views.ts";
import { AccountMoneyViewSchema, metricsMoneyView } from "./views.ts";
import {
  lotsFromWire,
  lotsToWire,
  moneyToWire,
  optionalPriceFromWire,
  optionalTimeFromWire,
  quantityFromWire,
  stopFromWire,
} from "./wire.ts";

export { HistoryQuerySchema, type HistoryQueryInput };

/** Ids in paths: a ticket number. */
/** An order's or a position's ticket (its `id`) in a path. */
const Ticket = (description: string) => Type.String({ pattern: "^[0-9]{1,15}$", description });
export const OrderParams = Closed({
  accountId: AccountIdParams.properties.accountId,
  orderId: Ticket("The order's ticket: its `id`"),
});
export const PositionParams = Closed({
  accountId: AccountIdParams.properties.accountId,
  positionId: Ticket("The position's ticket: its `id`"),
});

const Stop = (what: string) =>
  Type.Optional(Type.Union([Decimal, Type.Null()], { description: `${what}; null or 0 for none` }));

/** A client's id of an order or a close, unique per account on every face (the engine remembers the last 1,000). */
function clientOrderIdSchema(description: string) {
  return Type.Optional(Type.String({ minLength: 1, maxLength: 64, description }));
}

/** A placed order's client id: a retry answers the first order and does nothing again. */
export const ClientOrderId = clientOrderIdSchema(
  "Unique per account among orders and closes (the last 1,000 are remembered): a retry with the same symbol, " +
    "side, type and volume answers the first order and nothing is done again, whatever its other fields; another " +
    "order with it is DUPLICATE_CLIENT_ORDER_ID. A rejected order is not remembered: its retry is decided anew",
);

/** A close's client id: a retry answers the first close and closes nothing again. */
export const CloseClientOrderId = clientOrderIdSchema(
  "Unique per account among orders and closes (the last 1,000 are remembered): a retry of the close of the same " +
    "position with the same volume (or again without one, once the position is closed) answers the first close and " +
    "closes nothing again, also after the position is closed; any other use of it is DUPLICATE_CLIENT_ORDER_ID " +
    "(POSITION_NOT_FOUND first when the position named is not open). " +
    "A refused close is not remembered",
);

export const PlaceOrderBody = Closed(
  {
    accountId: Type.Optional(
      Type.Union([Type.Integer({ minimum: 1 }), Type.String({ pattern: "^[0-9]{1,15}$" })], {
        description: "Optional (seed 002's stream form): must be the path's account",
      }),
    ),
    symbol: Type.String({ minLength: 1, maxLength: 32 }),
    side: Type.Optional(Type.Union([Type.Literal("BUY"), Type.Literal("SELL")])),
    type: Type.Optional(
      Type.Union([Type.Literal("MARKET"), Type.Literal("LIMIT"), Type.Literal("STOP"), Type.Literal("STOP_LIMIT")]),
    ),
    cmd: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 5,
        description:
          "Instead of side and type (seed 003): 0 Buy, 1 Sell, 2 Buy Limit, 3 Sell Limit, 4 Buy Stop, 5 Sell Stop",
      }),
    ),
    volume: Type.Optional(Type.Union([Decimal], { description: "Lots (give volume or quantity)" })),
    quantity: Type.Optional(
      Type.Union([Decimal], { description: "Units of the base asset, e.g. 10000 EUR = 0.1 lot of EURUSD" }),
    ),
    price: Type.Optional(
      Type.Union([Decimal], {
        description: "Limit or stop price; for a market order an optional requested price bounded by deviation",
      }),
    ),
    stopLimitPrice: Type.Optional(Type.Union([Decimal], { description: "STOP_LIMIT: the limit price" })),
    sl: Stop("Stop loss price"),
    tp: Stop("Take profit price"),
    trailingDistance: Stop("Trailing stop distance (a price distance, e.g. 0.0020)"),
    timeInForce: Type.Optional(
      Type.Union(
        ["GTC", "DAY", "GTD", "IOC", "FOK"].map((value) => Type.Literal(value)),
        {
          description:
            "Market orders: FOK (default) or IOC. Pending orders: GTC (default), DAY, GTD (needs expiration)",
        },
      ),
    ),
    expiration: Type.Optional(Type.Union([TimeInput, Type.Null()], { description: "GTD: ISO 8601 or epoch ms" })),
    deviation: Type.Optional(
      Type.Union([Decimal], {
        description:
          "Market orders: the largest slippage, as a price distance, from `price`, or without one from the price " +
          "quoted when the order arrives",
      }),
    ),
    clientOrderId: ClientOrderId,
    comment: Type.Optional(Type.String({ maxLength: 64 })),
    magic: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
  },
  { description: "Give side and type, or cmd; volume in lots, or quantity in units of the base asset" },
);
export type PlaceOrderInput = Static<typeof PlaceOrderBody>;

export const ModifyOrderBody = Closed({
  price: Type.Optional(Decimal),
  stopLimitPrice: Type.Optional(Decimal),
  sl: Stop("Stop loss price"),
  tp: Stop("Take profit price"),
  trailingDistance: Stop("Trailing stop distance"),
  expiration: Type.Optional(Type.Union([TimeInput, Type.Null()], { description: "GTD orders only" })),
});

export const ModifyPositionBody = Closed({
  sl: Stop("Stop loss price"),
  tp: Stop("Take profit price"),
  trailingDistance: Stop("Trailing stop distance"),
});

export const ClosePositionBody = Closed({
  volume: Type.Optional(Type.Union([Decimal], { description: "Lots to close; the whole position when omitted" })),
  comment: Type.Optional(Type.String({ maxLength: 64 })),
  clientOrderId: CloseClientOrderId,
});

export const OrderResult = Type.Object({
  order: OrderViewSchema,
  deals: Type.Array(DealViewSchema, { description: "The deals the order made (market orders), with their prices" }),
  positionId: Type.Union([Type.Integer(), Type.Null()], { description: "The position the last deal touched" }),
  duplicate: Type.Boolean({ description: "True when clientOrderId repeated an earlier order: its result, again" }),
});

export const CloseResult = Type.Object({
  positionId: Type.Integer(),
  orderId: Type.Integer({ description: "The closing order" }),
  deals: Type.Array(DealViewSchema, { description: "The closing deals, with price and realised profit" }),
  position: Type.Union([PositionViewSchema, Type.Null()], {
    description: "What is left open after a partial close; null once closed",
  }),
  duplicate: Type.Boolean({ description: "True when clientOrderId repeated an earlier close: its result, again" }),
});

/**
 * An order check's answer (MetaTrader 5's OrderCheck; cTrader and MT5 terminals show it in the order ticket). A
 * refusal by the trading rules is the check's answer, not an HTTP error: `accepted: false` with the code and message
 * placing it would get. A request placing could not even read (validation, another user's account, an unknown symbol)
 * is an error, as on the order route.
 */
export const OrderCheckResult = Type.Object({
  accepted: Type.Boolean({ description: "Whether placing the order now would be accepted" }),
  error: Nullable(ErrorCode, "The refusal's code, or null"),
  message: Type.Union([Type.String(), Type.Null()]),
  duplicateOfOrderId: Type.Union([Type.Integer(), Type.Null()], {
    description:
      "The order an earlier request with this clientOrderId placed: placing again answers it, changing nothing",
  }),
  executesNow: Type.Union([Type.Boolean(), Type.Null()], {
    description:
      "True: it executes now (MARKET, IOC, FOK). False: it would rest, and the figures are of its fill at its price",
  }),
  volume: Type.Union([Type.Number(), Type.Null()], {
    description: "Lots the figures are for: what the book fills now, or the pending order's volume",
  }),
  marginChange: Type.Union([Type.Number(), Type.Null()], {
    description: "Used margin it adds at current rates; negative when a netting reduction releases margin",
  }),
  commission: Type.Union([Type.Number(), Type.Null()]),
  realisedProfit: Type.Union([Type.Number(), Type.Null()], {
    description: "Profit with swap a netting account's opposite order realises at its fill prices",
  }),
  after: Type.Union([AccountMoneyViewSchema, Type.Null()], {
    description:
      "The account after it: its deals applied (commission and realised profit in the balance, the margin), open " +
      "positions valued at the current quote, what it opens at its fill price (an order executing now: the book's " +
      "now, so it floats its spread; a pending order: its own price). Null when refused, and for a pending order " +
      "whose money has no live conversion rate yet (then marginChange, commission and realisedProfit are null too)",
  }),
});

/** What placing the order would do now, from the durable state: nothing is placed, nothing journaled. */
export function checkOrder(
  platform: Platform,
  userId: string,
  accountId: number,
  body: PlaceOrderInput,
): { data: Static<typeof OrderCheckResult> } {
  const account = owned(platform, userId, accountId);
  const command = placeCommand(platform, account, body);
  const checked = platform.engine.checkOrder({ ...command, time: platform.marketTime() });
  if (!checked.ok)
    return {
      data: {
        accepted: false,
        error: checked.code,
        message: checked.message,
        duplicateOfOrderId: null,
        executesNow: null,
        volume: null,
        marginChange: null,
        commission: null,
        realisedProfit: null,
        after: null,
      },
    };
  const instrument = platform.instrument(command.symbol);
  // Null for a pending order whose money has no live conversion rate yet (its figures are unknown, not refused).
  const money = (amount: number | null) => (amount === null ? null : moneyToWire(amount, account.currency));
  return {
    data: {
      accepted: true,
      error: null,
      message: null,
      duplicateOfOrderId: checked.duplicateOfOrderId,
      executesNow: checked.executesNow,
      volume: lotsToWire(checked.volume, instrument),
      marginChange: money(checked.marginChange),
      commission: money(checked.commission),
      realisedProfit: money(checked.realisedProfit),
      after: checked.after === null ? null : metricsMoneyView(checked.after),
    },
  };
}

function dealsOf(events: readonly EngineEvent[], predicate: (deal: Deal) => boolean): Deal[] {
  const deals: Deal[] = [];
  for (const event of events) if (event.type === "DealExecuted" && predicate(event.deal)) deals.push(event.deal);
  return deals;
}

/** The deals a (market) order made, from the command's events. */
export function orderDeals(result: CommandSuccess, orderId: number): Deal[] {
  return dealsOf(result.events, (deal) => deal.orderId === orderId);
}

/** The deals a close made (the result's dealIds), from the command's events. */
export function closingDeals(result: CommandSuccess): Deal[] {
  const dealIds = new Set(result.dealIds ?? []);
  return dealsOf(result.events, (deal) => dealIds.has(deal.id));
}

/**
 * Deals by id from the read models (a retried order's fills), read from the page that starts at the first one not
 * found yet (a page holds the fills close behind it too). Paging the account's deals from the first id, ten pages at
 * most, lost the later fills of an order with 10,000 of the account's deals between them (found by the audit of
 * idempotency of 7 December).
 */
async function dealsById(platform: Platform, accountId: number, ids: readonly number[]): Promise<Deal[]> {
  const found = new Map<number, Deal>();
  const wanted = new Set(ids);
  for (const id of [...wanted].sort((a, b) => a - b)) {
    if (found.has(id)) continue;
    // The page that starts at this id holds the fills that follow it closely too: one query for those.
    const page = await platform.readModels.dealHistory({ accountId, cursor: encodeCursor(id - 1, "asc"), limit: 1000 });
    for (const deal of page.rows) if (wanted.has(deal.id)) found.set(deal.id, deal);
  }
  return ids.flatMap((id) => {
    const deal = found.get(id);
    return deal ? [deal] : [];
  });
}

export type ModifyOrderInput = Static<typeof ModifyOrderBody>;
export type ModifyPositionInput = Static<typeof ModifyPositionBody>;
export type ClosePositionInput = Static<typeof ClosePositionBody>;

export interface OrderAnswer {
  data: { order: OrderView; deals: DealView[]; positionId: number | null; duplicate: boolean };
}

export interface CloseAnswer {
  data: { positionId: number; orderId: number; deals: DealView[]; position: PositionView | null; duplicate: boolean };
}

/** The account, when `userId` owns it; 403 otherwise (before anything else is looked at). */
function owned(platform: Platform, userId: string, accountId: number): Account {
  return platform.ownedAccount(userId, accountId);
}

/** A working order of the account, or the engine's 404 (`notFound`: the face's message). */
export function workingOrder(
  platform: Platform,
  account: Account,
  orderId: number,
  notFound = "No working order with this id in this account",
): Order {
  const order = platform.engine.state.orders.get(orderId);
  if (!order || order.accountId !== account.id || order.type === "MARKET")
    throw new ApiError("ORDER_NOT_FOUND", notFound);
  return order;
}

/**
 * An order of the account, working (from the engine) or finished (from the order history, with its final status);
 * ORDER_NOT_FOUND otherwise (`notFound`: the face's message). Found by the audit of the Automation API of 7 December
 * (sixth session): once filled, cancelled or expired, a ticket was 404, though the order's statuses name those ends.
 */
export async function accountOrder(
  platform: Platform,
  account: Account,
  orderId: number,
  notFound = "No order with this id in this account",
): Promise<Order | OrderHistoryRow> {
  const working = platform.engine.state.orders.get(orderId);
  if (working !== undefined && working.accountId === account.id) return working;
  const row = await orderHistoryRow(platform, account.id, orderId);
  if (row === undefined) throw new ApiError("ORDER_NOT_FOUND", notFound);
  return row;
}

/**
 * One order of the account, working or finished. A finished one comes from the history, which keeps no trailing
 * distance, deviation nor trigger: those are null, null and false. Found by the audit of a terminal's journey of 7 December (sixth session):
 * the Client API had no route for one order (the Automation API had).
 */
export async function oneOrder(
  platform: Platform,
  userId: string,
  accountId: number,
  orderId: number,
): Promise<{ data: OrderView }> {
  const account = owned(platform, userId, accountId);
  const order = await accountOrder(platform, account, orderId);
  return {
    data:
      "trailingDistance" in order
        ? orderView(platform, order)
        : { ...orderHistoryView(platform, order), trailingDistance: null, deviation: null, triggered: false },
  };
}

/** One open position of the account (a closed one: its history). */
export function onePosition(
  platform: Platform,
  userId: string,
  accountId: number,
  positionId: number,
): { data: PositionView } {
  const account = owned(platform, userId, accountId);
  return {
    data: positionView(
      platform,
      account,
      ownedPosition(platform, account, positionId, "No open position with this id in this account (see its history)"),
    ),
  };
}

/** An open position of the account, or the engine's 404 (`notFound`: the face's message). */
export function ownedPosition(
  platform: Platform,
  account: Account,
  positionId: number,
  notFound = "No open position with this id in this account",
): Position {
  const position = platform.engine.state.positions.get(positionId);
  if (!position || position.accountId !== account.id) throw new ApiError("POSITION_NOT_FOUND", notFound);
  return position;
}

/** The account's working orders, oldest first (optionally of one symbol). */
export function accountWorkingOrders(platform: Platform, account: Account, symbol?: string): Order[] {
  const state = platform.engine.state;
  return itemsOf(state.accountWorkingOrders.get(account.id), state.orders, symbol);
}

/** The account's open positions, oldest first (optionally of one symbol). */
export function accountPositions(platform: Platform, account: Account, symbol?: string): Position[] {
  const state = platform.engine.state;
  return itemsOf(state.accountPositions.get(account.id), state.positions, symbol);
}

/** The items of `ids` found in `byId`, of `symbol` if given, oldest (lowest id) first. */
function itemsOf<Item extends { readonly id: number; readonly symbol: string }>(
  ids: ReadonlySet<number> | undefined,
  byId: ReadonlyMap<number, Item>,
  symbol: string | undefined,
): Item[] {
  const items: Item[] = [];
  for (const id of ids ?? []) {
    const item = byId.get(id);
    if (item !== undefined && (symbol === undefined || item.symbol === symbol)) items.push(item);
  }
  return items.sort((a, b) => a.id - b.id);
}

/** Changes a working order (omitted fields kept; sl, tp, trailingDistance 0 or null removed); answers it as it is now. */
export async function changeOrder(
  platform: Platform,
  account: Account,
  order: Order,
  body: ModifyOrderInput,
): Promise<Order> {
  const instrument = platform.instrument(order.symbol);
  const result = await platform.execute({
    kind: "modifyOrder",
    accountId: account.id,
    orderId: order.id,
    price: optionalPriceFromWire(body.price, instrument, "price"),
    stopLimitPrice: optionalPriceFromWire(body.stopLimitPrice, instrument, "stopLimitPrice"),
    sl: stopFromWire(body.sl, instrument, "sl"),
    tp: stopFromWire(body.tp, instrument, "tp"),
    trailingDistance: stopFromWire(body.trailingDistance, instrument, "trailingDistance"),
    expiration: optionalTimeFromWire(body.expiration, "expiration"),
  });
  return platform.engine.state.orders.get(order.id) ?? result.order!;
}

/** Cancels a working order; answers it as cancelled (the status changes of the command applied). */
export async function cancelWorkingOrder(platform: Platform, account: Account, order: Order): Promise<Order> {
  const before: Order = { ...order };
  const result = await platform.execute({ kind: "cancelOrder", accountId: account.id, orderId: before.id });
  const after = { ...before };
  for (const event of result.events) {
    if (event.type === "OrderStatusChanged" && event.orderId === before.id) {
      after.status = event.status;
      after.filledVolume = event.filledVolume;
      after.statusReason = event.reason;
      after.updatedAt = event.time;
    }
  }
  return after;
}

/** Changes a position's stops (omitted kept; 0 or null removed); answers it as it is now. */
export async function changePosition(
  platform: Platform,
  account: Account,
  position: Position,
  body: ModifyPositionInput,
): Promise<Position> {
  const instrument = platform.instrument(position.symbol);
  // A copy: `position` is the durable state's own record, which a close folded meanwhile empties.
  const before = { ...position };
  const result = await platform.execute({
    kind: "modifyPosition",
    accountId: account.id,
    positionId: position.id,
    sl: stopFromWire(body.sl, instrument, "sl"),
    tp: stopFromWire(body.tp, instrument, "tp"),
    trailingDistance: stopFromWire(body.trailingDistance, instrument, "trailingDistance"),
  });
  const current = platform.engine.state.positions.get(position.id);
  if (current) return current;
  // Closed by a command of the same batch, after this change was made (a race the audit of 7 December found answered
  // POSITION_NOT_FOUND for a change the journal and the stream hold): the position as the change left it.
  const changed = result.events.find(
    (event): event is PositionChangedEvent => event.type === "PositionChanged" && event.positionId === position.id,
  );
  if (!changed) throw new ApiError("POSITION_NOT_FOUND", "The position was closed meanwhile");
  return {
    ...before,
    sl: changed.sl,
    tp: changed.tp,
    trailingDistance: changed.trailingDistance,
    updatedAt: changed.time,
  };
}

/**
 * Closes a position of the account, whole or `volume` lots of it: the command's result, its closing deals, what is
 * left open. A retry with the first close's clientOrderId answers that close, also once the position is closed.
 */
export async function closeOpenPosition(
  platform: Platform,
  account: Account,
  positionId: number,
  body: ClosePositionInput,
  notFound?: string,
  initiator: "CLIENT" | "DEALER" = "CLIENT",
): Promise<{ result: CommandSuccess; deals: Deal[]; remaining: Position | undefined; instrument: InstrumentSpec }> {
  const symbol =
    retriedClose(platform, account, positionId, body.clientOrderId)?.symbol ??
    ownedPosition(platform, account, positionId, notFound).symbol;
  const instrument = platform.instrument(symbol);
  const result = await platform.execute({
    kind: "closePosition",
    accountId: account.id,
    positionId,
    volume: body.volume === undefined ? undefined : lotsFromWire(body.volume, instrument, "volume"),
    comment: body.comment,
    clientOrderId: body.clientOrderId,
    initiator,
  });
  const deals = result.duplicate ? await dealsById(platform, account.id, result.dealIds ?? []) : closingDeals(result);
  return { result, deals, remaining: platform.engine.state.positions.get(positionId), instrument };
}

/** The order of the account's close of `positionId` that had this client order id, if the engine remembers one. */
function retriedClose(
  platform: Platform,
  account: Account,
  positionId: number,
  clientOrderId: string | undefined,
): Order | undefined {
  if (clientOrderId === undefined) return undefined;
  const first = platform.engine.state.clientOrders.get(account.id)?.get(clientOrderId)?.order;
  return first?.closePositionId === positionId ? first : undefined;
}

function placeCommand(platform: Platform, account: Account, body: PlaceOrderInput) {
  if (body.accountId !== undefined && Number(body.accountId) !== account.id) {
    // Another user's login in the body is a 403 like in the path; one of the user's own, a mismatch.
    platform.ownedAccount(account.userId, Number(body.accountId));
    throw new ApiError("INVALID_DATA", "accountId in the body must be the account of the path");
  }
  let side: "BUY" | "SELL";
  let type: Order["type"];
  if (body.cmd !== undefined) {
    if (body.side !== undefined || body.type !== undefined)
      throw new ApiError("INVALID_DATA", "Give cmd, or side and type, not both");
    ({ side, type } = CMD_TO_ORDER[body.cmd]!);
  } else {
    if (body.side === undefined || body.type === undefined)
      throw new ApiError("INVALID_DATA", "side and type are required (or cmd)");
    side = body.side;
    type = body.type;
  }
  const instrument = platform.instrument(body.symbol);
  if ((body.volume === undefined) === (body.quantity === undefined))
    throw new ApiError("INVALID_DATA", "Give volume (lots) or quantity (units of the base asset), one of them");
  const volume =
    body.volume !== undefined
      ? lotsFromWire(body.volume, instrument, "volume")
      : quantityFromWire(body.quantity!, instrument, "quantity");
  return {
    kind: "placeOrder" as const,
    accountId: account.id,
    symbol: instrument.symbol,
    side,
    type,
    volume,
    price: optionalPriceFromWire(body.price, instrument, "price"),
    stopLimitPrice: optionalPriceFromWire(body.stopLimitPrice, instrument, "stopLimitPrice"),
    sl: stopFromWire(body.sl, instrument, "sl"),
    tp: stopFromWire(body.tp, instrument, "tp"),
    trailingDistance: stopFromWire(body.trailingDistance, instrument, "trailingDistance"),
    timeInForce: body.timeInForce as Order["timeInForce"] | undefined,
    expiration: optionalTimeFromWire(body.expiration, "expiration"),
    deviation: optionalPriceFromWire(body.deviation, instrument, "deviation"),
    clientOrderId: body.clientOrderId,
    comment: body.comment,
    magic: body.magic,
  };
}

/** The deals an order placed by `result` made: from its events, or a retry's (duplicate) from the read models. */
export function placedOrderDeals(platform: Platform, accountId: number, result: CommandSuccess): Promise<Deal[]> {
  return result.duplicate
    ? dealsById(platform, accountId, result.dealIds ?? [])
    : Promise.resolve(orderDeals(result, result.order!.id));
}

async function orderAnswer(platform: Platform, account: Account, result: CommandSuccess): Promise<OrderAnswer> {
  const order = result.order!;
  const deals = await placedOrderDeals(platform, account.id, result);
  const positionId = deals.length > 0 ? deals[deals.length - 1]!.positionId : (result.positionId ?? null);
  return {
    data: {
      order: orderView(platform, order),
      deals: deals.map((deal) => dealView(platform, account, deal)),
      positionId,
      duplicate: result.duplicate === true,
    },
  };
}

// ---- orders ----

/** Places an order; a rejection by the trading rules throws its ApiError and publishes a REJECTED executionEvent. */
export async function placeOrder(
  platform: Platform,
  userId: string,
  accountId: number,
  body: PlaceOrderInput,
): Promise<OrderAnswer> {
  const account = owned(platform, userId, accountId);
  return orderAnswer(platform, account, await executeOrder(platform, placeCommand(platform, account, body)));
}

/**
 * Executes an order command of any face; a rejection by the trading rules throws its ApiError and publishes a
 * REJECTED executionEvent. The Automation API's orders went to the engine directly, so their rejections never reached
 * the stream (found by the audit of the Automation API of 7 December, sixth session).
 */
export async function executeOrder(
  platform: Platform,
  command: Extract<UntimedCommand, { kind: "placeOrder" }>,
): Promise<CommandSuccess> {
  try {
    return await platform.execute(command);
  } catch (error) {
    // A clientOrderId already taken: no order was attempted, and the one that has it is not rejected (found by the
    // audit of idempotency of 7 December: the stream said REJECTED for a filled order's id).
    if (error instanceof ApiError && error.code !== "DUPLICATE_CLIENT_ORDER_ID")
      publishRejectedOrder(platform, command, error);
    throw error;
  }
}

/** Working (pending) orders, oldest first (table). */
export function workingOrders(platform: Platform, userId: string, accountId: number): Table {
  return workingOrdersOf(platform, owned(platform, userId, accountId));
}

/** The account's working orders as a table (the back office's read, and the client's once ownership is checked). */
export function workingOrdersOf(platform: Platform, account: Account): Table {
  return toTable(
    WorkingOrderTable,
    accountWorkingOrders(platform, account).map((order) => orderView(platform, order)),
  );
}

export async function modifyOrder(
  platform: Platform,
  userId: string,
  accountId: number,
  orderId: number,
  body: ModifyOrderInput,
): Promise<{ data: OrderView }> {
  const account = owned(platform, userId, accountId);
  const order = await changeOrder(platform, account, workingOrder(platform, account, orderId), body);
  return { data: orderView(platform, order) };
}

export async function cancelOrder(
  platform: Platform,
  userId: string,
  accountId: number,
  orderId: number,
): Promise<{ data: OrderView }> {
  const account = owned(platform, userId, accountId);
  const order = await cancelWorkingOrder(platform, account, workingOrder(platform, account, orderId));
  return { data: orderView(platform, order) };
}

// ---- positions ----

/** Open positions with current price and floating profit (table). */
export function openPositions(platform: Platform, userId: string, accountId: number): Table {
  return openPositionsOf(platform, owned(platform, userId, accountId));
}

/** The account's open positions as a table (the back office's read, and the client's once ownership is checked). */
export function openPositionsOf(platform: Platform, account: Account): Table {
  return toTable(
    PositionTable,
    accountPositions(platform, account).map((position) => positionView(platform, account, position)),
  );
}

export async function modifyPosition(
  platform: Platform,
  userId: string,
  accountId: number,
  positionId: number,
  body: ModifyPositionInput,
): Promise<{ data: PositionView }> {
  const account = owned(platform, userId, accountId);
  const position = await changePosition(platform, account, ownedPosition(platform, account, positionId), body);
  return { data: positionView(platform, account, position) };
}

export async function closePosition(
  platform: Platform,
  userId: string,
  accountId: number,
  positionId: number,
  body: ClosePositionInput,
): Promise<CloseAnswer> {
  return closePositionOf(platform, owned(platform, userId, accountId), positionId, body, "CLIENT");
}

/** Closes a position of `account` for its client or, `DEALER`, by the back office for them; answers as the Client API. */
export async function closePositionOf(
  platform: Platform,
  account: Account,
  positionId: number,
  body: ClosePositionInput,
  initiator: "CLIENT" | "DEALER",
): Promise<CloseAnswer> {
  const { result, deals, remaining } = await closeOpenPosition(
    platform,
    account,
    positionId,
    body,
    undefined,
    initiator,
  );
  return {
    data: {
      positionId,
      orderId: result.orderId!,
      deals: deals.map((deal) => dealView(platform, account, deal)),
      position: remaining ? positionView(platform, account, remaining) : null,
      duplicate: result.duplicate === true,
    },
  };
}

// ---- history ----

/**
 * A history reader of the faces: (platform, userId, accountId, query) → one page of the account's history
 * as `table`, read with `read` and each row shown with `view`; its `ofAccount` reads an account the caller has
 * already checked (the back office's), and its `table` is the routes' response schema.
 */
function historyTable<Row, RowSchema extends TObject, Column extends string>(
  read: (platform: Platform, query: HistoryQuery) => Promise<HistoryPage<Row>>,
  table: TableSchema<RowSchema, Column>,
  view: (platform: Platform, account: Account, row: Row) => Pick<Static<RowSchema>, Column & keyof Static<RowSchema>>,
) {
  const ofAccount = async (platform: Platform, account: Account, query: HistoryQueryInput): Promise<Table> => {
    const page = await read(platform, readHistoryQuery(platform, account.id, query));
    return toTable(
      table,
      page.rows.map((row) => view(platform, account, row)),
      page.nextCursor,
    );
  };
  const ofOwnedAccount = (platform: Platform, userId: string, accountId: number, query: HistoryQueryInput) =>
    ofAccount(platform, owned(platform, userId, accountId), query);
  return Object.assign(ofOwnedAccount, { ofAccount, table });
}

export const orderHistory = historyTable(
  (platform, query) => platform.readModels.orderHistory(query),
  OrderHistoryTable,
  (platform, _account, row) => orderHistoryView(platform, row),
);

export const dealHistory = historyTable(
  (platform, query) => platform.readModels.dealHistory(query),
  DealTable,
  dealView,
);

export const positionHistory = historyTable(
  (platform, query) => platform.readModels.positionHistory(query),
  PositionHistoryTable,
  positionHistoryView,
);
