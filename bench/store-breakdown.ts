/**
 * store.breakdown: where a durable order's time goes, and the most any read-model work could give back.
 *
 * store.orders' flow (1,000 clients, one account each, open and close through `DurableEngine.submit`, each
 * awaiting its own answer) over a SQLite journal written on the engine's thread, in two ways, interleaved
 * round by round with the in-memory engine:
 *
 * - as the platform writes it: the journal's row and the read models in one transaction;
 * - with the read models' writes skipped, the journal's rows alone. A diagnostic, not a configuration the
 *   platform offers (issue 3 asks for the read models in the journal's transaction): its ratio to in-memory
 *   is the ceiling of the durable rate on this machine whatever the read models cost;
 * - over a journal that encodes each batch as every journal does and stores nothing (answered at once): the
 *   durable engine's own work (the executing engine, the follower folding every batch again, the answers'
 *   promises, the encoding), the ceiling of the durable rate whatever the storage costs.
 *
 * The first row's note gives the time spent in each kind of SQLite statement per order (COMMIT, the account
 * index, each history table, the journal's row), timed around every `run` of the journal's prepared
 * statements; what is left of an order's time is the engine, the batch's encoding and the durable engine's
 * bookkeeping. The writer is inline here so both the skip and the timing see every statement (a writer
 * thread runs them in another isolate).
 */
import { defaultEngineConfig } from "@bourse/core";
import {
  SqliteJournal,
  type DurableEngine,
  type EventJournal,
  type JournalOpenReport,
  type JournalRecord,
} from "@bourse/store";
import Database from "better-sqlite3";
import { join } from "node:path";
import { encodeBatchRows } from "../packages/store/src/records.ts";
import { SqliteReadModelStatements } from "../packages/store/src/sqlite-read-models.ts";
import { buildOrderFlow, tradeRoundTrips } from "./engine.ts";
import {
  measureTogetherAsync,
  row,
  type BenchContext,
  type BenchGroup,
  type Measurement,
  type Row,
} from "./harness.ts";
import {
  DURABLE_FLOW,
  DURABLE_RATIO_GOAL,
  durableRoundTrips,
  inTempDirectory,
  openDurable,
  prepareDurable,
} from "./store.ts";

/** Nanoseconds spent per kind of statement ("COMMIT", "insert into account_rows"...). */
type StatementTimes = Map<string, bigint>;

/** The kind of a statement, from its SQL: its verb, and the table it writes. */
function statementKind(sql: string): string {
  const write = /^\s*(INSERT INTO|UPDATE|DELETE FROM)\s+(\w+)/i.exec(sql);
  if (write) return `${write[1]!.toLowerCase()} ${write[2]}`;
  return sql.trim().split(/\s+/)[0]!.toUpperCase();
}

/**
 * Adds the time of every `run` made while `isTiming()` holds to `times`, for the statements prepared until the
 * returned function restores `Database.prototype.prepare`.
 */
function timeStatements(times: StatementTimes, isTiming: () => boolean): () => void {
  const prepare = Database.prototype.prepare;
  Database.prototype.prepare = function (this: Database.Database, source: string) {
    const statement = prepare.call(this, source) as Database.Statement;
    const kind = statementKind(source);
    const run = statement.run;
    statement.run = function (this: Database.Statement, ...parameters: unknown[]) {
      if (!isTiming()) return run.apply(this, parameters);
      const started = process.hrtime.bigint();
      try {
        return run.apply(this, parameters);
      } finally {
        times.set(kind, (times.get(kind) ?? 0n) + process.hrtime.bigint() - started);
      }
    } as typeof statement.run;
    return statement;
  } as typeof Database.prototype.prepare;
  return () => {
    Database.prototype.prepare = prepare;
  };
}

/** Lets `apply` of the read models do nothing while `isSkipping()` holds; call the returned function to restore it. */
function skipReadModels(isSkipping: () => boolean): () => void {
  const apply = SqliteReadModelStatements.prototype.apply;
  SqliteReadModelStatements.prototype.apply = function (this: SqliteReadModelStatements, records) {
    if (!isSkipping()) apply.call(this, records);
  };
  return () => {
    SqliteReadModelStatements.prototype.apply = apply;
  };
}

/** A journal that encodes each append as the drivers do and keeps nothing: the durable engine's work alone. */
class EncodingOnlyJournal implements EventJournal {
  private last = 0;
  async open(): Promise<JournalOpenReport> {
    return { lastSequence: 0, droppedTornRecords: 0, damagedSnapshots: [], appliedMigrations: [] };
  }
  async append(records: readonly JournalRecord[]): Promise<void> {
    encodeBatchRows(records);
    this.last = records[records.length - 1]!.sequence;
  }
  async lastSequence(): Promise<number> {
    return this.last;
  }
  async read(): Promise<JournalRecord[]> {
    return [];
  }
  async saveSnapshot(): Promise<void> {}
  async saveSnapshotRow(): Promise<void> {}
  async latestSnapshot(): Promise<null> {
    return null;
  }
  async close(): Promise<void> {}
}

