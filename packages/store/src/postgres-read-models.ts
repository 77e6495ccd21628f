/**
 * The read models in PostgreSQL: the tables of migration 2 and the two statements an append adds to its
 * transaction, one that loads the rows the batch touches and one that writes what it changes (data-modifying
 * CTEs over json_to_recordset), so the read models cost two round trips per batch whatever its size.
 */
import type pg from "pg";
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
  SQL_SORT_ORDER,
  TABLES,
  fromSqlRow,
  historyCondition,
  projectBatch,
  projectionKeys,
  resolveHistoryQuery,
  snakeCase,
  toPage,
  toSqlRow,
  type HistoryDirection,
  type HistoryPage,
  type HistoryQuery,
  type LedgerBalanceRow,
  type OrderHistoryRow,
  type PositionHistoryRow,
} from "./read-models.ts";

/** The tables of migration 2, `{schema}` standing for the quoted schema. Never edit once shipped: add a migration. */
export const POSTGRES_READ_MODELS_MIGRATION = `

  CREATE TABLE {schema}.order_history (
    id bigint PRIMARY KEY,
    account_id bigint NOT NULL,
    symbol text NOT NULL,
    side text NOT NULL,
    type text NOT NULL,
    volume bigint NOT NULL,
    filled_volume bigint NOT NULL,
    price bigint,
    stop_limit_price bigint,
    sl bigint,
    tp bigint,
    time_in_force text NOT NULL,
    expiration bigint,
    status text NOT NULL,
    status_reason text,
    reason text NOT NULL,
    client_order_id text,
    comment text NOT NULL,
    magic bigint NOT NULL,
    close_position_id bigint,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
  );
  CREATE INDEX order_history_account_id ON {schema}.order_history (account_id, id);
  CREATE INDEX order_history_account_time ON {schema}.order_history (account_id, created_at);
  CREATE TABLE {schema}.deal_history (
    id bigint PRIMARY KEY,
    order_id bigint NOT NULL,
    position_id bigint NOT NULL,
    account_id bigint NOT NULL,
    symbol text NOT NULL,
    side text NOT NULL,
    entry text NOT NULL,
    volume bigint NOT NULL,
    price bigint NOT NULL,
    profit bigint NOT NULL,
    commission bigint NOT NULL,
    swap bigint NOT NULL,
    reason text NOT NULL,
    time bigint NOT NULL
  );
  CREATE INDEX deal_history_account_id ON {schema}.deal_history (account_id, id);
  CREATE INDEX deal_history_account_time ON {schema}.deal_history (account_id, time);
  CREATE INDEX deal_history_position ON {schema}.deal_history (position_id);
  CREATE TABLE {schema}.position_history (
    id bigint PRIMARY KEY,
    account_id bigint NOT NULL,
    symbol text NOT NULL,
    side text NOT NULL,
    volume bigint NOT NULL,
    open_cost bigint NOT NULL,
    margin bigint NOT NULL,
    swap bigint NOT NULL,
    commission bigint NOT NULL,
    opened_volume bigint NOT NULL,
    opened_cost bigint NOT NULL,
    closed_volume bigint NOT NULL,
    closed_cost bigint NOT NULL,
    realised_profit bigint NOT NULL,
    realised_swap bigint NOT NULL,
    sl bigint,
    tp bigint,
    comment text NOT NULL,
    magic bigint NOT NULL,
    open_order_id bigint NOT NULL,
    open_time bigint NOT NULL,
    close_time bigint,
    updated_at bigint NOT NULL
  );
  CREATE INDEX position_history_account_id ON {schema}.position_history (account_id, id);
  CREATE INDEX position_history_account_time ON {schema}.position_history (account_id, open_time);
  CREATE TABLE {schema}.balance_ledger (
    id bigint PRIMARY KEY,
    sequence bigint NOT NULL,
    account_id bigint NOT NULL,
    kind text NOT NULL,
    amount bigint NOT NULL,
    balance_after bigint NOT NULL,
    credit_after bigint NOT NULL,
    deal_id bigint,
    operation_id bigint,
    comment text NOT NULL,
    time bigint NOT NULL
  );
  CREATE INDEX balance_ledger_account_id ON {schema}.balance_ledger (account_id, id);
  CREATE INDEX balance_ledger_account_time ON {schema}.balance_ledger (account_id, time);
  CREATE TABLE {schema}.ledger_balances (
    account_id bigint PRIMARY KEY,
    balance bigint NOT NULL,
    credit bigint NOT NULL
  );
  -- The last journal sequence the read models reflect: open() catches them up (or rebuilds them) from it.
  CREATE TABLE {schema}.read_model_progress (
    singleton integer PRIMARY KEY CHECK (singleton = 1),
    sequence bigint NOT NULL
  );
  INSERT INTO {schema}.read_model_progress (singleton, sequence) VALUES (1, 0);
`;

