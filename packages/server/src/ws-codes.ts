/**
 * The close codes of the stream endpoints: the sibling of errors.ts's registry (which it extends: the
 * `error` messages a stream sends carry the codes of `ApiErrorCodes`, a closing socket one of these).
 * A socket is closed with a code of this table, after an `error` message naming the registry code
 * when one applies. Codes are never renamed or reused: clients switch on them. README ("Native stream")
 * and `/docs` (GET /api/v1/ws) publish the table.
 *
 * 1000-1015 are the protocol's (RFC 6455); 4000-4999 are the application's.
 */
import type { ApiErrorCode } from "./errors.ts";

interface CloseDefinition {
  readonly code: number;
  readonly reason: string;
  /** The error registry's code sent in the `error` message before the close, when there is one. */
  readonly error?: ApiErrorCode;
  /** What a client should do. */
  readonly action: string;
}

export const WsCloseCodes = {
  NORMAL: { code: 1000, reason: "Closed", action: "Nothing: the client or the server ended the session" },
  GOING_AWAY: { code: 1001, reason: "Server shutting down", action: "Reconnect with backoff and resume (sinceSeq)" },
  TRY_AGAIN_LATER: {
    code: 1013,
    reason: "Try again later",
    action:
      "The server could not check the credential just now (its database or engine unavailable; the `error` before " +
      "it says which, e.g. ENGINE_UNAVAILABLE): the token is not at fault, keep it; reconnect after a backoff and " +
      "resume (sinceSeq)",
  },
  MESSAGE_TOO_BIG: {
    code: 1009,
    reason: "Message too big",
    action: "Send smaller messages (the limit is the stream's maxPayload, 64 KiB by default)",
  },
  UNAUTHORIZED: {
    code: 4001,
    reason: "Unauthorized",
    error: "UNAUTHORIZED",
    action:
      "Missing, invalid, revoked or expired token, or a message before `authorize` (the `error` before it says which: " +
      "UNAUTHORIZED, TOKEN_EXPIRED, SESSION_REVOKED, INVALID_API_KEY): refresh the token if its session allows " +
      "(POST /api/v1/session/refresh), else sign in again",
  },
  AUTH_TIMEOUT: {
    code: 4002,
    reason: "Authorization timeout",
    error: "UNAUTHORIZED",
    action: "Send `authorize` within 5 s of connecting, or pass ?token=",
  },
  TOKEN_EXPIRED: {
    code: 4003,
    reason: "Session expired",
    error: "TOKEN_EXPIRED",
    action:
      "The token the socket was authorised with expired while connected: reconnect with a refreshed token (POST " +
      "/api/v1/session/refresh before expiry, then `authorize` on the open socket moves its expiry), or sign in " +
      "again if the session cannot be refreshed",
  },
  REVOKED: {
    code: 4004,
    reason: "Session revoked",
    error: "SESSION_REVOKED",
    action:
      "The session that authorised the socket was revoked while connected (logout, a password change, the broker " +
      "ending it, its refresh token used again after it was replaced, or a sign-in past the user's 100 active " +
      "sessions; its refresh token is then no use either), or its API key was revoked or rotated (the error is then " +
      "INVALID_API_KEY): do not reconnect with the same token; sign in again, or use the new key",
  },
  SLOW_CONSUMER: {
    code: 4008,
    reason: "Slow consumer",
    action:
      "The client did not read fast enough (send buffer over its limit, or stalled too long): read faster or " +
      "subscribe to less, reconnect and resume with sinceSeq",
  },
  PING_TIMEOUT: {
    code: 4009,
    reason: "Ping timeout",
    action:
      "The client did not answer the server's ping with a pong (browsers do): reconnect after a backoff and resume " +
      "(sinceSeq)",
  },
  RATE_LIMITED: {
    code: 4029,
    reason: "Rate limit exceeded",
    error: "RATE_LIMITED",
    action: "The client kept sending over its message rate after RATE_LIMITED errors: slow down",
  },
  TOO_MANY_SOCKETS: {
    code: 4030,
    reason: "Too many sockets",
    error: "LIMIT_REACHED",
    action:
      "The user (20 sockets), the API key (10) or the client address (1,000 open, Pusher sockets included, and " +
      "100 waiting for `authorize`, by default: BOURSE_STREAM_SOCKETS_PER_ADDRESS, " +
      "BOURSE_STREAM_UNAUTHORIZED_SOCKETS_PER_ADDRESS) holds as many as it may; the `error` before it says which: " +
      "refused right after the handshake or at authorization. Close one, or reconnect after a backoff; one socket " +
      "carries every subscription",
  },
  REPLACED: {
    code: 4031,
    reason: "Replaced by a newer socket",
    error: "LIMIT_REACHED",
    action:
      "A newer socket of the same session or API key took this one's place, its credential being at its socket " +
      "limit (a reconnect while this socket's network was dead): nothing to do; an app that sees this on a live " +
      "socket opens too many, one carries every subscription",
  },
} as const satisfies Record<string, CloseDefinition>;

export type WsCloseName = keyof typeof WsCloseCodes;

/** The table for `/docs` and the README. */
export function wsCloseCodesDescription(): string {
  const lines = Object.entries(WsCloseCodes).map(
    ([name, definition]) =>
      `| ${definition.code} | \`${name}\` | ${"error" in definition ? `\`${definition.error}\`` : ""} | ${definition.action} |`,
  );
  return ["| close code | name | error before it | meaning |", "| --- | --- | --- | --- |", ...lines].join("\n");
}
