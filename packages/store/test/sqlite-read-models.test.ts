/**
 * The SQLite read models' statements on their own: what the writer remembers of the rows it wrote (so an
 * append does not read them back), and that remembering changes nothing in what the tables hold.
 */
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { HISTORY_DIRECTIONS, TABLES as HISTORY_TABLES, type JournalRecord } from "../src/index.ts";
import {
  SQLITE_ACCOUNT_ROWS_MIGRATION,
  SQLITE_READ_MODELS_MIGRATION,
  SQLITE_READ_MODEL_TIME_INDEXES_MIGRATION,
  SqliteReadModelStatements,
  historySql,
} from "../src/sqlite-read-models.ts";
import { equalTimesScenario, tradingScenario } from "./read-models.contract.ts";
import { toRecords } from "./trading-session.ts";

const TABLES = [
  "order_history",
  "deal_history",
  "position_history",
  "balance_ledger",
  "ledger_balances",
  "account_rows",
] as const;

const databases: Database.Database[] = [];

afterEach(() => {
  for (const database of databases.splice(0)) database.close();
});

function readModels(cachedRowsPerKind?: number): {
  database: Database.Database;
  statements: SqliteReadModelStatements;
} {
  const database = new Database(":memory:");
  databases.push(database);
  database.exec(SQLITE_READ_MODELS_MIGRATION);
  database.exec(SQLITE_READ_MODEL_TIME_INDEXES_MIGRATION);
  database.exec(SQLITE_ACCOUNT_ROWS_MIGRATION);
  return { database, statements: new SqliteReadModelStatements(database, cachedRowsPerKind) };
}

/** Applies each batch in its own transaction, as an append does, and tells the statements it committed. */
function applyCommitted(
  { database, statements }: ReturnType<typeof readModels>,
  batches: readonly (readonly JournalRecord[])[],
): void {
  for (const batch of batches) {
    database.transaction(() => statements.apply(batch)).immediate();
    statements.committed();
  }
}

function batchesOf(records: readonly JournalRecord[], size: number): JournalRecord[][] {
  const batches: JournalRecord[][] = [];
  for (let start = 0; start < records.length; start += size) batches.push(records.slice(start, start + size));
  return batches;
}

function tables(database: Database.Database): Record<string, unknown[]> {
  return Object.fromEntries(
    TABLES.map((table) => [table, database.prepare(`SELECT * FROM ${table} ORDER BY 1`).all()]),
  );
}

describe("SqliteReadModelStatements: the writer's memory of its rows", () => {
  it("holds the balances, the working orders and the open positions only", () => {
    const scenario = tradingScenario();
    const records = toRecords(scenario.events);
    const models = readModels();
    applyCommitted(models, batchesOf(records, 3));
    const state = scenario.engine.snapshot();
    expect(models.statements.cachedRows()).toEqual({
      orders: state.orders.length,
      positions: state.positions.length,
      balances: state.accounts.length,
    });
    expect(state.positions.length).toBeGreaterThan(0);
  });

  it("writes the same rows whatever it remembers: batch sizes, a tiny bound, rolled-back batches, a batch out of turn", () => {
    const records = toRecords(tradingScenario().events);
    const reference = readModels();
    applyCommitted(reference, [records]);
    for (const size of [1, 2, 5, 17])
      for (const bound of [1, 2, 1000]) {
        const models = readModels(bound);
        applyCommitted(models, batchesOf(records, size));
        expect(tables(models.database), `batches of ${size}, bound ${bound}`).toEqual(tables(reference.database));
        expect(Math.max(...Object.values(models.statements.cachedRows()))).toBeLessThanOrEqual(bound);
      }

    // Every other batch is first applied with everything after it and rolled back.
    const models = readModels();
    batchesOf(records, 4).forEach((batch, index) => {
      if (index % 2 === 1) {
        const start = batch[0]!.sequence - 1;
        models.database.exec("BEGIN IMMEDIATE");
        models.statements.apply(records.slice(start));
        models.database.exec("ROLLBACK");
        models.statements.rolledBack();
      }
      applyCommitted(models, [batch]);
    });
    expect(tables(models.database)).toEqual(tables(reference.database));

    // The tables changed behind the statements' back (another connection, say): a batch that does not follow the
    // last one they committed is projected from the tables as they are, as statements without memory would.
    const half = Math.floor(records.length / 2);
    const changeBehind = "DELETE FROM position_history; DELETE FROM order_history; DELETE FROM ledger_balances";
    const remembering = readModels();
    applyCommitted(remembering, [records.slice(0, half)]);
    remembering.database.exec(changeBehind);
    applyCommitted(remembering, [records.slice(half + 1)]);
    const forgetting = readModels();
    applyCommitted(forgetting, [records.slice(0, half)]);
    forgetting.database.exec(changeBehind);
    const withoutMemory = new SqliteReadModelStatements(forgetting.database);
    applyCommitted({ database: forgetting.database, statements: withoutMemory }, [records.slice(half + 1)]);
    expect(tables(remembering.database)).toEqual(tables(forgetting.database));
  });
});

// A terminal shows the newest rows first: a page of either direction must seek `account_rows` to its bounds and walk
// it (backwards for desc), never read the account's whole history to sort it. SQLite's history tables take no index
// for it: an index more on them halved the durable write rate (BENCHMARKS.md, 7 December, sixth session).
describe("SqliteReadModelStatements: the query plan of a history page", () => {
  it("seeks the account's rows by key and reads them in the page's direction, backwards for desc, with no sort", () => {
    const models = readModels();
    applyCommitted(models, batchesOf(toRecords(equalTimesScenario().events), 64));
    models.database.exec("ANALYZE");
    const parameters = {
      accountId: 1,
      ...{ lowerTime: 0, lowerSequence: 0, lowerId: 0, lowerKind: 0 },
      ...{ upperTime: 9, upperSequence: 9, upperId: 9, upperKind: 9 },
      ...{ from: 0, to: 9, afterId: 0, beforeId: 9, fetch: 9 },
    };
    for (const table of Object.values(HISTORY_TABLES))
      for (const direction of HISTORY_DIRECTIONS) {
        const sql = historySql(table, direction);
        const values = table.hasSymbol ? { ...parameters, symbol: null } : parameters;
        const plan = (models.database.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(values) as { detail: string }[]).map(
          (line) => line.detail,
        );
        expect(plan, `${table.name} ${direction}`).toEqual([
          "SEARCH a USING PRIMARY KEY (account_id=? AND (time,sequence,id,kind)>(?,?,?,?) AND (time,sequence,id,kind)<(?,?,?,?))",
          "SEARCH t USING INTEGER PRIMARY KEY (rowid=?)",
        ]);
        // The plan does not say which way the index is read; the program does: SeekLE then Prev for desc.
        const program = (models.database.prepare(`EXPLAIN ${sql}`).all(values) as { opcode: string }[]).map(
          (instruction) => instruction.opcode,
        );
        const [seek, step, otherStep] = direction === "desc" ? ["SeekLE", "Prev", "Next"] : ["SeekGE", "Next", "Prev"];
        expect(program, `${table.name} ${direction}`).toEqual(expect.arrayContaining([seek, step]));
        expect(program, `${table.name} ${direction}`).not.toContain(otherStep);
        expect(program, `${table.name} ${direction}`).not.toContain("SorterOpen");
        expect(program, `${table.name} ${direction}`).not.toContain("OpenEphemeral");
      }
  });
});