/**
 * Migration 4: the (account, time) indexes become (time, id) ones, which grow at their end only
 * (see historyCondition in read-models.ts). Never edit once shipped: add a migration.
 */
export const POSTGRES_READ_MODEL_TIME_INDEXES_MIGRATION = `
  DROP INDEX {schema}.order_history_account_time;
  DROP INDEX {schema}.deal_history_account_time;
  DROP INDEX {schema}.position_history_account_time;
  DROP INDEX {schema}.balance_ledger_account_time;
  CREATE INDEX order_history_time ON {schema}.order_history (created_at, id);
  CREATE INDEX deal_history_time ON {schema}.deal_history (time, id);
  CREATE INDEX position_history_time ON {schema}.position_history (open_time, id);
  CREATE INDEX balance_ledger_time ON {schema}.balance_ledger (time, id);
`;

/**
 * Migration 6: an (account, symbol, id) index on each table with a symbol. A page filtered on a symbol had only the
 * (account, id) index and the primary key, and the planner walked the primary key in id order for the LIMIT,
 * filtering account and symbol: every row of the table for a symbol the account rarely trades, 577 ms at 2M rows
 * (found by the audit of complexity of 7 December, sixth session). Never edit once shipped: add a migration.
 */
export const POSTGRES_HISTORY_SYMBOL_INDEXES_MIGRATION = `
  CREATE INDEX order_history_account_symbol ON {schema}.order_history (account_id, symbol, id);
  CREATE INDEX deal_history_account_symbol ON {schema}.deal_history (account_id, symbol, id);
  CREATE INDEX position_history_account_symbol ON {schema}.position_history (account_id, symbol, id);
`;

/** Columns that hold text; every other read-model column is a bigint. */
const TEXT_COLUMNS = new Set([
  "symbol",
  "side",
  "type",
  "timeInForce",
  "status",
  "statusReason",
  "reason",
  "clientOrderId",
  "comment",
  "entry",
  "kind",
]);

/** json, not jsonb: the rows are read once, and json_to_recordset skips building jsonb's binary form (measured ~20 % faster). */
function recordsetSql(parameter: number, columns: readonly string[]): string {
  const definitions = columns.map((column) => `${snakeCase(column)} ${TEXT_COLUMNS.has(column) ? "text" : "bigint"}`);
  return `SELECT ${columns.map(snakeCase).join(", ")} FROM json_to_recordset($${parameter}::json) AS r(${definitions.join(", ")})`;
}

/** `changing`: the columns updated in a row that exists (see ORDER_CHANGING_COLUMNS). */
function upsertSql(
  table: string,
  parameter: number,
  columns: readonly string[],
  key: string,
  changing: readonly string[],
): string {
  const updates = changing.map(snakeCase).map((name) => `${name} = excluded.${name}`);
  return `INSERT INTO ${table} (${columns.map(snakeCase).join(", ")}) ${recordsetSql(parameter, columns)}
    ON CONFLICT (${key}) DO UPDATE SET ${updates.join(", ")}`;
}

export interface PostgresReadModelTexts {
  readonly load: string;
  readonly write: string;
  readonly progress: string;
  readonly clear: string;
  /** A page's statement by table and direction. */
  readonly history: Record<keyof typeof TABLES, Record<HistoryDirection, string>>;
}

