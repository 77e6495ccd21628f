/**
 * The embedded journal driver: one SQLite file through better-sqlite3, the default that needs no
 * set-up. better-sqlite3 is synchronous; the methods are async only to share the `EventJournal`
 * interface with drivers that do IO, and each runs to completion before it returns.
 */
import { runSqliteMigrations, type SqliteMigration } from "./sqlite-migrations.ts";
import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import {
  JournalRecordError,
  JournalWriteError,
  type EventJournal,
  type JournalOpenOptions,
  type JournalOpenReport,
  type JournalRecord,
  type SnapshotRecord,
} from "./journal.ts";
import {
  DEFAULT_VERIFICATION_BATCH_SIZE,
  assertReadArguments,
  decodeRecords,
  decodeSnapshot,
  encodeRecords,
  encodeSnapshot,
  isSoundSnapshot,
  sequenceMismatch,
  verifyTail,
  type JournalRow,
  type SnapshotRow,
  type StoredRecord,
  type StoredSnapshot,
} from "./records.ts";
import type {
  DealHistoryRow,
  HistoryPage,
  HistoryQuery,
  LedgerRow,
  OrderHistoryRow,
  PositionHistoryRow,
  ReadModels,
} from "./read-models.ts";
import { SQLITE_READ_MODELS_MIGRATION, SqliteReadModelStatements } from "./sqlite-read-models.ts";

export interface SqliteJournalOptions {
  /** The database file, created if missing; ':memory:' for a journal that lives and dies with the process. */
  readonly path: string;
  /**
   * PRAGMA max_page_count: a cap on the database size in pages. A write past it fails as a full disk
   * would, which is how tests simulate one; `setMaxPageCount` moves the cap on an open journal.
   */
  readonly maxPageCount?: number;
  /** Records read per query while `open()` verifies the tail. */
  readonly verificationBatchSize?: number;
  /** How long a write waits for another connection's lock before it fails, in milliseconds. */
  readonly busyTimeoutMilliseconds?: number;
}

type Migration = SqliteMigration;

/** Applied in order, each once, recorded in schema_migrations. Never edit one that has shipped: add the next. */
const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "journal and snapshots",
    sql: `
      CREATE TABLE journal (
        sequence INTEGER PRIMARY KEY,
        time INTEGER NOT NULL,
        type TEXT NOT NULL,
        account_id INTEGER,
        payload TEXT NOT NULL,
        checksum INTEGER NOT NULL
      );
      CREATE INDEX journal_account_sequence ON journal (account_id, sequence) WHERE account_id IS NOT NULL;
      CREATE TABLE snapshots (
        sequence INTEGER PRIMARY KEY,
        state_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        payload TEXT NOT NULL,
        checksum INTEGER NOT NULL
      );
    `,
  },
  { version: 2, name: "read models", sql: SQLITE_READ_MODELS_MIGRATION },
];

/** Journal records projected per transaction when open() catches the read models up. */
const READ_MODEL_CATCH_UP_BATCH_SIZE = 1000;

interface Statements {
  readonly begin: Database.Statement;
  readonly commit: Database.Statement;
  readonly rollback: Database.Statement;
  readonly lastSequence: Database.Statement<[], { sequence: number }>;
  readonly insert: Database.Statement<[number, number, string, number | null, string, number]>;
  /** Raw mode (rows as arrays: sequence, payload, checksum): recovery reads millions of rows. */
  readonly read: Database.Statement<[number, number], [number, unknown, unknown]>;
  readonly deleteFrom: Database.Statement<[number]>;
  readonly saveSnapshot: Database.Statement<[SnapshotRow]>;
  readonly snapshotsNewestFirst: Database.Statement<[], StoredSnapshot>;
}

function sqliteCode(error: unknown): string {
  return error instanceof Database.SqliteError ? error.code : "";
}

export class SqliteJournal implements EventJournal, ReadModels {
  private database: Database.Database | null = null;
  private statements: Statements | null = null;
  private readModels: SqliteReadModelStatements | null = null;
  private readonly verificationBatchSize: number;

  constructor(readonly options: SqliteJournalOptions) {
    this.verificationBatchSize = options.verificationBatchSize ?? DEFAULT_VERIFICATION_BATCH_SIZE;
    if (options.maxPageCount !== undefined && !(Number.isSafeInteger(options.maxPageCount) && options.maxPageCount > 0))
      throw new RangeError(`maxPageCount must be a positive integer, got ${options.maxPageCount}`);
  }

