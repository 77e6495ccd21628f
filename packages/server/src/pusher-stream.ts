/**
 * The Pusher endpoint's socket (seed 004, DESIGN.md section 7, API.md "Pusher endpoint"): Pusher
 * protocol 7 at `/app/{appKey}?protocol=7`, so pusher-js and Laravel Echo subscribe unchanged.
 *
 * An adapter over the bus, like the native stream (ws-stream.ts): the same topics (quotes.X, depth.X,
 * candles.X.TF, account.{login}, metrics.{login}, user.{userId}), the same fan-out, conflation and
 * limits (stream-outbound.ts, DEFAULT_STREAM_LIMITS), another wire:
 *
 * - on connect: `pusher:connection_established` {socket_id, activity_timeout}; an unknown app key, path
 *   or protocol version: `pusher:error` {code, message} then a close with the same code (pusher-protocol.ts);
 * - `pusher:ping` → `pusher:pong`; after `activity_timeout` without a message the server sends
 *   `pusher:ping`, and closes with 4201 a socket that does not answer within `pongTimeoutMs`;
 * - `pusher:subscribe` {channel, auth?, channel_data?} → `pusher_internal:subscription_succeeded` (presence:
 *   {presence: {ids, hash, count}}) or `pusher:subscription_error` {type, error, status};
 *   `pusher:unsubscribe` {channel};
 * - public channels `quotes.{SYMBOL}` (quoteEvent, conflated), `depth.{SYMBOL}` (depthEvent, conflated, at
 *   most maxDepthLevels levels), `candles.{SYMBOL}.{TF}` (candleEvent, the latest update of each bar);
 * - `private-account.{login}` and `presence-account.{login}`: executionEvent, portfolioEvent, balanceEvent
 *   (never dropped, with `seq`), metricsEvent (conflated), notificationEvent and priceAlertEvent (those of
 *   the account, and the user's that name no account). They need the `auth` signature of
 *   POST /api/v2/ws/auth for this socket id; the signature is checked here, the ownership there.
 *   Presence channels announce `pusher_internal:member_added` / `member_removed` to the other sockets.
 *
 * Every `data` is a JSON-encoded string. Slow consumers are closed with 4100 (pusher-js reconnects after
 * a backoff), `reconnectAll` (and shutdown) close with 4200 (pusher-js reconnects at once and resubscribes).
 *
 * Sockets, counted with the native stream's (upgrade-router.ts): per client address from the handshake (the next
 * is closed with 4100); per user while the socket holds a private or presence channel of one of the user's accounts,
 * and per API key while it holds a channel the key granted, once however many such channels it holds, given back
 * with the last of them (unsubscribe, revocation, expiry) or the close. A channel that would pass either bound is
 * refused, `pusher:subscription_error` {type: "LimitReached", status: 429}, and changes nothing: the socket is not
 * authenticated, its account channels are what a user holds through it.
 *
 * Revocation. The socket itself is not authenticated (the app key is public, public channels need nothing);
 * each private or presence channel is authorised, per socket, by POST /api/v2/ws/auth with a session (JWT)
 * or an API key. That route records the grant here (`grant`: socket id, channel → the credential), and a
 * subscription is accepted only with the signature and a grant of this socket: so the stream knows which
 * credential authorised each channel, and listens to its revocation topic (`session.{id}`, `apiKey.{id}`).
 * The route authenticated the credential before the socket listened: so, as the native stream does, it checks
 * the credential again once the grant is recorded, and a revocation that landed in between ends the grant there
 * (`revokedBeforeListening`, the route answers 401) instead of being missed.
 * When the session is revoked (logout, password change, the session bound) or the key revoked or rotated,
 * every channel it authorised ends at once: it is released (no more events; presence members leave) and the
 * client gets `pusher:subscription_error` {type: "AuthError", status: 401} on it (Echo's `.error()`); its
 * grants not yet used are dropped. We end the channels rather than close the connection (with a 4000-4099
 * code): authorisation in Pusher is per channel, not per connection, so the public channels and the channels
 * another credential authorised on the same socket keep working, and a client that signs in again only
 * re-authorises its channels. A later reconnect of pusher-js re-authorises every channel with its current
 * token, which the auth route refuses (401) for a revoked one. The session's expiry ends its channels the
 * same way (the grant carries the session's end; the native stream closes with 4003 instead).
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { RawData, WebSocket, WebSocketServer } from "ws";
import type { AccountBusMessage } from "./account-events.ts";
import { metricsPayload } from "./account-metrics.ts";
import { BusTopics, revocationTopic, type BusMessage, type Credential } from "./bus.ts";
import { clientAddress, proxyTrust, type ProxyTrust } from "./client-address.ts";
import type { Platform } from "./platform.ts";
import {
  PUSHER_PATH_PREFIX,
  PUSHER_PROTOCOL_VERSION,
  PusherCodes,
  newSocketId,
  parseChannel,
  parsePresenceMember,
  pusherFrame,
  verifyChannelAuth,
  type ParsedChannel,
  type PresenceMember,
  type PusherCodeName,
} from "./pusher-protocol.ts";
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
  openSocketsByAddressOf,
  takeUserAndApiKeySlots,
  type OpenSocketCounts,
  type UpgradeAdapter,
} from "./upgrade-router.ts";
import { depthPayload, marketDataOf, quotePayload, truncateDepth, type DepthPayload } from "./market-data.ts";
import { DEFAULT_STREAM_LIMITS, type NativeStreamLimits } from "./ws-stream.ts";

export interface PusherStreamLimits extends Pick<
  NativeStreamLimits,
  | "maxPayloadBytes"
  | "closeGraceMs"
  | "maxSubscriptions"
  | "messagesPerSecond"
  | "highWaterBytes"
  | "maxBufferedBytes"
  | "slowConsumerMs"
  | "maxDepthLevels"
  | "maxSocketsPerAddress"
  | "maxSocketsPerUser"
  | "maxSocketsPerApiKey"
> {
  /** `activity_timeout` announced in connection_established (seconds): pusher-js pings after this much silence. */
  activityTimeoutSeconds: number;
  /** The server sends `pusher:ping` after this long without a message from the client. */
  idlePingMs: number;
  /** After a `pusher:ping`, a client silent this long is closed with 4201. */
  pongTimeoutMs: number;
}

