/**
 * Waiting for PostgreSQL at start. A server started beside its database (a container, a machine booting) often comes
 * up first: it exited at once with a raw "connect ECONNREFUSED 127.0.0.1:5432", naming no database and trying
 * nothing again (found by the audit of an operator's journey). This tries to connect with backoff for a bounded time,
 * telling of each failed attempt, and tells a server that is not there yet (worth waiting for) from one that answers
 * and refuses the sign-in or the database (not worth it: the URL is wrong).
 */
import pg from "pg";
import { isConnectionFailure } from "./postgres-timeouts.ts";

const { DatabaseError } = pg;

/** The first wait between attempts; each next one doubles, up to RETRY_MOST_DELAY_MS. */
const RETRY_FIRST_DELAY_MS = 1_000;
const RETRY_MOST_DELAY_MS = 8_000;
/** How long one attempt waits for the connection, at most (the stores' own connect timeout), and at least. */
const ATTEMPT_MOST_TIMEOUT_MS = 5_000;
const ATTEMPT_LEAST_TIMEOUT_MS = 1_000;

/**
 * SQLSTATE too_many_connections: the server is there but full (other processes hold its connections), which passes;
 * unlike the other refusals it is worth waiting for.
 */
const TOO_MANY_CONNECTIONS = "53300";
/** SQLSTATE invalid_catalog_name: the database the URL names does not exist. */
const NO_SUCH_DATABASE = "3D000";
/** SQLSTATE class 28, invalid authorization: a wrong password, an unknown role, no pg_hba.conf entry. */
const AUTHORIZATION_CLASS = "28";

/** PostgreSQL was not reachable within the time allowed: it may be later (the command line's "unavailable"). */
export class PostgresUnreachableError extends Error {
  override readonly name = "PostgresUnreachableError";
}

/**
 * PostgreSQL answered and refused the connection: the sign-in, the database, a privilege. Trying again would get the
 * same answer: the connection URL is what must change.
 */
export class PostgresRefusedError extends Error {
  override readonly name = "PostgresRefusedError";
}

export interface PostgresWaitOptions {
  /** How long to go on trying from the first attempt; 0: one attempt. */
  readonly timeoutMs: number;
  /** Told of each failed attempt that is tried again, in a line for the log. */
  readonly onRetry: (line: string) => void;
  /** Ends the wait (a stop signal): PostgresUnreachableError at once, not at the end of the time. */
  readonly signal?: AbortSignal;
}

/**
 * The server a connection URL names, as `host:port`, for messages: never its user or password. A `host` in the query
 * (a Unix socket's directory) wins over the URL's, as in `pg`.
 */
export function postgresServerOf(connectionString: string): string {
  let url: URL;
  try {
    url = new URL(connectionString);
  } catch {
    return "the server of the connection URL";
  }
  const host = url.searchParams.get("host") ?? (url.hostname === "" ? "localhost" : url.hostname);
  return `${host}:${url.searchParams.get("port") ?? (url.port === "" ? "5432" : url.port)}`;
}

/** Why an attempt failed, in a few words: the system's code (ECONNREFUSED), else the server's or the driver's text. */
function failureReason(error: unknown): string {
  if (error instanceof DatabaseError) return `${error.code ?? "no SQLSTATE"}: ${error.message}`;
  // Node tries each address of a name in turn and fails with all their errors together.
  const failure = error instanceof AggregateError && error.errors.length > 0 ? (error.errors[0] as unknown) : error;
  const code = (failure as NodeJS.ErrnoException | null)?.code;
  if (typeof code === "string") return code;
  return failure instanceof Error && failure.message !== "" ? failure.message : String(failure);
}

/**
 * The system's codes of a server not there (yet): refused, reset, unreachable, timed out, a name or a Unix socket not
 * found. Other failures without a server's answer (TLS: "The server does not support SSL connections", a certificate
 * refused) are the URL's settings, which waiting does not mend (found by the review of 7 December, seventh session: an
 * sslmode the server does not speak was retried for the whole wait, then blamed on the host and port).
 */
const NOT_THERE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPIPE",
  "ENOENT",
]);

