/**
 * The embedded journal driver: one SQLite file through better-sqlite3, the default that needs no
 * set-up. better-sqlite3 is synchronous: an append (its read-model writes, its COMMIT and fsync) blocks
 * the thread that makes it. With `writer: "worker"` the appends and snapshots are written by a worker
 * thread that owns the write connection (sqlite-writer-worker.ts), so the server's JavaScript thread keeps
 * serving requests meanwhile; this thread keeps a connection for opening (recovery), reads and the read
 * models' queries, which WAL lets run beside the writer's transactions.
 */
import { runSqliteMigrations, type SqliteMigration } from "./sqlite-migrations.ts";
import type { AppliedMigration } from "./migrations.ts";
import Database from "better-sqlite3";
import { makeDatabaseFile } from "./directories.ts";
import {
  JournalRecordError,
  JournalWriteError,
  SNAPSHOTS_KEPT,
  type EventJournal,
  type JournalOpenOptions,
  type JournalOpenReport,
  type JournalRecord,
  type SnapshotRecord,
} from "./journal.ts";
import {
  DEFAULT_VERIFICATION_BATCH_SIZE,
  assertReadArguments,
  decodeSnapshot,
  encodeBatchRows,
  encodeSnapshot,
  isSoundSnapshot,
  readRecords,
  sequenceMismatch,
  verifyTail,
  type BatchRowSource,
  type SnapshotRow,
  type StoredBatch,
  type JournalBatchRow,
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
import {
  SQLITE_ACCOUNT_ROWS_MIGRATION,
  SQLITE_READ_MODELS_MIGRATION,
  SQLITE_READ_MODEL_TIME_INDEXES_MIGRATION,
  SqliteReadModelStatements,
} from "./sqlite-read-models.ts";
import { SqliteCheckpointer, type CheckpointReport, type WalProgress } from "./sqlite-checkpointer.ts";
import { SqliteWriterLock } from "./sqlite-writer-lock.ts";
import { SqliteWriterThread } from "./sqlite-writer-thread.ts";

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
  /**
   * Where appends and snapshots are written: "worker", a worker thread that owns the write connection
   * (the calling thread only encodes the batch and waits); "inline", on the calling thread. Default
   * "inline". An in-memory database exists in one connection only, so it is always written inline.
   */
  readonly writer?: SqliteWriter;
  /**
   * Who copies the WAL into the database file: "commit", SQLite's automatic checkpoint inside the COMMIT
   * that takes the WAL past WAL_CHECKPOINT_PAGES (that append waits for the copy); "thread", a thread of its
   * own beside the writer (sqlite-checkpointer.ts says when), with the automatic checkpoint kept as a
   * backstop at BACKSTOP_CHECKPOINT_PAGES. Default "commit". An in-memory database has no WAL.
   */
  readonly checkpoints?: SqliteCheckpoints;
  /** With `checkpoints: "thread"`: WAL pages not yet copied at which the thread copies them. */
  readonly backgroundCheckpointPages?: number;
}

export type SqliteWriter = "worker" | "inline";
export type SqliteCheckpoints = "commit" | "thread";

type Migration = SqliteMigration;

