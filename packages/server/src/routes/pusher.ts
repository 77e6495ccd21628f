/**
 * The Pusher endpoint's REST side (seed 004, DESIGN.md section 7, API.md "Pusher endpoint"):
 *
 * - `POST /api/v2/ws/session`: the streams wanted → how to connect (`connection` {wsHost, wsPort, appKey,
 *   forceTls, cluster, authEndpoint}) and the resolved channel names;
 * - `GET /api/v2/ws/streams`: the catalog of every stream, its channel, events and filters;
 * - `POST /api/v2/ws/auth`: Pusher channel authorisation (form-encoded as pusher-js sends it, or JSON):
 *   `{auth, channel_data?}` signed with the app secret for one socket id and channel, only for an account
 *   of the caller (403 otherwise).
 *
 * All three take `Authorization: Bearer <API key or JWT>` (auth mode `userOrApiKey`). An API key acts for
 * its one account. The socket itself is pusher-stream.ts.
 */
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import { Type, type Static } from "@sinclair/typebox";
import type { FastifyRequest } from "fastify";
import { authenticateUserOrApiKey, scopeAllows, type RouteModule } from "../app.ts";
import type { Credential } from "../bus.ts";
import { ApiError, HttpStatus } from "../errors.ts";
import { CANDLE_TIMEFRAMES } from "../market-data.ts";
import type { Platform } from "../platform.ts";
import {
  CHANNEL_NAME_PATTERN,
  Channels,
  PUSHER_CLUSTER,
  PUSHER_PROTOCOL_VERSION,
  SOCKET_ID_PATTERN,
  parseChannel,
  pusherCodesDescription,
  signChannel,
} from "../pusher-protocol.ts";
import { pusherStreamOf } from "../pusher-stream.ts";
import { Closed, ErrorResponse, authenticatedErrors } from "../schemas.ts";

export const PUSHER_AUTH_PATH = "/api/v2/ws/auth";
const MAX_STREAMS_PER_SESSION = 50;

type StreamType = "public" | "presence";

interface FilterDefinition {
  readonly name: "symbol" | "timeframe" | "accountId" | "channelType";
  readonly type: "string" | "integer";
  readonly required: boolean;
  readonly values?: readonly string[];
  readonly description: string;
}

interface StreamDefinition {
  readonly name: string;
  readonly type: StreamType;
  readonly channel: string;
  readonly events: readonly string[];
  readonly filters: readonly FilterDefinition[];
  readonly description: string;
}

const SYMBOL_FILTER: FilterDefinition = {
  name: "symbol",
  type: "string",
  required: true,
  description: "An instrument of GET /api/v1/market",
};
const ACCOUNT_FILTERS: readonly FilterDefinition[] = [
  {
    name: "accountId",
    type: "integer",
    required: false,
    description:
      "The account's login; default: an API key's account, else the account the session signed in to, else the user's first",
  },
  {
    name: "channelType",
    type: "string",
    required: false,
    values: ["presence", "private"],
    description: "presence (default: members are your connected clients) or private",
  },
];
const ACCOUNT_EVENTS = [
  "executionEvent",
  "portfolioEvent",
  "balanceEvent",
  "metricsEvent",
  "notificationEvent",
  "priceAlertEvent",
] as const;

function accountStream(name: string, events: readonly string[], description: string): StreamDefinition {
  return {
    name,
    type: "presence",
    channel: "presence-account.{accountId}",
    events,
    filters: ACCOUNT_FILTERS,
    description: `${description} Carried by the account's channel, with the account's other events.`,
  };
}

