/**
 * The read models in SQLite: statements over the tables of migration 2, used by `SqliteJournal` inside
 * its append transaction. better-sqlite3 is synchronous, so everything here is too.
 */
import type Database from "better-sqlite3";
import type { JournalRecord } from "./journal.ts";
import {
  BALANCE_CHANGING_COLUMNS,
  BALANCE_COLUMNS,
  ORDER_CHANGING_COLUMNS,
  POSITION_CHANGING_COLUMNS,
  DEAL_COLUMNS,
  LEDGER_COLUMNS,
  ORDER_COLUMNS,
  POSITION_COLUMNS,
  HISTORY_KINDS,
  SQL_SORT_ORDER,
  TABLES,
  fromSqlRow,
  projectBatch,
  projectionKeys,
  resolveHistoryQuery,
  snakeCase,
  toPage,
  type HistoryDirection,
  type HistoryPage,
  type CreatedRow,
  type HistoryQuery,
  type LedgerBalanceRow,
  type OrderHistoryRow,
  type PositionHistoryRow,
  type TableSpec,
} from "./read-models.ts";

/** The tables of migration 2, in SQLite's dialect. Never edit once shipped: add a migration. */
export const SQLITE_READ_MODELS_MIGRATION = `
  CREATE TABLE order_history (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    type TEXT NOT NULL,
    volume INTEGER NOT NULL,
    filled_volume INTEGER NOT NULL,
    price INTEGER,
    stop_limit_price INTEGER,
    sl INTEGER,
    tp INTEGER,
    time_in_force TEXT NOT NULL,
    expiration INTEGER,
    status TEXT NOT NULL,
    status_reason TEXT,
    reason TEXT NOT NULL,
    client_order_id TEXT,
    comment TEXT NOT NULL,
    magic INTEGER NOT NULL,
    close_position_id INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE INDEX order_history_account_id ON order_history (account_id, id);
  CREATE INDEX order_history_account_time ON order_history (account_id, created_at);
  CREATE TABLE deal_history (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL,
    position_id INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    entry TEXT NOT NULL,
    volume INTEGER NOT NULL,
    price INTEGER NOT NULL,
    profit INTEGER NOT NULL,
    commission INTEGER NOT NULL,
    swap INTEGER NOT NULL,
    reason TEXT NOT NULL,
    time INTEGER NOT NULL
  );
  CREATE INDEX deal_history_account_id ON deal_history (account_id, id);
  CREATE INDEX deal_history_account_time ON deal_history (account_id, time);
  CREATE INDEX deal_history_position ON deal_history (position_id);
  CREATE TABLE position_history (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    volume INTEGER NOT NULL,
    open_cost INTEGER NOT NULL,
    margin INTEGER NOT NULL,
    swap INTEGER NOT NULL,
    commission INTEGER NOT NULL,
    opened_volume INTEGER NOT NULL,
    opened_cost INTEGER NOT NULL,
    closed_volume INTEGER NOT NULL,
    closed_cost INTEGER NOT NULL,
    realised_profit INTEGER NOT NULL,
    realised_swap INTEGER NOT NULL,
    sl INTEGER,
    tp INTEGER,
    comment TEXT NOT NULL,
    magic INTEGER NOT NULL,
    open_order_id INTEGER NOT NULL,
    open_time INTEGER NOT NULL,
    close_time INTEGER,
    updated_at INTEGER NOT NULL
  );
  CREATE INDEX position_history_account_id ON position_history (account_id, id);
  CREATE INDEX position_history_account_time ON position_history (account_id, open_time);
  CREATE TABLE balance_ledger (
    id INTEGER PRIMARY KEY,
    sequence INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    amount INTEGER NOT NULL,
    balance_after INTEGER NOT NULL,
    credit_after INTEGER NOT NULL,
    deal_id INTEGER,
    operation_id INTEGER,
    comment TEXT NOT NULL,
    time INTEGER NOT NULL
  );
  CREATE INDEX balance_ledger_account_id ON balance_ledger (account_id, id);
  CREATE INDEX balance_ledger_account_time ON balance_ledger (account_id, time);
  CREATE TABLE ledger_balances (
    account_id INTEGER PRIMARY KEY,
    balance INTEGER NOT NULL,
    credit INTEGER NOT NULL
  );
  -- The last journal sequence the read models reflect: open() catches them up (or rebuilds them) from it.
  CREATE TABLE read_model_progress (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    sequence INTEGER NOT NULL
  );
  INSERT INTO read_model_progress (singleton, sequence) VALUES (1, 0);
`;

