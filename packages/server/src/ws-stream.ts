/**
 * The native stream (seeds 000 and 002, DESIGN.md section 6, API.md "Native stream"): `/api/v1/ws`.
 *
 * An adapter over the bus: it reads quotes, depth, account events, metrics and the user streams from
 * their topics only (quotes.X, depth.X, account.{login}, metrics.{login}, user.{userId}), so it does not
 * care where the engine runs. Trading and history requests call the shared application service
 * (trading-service.ts) with the same TypeBox schemas as REST, compiled with TypeBox's TypeCompiler
 * (no type coercion: JSON clients send JSON types).
 *
 * Envelope `{"type","payload","id"?}` both ways; replies echo `id`. Authorization by `?token=` (JWT or
 * API key) or a first `authorize` message within 5 s. Close codes: ws-codes.ts; error codes: errors.ts.
 * An authorised socket listens to its credential's revocation topic (`session.{id}` or `apiKey.{id}`): a
 * logout, a password change, the session bound, or revoking or rotating the key closes it at once with
 * REVOKED (4004), nothing queued sent after it.
 *
 * Bounds beyond the socket's own: open sockets per client address (shared with the Pusher endpoint) and not yet
 * authorised per address, taken right after the handshake; authorised sockets per user and per API key, taken at
 * authorization and shared with the Pusher endpoint's sockets holding account channels (upgrade-router.ts); the next
 * is closed with TOO_MANY_SOCKETS (4030). Trading and history requests spend the budget
 * REST spends for the same credential (the user's, or the API key's Automation limiter), so a user's orders per
 * second do not grow with their sockets; a `subscribe` with `sinceSeq` spends one request of it per journal page its
 * replay reads (REPLAY_PAGE events; a `resyncRequired` answer one), before it changes anything, so journal reads do
 * not grow with the message rate either.
 *
 * Fan-out, with the mechanics of stream-outbound.ts (shared with the Pusher endpoint): one bus
 * subscription per topic for all sockets; a bus message is serialised once, into a ready WebSocket frame,
 * for all its subscribers (depth: once per requested depth). Each socket has a queue (replies and account
 * events: never dropped) and a conflation map (quotes, depth and metrics: the latest per topic; candles: per bar); sockets
 * with something to send are flushed once per event-loop turn, every frame of a flush written at once
 * (one write). When a socket's send buffer passes `highWaterBytes`, conflated data waits for it to drain
 * (a slow reader gets the latest quote, not a backlog); when its buffer plus queue passes
 * `maxBufferedBytes`, or it stays stalled `slowConsumerMs`, it is closed with SLOW_CONSUMER (4008).
 */
import type { EngineEvent } from "@bourse/core";
import { PLATFORM_LIMITS } from "@bourse/store";
import { Type, type Static, type TSchema } from "@sinclair/typebox";
import { TypeCompiler, type TypeCheck } from "@sinclair/typebox/compiler";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { RawData, WebSocket, WebSocketServer } from "ws";
import {
  ACCOUNT_EVENT_TYPES,
  AccountEvents,
  accountEventsOf,
  type AccountBusMessage,
  type AccountEventType,
} from "./account-events.ts";
import { metricsPayload } from "./account-metrics.ts";
import { ApiKeyService, apiKeyRefusal, isApiKeyFormat } from "./api-keys.ts";
import { toApiError } from "./app.ts";
import type { AuthService } from "./auth.ts";
import { BusTopics, revocationTopic, type BusMessage, type Credential, type RevokedMessage } from "./bus.ts";
import { clientAddress, proxyTrust, type ProxyTrust } from "./client-address.ts";
import {
  DEFAULT_STREAM_REPLAY_WINDOW_EVENTS,
  DEFAULT_STREAM_SOCKETS_PER_ADDRESS,
  DEFAULT_STREAM_UNAUTHORIZED_SOCKETS_PER_ADDRESS,
} from "./config.ts";
import { ApiError, type ApiErrorCode } from "./errors.ts";
import {
  CANDLE_TIMEFRAMES,
  candleEventPayload,
  depthPayload,
  marketDataOf,
  quotePayload,
  truncateDepth,
  type DepthPayload,
} from "./market-data.ts";
import type { Platform } from "./platform.ts";
import { Closed } from "./schemas.ts";
import {
  delayUntil,
  FlushScheduler,
  streamSocketServer,
  MessageRate,
  Outbound,
  TopicFanout,
  barKey,
  barKeyPrefix,
  textFrame,
} from "./stream-outbound.ts";
import {
  ClosePositionBody,
  HistoryQuerySchema,
  ModifyOrderBody,
  ModifyPositionBody,
  PlaceOrderBody,
  cancelOrder,
  checkOrder,
  closePosition,
  dealHistory,
  modifyOrder,
  modifyPosition,
  orderHistory,
  placeOrder,
  positionHistory,
} from "./trading-service.ts";
import {
  OpenSocketCounts,
  openSocketsByAddressOf,
  openSocketsByApiKeyOf,
  openSocketsByUserOf,
  takeUserAndApiKeySlots,
  type UpgradeAdapter,
} from "./upgrade-router.ts";
import { WsCloseCodes, type WsCloseName } from "./ws-codes.ts";
import { typeboxErrorMessage } from "./validation-messages.ts";
import { instrumentOf } from "./market-views.ts";
import { timeToWire } from "./wire.ts";
import { clientRateLimiterOf, clientRequestKey, type FixedWindowLimiter } from "./rate-window.ts";
import { automationRateLimiterOf } from "./routes/automation.ts";

export const NATIVE_STREAM_PATH = "/api/v1/ws";

export interface NativeStreamLimits {
  /** Largest client message (ws maxPayload); larger ones close the socket with 1009. */
  maxPayloadBytes: number;
  /** Time to send `authorize` when connecting without ?token=. */
  authTimeoutMs: number;
  /** Server pings this often; a socket that did not pong since the last ping is closed (PING_TIMEOUT). */
  pingIntervalMs: number;
  /** After a close frame, the socket is destroyed if the close handshake has not finished by then. */
  closeGraceMs: number;
  /** Topics one socket may hold (each quote symbol, depth symbol, account, metrics account and user stream). */
  maxSubscriptions: number;
  /** Client messages per second (token bucket, burst of the same size); more answer RATE_LIMITED. */
  messagesPerSecond: number;
  /** Above this many bytes waiting in the send buffer, conflated data (quotes, depth, metrics) waits. */
  highWaterBytes: number;
  /** Send buffer plus queue above this: closed with SLOW_CONSUMER. */
  maxBufferedBytes: number;
  /** Stalled above the high-water mark this long: closed with SLOW_CONSUMER. */
  slowConsumerMs: number;
  /** `sinceSeq` older than this many journal events (or ahead of the journal) answers `resyncRequired`. */
  replayWindowEvents: number;
  /** Depth levels when depthSubscribe gives none, and the most it may ask for. */
  defaultDepthLevels: number;
  maxDepthLevels: number;
  /**
   * Sockets one user holds, JWT and API-key sockets together, with the Pusher sockets holding a channel of one of the
   * user's accounts; the next is closed with TOO_MANY_SOCKETS (Pusher: its channel is refused).
   */
  maxSocketsPerUser: number;
  /** Sockets one API key holds (within its user's), native and Pusher: a runaway bot leaves room for the terminal. */
  maxSocketsPerApiKey: number;
  /** Sockets one client address holds open, this stream's and the Pusher endpoint's together. */
  maxSocketsPerAddress: number;
  /** Sockets one client address holds before their `authorize` (each may wait authTimeoutMs). */
  maxUnauthorizedSocketsPerAddress: number;
}

