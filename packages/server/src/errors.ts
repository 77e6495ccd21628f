/**
 * The one registry of the faces' error codes: every code a client can receive, its HTTP status and
 * its default message (like Fastify's lib/errors.js). The engine's rejection codes (core
 * `RejectionCodes`) are part of it, each with the status its meaning calls for. Codes are never
 * renamed or reused: clients switch on them. `/docs` publishes the table.
 *
 * The streams send these codes in their `error` messages; the close codes of a WebSocket are the
 * sibling registry ws-codes.ts (`WsCloseCodes`: each close code with the error code sent before it).
 */
import { RejectionCodes, type RejectionCode } from "@bourse/core";
import type { StorageUnavailableError } from "@bourse/store";

const HttpStatus = {
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  REQUEST_TIMEOUT: 408,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  TOO_MANY_REQUESTS: 429,
  REQUEST_HEADER_FIELDS_TOO_LARGE: 431,
  INTERNAL_SERVER_ERROR: 500,
  SERVICE_UNAVAILABLE: 503,
} as const;

export type HttpStatusCode = (typeof HttpStatus)[keyof typeof HttpStatus];

interface ErrorDefinition {
  readonly status: HttpStatusCode;
  readonly message: string;
}

/** The HTTP status of each engine rejection: not found for a missing record, conflict for a repeat, else 400. */
const REJECTION_STATUS: Record<RejectionCode, HttpStatusCode> = {
  INVALID_DATA: HttpStatus.BAD_REQUEST,
  ACCOUNT_NOT_FOUND: HttpStatus.NOT_FOUND,
  ACCOUNT_EXISTS: HttpStatus.CONFLICT,
  ACCOUNT_DISABLED: HttpStatus.FORBIDDEN,
  INVALID_CURRENCY: HttpStatus.BAD_REQUEST,
  INVALID_LEVERAGE: HttpStatus.BAD_REQUEST,
  INVALID_GROUP: HttpStatus.BAD_REQUEST,
  UNKNOWN_SYMBOL: HttpStatus.NOT_FOUND,
  TRADE_DISABLED: HttpStatus.BAD_REQUEST,
  MARKET_CLOSED: HttpStatus.BAD_REQUEST,
  NO_QUOTES: HttpStatus.BAD_REQUEST,
  INVALID_VOLUME: HttpStatus.BAD_REQUEST,
  INVALID_PRICE: HttpStatus.BAD_REQUEST,
  INVALID_STOPS: HttpStatus.BAD_REQUEST,
  INVALID_EXPIRATION: HttpStatus.BAD_REQUEST,
  INVALID_FILL_POLICY: HttpStatus.BAD_REQUEST,
  INVALID_ORDER_TYPE: HttpStatus.BAD_REQUEST,
  PRICE_OFF: HttpStatus.BAD_REQUEST,
  NO_LIQUIDITY: HttpStatus.BAD_REQUEST,
  NO_MONEY: HttpStatus.BAD_REQUEST,
  INVALID_AMOUNT: HttpStatus.BAD_REQUEST,
  ORDER_NOT_FOUND: HttpStatus.NOT_FOUND,
  ORDER_NOT_MODIFIABLE: HttpStatus.CONFLICT,
  POSITION_NOT_FOUND: HttpStatus.NOT_FOUND,
  DUPLICATE_CLIENT_ORDER_ID: HttpStatus.CONFLICT,
  DUPLICATE_REFERENCE: HttpStatus.CONFLICT,
  NO_CHANGES: HttpStatus.BAD_REQUEST,
  TOO_MANY_ORDERS: HttpStatus.CONFLICT,
  TOO_MANY_POSITIONS: HttpStatus.CONFLICT,
  TIME_WENT_BACKWARDS: HttpStatus.SERVICE_UNAVAILABLE,
};

const rejectionDefinitions = Object.fromEntries(
  (Object.keys(RejectionCodes) as RejectionCode[]).map((code) => [
    code,
    { status: REJECTION_STATUS[code], message: RejectionCodes[code] },
  ]),
) as Record<RejectionCode, ErrorDefinition>;