/** Applied in order, each once, recorded in schema_migrations. Never edit one that has shipped: add the next. */
export const SQLITE_JOURNAL_MIGRATIONS: readonly Migration[] = [
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
  {
    version: 3,
    name: "one journal row per append",
    // Rows of schema 2 move as they are, as rows of one event: their checksum is the same (batchChecksum).
    sql: `
      CREATE TABLE journal_batches (
        first_sequence INTEGER PRIMARY KEY,
        last_sequence INTEGER NOT NULL,
        payload TEXT NOT NULL,
        checksum INTEGER NOT NULL
      );
      INSERT INTO journal_batches (first_sequence, last_sequence, payload, checksum)
        SELECT sequence, sequence, payload, checksum FROM journal ORDER BY sequence;
      DROP TABLE journal;
      ALTER TABLE journal_batches RENAME TO journal;
      -- One line per event, for people and programs that read the file; the journal itself never reads it.
      -- The account is the one eventAccountId (records.ts) names.
      CREATE VIEW journal_events AS
        SELECT journal.first_sequence + event.key AS sequence,
          json_extract(event.value, '$.type') AS type,
          json_extract(event.value, '$.time') AS time,
          coalesce(
            json_extract(event.value, '$.accountId'),
            json_extract(event.value, '$.order.accountId'),
            json_extract(event.value, '$.deal.accountId')
          ) AS account_id,
          event.value AS payload
        FROM journal, json_each(
          CASE WHEN substr(journal.payload, 1, 1) = '{' THEN '[' || journal.payload || ']' ELSE journal.payload END
        ) AS event;
    `,
  },
  { version: 4, name: "read-model time indexes by time", sql: SQLITE_READ_MODEL_TIME_INDEXES_MIGRATION },
  { version: 5, name: "one index of every account's history rows", sql: SQLITE_ACCOUNT_ROWS_MIGRATION },
  {
    version: 6,
    name: "events in the binary form",
    // New rows hold a BLOB in the event codec's binary form (event-codec.ts; the column's TEXT affinity leaves
    // a BLOB as it is), which the view's json_each cannot read: `bourse journal` prints the events instead.
    sql: "DROP VIEW journal_events;",
  },
];

/** WAL pages (4 KiB each, SQLite's default page size) after which a commit checkpoints them: 64 MiB. */
const WAL_CHECKPOINT_PAGES = 16_384;
const WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;
/**
 * With `checkpoints: "thread"`: WAL pages not yet copied at which the thread copies them (32 MiB), below the
 * size limit, so the WAL file is not cut back and grown again every time; and the automatic checkpoint the
 * writer keeps should the thread fail or fall behind (256 MiB).
 */
const BACKGROUND_CHECKPOINT_PAGES = 8_192;
const BACKSTOP_CHECKPOINT_PAGES = 65_536;

/** Journal records projected per transaction when open() catches the read models up. */
const READ_MODEL_CATCH_UP_BATCH_SIZE = 1000;

/** The statements of a connection, prepared once. */
export interface Statements {
  readonly begin: Database.Statement;
  readonly commit: Database.Statement;
  readonly rollback: Database.Statement;
  readonly lastSequence: Database.Statement<[], { sequence: number }>;
  readonly insert: Database.Statement<[number, number, Buffer | string, number]>;
  readonly rowStart: Database.Statement<[number], number>;
  /** Raw mode (rows as arrays: first sequence, last sequence, payload, checksum). */
  readonly rows: Database.Statement<[number, number], [number, unknown, unknown, unknown]>;
  readonly deleteFrom: Database.Statement<[number]>;
  readonly saveSnapshot: Database.Statement<[SnapshotRow]>;
  readonly snapshotsNewestFirst: Database.Statement<[], StoredSnapshot>;
  /** Deletes the snapshots older than the newest SNAPSHOTS_KEPT. */
  readonly pruneSnapshots: Database.Statement<[number]>;
}

function sqliteCode(error: unknown): string {
  return error instanceof Database.SqliteError ? error.code : "";
}

/** A connection that writes: the journal's statements and the read models', which an append writes together. */
export interface SqliteWriteConnection {
  readonly database: Database.Database;
  readonly statements: Statements;
  readonly readModels: SqliteReadModelStatements;
}

export class SqliteJournal implements EventJournal, ReadModels {
  private database: Database.Database | null = null;
  private statements: Statements | null = null;
  private readModels: SqliteReadModelStatements | null = null;
  /** The writer thread while the journal is open with `writer: "worker"` on a file; null: writes run inline. */
  private writerThread: SqliteWriterThread | null = null;
  /** Held from a writing open() until close() (sqlite-writer-lock.ts); none for an inspection. */
  private writerLock: SqliteWriterLock | null = null;
  /** While the journal is open with `checkpoints: "thread"` on a file. */
  private checkpointer: SqliteCheckpointer | null = null;
  private readonly verificationBatchSize: number;

