/**
 * kill -9 under load (issue 3): a child process runs a DurableEngine on a SQLite file and serves
 * commands as JSON lines (fixtures/durable-engine-server.ts). The test sends ticks, deposits, orders
 * and closes as fast as the child takes them, records every acknowledgement, SIGKILLs the child at a
 * random moment, restarts it on the same file and checks: every acknowledged operation is in the
 * journal exactly once, every account's ledger invariant holds (`verify`), and the state the child
 * recovered equals a fresh replay of the journal.
 *
 * BOURSE_CRASH_CYCLES sets the number of kills (5 by default; `npm run test:crash` runs 50).
 * BOURSE_CRASH_SEED replays a failing run (the seed is in every failure message).
 */
import { TradingEngine, defaultEngineConfig, type EngineEvent } from "@bourse/core";
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { SqliteJournal, ledgerBalance, verify } from "../src/index.ts";
import { TUESDAY_NOON } from "./trading-session.ts";

const cycles = Number(process.env.BOURSE_CRASH_CYCLES ?? 5);
if (!Number.isSafeInteger(cycles) || cycles < 1)
  throw new Error(`BOURSE_CRASH_CYCLES must be a positive integer, got ${process.env.BOURSE_CRASH_CYCLES}`);
const seed = Number(process.env.BOURSE_CRASH_SEED ?? Date.now() % 1_000_000_007);
const config = defaultEngineConfig();
const here = dirname(fileURLToPath(import.meta.url));
const serverPath = join(here, "fixtures", "durable-engine-server.ts");
/** Commands sent and not yet answered, at most: enough to keep every batch full, bounded so a kill loses little. */
const WINDOW_COMMANDS = 300;

/** mulberry32: a small seeded generator, so a failing run can be replayed. */
function random(seedValue: number): () => number {
  let state = seedValue >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4_294_967_296;
  };
}

interface Ready {
  readonly lastSequence: number;
  readonly stateHash: string;
  readonly time: number | null;
  readonly accounts: number[];
  readonly positions: [number, number][];
}

interface Answer {
  readonly id: number;
  readonly ok?: boolean;
  readonly code?: string;
  readonly error?: string;
  readonly accountId?: number;
  readonly positionId?: number;
  readonly operationId?: number;
  readonly dealIds?: number[];
}

/** A running child: its ready line, and every complete answer line it wrote. */
class Server {
  readonly child: ChildProcessWithoutNullStreams;
  readonly ready: Promise<Ready>;
  readonly exited: Promise<void>;
  private readonly answerHandlers = new Map<number, (answer: Answer) => void>();
  private buffered = "";
  private stderr = "";

  constructor(path: string) {
    this.child = spawn(process.execPath, ["--import", "tsx", serverPath, path], { stdio: "pipe" });
    let resolveReady!: (ready: Ready) => void;
    let rejectReady!: (error: Error) => void;
    this.ready = new Promise((resolve, reject) => {
      resolveReady = resolve;
      rejectReady = reject;
    });
    // A write still in the pipe when the child is killed fails with EPIPE: its commands were never
    // answered, which is all the test needs to know of them (an unhandled 'error' would fail the run).
    this.child.stdin.on("error", () => undefined);
    this.child.stderr.on("data", (chunk: Buffer) => {
      this.stderr += chunk.toString("utf8");
    });
    this.child.stdout.on("data", (chunk: Buffer) => {
      this.buffered += chunk.toString("utf8");
      let newline: number;
      // A line cut by the kill has no newline: it was never a complete answer.
      while ((newline = this.buffered.indexOf("\n")) >= 0) {
        const line = this.buffered.slice(0, newline);
        this.buffered = this.buffered.slice(newline + 1);
        const message = JSON.parse(line) as { type?: string; id?: number };
        if (message.type === "ready") resolveReady(message as unknown as Ready);
        else this.answerHandlers.get(message.id!)?.(message as Answer);
      }
    });
    this.exited = new Promise((resolve) => {
      this.child.on("exit", (code, signal) => {
        rejectReady(new Error(`the server exited (${code ?? signal}) before it was ready: ${this.stderr}`));
        resolve();
      });
    });
  }

