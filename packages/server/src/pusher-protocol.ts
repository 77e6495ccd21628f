/**
 * The Pusher protocol (version 7) as the Pusher endpoint speaks it (seed 004, DESIGN.md section 7,
 * API.md "Pusher endpoint"): channel names and what they carry, the channel-auth signature, socket ids,
 * the error codes and the frames. Pure functions: pusher-stream.ts (the socket) and routes/pusher.ts
 * (session, catalog, channel auth) share them.
 *
 * Frames are `{"event", "channel"?, "data"}` with `data` always a JSON-encoded string (as Pusher's own
 * servers send it; pusher-js decodes it).
 */
import { createHmac, randomInt } from "node:crypto";
import { sameSecret } from "./same-secret.ts";
import { CANDLE_TIMEFRAMES } from "./market-data.ts";

export const PUSHER_PROTOCOL_VERSION = 7;
/** The path prefix of the socket: `/app/{appKey}?protocol=7`. */
export const PUSHER_PATH_PREFIX = "/app/";
/** pusher-js 8 requires a cluster; with wsHost given it only names the deployment. */
export const PUSHER_CLUSTER = "bourse";

/**
 * The codes of `pusher:error` and of the close frames, with pusher-js's semantics: 4000-4099 the client
 * does not reconnect, 4100-4199 it reconnects after a backoff, 4200-4299 it reconnects at once. Codes are
 * never renamed or reused (clients switch on them); README "Pusher endpoint" and `/docs` publish them.
 * A revoked session or API key closes no connection: the channels it authorised end with
 * `pusher:subscription_error` {type: "AuthError", status: 401} (pusher-stream.ts says why).
 */
export const PusherCodes = {
  APP_NOT_FOUND: {
    code: 4001,
    close: true,
    message: "Application does not exist",
    action: "Use the appKey of POST /api/v2/ws/session",
  },
  PATH_NOT_FOUND: { code: 4005, close: true, message: "Path not found", action: "Connect to /app/{appKey}?protocol=7" },
  INVALID_VERSION: {
    code: 4006,
    close: true,
    message: "Invalid version string format",
    action: "protocol must be an integer: ?protocol=7",
  },
  UNSUPPORTED_PROTOCOL: {
    code: 4007,
    close: true,
    message: "Unsupported protocol version",
    action: "Speak protocol 7 (pusher-js 7 and 8 do)",
  },
  NO_PROTOCOL: { code: 4008, close: true, message: "No protocol version supplied", action: "Add ?protocol=7" },
  OVER_CAPACITY: {
    code: 4100,
    close: true,
    message: "Over capacity",
    action:
      "The client did not read fast enough (send buffer over its limit, or stalled too long), kept sending " +
      "over the message rate, or its address holds as many open sockets as it may (100 by default, native " +
      "stream included; refused at connect): pusher-js reconnects after a backoff and resubscribes",
  },
  RECONNECT: {
    code: 4200,
    close: true,
    message: "Please reconnect immediately",
    action: "The server asks the client to reconnect (restart, rebalancing): pusher-js reconnects and resubscribes",
  },
  PONG_TIMEOUT: {
    code: 4201,
    close: true,
    message: "Pong reply not received",
    action: "The server sent pusher:ping after activity_timeout of silence and got no reply: answer pings",
  },
  RATE_LIMITED: {
    code: 4301,
    close: false,
    message: "Message rejected due to rate limit",
    action: "The message was dropped: send fewer messages per second",
  },
} as const satisfies Record<
  string,
  { readonly code: number; readonly close: boolean; readonly message: string; readonly action: string }
>;

export type PusherCodeName = keyof typeof PusherCodes;

/** The table for `/docs` and the README. */
export function pusherCodesDescription(): string {
  const lines = Object.entries(PusherCodes).map(
    ([name, definition]) =>
      `| ${definition.code} | \`${name}\` | ${definition.close ? "yes" : "no"} | ${definition.message}: ${definition.action} |`,
  );
  return ["| code | name | closes | meaning |", "| --- | --- | --- | --- |", ...lines].join("\n");
}

// ---- frames ----

/** One Pusher frame, `data` JSON-encoded (a string stays a JSON string: `"\"text\""` is never sent raw). */
export function pusherFrame(event: string, data: unknown, channel?: string): string {
  const encoded = JSON.stringify(data ?? {});
  return JSON.stringify(channel === undefined ? { event, data: encoded } : { event, channel, data: encoded });
}

/** A new socket id, `{integer}.{integer}` as Pusher hands them out. */
export function newSocketId(): string {
  return `${randomInt(1, 2 ** 47)}.${randomInt(1, 2 ** 47)}`;
}