export function postgresReadModelTexts(schema: string): PostgresReadModelTexts {
  const table = (name: string) => `${schema}.${name}`;
  const placeholders = { accountId: "$1", afterId: "$2", beforeId: "$3", from: "$4", to: "$5" };
  // A descending page reads the same (account, id) or (account, symbol, id) index backwards.
  const history = (spec: (typeof TABLES)[keyof typeof TABLES], direction: HistoryDirection) => `
    SELECT coalesce(json_agg(t ORDER BY t.id ${SQL_SORT_ORDER[direction]}), '[]'::json) AS rows FROM (
      SELECT * FROM ${table(spec.name)}
      WHERE ${historyCondition(spec, table(spec.name), placeholders)}
        ${spec.hasSymbol ? "AND ($7::text IS NULL OR symbol = $7::text)" : ""}
      ORDER BY id ${SQL_SORT_ORDER[direction]} LIMIT $6
    ) t`;
  const bothDirections = (spec: (typeof TABLES)[keyof typeof TABLES]) => ({
    asc: history(spec, "asc"),
    desc: history(spec, "desc"),
  });
  return {
    // json_agg: bigints come back as JSON numbers, which JSON.parse keeps exactly (they are safe integers).
    load: `SELECT
      (SELECT coalesce(json_agg(o), '[]'::json) FROM ${table("order_history")} o WHERE o.id = ANY($1::bigint[])) AS orders,
      (SELECT coalesce(json_agg(p), '[]'::json) FROM ${table("position_history")} p WHERE p.id = ANY($2::bigint[])) AS positions,
      (SELECT coalesce(json_agg(b), '[]'::json) FROM ${table("ledger_balances")} b WHERE b.account_id = ANY($3::bigint[])) AS balances`,
    write: `
      WITH
        orders AS (${upsertSql(table("order_history"), 1, ORDER_COLUMNS, "id", ORDER_CHANGING_COLUMNS)}),
        positions AS (${upsertSql(table("position_history"), 2, POSITION_COLUMNS, "id", POSITION_CHANGING_COLUMNS)}),
        balances AS (${upsertSql(table("ledger_balances"), 3, BALANCE_COLUMNS, "account_id", BALANCE_CHANGING_COLUMNS)}),
        deals AS (INSERT INTO ${table("deal_history")} (${DEAL_COLUMNS.map(snakeCase).join(", ")}) ${recordsetSql(4, DEAL_COLUMNS)}),
        ledger AS (INSERT INTO ${table("balance_ledger")} (${LEDGER_COLUMNS.map(snakeCase).join(", ")}) ${recordsetSql(5, LEDGER_COLUMNS)})
      UPDATE ${table("read_model_progress")} SET sequence = $6 WHERE singleton = 1`,
    progress: `SELECT sequence FROM ${table("read_model_progress")} WHERE singleton = 1`,
    clear: `
      TRUNCATE ${table("order_history")}, ${table("deal_history")}, ${table("position_history")},
        ${table("balance_ledger")}, ${table("ledger_balances")};
      UPDATE ${table("read_model_progress")} SET sequence = 0 WHERE singleton = 1`,
    history: {
      orders: bothDirections(TABLES.orders),
      deals: bothDirections(TABLES.deals),
      positions: bothDirections(TABLES.positions),
      ledger: bothDirections(TABLES.ledger),
    },
  };
}

/** Writes what `records` change, on `client`, inside the transaction that appends them. */
export async function applyReadModels(
  client: pg.PoolClient,
  texts: PostgresReadModelTexts,
  records: readonly JournalRecord[],
): Promise<void> {
  if (records.length === 0) return;
  const keys = projectionKeys(records);
  const { rows } = await client.query<{ orders: unknown[]; positions: unknown[]; balances: unknown[] }>(texts.load, [
    keys.orderIds,
    keys.positionIds,
    keys.accountIds,
  ]);
  const loaded = rows[0]!;
  const output = projectBatch(records, {
    orders: loaded.orders.map((row) => fromSqlRow<OrderHistoryRow>(ORDER_COLUMNS, row as Record<string, unknown>)),
    positions: loaded.positions.map((row) =>
      fromSqlRow<PositionHistoryRow>(POSITION_COLUMNS, row as Record<string, unknown>),
    ),
    balances: loaded.balances.map((row) =>
      fromSqlRow<LedgerBalanceRow>(BALANCE_COLUMNS, row as Record<string, unknown>),
    ),
  });
  await client.query(texts.write, [
    JSON.stringify(output.orders.map((row) => toSqlRow(ORDER_COLUMNS, row))),
    JSON.stringify(output.positions.map((row) => toSqlRow(POSITION_COLUMNS, row))),
    JSON.stringify(output.balances.map((row) => toSqlRow(BALANCE_COLUMNS, row))),
    JSON.stringify(output.deals.map((row) => toSqlRow(DEAL_COLUMNS, row))),
    JSON.stringify(output.ledger.map((row) => toSqlRow(LEDGER_COLUMNS, row))),
    records[records.length - 1]!.sequence,
  ]);
}

/** One page of a history, through `run` (the journal's retrying single-statement query). */
export async function postgresHistoryPage<Row extends { readonly id: number }>(
  run: (text: string, values: readonly unknown[]) => Promise<pg.QueryResult<Record<string, unknown>>>,
  texts: PostgresReadModelTexts,
  table: keyof typeof TABLES,
  query: HistoryQuery,
): Promise<HistoryPage<Row>> {
  const resolved = resolveHistoryQuery(query);
  const values: unknown[] = [
    resolved.accountId,
    resolved.afterId,
    resolved.beforeId,
    resolved.from,
    resolved.to,
    resolved.limit + 1,
  ];
  if (TABLES[table].hasSymbol) values.push(resolved.symbol);
  const { rows } = await run(texts.history[table][resolved.direction], values);
  const found = (rows[0]?.rows ?? []) as Record<string, unknown>[];
  return toPage(
    found.map((row) => fromSqlRow<Row>(TABLES[table].columns, row)),
    resolved.limit,
    resolved.direction,
  );
}