/** The catalog: every stream a session may ask for. */
export const STREAM_CATALOG: readonly StreamDefinition[] = [
  {
    name: "quotes",
    type: "public",
    channel: "quotes.{symbol}",
    events: ["quoteEvent"],
    filters: [SYMBOL_FILTER],
    description: "quoteEvent {symbol, bid, ask, ts}: conflated (a slow reader gets the latest quote)",
  },
  {
    name: "depth",
    type: "public",
    channel: "depth.{symbol}",
    events: ["depthEvent"],
    filters: [SYMBOL_FILTER],
    description:
      "depthEvent {symbol, bids, asks, ts}: [{price, volume}] (volume null: unlimited), at most 50 levels, conflated",
  },
  {
    name: "candles",
    type: "public",
    channel: "candles.{symbol}.{timeframe}",
    events: ["candleEvent"],
    filters: [
      SYMBOL_FILTER,
      { name: "timeframe", type: "string", required: true, values: CANDLE_TIMEFRAMES, description: "The bar size" },
    ],
    description:
      "candleEvent {symbol, timeframe, time, open, high, low, close, tickVolume, closed}: the forming bar on every " +
      "tick (the latest update of each bar when conflated), closed: true once",
  },
  accountStream(
    "account",
    ACCOUNT_EVENTS,
    "Everything of one account: executions, portfolio, balance, metrics, notifications and price alerts.",
  ),
  accountStream(
    "executions",
    ["executionEvent"],
    "executionEvent: orders accepted, filled, partially filled, modified, cancelled, expired, rejected (with seq).",
  ),
  accountStream(
    "portfolio",
    ["portfolioEvent", "balanceEvent"],
    "portfolioEvent (deals, position changes, balance, margin calls) and balanceEvent (with seq).",
  ),
  accountStream(
    "metrics",
    ["metricsEvent"],
    "metricsEvent {balance, credit, equity, margin, freeMargin, marginLevel, profit, positions: [{positionId, " +
      "currentPrice, profit, swap}]}: on change, at most 4 a second.",
  ),
  accountStream(
    "notifications",
    ["notificationEvent"],
    "notificationEvent: the account's notifications and the user's that name no account, as the native stream sends " +
      "them (kind, ids, and `unread`: the user's unread count, every account's).",
  ),
  accountStream("priceAlerts", ["priceAlertEvent"], "priceAlertEvent: the user's price alerts as they trigger."),
];
const STREAMS_BY_NAME = new Map(STREAM_CATALOG.map((stream) => [stream.name, stream]));

// ---- schemas ----

const SessionBody = Closed({
  streams: Type.Array(
    Closed({
      name: Type.Union(
        STREAM_CATALOG.map((stream) => Type.Literal(stream.name)),
        { description: "A stream of GET /api/v2/ws/streams" },
      ),
      filters: Type.Optional(
        Closed({
          symbol: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
          timeframe: Type.Optional(Type.Union(CANDLE_TIMEFRAMES.map((timeframe) => Type.Literal(timeframe)))),
          accountId: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })),
          channelType: Type.Optional(Type.Union([Type.Literal("presence"), Type.Literal("private")])),
        }),
      ),
    }),
    { maxItems: MAX_STREAMS_PER_SESSION },
  ),
});

const ConnectionSchema = Type.Object({
  wsHost: Type.String({ description: "The host the client reached this API on" }),
  wsPort: Type.Integer(),
  appKey: Type.String(),
  forceTls: Type.Boolean(),
  cluster: Type.String({ description: "pusher-js 8 requires one; it names the deployment only" }),
  authEndpoint: Type.String({ description: "Channel authorisation for private and presence channels" }),
});

const SessionResponse = Type.Object({
  connection: ConnectionSchema,
  channels: Type.Array(Type.String(), { description: "The channel names to subscribe to, once each, in order" }),
});

const FilterSchema = Type.Object({
  name: Type.String(),
  type: Type.String(),
  required: Type.Boolean(),
  values: Type.Optional(Type.Array(Type.String())),
  description: Type.String(),
});
const StreamsResponse = Type.Object({
  streams: Type.Array(
    Type.Object({
      name: Type.String(),
      type: Type.Union([Type.Literal("public"), Type.Literal("presence")]),
      channel: Type.String(),
      events: Type.Array(Type.String()),
      filters: Type.Array(FilterSchema),
      description: Type.String(),
    }),
  ),
});