  /** Sends a command; `onAnswer` runs when (if) the child answers it. */
  send(id: number, command: Record<string, unknown>, onAnswer: (answer: Answer) => void): boolean {
    this.answerHandlers.set(id, onAnswer);
    return this.child.stdin.write(`${JSON.stringify({ id, command })}\n`);
  }

  async kill(): Promise<void> {
    this.child.kill("SIGKILL");
    await this.exited;
  }

  async stop(): Promise<void> {
    this.child.stdin.end();
    await this.exited;
  }
}

/** What the clients were told: operations acknowledged as done, and every operation ever sent. */
interface Ledger {
  readonly acknowledgedDeposits: Set<string>;
  readonly acknowledgedOrders: Set<string>;
  readonly acknowledgedCloses: Set<string>;
  readonly acknowledgedDealIds: Set<number>;
  readonly sent: Set<string>;
}

async function readJournal(path: string): Promise<{ events: EngineEvent[]; journal: SqliteJournal }> {
  const journal = new SqliteJournal({ path });
  // Read beside the running child, which holds the writer lock: an inspection takes none.
  await journal.open({ keepTornTail: true });
  const events: EngineEvent[] = [];
  for (;;) {
    const records = await journal.read(events.length, 10_000);
    for (const record of records) events.push(record.event);
    if (records.length < 10_000) break;
  }
  return { events, journal };
}

/** The checks after each restart, before the child gets a command. */
async function checkRecovery(path: string, ready: Ready, told: Ledger, context: string): Promise<void> {
  const { events, journal } = await readJournal(path);
  try {
    expect(events.length, `${context}: the journal ends at the child's recovered sequence`).toBe(ready.lastSequence);
    expect(TradingEngine.replay(config, events).stateHash(), `${context}: recovered hash = replay`).toBe(
      ready.stateHash,
    );
    const counts = new Map<string, number>();
    const count = (key: string): void => {
      counts.set(key, (counts.get(key) ?? 0) + 1);
    };
    const dealCounts = new Map<number, number>();
    for (const event of events) {
      if (event.type === "BalanceOperation") count(`deposit:${event.comment}`);
      else if (event.type === "OrderAccepted") {
        if (event.order.clientOrderId) count(`order:${event.order.clientOrderId}`);
        if (event.order.closePositionId !== null && event.order.comment) count(`close:${event.order.comment}`);
      } else if (event.type === "DealExecuted") dealCounts.set(event.deal.id, (dealCounts.get(event.deal.id) ?? 0) + 1);
    }
    const once = (key: string): void => expect(counts.get(key) ?? 0, `${context}: ${key} exactly once`).toBe(1);
    for (const id of told.acknowledgedDeposits) once(`deposit:${id}`);
    for (const id of told.acknowledgedOrders) once(`order:${id}`);
    for (const id of told.acknowledgedCloses) once(`close:${id}`);
    for (const dealId of told.acknowledgedDealIds)
      expect(dealCounts.get(dealId) ?? 0, `${context}: deal ${dealId} exactly once`).toBe(1);
    // Unacknowledged operations may or may not have become durable, but never twice.
    for (const [key, value] of counts) expect(value, `${context}: ${key} at most once`).toBeLessThanOrEqual(1);
    const report = await verify(journal, config);
    expect(report.differences, `${context}: verify`).toEqual([]);
    for (const account of TradingEngine.replay(config, events).state.accounts.values()) {
      const { ledger } = account;
      expect(account.balance, `${context}: ledger invariant of account ${account.id}`).toBe(ledgerBalance(ledger));
    }
  } finally {
    await journal.close();
  }
}