/**
 * Migration 4: the (account, time) indexes become (time, id) ones, which grow at their end only
 * (see historyCondition in read-models.ts). Never edit once shipped: add a migration.
 */
export const SQLITE_READ_MODEL_TIME_INDEXES_MIGRATION = `
  DROP INDEX order_history_account_time;
  DROP INDEX deal_history_account_time;
  DROP INDEX position_history_account_time;
  DROP INDEX balance_ledger_account_time;
  CREATE INDEX order_history_time ON order_history (created_at, id);
  CREATE INDEX deal_history_time ON deal_history (time, id);
  CREATE INDEX position_history_time ON position_history (open_time, id);
  CREATE INDEX balance_ledger_time ON balance_ledger (time, id);
`;

/**
 * Migration 5: one index of every account's history rows, `account_rows`, instead of an (account, id) and a
 * (time, id) index per table. Its key is (account, time, creating journal sequence, id, table), so the rows an
 * append creates for one account, whatever their table, sit side by side at the end of that account's range: an
 * append dirties about one page of it per account instead of one per account and table (four), and no page
 * of a time index. A history page seeks to (account, time, sequence, id) of its first row and reads in key
 * order, which is id order: engine time never goes backwards, and ids and sequences are handed out in order.
 * Orders, deals and positions keep the sequence of the event that created them for that seek (rows from before
 * this migration have 0, which sorts them before every later row, as their ids do). The deals' position index
 * goes too: nothing reads by it. Never edit once shipped: add a migration.
 */
export const SQLITE_ACCOUNT_ROWS_MIGRATION = `
  ALTER TABLE order_history ADD COLUMN sequence INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE deal_history ADD COLUMN sequence INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE position_history ADD COLUMN sequence INTEGER NOT NULL DEFAULT 0;
  CREATE TABLE account_rows (
    account_id INTEGER NOT NULL,
    time INTEGER NOT NULL,
    sequence INTEGER NOT NULL,
    id INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    PRIMARY KEY (account_id, time, sequence, id, kind)
  ) WITHOUT ROWID;
  INSERT INTO account_rows (account_id, time, sequence, id, kind)
    SELECT account_id, created_at, sequence, id, ${HISTORY_KINDS.orders} FROM order_history;
  INSERT INTO account_rows (account_id, time, sequence, id, kind)
    SELECT account_id, time, sequence, id, ${HISTORY_KINDS.deals} FROM deal_history;
  INSERT INTO account_rows (account_id, time, sequence, id, kind)
    SELECT account_id, open_time, sequence, id, ${HISTORY_KINDS.positions} FROM position_history;
  INSERT INTO account_rows (account_id, time, sequence, id, kind)
    SELECT account_id, time, sequence, id, ${HISTORY_KINDS.ledger} FROM balance_ledger;
  DROP INDEX order_history_account_id;
  DROP INDEX deal_history_account_id;
  DROP INDEX position_history_account_id;
  DROP INDEX balance_ledger_account_id;
  DROP INDEX order_history_time;
  DROP INDEX deal_history_time;
  DROP INDEX position_history_time;
  DROP INDEX balance_ledger_time;
  DROP INDEX deal_history_position;
`;

const ACCOUNT_ROW_COLUMNS = [
  "accountId",
  "time",
  "sequence",
  "id",
  "kind",
] as const satisfies readonly (keyof CreatedRow)[];

type Row = Record<string, unknown>;

/** Rows one INSERT statement carries at most: one native call and one statement step for many rows. */
const ROWS_PER_STATEMENT = 64;

/**
 * Writes rows of one table with multi-row INSERT statements and positional parameters (binding a 20-column
 * row by name costs a property look-up per column from native code, several times the cost of an array).
 * Keeps one prepared statement per row count used, ROWS_PER_STATEMENT at most.
 */
class BulkInsert {
  private readonly statements = new Map<number, Database.Statement<unknown[]>>();
  private readonly head: string;
  private readonly placeholders: string;
  private readonly tail: string;

