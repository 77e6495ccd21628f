/**
 * The Automation API (seed 003, API.md "Automation API", DESIGN.md section 5): the REST API traders'
 * bots call with an API key, `Authorization: Bearer tk_live_...`, under `/v1/api`, on the main listener
 * and, when `automation.port` is set, on a dedicated listener that serves nothing else.
 *
 * - Auth (app.ts): 401 without the header; 403 for a malformed, unknown, revoked or rotated-away key
 *   (INVALID_API_KEY) or a scope too small (INSUFFICIENT_SCOPE); 503 while the engine is not ready.
 *   Scopes: `read` calls the GETs; `trade` the GETs and trading; `full` everything (today the same
 *   routes as `trade`: every route is a read or a trading action).
 * - A key is bound to one account: every route acts on it alone. A ticket of another account is the same
 *   404 as a ticket that does not exist.
 * - Per-key rate limit: `automation.rateLimitPerSecond` (default 100) requests per key per one-second
 *   window, counted across both listeners; every answer carries `RateLimit-Limit`, `RateLimit-Remaining`,
 *   `RateLimit-Reset` (seconds), and a 429 also `Retry-After`. Independent of the Client API's per-user
 *   limit and of other keys.
 * - Envelope: `{"success":true,"data":...}`; errors `{"success":false,"error":"<message>","code":"<CODE>"}`
 *   with seed 003's statuses 400, 401, 403, 404, 429, 503 (a registry code whose own status is another,
 *   such as 409 ORDER_NOT_MODIFIABLE, is answered as 400 with its code).
 *
 * Units and choices where seed 003 is silent: prices and lots are JSON numbers with the instrument's
 * digits (more decimals are refused, never rounded), money with the currency's digits, times ISO 8601 UTC
 * (inputs also take epoch milliseconds). `deviation` is in points, as in MetaTrader: the market order is
 * bounded to `deviation` points from the price quoted when it arrives. `sl`/`tp` 0 or null mean none.
 */
import { type Account, type CommandSuccess, type Deal, type Order, type Position } from "@bourse/core";
import { MAX_HISTORY_LIMIT, encodeCursor, type HistoryDirection, type LedgerRow } from "@bourse/store";
import { Type } from "@sinclair/typebox";
import type { FastifyReply, FastifyRequest, FastifySchema } from "fastify";
import type { RouteModule } from "../app.ts";
import {
  AutomationAccountSchema,
  AutomationDealSchema,
  AutomationOperationSchema,
  AutomationOrderSchema,
  AutomationPositionSchema,
  AutomationQuoteSchema,
  AutomationSpecificationSchema,
  AutomationSymbolSchema,
  BALANCE_OPERATION_KINDS,
  Success,
  automationAccountView,
  automationDealView,
  automationErrors,
  automationOperationView,
  automationOrderView,
  automationPositionView,
  automationSpecificationView,
  automationSymbolView,
} from "../automation-views.ts";
import { ApiError } from "../errors.ts";
import { FixedWindowLimiter, rateLimitHeaders, sendRateLimitHeaders, type RateLimitState } from "../rate-window.ts";
import { MAX_CANDLES_PER_QUERY, marketDataOf, type CandleTimeframe } from "../market-data.ts";
import {
  CandleTimeframeSchema,
  CandleViewSchema,
  DEFAULT_CANDLE_TIMEFRAME,
  candleView,
  instrumentOf,
} from "../market-views.ts";
import type { Platform } from "../platform.ts";
import { Closed, Decimal, TimeInput, emptyBodyIsObject } from "../schemas.ts";
import {
  ClientOrderId,
  CloseClientOrderId,
  accountOrder,
  accountPositions,
  accountWorkingOrders,
  cancelWorkingOrder,
  changeOrder,
  changePosition,
  closeOpenPosition,
  closingDeals,
  executeOrder,
  placedOrderDeals,
  ownedPosition,
  workingOrder,
} from "../trading-service.ts";
import { CMD_TO_ORDER, HistoryDirectionSchema, averagePrice, checkCursor } from "../trading-views.ts";
import {
  lotsFromWire,
  lotsToWire,
  moneyToWire,
  priceFromWire,
  optionalTimeFromWire,
  priceToWire,
  queryTimeFromWire,
  stopFromWire,
  timeToWire,
} from "../wire.ts";