/** Whether a failed attempt is the server not being there (yet), rather than its answer to this connection. */
function worthRetrying(error: unknown): boolean {
  if (error instanceof DatabaseError) return error.code === TOO_MANY_CONNECTIONS || isConnectionFailure(error);
  const failure = error instanceof AggregateError && error.errors.length > 0 ? (error.errors[0] as unknown) : error;
  const code = (failure as NodeJS.ErrnoException | null)?.code;
  if (typeof code === "string") return NOT_THERE_CODES.has(code);
  // pg's own: its connect timeout ("timeout expired", pg 8's Client), or the server closing the connection while it
  // starts (the review of 7 December, seventh session, found the timeout taken for the URL's settings).
  return failure instanceof Error && /^(Connection terminated|timeout expired)/.test(failure.message);
}

/** The error for a server that answered and refused, or a connection the URL's settings cannot make: what to change. */
function refusal(server: string, error: unknown): PostgresRefusedError {
  if (!(error instanceof DatabaseError))
    return new PostgresRefusedError(
      `PostgreSQL at ${server} could not be connected to: ${failureReason(error)}; not retried: correct the URL's ` +
        "connection settings (sslmode and the certificates, for one)",
      { cause: error },
    );
  const state = error.code ?? "";
  const remedy =
    state === NO_SUCH_DATABASE
      ? "create the database, or correct the database the URL names"
      : state.startsWith(AUTHORIZATION_CLASS)
        ? "correct the user or password of the URL, or the server's pg_hba.conf"
        : "correct the URL, or the user's privileges";
  return new PostgresRefusedError(
    `PostgreSQL at ${server} refused the connection: ${error.message} (${state}); not retried: ${remedy}`,
    { cause: error },
  );
}

/** Waits `milliseconds`; false when `signal` ended the wait first (or had already). */
function pause(milliseconds: number, signal: AbortSignal | undefined): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const ended = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", ended);
      resolve(true);
    }, milliseconds);
    signal?.addEventListener("abort", ended, { once: true });
  });
}

function seconds(milliseconds: number): string {
  return `${Number((milliseconds / 1000).toFixed(1))} s`;
}

/**
 * Connects to the PostgreSQL of `connectionString` (and lets go at once) until it succeeds, trying again with
 * backoff (1 s doubling to 8 s) while the server cannot be reached, for `timeoutMs` at most. Throws
 * PostgresUnreachableError once the time is out, and PostgresRefusedError at once when the server refuses the sign-in
 * or the database. No message carries the URL's password.
 */
export async function waitForPostgres(connectionString: string, options: PostgresWaitOptions): Promise<void> {
  const server = postgresServerOf(connectionString);
  const deadline = Date.now() + options.timeoutMs;
  let delayMs = RETRY_FIRST_DELAY_MS;
  for (let attempt = 1; ; attempt += 1) {
    const remainingMs = deadline - Date.now();
    const client = new pg.Client({
      connectionString,
      connectionTimeoutMillis: Math.min(ATTEMPT_MOST_TIMEOUT_MS, Math.max(ATTEMPT_LEAST_TIMEOUT_MS, remainingMs)),
      application_name: "bourse start",
    });
    // A connection that fails also emits 'error'; the rejected connect() reports it.
    client.on("error", () => undefined);
    try {
      await client.connect();
      await client.end().catch(() => undefined);
      return;
    } catch (error) {
      await client.end().catch(() => undefined);
      if (!worthRetrying(error)) throw refusal(server, error);
      const reason = failureReason(error);
      const leftMs = deadline - Date.now();
      if (leftMs <= 0)
        throw new PostgresUnreachableError(
          `PostgreSQL at ${server} was not reachable within ${seconds(options.timeoutMs)} (${reason}; ${attempt} ${attempt === 1 ? "attempt" : "attempts"}): start it, or correct the host and port of the URL`,
          { cause: error },
        );
      const waitMs = Math.min(delayMs, leftMs);
      options.onRetry(`PostgreSQL at ${server} is not reachable (${reason}), retrying in ${seconds(waitMs)}`);
      if (!(await pause(waitMs, options.signal)))
        throw new PostgresUnreachableError(`stopped while waiting for PostgreSQL at ${server} (${reason})`, {
          cause: error,
        });
      delayMs = Math.min(delayMs * 2, RETRY_MOST_DELAY_MS);
    }
  }
}
