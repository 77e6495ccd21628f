/**
 * The PlatformStore on PostgreSQL through a `pg` pool, in a schema of its choosing (default "bourse", the
 * journal's: the table names do not clash, and the migrations are recorded apart, in platform_migrations).
 * A transaction runs on one pooled connection; the bounded per-user lists lock the user's row (FOR UPDATE)
 * so that concurrent writers cannot take a list past its bound.
 */
import { runPostgresMigrationsOnOwnConnection, type PostgresMigration } from "./postgres-migrations.ts";
import type { AppliedMigration } from "./migrations.ts";
import pg from "pg";
import {
  DEFAULT_STATEMENT_TIMEOUT_MILLISECONDS,
  StorageUnavailableError,
  admit,
  boundedConnectionSettings,
  checkedMaxWaitingCalls,
  isCheckoutTimeout,
  isStatementTimeout,
  connectOrUnavailable,
  isConnectionFailure,
  isStorageFailure,
  poolStatistics,
  storageUnavailable,
  type BoundedPool,
  type PoolStatistics,
} from "./postgres-timeouts.ts";

export { DEFAULT_MAX_WAITING_CALLS, StorageUnavailableError, type PoolStatistics } from "./postgres-timeouts.ts";
import { ValidationError } from "./platform-store.ts";
import {
  ConstraintViolation,
  PLATFORM_ALERT_ARMING_SQL,
  PLATFORM_DERIVED_THROUGH_SQL,
  PLATFORM_LAST_QUOTES_SQL,
  PLATFORM_NOTIFICATION_EVENTS_SQL,
  PLATFORM_ALERT_TRIGGER_KEYS_SQL,
  PLATFORM_INSTRUMENT_SCALES_SQL,
  PLATFORM_CLEANUP_INDEXES_SQL,
  PLATFORM_ALERT_LOG_MESSAGES_SQL,
  PLATFORM_NOTIFICATION_KINDS_SQL,
  PLATFORM_USER_DISABLED_SQL,
  PLATFORM_REFRESH_TOKENS_SQL,
  PLATFORM_SCHEMA_SQL,
  SqlPlatformStore,
  type Row,
  type SqlDatabase,
  type SqlDialect,
  type SqlStatement,
  type SqlExecutor,
  type TransactionOptions,
} from "./sql-platform-store.ts";

const { DatabaseError, Pool } = pg;

export interface PostgresPlatformStoreOptions {
  /** postgres://user:password@host:port/database */
  readonly connectionString: string;
  /** The schema the tables live in, created if missing. Default "bourse". */
  readonly schema?: string;
  /** Connections in the pool. Default 4. */
  readonly poolSize?: number;
  /**
   * How long a call waits for a pooled connection (every one busy) or for a new one to open before it fails with
   * StorageUnavailableError, in milliseconds. Default 5000.
   */
  readonly connectTimeoutMilliseconds?: number;
  /**
   * Calls that may wait for a pooled connection at once (every connection busy). One more is refused at once with
   * StorageUnavailableError: pg-pool's queue has no bound of its own, and a stalled server would otherwise gather a
   * waiting call, and the request behind it, for every request of the checkout timeout. Default 1000.
   */
  readonly maxWaitingCalls?: number;
  /**
   * How long one statement may run before PostgreSQL cancels it, in milliseconds; the client gives up on a silent
   * server a little later (postgres-timeouts.ts). A stuck statement then fails with StorageUnavailableError and frees
   * its connection, instead of holding it (and its locks) forever. Default 15000.
   */
  readonly statementTimeoutMilliseconds?: number;
  /** Told about errors of idle pooled connections (already discarded by the pool). */
  readonly onIdleConnectionError?: (error: Error) => void;
}

/** A migration whose SQL has `{s}` standing for the quoted schema name and a dot. */
type Migration = PostgresMigration;

/** The shared schema text in PostgreSQL's integer and key types (the schema prefix is the migration runner's). */
function postgresText(sql: string): string {
  return sql.replaceAll("{int}", "bigint").replaceAll("{serial}", "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY");
}