async function breakdownBenchmarks(context: BenchContext, directory: string): Promise<Row[]> {
  const { clients, roundTripsPerClient, runs } = DURABLE_FLOW;
  const config = defaultEngineConfig();
  const orders = clients * roundTripsPerClient * 2;
  const flow = buildOrderFlow(clients);
  const times: StatementTimes = new Map();
  // Orders and wall time of every run of the first subject (warm-up included), the runs its statements were timed in.
  let timedOrders = 0;
  let timedNanoseconds = 0n;
  let timing = false;
  let skipping = false;
  const restorers = [timeStatements(times, () => timing), skipReadModels(() => skipping)];
  const engines: DurableEngine[] = [];
  try {
    const open = async (name: string) => {
      const engine = await openDurable(
        new SqliteJournal({ path: join(directory, `${name}.sqlite`), writer: "inline" }),
        config,
      );
      engines.push(engine);
      return { engine, accounts: await prepareDurable(engine, clients) };
    };
    context.log(`store.breakdown: two SQLite journals (inline writer), ${clients} funded accounts each...`);
    const whole = await open("whole");
    const journalOnly = await open("journal-only");
    const storingNothing = await openDurable(new EncodingOnlyJournal(), config);
    engines.push(storingNothing);
    const storingNothingAccounts = await prepareDurable(storingNothing, clients);
    const wholeName = "durable orders, SQLite inline, journal and read models (as the platform writes them)";
    const journalOnlyName =
      "durable orders, SQLite inline, journal rows only (read models skipped: a diagnostic, the ceiling)";
    const storingNothingName = "durable engine over a journal that encodes and stores nothing (a diagnostic)";
    const measured = await measureTogetherAsync(
      [
        { name: "in-memory engine, same orders", fn: () => tradeRoundTrips(flow, orders / 2).operations },
        {
          name: wholeName,
          fn: async () => {
            timing = true;
            const started = process.hrtime.bigint();
            try {
              const count = await durableRoundTrips(whole.engine, whole.accounts, roundTripsPerClient);
              timedOrders += count;
              return count;
            } finally {
              timedNanoseconds += process.hrtime.bigint() - started;
              timing = false;
            }
          },
        },
        {
          name: journalOnlyName,
          fn: async () => {
            skipping = true;
            try {
              return await durableRoundTrips(journalOnly.engine, journalOnly.accounts, roundTripsPerClient);
            } finally {
              skipping = false;
            }
          },
        },
        {
          name: storingNothingName,
          fn: () => durableRoundTrips(storingNothing, storingNothingAccounts, roundTripsPerClient),
        },
      ],
      { warmupRuns: 1, runs },
    );
    const [memory, wholeMeasurement, journalOnlyMeasurement, storingNothingMeasurement] = measured as [
      Measurement,
      Measurement,
      Measurement,
      Measurement,
    ];
    const microsecondsPerOrder = (nanoseconds: bigint) => Number(nanoseconds) / 1000 / timedOrders;
    const statementMicroseconds = [...times]
      .map(([kind, nanoseconds]) => ({ kind, microseconds: microsecondsPerOrder(nanoseconds) }))
      .sort((left, right) => right.microseconds - left.microseconds);
    const inStatements = statementMicroseconds.reduce((sum, entry) => sum + entry.microseconds, 0);
    const perOrder = microsecondsPerOrder(timedNanoseconds);
    const goal = DURABLE_RATIO_GOAL * memory.perSecond;
    return [
      row("store.breakdown", "orders/s", wholeMeasurement, memory, {
        goal,
        note:
          `per order ${perOrder.toFixed(1)} µs over all its runs (warm-up included), of which SQLite statements ${inStatements.toFixed(1)} µs: ` +
          statementMicroseconds
            .filter((entry) => entry.microseconds >= 0.05)
            .map((entry) => `${entry.kind} ${entry.microseconds.toFixed(2)}`)
            .join(", ") +
          `; the rest (engine, encoding, bookkeeping) ${(perOrder - inStatements).toFixed(1)} µs`,
      }),
      row("store.breakdown", "orders/s", journalOnlyMeasurement, memory, {
        goal,
        note: `per order ${(1e6 / journalOnlyMeasurement.perSecond).toFixed(1)} µs: the journal's row, its COMMIT and the durable engine's own work, nothing else; what no read-model work can beat on this machine`,
      }),
      row("store.breakdown", "orders/s", storingNothingMeasurement, memory, {
        goal,
        note: `per order ${(1e6 / storingNothingMeasurement.perSecond).toFixed(1)} µs against the in-memory engine's ${(1e6 / memory.perSecond).toFixed(1)} µs: the executing engine, the follower folding each batch again, the answers and the encoding; what no storage can beat on this machine`,
      }),
    ];
  } finally {
    for (const engine of engines) await engine.close();
    for (const restore of restorers) restore();
  }
}

export const storeBreakdownGroup: BenchGroup = {
  name: "store.breakdown",
  description:
    "where a durable order's time goes (SQLite statements per order) and the journal alone, beside in-memory",
  run: (context) => inTempDirectory((directory) => breakdownBenchmarks(context, directory))(),
};