  constructor(
    private readonly database: Database.Database,
    table: string,
    private readonly columns: readonly string[],
    /**
     * For an upsert, its key and the columns it updates in a row that exists; "ignore" to skip a row that exists
     * whole (every column in the key); null for a plain insert.
     */
    upsert: { key: string; changing: readonly string[] } | "ignore" | null,
    /** A `sequence` column after `columns`, whose value `write` is given apart (it is not part of the rows). */
    private readonly withSequence = false,
  ) {
    const names = columns.map(snakeCase);
    if (withSequence) names.push("sequence");
    this.head = `INSERT INTO ${table} (${names.join(", ")}) VALUES `;
    this.placeholders = `(${names.map(() => "?").join(", ")})`;
    this.tail =
      upsert === null
        ? ""
        : upsert === "ignore"
          ? " ON CONFLICT DO NOTHING"
          : ` ON CONFLICT (${upsert.key}) DO UPDATE SET ${upsert.changing
              .map(snakeCase)
              .map((name) => `${name} = excluded.${name}`)
              .join(", ")}`;
  }

  /** `sequences`: for a table with a sequence column, each row's by id (absent: 0, a row that exists already). */
  write(rows: readonly object[], sequences?: ReadonlyMap<number, number>): void {
    for (let start = 0; start < rows.length; start += ROWS_PER_STATEMENT) {
      const count = Math.min(ROWS_PER_STATEMENT, rows.length - start);
      const values: unknown[] = [];
      for (let index = start; index < start + count; index++) {
        const row = rows[index] as Row;
        for (const column of this.columns) values.push(row[column]);
        if (this.withSequence) values.push(sequences?.get(row.id as number) ?? 0);
      }
      this.statement(count).run(values);
    }
  }

  private statement(count: number): Database.Statement<unknown[]> {
    let statement = this.statements.get(count);
    if (!statement) {
      statement = this.database.prepare(
        `${this.head}${Array.from({ length: count }, () => this.placeholders).join(", ")}${this.tail}`,
      );
      this.statements.set(count, statement);
    }
    return statement;
  }
}

/**
 * A history page through `account_rows`: the rows between two keys of its index, `lower` and `upper` (inclusive),
 * which `page` computes from the cursor and the time bounds, read in key order (ascending) or backwards (descending):
 * key order is id order. The conditions on the table's own columns repeat what the key already says, so no row
 * outside the query is ever returned whatever the index holds.
 */
export function historySql(table: TableSpec, direction: HistoryDirection): string {
  const order = SQL_SORT_ORDER[direction];
  return `SELECT t.* FROM account_rows a JOIN ${table.name} t ON t.id = a.id
    WHERE a.account_id = @accountId
      AND (a.time, a.sequence, a.id, a.kind) >= (@lowerTime, @lowerSequence, @lowerId, @lowerKind)
      AND (a.time, a.sequence, a.id, a.kind) <= (@upperTime, @upperSequence, @upperId, @upperKind)
      AND a.time >= @from AND a.time < @to
      AND a.kind = ${HISTORY_KINDS[tableKey(table)]} AND a.id > @afterId AND a.id < @beforeId
      AND t.account_id = @accountId AND t.${table.timeColumn} >= @from AND t.${table.timeColumn} < @to
      ${table.hasSymbol ? "AND (@symbol IS NULL OR t.symbol = @symbol)" : ""}
    ORDER BY a.time ${order}, a.sequence ${order}, a.id ${order} LIMIT @fetch`;
}

/** The first row of a table after an id (of any account), as [time, sequence, id]: where a page starts at the earliest. */
function nextRowSql(table: TableSpec): string {
  return `SELECT ${table.timeColumn}, sequence, id FROM ${table.name} WHERE id > ? ORDER BY id LIMIT 1`;
}

/** The last row of a table before an id (of any account), as [time, sequence, id]: where a descending page may start. */
function previousRowSql(table: TableSpec): string {
  return `SELECT ${table.timeColumn}, sequence, id FROM ${table.name} WHERE id < ? ORDER BY id DESC LIMIT 1`;
}

/** A key of `account_rows` within one account: (time, sequence, id, kind), a bound of historySql. */
interface AccountRowKey {
  readonly time: number;
  readonly sequence: number;
  readonly id: number;
  readonly kind: number;
}

