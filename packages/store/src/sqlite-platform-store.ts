/**
 * The embedded PlatformStore: SQLite through better-sqlite3. By default it has a database file of its own
 * (e.g. `data/platform.db` beside `data/journal.db`), so that the platform's reads and writes never hold the
 * journal's write lock; pointing it at the journal's file also works, since its tables (and its migration
 * table, `platform_migrations`) do not clash with the journal's. WAL, synchronous=FULL, foreign keys on.
 *
 * better-sqlite3 is synchronous: every call, and every transaction as a whole, runs one at a time through
 * a queue, so the awaits inside a transaction never let another call's statements into it.
 */
import { runSqliteMigrations, type SqliteMigration } from "./sqlite-migrations.ts";
import type { AppliedMigration } from "./migrations.ts";
import Database from "better-sqlite3";
import { makeDatabaseFile } from "./directories.ts";
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
  type SqlExecutor,
  type SqlStatement,
  type TransactionOptions,
} from "./sql-platform-store.ts";
import { SqliteDerivedWriter } from "./sqlite-derived-writer.ts";
import { StorageUnavailableError } from "./postgres-timeouts.ts";

export interface SqlitePlatformStoreOptions {
  /** The database file, created if missing (with its directory); ':memory:' for one that dies with the process. */
  readonly path: string;
  /** How long a write waits for another connection's lock before it fails, in milliseconds. Default 5000. */
  readonly busyTimeoutMilliseconds?: number;
  /**
   * Who writes derived data (notifications, candles): "inline" (default) on the calling thread, or "worker", a
   * thread with its own connection (sqlite-derived-writer.ts), so a server's JavaScript thread never waits for
   * those inserts and their COMMITs. Not for ':memory:' (a second connection would see another database).
   */
  readonly derivedWrites?: "inline" | "worker";
}

type Migration = SqliteMigration;

/** The shared schema text in SQLite's terms: no schema prefix, its integer and key types. */
function sqliteText(sql: string): string {
  return sql
    .replaceAll("{s}", "")
    .replaceAll("{int}", "INTEGER")
    .replaceAll("{serial}", "INTEGER PRIMARY KEY AUTOINCREMENT");
}

/** Applied in order, each once, recorded in platform_migrations. Never edit one that has shipped: add the next. */
const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: "platform data", sql: sqliteText(PLATFORM_SCHEMA_SQL) },
  { version: 2, name: "alert arming", sql: sqliteText(PLATFORM_ALERT_ARMING_SQL) },
  { version: 3, name: "derived through", sql: sqliteText(PLATFORM_DERIVED_THROUGH_SQL) },
  { version: 4, name: "last quotes", sql: sqliteText(PLATFORM_LAST_QUOTES_SQL) },
  { version: 5, name: "notification events", sql: sqliteText(PLATFORM_NOTIFICATION_EVENTS_SQL) },
  { version: 6, name: "alert trigger keys", sql: sqliteText(PLATFORM_ALERT_TRIGGER_KEYS_SQL) },
  { version: 7, name: "instrument scales", sql: sqliteText(PLATFORM_INSTRUMENT_SCALES_SQL) },
  { version: 8, name: "cleanup indexes and prune marks", sql: sqliteText(PLATFORM_CLEANUP_INDEXES_SQL) },
  { version: 9, name: "alert log messages", sql: sqliteText(PLATFORM_ALERT_LOG_MESSAGES_SQL) },
  { version: 10, name: "notification kinds and unread index", sql: sqliteText(PLATFORM_NOTIFICATION_KINDS_SQL) },
  { version: 11, name: "disabled users", sql: sqliteText(PLATFORM_USER_DISABLED_SQL) },
  { version: 12, name: "refresh tokens", sql: sqliteText(PLATFORM_REFRESH_TOKENS_SQL) },
];

/** The constraint a SQLite error reports as broken, or null for any other error. */
export function constraintKind(error: unknown): ConstraintViolation["kind"] | null {
  if (!(error instanceof Database.SqliteError)) return null;
  if (error.code === "SQLITE_CONSTRAINT_UNIQUE" || error.code === "SQLITE_CONSTRAINT_PRIMARYKEY") return "unique";
  if (error.code === "SQLITE_CONSTRAINT_FOREIGNKEY") return "foreign";
  return null;
}

/**
 * Runs a derived write's statements on a connection, inside the caller's transaction: each one's rows (none for a
 * statement without RETURNING: better-sqlite3 runs those with `run`). The derived-data thread runs them the same way.
 */
export function runStatements(
  statementOf: (sql: string) => Database.Statement,
  statements: readonly SqlStatement[],
): Row[][] {
  return statements.map(({ sql, params }) => {
    const statement = statementOf(sql);
    if (statement.reader) return statement.all(...params) as Row[];
    statement.run(...params);
    return [];
  });
}

/**
 * The store's own error for a SQLite error: a broken constraint as ConstraintViolation; a full disk, an I/O error or a
 * lock another process held past the busy timeout as StorageUnavailableError (the faces answer 503, as the journal's
 * do); anything else as it is. An I/O error while committing may have left the commit in the WAL, complete.
 */