const AuthBody = Closed({
  socket_id: Type.String({ pattern: SOCKET_ID_PATTERN, description: "The socket's id from connection_established" }),
  channel_name: Type.String({
    pattern: CHANNEL_NAME_PATTERN,
    description: "private-account.{login} or presence-account.{login}",
  }),
});
const AuthResponse = Type.Object({
  auth: Type.String({ description: "`appKey:hex(HMAC-SHA256(appSecret, socket_id:channel_name[:channel_data]))`" }),
  channel_data: Type.Optional(
    Type.String({ description: "Presence channels: the member, JSON {user_id, user_info}, signed with the rest" }),
  ),
});

const SOCKET_DESCRIPTION = [
  `Then connect pusher-js (or Laravel Echo) with \`key: appKey, wsHost, wsPort, forceTLS: forceTls, cluster,`,
  "enabledTransports: ['ws', 'wss'], authEndpoint, auth: {headers: {Authorization: 'Bearer ...'}}` and subscribe",
  `to the channels. The socket is \`ws(s)://wsHost:wsPort/app/{appKey}?protocol=${PUSHER_PROTOCOL_VERSION}\`: Pusher protocol 7`,
  "(`pusher:connection_established` {socket_id, activity_timeout: 120}, `pusher:ping`/`pusher:pong`, `pusher:subscribe`,",
  "`pusher_internal:subscription_succeeded`, `pusher:subscription_error` {type, error, status}, presence",
  "`pusher_internal:member_added`/`member_removed`); every `data` is a JSON-encoded string. Public channels need no",
  "auth on the socket (the app key is public, as with Pusher); private and presence channels need the signature of",
  `POST ${PUSHER_AUTH_PATH} for this socket id. The server pings a client silent for activity_timeout and closes it`,
  "with 4201 when it does not answer within 30 s. Same limits as the native stream: 64 KiB per message, 50",
  "messages/s (pusher:error 4301), 200 topics per socket (subscription_error 429; an account channel reads 3),",
  "send buffer 4 MiB (close 4100).",
  "",
  pusherCodesDescription(),
].join("\n");

// ---- resolution ----

/** Who calls: a JWT user (all their accounts) or an API key (its one account). */
interface Caller {
  readonly userId: string;
  readonly apiKey: { readonly id: string; readonly name: string; readonly accountId: number } | null;
  /** A session's account (the one it signed in to, else the user's first at sign-in); null for an API key. */
  readonly sessionAccountId: number | null;
}

function callerOf(request: FastifyRequest): Caller {
  if (request.apiKey) {
    const { key, userId, accountId, scope } = request.apiKey;
    if (!scopeAllows(scope, "read"))
      throw new ApiError("INSUFFICIENT_SCOPE", "This API key's scope does not allow reading streams");
    return { userId, apiKey: { id: key.id, name: key.name, accountId }, sessionAccountId: null };
  }
  const principal = request.principal!;
  return { userId: principal.userId, apiKey: null, sessionAccountId: principal.accountId };
}

/** The account a caller may stream: `requested` if theirs (403 otherwise), else their default. */
function streamAccount(platform: Platform, caller: Caller, requested: number | undefined): number {
  if (caller.apiKey) {
    if (requested !== undefined && requested !== caller.apiKey.accountId)
      throw new ApiError("FORBIDDEN", "This API key is bound to another account");
    platform.ownedAccount(caller.userId, caller.apiKey.accountId);
    return caller.apiKey.accountId;
  }
  if (requested !== undefined) {
    platform.ownedAccount(caller.userId, requested);
    return requested;
  }
  if (caller.sessionAccountId !== null) {
    platform.ownedAccount(caller.userId, caller.sessionAccountId);
    return caller.sessionAccountId;
  }
  const first = platform.accountIdsOf(caller.userId)[0];
  if (first === undefined) throw new ApiError("INVALID_DATA", "filters.accountId is required: no account yet");
  return first;
}