export const DEFAULT_PUSHER_LIMITS: Readonly<PusherStreamLimits> = {
  maxPayloadBytes: DEFAULT_STREAM_LIMITS.maxPayloadBytes,
  closeGraceMs: DEFAULT_STREAM_LIMITS.closeGraceMs,
  maxSubscriptions: DEFAULT_STREAM_LIMITS.maxSubscriptions,
  messagesPerSecond: DEFAULT_STREAM_LIMITS.messagesPerSecond,
  highWaterBytes: DEFAULT_STREAM_LIMITS.highWaterBytes,
  maxBufferedBytes: DEFAULT_STREAM_LIMITS.maxBufferedBytes,
  slowConsumerMs: DEFAULT_STREAM_LIMITS.slowConsumerMs,
  maxDepthLevels: DEFAULT_STREAM_LIMITS.maxDepthLevels,
  // One budget per address with the native stream (the counts are shared): no credential is needed to connect here.
  maxSocketsPerAddress: DEFAULT_STREAM_LIMITS.maxSocketsPerAddress,
  // Counted with the native stream's sockets: a user spread over addresses or faces holds no more account channels.
  maxSocketsPerUser: DEFAULT_STREAM_LIMITS.maxSocketsPerUser,
  maxSocketsPerApiKey: DEFAULT_STREAM_LIMITS.maxSocketsPerApiKey,
  activityTimeoutSeconds: 120,
  idlePingMs: 120_000,
  pongTimeoutMs: 30_000,
};

export interface PusherCredentials {
  readonly appKey: string;
  readonly appSecret: string;
}

/** A channel held by a socket: what it means and the bus topics it reads. */
interface HeldChannel {
  readonly name: string;
  readonly parsed: ParsedChannel;
  readonly topics: readonly string[];
  readonly member: PresenceMember | null;
  /** Private and presence channels: the session or API key that authorised it (its revocation ends it). */
  readonly credential: Credential | null;
  /** When the session that authorised it expires (its end ends the channel); null: public, or an API key. */
  readonly expiresAt: number | null;
  /** Private and presence channels: the user owning the account (the socket counts toward their sockets). */
  readonly userId: string | null;
}

/** What POST /api/v2/ws/auth recorded for one channel of one socket. */
interface Grant {
  readonly credential: Credential;
  readonly expiresAt: number | null;
}

const SESSION_EXPIRED_MESSAGE =
  "The session that authorised this channel expired: sign in again, then POST /api/v2/ws/auth and resubscribe";

/** Channel grants one socket keeps at most (the oldest go first; a subscription needs its grant). */
const GRANTS_PER_SOCKET = 256;

/** Presence bookkeeping of one channel: members by user_id, each with the sockets that joined as them. */
type PresenceRoster = Map<string, { info: Record<string, unknown>; sockets: Set<PusherConnection> }>;

export class PusherStream implements UpgradeAdapter {
  readonly limits: PusherStreamLimits;
  private readonly server: WebSocketServer;
  private readonly connections = new Set<PusherConnection>();