export const DEFAULT_STREAM_LIMITS: Readonly<NativeStreamLimits> = {
  maxPayloadBytes: 64 * 1024,
  authTimeoutMs: 5_000,
  pingIntervalMs: 20_000,
  closeGraceMs: 5_000,
  maxSubscriptions: 200,
  messagesPerSecond: 50,
  highWaterBytes: 256 * 1024,
  maxBufferedBytes: 4 * 1024 * 1024,
  slowConsumerMs: 30_000,
  replayWindowEvents: DEFAULT_STREAM_REPLAY_WINDOW_EVENTS,
  defaultDepthLevels: 10,
  maxDepthLevels: 50,
  // A terminal, a phone, a web page and a few bots, each with a socket or two; one socket carries every subscription.
  maxSocketsPerUser: 20,
  maxSocketsPerApiKey: 10,
  // An office or a carrier's NAT shares one address (BOURSE_STREAM_SOCKETS_PER_ADDRESS and
  // BOURSE_STREAM_UNAUTHORIZED_SOCKETS_PER_ADDRESS set them on a server).
  maxSocketsPerAddress: DEFAULT_STREAM_SOCKETS_PER_ADDRESS,
  maxUnauthorizedSocketsPerAddress: DEFAULT_STREAM_UNAUTHORIZED_SOCKETS_PER_ADDRESS,
};

const REPLAY_PAGE = 1000;

/**
 * How long a ping may wait for its pong before the socket counts as silent (`seemsDead`): every socket is unanswered
 * for a round trip after each ping round, and a phone's round trip on a congested mobile link, behind the frames
 * queued before the ping, takes seconds. A quarter of the default ping interval (20 s), so a socket that missed a ping
 * is told silent for most of the round before the next ping closes it.
 */
export const PONG_MARGIN_MS = 5_000;

/** The `error` message before REVOKED (4004), by why the session was revoked. */
const SESSION_REVOKED_MESSAGES: Partial<Record<RevokedMessage["payload"]["reason"], string>> = {
  logout: "The session was ended by a logout: sign in again",
  passwordChange: "The password was changed, which ended this session: sign in again",
  passwordReset: "The broker set a new password, which ended this session: sign in with it",
  sessionsEnded: "The broker ended this user's sessions: sign in again",
  userDisabled: "The broker disabled this user, which ended this session",
  refreshTokenReused:
    "A refresh token of this session was used again after it was replaced, as a copied one would be: sign in again",
  sessionLimit: `A newer sign-in ended this session (at most ${PLATFORM_LIMITS.activeSessionsPerUser} active sessions per user): sign in again`,
};
/** The `error` message before REVOKED (4004) of an API key's socket, by why the key was revoked. */
const API_KEY_REVOKED_MESSAGES: Partial<Record<RevokedMessage["payload"]["reason"], string>> = {
  apiKeyRotated: "The API key was rotated: use the new key",
  userDisabled: "The broker disabled this key's user, which revoked the key",
};
const MAX_PENDING_MESSAGES = 100;

/** Who a socket acts for: a JWT session (all the user's accounts, trading) or an API key (one account, its scope). */
interface StreamPrincipal {
  readonly userId: string;
  readonly kind: "jwt" | "apiKey";
  /** The API key's account, the only one it may use; null for a JWT. */
  readonly accountId: number | null;
  /** A JWT's session's account (the one it signed in to, else the user's first at sign-in): a message's default. */
  readonly sessionAccountId: number | null;
  readonly scope: "read" | "trade" | "full";
  readonly expiresAt: number | null;
  /** The session or API key it was authorised with: its revocation closes the socket. */
  readonly credential: Credential;
}

// ---- frames ----

function envelope(type: string, payload: unknown, id?: string | number): string {
  return JSON.stringify(id === undefined ? { type, payload } : { type, payload, id });
}

// ---- message schemas ----

const AccountIdWire = Type.Union([
  Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
  Type.String({ pattern: "^[0-9]{1,15}$" }),
]);
const TicketWire = Type.Union([
  Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
  Type.String({ pattern: "^[0-9]{1,15}$" }),
]);
const STREAM_EVENTS = [
  "quoteEvent",
  "executionEvent",
  "portfolioEvent",
  "balanceEvent",
  "notificationEvent",
  "priceAlertEvent",
] as const;
type StreamEvent = (typeof STREAM_EVENTS)[number];
const USER_EVENTS: readonly StreamEvent[] = ["notificationEvent", "priceAlertEvent"];
const SymbolName = Type.String({ minLength: 1, maxLength: 32 });

const SubscribePayload = Closed({
  // At least one: an empty list subscribed account events to no symbol at all (found by the audit of 7 December).
  symbols: Type.Optional(Type.Array(SymbolName, { minItems: 1, maxItems: 100 })),
  events: Type.Array(Type.Union(STREAM_EVENTS.map((name) => Type.Literal(name))), { minItems: 1, maxItems: 6 }),
  accountId: Type.Optional(AccountIdWire),
  sinceSeq: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
});
const UnsubscribePayload = Closed({
  symbols: SubscribePayload.properties.symbols,
  events: SubscribePayload.properties.events,
  accountId: Type.Optional(AccountIdWire),
});
const DepthSubscribePayload = Closed({ symbol: SymbolName, depth: Type.Optional(Type.Integer({ minimum: 1 })) });
const DepthUnsubscribePayload = Closed({ symbol: SymbolName });
const CandlePayloadSchema = Closed({
  symbol: SymbolName,
  timeframe: Type.Union(CANDLE_TIMEFRAMES.map((timeframe) => Type.Literal(timeframe))),
});
const MetricsPayloadSchema = Closed({ accountId: AccountIdWire });
const AUTHORIZE = TypeCompiler.Compile(Closed({ token: Type.String({ minLength: 1, maxLength: 4096 }) }));
const PingPayload = Closed({});
const CancelOrderPayload = Closed({ accountId: Type.Optional(AccountIdWire), orderId: TicketWire });
const AmendOrderPayload = Closed({
  accountId: Type.Optional(AccountIdWire),
  orderId: TicketWire,
  ...ModifyOrderBody.properties,
});
const ClosePositionPayload = Closed({
  accountId: Type.Optional(AccountIdWire),
  positionId: TicketWire,
  ...ClosePositionBody.properties,
});
const AmendPositionPayload = Closed({
  accountId: Type.Optional(AccountIdWire),
  positionId: TicketWire,
  ...ModifyPositionBody.properties,
});
const HistoryPayload = Closed({ accountId: Type.Optional(AccountIdWire), ...HistoryQuerySchema.properties });

interface Handler<Schema extends TSchema> {
  readonly check: TypeCheck<Schema>;
  /** Trading needs a JWT or an API key of scope trade/full. */
  readonly trading?: boolean;
  /** Answers `result` even without an id (history reads: they are useless otherwise). */
  readonly alwaysAnswer?: boolean;
  /**
   * A request REST counts (trading and history): it spends the user's budget (JWT) or the key's Automation budget
   * (API key), shared with REST, so more sockets do not buy more orders.
   */
  readonly rateLimited?: boolean;
  run(connection: Connection, payload: Static<Schema>, id: string | number | undefined): Promise<unknown>;
}

function handler<Schema extends TSchema>(
  schema: Schema,
  run: Handler<Schema>["run"],
  options: { trading?: boolean; alwaysAnswer?: boolean; rateLimited?: boolean } = {},
): Handler<Schema> {
  return { check: TypeCompiler.Compile(schema), run, ...options };
}