function boundParameters(name: "lower" | "upper", key: AccountRowKey): Record<string, number> {
  return {
    [`${name}Time`]: key.time,
    [`${name}Sequence`]: key.sequence,
    [`${name}Id`]: key.id,
    [`${name}Kind`]: key.kind,
  };
}

function tableKey(table: TableSpec): keyof typeof TABLES {
  return (Object.keys(TABLES) as (keyof typeof TABLES)[]).find((key) => TABLES[key].name === table.name)!;
}

/**
 * Rows of each kind (orders, positions, account balances) the writer remembers at most. Finished orders and
 * closed positions leave at once; past the bound, the rows written longest ago do.
 */
export const WRITER_CACHE_ROWS = 100_000;

/** Orders in these states change no more: their rows leave the writer's cache. */
const FINISHED_ORDER_STATUSES: ReadonlySet<string> = new Set(["FILLED", "CANCELLED", "EXPIRED", "REJECTED"]);

/** Rows as last committed, by key, the most recently written last (a Map keeps insertion order). */
class RowCache<Row> {
  private readonly rows = new Map<number, Row>();

  constructor(private readonly capacity: number) {}

  get(key: number): Row | undefined {
    return this.rows.get(key);
  }

  set(key: number, row: Row): void {
    this.rows.delete(key);
    this.rows.set(key, row);
    if (this.rows.size > this.capacity) this.rows.delete(this.rows.keys().next().value!);
  }

  delete(key: number): void {
    this.rows.delete(key);
  }

  clear(): void {
    this.rows.clear();
  }

  get size(): number {
    return this.rows.size;
  }
}

/** What an append's projection wrote, until its transaction commits (then the cache takes it) or not. */
interface PendingRows {
  readonly lastSequence: number;
  readonly orders: readonly OrderHistoryRow[];
  readonly positions: readonly PositionHistoryRow[];
  readonly balances: readonly LedgerBalanceRow[];
}

export class SqliteReadModelStatements {
  private readonly loadOrders: Database.Statement<[string], Row>;
  private readonly loadPositions: Database.Statement<[string], Row>;
  private readonly loadBalances: Database.Statement<[string], Row>;
  private readonly upsertOrders: BulkInsert;
  private readonly upsertPositions: BulkInsert;
  private readonly upsertBalances: BulkInsert;
  private readonly insertDeals: BulkInsert;
  private readonly insertLedger: BulkInsert;
  private readonly setProgress: Database.Statement<[number]>;
  private readonly getProgress: Database.Statement<[], { sequence: number }>;
  private readonly insertAccountRows: BulkInsert;
  private readonly history: Record<keyof typeof TABLES, Record<HistoryDirection, Database.Statement<[object], Row>>>;
  private readonly nextRow: Record<keyof typeof TABLES, Database.Statement<[number], [number, number, number]>>;
  private readonly previousRow: Record<keyof typeof TABLES, Database.Statement<[number], [number, number, number]>>;
  /**
   * The rows this connection committed last, so an append does not read back what it wrote: the balance of every
   * account, the working orders, the open positions. They are the tables' rows only while nothing else writes
   * them, which holds for the connection that writes appends (the only one: the journal takes the write lock for
   * each). Valid as of `cachedThrough`, the last sequence committed through it; an append that does not follow it,
   * any failed or rolled-back one, and `clear` forget them all.
   */
  private readonly cachedOrders: RowCache<OrderHistoryRow>;
  private readonly cachedPositions: RowCache<PositionHistoryRow>;
  private readonly cachedBalances: RowCache<LedgerBalanceRow>;
  private cachedThrough: number | null = null;
  private pending: PendingRows | null = null;

