/**
 * Durable storage benchmarks (packages/store), beside the in-memory engine in the same run:
 *
 * - store.orders, durable orders/s: 1,000 clients (one funded account each) open a market order and
 *   close its position again and again through `DurableEngine.submit`, each awaiting its own answer
 *   only, so 1,000 commands are always in flight and group commit gathers them into batches (one
 *   transaction and one fsync each; at most 500 commands, the next handed over while one is written).
 *   Over SQLite (a temp file, WAL, synchronous=FULL; written on the engine's thread and by the
 *   journal's writer thread, one row each) and PostgreSQL
 *   (BOURSE_TEST_PG_URL, a fresh schema dropped afterwards; the row is skipped without it). Baseline:
 *   the same command mix through the in-memory engine (`tradeRoundTrips`), interleaved round by round.
 * - store.recovery, the time `DurableEngine.open` takes to recover a SQLite journal of 1,000,000
 *   events from a closed file, without a snapshot (everything replayed) and with one 100,000 events
 *   before the end (the default snapshot interval's worst case). Baseline: folding the same events
 *   from an array with `TradingEngine.replay`. Reported as journal events recovered per second, so
 *   the goal (under 3 s) reads as ≥ 333 k events/s; the seconds are in the notes.
 *
 * Everything is built before timing. The journal of 1,000,000 events is built once: the events come
 * from the in-memory engine (the same order flow), and are appended in batches of 1,500 (one journal row
 * each, as group commit makes them from 1,000 commands in flight).
 */
import { copyFileSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import {
  TradingEngine,
  defaultEngineConfig,
  type Command,
  type CommandResult,
  type CommandSuccess,
  type EngineConfig,
  type EngineEvent,
  type PlaceOrderCommand,
  type StateSnapshot,
} from "@bourse/core";
import {
  DurableEngine,
  PostgresJournal,
  SqliteJournal,
  type DurableCommandResult,
  type EventJournal,
  type JournalRecord,
} from "@bourse/store";
import pg from "pg";
import { MARKETS, START, buildOrderFlow, tradeRoundTrips } from "./engine.ts";
import {
  measureTogetherAsync,
  row,
  type BenchContext,
  type BenchGroup,
  type Measurement,
  type Row,
} from "./harness.ts";

/** Goals stated by the issue. */
export const DURABLE_RATIO_GOAL = 0.3;
export const RECOVERY_GOAL_SECONDS = 3;

export const DURABLE_FLOW = {
  /** Clients, one account each, each with one command in flight. */
  clients: 1_000,
  /** Open + close pairs per client per timed run. */
  roundTripsPerClient: 20,
  runs: 5,
};

export const RECOVERY = {
  events: 1_000_000,
  /** Events after the snapshot in the "with snapshot" journal (the default snapshot interval). */
  eventsAfterSnapshot: 100_000,
  /**
   * Events per append: what group commit makes of 1,000 commands in flight (store.orders: batches of
   * DEFAULT_MAX_BATCH_COMMANDS, 500 orders, 3 events each), so the journal has the rows a server under that load
   * writes (one row per append).
   */
  appendBatch: 1_500,
  runs: 3,
};

const quiet = (): void => {};

/** The in-memory engine, recording every event its commands return (the journal's content). */
class RecordingEngine extends TradingEngine {
  readonly recorded: EngineEvent[] = [];
  override execute(command: Command): CommandResult {
    const result = super.execute(command);
    for (const event of result.events) this.recorded.push(event);
    return result;
  }
}

function mustSucceed(result: CommandResult, what: string): CommandSuccess {
  if (!result.ok) throw new Error(`${what} was rejected: ${result.code} ${result.message}`);
  return result;
}

/** Quotes and funded accounts on a durable engine, through `submit` like any client. */
export async function prepareDurable(engine: DurableEngine, clients: number): Promise<number[]> {
  const time = START - 60_000;
  for (const market of MARKETS)
    mustSucceed(
      await engine.submit({
        kind: "tick",
        time,
        symbol: market.symbol,
        bid: market.centreBid,
        ask: market.centreBid + market.spread,
      }),
      `quote ${market.symbol}`,
    );
  return Promise.all(
    Array.from({ length: clients }, async (_, index) => {
      const opened = mustSucceed(
        await engine.submit({
          kind: "openAccount",
          time,
          userId: `bench-${index}`,
          currency: "USD",
          leverage: 100,
          mode: "HEDGING",
        }),
        "openAccount",
      );
      const accountId = opened.accountId as number;
      mustSucceed(await engine.submit({ kind: "deposit", time, accountId, amount: 100_000_000 }), "deposit");
      return accountId;
    }),
  );
}

/** Every client opens and closes `roundTrips` times, awaiting only its own answers; both count as orders. */
export async function durableRoundTrips(
  engine: DurableEngine,
  accounts: readonly number[],
  roundTrips: number,
): Promise<number> {
  await Promise.all(
    accounts.map(async (accountId, client) => {
      for (let trip = 0; trip < roundTrips; trip++) {
        const market = MARKETS[(client + trip) % MARKETS.length]!;
        const open: PlaceOrderCommand = {
          kind: "placeOrder",
          time: START,
          accountId,
          symbol: market.symbol,
          side: (client + trip) % 2 === 0 ? "BUY" : "SELL",
          type: "MARKET",
          volume: 1,
        };
        const opened: DurableCommandResult = await engine.submit(open);
        if (!opened.ok || opened.positionId === undefined)
          throw new Error(`durable market order failed: ${opened.ok ? "no position" : opened.code}`);
        mustSucceed(
          await engine.submit({ kind: "closePosition", time: START, accountId, positionId: opened.positionId }),
          "durable close",
        );
      }
    }),
  );
  return accounts.length * roundTrips * 2;
}

export async function openDurable(journal: EventJournal, config: EngineConfig): Promise<DurableEngine> {
  return DurableEngine.open({ journal, config, log: quiet });
}

async function orderBenchmarks(context: BenchContext, directory: string): Promise<Row[]> {
  const { clients, roundTripsPerClient, runs } = DURABLE_FLOW;
  const config = defaultEngineConfig();
  const orders = clients * roundTripsPerClient * 2;
  const flow = buildOrderFlow(clients);
  const subjects: { name: string; fn: () => number | Promise<number> }[] = [
    { name: "in-memory engine, same orders", fn: () => tradeRoundTrips(flow, orders / 2).operations },
  ];
  const engines: DurableEngine[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  const notes = new Map<string, string>();
  let skippedPostgres: string | null = null;
  try {
    // Both ways of writing SQLite, side by side: on the engine's thread, and on a writer thread.
    for (const writer of ["inline", "worker"] as const) {
      const sqlitePath = join(directory, `orders-${writer}.sqlite`);
      context.log(`store: SQLite journal ${sqlitePath} (writer ${writer}), ${clients} funded accounts...`);
      // The writer thread as the server runs it: with the checkpoints on their own thread.
      const sqlite = await openDurable(
        new SqliteJournal({ path: sqlitePath, writer, ...(writer === "worker" ? { checkpoints: "thread" } : {}) }),
        config,
      );
      engines.push(sqlite);
      const sqliteAccounts = await prepareDurable(sqlite, clients);
      const name = `durable orders, SQLite (WAL, synchronous=FULL), writer ${writer}`;
      subjects.push({ name, fn: () => durableRoundTrips(sqlite, sqliteAccounts, roundTripsPerClient) });
      notes.set(
        name,
        writer === "worker"
          ? "a temp file, written by the journal's writer thread, checkpoints on their own thread (as the server)"
          : "a temp file, written on the engine's thread",
      );
    }

    const url = process.env.BOURSE_TEST_PG_URL;
    if (url) {
      const schema = `bench_${process.pid}_${Date.now()}`;
      const dropSchema = async () => {
        const client = new pg.Client({ connectionString: url });
        await client.connect();
        try {
          await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        } finally {
          await client.end();
        }
      };
      cleanups.push(dropSchema);
      context.log(`store: PostgreSQL journal in schema ${schema}, ${clients} funded accounts...`);
      const postgres = await openDurable(new PostgresJournal({ connectionString: url, schema }), config);
      engines.push(postgres);
      const postgresAccounts = await prepareDurable(postgres, clients);
      const name = "durable orders, PostgreSQL";
      subjects.push({ name, fn: () => durableRoundTrips(postgres, postgresAccounts, roundTripsPerClient) });
      notes.set(name, `${url.replace(/\/\/[^@/]*@/, "//")}, schema ${schema} (dropped afterwards)`);
    } else skippedPostgres = "BOURSE_TEST_PG_URL is not set: the PostgreSQL row is skipped";

    context.log(`store: measuring durable orders (${runs} rounds of ${orders} orders, ${clients} in flight)...`);
    const measured = await measureTogetherAsync(subjects, { warmupRuns: 1, runs });
    const [memory, ...durable] = measured as [Measurement, ...Measurement[]];
    const rows = durable.map((measurement) =>
      row("store.orders", "orders/s", measurement, memory, {
        goal: DURABLE_RATIO_GOAL * memory.perSecond,
        note: `${clients} commands in flight (one client per account, each awaiting its own answer), group commit; ${notes.get(measurement.name)}; goal: ${DURABLE_RATIO_GOAL * 100} % of the in-memory rate`,
      }),
    );
    if (skippedPostgres) {
      context.log(`store: ${skippedPostgres}`);
      const first = rows[0]!;
      rows[0] = { ...first, note: `${first.note}. ${skippedPostgres}` };
    }
    return rows;
  } finally {
    for (const engine of engines) await engine.close();
    for (const cleanup of cleanups) await cleanup();
  }
}

interface GeneratedJournal {
  readonly events: readonly EngineEvent[];
  readonly snapshot: { sequence: number; stateHash: string; state: StateSnapshot };
}

/** At least `count` events from the in-memory order flow (whole commands), with the state `eventsAfterSnapshot` before the end. */
function generateEvents(count: number, eventsAfterSnapshot: number): GeneratedJournal {
  const flow = buildOrderFlow(DURABLE_FLOW.clients, (config) => new RecordingEngine(config));
  const engine = flow.engine as RecordingEngine;
  const snapshotAt = count - eventsAfterSnapshot;
  while (engine.recorded.length < snapshotAt) tradeRoundTrips(flow, 1);
  const snapshot = { sequence: engine.recorded.length, stateHash: engine.stateHash(), state: engine.snapshot() };
  while (engine.recorded.length < count) tradeRoundTrips(flow, 1);
  return { events: engine.recorded, snapshot };
}

async function buildJournal(path: string, events: readonly EngineEvent[], batch: number): Promise<void> {
  const journal = new SqliteJournal({ path });
  await journal.open();
  try {
    for (let from = 0; from < events.length; from += batch) {
      const records: JournalRecord[] = [];
      for (let index = from; index < Math.min(events.length, from + batch); index++)
        records.push({ sequence: index + 1, event: events[index]! });
      await journal.append(records);
    }
  } finally {
    await journal.close();
  }
}

async function recoveryBenchmarks(context: BenchContext, directory: string): Promise<Row[]> {
  const { events: eventCount, eventsAfterSnapshot, appendBatch, runs } = RECOVERY;
  const config = defaultEngineConfig();
  let started = performance.now();
  context.log(`store: generating ${eventCount} events with the in-memory engine...`);
  const { events, snapshot } = generateEvents(eventCount, eventsAfterSnapshot);
  const generated = (performance.now() - started) / 1000;
  started = performance.now();
  const plain = join(directory, "recovery.sqlite");
  context.log(`store: appending ${events.length} events to ${plain} in batches of ${appendBatch}...`);
  await buildJournal(plain, events, appendBatch);
  const built = (performance.now() - started) / 1000;
  const withSnapshot = join(directory, "recovery-snapshot.sqlite");
  copyFileSync(plain, withSnapshot);
  const snapshotJournal = new SqliteJournal({ path: withSnapshot });
  await snapshotJournal.open();
  await snapshotJournal.saveSnapshot({ ...snapshot, createdAt: START });
  await snapshotJournal.close();
  const megabytes = statSync(plain).size / 2 ** 20;
  context.log(
    `store: events generated in ${generated.toFixed(1)} s, journal built in ${built.toFixed(1)} s (${megabytes.toFixed(0)} MiB)`,
  );

  const expectedHash = TradingEngine.replay(config, events).stateHash();
  const recover = async (path: string, expectedSnapshot: number | null) => {
    const engine = await openDurable(new SqliteJournal({ path }), config);
    const report = engine.recoveryReport;
    await engine.close();
    if (report.lastSequence !== events.length || report.snapshotSequence !== expectedSnapshot)
      throw new Error(`recovered to ${report.lastSequence} from snapshot ${report.snapshotSequence}`);
    if (report.stateHash !== expectedHash) throw new Error("recovery reached another state than the in-memory fold");
    return events.length;
  };
  context.log(`store: measuring recovery (${runs} rounds; each opens both journals from closed files)...`);
  const [baseline, without, withSnap] = (await measureTogetherAsync(
    [
      {
        name: "fold the same events in memory (TradingEngine.replay)",
        fn: () => (TradingEngine.replay(config, events), events.length),
      },
      { name: "recover 1M-event SQLite journal, no snapshot", fn: () => recover(plain, null) },
      {
        name: "recover 1M-event SQLite journal, snapshot 100k before the end",
        fn: () => recover(withSnapshot, snapshot.sequence),
      },
    ],
    { warmupRuns: 1, runs },
  )) as [Measurement, Measurement, Measurement];
  const seconds = (measurement: Measurement) => `${(events.length / measurement.perSecond).toFixed(2)} s`;
  const goal = events.length / RECOVERY_GOAL_SECONDS;
  const common = `${events.length} events (${megabytes.toFixed(0)} MiB file, in the page cache), DurableEngine.open to a ready engine, state hash checked; goal under ${RECOVERY_GOAL_SECONDS} s`;
  return [
    row("store.recovery", "events/s", without, baseline, {
      goal,
      note: `${seconds(without)} (in-memory fold ${seconds(baseline)}); ${common}`,
    }),
    row("store.recovery", "events/s", withSnap, baseline, {
      goal,
      note: `${seconds(withSnap)}; snapshot at ${snapshot.sequence}, ${events.length - snapshot.sequence} events replayed; ${common}`,
    }),
  ];
}

export function inTempDirectory(run: (directory: string) => Promise<Row[]>): () => Promise<Row[]> {
  return async () => {
    const directory = mkdtempSync(join(tmpdir(), "bourse-bench-"));
    try {
      return await run(directory);
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  };
}

export const storeOrdersGroup: BenchGroup = {
  name: "store.orders",
  description: "durable market orders/s through DurableEngine (SQLite, PostgreSQL) beside the in-memory engine",
  run: (context) => inTempDirectory((directory) => orderBenchmarks(context, directory))(),
};

export const storeRecoveryGroup: BenchGroup = {
  name: "store.recovery",
  description: "DurableEngine.open on a 1,000,000-event SQLite journal, with and without a snapshot",
  run: (context) => inTempDirectory((directory) => recoveryBenchmarks(context, directory))(),
};