  async open(options: JournalOpenOptions = {}): Promise<JournalOpenReport> {
    if (this.database) throw new Error("the journal is already open");
    const inMemory = this.options.path === ":memory:" || this.options.path === "";
    // The data directory of a first start may not exist yet.
    if (!inMemory) mkdirSync(dirname(this.options.path), { recursive: true });
    const database = new Database(this.options.path, { timeout: this.options.busyTimeoutMilliseconds ?? 5000 });
    try {
      const journalMode = String(database.pragma("journal_mode = WAL", { simple: true }));
      // An in-memory database has no WAL. A file that cannot have one (some network filesystems) would run in
      // a mode this driver is neither tuned nor tested for: better to refuse at start and say why.
      if (journalMode !== "wal" && !inMemory)
        throw new Error(`SQLite refused WAL mode for ${this.options.path} (journal_mode is ${journalMode})`);
      // FULL: every commit is fsynced before it returns, so an acknowledged batch survives a power cut.
      database.pragma("synchronous = FULL");
      // macOS fsync does not flush the drive's cache; F_FULLFSYNC does. Ignored elsewhere.
      database.pragma("fullfsync = ON");
      database.pragma("checkpoint_fullfsync = ON");
      if (this.options.maxPageCount !== undefined) database.pragma(`max_page_count = ${this.options.maxPageCount}`);
      migrate(database);
      this.database = database;
      this.statements = prepareStatements(database);
      this.readModels = new SqliteReadModelStatements(database);
      const report = await this.verifyOnOpen(options);
      this.catchUpReadModels();
      return report;
    } catch (error) {
      this.database = null;
      this.statements = null;
      this.readModels = null;
      database.close();
      throw error;
    }
  }

  private async verifyOnOpen({ fold }: JournalOpenOptions): Promise<JournalOpenReport> {
    const statements = this.requireStatements();
    const damagedSnapshots: number[] = [];
    let snapshotSequence = 0;
    let snapshot: SnapshotRecord | null = null;
    for (const stored of statements.snapshotsNewestFirst.iterate()) {
      if (isSoundSnapshot(stored)) {
        snapshotSequence = stored.sequence;
        // Decoded (its state parsed) only for a fold to start from.
        if (fold) snapshot = decodeSnapshot(stored);
        break;
      }
      damagedSnapshots.push(stored.sequence);
    }
    fold?.start(snapshot);
    const verdict = await verifyTail(
      async (afterSequence, limit) => readStored(statements, afterSequence, limit),
      snapshotSequence,
      this.verificationBatchSize,
      fold,
    );
    let droppedTornRecords = 0;
    if (verdict.firstTornSequence !== null)
      droppedTornRecords = statements.deleteFrom.run(verdict.firstTornSequence).changes;
    return { lastSequence: verdict.lastSequence, droppedTornRecords, damagedSnapshots };
  }

  /**
   * Brings the read models to the journal's last sequence: after migration 2 on an existing journal they
   * start empty, and after a torn tail was dropped they reflect records that are gone, so they are rebuilt.
   */
  private catchUpReadModels(): void {
    const statements = this.requireStatements();
    const readModels = this.requireReadModels();
    const database = this.requireDatabase();
    const lastSequence = statements.lastSequence.get()!.sequence;
    if (readModels.progress() > lastSequence) database.transaction(() => readModels.clear()).immediate();
    for (let progress = readModels.progress(); progress < lastSequence; progress = readModels.progress()) {
      const records = decodeRecords(progress, readStored(statements, progress, READ_MODEL_CATCH_UP_BATCH_SIZE));
      database.transaction(() => readModels.apply(records)).immediate();
    }
  }

  async append(records: readonly JournalRecord[]): Promise<void> {
    const statements = this.requireStatements();
    const database = this.requireDatabase();
    if (records.length === 0) return;
    const rows = encodeRecords(records);
    let committing = false;
    try {
      // IMMEDIATE takes the write lock now, so the last-sequence check below cannot go stale before the insert.
      statements.begin.run();
      const lastSequence = statements.lastSequence.get()!.sequence;
      if (rows[0]!.sequence !== lastSequence + 1) throw sequenceMismatch(rows[0]!.sequence, lastSequence);
      for (const row of rows) insertRow(statements, row);
      // The read models in the same transaction: they commit, or roll back, with the records.
      this.requireReadModels().apply(records);
      committing = true;
      statements.commit.run();
    } catch (error) {
      rollbackQuietly(database, statements);
      throw appendFailure(error, rows[0]!.sequence, committing);
    }
  }

  async lastSequence(): Promise<number> {
    return this.requireStatements().lastSequence.get()!.sequence;
  }

  async read(afterSequence: number, limit: number): Promise<JournalRecord[]> {
    assertReadArguments(afterSequence, limit);
    return decodeRecords(afterSequence, readStored(this.requireStatements(), afterSequence, limit));
  }

  async saveSnapshot(snapshot: SnapshotRecord): Promise<void> {
    const statements = this.requireStatements();
    const row = encodeSnapshot(snapshot);
    let changes: number;
    try {
      changes = statements.saveSnapshot.run(row).changes;
    } catch (error) {
      throw new JournalWriteError(`SQLite refused the snapshot at ${row.sequence}: ${String(error)}`, false, {
        cause: error,
      });
    }
    if (changes === 0) throw new JournalRecordError(row.sequence, "a snapshot must be taken at a journaled sequence");
  }

  async latestSnapshot(): Promise<SnapshotRecord | null> {
    for (const stored of this.requireStatements().snapshotsNewestFirst.iterate()) {
      const snapshot = decodeSnapshot(stored);
      if (snapshot) return snapshot;
    }
    return null;
  }

