/**
 * How long the PostgreSQL drivers wait for the server, and how they tell a stalled or vanished server from an answer.
 *
 * A server that fails (a restart, a refused connection) answers with an error at once; one that stalls does not
 * answer at all: a lock held by another session, a network partition that drops packets without a reset, a server
 * paused by SIGSTOP. `pg` waits for an answer forever by default, so before these limits a stalled append hung every
 * command of its batch (and the ones queued behind it) with /readyz still ready, and a stuck platform query held its
 * pooled connection forever; once all were held, every request waited out the pool's connection timeout and
 * answered 500 (found by the audit of 6 December, tests postgres-stall.test.ts).
 *
 * Three limits, on every pooled connection:
 * - the server cancels a statement that runs longer than the statement timeout (SQLSTATE 57014): a clean, known
 *   outcome (nothing is committed by a statement that was cancelled before COMMIT);
 * - the client gives up on an answer that has not come `ANSWER_GRACE_MILLISECONDS` after that (a partition or a
 *   paused server cannot even send the cancellation): the connection is destroyed, and a COMMIT that was sent has an
 *   unknown outcome;
 * - the server ends a session left idle inside a transaction for as long (its client vanished mid-transaction
 *   behind a partition): its locks, and its uncommitted journal row, which the next append's row would wait on,
 *   are released.
 * Keepalive probes start after `KEEPALIVE_INITIAL_DELAY_MILLISECONDS` of silence, so a connection to a host that
 * is gone is noticed by the kernel rather than after its default two hours.
 */
import pg from "pg";

const { DatabaseError } = pg;

/**
 * Fifteen seconds: a healthy statement of the journal or the platform store takes milliseconds (a group commit of
 * 50,000 events about a second); anything slower is waiting on something that may never come.
 */
export const DEFAULT_STATEMENT_TIMEOUT_MILLISECONDS = 15_000;

/**
 * How much longer than the statement timeout the client waits for an answer: the server's own cancellation comes
 * first whenever the server can still send it, and the client's limit only ends a connection that is truly silent.
 */
export const ANSWER_GRACE_MILLISECONDS = 2_000;

/** Silence on a connection after which the kernel starts probing whether its peer is still there. */
export const KEEPALIVE_INITIAL_DELAY_MILLISECONDS = 10_000;

/** SQLSTATE query_canceled: the statement timeout expired (or an operator cancelled the statement). */
const QUERY_CANCELED = "57014";

/** The message `pg` gives a query whose `query_timeout` expired: it has no code to test instead. */
const QUERY_READ_TIMEOUT_MESSAGE = "Query read timeout";

/** The message `pg-pool` gives a checkout that found no connection free (or could not open one) in time. */
const POOL_CHECKOUT_TIMEOUT_MESSAGE = "timeout exceeded when trying to connect";

/** The `pg` settings that bound every statement of a pool's connections (see the file's comment). */
export function boundedConnectionSettings(statementTimeoutMilliseconds: number): {
  statement_timeout: number;
  idle_in_transaction_session_timeout: number;
  query_timeout: number;
  keepAlive: true;
  keepAliveInitialDelayMillis: number;
} {
  if (!Number.isSafeInteger(statementTimeoutMilliseconds) || statementTimeoutMilliseconds < 1)
    throw new RangeError(
      `statementTimeoutMilliseconds must be a positive integer, got ${statementTimeoutMilliseconds}`,
    );
  return {
    statement_timeout: statementTimeoutMilliseconds,
    idle_in_transaction_session_timeout: statementTimeoutMilliseconds,
    query_timeout: statementTimeoutMilliseconds + ANSWER_GRACE_MILLISECONDS,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_INITIAL_DELAY_MILLISECONDS,
  };
}

/** The client stopped waiting for an answer that never came: the connection is stuck and must be destroyed. */
export function isAnswerTimeout(error: unknown): boolean {
  return error instanceof Error && !(error instanceof DatabaseError) && error.message === QUERY_READ_TIMEOUT_MESSAGE;
}

/** No pooled connection became free (or could be opened) in time: nothing was sent. */
export function isCheckoutTimeout(error: unknown): boolean {
  return error instanceof Error && !(error instanceof DatabaseError) && error.message === POOL_CHECKOUT_TIMEOUT_MESSAGE;
}

/** The server cancelled the statement (its statement timeout expired): nothing of it, nor of its transaction, was committed. */
export function isStatementTimeout(error: unknown): boolean {
  return error instanceof DatabaseError && error.code === QUERY_CANCELED;
}

/**
 * SQLSTATEs the server sends as it drops the connection: the session is gone, not the statement refused. 57P01-03:
 * terminated, crash, cannot connect now; 25P03: the session sat in a transaction past
 * idle_in_transaction_session_timeout (postgres-timeouts.ts), and its transaction was rolled back.
 */
const CONNECTION_ENDING_STATES = new Set(["57P01", "57P02", "57P03", "25P03"]);