/** Applied in order, each once, recorded in platform_migrations. Never edit one that has shipped: add the next. */
const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: "platform data", sql: postgresText(PLATFORM_SCHEMA_SQL) },
  { version: 2, name: "alert arming", sql: postgresText(PLATFORM_ALERT_ARMING_SQL) },
  { version: 3, name: "derived through", sql: postgresText(PLATFORM_DERIVED_THROUGH_SQL) },
  { version: 4, name: "last quotes", sql: postgresText(PLATFORM_LAST_QUOTES_SQL) },
  { version: 5, name: "notification events", sql: postgresText(PLATFORM_NOTIFICATION_EVENTS_SQL) },
  { version: 6, name: "alert trigger keys", sql: postgresText(PLATFORM_ALERT_TRIGGER_KEYS_SQL) },
  { version: 7, name: "instrument scales", sql: postgresText(PLATFORM_INSTRUMENT_SCALES_SQL) },
  { version: 8, name: "cleanup indexes and prune marks", sql: postgresText(PLATFORM_CLEANUP_INDEXES_SQL) },
  { version: 9, name: "alert log messages", sql: postgresText(PLATFORM_ALERT_LOG_MESSAGES_SQL) },
  { version: 10, name: "notification kinds and unread index", sql: postgresText(PLATFORM_NOTIFICATION_KINDS_SQL) },
  { version: 11, name: "disabled users", sql: postgresText(PLATFORM_USER_DISABLED_SQL) },
  { version: 12, name: "refresh tokens", sql: postgresText(PLATFORM_REFRESH_TOKENS_SQL) },
];

const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** `?` placeholders to `$1`, `$2`, …: the store's statements have no `?` inside literals. */
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

/** A statement that only reads: when it goes unanswered, nothing is in doubt. */
const READ_ONLY_STATEMENT = /^\s*SELECT\b(?![\s\S]*\bFOR\s+UPDATE\b)/i;

function translate(error: unknown): unknown {
  if (error instanceof DatabaseError) {
    if (error.code === "23505")
      return new ConstraintViolation("unique", error.detail ?? error.message, { cause: error });
    if (error.code === "23503")
      return new ConstraintViolation("foreign", error.detail ?? error.message, { cause: error });
    // Text PostgreSQL cannot hold (a NUL, an unpaired surrogate): checkText refuses it first; this is the net.
    if (error.code === "22021" || error.code === "22P05") return new ValidationError(`text: ${error.message}`, "text");
  }
  return error;
}

class PostgresExecutor implements SqlExecutor {
  private readonly texts = new Map<string, string>();
  private readonly inTransaction: boolean;

  /**
   * On the pool (`BoundedPool`) each statement takes a connection of its own, after the admission check; on a
   * transaction's client (`inTransaction`) nothing commits until the transaction's COMMIT, so a statement's failure
   * leaves nothing in doubt.
   */
  constructor(private readonly target: BoundedPool | pg.PoolClient) {
    this.inTransaction = !("maxWaitingCalls" in target);
  }

  private async query<R extends pg.QueryResultRow>(
    sql: string,
    params: readonly unknown[],
  ): Promise<pg.QueryResult<R>> {
    if (!("maxWaitingCalls" in this.target)) return this.target.query<R>(this.text(sql), params as unknown[]);
    admit(this.target);
    // As `pool.query` does, with the connection taken apart: a session refused is no answer to the statement.
    const client = await connectOrUnavailable(this.target.pool);
    try {
      const result = await client.query<R>(this.text(sql), params as unknown[]);
      client.release();
      return result;
    } catch (error) {
      // A refusal of the statement leaves the session fine; a failed or stuck one is not taken again.
      client.release(isConnectionFailure(error));
      throw error;
    }
  }

  /**
   * A failure of `sql` in the store's terms. On the pool, a statement commits by itself: one that was sent and went
   * unanswered (not cancelled by the server, which rolls it back) may have been applied, unless it only reads.
   */
  private failure(sql: string, error: unknown): unknown {
    if (error instanceof StorageUnavailableError) return error;
    if (!isStorageFailure(error)) return translate(error);
    const sent = !isCheckoutTimeout(error) && !isStatementTimeout(error);
    return storageUnavailable(error, sent && !this.inTransaction && !READ_ONLY_STATEMENT.test(sql));
  }

  private text(sql: string): string {
    let text = this.texts.get(sql);
    if (text === undefined) {
      text = numbered(sql);
      this.texts.set(sql, text);
    }
    return text;
  }

  async all(sql: string, params: readonly unknown[] = []): Promise<Row[]> {
    try {
      return (await this.query<Row>(sql, params)).rows;
    } catch (error) {
      throw this.failure(sql, error);
    }
  }

  async run(sql: string, params: readonly unknown[] = []): Promise<number> {
    try {
      return (await this.query(sql, params)).rowCount ?? 0;
    } catch (error) {
      throw this.failure(sql, error);
    }
  }
}

class PostgresDatabase extends PostgresExecutor implements SqlDatabase {
  constructor(private readonly bounded: BoundedPool) {
    super(bounded);
  }