export const ApiErrorCodes = {
  ...rejectionDefinitions,
  // Requests
  ROUTE_NOT_FOUND: { status: HttpStatus.NOT_FOUND, message: "No such route" },
  NOT_FOUND: { status: HttpStatus.NOT_FOUND, message: "No such resource" },
  PAYLOAD_TOO_LARGE: { status: HttpStatus.PAYLOAD_TOO_LARGE, message: "The request body is too large" },
  UNSUPPORTED_MEDIA_TYPE: {
    status: HttpStatus.UNSUPPORTED_MEDIA_TYPE,
    message: "The request body must be application/json",
  },
  // What Node's HTTP parser refuses before any route (app.ts `answerClientError`).
  MALFORMED_REQUEST: { status: HttpStatus.BAD_REQUEST, message: "The request is not valid HTTP/1.1" },
  REQUEST_TIMEOUT: {
    status: HttpStatus.REQUEST_TIMEOUT,
    message: "The request's headers and body did not all arrive within 30 s",
  },
  HEADERS_TOO_LARGE: {
    status: HttpStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
    message: "The request's headers are larger than 16 KiB",
  },
  CONFLICT: { status: HttpStatus.CONFLICT, message: "The resource already exists or changed meanwhile" },
  LIMIT_REACHED: { status: HttpStatus.CONFLICT, message: "The limit of this kind of resource is reached" },
  RATE_LIMITED: { status: HttpStatus.TOO_MANY_REQUESTS, message: "Too many requests: slow down" },
  // Auth
  UNAUTHORIZED: { status: HttpStatus.UNAUTHORIZED, message: "Missing or invalid authorization" },
  TOKEN_EXPIRED: {
    status: HttpStatus.UNAUTHORIZED,
    message: "The token has expired: renew it with the session's refresh token, or sign in again",
  },
  SESSION_REVOKED: { status: HttpStatus.UNAUTHORIZED, message: "The session has ended: sign in again" },
  // A refresh with the refresh token, past the session's 7 days: TOKEN_EXPIRED would tell a client to refresh again.
  SESSION_EXPIRED: {
    status: HttpStatus.UNAUTHORIZED,
    message: "The session is 7 days old, as long as a session lives: sign in again",
  },
  // Told apart from SESSION_REVOKED so an app can warn that the session was used elsewhere.
  REFRESH_TOKEN_REUSED: {
    status: HttpStatus.UNAUTHORIZED,
    message:
      "A refresh token of this session was presented again after it was replaced, as a copied one would be: the " +
      "session has ended, sign in again",
  },
  INVALID_CREDENTIALS: { status: HttpStatus.UNAUTHORIZED, message: "Wrong email, login or password" },
  LOGIN_LOCKED: {
    status: HttpStatus.TOO_MANY_REQUESTS,
    message: "Too many failed sign-ins: try again later",
  },
  // Told only to whoever knows the password: to anyone else a disabled user's sign-in is INVALID_CREDENTIALS.
  USER_DISABLED: {
    status: HttpStatus.FORBIDDEN,
    message: "This user has been disabled by the broker: contact them",
  },
  // 403, not 401: the session is sound (a client that signs out on 401 must not lose it over a typo).
  WRONG_PASSWORD: { status: HttpStatus.FORBIDDEN, message: "The current password is wrong" },
  EMAIL_TAKEN: { status: HttpStatus.CONFLICT, message: "A user with this email already exists" },
  // BOURSE_SIGNUP=closed: users are created by the back office (a live broker's checks come first).
  SIGNUP_CLOSED: {
    status: HttpStatus.FORBIDDEN,
    message: "Sign-up is closed on this server: the broker opens accounts",
  },
  FORBIDDEN: { status: HttpStatus.FORBIDDEN, message: "Not allowed to access this resource" },
  INVALID_API_KEY: { status: HttpStatus.FORBIDDEN, message: "Invalid API key" },
  INSUFFICIENT_SCOPE: { status: HttpStatus.FORBIDDEN, message: "The API key's scope does not allow this request" },
  // Engine
  ENGINE_UNAVAILABLE: {
    status: HttpStatus.SERVICE_UNAVAILABLE,
    message: "The trading engine is not available; the command was not executed",
  },
  OUTCOME_UNKNOWN: {
    status: HttpStatus.SERVICE_UNAVAILABLE,
    message: "The storage failed while the command was being saved: look it up before retrying",
  },
  ENGINE_OVERLOADED: {
    status: HttpStatus.SERVICE_UNAVAILABLE,
    message: "The trading engine is overloaded; the command was not executed",
  },
  INTERNAL_ERROR: { status: HttpStatus.INTERNAL_SERVER_ERROR, message: "Internal server error" },
} as const satisfies Record<string, ErrorDefinition>;

export type ApiErrorCode = keyof typeof ApiErrorCodes;

/** An error a face answers with: a code of the registry, its status, and a message for people. */
export class ApiError extends Error {
  override readonly name = "ApiError";
  readonly statusCode: HttpStatusCode;
  constructor(
    readonly code: ApiErrorCode,
    message?: string,
    /** Extra response headers (Retry-After). */
    readonly headers: Readonly<Record<string, string>> = {},
    /** What caused it, for the log (`errorText`); never answered to the client. */
    options?: ErrorOptions,
  ) {
    super(message ?? ApiErrorCodes[code].message, options);
    this.statusCode = ApiErrorCodes[code].status;
  }
}

/**
 * Whether `error` is the refusal of a quote whose market is closed (`Platform.pushQuote`: the engine takes no quote
 * outside its symbol's sessions). Feeds count such quotes as not taken, not as failures.
 */
export function isMarketClosed(error: unknown): boolean {
  return error instanceof ApiError && error.code === "MARKET_CLOSED";
}

/**
 * The answer to a call the database could not take (StorageUnavailableError: PostgreSQL stalled or unreachable,
 * SQLite's disk full, an I/O error, a lock held elsewhere): 503, OUTCOME_UNKNOWN when a write may have been saved,
 * ENGINE_UNAVAILABLE when nothing was. Fixed texts: the error's own message may name the database's host, which is
 * no client's business.
 */
export function storageApiError(error: StorageUnavailableError): ApiError {
  const [code, message]: [ApiErrorCode, string] = error.diskFull
    ? ["ENGINE_UNAVAILABLE", "The database's disk is full: nothing was changed; try again later"]
    : error.outcomeUnknown
      ? [
          "OUTCOME_UNKNOWN",
          "The database did not confirm the change: it may or may not have been saved; look before retrying",
        ]
      : ["ENGINE_UNAVAILABLE", "The database is unavailable: nothing was changed; try again shortly"];
  return new ApiError(code, message, {}, { cause: error });
}

/**
 * An error as a log line says it: its text, and its cause's when it has one. A store call of a background task (a
 * notification's write, a candle flush) fails with the client's words ("The database is unavailable"), and the log
 * said only those, not PostgreSQL's own (found by the PostgreSQL soak audit of 7 December, ninth session).
 */
export function errorText(error: unknown): string {
  const cause = error instanceof Error ? error.cause : undefined;
  return cause === undefined ? String(error) : `${String(error)} (${String(cause)})`;
}

export function isApiErrorCode(value: string): value is ApiErrorCode {
  return Object.prototype.hasOwnProperty.call(ApiErrorCodes, value);
}

export { HttpStatus };