/** True when the error is the connection failing (socket, timeout, server shutting the session) rather than an answer. */
export function isConnectionFailure(error: unknown): boolean {
  if (!(error instanceof DatabaseError)) return true;
  const state = error.code ?? "";
  return state.startsWith("08") || CONNECTION_ENDING_STATES.has(state);
}

/**
 * PostgreSQL did not answer in time, or could not be reached: a stalled or lost server, not a refusal of the call.
 * Faces answer 503. `outcomeUnknown` is true when the failure came after a write was sent for commit (a COMMIT, or a
 * statement outside a transaction) and before its answer: the write may or may not have been applied.
 */
export class StorageUnavailableError extends Error {
  override readonly name = "StorageUnavailableError";
  /** The database's disk is full (SQLite): nothing was changed, and trying again helps only once space is freed. */
  readonly diskFull: boolean;
  constructor(
    message: string,
    readonly outcomeUnknown: boolean,
    options?: { cause?: unknown; diskFull?: boolean },
  ) {
    super(message, options);
    this.diskFull = options?.diskFull ?? false;
  }
}

/**
 * Whether `error`, from a query of `pg`, is the server stalling or going away rather than an answer: an answer
 * timeout, a statement timeout, a checkout timeout, or a failed connection (a `pg` error that is not the server's).
 */
export function isStorageFailure(error: unknown): boolean {
  if (error instanceof DatabaseError) return isStatementTimeout(error) || isConnectionFailure(error);
  return isAnswerTimeout(error) || isCheckoutTimeout(error) || isPgConnectionError(error);
}

/** A socket error (ECONNREFUSED, ECONNRESET, …) or `pg`'s own word for a connection that ended. */
function isPgConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (typeof (error as NodeJS.ErrnoException).syscall === "string") return true;
  return /^Connection terminated|^Client has encountered a connection error|^Client was closed/.test(error.message);
}

/** The error for a call that met a stalled or vanished server (`isStorageFailure`), saying whether a write may have landed. */
export function storageUnavailable(error: unknown, outcomeUnknown: boolean): StorageUnavailableError {
  const reason = isCheckoutTimeout(error)
    ? "no connection to PostgreSQL came free or could be opened in time"
    : isAnswerTimeout(error) || isStatementTimeout(error)
      ? "PostgreSQL did not answer in time"
      : `the connection to PostgreSQL failed (${error instanceof Error ? error.message : String(error)})`;
  return new StorageUnavailableError(
    outcomeUnknown ? `${reason}: the change may or may not have been saved` : `${reason}: nothing was changed`,
    outcomeUnknown,
    { cause: error },
  );
}

/**
 * A pooled connection, or StorageUnavailableError ("nothing was changed"): whatever fails before a statement is sent
 * leaves nothing in doubt, a refused session included. PostgreSQL refuses a session with an answer of its own, not a
 * socket error: too many connections (53300, the server's or a role's limit), a database not accepting connections
 * (55000) or gone (3D000), a role refused (28xxx); those answered 500 where an outage answers 503 (found by the
 * PostgreSQL soak audit of 7 December, ninth session).
 */
export async function connectOrUnavailable(pool: pg.Pool): Promise<pg.PoolClient> {
  try {
    return await pool.connect();
  } catch (error) {
    throw storageUnavailable(error, false);
  }
}

/** How busy a pool is, for `/metrics`: its open connections, those idle, and the calls waiting for one. */
export interface PoolStatistics {
  readonly connections: number;
  readonly idle: number;
  readonly waiting: number;
}

export function poolStatistics(pool: pg.Pool): PoolStatistics {
  return { connections: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount };
}

export const DEFAULT_MAX_WAITING_CALLS = 1000;

/** A pool whose queue of calls waiting for a connection is bounded (see maxWaitingCalls). */
export interface BoundedPool {
  readonly pool: pg.Pool;
  readonly maxWaitingCalls: number;
}

/** A positive integer, or a RangeError that names the option. */
export function checkedMaxWaitingCalls(value: number | undefined): number {
  const chosen = value ?? DEFAULT_MAX_WAITING_CALLS;
  if (!Number.isSafeInteger(chosen) || chosen < 1)
    throw new RangeError(`maxWaitingCalls must be a positive integer, got ${chosen}`);
  return chosen;
}

/**
 * Throws, before the call joins the pool's queue, when `maxWaitingCalls` calls wait there already for a connection to
 * come free. pg-pool queues every checkout until its next tick, also those an idle connection or one it may still
 * open is about to take: they are not counted as waiting.
 */
export function admit({ pool, maxWaitingCalls }: BoundedPool): void {
  const servedSoon = pool.idleCount + Math.max(0, (pool.options.max ?? 10) - pool.totalCount);
  if (pool.waitingCount - servedSoon >= maxWaitingCalls)
    throw new StorageUnavailableError(
      `${maxWaitingCalls} calls are already waiting for a PostgreSQL connection: nothing was changed`,
      false,
    );
}