// ---------------------------------------------------------------------------------------------
// The per-key rate limit

const limiters = new WeakMap<Platform, FixedWindowLimiter>();

/** The platform's one limiter (both listeners share it). */
/** The refusal of a request past its API key's budget, with the budget's headers. */
function keyRateLimited(state: RateLimitState): ApiError {
  return new ApiError(
    "RATE_LIMITED",
    `Rate limit of ${state.limit} requests per second per API key exceeded`,
    rateLimitHeaders(state),
  );
}

/**
 * A request refused because its key's scope is too small still spends the key's budget (found by the audit of the
 * Automation API of 7 December, sixth session: a read key's trades were all answered 403, none counted, a loop of store
 * lookups without end). Answers the refusal to throw: RATE_LIMITED past the budget, else `refusal`, with the headers.
 */
export function scopeRefusalSpendingBudget(platform: Platform, keyId: string, refusal: ApiError): ApiError {
  const state = automationRateLimiterOf(platform).hit(keyId);
  if (state.exceeded) return keyRateLimited(state);
  return new ApiError(refusal.code, refusal.message, { ...refusal.headers, ...rateLimitHeaders(state) });
}

export function automationRateLimiterOf(platform: Platform): FixedWindowLimiter {
  let limiter = limiters.get(platform);
  if (!limiter)
    limiters.set(platform, (limiter = new FixedWindowLimiter(platform.config.automationRateLimitPerSecond)));
  return limiter;
}

// ---------------------------------------------------------------------------------------------
// Request shapes

const TicketParams = Closed({ ticket: Type.String({ pattern: "^[0-9]{1,15}$", description: "A ticket number" }) });
const SymbolText = Type.String({
  minLength: 1,
  maxLength: 32,
  pattern: "^[A-Za-z0-9._#-]+$",
  description: "e.g. EURUSD",
});
const SymbolParams = Closed({ symbol: SymbolText });
const SymbolFilter = Closed({ symbol: Type.Optional(SymbolText) });
const NoQuery = Closed({});

const Stop = (what: string) =>
  Type.Optional(Type.Union([Decimal, Type.Null()], { description: `${what}; 0 or null for none` }));
const Comment = Type.Optional(Type.String({ maxLength: 64 }));
const Magic = Type.Optional(
  Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: "The bot's own number (Expert ID)" }),
);
const Expiration = Type.Optional(
  Type.Union([TimeInput, Type.Null()], {
    description: "ISO 8601 with a zone or epoch milliseconds; null or omitted: good till cancelled",
  }),
);

const TradeBody = Closed({
  symbol: SymbolText,
  action: Type.Union([Type.Literal("buy"), Type.Literal("sell")], { description: "buy at the ask, sell at the bid" }),
  volume: Type.Union([Decimal], { description: "Lots" }),
  sl: Stop("Stop loss price"),
  tp: Stop("Take profit price"),
  deviation: Type.Optional(
    Type.Integer({
      minimum: 0,
      maximum: 1_000_000,
      description: "Largest slippage in points from the price quoted when the order arrives (MetaTrader's deviation)",
    }),
  ),
  clientOrderId: ClientOrderId,
  comment: Comment,
  magic: Magic,
});

const PendingBody = Closed({
  symbol: SymbolText,
  type: Type.Integer({ minimum: 2, maximum: 5, description: "2 Buy Limit, 3 Sell Limit, 4 Buy Stop, 5 Sell Stop" }),
  volume: Type.Union([Decimal], { description: "Lots" }),
  price: Type.Union([Decimal], { description: "The limit or stop price" }),
  sl: Stop("Stop loss price"),
  tp: Stop("Take profit price"),
  expiration: Expiration,
  clientOrderId: ClientOrderId,
  comment: Comment,
  magic: Magic,
});