export const SOCKET_ID_PATTERN = "^[0-9]{1,16}\\.[0-9]{1,16}$";
const SOCKET_ID = new RegExp(SOCKET_ID_PATTERN);

export function isSocketId(value: string): boolean {
  return SOCKET_ID.test(value);
}

// ---- channels ----

export type ChannelKind = "public" | "private" | "presence";

export type ParsedChannel =
  | { readonly kind: "public"; readonly stream: "quotes" | "depth"; readonly symbol: string }
  | { readonly kind: "public"; readonly stream: "candles"; readonly symbol: string; readonly timeframe: string }
  | { readonly kind: "private" | "presence"; readonly stream: "account"; readonly accountId: number };

/** A channel name is at most 164 characters (Pusher's limit): letters, digits and `_-=@,.;`. */
export const CHANNEL_NAME_PATTERN = "^[A-Za-z0-9_\\-=@,.;]{1,164}$";
const CHANNEL_NAME = new RegExp(CHANNEL_NAME_PATTERN);
/** A symbol as an instruments file may write it (instruments-file.ts): the candles' timeframe is matched last. */
const SYMBOL = "([A-Za-z0-9._-]{1,32})";
const TIMEFRAMES: ReadonlySet<string> = new Set(CANDLE_TIMEFRAMES);

/**
 * What a channel name means, or null for a name this endpoint does not serve (symbols and timeframes
 * are checked for shape here; whether the symbol exists is the caller's check).
 */
export function parseChannel(name: string): ParsedChannel | null {
  if (!CHANNEL_NAME.test(name)) return null;
  let match = new RegExp(`^(quotes|depth)\\.${SYMBOL}$`).exec(name);
  if (match) return { kind: "public", stream: match[1] as "quotes" | "depth", symbol: match[2]! };
  match = new RegExp(`^candles\\.${SYMBOL}\\.([A-Z0-9]{2,3})$`).exec(name);
  if (match)
    return TIMEFRAMES.has(match[2]!)
      ? { kind: "public", stream: "candles", symbol: match[1]!, timeframe: match[2]! }
      : null;
  match = /^(private|presence)-account\.([1-9][0-9]{0,14})$/.exec(name);
  if (match) return { kind: match[1] as "private" | "presence", stream: "account", accountId: Number(match[2]) };
  return null;
}

export const Channels = {
  quotes: (symbol: string) => `quotes.${symbol}`,
  depth: (symbol: string) => `depth.${symbol}`,
  candles: (symbol: string, timeframe: string) => `candles.${symbol}.${timeframe}`,
  account: (kind: "private" | "presence", accountId: number) => `${kind}-account.${accountId}`,
} as const;

// ---- channel auth (Pusher's HMAC-SHA256 signature) ----

/** The string Pusher signs: `socket_id:channel_name`, plus `:channel_data` for presence channels. */
function signedString(socketId: string, channelName: string, channelData?: string): string {
  return channelData === undefined ? `${socketId}:${channelName}` : `${socketId}:${channelName}:${channelData}`;
}

/** `auth` of a channel authorisation: `${appKey}:${hex HMAC-SHA256(appSecret, signed string)}`. */
export function signChannel(
  appKey: string,
  appSecret: string,
  socketId: string,
  channelName: string,
  channelData?: string,
): string {
  const signature = createHmac("sha256", appSecret)
    .update(signedString(socketId, channelName, channelData))
    .digest("hex");
  return `${appKey}:${signature}`;
}

/** True when `auth` is the signature of this socket, channel and channel data (constant-time compare). */
export function verifyChannelAuth(
  appKey: string,
  appSecret: string,
  socketId: string,
  channelName: string,
  auth: string,
  channelData?: string,
): boolean {
  return sameSecret(auth, signChannel(appKey, appSecret, socketId, channelName, channelData));
}

/** A presence member: `user_id` (a string) and `user_info`, as channel_data carries it. */
export interface PresenceMember {
  readonly user_id: string;
  readonly user_info: Record<string, unknown>;
}

/** The presence member a channel_data string names, or null when it is not one. */
export function parsePresenceMember(channelData: string): PresenceMember | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(channelData);
  } catch {
    return null;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return null;
  const { user_id: userId, user_info: userInfo } = parsed as { user_id?: unknown; user_info?: unknown };
  const id = typeof userId === "number" && Number.isSafeInteger(userId) ? String(userId) : userId;
  if (typeof id !== "string" || id.length === 0 || id.length > 128) return null;
  const info = userInfo === undefined ? {} : userInfo;
  if (typeof info !== "object" || info === null || Array.isArray(info)) return null;
  return { user_id: id, user_info: info as Record<string, unknown> };
}
