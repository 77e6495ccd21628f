/**
 * Trade (seed 000 "Trade", seed 002's `POST /accounts/{account_id}/orders`, API.md): place, modify and
 * cancel orders, list working orders and open positions, modify and close positions, and the order, deal
 * and position histories. The rules live in trading-service.ts (shared with the native stream); these
 * routes only map HTTP to it. Every route checks that the signed-in user owns the account first (403);
 * an order or position of another account is a 404 (the engine's ORDER_NOT_FOUND / POSITION_NOT_FOUND).
 */
import type { RouteModule } from "../app.ts";
import {
  AccountIdParams,
  DataResponse,
  ErrorResponse,
  authenticatedErrors,
  columnsDescription,
  emptyBodyIsObject,
  markSnapshotSequence,
} from "../schemas.ts";
import {
  CloseResult,
  ClosePositionBody,
  HistoryQuerySchema,
  ModifyOrderBody,
  ModifyPositionBody,
  OrderCheckResult,
  OrderParams,
  OrderResult,
  PlaceOrderBody,
  PositionParams,
  cancelOrder,
  checkOrder,
  closePosition,
  dealHistory,
  modifyOrder,
  modifyPosition,
  oneOrder,
  onePosition,
  openPositions,
  orderHistory,
  placeOrder,
  positionHistory,
  workingOrders,
} from "../trading-service.ts";
import { NoQuery, OrderViewSchema, PositionTable, PositionViewSchema, WorkingOrderTable } from "../trading-views.ts";

/** The history routes' query, as the Client API and the back office take it. */
export const HISTORY_DESCRIPTION =
  "Oldest first, or newest first with `direction=desc`. `from` (inclusive) and `to` (exclusive) bound the time " +
  "(orders: placed, deals: executed, positions: opened); `symbol` filters; `limit` rows per page (1 to 1000, " +
  "default 100); pass `nextCursor` back as `cursor`, with the same `direction`, for the next page (null on the " +
  "last one).";

/** The three histories: path, summary and reader (its `table`, and `ofAccount` for the back office). */
export const HISTORIES = [
  ["orders", "Order history (table, paged): every order, working or not", orderHistory],
  ["deals", "Deal history (table, paged): every fill with its price, profit, commission and swap", dealHistory],
  [
    "positions",
    "Position history (table, paged): open and closed positions with average prices and realised profit",
    positionHistory,
  ],
] as const;

