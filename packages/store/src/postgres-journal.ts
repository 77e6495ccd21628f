/**
 * The production journal driver: PostgreSQL through a `pg` pool. One transaction per append, committed
 * with synchronous_commit on, so an acknowledged batch is on the server's disk. The pool outlives the
 * server: connections that die (a restart, a terminated backend) are dropped and the next call opens
 * new ones.
 */
import { runPostgresMigrationsOnOwnConnection, type PostgresMigration } from "./postgres-migrations.ts";
import type { AppliedMigration } from "./migrations.ts";
import {
  DEFAULT_STATEMENT_TIMEOUT_MILLISECONDS,
  boundedConnectionSettings,
  isAnswerTimeout,
  isCheckoutTimeout,
  connectOrUnavailable,
  isConnectionFailure,
  admit,
  isStorageFailure,
  poolStatistics,
  storageUnavailable,
  checkedMaxWaitingCalls,
  type PoolStatistics,
} from "./postgres-timeouts.ts";

export { isConnectionFailure } from "./postgres-timeouts.ts";
import pg from "pg";
import {
  JournalRecordError,
  JournalLockedError,
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
  integerColumn,
  isSoundSnapshot,
  readRecords,
  sequenceColumn,
  sequenceMismatch,
  verifyTail,
  type BatchRowSource,
  type JournalBatchRow,
  type SnapshotRow,
  type StoredBatch,
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
  POSTGRES_HISTORY_SYMBOL_INDEXES_MIGRATION,
  POSTGRES_READ_MODELS_MIGRATION,
  POSTGRES_READ_MODEL_TIME_INDEXES_MIGRATION,
  applyReadModels,
  postgresHistoryPage,
  postgresReadModelTexts,
  type PostgresReadModelTexts,
} from "./postgres-read-models.ts";

const { DatabaseError, Pool } = pg;

export interface PostgresJournalOptions {
  /** postgres://user:password@host:port/database */
  readonly connectionString: string;
  /** The schema the tables live in, created if missing (tests use a fresh one per run). Default "bourse". */
  readonly schema?: string;
  /** Connections in the pool. Default 4: the journal has one writer; the rest serve reads. */
  readonly poolSize?: number;
  /** How long opening a connection may take before the call fails, in milliseconds. Default 5000. */
  readonly connectTimeoutMilliseconds?: number;
  /**
   * Calls waiting for a pooled connection (every one busy) beyond which a history page (a client's read) is refused
   * at once with StorageUnavailableError. Appends and the journal's own reads (recovery, a rebuild, the streams'
   * replays, which the request budget bounds) are never refused for it, though they wait in the same queue and count
   * in it. Default 1000.
   */
  readonly maxWaitingCalls?: number;
  /**
   * How long one statement may run before PostgreSQL cancels it, in milliseconds; the client gives up on a silent
   * server a little later (postgres-timeouts.ts). A stalled append then fails (its outcome unknown if its COMMIT was
   * sent), so the durable engine refuses commands with 503 and rebuilds, instead of hanging. Default 15000.
   */
  readonly statementTimeoutMilliseconds?: number;
  /** Records read per query while `open()` verifies the tail. */
  readonly verificationBatchSize?: number;
  /** The name the connections show in pg_stat_activity. Default "bourse-journal". */
  readonly applicationName?: string;
  /**
   * Told about errors of idle pooled connections (the server restarted, a backend was terminated).
   * The pool has already discarded the connection; nothing needs doing, but an operator may want the log line.
   */
  readonly onIdleConnectionError?: (error: Error) => void;
  /**
   * Told when this journal stops being the one writer (the writer lock's connection was lost, or another server holds
   * the lock: `problem`) and when it is the writer again (null), for the operator's log.
   */
  readonly onWriterLockChange?: (problem: string | null, detail?: string) => void;
}

/** How often, and how long apart, a lock still held by this journal's own dead session is ended and asked for again. */
const OWN_LOCK_RELEASE_ATTEMPTS = 20;
const OWN_LOCK_RELEASE_WAIT_MS = 50;

/** The first wait before taking a lost writer lock again, doubled after each miss up to the most. */
export const WRITER_LOCK_RETAKE_FIRST_DELAY_MS = 250;
export const WRITER_LOCK_RETAKE_MOST_DELAY_MS = 5_000;

/** A migration whose SQL has `{schema}` standing for the quoted schema name. */
type Migration = PostgresMigration;