/** Every client message type but `authorize` (handled before them) and its handler. */
const HANDLERS: Readonly<Record<string, Handler<TSchema>>> = {
  subscribe: handler(SubscribePayload, (c, p, id) => c.subscribe(p, id)),
  unsubscribe: handler(UnsubscribePayload, (c, p, id) => c.unsubscribe(p, id)),
  depthSubscribe: handler(DepthSubscribePayload, (c, p, id) => c.depthSubscribe(p, id)),
  depthUnsubscribe: handler(DepthUnsubscribePayload, (c, p, id) => c.depthUnsubscribe(p, id)),
  candleSubscribe: handler(CandlePayloadSchema, (c, p, id) => c.candleSubscribe(p, id)),
  candleUnsubscribe: handler(CandlePayloadSchema, (c, p, id) => c.candleUnsubscribe(p, id)),
  metricsSubscribe: handler(MetricsPayloadSchema, (c, p, id) => c.metricsSubscribe(p, id)),
  metricsUnsubscribe: handler(MetricsPayloadSchema, (c, p, id) => c.metricsUnsubscribe(p, id)),
  // The server's clock beside the answer: a client measures its offset by it (the audit of a terminal's journey of 7
  // December, sixth session: nothing gave the server's time).
  ping: handler(PingPayload, async (c, _p, id) =>
    c.reply("pong", { serverTime: timeToWire(c.platform.clock.now()) }, id),
  ),
  createOrder: handler(PlaceOrderBody, async (c, p) => placeOrder(c.platform, c.userId, c.accountFor(p.accountId), p), {
    trading: true,
    rateLimited: true,
  }),
  // The REST check's answer (`POST …/orders/check`): a read, so it is no trading request and any scope may ask.
  checkOrder: handler(PlaceOrderBody, async (c, p) => checkOrder(c.platform, c.userId, c.accountFor(p.accountId), p), {
    alwaysAnswer: true,
    rateLimited: true,
  }),
  cancelOrder: handler(
    CancelOrderPayload,
    async (c, p) => cancelOrder(c.platform, c.userId, c.accountFor(p.accountId), Number(p.orderId)),
    { trading: true, rateLimited: true },
  ),
  amendOrder: handler(
    AmendOrderPayload,
    async (c, { accountId, orderId, ...body }) =>
      modifyOrder(c.platform, c.userId, c.accountFor(accountId), Number(orderId), body),
    { trading: true, rateLimited: true },
  ),
  closePosition: handler(
    ClosePositionPayload,
    async (c, { accountId, positionId, ...body }) =>
      closePosition(c.platform, c.userId, c.accountFor(accountId), Number(positionId), body),
    { trading: true, rateLimited: true },
  ),
  amendPosition: handler(
    AmendPositionPayload,
    async (c, { accountId, positionId, ...body }) =>
      modifyPosition(c.platform, c.userId, c.accountFor(accountId), Number(positionId), body),
    { trading: true, rateLimited: true },
  ),
  orderHistory: handler(
    HistoryPayload,
    async (c, { accountId, ...query }) => orderHistory(c.platform, c.userId, c.accountFor(accountId), query),
    { alwaysAnswer: true, rateLimited: true },
  ),
  dealHistory: handler(
    HistoryPayload,
    async (c, { accountId, ...query }) => dealHistory(c.platform, c.userId, c.accountFor(accountId), query),
    { alwaysAnswer: true, rateLimited: true },
  ),
  positionHistory: handler(
    HistoryPayload,
    async (c, { accountId, ...query }) => positionHistory(c.platform, c.userId, c.accountFor(accountId), query),
    { alwaysAnswer: true, rateLimited: true },
  ),
} as unknown as Record<string, Handler<TSchema>>;

/** The client message types (for /docs and tests). */
export const CLIENT_MESSAGE_TYPES: readonly string[] = ["authorize", ...Object.keys(HANDLERS)];

function firstError(check: TypeCheck<TSchema>, value: unknown): string {
  const error = check.Errors(value).First();
  return error ? typeboxErrorMessage(error) : "the payload is not valid";
}

// ---- topics ----

type TopicKind = "quotes" | "depth" | "candles" | "account" | "user" | "metrics";

interface AccountSubscription {
  /** Event type → the symbols it is limited to, or null for all. */
  readonly filters: Map<AccountEventType, Set<string> | null>;
  /**
   * Per stream (an event type and the symbol its messages name, if any): the highest seq delivered, and by which
   * pass (LIVE, or a replay's number), so nothing is sent twice. A replay and the live bus may both carry a record
   * (the journal is readable before its batch is published); the messages of one record come together from one
   * pass, so a seq equal to the last one is a sibling from the same pass or a copy from another. One number for
   * all streams skipped a new type's or symbol's missed events on a second subscribe with sinceSeq (found by the
   * audit of the stream of 7 December). Bounded by the event types × the instruments.
   */
  readonly delivered: Map<string, { seq: number; pass: number }>;
  /** While a replay runs: live messages wait here, then are delivered (less what the replay sent). */
  replay: { message: AccountBusMessage; frame: Buffer }[] | null;
  replayBytes: number;
}

/** The pass of live messages from the bus; replays number theirs from 1. */
const LIVE_PASS = 0;

/** An envelope's id as replies echo it: a string of at most 64 characters, or a safe integer. */
function isEnvelopeId(id: unknown): id is string | number {
  return (typeof id === "string" && id.length <= 64) || (typeof id === "number" && Number.isSafeInteger(id));
}

/** The id of a message refused before it is handled, if it is a JSON envelope with a valid one. */
function envelopeIdOf(data: RawData, isBinary: boolean): string | number | undefined {
  if (isBinary) return undefined;
  try {
    const message: unknown = JSON.parse(data.toString());
    const id = typeof message === "object" && message !== null ? (message as { id?: unknown }).id : undefined;
    return isEnvelopeId(id) ? id : undefined;
  } catch {
    return undefined;
  }
}

// ---- the adapter ----

export class NativeStream implements UpgradeAdapter {
  readonly limits: NativeStreamLimits;
  private readonly server: WebSocketServer;
  /** One fan-out per topic kind (a topic's kind says how its messages are delivered). */
  private readonly fanouts: Readonly<Record<TopicKind, TopicFanout<Connection>>>;
  private readonly connections = new Set<Connection>();

  /** Open sockets (the `bourse_stream_connections` metric). */
  get connectionCount(): number {
    return this.connections.size;
  }
  /** BOURSE_TRUST_PROXY, as the HTTP app applies it: a socket's client address. */
  private readonly proxyTrust: ProxyTrust | null;
  readonly scheduler = new FlushScheduler();
  private pingTimer: NodeJS.Timeout | null = null;
  private closed = false;
  /** Sockets closed as slow consumers, ping timeouts, rate limits (metrics, tests). */
  readonly closes: Record<string, number> = {};
  /** Open sockets per client address, shared with the Pusher endpoint. */
  readonly socketsByAddress: OpenSocketCounts;
  /** Sockets per client address not authorised yet. */
  readonly unauthorizedByAddress = new OpenSocketCounts();
  /**
   * Sockets per user (JWT and API key) and per API key, shared with the Pusher endpoint (whose sockets count from
   * their first channel of the user or the key).
   */
  readonly socketsByUser: OpenSocketCounts;
  readonly socketsByApiKey: OpenSocketCounts;
  /**
   * JWT sockets' trading and history requests: the Client API's per-user budget itself (rate-window.ts), so REST and
   * every socket of a user spend one BOURSE_RATE_LIMIT_PER_SECOND together.
   */
  readonly requestsByUser: FixedWindowLimiter;
  /** API-key sockets' requests: the Automation API's per-key limiter itself (both faces spend one budget). */
  readonly requestsByApiKey: FixedWindowLimiter;

  constructor(
    readonly platform: Platform,
    readonly auth: AuthService,
    limits: Partial<NativeStreamLimits> = {},
  ) {
    this.limits = { ...DEFAULT_STREAM_LIMITS, ...limits };
    this.server = streamSocketServer(this.limits.maxPayloadBytes);
    this.proxyTrust = proxyTrust(platform.config.trustedProxies);
    this.socketsByAddress = openSocketsByAddressOf(platform);
    this.socketsByUser = openSocketsByUserOf(platform);
    this.socketsByApiKey = openSocketsByApiKeyOf(platform);
    this.requestsByUser = clientRateLimiterOf(platform);
    this.requestsByApiKey = automationRateLimiterOf(platform);
    const fanout = (kind: TopicKind) =>
      new TopicFanout<Connection>(platform.bus, (name, message, subscribers) =>
        this.dispatch(kind, name, message, subscribers),
      );
    this.fanouts = {
      quotes: fanout("quotes"),
      depth: fanout("depth"),
      candles: fanout("candles"),
      account: fanout("account"),
      user: fanout("user"),
      metrics: fanout("metrics"),
    };
    registry.set(platform, this);
    this.setPingInterval(this.limits.pingIntervalMs);
  }