function translate(error: unknown, committing = false): unknown {
  const kind = constraintKind(error);
  if (kind !== null) return new ConstraintViolation(kind, (error as Error).message, { cause: error });
  if (!(error instanceof Database.SqliteError)) return error;
  if (error.code === "SQLITE_FULL")
    return new StorageUnavailableError("the platform database's disk is full: nothing was changed", false, {
      cause: error,
      diskFull: true,
    });
  if (error.code.startsWith("SQLITE_BUSY"))
    return new StorageUnavailableError(
      "another process held the platform database's lock: nothing was changed",
      false,
      {
        cause: error,
      },
    );
  if (error.code.startsWith("SQLITE_IOERR"))
    return new StorageUnavailableError(
      committing
        ? "the platform database failed to commit: the change may or may not have been saved"
        : "the platform database failed to read or write: nothing was changed",
      committing,
      { cause: error },
    );
  return error;
}

class SqliteDatabase implements SqlDatabase {
  private readonly statements = new Map<string, Database.Statement>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly direct: SqlExecutor = {
    all: async (sql, params = []) => this.allNow(sql, params),
    run: async (sql, params = []) => this.runNow(sql, params),
  };

  constructor(
    private readonly database: Database.Database,
    private readonly derivedWriter: SqliteDerivedWriter | null,
  ) {}

  private statement(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.database.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  private allNow(sql: string, params: readonly unknown[]): Row[] {
    try {
      return this.statement(sql).all(...params) as Row[];
    } catch (error) {
      throw translate(error);
    }
  }

  private runNow(sql: string, params: readonly unknown[]): number {
    try {
      return this.statement(sql).run(...params).changes;
    } catch (error) {
      throw translate(error);
    }
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = this.queue.then(work);
    this.queue = result.catch(() => undefined);
    return result;
  }

  all(sql: string, params: readonly unknown[] = []): Promise<Row[]> {
    return this.exclusive(async () => this.allNow(sql, params));
  }

  run(sql: string, params: readonly unknown[] = []): Promise<number> {
    return this.exclusive(async () => this.runNow(sql, params));
  }

  transaction<T>(work: (tx: SqlExecutor) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    return this.exclusive(async () => {
      // synchronous is per connection and applies to the next commit: NORMAL for this one, FULL again after.
      if (options.relaxedDurability) this.database.pragma("synchronous = NORMAL");
      try {
        this.runNow("BEGIN IMMEDIATE", []);
        try {
          const result = await work(this.direct);
          try {
            this.statement("COMMIT").run();
          } catch (error) {
            throw translate(error, true);
          }
          return result;
        } catch (error) {
          if (this.database.inTransaction) this.statement("ROLLBACK").run();
          throw error;
        }
      } finally {
        if (options.relaxedDurability) this.database.pragma("synchronous = FULL");
      }
    });
  }

  derivedWrite(statements: readonly SqlStatement[]): Promise<Row[][]> {
    // The thread answers with the store's ConstraintViolation already (a SqliteError does not cross threads).
    if (this.derivedWriter) return this.derivedWriter.write(statements);
    return this.transaction(
      async () => {
        try {
          return runStatements((sql) => this.statement(sql), statements);
        } catch (error) {
          throw translate(error);
        }
      },
      { relaxedDurability: true },
    );
  }

  async close(): Promise<void> {
    await this.queue;
    await this.derivedWriter?.close();
    this.database.close();
  }
}

export class SqlitePlatformStore extends SqlPlatformStore {
  protected readonly dialect: SqlDialect = {
    schemaPrefix: "",
    greatest: "max",
    least: "min",
    lock: "",
    settleInserts: [],
  };

  constructor(readonly options: SqlitePlatformStoreOptions) {
    super();
  }

  protected async connect(): Promise<{ database: SqlDatabase; appliedMigrations: readonly AppliedMigration[] }> {
    const inMemory = this.options.path === ":memory:" || this.options.path === "";
    if (!inMemory) makeDatabaseFile(this.options.path);
    const busyTimeout = this.options.busyTimeoutMilliseconds ?? 5000;
    const database = new Database(this.options.path, { timeout: busyTimeout });
    try {
      database.pragma("journal_mode = WAL");
      database.pragma("synchronous = FULL");
      database.pragma("foreign_keys = ON");
      const appliedMigrations = migrate(database);
      const derivedWriter =
        this.options.derivedWrites === "worker" && !inMemory
          ? await SqliteDerivedWriter.start({ path: this.options.path, busyTimeoutMilliseconds: busyTimeout })
          : null;
      return { database: new SqliteDatabase(database, derivedWriter), appliedMigrations };
    } catch (error) {
      database.close();
      throw error;
    }
  }
}

function migrate(database: Database.Database): readonly AppliedMigration[] {
  return runSqliteMigrations(database, "platform_migrations", MIGRATIONS, "the platform tables");
}