/** Applied in order, each once, recorded in schema_migrations. Never edit one that has shipped: add the next. */
const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "journal and snapshots",
    sql: `
      CREATE TABLE {schema}.journal (
        sequence bigint PRIMARY KEY,
        time bigint NOT NULL,
        type text NOT NULL,
        account_id bigint,
        payload text NOT NULL,
        checksum bigint NOT NULL
      );
      CREATE INDEX journal_account_sequence ON {schema}.journal (account_id, sequence) WHERE account_id IS NOT NULL;
      CREATE TABLE {schema}.snapshots (
        sequence bigint PRIMARY KEY,
        state_hash text NOT NULL,
        created_at bigint NOT NULL,
        payload text NOT NULL,
        checksum bigint NOT NULL
      );
    `,
  },
  { version: 2, name: "read models", sql: POSTGRES_READ_MODELS_MIGRATION },
  {
    version: 3,
    name: "one journal row per append",
    // Rows of schema 2 move as they are, as rows of one event: their checksum is the same (batchChecksum).
    sql: `
      CREATE TABLE {schema}.journal_batches (
        first_sequence bigint PRIMARY KEY,
        last_sequence bigint NOT NULL,
        payload text NOT NULL,
        checksum bigint NOT NULL
      );
      INSERT INTO {schema}.journal_batches (first_sequence, last_sequence, payload, checksum)
        SELECT sequence, sequence, payload, checksum FROM {schema}.journal ORDER BY sequence;
      DROP TABLE {schema}.journal;
      ALTER TABLE {schema}.journal_batches RENAME TO journal;
      -- A row is a whole batch (about 1 MB for 1,000 orders): lz4 compresses it several times faster than the
      -- default pglz. A server built without lz4 keeps pglz.
      DO $$ BEGIN
        EXECUTE 'ALTER TABLE {schema}.journal ALTER COLUMN payload SET COMPRESSION lz4';
      EXCEPTION WHEN feature_not_supported OR invalid_parameter_value OR syntax_error THEN NULL;
      END $$;
      -- One line per event, for people and programs that read the database; the journal itself never reads it.
      -- The account is the one eventAccountId (records.ts) names.
      CREATE VIEW {schema}.journal_events AS
        SELECT journal.first_sequence + event.ordinality - 1 AS sequence,
          event.value ->> 'type' AS type,
          (event.value ->> 'time')::bigint AS time,
          coalesce(
            event.value ->> 'accountId',
            event.value #>> '{order,accountId}',
            event.value #>> '{deal,accountId}'
          )::bigint AS account_id,
          event.value::text AS payload
        FROM {schema}.journal, jsonb_array_elements(
          CASE WHEN left(journal.payload, 1) = '{' THEN ('[' || journal.payload || ']')::jsonb ELSE journal.payload::jsonb END
        ) WITH ORDINALITY AS event(value, ordinality);
    `,
  },
  { version: 4, name: "read-model time indexes by time", sql: POSTGRES_READ_MODEL_TIME_INDEXES_MIGRATION },
  {
    version: 5,
    name: "events in the binary form",
    // New rows hold their events in the event codec's binary form (event-codec.ts) in `events`; rows written
    // before keep their JSON text in `payload`. Exactly one of the two per row (checked for new rows only:
    // validating the old ones would read the whole journal at start). The view read the JSON: `bourse journal`
    // prints the events instead.
    sql: `
      ALTER TABLE {schema}.journal ALTER COLUMN payload DROP NOT NULL;
      ALTER TABLE {schema}.journal ADD COLUMN events bytea;
      ALTER TABLE {schema}.journal ADD CONSTRAINT journal_one_payload
        CHECK ((payload IS NULL) <> (events IS NULL)) NOT VALID;
      DROP VIEW {schema}.journal_events;
      DO $$ BEGIN
        EXECUTE 'ALTER TABLE {schema}.journal ALTER COLUMN events SET COMPRESSION lz4';
      EXCEPTION WHEN feature_not_supported OR invalid_parameter_value OR syntax_error THEN NULL;
      END $$;
    `,
  },
  { version: 6, name: "history indexes by symbol", sql: POSTGRES_HISTORY_SYMBOL_INDEXES_MIGRATION },
];

/** Journal records projected per transaction when open() catches the read models up. */
const READ_MODEL_CATCH_UP_BATCH_SIZE = 1000;

const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/**
 * The first key of the writer lock's `pg_try_advisory_lock(key, hashtext(schema))`: "Bour" in ASCII, so the
 * journal's lock does not meet another application's advisory locks in the same database.
 */
const WRITER_LOCK_KEY = 0x426f7572;

function ignoreClientError(): void {
  // The failed query reports the error; see open().
}

interface StatementTexts {
  readonly lastSequence: string;
  readonly insert: string;
  readonly rowStart: string;
  readonly rows: string;
  readonly deleteFrom: string;
  readonly saveSnapshot: string;
  readonly latestSnapshotBefore: string;
  readonly pruneSnapshots: string;
}

