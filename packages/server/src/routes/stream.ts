/**
 * The native stream's page in `/docs`: `GET /api/v1/ws` without a WebSocket upgrade answers 400 and
 * documents the protocol (the upgrade itself never reaches Fastify: the upgrade router takes it).
 */
import type { RouteModule } from "../app.ts";
import { ApiError } from "../errors.ts";
import { ErrorResponse } from "../schemas.ts";
import { wsCloseCodesDescription } from "../ws-codes.ts";
import { DEFAULT_STREAM_LIMITS } from "../ws-stream.ts";
import { DEFAULT_STREAM_SOCKETS_PER_ADDRESS, DEFAULT_STREAM_UNAUTHORIZED_SOCKETS_PER_ADDRESS } from "../config.ts";

export const STREAM_DESCRIPTION = [
  "WebSocket: `wss://<host>/api/v1/ws?token=<JWT or API key>`, or connect and send",
  '`{"type":"authorize","payload":{"token":"..."}}` within 5 s (answered `authorized` {accountIds, scope, expiresAt}).',
  "On an open socket, an `authorize` with a token of its own session (POST /api/v1/session/refresh) moves the",
  "socket's expiry to the token's; any other credential is refused and changes nothing.",
  "An invalid token closes the socket at once (an `error` message, then close code 4001).",
  'Envelope both ways: `{"type","payload","id"?}`; replies echo `id`. API keys stream their one account;',
  "scope `read` gets market data, account events and history, `trade`/`full` may also trade.",
  "",
  "| client → server | payload | answer |",
  "| --- | --- | --- |",
  "| `subscribe` | `{symbols?, events, accountId?, sinceSeq?}`; events `quoteEvent` (needs symbols), `executionEvent`, " +
    "`portfolioEvent`, `balanceEvent` (account: default the API key's, else the session's (the one it signed in to), else the first; symbols filter executions), " +
    "`notificationEvent`, `priceAlertEvent` (the user) | `subscribed` echoing the payload; then the missed " +
    "account events after `sinceSeq`, or `resyncRequired` {accountId, sinceSeq, lastSeq, windowEvents} |",
  "| `unsubscribe` | `{symbols?, events, accountId?}` | `unsubscribed` echoing the payload |",
  "| `depthSubscribe` / `depthUnsubscribe` | `{symbol, depth?}` (1-50 levels, default 10) | `subscribed` / `unsubscribed` |",
  "| `candleSubscribe` / `candleUnsubscribe` | `{symbol, timeframe}` (M1 … MN1) | `subscribed` (then the live bar) " +
    "/ `unsubscribed` |",
  "| `metricsSubscribe` / `metricsUnsubscribe` | `{accountId}` | `subscribed` / `unsubscribed` |",
  "| `createOrder`, `cancelOrder`, `amendOrder`, `closePosition`, `amendPosition` | the REST body plus " +
    "`accountId` (optional) and `orderId` / `positionId` | `result` with the REST answer when the request has " +
    "an `id`; `error` {code, message} on failure |",
  "| `orderHistory`, `dealHistory`, `positionHistory` | the REST query plus `accountId` | `result` (a table) |",
  "| `ping` | `{}` | `pong` |",
  "",
  "Server → client: `quoteEvent` {symbol, bid, ask, ts} (conflated per socket: the latest per symbol), " +
    "`depthEvent` {symbol, bids, asks, ts} ([{price, volume}], volume null for unlimited), `candleEvent` {symbol, " +
    "timeframe, time, open, high, low, close, tickVolume, closed} (each update of a bar; the latest per bar when a " +
    "socket is slow), `metricsEvent` " +
    "{accountId, balance, credit, equity, margin, freeMargin, marginLevel, profit, positions: [{positionId, " +
    "currentPrice, profit, swap}], ts}, `executionEvent`, " +
    "`portfolioEvent`, `balanceEvent` (each with accountId, seq, event, time; see account-events.ts), " +
    "`notificationEvent` (a row of GET /api/v1/notifications as an object, with `kind`, plus `unread`: the user's " +
    "unread count once it was stored, the count GET /api/v1/notifications/unread-count answers), " +
    "`priceAlertEvent` (seq = notification id / alert log id), `result`, `error`.",
  "Every account event carries `seq` (the journal sequence, increasing per account; a deal gives an " +
    "executionEvent, a portfolioEvent and, when it moves money, a balanceEvent with the same seq). Reconnect " +
    "with `sinceSeq` = the last seq seen on an account event to get what was missed, once and in order, across " +
    "server restarts, within the last 10,000 journal events; a later subscribe with `sinceSeq` for more types or " +
    "symbols replays theirs and sends nothing twice. " +
    "A rejected order command gives a live-only executionEvent `ORDER_REJECTED` with `seq: null`.",
  "",
  "Limits per socket: 64 KiB per message (close 1009), 50 messages/s (`error` RATE_LIMITED; close 4029 when " +
    "it goes on), 200 subscriptions (`error` LIMIT_REACHED), send buffer 4 MiB (close 4008). The server pings " +
    "every 20 s; no pong by the next ping closes with 4009.",
  "Trading and history requests spend a budget per second shared by every socket of the credential: the " +
    "user's BOURSE_RATE_LIMIT_PER_SECOND (JWT) or the API key's Automation budget " +
    "(BOURSE_AUTOMATION_RATE_LIMIT_PER_SECOND, with its REST calls); past it `error` RATE_LIMITED, the socket " +
    `stays open. Sockets: ${DEFAULT_STREAM_LIMITS.maxSocketsPerUser} per user, ` +
    `${DEFAULT_STREAM_LIMITS.maxSocketsPerApiKey} per API key, BOURSE_STREAM_SOCKETS_PER_ADDRESS (default ` +
    `${DEFAULT_STREAM_SOCKETS_PER_ADDRESS}) open per client address (Pusher's included), ` +
    `BOURSE_STREAM_UNAUTHORIZED_SOCKETS_PER_ADDRESS (default ${DEFAULT_STREAM_UNAUTHORIZED_SOCKETS_PER_ADDRESS}) per ` +
    "address waiting for `authorize`; the next is closed with 4030 after `error` LIMIT_REACHED.",
  "",
  wsCloseCodesDescription(),
].join("\n");

export const streamRoutes: RouteModule = (app) => {
  app.get(
    "/api/v1/ws",
    {
      config: { auth: "public" },
      schema: {
        tags: ["Stream"],
        summary: "The native WebSocket stream (seeds 000 and 002): connect with a WebSocket upgrade",
        description: STREAM_DESCRIPTION,
        // 429: the plain GET spends its address's share of the Client API's budget, as every public route does.
        response: { 400: ErrorResponse, 429: ErrorResponse },
      },
    },
    async () => {
      throw new ApiError("INVALID_DATA", "This is a WebSocket endpoint: connect with an upgrade (see /docs)");
    },
  );
};