  constructor(readonly options: SqliteJournalOptions) {
    this.verificationBatchSize = options.verificationBatchSize ?? DEFAULT_VERIFICATION_BATCH_SIZE;
    if (options.maxPageCount !== undefined && !(Number.isSafeInteger(options.maxPageCount) && options.maxPageCount > 0))
      throw new RangeError(`maxPageCount must be a positive integer, got ${options.maxPageCount}`);
    const { backgroundCheckpointPages } = options;
    if (
      backgroundCheckpointPages !== undefined &&
      !(Number.isSafeInteger(backgroundCheckpointPages) && backgroundCheckpointPages > 0)
    )
      throw new RangeError(`backgroundCheckpointPages must be a positive integer, got ${backgroundCheckpointPages}`);
  }

  async open(options: JournalOpenOptions = {}): Promise<JournalOpenReport> {
    if (this.database) throw new Error("the journal is already open");
    const inMemory = this.options.path === ":memory:" || this.options.path === "";
    // The data directory of a first start may not exist yet.
    if (!inMemory) makeDatabaseFile(this.options.path);
    const writerLock = inMemory || options.keepTornTail ? null : SqliteWriterLock.acquire(this.options.path);
    let database: Database.Database;
    try {
      database = openConnection(this.options);
    } catch (error) {
      writerLock?.release();
      throw error;
    }
    this.writerLock = writerLock;
    try {
      const appliedMigrations = migrate(database, !options.keepTornTail);
      this.database = database;
      this.statements = prepareStatements(database);
      this.readModels = new SqliteReadModelStatements(database);
      const report: JournalOpenReport = { ...(await this.verifyOnOpen(options)), appliedMigrations };
      // An inspection leaves the read models as they are: a kept torn tail is not the journal's to project.
      if (!options.keepTornTail) await this.catchUpReadModels();
      if (this.options.writer === "worker" && !inMemory) {
        this.writerThread = await SqliteWriterThread.start(this.options);
        // From here on this connection only reads: a write through it would race the writer thread's. What its
        // read models remember of the rows the catch-up wrote is of no more use.
        database.pragma("query_only = ON");
        this.readModels.forgetCachedRows();
      }
      if (this.options.checkpoints === "thread" && !inMemory) {
        const writerThread = this.writerThread;
        this.checkpointer = new SqliteCheckpointer(
          this.options,
          this.options.backgroundCheckpointPages ?? BACKGROUND_CHECKPOINT_PAGES,
          // Between two writes: the writer thread takes its requests in order; inline, nothing else writes now.
          async () => (writerThread ? writerThread.checkpoint() : checkpointPassively(database)),
        );
      }
      return report;
    } catch (error) {
      this.database = null;
      this.statements = null;
      this.readModels = null;
      database.close();
      this.writerLock?.release();
      this.writerLock = null;
      throw error;
    }
  }

  /** The tail's report; the open adds the migrations it applied. */
  private async verifyOnOpen({
    fold,
    keepTornTail,
  }: JournalOpenOptions): Promise<Omit<JournalOpenReport, "appliedMigrations">> {
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
    const verdict = await verifyTail(rowSource(statements), snapshotSequence, this.verificationBatchSize, fold);
    if (verdict.firstTornSequence !== null && !keepTornTail) statements.deleteFrom.run(verdict.firstTornSequence);
    return { lastSequence: verdict.lastSequence, droppedTornRecords: verdict.tornRecords, damagedSnapshots };
  }

  /**
   * Brings the read models to the journal's last sequence: after migration 2 on an existing journal they
   * start empty, and after a torn tail was dropped they reflect records that are gone, so they are rebuilt.
   */
  private async catchUpReadModels(): Promise<void> {
    const statements = this.requireStatements();
    const readModels = this.requireReadModels();
    const database = this.requireDatabase();
    const lastSequence = statements.lastSequence.get()!.sequence;
    if (readModels.progress() > lastSequence) database.transaction(() => readModels.clear()).immediate();
    for (let progress = readModels.progress(); progress < lastSequence; progress = readModels.progress()) {
      const records = await this.read(progress, READ_MODEL_CATCH_UP_BATCH_SIZE);
      try {
        database.transaction(() => readModels.apply(records)).immediate();
      } catch (error) {
        readModels.rolledBack();
        throw error;
      }
      readModels.committed();
    }
  }