function statementTexts(schema: string): StatementTexts {
  const journal = `${schema}.journal`;
  const snapshots = `${schema}.snapshots`;
  const snapshotColumns = 'sequence, state_hash AS "stateHash", created_at AS "createdAt", payload, checksum';
  const lastSequence = `(SELECT coalesce((SELECT last_sequence FROM ${journal} ORDER BY first_sequence DESC LIMIT 1), 0))`;
  return {
    lastSequence: `SELECT ${lastSequence} AS sequence`,
    // The batch's one row, guarded by the last sequence: a batch that does not continue the journal inserts
    // nothing. A concurrent writer that races past the guard hits the primary key instead.
    insert: `
      INSERT INTO ${journal} (first_sequence, last_sequence, events, checksum)
      SELECT $1::bigint, $2::bigint, $3::bytea, $4::bigint
      WHERE ${lastSequence} = $5`,
    rowStart: `SELECT first_sequence FROM ${journal} WHERE first_sequence <= $1 ORDER BY first_sequence DESC LIMIT 1`,
    rows: `
      SELECT first_sequence, last_sequence, payload, events, checksum FROM ${journal}
      WHERE first_sequence >= $1 ORDER BY first_sequence LIMIT $2`,
    deleteFrom: `DELETE FROM ${journal} WHERE first_sequence >= $1`,
    // Only over a journaled sequence (0 is the empty journal): a snapshot of events not yet durable
    // would outlive them if they were lost.
    saveSnapshot: `
      INSERT INTO ${snapshots} (sequence, state_hash, created_at, payload, checksum)
      SELECT $1::bigint, $2::text, $3::bigint, $4::text, $5::bigint
      WHERE $1::bigint <= ${lastSequence}
      ON CONFLICT (sequence) DO UPDATE SET
        state_hash = excluded.state_hash, created_at = excluded.created_at,
        payload = excluded.payload, checksum = excluded.checksum`,
    latestSnapshotBefore: `
      SELECT ${snapshotColumns} FROM ${snapshots} WHERE sequence < $1 ORDER BY sequence DESC LIMIT 1`,
    pruneSnapshots: `
      DELETE FROM ${snapshots} WHERE sequence < (SELECT sequence FROM ${snapshots} ORDER BY sequence DESC OFFSET $1 LIMIT 1)`,
  };
}

function storedBatch(row: Record<string, unknown>): StoredBatch {
  return {
    firstSequence: sequenceColumn(row.first_sequence),
    lastSequence: integerColumn(row.last_sequence),
    // A row has events in the binary form, or (written before it) JSON text.
    payload: row.events ?? row.payload,
    checksum: integerColumn(row.checksum),
  };
}

function storedSnapshot(row: Record<string, unknown>): StoredSnapshot {
  return {
    sequence: sequenceColumn(row.sequence),
    stateHash: row.stateHash,
    createdAt: integerColumn(row.createdAt),
    payload: row.payload,
    checksum: integerColumn(row.checksum),
  };
}

export class PostgresJournal implements EventJournal, ReadModels {
  readonly schema: string;
  private readonly quotedSchema: string;
  private readonly statements: StatementTexts;
  private readonly readModelTexts: PostgresReadModelTexts;
  private pool: pg.Pool | null = null;
  /** Appends run one after another in call order, as the interface promises. */
  private appendQueue: Promise<unknown> = Promise.resolve();
  /**
   * Connections that have served a statement. One of these failing may just have died while idle in the pool
   * (a server restart), so the statement is retried on another; a new connection failing means the server
   * is unreachable, and retrying would only add delay.
   */
  private readonly provenClients = new WeakSet<pg.PoolClient>();
  /**
   * The writer lock (JournalOpenOptions.keepTornTail): a session advisory lock, held by a connection of its own
   * for as long as the journal is open. PostgreSQL releases it when that session ends, however the process
   * ends. Null for an inspection, and while the lock is lost (its connection died: a server restart), until
   * the next append takes it again, or fails to.
   */
  private writerLock: pg.Client | null = null;
  /** Why this journal is not the one writer now (`writerLockProblem`), or null. */
  private lockProblem: string | null = null;
  /** The lost lock taken again at once and then with backoff, not only by the next append (`retakeWriterLockSoon`). */
  private lockRetakeTimer: NodeJS.Timeout | null = null;
  private lockRetakeDelayMs = WRITER_LOCK_RETAKE_FIRST_DELAY_MS;
  /** The one attempt at taking the lock running, which the retake timer and an append share. */
  private lockTaking: Promise<void> | null = null;
  /** The session holding the lock (`pg_backend_pid`): a lock still held by it after its connection died is ours. */
  private lockBackendPid: number | null = null;
  /** The journal's last sequence as this journal last knew it (opened, or appended): what its engine's state reflects. */
  private knownLastSequence: number | null = null;
  /** Another server appended while this one was not the writer: not the writer until an append of its own succeeds. */
  private journalMovedOn = false;
  private closing = false;
  private writing = false;
  private readonly poolSize: number;
  private readonly maxWaitingCalls: number;
  private readonly recordsPerRead: number;
  private readonly connectionSettings: ReturnType<typeof boundedConnectionSettings>;