  /** Restarts the ping timer with a new interval (tests). */
  setPingInterval(ms: number): void {
    this.limits.pingIntervalMs = ms;
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      for (const connection of this.connections) connection.heartbeat();
    }, ms);
    this.pingTimer.unref();
  }

  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer, url: URL): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    // Read now: a socket that closes during the handshake no longer has its peer's address.
    const address = clientAddress(request, this.proxyTrust);
    this.server.handleUpgrade(request, socket, head, (ws) => {
      const connection = new Connection(this, ws, address);
      this.connections.add(connection);
      connection.start(url.searchParams.get("token"));
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.pingTimer) clearInterval(this.pingTimer);
    const all = [...this.connections];
    await Promise.all(all.map((connection) => connection.shutdown()));
    this.server.close();
  }

  /** Open sockets counted for a client address (all, or not authorised yet), a user or an API key (tests, metrics). */
  openSockets(scope: "address" | "unauthorized" | "user" | "apiKey", key: string): number {
    const counts = {
      address: this.socketsByAddress,
      unauthorized: this.unauthorizedByAddress,
      user: this.socketsByUser,
      apiKey: this.socketsByApiKey,
    }[scope];
    return counts.count(key);
  }

  /** Connections open now and topics held (tests, metrics). */
  stats(): { connections: number; topics: number; maxQueuedBytes: number; maxBufferedBytes: number } {
    let maxQueuedBytes = 0;
    let maxBufferedBytes = 0;
    for (const connection of this.connections) {
      maxQueuedBytes = Math.max(maxQueuedBytes, connection.outbound.queuedBytes);
      maxBufferedBytes = Math.max(maxBufferedBytes, connection.outbound.bufferedAmount);
    }
    let topics = 0;
    for (const fanout of Object.values(this.fanouts)) topics += fanout.size;
    return { connections: this.connections.size, topics, maxQueuedBytes, maxBufferedBytes };
  }

  // ---- topics (one bus subscription per topic for all sockets) ----

  join(connection: Connection, name: string, kind: TopicKind): void {
    this.fanouts[kind].join(connection, name);
  }

  leave(connection: Connection, name: string, kind: TopicKind): void {
    this.fanouts[kind].leave(connection, name);
  }

  /** One bus message to every subscriber of its topic: serialised once (per depth for depth). */
  private dispatch(kind: TopicKind, name: string, message: BusMessage, subscribers: ReadonlySet<Connection>): void {
    switch (kind) {
      case "quotes":
      case "metrics": {
        const frame = textFrame(envelope(message.type, message.payload));
        for (const connection of subscribers) connection.outbound.conflate(name, frame);
        return;
      }
      case "depth": {
        const frames = new Map<number, Buffer>();
        for (const connection of subscribers) {
          const levels = connection.depthLevels(name);
          let frame = frames.get(levels);
          if (!frame)
            frames.set(
              levels,
              (frame = textFrame(envelope(message.type, truncateDepth(message.payload as DepthPayload, levels)))),
            );
          connection.outbound.conflate(name, frame);
        }
        return;
      }
      case "candles": {
        // The latest update of each bar, as the Pusher face sends them: a closed bar's final values are never
        // replaced by the next bar's.
        const frame = textFrame(envelope(message.type, message.payload));
        const key = barKey(name, (message.payload as { time?: unknown }).time);
        for (const connection of subscribers) connection.outbound.conflate(key, frame);
        return;
      }
      case "account": {
        const frame = textFrame(envelope(message.type, message.payload));
        for (const connection of subscribers) connection.accountMessage(message as AccountBusMessage, frame);
        return;
      }
      case "user": {
        const frame = textFrame(envelope(message.type, message.payload));
        for (const connection of subscribers) connection.userMessage(message, frame);
        return;
      }
    }
  }

  forget(connection: Connection): void {
    this.connections.delete(connection);
  }

  /**
   * The socket of `credential` (other than `except`) a newer one takes the place of: one already closing or silent
   * (its ping unanswered past PONG_MARGIN_MS: a dead network's) first, else the longest-open.
   */
  socketToReplaceFor(credential: Credential, except: Connection): Connection | null {
    let oldest: Connection | null = null;
    for (const connection of this.connections) {
      if (connection === except || !connection.holdsCredential(credential)) continue;
      if (connection.seemsDead()) return connection;
      oldest ??= connection;
    }
    return oldest;
  }

  noteClose(name: WsCloseName): void {
    this.closes[name] = (this.closes[name] ?? 0) + 1;
  }
}

const registry = new WeakMap<Platform, NativeStream>();

/** The platform's native stream (tests and benchmarks tune its limits). */
export function nativeStreamOf(platform: Platform): NativeStream | undefined {
  return registry.get(platform);
}

// ---- one socket ----

class Connection {
  readonly platform: Platform;
  readonly outbound: Outbound;
  private principal: StreamPrincipal | null = null;
  /** Topics held: name → kind. */
  private readonly topics = new Map<string, TopicKind>();
  private readonly accounts = new Map<number, AccountSubscription>();
  private readonly userEvents = new Set<string>();
  private readonly depth = new Map<string, number>();
  private authTimer: NodeJS.Timeout | null = null;
  private expiryTimer: NodeJS.Timeout | null = null;
  private closeTimer: NodeJS.Timeout | null = null;
  /** Stops listening to the credential's revocation. */
  private unwatch: (() => void) | null = null;
  /** When the server's last ping went out unanswered (platform clock), null once its pong came. */
  private pingSentAt: number | null = null;
  private closing = false;
  private chain: Promise<void> = Promise.resolve();
  private pending = 0;
  /** Replays this socket has run: each numbers its pass (see AccountSubscription.delivered). */
  private replays = LIVE_PASS;
  private readonly rate: MessageRate;
  private readonly closedPromise: Promise<void>;
  /** The socket counts it holds a slot in (address, unauthorised, user, API key): released when it closes. */
  private readonly slots: (() => void)[] = [];
  /** The user's and the API key's slots this socket holds once authorised: what a newer socket of its credential takes. */
  private readonly principalSlots: (() => void)[] = [];
  private releaseUnauthorized: (() => void) | null = null;

  constructor(
    private readonly stream: NativeStream,
    private readonly ws: WebSocket,
    /** The client's address: refused API keys count toward its limit (api-keys.ts). */
    private readonly address: string,
  ) {
    this.platform = stream.platform;
    this.rate = new MessageRate(stream.limits.messagesPerSecond);
    this.outbound = new Outbound(ws, stream.limits, stream.scheduler, () => this.closeWith("SLOW_CONSUMER"));
    this.closedPromise = new Promise((resolve) => ws.once("close", () => resolve()));
  }

  get userId(): string {
    return this.principal!.userId;
  }

  start(token: string | null): void {
    const ws = this.ws;
    ws.on("message", (data, isBinary) => this.onMessage(data, isBinary));
    ws.on("pong", () => {
      this.pingSentAt = null;
    });
    ws.on("error", () => undefined);
    ws.once("close", () => this.cleanup());
    if (!this.admit()) return;
    if (token !== null) {
      this.chain = this.authorize(token, undefined, false);
    } else {
      this.authTimer = setTimeout(() => {
        if (!this.principal) this.closeWith("AUTH_TIMEOUT", "UNAUTHORIZED", "No authorize message within 5 s");
      }, this.stream.limits.authTimeoutMs);
      this.authTimer.unref();
    }
  }

  /**
   * Takes the socket's slots of its client address (all sockets, and those not authorised yet); closes it with
   * TOO_MANY_SOCKETS when either is full.
   */
  private admit(): boolean {
    const limits = this.stream.limits;
    const address = this.stream.socketsByAddress.take(this.address, limits.maxSocketsPerAddress);
    if (!address) {
      this.closeWith(
        "TOO_MANY_SOCKETS",
        "LIMIT_REACHED",
        `At most ${limits.maxSocketsPerAddress} open sockets per client address (native and Pusher together)`,
      );
      return false;
    }
    this.slots.push(address);
    const unauthorized = this.stream.unauthorizedByAddress.take(this.address, limits.maxUnauthorizedSocketsPerAddress);
    if (!unauthorized) {
      this.closeWith(
        "TOO_MANY_SOCKETS",
        "LIMIT_REACHED",
        `At most ${limits.maxUnauthorizedSocketsPerAddress} sockets per client address waiting for authorize`,
      );
      return false;
    }
    this.slots.push(unauthorized);
    this.releaseUnauthorized = unauthorized;
    return true;
  }