  /** Open sockets (the `bourse_stream_connections` metric). */
  get connectionCount(): number {
    return this.connections.size;
  }
  private readonly bySocketId = new Map<string, PusherConnection>();
  readonly scheduler = new FlushScheduler();
  readonly fanout: TopicFanout<PusherConnection>;
  private readonly presence = new Map<string, PresenceRoster>();
  private sweepTimer: NodeJS.Timeout | null = null;
  private closed = false;
  /** Closes by code name (tests, metrics). */
  readonly closes: Record<string, number> = {};
  /** Open sockets per client address, shared with the native stream. */
  readonly socketsByAddress: OpenSocketCounts;
  /** BOURSE_TRUST_PROXY, as the HTTP app applies it: a socket's client address. */
  private readonly proxyTrust: ProxyTrust | null;

  constructor(
    readonly platform: Platform,
    readonly credentials: PusherCredentials,
    limits: Partial<PusherStreamLimits> = {},
  ) {
    this.limits = { ...DEFAULT_PUSHER_LIMITS, ...limits };
    this.server = streamSocketServer(this.limits.maxPayloadBytes);
    this.socketsByAddress = openSocketsByAddressOf(platform);
    this.proxyTrust = proxyTrust(platform.config.trustedProxies);
    this.fanout = new TopicFanout(platform.bus, (topic, message, subscribers) =>
      this.dispatch(topic, message, subscribers),
    );
    registry.set(platform, this);
    this.setTimings({});
  }

  /** Changes the liveness timings (tests) and restarts the sweep that pings idle sockets. */
  setTimings(
    timings: Partial<Pick<PusherStreamLimits, "activityTimeoutSeconds" | "idlePingMs" | "pongTimeoutMs">>,
  ): void {
    Object.assign(this.limits, timings);
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    const every = Math.max(10, Math.min(this.limits.idlePingMs, this.limits.pongTimeoutMs) / 4);
    this.sweepTimer = setInterval(() => {
      const now = performance.now();
      for (const connection of this.connections) connection.checkLiveness(now);
    }, every);
    this.sweepTimer.unref();
  }

  /** Paths this adapter takes: everything under `/app/` (a wrong shape is answered 4005 on the socket). */
  static matches(pathname: string): boolean {
    return pathname.startsWith(PUSHER_PATH_PREFIX);
  }

  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer, url: URL): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    // Read now: a socket that closes during the handshake no longer has its peer's address.
    const address = clientAddress(request, this.proxyTrust);
    this.server.handleUpgrade(request, socket, head, (ws) => {
      const connection = new PusherConnection(this, ws, address);
      this.connections.add(connection);
      this.bySocketId.set(connection.socketId, connection);
      connection.start(url);
    });
  }

  /** Asks every socket to reconnect (4200): pusher-js reconnects at once and resubscribes. */
  reconnectAll(message?: string): void {
    for (const connection of this.connections) connection.closeWith("RECONNECT", message);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await Promise.all([...this.connections].map((connection) => connection.shutdown()));
    this.server.close();
  }

  stats(): { connections: number; topics: number; presenceChannels: number } {
    return { connections: this.connections.size, topics: this.fanout.size, presenceChannels: this.presence.size };
  }

  forget(connection: PusherConnection): void {
    this.connections.delete(connection);
    if (this.bySocketId.get(connection.socketId) === connection) this.bySocketId.delete(connection.socketId);
  }

  /**
   * Records that `credential` authorised `channel` for the socket `socketId` (POST /api/v2/ws/auth, before it
   * answers the signature): the subscription needs it, and the credential's revocation ends the channel.
   * A socket id not connected here is ignored (its subscription, if it ever comes here, is refused: 401).
   * Scaled out, the grant would travel with the signature's socket id to the node holding the socket.
   */
  grant(socketId: string, channel: string, credential: Credential, expiresAt: number | null): void {
    this.bySocketId.get(socketId)?.grant(channel, { credential, expiresAt });
  }

  /**
   * `credential`, which just authorised a channel of the socket `socketId`, proved revoked when checked again
   * after `grant`: its revocation was published before the socket listened, so this does what hearing it would
   * have done (its grants go; the channels it authorised on the socket end, one perhaps subscribed meanwhile).
   */
  revokedBeforeListening(socketId: string, credential: Credential): void {
    this.bySocketId.get(socketId)?.revoked(revocationTopic(credential));
  }

  /**
   * The grant of `channel` just made for the socket `socketId` goes, and nothing else: the check after it could not
   * be made (the store failed), which says nothing of the credential, so the channels it authorised before stay.
   */
  withdrawGrant(socketId: string, channel: string): void {
    this.bySocketId.get(socketId)?.withdrawGrant(channel);
  }

  noteClose(name: PusherCodeName | "NORMAL"): void {
    this.closes[name] = (this.closes[name] ?? 0) + 1;
  }

  // ---- fan-out: each bus message serialised once per channel name for all subscribers ----

  private dispatch(topic: string, message: BusMessage, subscribers: ReadonlySet<PusherConnection>): void {
    const kind = topic.slice(0, topic.indexOf("."));
    switch (kind) {
      case "quotes":
      case "depth": {
        const payload =
          kind === "depth"
            ? truncateDepth(message.payload as DepthPayload, this.limits.maxDepthLevels)
            : message.payload;
        const frame = textFrame(pusherFrame(message.type, payload, topic));
        for (const connection of subscribers) connection.outbound.conflate(topic, frame);
        return;
      }
      case "candles": {
        // The latest update of each bar: a closed bar's final values are never replaced by the next bar's.
        const frame = textFrame(pusherFrame(message.type, message.payload, topic));
        const key = barKey(topic, (message.payload as { time?: unknown }).time);
        for (const connection of subscribers) connection.outbound.conflate(key, frame);
        return;
      }
      case "account":
      case "metrics":
      case "user": {
        const frames = new Map<string, Buffer>();
        const frameOf = (channel: string): Buffer => {
          let frame = frames.get(channel);
          if (!frame) frames.set(channel, (frame = textFrame(pusherFrame(message.type, message.payload, channel))));
          return frame;
        };
        for (const connection of subscribers) connection.accountMessage(topic, kind, message, frameOf);
        return;
      }
    }
  }

  // ---- presence ----

  /** Adds the socket as `member` of the channel; answers the roster and whether the member is new. */
  joinPresence(
    channel: string,
    connection: PusherConnection,
    member: PresenceMember,
  ): { roster: PresenceRoster; added: boolean } {
    let roster = this.presence.get(channel);
    if (!roster) this.presence.set(channel, (roster = new Map()));
    let entry = roster.get(member.user_id);
    const added = entry === undefined;
    if (!entry) roster.set(member.user_id, (entry = { info: member.user_info, sockets: new Set() }));
    entry.sockets.add(connection);
    if (added) {
      const frame = textFrame(
        pusherFrame("pusher_internal:member_added", { user_id: member.user_id, user_info: member.user_info }, channel),
      );
      for (const [, other] of roster)
        for (const socket of other.sockets) if (socket !== connection) socket.outbound.enqueue(frame);
    }
    return { roster, added };
  }

  leavePresence(channel: string, connection: PusherConnection, member: PresenceMember): void {
    const roster = this.presence.get(channel);
    const entry = roster?.get(member.user_id);
    if (!roster || !entry || !entry.sockets.delete(connection)) return;
    if (entry.sockets.size > 0) return;
    roster.delete(member.user_id);
    if (roster.size === 0) {
      this.presence.delete(channel);
      return;
    }
    const frame = textFrame(pusherFrame("pusher_internal:member_removed", { user_id: member.user_id }, channel));
    for (const [, other] of roster) for (const socket of other.sockets) socket.outbound.enqueue(frame);
  }
}