  constructor(readonly options: PostgresJournalOptions) {
    this.schema = options.schema ?? "bourse";
    if (!SCHEMA_NAME.test(this.schema))
      throw new RangeError(
        `schema must be a plain identifier (letters, digits, _), got ${JSON.stringify(this.schema)}`,
      );
    this.quotedSchema = `"${this.schema}"`;
    this.statements = statementTexts(this.quotedSchema);
    this.readModelTexts = postgresReadModelTexts(this.quotedSchema);
    this.poolSize = options.poolSize ?? 4;
    this.recordsPerRead = options.verificationBatchSize ?? DEFAULT_VERIFICATION_BATCH_SIZE;
    this.connectionSettings = boundedConnectionSettings(
      options.statementTimeoutMilliseconds ?? DEFAULT_STATEMENT_TIMEOUT_MILLISECONDS,
    );
    if (!Number.isSafeInteger(this.poolSize) || this.poolSize < 1)
      throw new RangeError(`poolSize must be a positive integer, got ${this.poolSize}`);
    this.maxWaitingCalls = checkedMaxWaitingCalls(options.maxWaitingCalls);
  }

  /** Whether a statement that failed on `client` before anything could be committed should run again on another connection. */
  private worthRetrying(client: pg.PoolClient, error: unknown, attempt: number): boolean {
    // Every pooled connection may be stale at once: one attempt more than the pool holds reaches a new one. A
    // statement that went unanswered is not a stale connection: the server stalls, and another try would only wait
    // as long again (and, for an append, behind the first one's uncommitted row).
    return (
      isConnectionFailure(error) &&
      !isAnswerTimeout(error) &&
      this.provenClients.has(client) &&
      attempt <= this.poolSize
    );
  }

  async open(options: JournalOpenOptions = {}): Promise<JournalOpenReport> {
    if (this.pool) throw new Error("the journal is already open");
    const pool = new Pool({
      connectionString: this.options.connectionString,
      max: this.poolSize,
      connectionTimeoutMillis: this.options.connectTimeoutMilliseconds ?? 5000,
      application_name: this.options.applicationName ?? "bourse-journal",
      // A statement timeout, a client-side answer timeout and keepalive: a stalled server fails the call instead of
      // hanging it (postgres-timeouts.ts).
      ...this.connectionSettings,
    });
    // Without a listener an idle connection's error (a server restart) would be thrown as an uncaught exception.
    pool.on("error", (error) => this.options.onIdleConnectionError?.(error));
    // A connection that dies while checked out fails its query (which is how we learn of it) and also emits
    // 'error' on the client, which the pool only listens to while the client is idle: without this, Node
    // would throw that second copy as an uncaught exception and bring the server down.
    pool.on("connect", (client) => client.on("error", ignoreClientError));
    this.pool = pool;
    try {
      // The lock first: a second writer must not migrate the schema under the one that runs (its key is the
      // schema's name, which needs no table).
      this.writing = !options.keepTornTail;
      if (this.writing) await this.takeWriterLock();
      const appliedMigrations = await this.migrate(this.writing);
      const report: JournalOpenReport = { ...(await this.verifyOnOpen(options)), appliedMigrations };
      this.knownLastSequence = report.lastSequence;
      // An inspection leaves the read models as they are: a kept torn tail is not the journal's to project.
      if (!options.keepTornTail) await this.catchUpReadModels(report.lastSequence);
      return report;
    } catch (error) {
      this.pool = null;
      await pool.end();
      await this.dropWriterLock();
      throw error;
    }
  }