  /**
   * Takes the authorised socket's slots of its user and API key, in the same turn as the check (no await between, so
   * concurrent authorisations cannot pass the limit together); null when one is full, with the refusal's message.
   */
  private admitPrincipal(principal: StreamPrincipal): string | null {
    const limits = this.stream.limits;
    const take = () =>
      takeUserAndApiKeySlots(
        this.platform,
        principal.userId,
        principal.credential.kind === "apiKey" ? principal.credential.id : null,
        limits,
      );
    let slots = take();
    // At the bound, a new socket of a credential takes the place of that credential's oldest: a phone whose network
    // died silently held its dead sockets until the server's pings missed (25 to 45 s), and its reconnects were all
    // refused meanwhile (found by the audit of a mobile client's journey of 7 December, seventh session).
    if ("full" in slots) {
      const oldest = this.stream.socketToReplaceFor(principal.credential, this);
      if (oldest) {
        oldest.replaced();
        slots = take();
      }
    }
    if ("full" in slots)
      return slots.full === "user"
        ? `At most ${limits.maxSocketsPerUser} sockets per user (JWT and API-key sockets, native and Pusher, together)`
        : `At most ${limits.maxSocketsPerApiKey} sockets per API key (native and Pusher together)`;
    for (const release of [slots.apiKey, slots.user]) if (release) this.principalSlots.push(release);
    this.releaseUnauthorized?.();
    this.releaseUnauthorized = null;
    return null;
  }

  /**
   * The budget a principal's requests spend, shared with REST: the user's (JWT; the Client API's limiter) or the API
   * key's (the Automation API's limiter), and its key there.
   */
  private budgetOf(principal: StreamPrincipal): { limiter: FixedWindowLimiter; key: string; byApiKey: boolean } {
    return principal.credential.kind === "apiKey"
      ? { limiter: this.stream.requestsByApiKey, key: principal.credential.id, byApiKey: true }
      : { limiter: this.stream.requestsByUser, key: clientRequestKey({ userId: principal.userId }), byApiKey: false };
  }

  /** Whether the principal's budget has nothing left in this second: its next request would be refused. */
  private budgetSpent(principal: StreamPrincipal): boolean {
    const { limiter, key } = this.budgetOf(principal);
    return limiter.blocked(key) !== null;
  }

  /**
   * Spends one request of the principal's budget (`budgetOf`), or for a replay one per journal page it will read
   * (`replayPages`). Throws RATE_LIMITED past it, having spent nothing (the message is answered; the socket stays
   * open).
   */
  private spendRequest(principal: StreamPrincipal, replayPages?: number): void {
    const { limiter, key, byApiKey } = this.budgetOf(principal);
    const state = limiter.hit(key, replayPages ?? 1);
    if (!state.exceeded) return;
    const budget = byApiKey
      ? `Rate limit of ${state.limit} requests per second per API key exceeded (the Automation API's budget)`
      : `Rate limit of ${state.limit} requests per second per user exceeded`;
    if (replayPages === undefined) throw new ApiError("RATE_LIMITED", budget);
    throw new ApiError(
      "RATE_LIMITED",
      `${budget}: this replay reads ${replayPages} journal pages of ${REPLAY_PAGE} events, one request each, and ` +
        (replayPages > state.limit
          ? "never fits the budget: resume from a later sinceSeq, or subscribe without one and reload the state"
          : `the requests left in this second are ${state.remaining}`),
    );
  }