const registry = new WeakMap<Platform, PusherStream>();

/** The platform's Pusher endpoint (tests and benchmarks tune its limits). */
export function pusherStreamOf(platform: Platform): PusherStream | undefined {
  return registry.get(platform);
}

// ---- one socket ----

class PusherConnection {
  readonly socketId = newSocketId();
  readonly outbound: Outbound;
  private readonly platform: Platform;
  private readonly channels = new Map<string, HeldChannel>();
  /** Channel → the credential that authorised it for this socket (POST /api/v2/ws/auth), until revoked. */
  private readonly grants = new Map<string, Grant>();
  /** Ends the channels whose session expires first (the native stream closes with 4003 instead). */
  private expiryTimer: NodeJS.Timeout | null = null;
  /** Revocation topic → the bus unsubscribe, for every credential a grant or a held channel names. */
  private readonly watches = new Map<string, () => void>();
  /** Topic → how many held channels read it. */
  private readonly topics = new Map<string, number>();
  private readonly rate: MessageRate;
  private lastActivity = performance.now();
  private pingSentAt: number | null = null;
  private closing = false;
  private closeTimer: NodeJS.Timeout | null = null;
  private readonly closedPromise: Promise<void>;
  /** Gives back the socket's slot of its client address (once it closes); null when it holds none. */
  private releaseAddress: (() => void) | null = null;
  /** User id → its slot's release, while the socket holds a channel of that user's accounts. */
  private readonly userSlots = new Map<string, () => void>();
  /** API key id → its slot's release, while the socket holds a channel that key granted. */
  private readonly apiKeySlots = new Map<string, () => void>();

  constructor(
    private readonly stream: PusherStream,
    private readonly ws: WebSocket,
    /** The client's address: its open sockets are limited (maxSocketsPerAddress). */
    private readonly address: string,
  ) {
    this.platform = stream.platform;
    this.rate = new MessageRate(stream.limits.messagesPerSecond);
    this.outbound = new Outbound(ws, stream.limits, stream.scheduler, () => this.closeWith("OVER_CAPACITY"));
    this.closedPromise = new Promise((resolve) => ws.once("close", () => resolve()));
  }