export const tradeRoutes: RouteModule = (app, { platform }) => {
  const userOf = (request: { principal: { userId: string } | null }) => request.principal!.userId;

  // ---- orders ----

  app.post(
    "/api/v1/accounts/:accountId/orders",
    {
      schema: {
        tags: ["Trade"],
        summary: "Place an order: market, limit, stop or stop-limit (or seed 003's cmd 0-5)",
        description:
          "Answers the order as it stands after the command (status, filled volume) with the deals it made. " +
          "A market order fills at the ask (buy) or bid (sell) at once or is rejected (FOK; IOC may fill partly). " +
          "A retried clientOrderId answers the first order with `duplicate: true`; the same id for a different " +
          "order is DUPLICATE_CLIENT_ORDER_ID (409).",
        params: AccountIdParams,
        body: PlaceOrderBody,
        response: { 200: DataResponse(OrderResult), ...authenticatedErrors, 409: ErrorResponse },
      },
    },
    async (request) => placeOrder(platform, userOf(request), Number(request.params.accountId), request.body),
  );

  // An order ticket shows the margin and commission before the client sends (the audit of a terminal's journey of 7
  // December, sixth session: the only way to learn them was to place the order).
  app.post(
    "/api/v1/accounts/:accountId/orders/check",
    {
      config: { snapshotSequence: true },
      schema: {
        tags: ["Trade"],
        summary: "Check an order without placing it: would it be accepted, its margin, commission, the account after",
        description:
          "The body of `POST …/orders`, decided as placing it now would decide it (MetaTrader 5's OrderCheck), from " +
          "the acknowledged state; nothing is placed or journaled. A refusal by the trading rules is the answer " +
          "(`accepted: false` with the code and message placing would get, 200); a body placing could not read is " +
          "an error as on the order route. A pending order's figures are those of its fill at its price at current " +
          "rates.",
        params: AccountIdParams,
        body: PlaceOrderBody,
        response: { 200: DataResponse(OrderCheckResult), ...authenticatedErrors },
      },
    },
    async (request, reply) => {
      const answer = checkOrder(platform, userOf(request), Number(request.params.accountId), request.body);
      // Read from the acknowledged state, as the account's snapshot is (found by the review of 7 December).
      markSnapshotSequence(reply, platform.durableSequence);
      return answer;
    },
  );

  app.get(
    "/api/v1/accounts/:accountId/orders",
    {
      config: { snapshotSequence: true },
      schema: {
        tags: ["Trade"],
        summary: "Working (pending) orders (table), oldest first",
        description: columnsDescription(WorkingOrderTable),
        params: AccountIdParams,
        querystring: NoQuery,
        response: { 200: WorkingOrderTable, ...authenticatedErrors },
      },
    },
    async (request, reply) => {
      const table = workingOrders(platform, userOf(request), Number(request.params.accountId));
      markSnapshotSequence(reply, platform.durableSequence);
      return table;
    },
  );

  app.get(
    "/api/v1/accounts/:accountId/orders/:orderId",
    {
      schema: {
        tags: ["Trade"],
        summary: "One order: a working one, or one that has finished (filled, cancelled, expired, rejected)",
        description:
          "A finished order is answered from the order history with its final status and statusReason; the " +
          "history keeps no trailingDistance, deviation nor trigger (null, null, false).",
        params: OrderParams,
        querystring: NoQuery,
        response: { 200: DataResponse(OrderViewSchema), ...authenticatedErrors },
      },
    },
    async (request) =>
      oneOrder(platform, userOf(request), Number(request.params.accountId), Number(request.params.orderId)),
  );

  app.post(
    "/api/v1/accounts/:accountId/orders/:orderId",
    {
      schema: {
        tags: ["Trade"],
        summary: "Modify a pending order: price, stopLimitPrice, sl, tp, trailingDistance, expiration",
        description: "Omitted fields keep their value; sl, tp and trailingDistance take null (or 0) to clear.",
        params: OrderParams,
        body: ModifyOrderBody,
        response: { 200: DataResponse(OrderViewSchema), ...authenticatedErrors, 409: ErrorResponse },
      },
    },
    async (request) =>
      modifyOrder(
        platform,
        userOf(request),
        Number(request.params.accountId),
        Number(request.params.orderId),
        request.body,
      ),
  );

  app.delete(
    "/api/v1/accounts/:accountId/orders/:orderId",
    {
      schema: {
        tags: ["Trade"],
        summary: "Cancel a pending order; answers it as cancelled",
        params: OrderParams,
        response: { 200: DataResponse(OrderViewSchema), ...authenticatedErrors, 409: ErrorResponse },
      },
    },
    async (request) =>
      cancelOrder(platform, userOf(request), Number(request.params.accountId), Number(request.params.orderId)),
  );

  // ---- positions ----

  app.get(
    "/api/v1/accounts/:accountId/positions",
    {
      config: { snapshotSequence: true },
      schema: {
        tags: ["Trade"],
        summary: "Open positions (table) with current price and floating profit",
        description: columnsDescription(PositionTable),
        params: AccountIdParams,
        querystring: NoQuery,
        response: { 200: PositionTable, ...authenticatedErrors },
      },
    },
    async (request, reply) => {
      const table = openPositions(platform, userOf(request), Number(request.params.accountId));
      markSnapshotSequence(reply, platform.durableSequence);
      return table;
    },
  );

  app.get(
    "/api/v1/accounts/:accountId/positions/:positionId",
    {
      schema: {
        tags: ["Trade"],
        summary: "One open position with its current price and floating profit (a closed one: history/positions)",
        params: PositionParams,
        querystring: NoQuery,
        response: { 200: DataResponse(PositionViewSchema), ...authenticatedErrors },
      },
    },
    async (request) =>
      onePosition(platform, userOf(request), Number(request.params.accountId), Number(request.params.positionId)),
  );

  app.post(
    "/api/v1/accounts/:accountId/positions/:positionId",
    {
      schema: {
        tags: ["Trade"],
        summary: "Modify a position's stop loss, take profit and trailing distance",
        description: "Omitted fields keep their value; null (or 0) clears.",
        params: PositionParams,
        body: ModifyPositionBody,
        response: { 200: DataResponse(PositionViewSchema), ...authenticatedErrors },
      },
    },
    async (request) =>
      modifyPosition(
        platform,
        userOf(request),
        Number(request.params.accountId),
        Number(request.params.positionId),
        request.body,
      ),
  );

  app.post(
    "/api/v1/accounts/:accountId/positions/:positionId/close",
    {
      schema: {
        tags: ["Trade"],
        summary: "Close a position, whole or partly (volume in lots)",
        description:
          "Closes fill at the bid (buy positions) or ask (sell positions); answers the closing deals. With a " +
          "clientOrderId, a retry answers the first close (`duplicate: true`) and closes nothing again, also once the " +
          "position is closed; the id used otherwise is DUPLICATE_CLIENT_ORDER_ID (409), or POSITION_NOT_FOUND when the " +
          "position named is not open.",
        params: PositionParams,
        body: ClosePositionBody,
        response: { 200: DataResponse(CloseResult), ...authenticatedErrors, 409: ErrorResponse },
      },
      // No body at all closes the whole position.
      preValidation: emptyBodyIsObject,
    },
    async (request) =>
      closePosition(
        platform,
        userOf(request),
        Number(request.params.accountId),
        Number(request.params.positionId),
        request.body ?? {},
      ),
  );

  // ---- history ----

  for (const [kind, summary, history] of HISTORIES)
    app.get(
      `/api/v1/accounts/:accountId/history/${kind}`,
      {
        schema: {
          tags: ["Trade"],
          summary,
          description: columnsDescription(history.table, HISTORY_DESCRIPTION),
          params: AccountIdParams,
          querystring: HistoryQuerySchema,
          response: { 200: history.table, ...authenticatedErrors },
        },
      },
      async (request) => history(platform, userOf(request), Number(request.params.accountId), request.query),
    );
};