  /** `cachedRowsPerKind`: the bound of the writer's cache (tests make it small). */
  constructor(
    private readonly database: Database.Database,
    cachedRowsPerKind: number = WRITER_CACHE_ROWS,
  ) {
    this.cachedOrders = new RowCache(cachedRowsPerKind);
    this.cachedPositions = new RowCache(cachedRowsPerKind);
    this.cachedBalances = new RowCache(cachedRowsPerKind);
    // json_each: one statement loads any number of ids.
    const byIds = (table: string, key: string) =>
      database.prepare<[string], Row>(`SELECT * FROM ${table} WHERE ${key} IN (SELECT value FROM json_each(?))`);
    this.loadOrders = byIds("order_history", "id");
    this.loadPositions = byIds("position_history", "id");
    this.loadBalances = byIds("ledger_balances", "account_id");
    this.upsertOrders = new BulkInsert(
      database,
      "order_history",
      ORDER_COLUMNS,
      { key: "id", changing: ORDER_CHANGING_COLUMNS },
      true,
    );
    this.upsertPositions = new BulkInsert(
      database,
      "position_history",
      POSITION_COLUMNS,
      { key: "id", changing: POSITION_CHANGING_COLUMNS },
      true,
    );
    this.upsertBalances = new BulkInsert(database, "ledger_balances", BALANCE_COLUMNS, {
      key: "account_id",
      changing: BALANCE_CHANGING_COLUMNS,
    });
    this.insertDeals = new BulkInsert(database, "deal_history", DEAL_COLUMNS, null, true);
    this.insertLedger = new BulkInsert(database, "balance_ledger", LEDGER_COLUMNS, null);
    // An entry that is there already is the same entry (its columns are its key): left as it is. Only a rebuild
    // over tables emptied by hand, without `clear`, finds some.
    this.insertAccountRows = new BulkInsert(database, "account_rows", ACCOUNT_ROW_COLUMNS, "ignore");
    this.setProgress = database.prepare("UPDATE read_model_progress SET sequence = ? WHERE singleton = 1");
    this.getProgress = database.prepare("SELECT sequence FROM read_model_progress WHERE singleton = 1");
    const history = (table: TableSpec) => ({
      asc: database.prepare<[object], Row>(historySql(table, "asc")),
      desc: database.prepare<[object], Row>(historySql(table, "desc")),
    });
    this.history = {
      orders: history(TABLES.orders),
      deals: history(TABLES.deals),
      positions: history(TABLES.positions),
      ledger: history(TABLES.ledger),
    };
    const rowKey = (sql: string) => database.prepare<[number], [number, number, number]>(sql).raw();
    this.nextRow = {
      orders: rowKey(nextRowSql(TABLES.orders)),
      deals: rowKey(nextRowSql(TABLES.deals)),
      positions: rowKey(nextRowSql(TABLES.positions)),
      ledger: rowKey(nextRowSql(TABLES.ledger)),
    };
    this.previousRow = {
      orders: rowKey(previousRowSql(TABLES.orders)),
      deals: rowKey(previousRowSql(TABLES.deals)),
      positions: rowKey(previousRowSql(TABLES.positions)),
      ledger: rowKey(previousRowSql(TABLES.ledger)),
    };
  }

  /**
   * Writes what `records` change. Call inside the transaction that appends them, then `committed()` once it has
   * committed or `rolledBack()` if it did not.
   */
  apply(records: readonly JournalRecord[]): void {
    this.pending = null;
    if (records.length === 0) return;
    // The cache holds the rows as of `cachedThrough`: for a batch that does not follow it, they may be stale.
    if (this.cachedThrough !== records[0]!.sequence - 1) this.forgetCachedRows();
    const keys = projectionKeys(records);
    const output = projectBatch(records, {
      orders: this.known(keys.orderIds, this.cachedOrders, this.loadOrders, ORDER_COLUMNS),
      positions: this.known(keys.positionIds, this.cachedPositions, this.loadPositions, POSITION_COLUMNS),
      balances: this.known(keys.accountIds, this.cachedBalances, this.loadBalances, BALANCE_COLUMNS),
    });
    const sequences = [new Map<number, number>(), new Map<number, number>(), new Map<number, number>()] as const;
    for (const row of output.created)
      if (row.kind !== HISTORY_KINDS.ledger) sequences[row.kind].set(row.id, row.sequence);
    this.upsertOrders.write(output.orders, sequences[HISTORY_KINDS.orders]);
    this.upsertPositions.write(output.positions, sequences[HISTORY_KINDS.positions]);
    this.upsertBalances.write(output.balances);
    this.insertDeals.write(output.deals, sequences[HISTORY_KINDS.deals]);
    this.insertLedger.write(output.ledger);
    this.insertAccountRows.write(output.created);
    const lastSequence = records[records.length - 1]!.sequence;
    this.setProgress.run(lastSequence);
    this.pending = { lastSequence, orders: output.orders, positions: output.positions, balances: output.balances };
  }