  /** Takes the writer lock on a connection of its own, or throws JournalLockedError while another holds it. */
  private async takeWriterLock(): Promise<void> {
    await this.dropWriterLock();
    const client = new pg.Client({
      connectionString: this.options.connectionString,
      connectionTimeoutMillis: this.options.connectTimeoutMilliseconds ?? 5000,
      application_name: `${this.options.applicationName ?? "bourse-journal"} writer lock`,
      // Taking the lock never waits (pg_try_advisory_lock), so a server that does not answer is stalled.
      ...this.connectionSettings,
    });
    // The connection dying (a server restart) releases the lock. It is taken again at once and then with backoff, not
    // only by the next append: found by the audit of an operator's journey of 7 December (sixth session), a second
    // server started on the database meanwhile, took the lock, and both answered ready.
    const lost = (): void => {
      if (this.writerLock !== client) return;
      this.writerLock = null;
      this.noteLockProblem("its writer lock's connection to PostgreSQL was lost: taking the lock again");
      this.retakeWriterLockSoon();
    };
    client.on("error", lost);
    client.on("end", lost);
    try {
      await client.connect();
      let locked = await this.tryAdvisoryLock(client);
      // Still held by this journal's own earlier session, which the server has not seen die (a network broken one way
      // keeps it until the server's keepalive gives up, hours): ended, and taken again (found by the review of 7
      // December, sixth session).
      for (
        let attempt = 0;
        !locked && attempt < OWN_LOCK_RELEASE_ATTEMPTS && (await this.heldByOwnSession(client));
        attempt++
      ) {
        await client.query("SELECT pg_terminate_backend($1)", [this.lockBackendPid]);
        await new Promise((resolve) => setTimeout(resolve, OWN_LOCK_RELEASE_WAIT_MS));
        locked = await this.tryAdvisoryLock(client);
      }
      if (!locked)
        throw new JournalLockedError(
          `in schema ${this.schema} of this PostgreSQL database (it holds the advisory lock ${WRITER_LOCK_KEY}, hashtext('${this.schema}'))`,
        );
      // Closed meanwhile (a retake under way when the server stopped): the lock is not kept past the journal.
      if (this.closing) throw new Error("the journal closed while its writer lock was being taken");
      this.lockBackendPid = ((await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]?.pid ??
        null) as number | null;
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    this.writerLock = client;
  }

  private async tryAdvisoryLock(client: pg.Client): Promise<boolean> {
    const { rows } = await client.query<{ locked: boolean }>(
      "SELECT pg_try_advisory_lock($1, hashtext($2)) AS locked",
      [WRITER_LOCK_KEY, this.schema],
    );
    return rows[0]?.locked === true;
  }

  /** Whether the writer lock is held by this journal's earlier session (`lockBackendPid`). */
  private async heldByOwnSession(client: pg.Client): Promise<boolean> {
    if (this.lockBackendPid === null) return false;
    const { rows } = await client.query<{ pid: number }>(
      `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2
         AND classid = $1::bigint::oid AND objid = (hashtext($2)::bigint & 4294967295)::oid`,
      [WRITER_LOCK_KEY, this.schema],
    );
    return rows.some((row) => row.pid === this.lockBackendPid);
  }

  /**
   * Why this journal is not the one writer now: its writer lock's connection was lost and the lock is not taken again
   * yet, or another server holds it. Null while it holds the lock, and for an inspection. A server is not ready then
   * (its appends would be refused), so a load balancer sends its clients to the writer.
   */
  writerLockProblem(): string | null {
    return this.writing && this.pool !== null ? this.lockProblem : null;
  }

  /** `problem` is public (`/readyz`); `detail` (an error's text: hosts, users) goes to the log only. */
  private noteLockProblem(problem: string | null, detail?: string): void {
    if (problem === this.lockProblem) return;
    this.lockProblem = problem;
    this.options.onWriterLockChange?.(problem, detail);
  }

  /** Takes the lost writer lock again (one attempt at a time, shared with an append's), or throws why not. */
  private async retakeWriterLock(): Promise<void> {
    this.lockTaking ??= this.takeWriterLock().finally(() => (this.lockTaking = null));
    try {
      await this.lockTaking;
    } catch (error) {
      if (error instanceof JournalLockedError) this.noteLockProblem("another server holds the journal's writer lock");
      else this.noteLockProblem("its writer lock cannot be taken again: PostgreSQL does not answer", String(error));
      throw error;
    }
    this.lockRetakeDelayMs = WRITER_LOCK_RETAKE_FIRST_DELAY_MS;
    // Another server may have written meanwhile: this one's state is then behind the journal, and must not be served as
    // current (found by the review of 7 December, sixth session). Its next append fails the sequence guard, and the
    // durable engine rebuilds from the journal; an append of its own that succeeds clears this.
    const known = this.knownLastSequence;
    const last = known === null ? null : await this.lastSequence().catch(() => null);
    if (known !== null && last !== known) {
      this.journalMovedOn = true;
      this.noteLockProblem(
        "the journal holds events this server's state does not (another server wrote it while this one was not its " +
          "writer, or a write whose answer was lost landed): its next command rebuilds the state",
        `the journal ends at ${String(last)}, this server's state at ${known}`,
      );
      return;
    }
    this.noteLockProblem(null);
  }

  private retakeWriterLockSoon(): void {
    if (this.lockRetakeTimer !== null || this.pool === null || !this.writing || this.closing) return;
    this.lockRetakeTimer = setTimeout(() => {
      this.lockRetakeTimer = null;
      if (this.pool === null || this.writerLock !== null) return;
      // Behind the appends queued, as an append's own retake is: an append of this server's committing while the retake
      // read the journal's end looked like another server's write (the PostgreSQL soak audit of 7 December, ninth
      // session: "another server wrote the journal" with one server running, and /readyz refusing for a moment).
      const retaking = this.appendQueue.then(() =>
        this.pool === null || this.writerLock !== null ? undefined : this.retakeWriterLock(),
      );
      this.appendQueue = retaking.catch(() => undefined);
      retaking.catch(() => {
        this.lockRetakeDelayMs = Math.min(this.lockRetakeDelayMs * 2, WRITER_LOCK_RETAKE_MOST_DELAY_MS);
        this.retakeWriterLockSoon();
      });
    }, this.lockRetakeDelayMs);
    this.lockRetakeTimer.unref();
  }

  private async dropWriterLock(): Promise<void> {
    const client = this.writerLock;
    this.writerLock = null;
    // Ending the session releases the lock.
    await client?.end().catch(() => undefined);
  }

  /** `apply` false for an inspection: it checks the schema is this build's and changes nothing. */
  private async migrate(apply: boolean): Promise<readonly AppliedMigration[]> {
    return runPostgresMigrationsOnOwnConnection(
      {
        connectionString: this.options.connectionString,
        connectTimeoutMilliseconds: this.options.connectTimeoutMilliseconds ?? 5000,
        applicationName: `${this.options.applicationName ?? "bourse-journal"} migrations`,
      },
      {
        schema: this.schema,
        table: "schema_migrations",
        lockName: "bourse.migrations",
        migrations: MIGRATIONS,
        render: (sql) => sql.replaceAll("{schema}", this.quotedSchema),
        what: "the journal",
        apply,
      },
    );
  }

  /** The tail's report; the open adds the migrations it applied. */
  private async verifyOnOpen({
    fold,
    keepTornTail,
  }: JournalOpenOptions): Promise<Omit<JournalOpenReport, "appliedMigrations">> {
    const damagedSnapshots: number[] = [];
    let snapshotSequence = 0;
    let snapshot: SnapshotRecord | null = null;
    for (let before = Number.MAX_SAFE_INTEGER; ;) {
      const { rows } = await this.query(this.statements.latestSnapshotBefore, [before]);
      if (rows.length === 0) break;
      const stored = storedSnapshot(rows[0]!);
      if (isSoundSnapshot(stored)) {
        snapshotSequence = stored.sequence;
        // Decoded (its state parsed) only for a fold to start from.
        if (fold) snapshot = decodeSnapshot(stored);
        break;
      }
      damagedSnapshots.push(stored.sequence);
      before = stored.sequence;
    }
    fold?.start(snapshot);
    const verdict = await verifyTail(this.rowSource, snapshotSequence, this.recordsPerRead, fold);
    if (verdict.firstTornSequence !== null && !keepTornTail)
      await this.query(this.statements.deleteFrom, [verdict.firstTornSequence]);
    return { lastSequence: verdict.lastSequence, droppedTornRecords: verdict.tornRecords, damagedSnapshots };
  }

  /**
   * Brings the read models to the journal's last sequence: after migration 2 on an existing journal they
   * start empty, and after a torn tail was dropped they reflect records that are gone, so they are rebuilt.
   */
  private async catchUpReadModels(lastSequence: number): Promise<void> {
    const progress = async () => sequenceColumn((await this.query(this.readModelTexts.progress, [])).rows[0]?.sequence);
    if ((await progress()) > lastSequence)
      await this.inTransaction((client) => client.query(this.readModelTexts.clear));
    for (let done = await progress(); done < lastSequence; done = await progress()) {
      const records = await this.read(done, READ_MODEL_CATCH_UP_BATCH_SIZE);
      await this.inTransaction((client) => applyReadModels(client, this.readModelTexts, records));
    }
  }

  private async inTransaction(work: (client: pg.PoolClient) => Promise<unknown>): Promise<void> {
    const client = await connectOrUnavailable(this.requirePool());
    try {
      await client.query("BEGIN");
      await work(client);
      await client.query("COMMIT");
      client.release();
    } catch (error) {
      client.release(true);
      throw error;
    }
  }

  async orderHistory(query: HistoryQuery): Promise<HistoryPage<OrderHistoryRow>> {
    return this.clientRead(
      () => postgresHistoryPage(this.query.bind(this), this.readModelTexts, "orders", query),
      true,
    );
  }

  async dealHistory(query: HistoryQuery): Promise<HistoryPage<DealHistoryRow>> {
    return this.clientRead(() => postgresHistoryPage(this.query.bind(this), this.readModelTexts, "deals", query), true);
  }

  async positionHistory(query: HistoryQuery): Promise<HistoryPage<PositionHistoryRow>> {
    return this.clientRead(
      () => postgresHistoryPage(this.query.bind(this), this.readModelTexts, "positions", query),
      true,
    );
  }

  async ledger(query: HistoryQuery): Promise<HistoryPage<LedgerRow>> {
    return this.clientRead(
      () => postgresHistoryPage(this.query.bind(this), this.readModelTexts, "ledger", query),
      true,
    );
  }

  append(records: readonly JournalRecord[]): Promise<void> {
    let rows: JournalBatchRow[];
    try {
      this.requirePool();
      if (records.length === 0) return Promise.resolve();
      rows = encodeBatchRows(records);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    const appended = this.appendQueue.then(() => this.appendNow(rows, records));
    this.appendQueue = appended.catch(() => undefined);
    return appended;
  }

  /** `records` are what `rows` encode (encodeBatch checked that the rows keep them exactly): the read models project them. */
  private async appendNow(rows: readonly JournalBatchRow[], records: readonly JournalRecord[]): Promise<void> {
    const pool = this.requirePool();
    const firstSequence = rows[0]!.firstSequence;
    if (this.writing && this.writerLock === null) {
      // Lost with its connection: nothing is written until this journal is the one writer again.
      try {
        await this.retakeWriterLock();
      } catch (error) {
        throw new JournalWriteError(
          `the batch from ${firstSequence} is not written: the journal's writer lock could not be taken again (${String(error)})`,
          false,
          { cause: error },
        );
      }
    }
    // Each row guarded by the one before it (the first by the journal's last sequence): one transaction for them all.
    const parameters = rows.map((row) => [
      row.firstSequence,
      row.lastSequence,
      row.payload,
      row.checksum,
      row.firstSequence - 1,
    ]);
    for (let attempt = 1; ; attempt++) {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (error) {
        throw new JournalWriteError(
          isCheckoutTimeout(error)
            ? `no connection to PostgreSQL came free or could be opened in time: the batch from ${firstSequence} is not written`
            : `PostgreSQL is unreachable: ${String(error)}`,
          false,
          { cause: error },
        );
      }
      let committing = false;
      try {
        // SET LOCAL: durable on commit whatever the server's or role's default says.
        await client.query("BEGIN; SET LOCAL synchronous_commit TO on");
        for (const rowParameters of parameters) {
          const inserted = await client.query(this.statements.insert, rowParameters);
          if (inserted.rowCount !== 1) {
            const { rows: last } = await client.query(this.statements.lastSequence);
            throw sequenceMismatch(firstSequence, sequenceColumn(last[0]?.sequence));
          }
        }
        // The read models in the same transaction: they commit, or roll back, with the records.
        await applyReadModels(client, this.readModelTexts, records);
        committing = true;
        await client.query("COMMIT");
        this.provenClients.add(client);
        client.release();
        this.knownLastSequence = rows[rows.length - 1]!.lastSequence;
        if (this.journalMovedOn) {
          this.journalMovedOn = false;
          this.noteLockProblem(null);
        }
        return;
      } catch (error) {
        // Destroyed rather than returned: it may sit in an aborted transaction or on a dead socket.
        client.release(true);
        if (error instanceof JournalRecordError) throw error;
        if (error instanceof DatabaseError && error.code === "23505")
          throw new JournalRecordError(firstSequence, "a sequence of the batch is already journaled (another writer?)");
        if (committing) {
          // The COMMIT may have been applied before the connection died: only a refusal from the server is a known outcome.
          const outcomeUnknown = isConnectionFailure(error);
          throw new JournalWriteError(
            outcomeUnknown
              ? isAnswerTimeout(error)
                ? `PostgreSQL did not answer the COMMIT within ${this.connectionSettings.query_timeout} ms: the batch from ${firstSequence} may or may not be durable`
                : `the connection failed while committing: the batch from ${firstSequence} may or may not be durable`
              : `PostgreSQL refused to commit the batch from ${firstSequence}: ${String(error)}`,
            outcomeUnknown,
            { cause: error },
          );
        }
        // Before COMMIT nothing can have been committed (a statement left unanswered has its connection destroyed just
        // above, so the COMMIT is never sent): a pooled connection that died while idle is retried on a new one.
        if (this.worthRetrying(client, error, attempt)) continue;
        if (isAnswerTimeout(error))
          throw new JournalWriteError(
            `PostgreSQL did not answer within ${this.connectionSettings.query_timeout} ms: the batch from ${firstSequence} is not written`,
            false,
            { cause: error },
          );
        throw new JournalWriteError(`PostgreSQL refused the batch from ${firstSequence}: ${String(error)}`, false, {
          cause: error,
        });
      }
    }
  }

  async lastSequence(): Promise<number> {
    return this.clientRead(async () => {
      const { rows } = await this.query(this.statements.lastSequence, []);
      return sequenceColumn(rows[0]!.sequence);
    });
  }

  async read(afterSequence: number, limit: number): Promise<JournalRecord[]> {
    assertReadArguments(afterSequence, limit);
    return this.clientRead(() => readRecords(this.rowSource, afterSequence, limit, this.recordsPerRead));
  }

  /**
   * A read whose failure on a stalled or vanished server is StorageUnavailableError (faces answer 503) rather than
   * `pg`'s own error (a 500); a history page (`admitted`) is refused at once past `maxWaitingCalls` as well.
   */
  private async clientRead<T>(read: () => Promise<T>, admitted = false): Promise<T> {
    if (admitted) admit({ pool: this.requirePool(), maxWaitingCalls: this.maxWaitingCalls });
    try {
      return await read();
    } catch (error) {
      throw isStorageFailure(error) ? storageUnavailable(error, false) : error;
    }
  }

  private readonly rowSource: BatchRowSource = {
    rowStart: async (sequence) => {
      const { rows } = await this.query(this.statements.rowStart, [sequence]);
      return rows.length === 0 ? null : sequenceColumn(rows[0]!.first_sequence);
    },
    rows: async (firstSequence, limit) =>
      (await this.query(this.statements.rows, [firstSequence, limit])).rows.map(storedBatch),
  };

  async saveSnapshot(snapshot: SnapshotRecord): Promise<void> {
    await this.saveSnapshotRow(encodeSnapshot(snapshot));
  }

  async saveSnapshotRow(row: SnapshotRow): Promise<void> {
    let inserted: number;
    try {
      const result = await this.query(this.statements.saveSnapshot, [
        row.sequence,
        row.stateHash,
        row.createdAt,
        row.payload,
        row.checksum,
      ]);
      inserted = result.rowCount ?? 0;
    } catch (error) {
      // Saving a snapshot again is harmless, so the caller may simply retry an unknown outcome.
      throw new JournalWriteError(
        `PostgreSQL refused the snapshot at ${row.sequence}: ${String(error)}`,
        isConnectionFailure(error),
        {
          cause: error,
        },
      );
    }
    if (inserted === 0) throw new JournalRecordError(row.sequence, "a snapshot must be taken at a journaled sequence");
    try {
      await this.query(this.statements.pruneSnapshots, [SNAPSHOTS_KEPT - 1]);
    } catch {
      // The snapshot is saved; the next one deletes what this one could not.
    }
  }

  async latestSnapshot(atOrBefore: number = Number.MAX_SAFE_INTEGER - 1): Promise<SnapshotRecord | null> {
    for (let before = atOrBefore + 1; ;) {
      const { rows } = await this.query(this.statements.latestSnapshotBefore, [before]);
      if (rows.length === 0) return null;
      const stored = storedSnapshot(rows[0]!);
      const snapshot = decodeSnapshot(stored);
      if (snapshot) return snapshot;
      before = stored.sequence;
    }
  }

  async close(): Promise<void> {
    if (!this.pool) return;
    this.closing = true;
    if (this.lockRetakeTimer !== null) clearTimeout(this.lockRetakeTimer);
    this.lockRetakeTimer = null;
    // Lets the queued appends finish first: closing must not cut a commit in half.
    await this.appendQueue;
    // A retake under way ends its connection when it sees the journal closing (found by the review of 7 December,
    // sixth session: it kept the lock past close, and the process alive).
    await this.lockTaking?.catch(() => undefined);
    const pool = this.pool;
    this.pool = null;
    await pool?.end();
    // Last: the next writer may start once everything of this one is closed.
    await this.dropWriterLock();
  }

  /**
   * Runs one statement that is safe to repeat (a read, or a single self-contained write), retrying on a new
   * connection when a pooled one turns out to have died while idle.
   */
  private async query(text: string, values: readonly unknown[]): Promise<pg.QueryResult<Record<string, unknown>>> {
    const pool = this.requirePool();
    for (let attempt = 1; ; attempt++) {
      const client = await connectOrUnavailable(pool);
      try {
        const result = await client.query<Record<string, unknown>>(text, values as unknown[]);
        this.provenClients.add(client);
        client.release();
        return result;
      } catch (error) {
        client.release(isConnectionFailure(error));
        if (!this.worthRetrying(client, error, attempt)) throw error;
      }
    }
  }

  /** The pool's connections and the calls waiting for one (`/metrics`; the writer lock's connection is apart); null until opened. */
  poolStatistics(): PoolStatistics | null {
    return this.pool ? poolStatistics(this.pool) : null;
  }

  private requirePool(): pg.Pool {
    if (!this.pool) throw new Error("the journal is not open: call open() first");
    return this.pool;
  }
}