  async append(records: readonly JournalRecord[]): Promise<void> {
    const connection = this.requireConnection();
    if (records.length === 0) return;
    // Encoded here either way: the checks refuse a bad batch before anything crosses to the writer thread, and
    // the rows are all the thread needs (it decodes the events back for the read models).
    const rows = encodeBatchRows(records);
    if (this.writerThread) await this.writerThread.append(rows);
    else writeBatch(connection, rows, records);
    this.checkpointer?.afterWrite();
  }

  async lastSequence(): Promise<number> {
    return this.requireStatements().lastSequence.get()!.sequence;
  }

  async read(afterSequence: number, limit: number): Promise<JournalRecord[]> {
    assertReadArguments(afterSequence, limit);
    return readRecords(rowSource(this.requireStatements()), afterSequence, limit, this.verificationBatchSize);
  }

  async saveSnapshot(snapshot: SnapshotRecord): Promise<void> {
    this.requireStatements();
    await this.saveSnapshotRow(encodeSnapshot(snapshot));
  }

  async saveSnapshotRow(row: SnapshotRow): Promise<void> {
    const statements = this.requireStatements();
    if (this.writerThread) await this.writerThread.saveSnapshot(row);
    else writeSnapshot(statements, row);
    this.checkpointer?.afterWrite();
  }

  async latestSnapshot(atOrBefore: number = Number.MAX_SAFE_INTEGER): Promise<SnapshotRecord | null> {
    for (const stored of this.requireStatements().snapshotsNewestFirst.iterate()) {
      if (stored.sequence > atOrBefore) continue;
      const snapshot = decodeSnapshot(stored);
      if (snapshot) return snapshot;
    }
    return null;
  }

  /** Waits for the checkpoint under way and the writes already made (the writer thread finishes them and stops), then closes. */
  async close(): Promise<void> {
    const database = this.database;
    const writerThread = this.writerThread;
    const checkpointer = this.checkpointer;
    const writerLock = this.writerLock;
    this.database = null;
    this.statements = null;
    this.readModels = null;
    this.writerThread = null;
    this.checkpointer = null;
    this.writerLock = null;
    try {
      // The checkpointer first: a copy under way may be the writer's, queued behind the writes in flight.
      await checkpointer?.close();
      await writerThread?.close();
    } finally {
      database?.close();
      // Last: the next writer may start once everything of this one is closed.
      writerLock?.release();
    }
  }