const ModifyOrderBody = Closed({
  price: Type.Optional(Decimal),
  sl: Stop("Stop loss price"),
  tp: Stop("Take profit price"),
  // Not `Expiration`, whose "null: good till cancelled" a modify does not do (found by the audit of the Automation
  // API of 7 December, sixth session: the field promised it, the engine refused it INVALID_EXPIRATION).
  expiration: Type.Optional(
    Type.Union([TimeInput, Type.Null()], {
      description:
        "A new expiration (ISO 8601 with a zone or epoch milliseconds) of an order placed with one; omitted: kept. " +
        "A modify does not change the time in force: an order placed without an expiration takes none here, and " +
        "one placed with an expiration keeps one (null is INVALID_EXPIRATION); cancel and place again for that",
    }),
  ),
});

const ModifyPositionBody = Closed({ sl: Stop("Stop loss price"), tp: Stop("Take profit price") });

const ClosePositionBody = Closed({
  volume: Type.Optional(Type.Union([Decimal], { description: "Lots to close; the whole position when omitted" })),
  comment: Comment,
  clientOrderId: CloseClientOrderId,
});

const CloseAllBody = Closed({
  symbol: Type.Optional(Type.Union([SymbolText], { description: "Only the positions of this symbol" })),
});

const HistoryQuery = Closed({
  from: Type.Optional(Type.String({ minLength: 1, maxLength: 40, description: "Inclusive: ISO 8601 or epoch ms" })),
  to: Type.Optional(Type.String({ minLength: 1, maxLength: 40, description: "Exclusive: ISO 8601 or epoch ms" })),
  limit: Type.Optional(
    Type.Integer({ minimum: 1, maximum: MAX_HISTORY_LIMIT, default: 100, description: "Rows per list, at most 1,000" }),
  ),
  cursor: Type.Optional(
    Type.String({
      minLength: 3,
      maxLength: 130,
      pattern: "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$",
      description:
        "The `nextCursor` of the previous answer, with the same from, to and direction: the next rows of both lists",
    }),
  ),
  direction: Type.Optional(HistoryDirectionSchema),
});

/** A list of the history that has no rows left, in the automation history's cursor. */
const LIST_DONE = "-";

/**
 * The automation history's cursor: where each of its two lists (deals, balance operations) goes on, each a read
 * models' cursor or LIST_DONE, joined by a dot. Times alone cannot page: any number of deals share a millisecond (a
 * close-all, a stop-out, an order walking the book), and "ask again from the last time shown" returned the same rows
 * forever (found by the audit of 7 December, second session).
 */
function readHistoryCursor(
  cursor: string | undefined,
  direction: HistoryDirection,
): { deals?: string; operations?: string } {
  if (cursor === undefined) return {};
  const [deals, operations] = cursor.split(".") as [string, string];
  for (const part of [deals, operations]) if (part !== LIST_DONE) checkCursor(part, direction);
  return { deals, operations };
}

const DEFAULT_CANDLE_COUNT = 100;
const CandlesQuery = Closed({
  timeframe: Type.Optional(CandleTimeframeSchema),
  count: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: MAX_CANDLES_PER_QUERY,
      default: DEFAULT_CANDLE_COUNT,
      description: `The latest bars, 1 to ${MAX_CANDLES_PER_QUERY} (default ${DEFAULT_CANDLE_COUNT})`,
    }),
  ),
});

// ---------------------------------------------------------------------------------------------
// Answers

const TradeResult = Type.Object({
  ticket: Type.Integer({
    description: "The position the order opened (or, netting, changed): use it to close or modify",
  }),
  order: Type.Integer({ description: "The market order's ticket" }),
  deal: Type.Integer({ description: "The (last) deal's ticket" }),
  price: Type.Number({ description: "The fill price (volume-weighted when the order walked the book)" }),
  volume: Type.Number({ description: "Lots filled" }),
});

const CloseResult = Type.Object({
  ticket: Type.Integer({ description: "The position" }),
  order: Type.Integer({ description: "The closing order" }),
  volume: Type.Number({ description: "Lots closed" }),
  price: Type.Number({ description: "The close price (volume-weighted over the closing deals)" }),
  profit: Type.Number({ description: "Realised profit of the closing deals, account currency" }),
  remainingVolume: Type.Number({ description: "Lots still open (0: the position is closed)" }),
});