function resolveChannel(platform: Platform, caller: Caller, stream: Static<typeof SessionBody>["streams"][number]) {
  const definition = STREAMS_BY_NAME.get(stream.name)!;
  const filters = stream.filters ?? {};
  const allowed = new Set(definition.filters.map((filter) => filter.name));
  for (const name of Object.keys(filters))
    if (!allowed.has(name as FilterDefinition["name"]))
      throw new ApiError("INVALID_DATA", `The ${definition.name} stream has no filter ${name}`);
  for (const filter of definition.filters)
    if (filter.required && filters[filter.name] === undefined)
      throw new ApiError("INVALID_DATA", `The ${definition.name} stream needs filters.${filter.name}`);
  switch (definition.name) {
    case "quotes":
      return Channels.quotes(platform.instrument(filters.symbol!).symbol);
    case "depth":
      return Channels.depth(platform.instrument(filters.symbol!).symbol);
    case "candles":
      return Channels.candles(platform.instrument(filters.symbol!).symbol, filters.timeframe!);
    default:
      return Channels.account(filters.channelType ?? "presence", streamAccount(platform, caller, filters.accountId));
  }
}

/** `host[:port]` of a Host header: a name or an IPv4 address, or an IPv6 address in brackets; a port 1 to 65535. */
const HOST_HEADER = /^(?<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::(?<port>\d{1,5}))?$/;

/**
 * Where the client reached this API, which is where its socket goes. The Host header is the client's text: one
 * that is not a host and a port (`a:99999999`, `[::1`) is refused instead of being handed back as a place to connect.
 */
function connectionOf(request: FastifyRequest, appKey: string, listenPort: number) {
  const forceTls = request.protocol === "https";
  let wsHost = "localhost";
  let wsPort = listenPort;
  // Fastify's `host`: a trusted proxy's X-Forwarded-Host, else the Host header (the audit of the README of 7 December
  // found the proxy's upstream Host handed to clients, which they cannot reach).
  const header = request.host;
  if (header !== undefined) {
    const parsed = HOST_HEADER.exec(header)?.groups;
    const port = parsed?.port === undefined ? (forceTls ? 443 : 80) : Number(parsed.port);
    if (!parsed || port < 1 || port > 65_535)
      throw new ApiError("INVALID_DATA", "The Host header must be a host name or address with an optional port");
    wsHost = parsed.host!;
    wsPort = port;
  }
  return {
    wsHost,
    wsPort,
    appKey,
    forceTls,
    cluster: PUSHER_CLUSTER,
    authEndpoint: PUSHER_AUTH_PATH,
  };
}

// ---- routes ----