  /** What the checkpoints have done since open (`checkpoints: "thread"`); null with SQLite's own checkpoints. */
  checkpointReport(): CheckpointReport | null {
    return this.checkpointer?.report() ?? null;
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

  /** The database size in pages, as of the last commit (for tests that cap it with `setMaxPageCount`). */
  pageCount(): number {
    return Number(this.requireDatabase().pragma("page_count", { simple: true }));
  }

  /**
   * Moves the size cap (PRAGMA max_page_count, a setting of the connection that writes); returns the cap in
   * force, never below the current size. With the writer thread, the cap applies from the next write made
   * after this call (writes reach the thread in call order), and the size is the one of the last commit.
   */
  setMaxPageCount(pages: number): number {
    if (!Number.isSafeInteger(pages) || pages < 1)
      throw new RangeError(`pages must be a positive integer, got ${pages}`);
    const database = this.requireDatabase();
    if (!this.writerThread) return Number(database.pragma(`max_page_count = ${pages}`, { simple: true }));
    this.writerThread.setMaxPageCount(pages);
    return Math.max(pages, this.pageCount());
  }

  private requireConnection(): SqliteWriteConnection {
    return {
      database: this.requireDatabase(),
      statements: this.requireStatements(),
      readModels: this.requireReadModels(),
    };
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

function rowSource(statements: Statements): BatchRowSource {
  return {
    rowStart: async (sequence) => statements.rowStart.get(sequence) ?? null,
    rows: async (firstSequence, limit) =>
      statements.rows.all(firstSequence, limit).map(([first, lastSequence, payload, checksum]): StoredBatch => ({
        firstSequence: first,
        lastSequence,
        payload,
        checksum,
      })),
  };
}

/**
 * Opens a connection to the journal's file with the settings every connection to it needs (WAL, fsync on
 * every commit, checkpoint sizes, the size cap). Used by the journal and by its writer thread.
 */
export function openConnection(options: SqliteJournalOptions): Database.Database {
  const inMemory = options.path === ":memory:" || options.path === "";
  const database = new Database(options.path, { timeout: options.busyTimeoutMilliseconds ?? 5000 });
  try {
    const journalMode = String(database.pragma("journal_mode = WAL", { simple: true }));
    // An in-memory database has no WAL. A file that cannot have one (some network filesystems) would run in
    // a mode this driver is neither tuned nor tested for: better to refuse at start and say why.
    if (journalMode !== "wal" && !inMemory)
      throw new Error(`SQLite refused WAL mode for ${options.path} (journal_mode is ${journalMode})`);
    // FULL: every commit is fsynced before it returns, so an acknowledged batch survives a power cut.
    database.pragma("synchronous = FULL");
    // macOS fsync does not flush the drive's cache; F_FULLFSYNC does. Ignored elsewhere.
    database.pragma("fullfsync = ON");
    database.pragma("checkpoint_fullfsync = ON");
    // A checkpoint copies the WAL's pages into the file. Each batch dirties pages all over the read models'
    // indexes (one per account it touches); checkpointing after every ~4 MB (SQLite's default of 1000 pages)
    // writes those pages again and again, while one checkpoint per WAL_CHECKPOINT_PAGES writes each once.
    database.pragma(
      `wal_autocheckpoint = ${options.checkpoints === "thread" ? BACKSTOP_CHECKPOINT_PAGES : WAL_CHECKPOINT_PAGES}`,
    );
    // After a checkpoint, the WAL file is cut back to this size: the disk holds no more than that of it idle.
    database.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
    if (options.maxPageCount !== undefined) database.pragma(`max_page_count = ${options.maxPageCount}`);
    return database;
  } catch (error) {
    database.close();
    throw error;
  }
}

/**
 * Writes an encoded batch and what it changes in the read models in one transaction, committed (and
 * fsynced) before it returns. Throws `JournalRecordError` when the batch does not continue the journal,
 * `JournalWriteError` when SQLite refuses it; either way nothing of it was written.
 */
export function writeBatch(
  { database, statements, readModels }: SqliteWriteConnection,
  rows: readonly JournalBatchRow[],
  records: readonly JournalRecord[],
): void {
  const firstSequence = rows[0]!.firstSequence;
  let committing = false;
  try {
    // IMMEDIATE takes the write lock now, so the last-sequence check below cannot go stale before the insert.
    statements.begin.run();
    const lastSequence = statements.lastSequence.get()!.sequence;
    if (firstSequence !== lastSequence + 1) throw sequenceMismatch(firstSequence, lastSequence);
    for (const row of rows) statements.insert.run(row.firstSequence, row.lastSequence, row.payload, row.checksum);
    // The read models in the same transaction: they commit, or roll back, with the records.
    readModels.apply(records);
    committing = true;
    statements.commit.run();
  } catch (error) {
    rollbackQuietly(database, statements);
    // Whatever the read models remembered of their rows may no longer be what the tables hold.
    readModels.rolledBack();
    throw appendFailure(error, firstSequence, committing);
  }
  readModels.committed();
}

/**
 * A PASSIVE checkpoint on `database`: copies the WAL's committed frames into the database file without taking
 * the write lock (https://www.sqlite.org/c3ref/wal_checkpoint_v2.html). Returns the WAL's frames and those now
 * copied; throws `JournalWriteError` when SQLite fails it (nothing is lost: the frames stay in the WAL).
 */
export function checkpointPassively(database: Database.Database): WalProgress {
  try {
    const [result] = database.pragma("wal_checkpoint(PASSIVE)") as { log: number; checkpointed: number }[];
    return { walFrames: result!.log, copiedFrames: result!.checkpointed };
  } catch (error) {
    throw new JournalWriteError(`SQLite failed to checkpoint the WAL: ${String(error)}`, false, { cause: error });
  }
}

/** Stores an encoded snapshot; throws `JournalRecordError` when its sequence is not journaled, `JournalWriteError` when SQLite refuses it. */
export function writeSnapshot(statements: Statements, row: SnapshotRow): void {
  let changes: number;
  try {
    changes = statements.saveSnapshot.run(row).changes;
  } catch (error) {
    throw new JournalWriteError(`SQLite refused the snapshot at ${row.sequence}: ${String(error)}`, false, {
      cause: error,
    });
  }
  if (changes === 0) throw new JournalRecordError(row.sequence, "a snapshot must be taken at a journaled sequence");
  try {
    statements.pruneSnapshots.run(SNAPSHOTS_KEPT - 1);
  } catch {
    // The snapshot is saved; the next one deletes what this one could not (a full disk refuses even a deletion).
  }
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

/** `apply` false for an inspection: it checks the schema is this build's and changes nothing. */
function migrate(database: Database.Database, apply: boolean): readonly AppliedMigration[] {
  return runSqliteMigrations(database, "schema_migrations", SQLITE_JOURNAL_MIGRATIONS, "the database", apply);
}

export function prepareStatements(database: Database.Database): Statements {
  return {
    begin: database.prepare("BEGIN IMMEDIATE"),
    commit: database.prepare("COMMIT"),
    rollback: database.prepare("ROLLBACK"),
    lastSequence: database.prepare(
      "SELECT coalesce((SELECT last_sequence FROM journal ORDER BY first_sequence DESC LIMIT 1), 0) AS sequence",
    ),
    insert: database.prepare(
      "INSERT INTO journal (first_sequence, last_sequence, payload, checksum) VALUES (?, ?, ?, ?)",
    ),
    rowStart: database
      .prepare<[number], number>(
        "SELECT first_sequence FROM journal WHERE first_sequence <= ? ORDER BY first_sequence DESC LIMIT 1",
      )
      .pluck(),
    rows: database
      .prepare<[number, number], [number, unknown, unknown, unknown]>(
        "SELECT first_sequence, last_sequence, payload, checksum FROM journal WHERE first_sequence >= ? ORDER BY first_sequence LIMIT ?",
      )
      .raw(),
    deleteFrom: database.prepare("DELETE FROM journal WHERE first_sequence >= ?"),
    // Only over a journaled sequence (0 is the empty journal): a snapshot of events not yet durable
    // would outlive them if they were lost.
    saveSnapshot: database.prepare(`
      INSERT INTO snapshots (sequence, state_hash, created_at, payload, checksum)
      SELECT @sequence, @stateHash, @createdAt, @payload, @checksum
      WHERE @sequence <= (SELECT coalesce((SELECT last_sequence FROM journal ORDER BY first_sequence DESC LIMIT 1), 0))
      ON CONFLICT (sequence) DO UPDATE SET
        state_hash = excluded.state_hash, created_at = excluded.created_at,
        payload = excluded.payload, checksum = excluded.checksum
    `),
    snapshotsNewestFirst: database.prepare(
      "SELECT sequence, state_hash AS stateHash, created_at AS createdAt, payload, checksum FROM snapshots ORDER BY sequence DESC",
    ),
    pruneSnapshots: database.prepare(
      "DELETE FROM snapshots WHERE sequence < (SELECT sequence FROM snapshots ORDER BY sequence DESC LIMIT 1 OFFSET ?)",
    ),
  };
}