const CloseAllResult = Type.Object({
  closed: Type.Integer({ description: "Positions closed" }),
  tickets: Type.Array(Type.Integer(), { description: "Their tickets" }),
  profit: Type.Number({ description: "Realised profit of the closing deals, account currency" }),
});

const HistoryResult = Type.Object({
  deals: Type.Array(AutomationDealSchema, {
    description: "Executed deals (in and out), oldest first; newest first with direction=desc",
  }),
  operations: Type.Array(AutomationOperationSchema, {
    description:
      "Balance operations (deposits, withdrawals, credit, corrections), oldest first; newest first with direction=desc",
  }),
  more: Type.Boolean({ description: "True when `limit` cut a list: ask again with `cursor` set to `nextCursor`" }),
  nextCursor: Type.Union([Type.String(), Type.Null()], {
    description: "The `cursor` of the next rows of both lists (null when neither was cut)",
  }),
});

// ---------------------------------------------------------------------------------------------
// Helpers

/** Σ volume of the deals (volume units). */
function dealVolume(deals: readonly Deal[]): number {
  return deals.reduce((sum, deal) => sum + deal.volume, 0);
}

/** Σ realised profit of the deals (minor units of the account currency). */
function dealProfit(deals: readonly Deal[]): number {
  return deals.reduce((sum, deal) => sum + deal.profit, 0);
}

/** The deals' volume-weighted price (trading-views.ts's averagePrice); 0 without deals. */
function dealsPrice(deals: readonly Deal[]): number {
  const cost = deals.reduce((sum, deal) => sum + deal.price * deal.volume, 0);
  return averagePrice(cost, dealVolume(deals)) ?? 0;
}

// ---------------------------------------------------------------------------------------------
// Routes