/** Sends load until `stopAt` (a time from performance.now), then returns; acknowledgements go into `told`. */
async function load(server: Server, ready: Ready, told: Ledger, cycle: number, next: () => number, stopAt: number) {
  let time = Math.max(TUESDAY_NOON, ready.time ?? 0);
  let id = 0;
  let inFlight = 0;
  let price = 108_430;
  const positions: [number, number][] = [...ready.positions];
  const accounts = [...ready.accounts];
  let wake: (() => void) | null = null;
  const settle = (): void => {
    inFlight--;
    wake?.();
  };
  const submit = (command: Record<string, unknown>, onOk: (answer: Answer) => void = () => {}): void => {
    time += 10;
    id++;
    inFlight++;
    server.send(id, { ...command, time }, (answer) => {
      if (answer.ok) onOk(answer);
      settle();
    });
  };
  const tick = (): void => {
    price += Math.floor(next() * 21) - 10;
    submit({ kind: "tick", symbol: "EURUSD", bid: price, ask: price + 10 });
  };
  // Quotes are not journaled: a restarted engine needs one before it can trade.
  tick();
  if (accounts.length === 0)
    for (let index = 0; index < 3; index++)
      submit(
        { kind: "openAccount", userId: `client-${index}`, currency: "USD", leverage: 100, mode: "HEDGING" },
        (answer) => accounts.push(answer.accountId!),
      );
  let operation = 0;
  while (performance.now() < stopAt && server.child.exitCode === null) {
    if (inFlight >= WINDOW_COMMANDS || accounts.length === 0) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 5);
      });
      wake = null;
      continue;
    }
    operation++;
    const accountId = accounts[Math.floor(next() * accounts.length)]!;
    const choice = next();
    if (choice < 0.2) tick();
    else if (choice < 0.45) {
      const key = `dep-${cycle}-${operation}`;
      told.sent.add(key);
      submit({ kind: "deposit", accountId, amount: 100_000 + operation, comment: key }, () =>
        told.acknowledgedDeposits.add(key),
      );
    } else if (choice < 0.75 || positions.length === 0) {
      const key = `ord-${cycle}-${operation}`;
      told.sent.add(key);
      submit(
        {
          kind: "placeOrder",
          accountId,
          symbol: "EURUSD",
          side: next() < 0.5 ? "BUY" : "SELL",
          type: "MARKET",
          volume: 10,
          clientOrderId: key,
        },
        (answer) => {
          told.acknowledgedOrders.add(key);
          for (const dealId of answer.dealIds ?? []) told.acknowledgedDealIds.add(dealId);
          if (answer.positionId !== undefined) positions.push([accountId, answer.positionId]);
        },
      );
    } else {
      const [owner, positionId] = positions.splice(Math.floor(next() * positions.length), 1)[0]!;
      const key = `close-${cycle}-${operation}`;
      told.sent.add(key);
      submit({ kind: "closePosition", accountId: owner, positionId, comment: key }, (answer) => {
        told.acknowledgedCloses.add(key);
        for (const dealId of answer.dealIds ?? []) told.acknowledgedDealIds.add(dealId);
      });
    }
    // Yield now and then so answers are read while the load goes on.
    if (operation % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
}

describe("kill -9 under load", () => {
  const directory = mkdtempSync(join(tmpdir(), "bourse-crash-"));
  afterAll(() => rmSync(directory, { recursive: true, force: true }));

  it(
    `loses no acknowledged operation over ${cycles} SIGKILLs (seed ${seed})`,
    async () => {
      const path = join(directory, "journal.db");
      const next = random(seed);
      const told: Ledger = {
        acknowledgedDeposits: new Set(),
        acknowledgedOrders: new Set(),
        acknowledgedCloses: new Set(),
        acknowledgedDealIds: new Set(),
        sent: new Set(),
      };
      for (let cycle = 0; cycle <= cycles; cycle++) {
        const context = `seed ${seed}, cycle ${cycle}`;
        const server = new Server(path);
        try {
          const ready = await server.ready;
          await checkRecovery(path, ready, told, context);
          if (cycle === cycles) break;
          // Kill at a random moment of the load: 50 to 450 ms after it starts.
          const killAt = performance.now() + 50 + Math.floor(next() * 400);
          await load(server, ready, told, cycle, next, killAt);
          await server.kill();
        } finally {
          if (server.child.exitCode === null && server.child.signalCode === null) await server.stop();
        }
      }
      console.log(
        `crash run: ${told.acknowledgedDeposits.size} deposits, ${told.acknowledgedOrders.size} orders, ${told.acknowledgedCloses.size} closes acknowledged, ${told.sent.size} sent`,
      );
      // The run must have exercised something: acknowledged work of every kind.
      expect(told.acknowledgedDeposits.size).toBeGreaterThan(0);
      expect(told.acknowledgedOrders.size).toBeGreaterThan(0);
      expect(told.acknowledgedCloses.size).toBeGreaterThan(0);
    },
    30_000 + cycles * 5_000,
  );
});