export const pusherRoutes: RouteModule = async (app, context) => {
  const { platform } = context;
  const { pusherAppKey: appKey, pusherAppSecret: appSecret } = platform.config;
  // Encapsulated: the form parser (pusher-js posts channel auth form-encoded) serves these routes only.
  await app.register(async (plain) => {
    const scope = plain.withTypeProvider<TypeBoxTypeProvider>();
    scope.addContentTypeParser(
      "application/x-www-form-urlencoded",
      { parseAs: "string", bodyLimit: 4096 },
      (_request, body, done) => {
        const fields: Record<string, string> = {};
        for (const [name, value] of new URLSearchParams(body as string)) fields[name] = value;
        done(null, fields);
      },
    );

    scope.post(
      "/api/v2/ws/session",
      {
        config: { auth: "userOrApiKey" },
        schema: {
          tags: ["Pusher"],
          summary: "Bootstrap a Pusher session: the streams wanted → connection details and channel names",
          description: SOCKET_DESCRIPTION,
          body: SessionBody,
          response: { 200: SessionResponse, ...authenticatedErrors },
        },
      },
      async (request) => {
        const caller = callerOf(request);
        const channels: string[] = [];
        for (const stream of request.body.streams) {
          const channel = resolveChannel(platform, caller, stream);
          if (!channels.includes(channel)) channels.push(channel);
        }
        return { connection: connectionOf(request, appKey, platform.config.port), channels };
      },
    );

    scope.get(
      "/api/v2/ws/streams",
      {
        config: { auth: "userOrApiKey" },
        schema: {
          tags: ["Pusher"],
          summary: "The stream catalog: every stream, public or presence, with its channel, events and filters",
          response: { 200: StreamsResponse, ...authenticatedErrors },
        },
      },
      async (request) => {
        callerOf(request);
        return {
          streams: STREAM_CATALOG.map((stream) => ({
            name: stream.name,
            type: stream.type,
            channel: stream.channel,
            events: [...stream.events],
            filters: stream.filters.map(({ values, ...filter }) => ({
              ...filter,
              ...(values ? { values: [...values] } : {}),
            })),
            description: stream.description,
          })),
        };
      },
    );

    scope.post(
      PUSHER_AUTH_PATH,
      {
        config: { auth: "userOrApiKey", checksCredentialAgain: true },
        schema: {
          tags: ["Pusher"],
          summary: "Authorise a private or presence channel for one socket (Pusher's channel auth)",
          description:
            "Form-encoded (as pusher-js posts it) or JSON: `socket_id`, `channel_name`. Answers `{auth}` " +
            "(presence: `{auth, channel_data}`) as Pusher defines them. Only `private-account.{login}` and " +
            "`presence-account.{login}` of the caller's own accounts (an API key: its account) are authorised: " +
            "403 for any other account. Presence members: `user_id` `user-{userId}` for a session, `key-{keyId}` " +
            "for an API key; `user_info` {kind, name?}.",
          consumes: ["application/json", "application/x-www-form-urlencoded"],
          body: AuthBody,
          response: { 200: AuthResponse, ...authenticatedErrors, 415: ErrorResponse },
        },
      },
      async (request) => {
        const caller = callerOf(request);
        const { socket_id: socketId, channel_name: channel } = request.body;
        const parsed = parseChannel(channel);
        if (!parsed || parsed.kind === "public")
          throw new ApiError(
            "INVALID_DATA",
            "Only private-account.{login} and presence-account.{login} channels are authorised here",
          );
        streamAccount(platform, caller, parsed.accountId);
        // The socket learns which credential authorised the channel: its revocation ends the channel.
        const stream = pusherStreamOf(platform);
        const credential: Credential = caller.apiKey
          ? { kind: "apiKey", id: caller.apiKey.id }
          : { kind: "session", id: request.principal!.sessionId };
        stream?.grant(socketId, channel, credential, caller.apiKey ? null : request.principal!.expiresAt);
        // Listening began with the grant; check the credential once more: a revocation published since onRequest
        // authenticated it was missed by the socket, and this check sees it (the native stream does the same).
        try {
          await authenticateUserOrApiKey(context, request);
        } catch (error) {
          // A refusal (401/403) is the revocation the socket missed; any other failure (the store) proves nothing
          // of the credential: only this grant goes, and the channels it authorised before stay.
          const refused =
            error instanceof ApiError &&
            (error.statusCode === HttpStatus.UNAUTHORIZED || error.statusCode === HttpStatus.FORBIDDEN);
          if (refused) stream?.revokedBeforeListening(socketId, credential);
          else stream?.withdrawGrant(socketId, channel);
          throw error;
        }
        if (parsed.kind === "private") return { auth: signChannel(appKey, appSecret, socketId, channel) };
        const member = caller.apiKey
          ? { user_id: `key-${caller.apiKey.id}`, user_info: { kind: "apiKey", name: caller.apiKey.name } }
          : { user_id: `user-${caller.userId}`, user_info: { kind: "session" } };
        const channelData = JSON.stringify(member);
        return { auth: signChannel(appKey, appSecret, socketId, channel, channelData), channel_data: channelData };
      },
    );
  });
};