  /** The transaction of the last `apply` committed: its rows are the tables' rows now. */
  committed(): void {
    const pending = this.pending;
    this.pending = null;
    if (!pending) return;
    for (const row of pending.orders)
      if (FINISHED_ORDER_STATUSES.has(row.status)) this.cachedOrders.delete(row.id);
      else this.cachedOrders.set(row.id, row);
    for (const row of pending.positions)
      if (row.closeTime !== null) this.cachedPositions.delete(row.id);
      else this.cachedPositions.set(row.id, row);
    for (const row of pending.balances) this.cachedBalances.set(row.accountId, row);
    this.cachedThrough = pending.lastSequence;
  }

  /** The transaction of the last `apply` failed or was rolled back (or may have been): forget every cached row. */
  rolledBack(): void {
    this.pending = null;
    this.forgetCachedRows();
  }

  /** Rows the writer's cache holds, by kind (for tests). */
  cachedRows(): { orders: number; positions: number; balances: number } {
    return { orders: this.cachedOrders.size, positions: this.cachedPositions.size, balances: this.cachedBalances.size };
  }

  /** Forgets every cached row: for a connection that will write no more, or whose memory may be stale. */
  forgetCachedRows(): void {
    this.cachedOrders.clear();
    this.cachedPositions.clear();
    this.cachedBalances.clear();
    this.cachedThrough = null;
  }

  /** The rows of `keys`, from the cache where it has them, the others in one query. */
  private known<Known>(
    keys: readonly number[],
    cache: RowCache<Known>,
    load: Database.Statement<[string], Row>,
    columns: readonly string[],
  ): Known[] {
    const rows: Known[] = [];
    const missing: number[] = [];
    for (const key of keys) {
      const row = cache.get(key);
      if (row === undefined) missing.push(key);
      else rows.push(row);
    }
    if (missing.length > 0)
      for (const row of load.all(JSON.stringify(missing))) rows.push(fromSqlRow<Known>(columns, row));
    return rows;
  }

  progress(): number {
    return this.getProgress.get()?.sequence ?? 0;
  }

  /** Empties the read models, to rebuild them from the journal. */
  clear(): void {
    this.rolledBack();
    this.database.exec(`
      DELETE FROM order_history; DELETE FROM deal_history; DELETE FROM position_history;
      DELETE FROM balance_ledger; DELETE FROM ledger_balances; DELETE FROM account_rows;
      UPDATE read_model_progress SET sequence = 0 WHERE singleton = 1;
    `);
  }

  page<Row extends { readonly id: number }>(table: keyof typeof TABLES, query: HistoryQuery): HistoryPage<Row> {
    const resolved = resolveHistoryQuery(query);
    const kind = HISTORY_KINDS[table];
    // Every key of a row from `from` up to `to` (exclusive) lies between these two.
    let lower: AccountRowKey = { time: resolved.from, sequence: 0, id: 0, kind: 0 };
    let upper: AccountRowKey = {
      time: resolved.to - 1,
      sequence: Number.MAX_SAFE_INTEGER,
      id: Number.MAX_SAFE_INTEGER,
      kind: Number.MAX_SAFE_INTEGER,
    };
    if (resolved.direction === "asc") {
      // The page starts at the first row after the cursor, or at `from` if that is later.
      const next = this.nextRow[table].get(resolved.afterId);
      if (next === undefined) return { rows: [], nextCursor: null };
      const [time, sequence, id] = next;
      if (time >= resolved.from) lower = { time, sequence, id, kind };
    } else {
      // The page starts at the last row before the cursor, or before `to` if that is earlier.
      const previous = this.previousRow[table].get(resolved.beforeId);
      if (previous === undefined) return { rows: [], nextCursor: null };
      const [time, sequence, id] = previous;
      if (time < resolved.to) upper = { time, sequence, id, kind };
    }
    const parameters: Record<string, unknown> = {
      accountId: resolved.accountId,
      afterId: resolved.afterId,
      beforeId: resolved.beforeId,
      from: resolved.from,
      to: resolved.to,
      fetch: resolved.limit + 1,
      ...boundParameters("lower", lower),
      ...boundParameters("upper", upper),
    };
    if (TABLES[table].hasSymbol) parameters.symbol = resolved.symbol;
    const rows = this.history[table][resolved.direction]
      .all(parameters)
      .map((row) => fromSqlRow<Row>(TABLES[table].columns, row));
    return toPage(rows, resolved.limit, resolved.direction);
  }
}