  start(url: URL): void {
    const ws = this.ws;
    ws.on("message", (data, isBinary) => this.onMessage(data, isBinary));
    ws.on("pong", () => this.active());
    ws.on("error", () => undefined);
    ws.once("close", () => this.cleanup());
    const refusal = this.refusal(url);
    if (refusal) return this.closeWith(refusal);
    const limit = this.stream.limits.maxSocketsPerAddress;
    this.releaseAddress = this.stream.socketsByAddress.take(this.address, limit);
    // Pusher's 4100 "over capacity": pusher-js reconnects after a backoff, by when a socket may have closed.
    if (!this.releaseAddress)
      return this.closeWith(
        "OVER_CAPACITY",
        `Over capacity: at most ${limit} open sockets per client address (Pusher and native together)`,
      );
    this.send("pusher:connection_established", {
      socket_id: this.socketId,
      activity_timeout: this.stream.limits.activityTimeoutSeconds,
    });
  }

  /** Why the connection is refused (path, app key, protocol), or null. */
  private refusal(url: URL): PusherCodeName | null {
    const rest = url.pathname.slice(PUSHER_PATH_PREFIX.length);
    if (rest.length === 0 || rest.includes("/")) return "PATH_NOT_FOUND";
    let appKey: string;
    try {
      appKey = decodeURIComponent(rest);
    } catch {
      return "APP_NOT_FOUND";
    }
    if (appKey !== this.stream.credentials.appKey) return "APP_NOT_FOUND";
    const protocol = url.searchParams.get("protocol");
    if (protocol === null || protocol === "") return "NO_PROTOCOL";
    if (!/^[0-9]{1,3}$/.test(protocol)) return "INVALID_VERSION";
    if (Number(protocol) !== PUSHER_PROTOCOL_VERSION) return "UNSUPPORTED_PROTOCOL";
    return null;
  }

  // ---- liveness ----

  private active(): void {
    this.lastActivity = performance.now();
    this.pingSentAt = null;
  }

  checkLiveness(now: number): void {
    if (this.closing) return;
    const limits = this.stream.limits;
    if (this.pingSentAt !== null) {
      if (now - this.pingSentAt >= limits.pongTimeoutMs) this.closeWith("PONG_TIMEOUT");
      return;
    }
    if (now - this.lastActivity >= limits.idlePingMs) {
      this.pingSentAt = now;
      this.send("pusher:ping", {});
    }
  }