export const automationRoutes: RouteModule = (app, { platform }) => {
  const limiter = automationRateLimiterOf(platform);
  const marketData = marketDataOf(platform);
  const tags = ["Automation API"];

  /** Runs after the key is authenticated (app.ts): counts the request against the key's budget. */
  const rateLimit = async (request: FastifyRequest, reply: FastifyReply) => {
    const state = limiter.hit(request.apiKey!.key.id);
    sendRateLimitHeaders(reply, state);
    if (state.exceeded) throw keyRateLimited(state);
  };

  const read = { auth: "apiKey", face: "automation", apiKeyScope: "read", rateLimit: false } as const;
  const trade = { auth: "apiKey", face: "automation", apiKeyScope: "trade", rateLimit: false } as const;

  /** A route of the API: key auth of the scope (app.ts), then the key's rate limit; documented under the tag. */
  const options = <Schema extends FastifySchema>(
    config: typeof read | typeof trade,
    schema: Schema,
    hooks: { preValidation?: typeof emptyBodyIsObject } = {},
  ) => ({ config, onRequest: rateLimit, ...hooks, schema: { tags, ...schema } });

  /** The key's account (a key outlives nothing: an account gone or of another user refuses the key). */
  const accountOf = (request: FastifyRequest): Account => {
    const principal = request.apiKey!;
    const account = platform.accountOwnedBy(principal.userId, principal.accountId);
    if (!account) throw new ApiError("INVALID_API_KEY", "The API key's account does not exist");
    return account;
  };

  const positionOf = (account: Account, ticket: string): Position =>
    ownedPosition(platform, account, Number(ticket), `No open position #${ticket} in this account`);

  /**
   * A list's symbol filter as every other route reads a symbol: "eurusd" is EURUSD, an unknown one is 404
   * UNKNOWN_SYMBOL. Found by the audit of the Automation API of 7 December (sixth session): the filter was compared as
   * written, so a bot filtering with the text it traded with ("eurusd") was answered an empty list, as if flat.
   */
  const symbolFilter = (symbol: string | undefined): string | undefined =>
    symbol === undefined ? undefined : instrumentOf(platform, symbol).symbol;

  const workingOrderOf = (account: Account, ticket: string): Order =>
    workingOrder(platform, account, Number(ticket), `No pending order #${ticket} in this account`);

  // ---- account ----

  app.get(
    "/v1/api/account",
    options(read, {
      summary: "The key's account: balance, equity, margin, free margin, margin level, floating profit",
      querystring: NoQuery,
      response: { 200: Success(AutomationAccountSchema), ...automationErrors },
    }),
    async (request) => ({ success: true as const, data: automationAccountView(platform, accountOf(request)) }),
  );

  app.get(
    "/v1/api/account/history",
    options(read, {
      summary: "Executed deals and balance operations between from (inclusive) and to (exclusive)",
      description:
        "Each list holds at most `limit` rows (default 100, at most 1,000); `more` is true when either was cut: " +
        "ask again with the same from, to and direction and `cursor` set to `nextCursor` for the next rows of both " +
        "(a list already complete comes back empty). Oldest first, or newest first with `direction=desc`.",
      querystring: HistoryQuery,
      response: { 200: Success(HistoryResult), ...automationErrors },
    }),
    async (request) => {
      const account = accountOf(request);
      const from = request.query.from === undefined ? undefined : queryTimeFromWire(request.query.from, "from");
      const to = request.query.to === undefined ? undefined : queryTimeFromWire(request.query.to, "to");
      if (from !== undefined && to !== undefined && from > to)
        throw new ApiError("INVALID_DATA", "from must not be later than to");
      const limit = request.query.limit ?? 100;
      const direction = request.query.direction ?? "asc";
      const after = readHistoryCursor(request.query.cursor, direction);
      const range = {
        accountId: account.id,
        direction,
        ...(from === undefined ? {} : { from }),
        ...(to === undefined ? {} : { to }),
      };
      const deals =
        after.deals === LIST_DONE
          ? { rows: [], nextCursor: null }
          : await platform.readModels.dealHistory({ ...range, limit, cursor: after.deals });
      // The ledger also holds each deal's profit, commission and swap: keep the balance operations only,
      // reading at most ten pages; the list goes on after the last row read or shown.
      const operations: LedgerRow[] = [];
      let operationsNext: string | null = null;
      if (after.operations !== LIST_DONE) {
        let cursor: string | null | undefined = after.operations;
        for (let page = 0; page < 10 && cursor !== null; page += 1) {
          const rows = await platform.readModels.ledger({ ...range, limit: MAX_HISTORY_LIMIT, cursor });
          for (const row of rows.rows) if (BALANCE_OPERATION_KINDS.has(row.kind)) operations.push(row);
          cursor = rows.nextCursor;
          if (operations.length > limit) break;
        }
        operationsNext =
          operations.length > limit ? encodeCursor(operations[limit - 1]!.id, direction) : (cursor ?? null);
      }
      const nextCursor =
        deals.nextCursor === null && operationsNext === null
          ? null
          : `${deals.nextCursor ?? LIST_DONE}.${operationsNext ?? LIST_DONE}`;
      return {
        success: true as const,
        data: {
          deals: deals.rows.map((deal) => automationDealView(platform, account, deal)),
          operations: operations.slice(0, limit).map((row) => automationOperationView(account, row)),
          more: nextCursor !== null,
          nextCursor,
        },
      };
    },
  );

  // ---- positions ----

  app.get(
    "/v1/api/positions",
    options(read, {
      summary: "Open positions with their floating P&L, oldest ticket first (optionally of one symbol)",
      querystring: SymbolFilter,
      response: { 200: Success(Type.Array(AutomationPositionSchema)), ...automationErrors },
    }),
    async (request) => {
      const account = accountOf(request);
      return {
        success: true as const,
        data: accountPositions(platform, account, symbolFilter(request.query.symbol)).map((position) =>
          automationPositionView(platform, account, position),
        ),
      };
    },
  );

  app.get(
    "/v1/api/positions/:ticket",
    options(read, {
      summary: "One open position",
      params: TicketParams,
      querystring: NoQuery,
      response: { 200: Success(AutomationPositionSchema), ...automationErrors },
    }),
    async (request) => {
      const account = accountOf(request);
      const position = positionOf(account, request.params.ticket);
      return { success: true as const, data: automationPositionView(platform, account, position) };
    },
  );

  app.post(
    "/v1/api/positions/:ticket/close",
    options(
      trade,
      {
        summary: "Close a position, whole or `volume` lots of it, at the bid (buy) or ask (sell)",
        params: TicketParams,
        body: ClosePositionBody,
        response: { 200: Success(CloseResult), ...automationErrors },
      },
      { preValidation: emptyBodyIsObject },
    ),
    async (request) => {
      const account = accountOf(request);
      const ticket = Number(request.params.ticket);
      const { result, deals, remaining, instrument } = await closeOpenPosition(
        platform,
        account,
        ticket,
        request.body ?? {},
        `No open position #${ticket} in this account`,
      );
      return {
        success: true as const,
        data: {
          ticket,
          order: result.orderId!,
          volume: lotsToWire(dealVolume(deals), instrument),
          price: priceToWire(dealsPrice(deals), instrument),
          profit: moneyToWire(dealProfit(deals), account.currency),
          remainingVolume: lotsToWire(remaining?.volume ?? 0, instrument),
        },
      };
    },
  );

  app.post(
    "/v1/api/positions/:ticket/modify",
    options(trade, {
      summary: "Change a position's stop loss and take profit (omitted: kept; 0 or null: removed)",
      params: TicketParams,
      body: ModifyPositionBody,
      response: { 200: Success(AutomationPositionSchema), ...automationErrors },
    }),
    async (request) => {
      const account = accountOf(request);
      const current = await changePosition(platform, account, positionOf(account, request.params.ticket), request.body);
      return { success: true as const, data: automationPositionView(platform, account, current) };
    },
  );

  // ---- orders ----

  app.get(
    "/v1/api/orders",
    options(read, {
      summary: "Pending orders (type 2-5), oldest ticket first (optionally of one symbol)",
      querystring: SymbolFilter,
      response: { 200: Success(Type.Array(AutomationOrderSchema)), ...automationErrors },
    }),
    async (request) => {
      const account = accountOf(request);
      return {
        success: true as const,
        data: accountWorkingOrders(platform, account, symbolFilter(request.query.symbol)).map((order) =>
          automationOrderView(platform, order),
        ),
      };
    },
  );

  app.get(
    "/v1/api/orders/:ticket",
    options(read, {
      summary: "One order: a pending one, or one that has finished (filled, cancelled, expired, rejected)",
      description:
        "A finished order is answered from the order history with its final status: a bot can tell a fill from an " +
        "expiry by the ticket it placed.",
      params: TicketParams,
      querystring: NoQuery,
      response: { 200: Success(AutomationOrderSchema), ...automationErrors },
    }),
    async (request) => {
      const ticket = request.params.ticket;
      const order = await accountOrder(
        platform,
        accountOf(request),
        Number(ticket),
        `No order #${ticket} in this account`,
      );
      return { success: true as const, data: automationOrderView(platform, order) };
    },
  );

  app.post(
    "/v1/api/orders/:ticket/modify",
    options(trade, {
      summary: "Change a pending order's price, stop loss, take profit and expiration (omitted: kept)",
      description:
        "sl and tp take 0 or null to remove. expiration applies to orders placed with one (a new time in the " +
        "future); an order placed without one stays good till cancelled (INVALID_EXPIRATION otherwise).",
      params: TicketParams,
      body: ModifyOrderBody,
      response: { 200: Success(AutomationOrderSchema), ...automationErrors },
    }),
    async (request) => {
      const account = accountOf(request);
      const current = await changeOrder(
        platform,
        account,
        workingOrderOf(account, request.params.ticket),
        request.body,
      );
      return { success: true as const, data: automationOrderView(platform, current) };
    },
  );

  app.delete(
    "/v1/api/orders/:ticket",
    options(trade, {
      summary: "Cancel a pending order; answers it as cancelled",
      params: TicketParams,
      querystring: NoQuery,
      response: { 200: Success(AutomationOrderSchema), ...automationErrors },
    }),
    async (request) => {
      const account = accountOf(request);
      const after = await cancelWorkingOrder(platform, account, workingOrderOf(account, request.params.ticket));
      return { success: true as const, data: automationOrderView(platform, after) };
    },
  );

  // ---- trading ----

  app.post(
    "/v1/api/trade",
    options(trade, {
      summary: "Market order: buy at the ask or sell at the bid, filled at once or rejected",
      description:
        "Answers the position ticket (close or modify it with /v1/api/positions/{ticket}), the order and deal " +
        "tickets, the fill price and the lots filled. On a netting account a trade against the position reduces " +
        "it, and the ticket is that position's: closed (404 on /v1/api/positions/{ticket}) when the trade closed " +
        "it whole, the new one's when it reversed it. Retrying with the same clientOrderId answers the first " +
        "trade again and trades nothing. Rejections answer the reason, e.g. `Insufficient margin` " +
        "(code NO_MONEY), `The market is closed` (MARKET_CLOSED), `The stop loss must be at most 1.08420: 10 " +
        "points below 1.08430, the price it is measured from` (INVALID_STOPS).",
      body: TradeBody,
      response: { 200: Success(TradeResult), ...automationErrors },
    }),
    async (request) => {
      const account = accountOf(request);
      const body = request.body;
      const instrument = instrumentOf(platform, body.symbol);
      const side = body.action === "buy" ? ("BUY" as const) : ("SELL" as const);
      const volume = lotsFromWire(body.volume, instrument, "volume");
      const result: CommandSuccess = await executeOrder(platform, {
        kind: "placeOrder",
        accountId: account.id,
        symbol: instrument.symbol,
        side,
        type: "MARKET",
        volume,
        sl: stopFromWire(body.sl, instrument, "sl"),
        tp: stopFromWire(body.tp, instrument, "tp"),
        // MetaTrader's deviation: points from the price quoted when the order arrives (the engine's rule).
        ...(body.deviation === undefined ? {} : { deviation: body.deviation }),
        clientOrderId: body.clientOrderId,
        comment: body.comment,
        magic: body.magic,
      });
      const order = result.order!;
      const deals = await placedOrderDeals(platform, account.id, result);
      const last = deals[deals.length - 1];
      if (!last) throw new ApiError("NO_LIQUIDITY", "The order was not filled");
      return {
        success: true as const,
        data: {
          ticket: last.positionId,
          order: order.id,
          deal: last.id,
          price: priceToWire(dealsPrice(deals), instrument),
          volume: lotsToWire(dealVolume(deals), instrument),
        },
      };
    },
  );

  app.post(
    "/v1/api/order",
    options(trade, {
      summary: "Pending order: 2 Buy Limit, 3 Sell Limit, 4 Buy Stop, 5 Sell Stop; answers it with its ticket",
      description:
        "Buy Limit triggers when the ask falls to the price, Sell Limit when the bid rises to it, Buy Stop when " +
        "the ask rises to it, Sell Stop when the bid falls to it. With an expiration the order is cancelled then.",
      body: PendingBody,
      response: { 200: Success(AutomationOrderSchema), ...automationErrors },
    }),
    async (request) => {
      const account = accountOf(request);
      const body = request.body;
      const instrument = instrumentOf(platform, body.symbol);
      const { side, type } = CMD_TO_ORDER[body.type]!;
      const expiration = optionalTimeFromWire(body.expiration, "expiration");
      const result = await executeOrder(platform, {
        kind: "placeOrder",
        accountId: account.id,
        symbol: instrument.symbol,
        side,
        type,
        volume: lotsFromWire(body.volume, instrument, "volume"),
        price: priceFromWire(body.price, instrument, "price"),
        sl: stopFromWire(body.sl, instrument, "sl"),
        tp: stopFromWire(body.tp, instrument, "tp"),
        timeInForce: expiration === undefined || expiration === null ? "GTC" : "GTD",
        expiration: expiration ?? null,
        clientOrderId: body.clientOrderId,
        comment: body.comment,
        magic: body.magic,
      });
      const order = platform.engine.state.orders.get(result.order!.id) ?? result.order!;
      return { success: true as const, data: automationOrderView(platform, order) };
    },
  );

  app.post(
    "/v1/api/close-all",
    options(
      trade,
      {
        summary: "Close every open position, or those of one symbol",
        description: "All or nothing: when one of them cannot be closed now (market closed), none is.",
        body: CloseAllBody,
        response: { 200: Success(CloseAllResult), ...automationErrors },
      },
      { preValidation: emptyBodyIsObject },
    ),
    async (request) => {
      const account = accountOf(request);
      const symbol =
        request.body?.symbol === undefined ? undefined : instrumentOf(platform, request.body.symbol).symbol;
      const result = await platform.execute({ kind: "closeAllPositions", accountId: account.id, symbol });
      const deals = closingDeals(result);
      const tickets = [...new Set(deals.map((deal) => deal.positionId))];
      return {
        success: true as const,
        data: {
          closed: tickets.length,
          tickets,
          profit: moneyToWire(dealProfit(deals), account.currency),
        },
      };
    },
  );

  // ---- market data ----

  app.get(
    "/v1/api/symbols",
    options(read, {
      summary: "Tradable symbols (every instrument not disabled) with their last bid and ask and status now",
      querystring: NoQuery,
      response: { 200: Success(Type.Array(AutomationSymbolSchema)), ...automationErrors },
    }),
    async (request) => {
      accountOf(request);
      const now = platform.marketTime();
      return {
        success: true as const,
        data: [...platform.instruments.values()]
          .filter((instrument) => instrument.tradeMode !== "DISABLED")
          .map((instrument) => automationSymbolView(platform, instrument, now)),
      };
    },
  );

  app.get(
    "/v1/api/symbols/:symbol",
    options(read, {
      summary: "A symbol's contract specification",
      params: SymbolParams,
      querystring: NoQuery,
      response: { 200: Success(AutomationSpecificationSchema), ...automationErrors },
    }),
    async (request) => {
      accountOf(request);
      return {
        success: true as const,
        data: automationSpecificationView(
          instrumentOf(platform, request.params.symbol),
          platform.marketTime(),
          platform.engineConfig.tripleSwapWeekday,
        ),
      };
    },
  );

  app.get(
    "/v1/api/quote/:symbol",
    options(read, {
      summary: "The current bid, ask, spread (points) and quote time; 404 before the symbol's first quote",
      params: SymbolParams,
      querystring: NoQuery,
      response: { 200: Success(AutomationQuoteSchema), ...automationErrors },
    }),
    async (request) => {
      accountOf(request);
      const instrument = instrumentOf(platform, request.params.symbol);
      const quote = platform.engine.quote(instrument.symbol);
      if (!quote) throw new ApiError("NOT_FOUND", `No quote for ${instrument.symbol} yet`);
      return {
        success: true as const,
        data: {
          symbol: instrument.symbol,
          bid: priceToWire(quote.bid, instrument),
          ask: priceToWire(quote.ask, instrument),
          spread: quote.ask - quote.bid,
          time: timeToWire(quote.time),
        },
      };
    },
  );

  app.get(
    "/v1/api/candles/:symbol",
    options(read, {
      summary: "The latest `count` OHLC bars (by bid) of a timeframe, oldest first; the live bar last",
      params: SymbolParams,
      querystring: CandlesQuery,
      response: { 200: Success(Type.Array(CandleViewSchema)), ...automationErrors },
    }),
    async (request) => {
      accountOf(request);
      const instrument = instrumentOf(platform, request.params.symbol);
      const timeframe: CandleTimeframe = request.query.timeframe ?? DEFAULT_CANDLE_TIMEFRAME;
      const count = request.query.count ?? DEFAULT_CANDLE_COUNT;
      const candles = await marketData.latestCandles(
        instrument.symbol,
        timeframe,
        marketData.latestTime(instrument.symbol),
        count,
      );
      return {
        success: true as const,
        data: candles.map((candle) => candleView(candle, instrument)),
      };
    },
  );
};

/** The dedicated listener's liveness probe: nothing else of the server is served there. */
export const automationHealthRoutes: RouteModule = (app) => {
  app.get(
    "/healthz",
    {
      config: { auth: "public", face: "system", rateLimit: false },
      schema: { tags: ["System"], summary: "Liveness", response: { 200: Type.Object({ status: Type.Literal("ok") }) } },
    },
    async () => ({ status: "ok" as const }),
  );
};

/** What the dedicated Automation API listener serves. */
export const AUTOMATION_ROUTE_MODULES: readonly RouteModule[] = [automationHealthRoutes, automationRoutes];
