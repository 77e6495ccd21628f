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
  TABLES,
  fromSqlRow,
  historyCondition,
  projectBatch,
  projectionKeys,
  resolveHistoryQuery,
  snakeCase,
  toPage,
  type HistoryPage,
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
    /** For an upsert, its key and the columns it updates in a row that exists; null for a plain insert. */
    upsert: { key: string; changing: readonly string[] } | null,
  ) {
    this.head = `INSERT INTO ${table} (${columns.map(snakeCase).join(", ")}) VALUES `;
    this.placeholders = `(${columns.map(() => "?").join(", ")})`;
    this.tail =
      upsert === null
        ? ""
        : ` ON CONFLICT (${upsert.key}) DO UPDATE SET ${upsert.changing
            .map(snakeCase)
            .map((name) => `${name} = excluded.${name}`)
            .join(", ")}`;
  }

  write(rows: readonly object[]): void {
    for (let start = 0; start < rows.length; start += ROWS_PER_STATEMENT) {
      const count = Math.min(ROWS_PER_STATEMENT, rows.length - start);
      const values: unknown[] = [];
      for (let index = start; index < start + count; index++) {
        const row = rows[index] as Row;
        for (const column of this.columns) values.push(row[column]);
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

function historySql(table: TableSpec): string {
  return `SELECT * FROM ${table.name}
    WHERE ${historyCondition(table, table.name, { accountId: "@accountId", afterId: "@afterId", from: "@from", to: "@to" })}
      ${table.hasSymbol ? "AND (@symbol IS NULL OR symbol = @symbol)" : ""}
    ORDER BY id LIMIT @fetch`;
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
  private readonly history: Record<keyof typeof TABLES, Database.Statement<[object], Row>>;

  constructor(private readonly database: Database.Database) {
    // json_each: one statement loads any number of ids.
    const byIds = (table: string, key: string) =>
      database.prepare<[string], Row>(`SELECT * FROM ${table} WHERE ${key} IN (SELECT value FROM json_each(?))`);
    this.loadOrders = byIds("order_history", "id");
    this.loadPositions = byIds("position_history", "id");
    this.loadBalances = byIds("ledger_balances", "account_id");
    this.upsertOrders = new BulkInsert(database, "order_history", ORDER_COLUMNS, {
      key: "id",
      changing: ORDER_CHANGING_COLUMNS,
    });
    this.upsertPositions = new BulkInsert(database, "position_history", POSITION_COLUMNS, {
      key: "id",
      changing: POSITION_CHANGING_COLUMNS,
    });
    this.upsertBalances = new BulkInsert(database, "ledger_balances", BALANCE_COLUMNS, {
      key: "account_id",
      changing: BALANCE_CHANGING_COLUMNS,
    });
    this.insertDeals = new BulkInsert(database, "deal_history", DEAL_COLUMNS, null);
    this.insertLedger = new BulkInsert(database, "balance_ledger", LEDGER_COLUMNS, null);
    this.setProgress = database.prepare("UPDATE read_model_progress SET sequence = ? WHERE singleton = 1");
    this.getProgress = database.prepare("SELECT sequence FROM read_model_progress WHERE singleton = 1");
    this.history = {
      orders: database.prepare(historySql(TABLES.orders)),
      deals: database.prepare(historySql(TABLES.deals)),
      positions: database.prepare(historySql(TABLES.positions)),
      ledger: database.prepare(historySql(TABLES.ledger)),
    };
  }

  /** Writes what `records` change. Call inside the transaction that appends them. */
  apply(records: readonly JournalRecord[]): void {
    if (records.length === 0) return;
    const keys = projectionKeys(records);
    const output = projectBatch(records, {
      orders: this.loadOrders
        .all(JSON.stringify(keys.orderIds))
        .map((row) => fromSqlRow<OrderHistoryRow>(ORDER_COLUMNS, row)),
      positions: this.loadPositions
        .all(JSON.stringify(keys.positionIds))
        .map((row) => fromSqlRow<PositionHistoryRow>(POSITION_COLUMNS, row)),
      balances: this.loadBalances
        .all(JSON.stringify(keys.accountIds))
        .map((row) => fromSqlRow<LedgerBalanceRow>(BALANCE_COLUMNS, row)),
    });
    this.upsertOrders.write(output.orders);
    this.upsertPositions.write(output.positions);
    this.upsertBalances.write(output.balances);
    this.insertDeals.write(output.deals);
    this.insertLedger.write(output.ledger);
    this.setProgress.run(records[records.length - 1]!.sequence);
  }

  progress(): number {
    return this.getProgress.get()?.sequence ?? 0;
  }

  /** Empties the read models, to rebuild them from the journal. */
  clear(): void {
    this.database.exec(`
      DELETE FROM order_history; DELETE FROM deal_history; DELETE FROM position_history;
      DELETE FROM balance_ledger; DELETE FROM ledger_balances;
      UPDATE read_model_progress SET sequence = 0 WHERE singleton = 1;
    `);
  }

  page<Row extends { readonly id: number }>(table: keyof typeof TABLES, query: HistoryQuery): HistoryPage<Row> {
    const resolved = resolveHistoryQuery(query);
    const parameters: Record<string, unknown> = {
      accountId: resolved.accountId,
      afterId: resolved.afterId,
      from: resolved.from,
      to: resolved.to,
      fetch: resolved.limit + 1,
    };
    if (TABLES[table].hasSymbol) parameters.symbol = resolved.symbol;
    const rows = this.history[table].all(parameters).map((row) => fromSqlRow<Row>(TABLES[table].columns, row));
    return toPage(rows, resolved.limit);
  }
}