  // ---- incoming ----

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.closing) return;
    this.active();
    if (!this.rate.take()) {
      if (this.rate.violations > this.stream.limits.messagesPerSecond) {
        // What was answered so far (the 4301 errors included) goes out before the close.
        this.outbound.flush();
        return this.closeWith("OVER_CAPACITY", "Message rate exceeded again and again");
      }
      return this.error(
        PusherCodes.RATE_LIMITED.code,
        `At most ${this.stream.limits.messagesPerSecond} messages per second`,
      );
    }
    let message: unknown;
    try {
      if (isBinary) throw new Error("binary");
      message = JSON.parse(data.toString());
    } catch {
      return this.error(null, "Messages are JSON text: {event, data, channel?}");
    }
    if (typeof message !== "object" || message === null || Array.isArray(message))
      return this.error(null, "Messages are JSON objects: {event, data, channel?}");
    const { event, data: payload } = message as { event?: unknown; data?: unknown };
    if (typeof event !== "string") return this.error(null, "A message needs an event name");
    switch (event) {
      case "pusher:ping":
        return this.send("pusher:pong", {});
      case "pusher:pong":
        return;
      case "pusher:subscribe":
        return this.subscribe(decodeData(payload));
      case "pusher:unsubscribe":
        return this.unsubscribe(decodeData(payload));
    }
    if (event.startsWith("client-")) return this.error(null, "Client events are not enabled on this endpoint");
    return this.error(null, `Unsupported event: ${event.slice(0, 64)}`);
  }

  private subscribe(data: Record<string, unknown> | null): void {
    const channel = data?.channel;
    if (typeof channel !== "string" || channel.length === 0 || channel.length > 200)
      return this.error(null, "pusher:subscribe needs data {channel}");
    const refuse = (type: string, status: number, error: string) =>
      this.send("pusher:subscription_error", { type, error, status }, channel);
    const parsed = parseChannel(channel);
    if (!parsed) return refuse("InvalidChannel", 404, "No such channel: see GET /api/v2/ws/streams");
    if (this.channels.has(channel)) return this.succeeded(this.channels.get(channel)!);

    let topics: string[];
    let member: PresenceMember | null = null;
    let credential: Credential | null = null;
    let expiresAt: number | null = null;
    let userId: string | null = null;
    if (parsed.kind === "public") {
      if (!this.platform.instruments.has(parsed.symbol)) return refuse("InvalidChannel", 404, "No such instrument");
      topics = [
        parsed.stream === "candles"
          ? BusTopics.candles(parsed.symbol, parsed.timeframe)
          : parsed.stream === "depth"
            ? BusTopics.depth(parsed.symbol)
            : BusTopics.quotes(parsed.symbol),
      ];
    } else {
      const auth = data?.auth;
      const channelData = data?.channel_data;
      const { appKey, appSecret } = this.stream.credentials;
      if (typeof auth !== "string" || auth.length > 512)
        return refuse("AuthError", 401, "This channel needs auth from POST /api/v2/ws/auth");
      if (parsed.kind === "presence") {
        if (typeof channelData !== "string" || channelData.length > 4096)
          return refuse("AuthError", 401, "A presence channel needs channel_data from POST /api/v2/ws/auth");
        member = parsePresenceMember(channelData);
        if (!member) return refuse("AuthError", 401, "channel_data is not a presence member {user_id, user_info}");
        if (!verifyChannelAuth(appKey, appSecret, this.socketId, channel, auth, channelData))
          return refuse("AuthError", 401, "Invalid signature for this socket and channel");
      } else if (!verifyChannelAuth(appKey, appSecret, this.socketId, channel, auth))
        return refuse("AuthError", 401, "Invalid signature for this socket and channel");
      const grant = this.grants.get(channel);
      if (!grant)
        return refuse(
          "AuthError",
          401,
          "No authorisation of this channel for this socket (or its session or API key was revoked): " +
            "POST /api/v2/ws/auth again",
        );
      if (grant.expiresAt !== null && grant.expiresAt <= this.platform.clock.now()) {
        this.dropGrants((candidate) => candidate === grant);
        return refuse("AuthError", 401, SESSION_EXPIRED_MESSAGE);
      }
      ({ credential, expiresAt } = grant);
      if (!this.platform.ready) return refuse("Unavailable", 503, "The trading engine is starting: try again shortly");
      const account = this.platform.engine.state.accounts.get(parsed.accountId);
      if (!account) return refuse("InvalidChannel", 404, "No such account");
      userId = account.userId;
      topics = [
        BusTopics.account(parsed.accountId),
        BusTopics.metrics(parsed.accountId),
        BusTopics.user(account.userId),
      ];
    }
    const adding = topics.filter((topic) => !this.topics.has(topic)).length;
    if (this.topics.size + adding > this.stream.limits.maxSubscriptions)
      return refuse("LimitReached", 429, `At most ${this.stream.limits.maxSubscriptions} topics per socket`);
    const slotRefusal = this.takeSlots(userId, credential);
    if (slotRefusal !== null) return refuse("LimitReached", 429, slotRefusal);

    const held: HeldChannel = { name: channel, parsed, topics, member, credential, expiresAt, userId };
    this.channels.set(channel, held);
    if (expiresAt !== null) this.scheduleExpiry();
    for (const topic of topics) {
      const count = this.topics.get(topic) ?? 0;
      this.topics.set(topic, count + 1);
      if (count === 0) this.stream.fanout.join(this, topic);
    }
    this.succeeded(held);
    this.snapshot(held);
  }

  private succeeded(held: HeldChannel): void {
    if (!held.member) return this.send("pusher_internal:subscription_succeeded", {}, held.name);
    const { roster } = this.stream.joinPresence(held.name, this, held.member);
    const ids = [...roster.keys()];
    const hash = Object.fromEntries([...roster].map(([id, entry]) => [id, entry.info]));
    this.send("pusher_internal:subscription_succeeded", { presence: { ids, hash, count: ids.length } }, held.name);
  }

  /** The current state after subscribing: the last quote, depth or the account's metrics. */
  private snapshot(held: HeldChannel): void {
    const parsed = held.parsed;
    if (parsed.stream === "account") {
      const metrics = metricsPayload(this.platform, parsed.accountId);
      if (metrics)
        this.outbound.conflate(`${held.name}:metrics`, textFrame(pusherFrame("metricsEvent", metrics, held.name)));
      return;
    }
    if (parsed.stream === "candles") return;
    const last = marketDataOf(this.platform).lastQuote(parsed.symbol);
    if (!last) return;
    const instrument = this.platform.instrument(parsed.symbol);
    const [type, payload] =
      parsed.stream === "quotes"
        ? ["quoteEvent", quotePayload(instrument, last)]
        : ["depthEvent", depthPayload(instrument, last, this.stream.limits.maxDepthLevels)];
    this.outbound.conflate(held.topics[0]!, textFrame(pusherFrame(type, payload, held.name)));
  }

  private unsubscribe(data: Record<string, unknown> | null): void {
    const channel = data?.channel;
    if (typeof channel !== "string") return this.error(null, "pusher:unsubscribe needs data {channel}");
    this.release(channel);
  }

  private release(channel: string): void {
    const held = this.channels.get(channel);
    if (!held) return;
    this.channels.delete(channel);
    if (held.member) this.stream.leavePresence(channel, this, held.member);
    for (const topic of held.topics) {
      const count = (this.topics.get(topic) ?? 1) - 1;
      if (count > 0) this.topics.set(topic, count);
      else {
        this.topics.delete(topic);
        this.stream.fanout.leave(this, topic);
        this.outbound.drop(topic);
        this.outbound.dropPrefix(barKeyPrefix(topic));
      }
    }
    this.outbound.drop(`${channel}:metrics`);
    if (held.credential) this.unwatchUnused(revocationTopic(held.credential));
    this.releaseUnusedSlots();
  }

  // ---- sockets per user and per API key (counted with the native stream's) ----

  /**
   * Takes the socket's slots of the channel's user and granting API key, unless it holds them already (a socket
   * counts once per user and per key, however many channels it holds); null when taken, else the refusal's message
   * (nothing then is taken). In the same turn as the subscription: concurrent ones cannot pass the limit together.
   */
  private takeSlots(userId: string | null, credential: Credential | null): string | null {
    const limits = this.stream.limits;
    const keyId = credential?.kind === "apiKey" ? credential.id : null;
    const newUser = userId !== null && !this.userSlots.has(userId) ? userId : null;
    const newKey = keyId !== null && !this.apiKeySlots.has(keyId) ? keyId : null;
    const slots = takeUserAndApiKeySlots(this.platform, newUser, newKey, limits);
    if ("full" in slots)
      return slots.full === "user"
        ? `At most ${limits.maxSocketsPerUser} sockets per user (native sockets and Pusher sockets holding the user's account channels together)`
        : `At most ${limits.maxSocketsPerApiKey} sockets per API key (native sockets and Pusher sockets holding channels it granted together)`;
    if (slots.user) this.userSlots.set(newUser!, slots.user);
    if (slots.apiKey) this.apiKeySlots.set(newKey!, slots.apiKey);
    return null;
  }

  /** Gives back the user and API-key slots no held channel needs any more. */
  private releaseUnusedSlots(): void {
    const users = new Set<string>();
    const keys = new Set<string>();
    for (const held of this.channels.values()) {
      if (held.userId !== null) users.add(held.userId);
      if (held.credential?.kind === "apiKey") keys.add(held.credential.id);
    }
    for (const [slots, needed] of [
      [this.userSlots, users],
      [this.apiKeySlots, keys],
    ] as const)
      for (const [key, release] of slots)
        if (!needed.has(key)) {
          release();
          slots.delete(key);
        }
  }

  // ---- credentials: grants and revocation ----

  grant(channel: string, grant: Grant): void {
    if (this.closing) return;
    const replaced = this.grants.get(channel);
    this.grants.delete(channel);
    if (this.grants.size >= GRANTS_PER_SOCKET) {
      const [oldest, dropped] = this.grants.entries().next().value!;
      this.grants.delete(oldest);
      this.unwatchUnused(revocationTopic(dropped.credential));
    }
    this.grants.set(channel, grant);
    if (replaced) this.unwatchUnused(revocationTopic(replaced.credential));
    const topic = revocationTopic(grant.credential);
    if (!this.watches.has(topic))
      this.watches.set(
        topic,
        this.platform.bus.subscribe(topic, () => this.revoked(topic)),
      );
  }

  /** The credential of `topic` was revoked: its grants go, and every channel it authorised ends now. */
  revoked(topic: string): void {
    this.dropGrants((grant) => revocationTopic(grant.credential) === topic);
    this.endChannels(
      (held) => held.credential !== null && revocationTopic(held.credential) === topic,
      (held) =>
        held.credential!.kind === "session"
          ? "The session that authorised this channel was revoked: sign in again and resubscribe"
          : "The API key that authorised this channel was revoked or rotated",
    );
    this.unwatchUnused(topic);
  }

  /** The authorisation of the channels `ending` picks has ended: each is released, then refused (401) to the client. */
  private endChannels(ending: (held: HeldChannel) => boolean, error: (held: HeldChannel) => string): void {
    for (const held of [...this.channels.values()]) {
      if (!ending(held)) continue;
      this.release(held.name);
      this.send("pusher:subscription_error", { type: "AuthError", error: error(held), status: 401 }, held.name);
    }
  }

  /** Drops the grants `ending` picks, and the revocation topics no grant or channel names any more. */
  withdrawGrant(channel: string): void {
    const grant = this.grants.get(channel);
    if (grant) this.dropGrants((candidate) => candidate === grant);
  }

  private dropGrants(ending: (grant: Grant) => boolean): void {
    for (const [channel, grant] of [...this.grants])
      if (ending(grant)) {
        this.grants.delete(channel);
        this.unwatchUnused(revocationTopic(grant.credential));
      }
  }

  /** Stops listening to a revocation topic no grant and no held channel names any more. */
  private unwatchUnused(topic: string): void {
    const unsubscribe = this.watches.get(topic);
    if (!unsubscribe) return;
    for (const grant of this.grants.values()) if (revocationTopic(grant.credential) === topic) return;
    for (const held of this.channels.values())
      if (held.credential && revocationTopic(held.credential) === topic) return;
    unsubscribe();
    this.watches.delete(topic);
  }

  /** Arms the timer for the channel whose session expires first (times from the platform clock). */
  private scheduleExpiry(): void {
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
    let first: number | null = null;
    for (const held of this.channels.values())
      if (held.expiresAt !== null && (first === null || held.expiresAt < first)) first = held.expiresAt;
    if (first === null || this.closing) return;
    const target = first;
    this.expiryTimer = setTimeout(() => this.expire(target), delayUntil(target, this.platform.clock.now()));
    this.expiryTimer.unref();
  }

  /** The sessions of the channels due at `target` expired: those channels end (401), as a revocation does. */
  private expire(target: number): void {
    this.expiryTimer = null;
    const due = (expiresAt: number | null) => expiresAt !== null && expiresAt <= target;
    this.endChannels(
      (held) => due(held.expiresAt),
      () => SESSION_EXPIRED_MESSAGE,
    );
    this.dropGrants((grant) => due(grant.expiresAt));
    this.scheduleExpiry();
  }

  // ---- account channels ----

  /** An account, metrics or user message for every account channel of this socket that reads it. */
  accountMessage(
    topic: string,
    kind: "account" | "metrics" | "user",
    message: BusMessage,
    frameOf: (channel: string) => Buffer,
  ): void {
    const payloadAccount = (message.payload as { accountId?: unknown }).accountId;
    for (const held of this.channels.values()) {
      if (held.parsed.stream !== "account" || !held.topics.includes(topic)) continue;
      if (kind === "user") {
        // The user's notifications and alerts: those of this account, and those that name no account.
        if (payloadAccount !== undefined && payloadAccount !== null && payloadAccount !== held.parsed.accountId)
          continue;
        this.outbound.enqueue(frameOf(held.name));
      } else if (kind === "metrics") this.outbound.conflate(`${held.name}:metrics`, frameOf(held.name));
      else if ((message as AccountBusMessage).payload.accountId === held.parsed.accountId)
        this.outbound.enqueue(frameOf(held.name));
    }
  }

  // ---- outgoing ----

  private send(event: string, data: unknown, channel?: string): void {
    this.outbound.enqueue(textFrame(pusherFrame(event, data, channel)));
  }

  private error(code: number | null, message: string): void {
    this.send("pusher:error", { code, message });
  }

  /** `pusher:error` {code, message} now, ahead of anything queued, then the close frame with the same code. */
  closeWith(name: PusherCodeName, message?: string): void {
    if (this.closing) return;
    this.closing = true;
    this.stream.noteClose(name);
    const definition = PusherCodes[name];
    this.outbound.stop();
    try {
      this.outbound.writeNow(
        textFrame(pusherFrame("pusher:error", { code: definition.code, message: message ?? definition.message })),
      );
      this.ws.close(definition.code, definition.message);
    } catch {
      this.ws.terminate();
    }
    this.closeTimer = setTimeout(() => this.ws.terminate(), this.stream.limits.closeGraceMs);
    this.closeTimer.unref();
  }

  async shutdown(): Promise<void> {
    this.closeWith("RECONNECT", "Server shutting down: reconnect");
    const timer = setTimeout(() => this.ws.terminate(), 1000);
    await this.closedPromise;
    clearTimeout(timer);
  }

  private cleanup(): void {
    if (!this.closing) this.stream.noteClose("NORMAL");
    this.closing = true;
    if (this.closeTimer) clearTimeout(this.closeTimer);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    for (const channel of [...this.channels.keys()]) this.release(channel);
    this.grants.clear();
    for (const unsubscribe of this.watches.values()) unsubscribe();
    this.watches.clear();
    this.outbound.stop();
    this.releaseAddress?.();
    this.releaseAddress = null;
    this.stream.forget(this);
  }
}

/** `data` of a client message: an object, or a JSON string of one (both are seen in the wild). */
function decodeData(data: unknown): Record<string, unknown> | null {
  let value = data;
  if (typeof value === "string") {
    try {
      value = JSON.parse(value);
    } catch {
      return null;
    }
  }
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : null;
}
