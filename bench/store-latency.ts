/**
 * store.latency: the latency of durable orders at a steady rate through `DurableEngine.submit` on the SQLite
 * journal's writer thread, with the WAL copied into the database file by SQLite's automatic checkpoint inside
 * a COMMIT (`checkpoints: "commit"`) and by a thread of its own (`checkpoints: "thread"`, the server's choice),
 * interleaved round by round; and, as the floor of both, the disk alone in the same run: a 64 KiB write and an
 * fdatasync at the rate the journal commits, on a preallocated file (as a reused WAL is).
 *
 * Open loop: each order is due at its time whatever the answers before it, a ticker thread says when (as for the
 * HTTP steady runs, bench/ticker.mjs), and its latency counts from then; how late orders left the client is
 * printed beside it (a timer-driven client, as this was before, added a millisecond to every order).
 * 1,000 funded accounts; each alternates a market order and the close of the position it opened. The files
 * are in the system's temporary directory (TMPDIR=/dev/shm takes the disk out: what is left is the code's).
 */
import { closeSync, fdatasyncSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { defaultEngineConfig, type Command } from "@bourse/core";
import { DurableEngine, SqliteJournal, type DurableCommandResult, type SqliteCheckpoints } from "@bourse/store";
import { MARKETS, START } from "./engine.ts";
import { median, percentile, spreadOfRates, type BenchContext, type BenchGroup, type Row } from "./harness.ts";
import { inTempDirectory, prepareDurable } from "./store.ts";
import { sharedNow, startTicker } from "./ticker.mjs";

const STEADY = {
  ordersPerSecond: Number(process.env.BOURSE_BENCH_STORE_LATENCY_RATE ?? 2000),
  seconds: Number(process.env.BOURSE_BENCH_STORE_LATENCY_SECONDS ?? 10),
  rounds: 2,
  accounts: 1000,
};
/** The disk probe: commits per second at 2,000 orders/s (about 3 orders an append, measured) and their size. */
const DISK_PROBE = { writesPerSecond: 700, bytes: 64 * 1024, fileBytes: 64 * 1024 * 1024 };
const GOAL_P99_MS = 5;

/** Percentiles of `sorted` (milliseconds, ascending) and the share over `over` ms. */
function describe(sorted: readonly number[], over: number): string {
  const firstOver = sorted.findIndex((value) => value > over);
  const share = firstOver === -1 ? 0 : (sorted.length - firstOver) / sorted.length;
  const ms = (q: number) => percentile(sorted, q).toFixed(2);
  return `p50 ${ms(0.5)} / p90 ${ms(0.9)} / p99 ${ms(0.99)} / p99.9 ${ms(0.999)} / max ${sorted.at(-1)?.toFixed(1)} ms, ${(share * 100).toFixed(2)} % over ${over} ms (${sorted.length} samples)`;
}

/** The first order is due a little after the ticker thread is asked to start. */
const START_DELAY_MS = 50;

/**
 * Orders at a steady rate for `seconds` on a fresh journal; every answer's latency from its due time, and how
 * late each order left the client (the ticker thread's wake-up and this thread's own delays: its share).
 */
async function steadyOrders(
  path: string,
  checkpoints: SqliteCheckpoints,
): Promise<{ run: Run; latencies: number[]; sendLateness: number[]; copies: string }> {
  const journal = new SqliteJournal({ path, writer: "worker", checkpoints });
  const engine = await DurableEngine.open({ journal, config: defaultEngineConfig(), log: () => undefined });
  try {
    const accounts = await prepareDurable(engine, STEADY.accounts);
    const openPositions = new Map<number, number>();
    const total = Math.round(STEADY.ordersPerSecond * STEADY.seconds);
    const intervalMs = 1000 / STEADY.ordersPerSecond;
    const latencies: number[] = [];
    const sendLateness: number[] = [];
    // Counted, not kept: 20,000 pending promises held to the end would survive every young-generation GC
    // and make the pauses (and the latencies) the bench's own.
    let unanswered = 0;
    let failures = 0;
    let sent = 0;
    let answeredAll!: () => void;
    let failed!: (error: unknown) => void;
    const everyAnswer = new Promise<void>((resolve, reject) => {
      answeredAll = resolve;
      failed = reject;
    });
    const finish = startRun();
    const start = sharedNow() + START_DELAY_MS;
    const allSent = new Promise<void>((resolve) => {
      const ticker = startTicker({ start, intervalMs, total }, (due) => {
        for (; sent <= due; sent++) {
          const dueAt = start + sent * intervalMs;
          sendLateness.push(sharedNow() - dueAt);
          const accountId = accounts[sent % accounts.length]!;
          const market = MARKETS[Math.floor(sent / accounts.length) % MARKETS.length]!;
          const positionId = openPositions.get(accountId);
          openPositions.delete(accountId);
          const command: Command =
            positionId === undefined
              ? {
                  kind: "placeOrder",
                  time: START,
                  accountId,
                  symbol: market.symbol,
                  side: "BUY",
                  type: "MARKET",
                  volume: 1,
                }
              : { kind: "closePosition", time: START, accountId, positionId };
          unanswered += 1;
          engine.submit(command).then((result: DurableCommandResult) => {
            latencies.push(sharedNow() - dueAt);
            if (!result.ok) failures += 1;
            else if (positionId === undefined && result.positionId !== undefined)
              openPositions.set(accountId, result.positionId);
            unanswered -= 1;
            if (unanswered === 0 && sent === total) answeredAll();
          }, failed);
        }
        if (sent === total) {
          if (unanswered === 0) answeredAll();
          void ticker.terminate().then(() => resolve());
        }
      });
    });
    await allSent;
    await everyAnswer;
    const run = finish(sent);
    // An order refused is not a latency: a few (a position closed by stop-out) would be noise, many a broken run.
    if (failures > sent / 100) throw new Error(`${failures} of ${sent} steady orders were refused`);
    const report = journal.checkpointReport();
    return {
      run,
      latencies,
      sendLateness,
      copies: report
        ? `WAL copies: ${report.byThread} by the thread, ${report.byWriter} rests by the writer, ${report.failed} failed`
        : "WAL copies: in the COMMITs that crossed 64 MiB",
    };
  } finally {
    await engine.close();
  }
}

/** The disk alone: writes of DISK_PROBE.bytes, each followed by fdatasync, at a steady rate. */
function diskProbe(path: string, seconds: number): { run: Run; latencies: number[] } {
  const descriptor = openSync(path, "w");
  try {
    writeSync(descriptor, Buffer.alloc(DISK_PROBE.fileBytes));
    fdatasyncSync(descriptor);
    const block = Buffer.alloc(DISK_PROBE.bytes, 1);
    const latencies: number[] = [];
    const finish = startRun();
    const start = performance.now();
    for (let write = 0; performance.now() - start < seconds * 1000; write++) {
      const dueAt = start + (write * 1000) / DISK_PROBE.writesPerSecond;
      while (performance.now() < dueAt) {
        // Busy-waits to the due time: a timer's granularity is the size of what is measured.
      }
      writeSync(descriptor, block, 0, block.length, (write * DISK_PROBE.bytes) % DISK_PROBE.fileBytes);
      fdatasyncSync(descriptor);
      latencies.push(performance.now() - dueAt);
    }
    return { run: finish(latencies.length), latencies };
  } finally {
    closeSync(descriptor);
  }
}

/** One timed run: what it did, over how long, with how much of the process's CPU time. */
interface Run {
  readonly operations: number;
  readonly seconds: number;
  readonly cpuSeconds: number;
}

/** Starts timing: the call it returns gives the run so far (CPU of every thread: the engine's, the writer's, the copies'). */
function startRun(): (operations: number) => Run {
  const cpuBefore = process.cpuUsage();
  const start = performance.now();
  return (operations) => {
    const cpu = process.cpuUsage(cpuBefore);
    return { operations, seconds: (performance.now() - start) / 1000, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
  };
}

interface Pooled {
  readonly latencies: number[];
  /** How late each order left the client (none for the disk alone). */
  readonly sendLateness: number[];
  readonly runs: Run[];
  /** Each round's p99 and max: one stall of the disk can make a round, and the pooled figures with it. */
  readonly rounds: string[];
  readonly notes: string[];
}

/** A row of rates (the steady rate held, per CPU second) whose note carries the latencies, the figure here. */
function latencyRow(name: string, unit: string, pooled: Pooled, baseline: { name: string; perSecond: number }): Row {
  const rates = pooled.runs.map((run) => run.operations / run.seconds);
  const perSecond = median(rates);
  const sorted = [...pooled.latencies].sort((a, b) => a - b);
  const p99 = percentile(sorted, 0.99);
  const late = [...pooled.sendLateness].sort((a, b) => a - b);
  const lateness =
    late.length === 0
      ? ""
      : `; orders left the client late by p50 ${percentile(late, 0.5).toFixed(2)} / p99 ${percentile(late, 0.99).toFixed(2)} / max ${late.at(-1)?.toFixed(1)} ms (its share of the latency)`;
  return {
    group: "store.latency",
    name,
    unit,
    perSecond,
    perCpuSecond: median(pooled.runs.map((run) => run.operations / run.cpuSeconds)),
    spread: spreadOfRates(rates),
    samples: rates,
    baseline,
    ratio: perSecond / baseline.perSecond,
    note: `${describe(sorted, GOAL_P99_MS)}; p99 ${p99 < GOAL_P99_MS ? "under" : "over"} ${GOAL_P99_MS} ms; rounds ${pooled.rounds.join(", ")}; ${pooled.notes.join("; ")}${lateness}`,
  };
}

async function latencyBenchmarks(context: BenchContext, directory: string): Promise<Row[]> {
  const { ordersPerSecond, seconds, rounds } = STEADY;
  const modes = ["commit", "thread"] as const;
  const pooled = new Map<SqliteCheckpoints | "disk", Pooled>(
    [...modes, "disk" as const].map((kind) => [
      kind,
      { latencies: [], sendLateness: [], runs: [], rounds: [], notes: [] },
    ]),
  );
  const pool = (
    kind: SqliteCheckpoints | "disk",
    latencies: number[],
    run: Run,
    note: string,
    sendLateness: number[] = [],
  ) => {
    const into = pooled.get(kind)!;
    into.latencies.push(...latencies);
    into.sendLateness.push(...sendLateness);
    into.runs.push(run);
    const sorted = [...latencies].sort((a, b) => a - b);
    into.rounds.push(`p99 ${percentile(sorted, 0.99).toFixed(2)} / max ${sorted.at(-1)?.toFixed(1)} ms`);
    if (!into.notes.includes(note)) into.notes.push(note);
  };
  for (let round = 1; round <= rounds; round++) {
    // Alternate which goes first: a run pays for the writeback of the files the run before it left behind.
    for (const mode of round % 2 === 1 ? modes : [...modes].reverse()) {
      context.log(
        `store: ${ordersPerSecond} durable orders/s for ${seconds} s, checkpoints ${mode}, round ${round} of ${rounds}`,
      );
      const result = await steadyOrders(join(directory, `latency-${mode}-${round}.sqlite`), mode);
      pool(mode, result.latencies, result.run, result.copies, result.sendLateness);
    }
    context.log(
      `store: the disk alone, ${DISK_PROBE.writesPerSecond} writes of 64 KiB + fdatasync a second, ${seconds} s`,
    );
    const disk = diskProbe(join(directory, `disk-probe-${round}`), seconds);
    pool("disk", disk.latencies, disk.run, "the floor under both: every append waits for one such fdatasync");
  }
  const rate = `${ordersPerSecond}/s`;
  const commitName = `durable orders at a steady ${rate}, checkpoints in the COMMIT (SQLite's own)`;
  const commitRates = pooled.get("commit")!.runs.map((run) => run.operations / run.seconds);
  const commitBaseline = { name: commitName, perSecond: median(commitRates) };
  const diskName = `the disk alone: 64 KiB write + fdatasync, ${DISK_PROBE.writesPerSecond}/s`;
  return [
    latencyRow(
      `durable orders at a steady ${rate}, checkpoints on a thread (the server's)`,
      "orders/s",
      pooled.get("thread")!,
      commitBaseline,
    ),
    latencyRow(commitName, "orders/s", pooled.get("commit")!, commitBaseline),
    latencyRow(diskName, "syncs/s", pooled.get("disk")!, {
      name: diskName,
      perSecond: median(pooled.get("disk")!.runs.map((run) => run.operations / run.seconds)),
    }),
  ];
}

export const storeLatencyGroup: BenchGroup = {
  name: "store.latency",
  description: "durable orders at a steady 2,000/s: checkpoints on a thread vs in the COMMIT, beside the disk alone",
  run: (context) => inTempDirectory((directory) => latencyBenchmarks(context, directory))(),
};