  async transaction<T>(work: (tx: SqlExecutor) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    admit(this.bounded);
    const client = await connectOrUnavailable(this.bounded.pool);
    let committing = false;
    try {
      await client.query(options.relaxedDurability ? "BEGIN; SET LOCAL synchronous_commit TO off" : "BEGIN");
      const result = await work(new PostgresExecutor(client));
      committing = true;
      await client.query("COMMIT");
      client.release();
      return result;
    } catch (error) {
      if (error instanceof StorageUnavailableError || isStorageFailure(error)) {
        // Stalled or gone: a ROLLBACK would wait behind the unanswered statement as long again. Destroying the
        // connection ends the transaction; only a COMMIT already sent (and not cancelled) leaves the outcome open.
        client.release(true);
        if (error instanceof StorageUnavailableError) throw error;
        throw storageUnavailable(error, committing && !isStatementTimeout(error));
      }
      // A refused statement (a bound, a duplicate) leaves a healthy connection: roll back and return it. If the
      // rollback fails too, the connection is dead or stuck, and is destroyed rather than returned.
      try {
        await client.query("ROLLBACK");
        client.release();
      } catch {
        client.release(true);
      }
      throw translate(error);
    }
  }

  derivedWrite(statements: readonly SqlStatement[]): Promise<Row[][]> {
    return this.transaction(
      async (tx) => {
        const rows: Row[][] = [];
        for (const { sql, params } of statements) rows.push(await tx.all(sql, params));
        return rows;
      },
      { relaxedDurability: true },
    );
  }

  async close(): Promise<void> {
    await this.bounded.pool.end();
  }
}

function ignoreClientError(): void {}

export class PostgresPlatformStore extends SqlPlatformStore {
  readonly schema: string;
  protected readonly dialect: SqlDialect;

  constructor(readonly options: PostgresPlatformStoreOptions) {
    super();
    this.schema = options.schema ?? "bourse";
    if (!SCHEMA_NAME.test(this.schema))
      throw new RangeError(
        `schema must be a plain identifier (letters, digits, _), got ${JSON.stringify(this.schema)}`,
      );
    this.dialect = {
      schemaPrefix: `"${this.schema}".`,
      greatest: "GREATEST",
      least: "LEAST",
      lock: " FOR UPDATE",
      // A bounded wait: inserts queue behind a lock that waits (a VACUUM holding the table), so it waits 2 s at most.
      settleInserts: ["SET LOCAL lock_timeout = '2s'", "LOCK TABLE {table} IN SHARE MODE"],
    };
  }

  protected async connect(): Promise<{ database: SqlDatabase; appliedMigrations: readonly AppliedMigration[] }> {
    // Validated before anything opens.
    const maxWaitingCalls = checkedMaxWaitingCalls(this.options.maxWaitingCalls);
    const connectionSettings = boundedConnectionSettings(
      this.options.statementTimeoutMilliseconds ?? DEFAULT_STATEMENT_TIMEOUT_MILLISECONDS,
    );
    const pool = new Pool({
      connectionString: this.options.connectionString,
      // Also bounds how long a call waits for a connection when all are busy (their number: maxWaitingCalls), and
      // every statement ends within the statement timeout.
      max: this.options.poolSize ?? 4,
      connectionTimeoutMillis: this.options.connectTimeoutMilliseconds ?? 5000,
      application_name: "bourse-platform",
      // A statement timeout, a client-side answer timeout and keepalive: a stalled server fails the call and frees
      // its connection instead of holding it forever (postgres-timeouts.ts).
      ...connectionSettings,
    });
    pool.on("error", (error) => this.options.onIdleConnectionError?.(error));
    pool.on("connect", (client) => client.on("error", ignoreClientError));
    try {
      const appliedMigrations = await this.migrate();
      this.pool = pool;
      return { database: new PostgresDatabase({ pool, maxWaitingCalls }), appliedMigrations };
    } catch (error) {
      await pool.end();
      throw error;
    }
  }

  /** The pool's connections and the calls waiting for one (`/metrics`); null until opened. */
  poolStatistics(): PoolStatistics | null {
    return this.pool ? poolStatistics(this.pool) : null;
  }

  private pool: pg.Pool | null = null;

  private async migrate(): Promise<readonly AppliedMigration[]> {
    return runPostgresMigrationsOnOwnConnection(
      {
        connectionString: this.options.connectionString,
        connectTimeoutMilliseconds: this.options.connectTimeoutMilliseconds ?? 5000,
        applicationName: "bourse-platform migrations",
      },
      {
        schema: this.schema,
        table: "platform_migrations",
        lockName: "bourse.platform-migrations",
        migrations: MIGRATIONS,
        render: (sql) => sql.replaceAll("{s}", `"${this.schema}".`),
        what: "the platform tables",
      },
    );
  }
}
