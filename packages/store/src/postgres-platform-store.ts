/**
 * The PlatformStore on PostgreSQL through a `pg` pool, in a schema of its choosing (default "bourse", the
 * journal's: the table names do not clash, and the migrations are recorded apart, in platform_migrations).
 * A transaction runs on one pooled connection; the bounded per-user lists lock the user's row (FOR UPDATE)
 * so that concurrent writers cannot take a list past its bound.
 */
import { runPostgresMigrations, type PostgresMigration } from "./postgres-migrations.ts";
import pg from "pg";
import { ValidationError } from "./platform-store.ts";
import {
  ConstraintViolation,
  PLATFORM_ALERT_ARMING_SQL,
  PLATFORM_DERIVED_THROUGH_SQL,
  PLATFORM_LAST_QUOTES_SQL,
  PLATFORM_NOTIFICATION_EVENTS_SQL,
  PLATFORM_ALERT_TRIGGER_KEYS_SQL,
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
  /** How long opening a connection may take before the call fails, in milliseconds. Default 5000. */
  readonly connectTimeoutMilliseconds?: number;
  /** Told about errors of idle pooled connections (already discarded by the pool). */
  readonly onIdleConnectionError?: (error: Error) => void;
}

/** A migration whose SQL has `{s}` standing for the quoted schema name and a dot. */
type Migration = PostgresMigration;

/** Applied in order, each once, recorded in platform_migrations. Never edit one that has shipped: add the next. */
const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "platform data",
    sql: PLATFORM_SCHEMA_SQL.replaceAll("{int}", "bigint").replaceAll(
      "{serial}",
      "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    ),
  },
  { version: 2, name: "alert arming", sql: PLATFORM_ALERT_ARMING_SQL.replaceAll("{int}", "bigint") },
  { version: 3, name: "derived through", sql: PLATFORM_DERIVED_THROUGH_SQL.replaceAll("{int}", "bigint") },
  { version: 4, name: "last quotes", sql: PLATFORM_LAST_QUOTES_SQL.replaceAll("{int}", "bigint") },
  { version: 5, name: "notification events", sql: PLATFORM_NOTIFICATION_EVENTS_SQL.replaceAll("{int}", "bigint") },
  { version: 6, name: "alert trigger keys", sql: PLATFORM_ALERT_TRIGGER_KEYS_SQL },
];

const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** `?` placeholders to `$1`, `$2`, …: the store's statements have no `?` inside literals. */
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

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

  constructor(private readonly target: pg.Pool | pg.PoolClient) {}

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
      return (await this.target.query<Row>(this.text(sql), params as unknown[])).rows;
    } catch (error) {
      throw translate(error);
    }
  }

  async run(sql: string, params: readonly unknown[] = []): Promise<number> {
    try {
      return (await this.target.query(this.text(sql), params as unknown[])).rowCount ?? 0;
    } catch (error) {
      throw translate(error);
    }
  }
}

class PostgresDatabase extends PostgresExecutor implements SqlDatabase {
  constructor(private readonly pool: pg.Pool) {
    super(pool);
  }

  async transaction<T>(work: (tx: SqlExecutor) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query(options.relaxedDurability ? "BEGIN; SET LOCAL synchronous_commit TO off" : "BEGIN");
      const result = await work(new PostgresExecutor(client));
      await client.query("COMMIT");
      client.release();
      return result;
    } catch (error) {
      // A refused statement (a bound, a duplicate) leaves a healthy connection: roll back and return it. If the
      // rollback fails too, the connection is dead or stuck, and is destroyed rather than returned.
      try {
        await client.query("ROLLBACK");
        client.release();
      } catch {
        client.release(true);
      }
      throw error;
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
    await this.pool.end();
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
    this.dialect = { schemaPrefix: `"${this.schema}".`, greatest: "GREATEST", least: "LEAST", lock: " FOR UPDATE" };
  }

  protected async connect(): Promise<SqlDatabase> {
    const pool = new Pool({
      connectionString: this.options.connectionString,
      max: this.options.poolSize ?? 4,
      connectionTimeoutMillis: this.options.connectTimeoutMilliseconds ?? 5000,
      application_name: "bourse-platform",
      keepAlive: true,
    });
    pool.on("error", (error) => this.options.onIdleConnectionError?.(error));
    pool.on("connect", (client) => client.on("error", ignoreClientError));
    try {
      await this.migrate(pool);
      return new PostgresDatabase(pool);
    } catch (error) {
      await pool.end();
      throw error;
    }
  }

  private async migrate(pool: pg.Pool): Promise<void> {
    const client = await pool.connect();
    try {
      await runPostgresMigrations(client, {
        schema: this.schema,
        table: "platform_migrations",
        lockName: "bourse.platform-migrations",
        migrations: MIGRATIONS,
        render: (sql) => sql.replaceAll("{s}", `"${this.schema}".`),
        what: "platform version",
      });
      client.release();
    } catch (error) {
      // Destroyed rather than returned: it may sit in an aborted transaction.
      client.release(true);
      throw error;
    }
  }
}