  // ---- incoming ----

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.closing) return;
    const limits = this.stream.limits;
    // Too many messages still being handled count as a refusal too (no token is taken then).
    const accepted = this.pending < MAX_PENDING_MESSAGES ? this.rate.take() : this.rate.refuse();
    if (!accepted) {
      if (this.rate.violations > limits.messagesPerSecond) {
        this.closeWith("RATE_LIMITED", "RATE_LIMITED", "Message rate exceeded again and again");
        return;
      }
      // The refusal names the message it refuses, so a client waiting on that id learns it was dropped.
      this.error(
        "RATE_LIMITED",
        `At most ${limits.messagesPerSecond} messages per second`,
        envelopeIdOf(data, isBinary),
      );
      return;
    }
    this.pending += 1;
    this.chain = this.chain
      .then(() => this.handle(data, isBinary))
      // `handle` answers every failure it expects; anything else is a bug, said in the log and answered.
      .catch((error: unknown) => {
        this.platform.log.error(`native stream: a message failed: ${String((error as Error)?.stack ?? error)}`);
        this.error("INTERNAL_ERROR", "The message could not be handled", undefined);
      })
      .finally(() => {
        this.pending -= 1;
      });
  }

  private async handle(data: RawData, isBinary: boolean): Promise<void> {
    if (this.closing) return;
    let message: unknown;
    try {
      if (isBinary) throw new Error("binary");
      message = JSON.parse(data.toString());
    } catch {
      if (!this.principal) return this.closeWith("UNAUTHORIZED", "UNAUTHORIZED", "Send authorize first");
      return this.error("INVALID_DATA", "Messages are JSON text envelopes {type, payload, id?}", undefined);
    }
    if (typeof message !== "object" || message === null || Array.isArray(message)) {
      if (!this.principal) return this.closeWith("UNAUTHORIZED", "UNAUTHORIZED", "Send authorize first");
      return this.error("INVALID_DATA", "Messages are JSON objects {type, payload, id?}", undefined);
    }
    const { type, payload = {}, id, ...extra } = message as Record<string, unknown>;
    const validId = id === undefined || isEnvelopeId(id);
    const replyId = validId ? (id as string | number | undefined) : undefined;
    if (!this.principal) {
      if (type !== "authorize")
        return this.closeWith("UNAUTHORIZED", "UNAUTHORIZED", "The first message must be authorize {token}");
      if (!AUTHORIZE.Check(payload)) return this.closeWith("UNAUTHORIZED", "UNAUTHORIZED", "authorize needs {token}");
      return this.authorize(payload.token, replyId, true);
    }
    if (typeof type !== "string" || !validId || Object.keys(extra).length > 0)
      return this.error(
        "INVALID_DATA",
        "An envelope has type (string), payload (object) and an optional id (string of at most 64 characters or integer)",
        replyId,
      );
    if (type === "authorize") return this.extendAuthorization(payload, replyId);
    // Own names only: "constructor" or "toString" found an object member, threw, and the socket got no answer.
    const handler = Object.hasOwn(HANDLERS, type) ? HANDLERS[type] : undefined;
    if (!handler) return this.error("INVALID_DATA", `Unknown message type: ${type.slice(0, 64)}`, replyId);
    if (!handler.check.Check(payload)) return this.error("INVALID_DATA", firstError(handler.check, payload), replyId);
    try {
      if (handler.trading && this.principal.scope === "read")
        throw new ApiError("FORBIDDEN", "This API key's scope (read) does not allow trading");
      if (handler.rateLimited) this.spendRequest(this.principal);
      const result = await handler.run(this, payload, replyId);
      if (result !== undefined && (replyId !== undefined || handler.alwaysAnswer))
        this.reply("result", result, replyId);
    } catch (error) {
      const apiError = toApiError(error);
      if (apiError.code === "INTERNAL_ERROR")
        this.platform.log.error(`native stream: ${type} failed: ${String((error as Error)?.stack ?? error)}`);
      this.error(apiError.code, apiError.message, replyId);
    }
  }

  private async authorize(token: string, id: string | number | undefined, byMessage: boolean): Promise<void> {
    let principal: StreamPrincipal;
    try {
      principal = await this.authenticate(token);
      if (this.closing) return;
      // Listen to the credential's revocation first, then check it once more: a revocation that landed
      // while the first check ran was published before the listening began, and the second check sees it.
      this.watch(principal.credential);
      await this.authenticate(token);
    } catch (error) {
      const apiError = toApiError(error);
      // The server could not check the token (its store or engine unavailable, 503): nothing is wrong with it, so the
      // client is told to come back, not to sign in again (found by the audit of a mobile client's journey of 7
      // December, seventh session: a database hiccup closed every reconnecting phone with 4001).
      if (apiError.statusCode === 503) return this.closeWith("TRY_AGAIN_LATER", apiError.code, apiError.message, id);
      const code = apiError.code === "INTERNAL_ERROR" ? "UNAUTHORIZED" : apiError.code;
      return this.closeWith("UNAUTHORIZED", code, apiError.message, id);
    }
    if (this.closing) return;
    const refusal = this.admitPrincipal(principal);
    if (refusal !== null) return this.closeWith("TOO_MANY_SOCKETS", "LIMIT_REACHED", refusal, id);
    this.principal = principal;
    if (this.authTimer) clearTimeout(this.authTimer);
    this.scheduleExpiry(principal.expiresAt);
    if (byMessage) this.reply("authorized", this.authorizedPayload(principal), id);
  }

  /**
   * An `authorize` on an authorized socket: a token of the same session (`POST /api/v1/session/refresh`) moves the
   * socket's expiry to the token's; any other credential is refused and changes nothing. A terminal that refreshed its
   * session kept a stream that closed at the first token's expiry (found by the audit of a terminal's journey of 7
   * December, sixth session).
   */
  private async extendAuthorization(payload: unknown, id: string | number | undefined): Promise<void> {
    const current = this.principal!;
    if (!AUTHORIZE.Check(payload)) return this.error("INVALID_DATA", "authorize needs {token}", id);
    let principal: StreamPrincipal;
    try {
      principal = await this.authenticate(payload.token);
    } catch (error) {
      const apiError = toApiError(error);
      return this.error(apiError.code === "INTERNAL_ERROR" ? "UNAUTHORIZED" : apiError.code, apiError.message, id);
    }
    if (this.closing || this.principal !== current) return;
    if (principal.credential.kind !== current.credential.kind || principal.credential.id !== current.credential.id)
      return this.error(
        "INVALID_DATA",
        "This socket is authorized already: only a token of its own session (a refresh) may extend it",
        id,
      );
    this.principal = { ...current, expiresAt: principal.expiresAt };
    this.scheduleExpiry(principal.expiresAt);
    this.reply("authorized", this.authorizedPayload(this.principal), id);
  }

  /** Closes the socket with TOKEN_EXPIRED at `expiresAt` (a JWT's; null: never), in place of any earlier timer. */
  private scheduleExpiry(expiresAt: number | null): void {
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
    if (expiresAt === null) return;
    this.expiryTimer = setTimeout(
      () => this.closeWith("TOKEN_EXPIRED", "TOKEN_EXPIRED", "The session expired"),
      delayUntil(expiresAt, this.platform.clock.now()),
    );
    this.expiryTimer.unref();
  }

  private authorizedPayload(principal: StreamPrincipal) {
    return {
      accountIds: principal.accountId !== null ? [principal.accountId] : this.platform.accountIdsOf(principal.userId),
      scope: principal.scope,
      expiresAt: principal.expiresAt === null ? null : timeToWire(principal.expiresAt),
    };
  }

  /** Closes the socket with REVOKED (4004) when `credential` is revoked (the bus's revocation topic). */
  private watch(credential: Credential): void {
    this.unwatch?.();
    this.unwatch = this.platform.bus.subscribe(revocationTopic(credential), (_topic, message) => {
      const { kind, reason } = (message as RevokedMessage).payload;
      if (kind === "apiKey")
        this.closeWith("REVOKED", "INVALID_API_KEY", API_KEY_REVOKED_MESSAGES[reason] ?? "The API key was revoked");
      else this.closeWith("REVOKED", "SESSION_REVOKED", SESSION_REVOKED_MESSAGES[reason] ?? "The session was revoked");
    });
  }

  private async authenticate(token: string): Promise<StreamPrincipal> {
    if (isApiKeyFormat(token)) {
      const result = await ApiKeyService.for(this.platform).authenticate(token, this.address);
      if (!result.ok) throw apiKeyRefusal(result, new ApiError("UNAUTHORIZED", "The API key is not valid"));
      return {
        userId: result.userId,
        kind: "apiKey",
        accountId: result.accountId,
        sessionAccountId: null,
        scope: result.scope,
        expiresAt: null,
        credential: { kind: "apiKey", id: result.key.id },
      };
    }
    const principal = await this.stream.auth.authenticate(token);
    return {
      userId: principal.userId,
      kind: "jwt",
      accountId: null,
      sessionAccountId: principal.accountId,
      scope: "full",
      expiresAt: principal.expiresAt,
      credential: { kind: "session", id: principal.sessionId },
    };
  }

  /**
   * The account a message acts on: the given one if the principal may use it, else its default: an API key's
   * account, the account the session signed in to (as GET /api/v1/account answers), else the user's first.
   */
  accountFor(requested: number | string | undefined): number {
    const principal = this.principal!;
    if (requested === undefined) {
      // Checked like a requested one: a session row and the journal out of step (a store restored from an older
      // backup) must not stream another user's account (found by the review of 7 December).
      const chosen = principal.accountId ?? principal.sessionAccountId;
      if (chosen !== null) {
        this.platform.ownedAccount(principal.userId, chosen);
        return chosen;
      }
      const first = this.platform.accountIdsOf(principal.userId)[0];
      if (first === undefined) throw new ApiError("INVALID_DATA", "accountId is required");
      return first;
    }
    const accountId = Number(requested);
    if (principal.accountId !== null && accountId !== principal.accountId)
      throw new ApiError("FORBIDDEN", "This API key is bound to another account");
    this.platform.ownedAccount(principal.userId, accountId);
    return accountId;
  }

  // ---- subscriptions ----

  private reserve(names: readonly string[]): void {
    const adding = names.filter((name) => !this.topics.has(name)).length;
    if (this.topics.size + adding > this.stream.limits.maxSubscriptions)
      throw new ApiError(
        "LIMIT_REACHED",
        `At most ${this.stream.limits.maxSubscriptions} subscriptions (symbols, accounts, streams) per socket`,
      );
  }

  private join(name: string, kind: TopicKind): void {
    if (this.topics.has(name)) return;
    this.topics.set(name, kind);
    this.stream.join(this, name, kind);
  }

  private leave(name: string): void {
    const kind = this.topics.get(name);
    if (kind === undefined) return;
    this.topics.delete(name);
    this.stream.leave(this, name, kind);
    this.outbound.drop(name);
    // Bars are held per bar (`{topic}@{time}`): a live bar or a slow socket's update went out after `unsubscribed`
    // (found by the review of 7 December, sixth session). The `@` keeps M1's from taking M15's.
    if (kind === "candles") this.outbound.dropPrefix(barKeyPrefix(name));
  }

  async subscribe(payload: Static<typeof SubscribePayload>, id: string | number | undefined): Promise<undefined> {
    const events = new Set<StreamEvent>(payload.events);
    const symbols = payload.symbols ?? [];
    for (const symbol of symbols) this.platform.instrument(symbol);
    if (events.has("quoteEvent") && symbols.length === 0)
      throw new ApiError("INVALID_DATA", "quoteEvent needs symbols");
    const accountTypes = ACCOUNT_EVENT_TYPES.filter((type) => events.has(type));
    const userTypes = USER_EVENTS.filter((type) => events.has(type));
    if (payload.sinceSeq !== undefined && accountTypes.length === 0)
      throw new ApiError(
        "INVALID_DATA",
        "sinceSeq resumes account events: executionEvent, portfolioEvent, balanceEvent",
      );
    const accountId =
      accountTypes.length > 0 || payload.accountId !== undefined ? this.accountFor(payload.accountId) : null;
    const names: string[] = [];
    if (events.has("quoteEvent")) for (const symbol of symbols) names.push(BusTopics.quotes(symbol));
    if (accountId !== null && accountTypes.length > 0) names.push(BusTopics.account(accountId));
    if (userTypes.length > 0) names.push(BusTopics.user(this.userId));
    // The replay's cost, before anything changes: a refusal leaves the subscriptions as they were. A budget already
    // spent is refused before the journal is read for the cost (a query each on PostgreSQL).
    if (accountId !== null && payload.sinceSeq !== undefined && this.budgetSpent(this.principal!))
      this.spendRequest(this.principal!);
    const replayPages =
      accountId !== null && payload.sinceSeq !== undefined
        ? replayPagesOf(
            payload.sinceSeq,
            await this.platform.lastJournalSequence(),
            this.stream.limits.replayWindowEvents,
          )
        : 0;
    // The socket may have closed during the read: it must not join topics again after its cleanup.
    if (this.closing) return undefined;
    this.reserve(names);
    if (replayPages > 0) this.spendRequest(this.principal!, replayPages);

    // Account events first (a replay buffers live events before the topic is joined), then the rest.
    let replayFrom: number | null = null;
    if (accountId !== null && accountTypes.length > 0) {
      let subscription = this.accounts.get(accountId);
      if (!subscription) {
        subscription = { filters: new Map(), delivered: new Map(), replay: null, replayBytes: 0 };
        this.accounts.set(accountId, subscription);
      }
      for (const type of accountTypes) {
        const current = subscription.filters.get(type);
        if (payload.symbols === undefined || current === null) subscription.filters.set(type, null);
        else subscription.filters.set(type, new Set([...(current ?? []), ...symbols]));
      }
      if (payload.sinceSeq !== undefined) {
        subscription.replay = [];
        subscription.replayBytes = 0;
        replayFrom = payload.sinceSeq;
      }
      this.join(BusTopics.account(accountId), "account");
    }
    if (userTypes.length > 0) {
      for (const type of userTypes) this.userEvents.add(type);
      this.join(BusTopics.user(this.userId), "user");
    }
    if (events.has("quoteEvent")) {
      const marketData = marketDataOf(this.platform);
      for (const symbol of symbols) {
        const name = BusTopics.quotes(symbol);
        const fresh = !this.topics.has(name);
        this.join(name, "quotes");
        const last = marketData.lastQuote(symbol);
        if (fresh && last) {
          const snapshot = quotePayload(this.platform.instrument(symbol), last);
          this.outbound.conflate(name, textFrame(envelope("quoteEvent", snapshot)));
        }
      }
    }
    this.reply("subscribed", payload, id);
    if (accountId !== null && replayFrom !== null) await this.replay(accountId, replayFrom, id);
    return undefined;
  }

  /**
   * Sends the account's journaled events after `sinceSeq` that this socket has not sent (per stream: see
   * `delivered`), then the live ones that waited meanwhile. `id`: the subscribe's, which `resyncRequired` echoes.
   */
  private async replay(accountId: number, sinceSeq: number, id: string | number | undefined): Promise<void> {
    const subscription = this.accounts.get(accountId);
    if (!subscription || subscription.replay === null) return;
    const pass = (this.replays += 1);
    let after = sinceSeq;
    try {
      const last = await this.platform.lastJournalSequence();
      const window = this.stream.limits.replayWindowEvents;
      if (outsideReplayWindow(after, last, window)) {
        this.reply("resyncRequired", { accountId, sinceSeq, lastSeq: last, windowEvents: window }, id);
      } else {
        const resolver = AccountEvents.for(this.platform).replayResolver();
        for (;;) {
          const records = await this.platform.readJournal(after, REPLAY_PAGE);
          for (const record of records) {
            resolver.note(record);
            if (touchesAccount(record.event, accountId)) {
              for (const built of await accountEventsOf(this.platform, record, resolver)) {
                if (built.accountId !== accountId) continue;
                this.deliverAccount(
                  subscription,
                  built.message,
                  textFrame(envelope(built.message.type, built.message.payload)),
                  pass,
                );
              }
            }
            after = record.sequence;
          }
          if (records.length < REPLAY_PAGE || this.closing) break;
        }
      }
    } finally {
      const waiting = subscription.replay ?? [];
      subscription.replay = null;
      subscription.replayBytes = 0;
      for (const { message, frame } of waiting) this.deliverAccount(subscription, message, frame, LIVE_PASS);
    }
  }

  async unsubscribe(payload: Static<typeof UnsubscribePayload>, id: string | number | undefined): Promise<undefined> {
    const events = new Set<StreamEvent>(payload.events);
    const symbols = payload.symbols;
    const accountTypes = ACCOUNT_EVENT_TYPES.filter((type) => events.has(type));
    // Every check before anything changes: a refusal leaves the subscriptions as they were.
    const accountId = accountTypes.length > 0 ? this.accountFor(payload.accountId) : null;
    const subscription = accountId === null ? undefined : this.accounts.get(accountId);
    if (subscription && symbols !== undefined)
      for (const type of accountTypes)
        // Acknowledged and ignored before (found by the audit of the stream of 7 December): "all symbols but these"
        // is no filter the stream keeps.
        if (subscription.filters.get(type) === null)
          throw new ApiError(
            "INVALID_DATA",
            `${type} is subscribed for every symbol: unsubscribe it without symbols, then subscribe the symbols wanted`,
          );
    if (events.has("quoteEvent")) {
      const names = symbols
        ? symbols.map((symbol) => BusTopics.quotes(symbol))
        : [...this.topics].filter(([, kind]) => kind === "quotes").map(([name]) => name);
      for (const name of names) this.leave(name);
    }
    if (accountId !== null && subscription) {
      for (const type of accountTypes) {
        const current = subscription.filters.get(type);
        if (symbols === undefined) subscription.filters.delete(type);
        else if (current) {
          for (const symbol of symbols) current.delete(symbol);
          if (current.size === 0) subscription.filters.delete(type);
        }
      }
      if (subscription.filters.size === 0) {
        this.accounts.delete(accountId);
        this.leave(BusTopics.account(accountId));
      }
    }
    const userTypes = USER_EVENTS.filter((type) => events.has(type));
    if (userTypes.length > 0) {
      for (const type of userTypes) this.userEvents.delete(type);
      if (this.userEvents.size === 0) this.leave(BusTopics.user(this.userId));
    }
    this.reply("unsubscribed", payload, id);
    return undefined;
  }

  async depthSubscribe(
    payload: Static<typeof DepthSubscribePayload>,
    id: string | number | undefined,
  ): Promise<undefined> {
    const instrument = this.platform.instrument(payload.symbol);
    const limits = this.stream.limits;
    const levels = payload.depth ?? limits.defaultDepthLevels;
    if (levels > limits.maxDepthLevels)
      throw new ApiError("INVALID_DATA", `depth is at most ${limits.maxDepthLevels} levels`);
    const name = BusTopics.depth(payload.symbol);
    this.reserve([name]);
    this.depth.set(name, levels);
    this.join(name, "depth");
    this.reply("subscribed", payload, id);
    const last = marketDataOf(this.platform).lastQuote(payload.symbol);
    if (last) this.outbound.conflate(name, textFrame(envelope("depthEvent", depthPayload(instrument, last, levels))));
    return undefined;
  }

  async depthUnsubscribe(
    payload: Static<typeof DepthUnsubscribePayload>,
    id: string | number | undefined,
  ): Promise<undefined> {
    const name = BusTopics.depth(payload.symbol);
    this.leave(name);
    this.depth.delete(name);
    this.reply("unsubscribed", payload, id);
    return undefined;
  }

  /**
   * The bars of a symbol and timeframe as they form (`candleEvent`, the live bar at once): a chart on the native stream
   * took them only through the Pusher face, or built them from conflated quotes that miss highs and lows (found by the
   * audit of a terminal's journey of 7 December, sixth session).
   */
  async candleSubscribe(
    payload: Static<typeof CandlePayloadSchema>,
    id: string | number | undefined,
  ): Promise<undefined> {
    const instrument = instrumentOf(this.platform, payload.symbol);
    const name = BusTopics.candles(instrument.symbol, payload.timeframe);
    this.reserve([name]);
    this.join(name, "candles");
    this.reply("subscribed", payload, id);
    const marketData = marketDataOf(this.platform);
    const live = marketData.liveBar(instrument.symbol, payload.timeframe);
    // A bar whose period is over (no quote since: a weekend) is sent as closed, not as live (the same review).
    const over =
      live !== undefined && marketData.barStart(payload.timeframe, this.platform.clock.now()) > live.openTime;
    if (live)
      this.outbound.conflate(
        barKey(name, timeToWire(live.openTime)),
        textFrame(envelope("candleEvent", candleEventPayload(instrument, live, over))),
      );
    return undefined;
  }

  async candleUnsubscribe(
    payload: Static<typeof CandlePayloadSchema>,
    id: string | number | undefined,
  ): Promise<undefined> {
    this.leave(BusTopics.candles(instrumentOf(this.platform, payload.symbol).symbol, payload.timeframe));
    this.reply("unsubscribed", payload, id);
    return undefined;
  }

  depthLevels(name: string): number {
    return this.depth.get(name) ?? this.stream.limits.defaultDepthLevels;
  }

  async metricsSubscribe(
    payload: Static<typeof MetricsPayloadSchema>,
    id: string | number | undefined,
  ): Promise<undefined> {
    const accountId = this.accountFor(payload.accountId);
    const name = BusTopics.metrics(accountId);
    const already = this.topics.has(name);
    this.reserve([name]);
    this.join(name, "metrics");
    this.reply("subscribed", payload, id);
    // The snapshot once: a subscribe repeated on a subscribed socket computed every position's figures again, a
    // cheap request for a costly answer (found by the review of 7 December, sixth session).
    if (already) return undefined;
    const snapshot = metricsPayload(this.platform, accountId);
    if (snapshot) this.outbound.conflate(name, textFrame(envelope("metricsEvent", snapshot)));
    return undefined;
  }

  async metricsUnsubscribe(
    payload: Static<typeof MetricsPayloadSchema>,
    id: string | number | undefined,
  ): Promise<undefined> {
    const accountId = this.accountFor(payload.accountId);
    this.leave(BusTopics.metrics(accountId));
    this.reply("unsubscribed", payload, id);
    return undefined;
  }

  // ---- outgoing ----

  reply(type: string, payload: unknown, id: string | number | undefined): undefined {
    this.outbound.enqueue(textFrame(envelope(type, payload, id)));
    return undefined;
  }

  private error(code: ApiErrorCode, message: string, id: string | number | undefined): void {
    this.reply("error", { code, message }, id);
  }

  /** An account event from the bus (the frame is shared by every subscriber). */
  accountMessage(message: AccountBusMessage, frame: Buffer): void {
    const subscription = this.accounts.get(message.payload.accountId);
    if (!subscription) return;
    if (subscription.replay !== null) {
      subscription.replay.push({ message, frame });
      subscription.replayBytes += frame.length;
      this.outbound.withinBudget(subscription.replayBytes);
      return;
    }
    this.deliverAccount(subscription, message, frame, LIVE_PASS);
  }

  private deliverAccount(
    subscription: AccountSubscription,
    message: AccountBusMessage,
    frame: Buffer,
    pass: number,
  ): void {
    const filter = subscription.filters.get(message.type);
    if (filter === undefined) return;
    const symbol = message.payload.symbol;
    if (filter !== null && symbol !== undefined && !filter.has(symbol)) return;
    if (message.seq !== undefined) {
      const stream = symbol === undefined ? message.type : `${message.type} ${symbol}`;
      const last = subscription.delivered.get(stream);
      if (last && (message.seq < last.seq || (message.seq === last.seq && pass !== last.pass))) return;
      subscription.delivered.set(stream, { seq: message.seq, pass });
    }
    this.outbound.enqueue(frame);
  }

  userMessage(message: BusMessage, frame: Buffer): void {
    if (!this.userEvents.has(message.type)) return;
    const bound = this.principal?.accountId ?? null;
    const accountId = (message.payload as { accountId?: unknown }).accountId;
    if (bound !== null && accountId !== undefined && accountId !== null && accountId !== bound) return;
    this.outbound.enqueue(frame);
  }

  // ---- liveness and closing ----

  heartbeat(): void {
    if (this.closing) return;
    if (this.pingSentAt !== null) {
      this.closeWith("PING_TIMEOUT");
      return;
    }
    this.pingSentAt = this.platform.clock.now();
    try {
      this.ws.ping();
    } catch {
      // The socket is closing: the close event cleans up.
    }
  }

  /**
   * Sends the `error` (when given) and the close frame now, ahead of anything queued; destroys the socket
   * if the close handshake has not finished after the grace period.
   */
  closeWith(name: WsCloseName, code?: ApiErrorCode, message?: string, id?: string | number): void {
    if (this.closing) return;
    this.closing = true;
    this.stream.noteClose(name);
    const definition = WsCloseCodes[name];
    this.outbound.stop();
    try {
      if (code !== undefined)
        this.outbound.writeNow(textFrame(envelope("error", { code, message: message ?? definition.reason }, id)));
      this.ws.close(definition.code, definition.reason);
    } catch {
      this.ws.terminate();
    }
    this.closeTimer = setTimeout(() => this.ws.terminate(), this.stream.limits.closeGraceMs);
    this.closeTimer.unref();
  }

  /**
   * Whether the socket holds a user or key slot of `credential`: authorised by it, open or closing (a socket closing
   * after a missed ping keeps its slots through the close's grace, and a reconnect meanwhile takes them; found by the
   * review of 7 December, seventh session).
   */
  holdsCredential(credential: Credential): boolean {
    const held = this.principal?.credential;
    return (
      this.principalSlots.length > 0 && held !== undefined && held.kind === credential.kind && held.id === credential.id
    );
  }

  /**
   * Closing, or silent: its ping unanswered for longer than PONG_MARGIN_MS. A ping just sent is no silence: for a round
   * trip after each ping round every socket awaited its pong, and a live one was replaced before one the round had
   * closed for silence.
   */
  seemsDead(): boolean {
    return this.closing || (this.pingSentAt !== null && this.platform.clock.now() - this.pingSentAt > PONG_MARGIN_MS);
  }

  /**
   * Gives its user and key slots to a newer socket of its credential at once, and closes (`admitPrincipal`). Its
   * address slot it keeps until it is gone: the newer socket took its own, and a peer that never answers the close
   * holds the connection through the grace (found by the review of 7 December, seventh session: sockets past the
   * address bound, opened and replaced in a loop).
   */
  replaced(): void {
    for (const release of this.principalSlots.splice(0)) release();
    this.closeWith(
      "REPLACED",
      "LIMIT_REACHED",
      "A newer socket of this session or API key took this one's place: it was at its socket limit",
    );
  }

  async shutdown(): Promise<void> {
    this.closeWith("GOING_AWAY");
    const timer = setTimeout(() => this.ws.terminate(), 1000);
    await this.closedPromise;
    clearTimeout(timer);
  }

  private cleanup(): void {
    this.closing = true;
    for (const timer of [this.authTimer, this.expiryTimer, this.closeTimer]) if (timer) clearTimeout(timer);
    this.unwatch?.();
    this.unwatch = null;
    for (const [name, kind] of this.topics) this.stream.leave(this, name, kind);
    this.topics.clear();
    this.accounts.clear();
    this.outbound.stop();
    for (const release of [...this.slots.splice(0), ...this.principalSlots.splice(0)]) release();
    this.stream.forget(this);
  }
}

/** Whether a replay after `after` cannot be served from a journal ending at `last`: answered `resyncRequired`. */
function outsideReplayWindow(after: number, last: number, windowEvents: number): boolean {
  return after > last || last - after > windowEvents;
}

/** The journal pages a replay after `after` reads, the requests it spends: a `resyncRequired` answer is one. */
function replayPagesOf(after: number, last: number, windowEvents: number): number {
  if (outsideReplayWindow(after, last, windowEvents)) return 1;
  return Math.max(1, Math.ceil((last - after) / REPLAY_PAGE));
}

/** Whether a journal event concerns the account (a cheap filter before building payloads). */
function touchesAccount(event: EngineEvent, accountId: number): boolean {
  switch (event.type) {
    case "OrderAccepted":
      return event.order.accountId === accountId;
    case "DealExecuted":
      return event.deal.accountId === accountId;
    case "Rollover":
    case "DeferredSwapsCharged":
      return event.charges.some((charge) => charge.accountId === accountId);
    case "SwapsDeferred":
      // Moves no money: the stream tells the charge when it comes (DeferredSwapsCharged).
      return false;
    default:
      return event.accountId === accountId;
  }
}