  async close(): Promise<void> {
    const database = this.database;
    this.database = null;
    this.statements = null;
    this.readModels = null;
    database?.close();
  }

  async orderHistory(query: HistoryQuery): Promise<HistoryPage<OrderHistoryRow>> {
    return this.requireReadModels().page("orders", query);
  }

  async dealHistory(query: HistoryQuery): Promise<HistoryPage<DealHistoryRow>> {
    return this.requireReadModels().page("deals", query);
  }

  async positionHistory(query: HistoryQuery): Promise<HistoryPage<PositionHistoryRow>> {
    return this.requireReadModels().page("positions", query);
  }

  async ledger(query: HistoryQuery): Promise<HistoryPage<LedgerRow>> {
    return this.requireReadModels().page("ledger", query);
  }

  /** The database size in pages (for tests that cap it with `setMaxPageCount`). */
  pageCount(): number {
    return Number(this.requireDatabase().pragma("page_count", { simple: true }));
  }

  /** Moves the size cap (PRAGMA max_page_count); returns the cap in force, never below the current size. */
  setMaxPageCount(pages: number): number {
    if (!Number.isSafeInteger(pages) || pages < 1)
      throw new RangeError(`pages must be a positive integer, got ${pages}`);
    return Number(this.requireDatabase().pragma(`max_page_count = ${pages}`, { simple: true }));
  }

  private requireDatabase(): Database.Database {
    if (!this.database) throw new Error("the journal is not open: call open() first");
    return this.database;
  }

  private requireReadModels(): SqliteReadModelStatements {
    if (!this.readModels) throw new Error("the journal is not open: call open() first");
    return this.readModels;
  }

  private requireStatements(): Statements {
    if (!this.statements) throw new Error("the journal is not open: call open() first");
    return this.statements;
  }
}

function readStored(statements: Statements, afterSequence: number, limit: number): StoredRecord[] {
  return statements.read
    .all(afterSequence, limit)
    .map(([sequence, payload, checksum]) => ({ sequence, payload, checksum }));
}

function insertRow(statements: Statements, row: JournalRow): void {
  statements.insert.run(row.sequence, row.time, row.type, row.accountId, row.payload, row.checksum);
}

function rollbackQuietly(database: Database.Database, statements: Statements): void {
  // SQLite rolls some failures back by itself (a full disk may); roll back whatever is left open.
  if (!database.inTransaction) return;
  try {
    statements.rollback.run();
  } catch {
    // Nothing more to do: the next BEGIN fails and reports the state of the connection.
  }
}

function appendFailure(error: unknown, firstSequence: number, committing: boolean): Error {
  if (error instanceof JournalRecordError) return error;
  const code = sqliteCode(error);
  if (code.startsWith("SQLITE_CONSTRAINT"))
    return new JournalRecordError(firstSequence, `a sequence of the batch is already journaled (${code})`);
  if (code === "SQLITE_FULL")
    return new JournalWriteError("the journal's disk is full: nothing of the batch was written", false, {
      cause: error,
    });
  // An IO error while the commit was being made durable may have left it in the WAL, complete: recovery decides.
  const outcomeUnknown = committing && code.startsWith("SQLITE_IOERR");
  return new JournalWriteError(
    `SQLite failed to ${committing ? "commit" : "write"} the batch: ${String(error)}`,
    outcomeUnknown,
    { cause: error },
  );
}

function migrate(database: Database.Database): void {
  runSqliteMigrations(database, "schema_migrations", MIGRATIONS, "the database");
}

function prepareStatements(database: Database.Database): Statements {
  return {
    begin: database.prepare("BEGIN IMMEDIATE"),
    commit: database.prepare("COMMIT"),
    rollback: database.prepare("ROLLBACK"),
    lastSequence: database.prepare("SELECT coalesce(max(sequence), 0) AS sequence FROM journal"),
    insert: database.prepare(
      "INSERT INTO journal (sequence, time, type, account_id, payload, checksum) VALUES (?, ?, ?, ?, ?, ?)",
    ),
    read: database
      .prepare<[number, number], [number, unknown, unknown]>(
        "SELECT sequence, payload, checksum FROM journal WHERE sequence > ? ORDER BY sequence LIMIT ?",
      )
      .raw(),
    deleteFrom: database.prepare("DELETE FROM journal WHERE sequence >= ?"),
    // Only over a journaled sequence (0 is the empty journal): a snapshot of events not yet durable
    // would outlive them if they were lost.
    saveSnapshot: database.prepare(`
      INSERT INTO snapshots (sequence, state_hash, created_at, payload, checksum)
      SELECT @sequence, @stateHash, @createdAt, @payload, @checksum
      WHERE @sequence = 0 OR EXISTS (SELECT 1 FROM journal WHERE sequence = @sequence)
      ON CONFLICT (sequence) DO UPDATE SET
        state_hash = excluded.state_hash, created_at = excluded.created_at,
        payload = excluded.payload, checksum = excluded.checksum
    `),
    snapshotsNewestFirst: database.prepare(
      "SELECT sequence, state_hash AS stateHash, created_at AS createdAt, payload, checksum FROM snapshots ORDER BY sequence DESC",
    ),
  };
}
