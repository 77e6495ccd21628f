/**
 * WebSocket fan-out (issue 6), group `ws.fanout`: 1,000 sockets, each subscribed to the quotes of the
 * same 20 symbols, on one real server listening on a local port; the clients run in two child processes
 * (bench/ws-clients.mjs: raw frame counting, so they cost far less than the server and the server is
 * what is measured). Quotes are published straight onto the bus (`quotes.{SYMBOL}`), as market data
 * does, with a high-resolution `sentAt` in the payload for the tick-to-client latency.
 *
 * Two adapters over the same bus, in the same run and with the same clients:
 * - the native stream (`/api/v1/ws`): one serialisation per tick into a ready frame for every
 *   subscriber, per-socket conflation, one corked flush per socket per event-loop turn;
 * - a naive baseline (`/bench/naive`): one bus subscription per socket and symbol, `JSON.stringify`
 *   and `ws.send` per socket and tick.
 *
 * Two measurements each:
 * - throughput: every symbol ticks once per event-loop turn, as fast as the server goes; messages the
 *   clients received per second. Goal: the native stream ≥ 5× the baseline.
 * - latency at a realistic rate: 5 ticks/s per symbol (100 ticks/s, 100,000 messages/s to deliver);
 *   tick-to-client p50/p99 from `sentAt` (one message in 10 sampled). Goal: native p99 < 20 ms.
 *
 * BOURSE_BENCH_WS_SOCKETS, BOURSE_BENCH_WS_SECONDS tune the size and the duration of each window.
 */
import { fork, type ChildProcess } from "node:child_process";
import type { IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { WebSocketServer } from "ws";
import { defaultEngineConfig, type InstrumentSpec } from "../packages/core/src/index.ts";
import { BusTopics, type Bus } from "../packages/server/src/bus.ts";
import { BENCH_TUESDAY_NOON, createBenchServer } from "./bench-server.ts";
import type { UpgradeAdapter } from "../packages/server/src/upgrade-router.ts";
import { percentile, type BenchContext, type BenchGroup, type Row } from "./harness.ts";

export const WS_THROUGHPUT_RATIO_GOAL = 5;
export const WS_P99_GOAL_MILLISECONDS = 20;

const SOCKETS = Number(process.env.BOURSE_BENCH_WS_SOCKETS ?? 1000);
const SECONDS = Number(process.env.BOURSE_BENCH_WS_SECONDS ?? 4);
const SYMBOL_COUNT = 20;
const TICKS_PER_SYMBOL_PER_SECOND = 5;
const CLIENT_PROCESSES = 2;
const LATENCY_SAMPLE_EVERY = 10;

const clientScript = join(import.meta.dirname, "ws-clients.mjs");
const now = () => performance.timeOrigin + performance.now();

/** The baseline: what a first implementation does — per socket and tick, JSON.stringify and ws.send. */
class NaiveAdapter implements UpgradeAdapter {
  private readonly server = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  constructor(private readonly bus: Bus) {}

  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer, url: URL): void {
    this.server.handleUpgrade(request, socket, head, (ws) => {
      const symbols = (url.searchParams.get("symbols") ?? "").split(",").filter(Boolean);
      const unsubscribes = symbols.map((symbol) =>
        this.bus.subscribe(BusTopics.quotes(symbol), (_topic, message) =>
          ws.send(JSON.stringify({ type: message.type, payload: message.payload })),
        ),
      );
      ws.on("close", () => unsubscribes.forEach((unsubscribe) => unsubscribe()));
      ws.on("error", () => undefined);
      ws.send(JSON.stringify({ type: "subscribed", payload: { symbols, events: ["quoteEvent"] } }));
    });
  }

  async close(): Promise<void> {
    for (const client of this.server.clients) client.terminate();
    this.server.close();
  }
}

/** One child process of clients. */
class Clients {
  private readonly child: ChildProcess;
  private waiting: ((message: Record<string, unknown>) => void) | null = null;

  constructor() {
    this.child = fork(clientScript, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    this.child.on("message", (message: Record<string, unknown>) => {
      const resolve = this.waiting;
      this.waiting = null;
      resolve?.(message);
    });
  }

  ask(command: Record<string, unknown>): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      this.waiting = (message) => (message.error ? reject(new Error(String(message.error))) : resolve(message));
      this.child.send(command);
    });
  }

  close(): void {
    this.child.send({ cmd: "close" });
  }
}

interface Window {
  readonly messagesPerSecond: number;
  /** Server process CPU time (all threads) per delivered message, in microseconds. */
  readonly cpuMicrosPerMessage: number;
  /** Server process CPU time per wall second (1 = one core busy). */
  readonly serverCores: number;
  readonly p50: number;
  readonly p99: number;
  readonly samples: number;
}

async function measureWindow(groups: readonly Clients[], seconds: number, sampleEvery: number): Promise<Window> {
  await Promise.all(groups.map((clients) => clients.ask({ cmd: "reset", sampleEvery })));
  const started = performance.now();
  const cpu = process.cpuUsage();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const reports = await Promise.all(groups.map((clients) => clients.ask({ cmd: "report" })));
  const used = process.cpuUsage(cpu);
  const cpuMicros = used.user + used.system;
  const elapsed = (performance.now() - started) / 1000;
  const messages = reports.reduce((sum, report) => sum + (report.messages as number), 0);
  const latencies = reports.flatMap((report) => report.latencies as number[]).sort((a, b) => a - b);
  return {
    messagesPerSecond: messages / elapsed,
    cpuMicrosPerMessage: cpuMicros / Math.max(1, messages),
    serverCores: cpuMicros / 1e6 / elapsed,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    samples: latencies.length,
  };
}

/** Waits until the clients receive nothing more (what a saturated phase left in the buffers has drained). */
async function quiesce(groups: readonly Clients[]): Promise<void> {
  const deadline = performance.now() + 60_000;
  while (performance.now() < deadline) {
    await Promise.all(groups.map((clients) => clients.ask({ cmd: "reset", sampleEvery: 1000 })));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const reports = await Promise.all(groups.map((clients) => clients.ask({ cmd: "report" })));
    if (reports.every((report) => report.messages === 0)) return;
  }
}

interface Publisher {
  stop(): void;
  /** Ticks a steady publisher skipped because it had fallen more than `MAX_STEADY_BACKLOG_SECONDS` behind. */
  skipped(): number;
}

/**
 * How far behind its rate a steady publisher may fall before it skips ticks. Without a bound, an adapter slower than
 * the rate (the naive one on a slow machine) made each timer call owe more ticks than the last and never caught up:
 * the thread stayed in the publisher and the run never ended.
 */
const MAX_STEADY_BACKLOG_SECONDS = 0.1;

/** Every symbol once per event-loop turn, as fast as the server takes it. */
function saturate(bus: Bus, symbols: readonly string[]): Publisher {
  let running = true;
  let tick = 0;
  const turn = () => {
    if (!running) return;
    tick += 1;
    for (const symbol of symbols) publishQuote(bus, symbol, tick);
    setImmediate(turn);
  };
  setImmediate(turn);
  return {
    stop: () => {
      running = false;
    },
    skipped: () => 0,
  };
}

/** A fixed rate: `perSecond` ticks a second over the symbols in turn, in 10 ms steps. */
function steady(bus: Bus, symbols: readonly string[], perSecond: number): Publisher {
  let tick = 0;
  let owed = 0;
  let skipped = 0;
  let last = performance.now();
  const maxOwed = Math.max(1, MAX_STEADY_BACKLOG_SECONDS * perSecond);
  const timer = setInterval(() => {
    const current = performance.now();
    owed += ((current - last) / 1000) * perSecond;
    last = current;
    if (owed > maxOwed) {
      skipped += Math.floor(owed - maxOwed);
      owed = maxOwed;
    }
    while (owed >= 1) {
      owed -= 1;
      tick += 1;
      publishQuote(bus, symbols[tick % symbols.length]!, tick);
    }
  }, 10);
  return { stop: () => clearInterval(timer), skipped: () => skipped };
}

function publishQuote(bus: Bus, symbol: string, tick: number): void {
  const wobble = (tick % 10) / 100_000;
  bus.publish(BusTopics.quotes(symbol), {
    type: "quoteEvent",
    payload: {
      symbol,
      bid: Number((1.0843 + wobble).toFixed(5)),
      ask: Number((1.0844 + wobble).toFixed(5)),
      ts: new Date(BENCH_TUESDAY_NOON).toISOString(),
      sentAt: now(),
    },
  });
}

interface AdapterResult {
  readonly throughput: Window;
  readonly steady: Window;
  /** Ticks the steady phase skipped (the adapter could not keep up with the rate). */
  readonly skippedTicks: number;
}

async function wsFanout(context: BenchContext): Promise<Row[]> {
  const base = defaultEngineConfig();
  const eurusd = base.instruments.find((instrument) => instrument.symbol === "EURUSD")!;
  const extra: InstrumentSpec[] = [];
  for (let index = base.instruments.length; index < SYMBOL_COUNT; index += 1)
    extra.push({ ...eurusd, symbol: `EURUSD.${index}` });
  const engineConfig = { ...base, instruments: [...base.instruments, ...extra] };
  const symbols = engineConfig.instruments.slice(0, SYMBOL_COUNT).map((instrument) => instrument.symbol);
  const { server, dispose } = await createBenchServer(context, "ws", {
    engineConfig,
    stream: {
      pingIntervalMs: 600_000,
      maxPayloadBytes: 64 * 1024,
      // Every benchmark socket is the same user from one address, all connecting at once.
      maxSocketsPerUser: SOCKETS,
      maxSocketsPerAddress: SOCKETS,
      maxUnauthorizedSocketsPerAddress: SOCKETS,
    },
  });
  const bus = server.platform.bus;
  server.upgrades.register("/bench/naive", new NaiveAdapter(bus));
  try {
    await server.listen();
    const { port } = server.app.server.address() as AddressInfo;
    const signup = await server.app.inject({
      method: "POST",
      url: "/api/v1/signup",
      payload: { email: "bench-ws@example.com", password: "benchmark password", name: "Bench" },
    });
    const token = (signup.json() as { data: { token: string } }).data.token;
    const adapters = {
      naive: {
        url: `ws://127.0.0.1:${port}/bench/naive?symbols=${symbols.join(",")}`,
        subscribe: null,
      },
      native: {
        url: `ws://127.0.0.1:${port}/api/v1/ws?token=${encodeURIComponent(token)}`,
        subscribe: JSON.stringify({ type: "subscribe", payload: { symbols, events: ["quoteEvent"] } }),
      },
    };
    const results: Partial<Record<keyof typeof adapters, AdapterResult>> = {};
    for (const name of ["naive", "native"] as const) {
      const adapter = adapters[name];
      const groups = Array.from({ length: CLIENT_PROCESSES }, () => new Clients());
      try {
        context.log(`ws: ${name}: connecting ${SOCKETS} sockets × ${SYMBOL_COUNT} symbols`);
        await Promise.all(
          groups.map((clients) =>
            clients.ask({
              cmd: "connect",
              url: adapter.url,
              count: SOCKETS / CLIENT_PROCESSES,
              subscribe: adapter.subscribe,
            }),
          ),
        );
        context.log(`ws: ${name}: throughput, every symbol once per turn, ${SECONDS} s`);
        let publisher = saturate(bus, symbols);
        await new Promise((resolve) => setTimeout(resolve, 1000));
        const throughput = await measureWindow(groups, SECONDS, 1000);
        publisher.stop();
        await quiesce(groups);
        const rate = SYMBOL_COUNT * TICKS_PER_SYMBOL_PER_SECOND;
        context.log(`ws: ${name}: latency at ${rate} ticks/s (${rate * SOCKETS} messages/s), ${SECONDS} s`);
        publisher = steady(bus, symbols, rate);
        await new Promise((resolve) => setTimeout(resolve, 500));
        const fixed = await measureWindow(groups, SECONDS, LATENCY_SAMPLE_EVERY);
        publisher.stop();
        results[name] = { throughput, steady: fixed, skippedTicks: publisher.skipped() };
        context.log(
          `ws: ${name}: ${Math.round(throughput.messagesPerSecond)} msg/s saturated; at ${rate} ticks/s ` +
            `${Math.round(fixed.messagesPerSecond)} msg/s, p50 ${fixed.p50.toFixed(2)} ms, p99 ${fixed.p99.toFixed(2)} ms, ` +
            `server ${(fixed.serverCores * 100).toFixed(0)} % of a core`,
        );
      } finally {
        for (const clients of groups) clients.close();
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
    const naive = results.naive!;
    const native = results.native!;
    const baseline = {
      name: "naive: JSON.stringify + ws.send per socket",
      perSecond: naive.throughput.messagesPerSecond,
    };
    const latency = (result: AdapterResult) =>
      `saturated: ${result.throughput.cpuMicrosPerMessage.toFixed(2)} µs server CPU per message; ` +
      `at ${SYMBOL_COUNT * TICKS_PER_SYMBOL_PER_SECOND} ticks/s: ${Math.round(result.steady.messagesPerSecond)} msg/s ` +
      `delivered, tick-to-client p50 ${result.steady.p50.toFixed(2)} ms, p99 ${result.steady.p99.toFixed(2)} ms ` +
      `(${result.steady.samples} samples), server ${(result.steady.serverCores * 100).toFixed(0)} % of a core` +
      (result.skippedTicks > 0 ? `; could not keep up: ${result.skippedTicks} ticks skipped` : "");
    const row = (name: string, result: AdapterResult, extra: Partial<Row>): Row => ({
      group: "ws.fanout",
      name,
      unit: "msg/s",
      perSecond: result.throughput.messagesPerSecond,
      // The server's CPU only (this process; the sockets' clients are other processes).
      perCpuSecond: 1e6 / result.throughput.cpuMicrosPerMessage,
      spread: 0,
      samples: [result.throughput.messagesPerSecond],
      baseline,
      ratio: result.throughput.messagesPerSecond / naive.throughput.messagesPerSecond,
      ...extra,
    });
    return [
      row(`naive baseline, ${SOCKETS} sockets × ${SYMBOL_COUNT} symbols`, naive, { note: latency(naive) }),
      row(`native stream, ${SOCKETS} sockets × ${SYMBOL_COUNT} symbols`, native, {
        goal: naive.throughput.messagesPerSecond * WS_THROUGHPUT_RATIO_GOAL,
        note:
          `${latency(native)} (goal p99 < ${WS_P99_GOAL_MILLISECONDS} ms: ` +
          `${native.steady.p99 < WS_P99_GOAL_MILLISECONDS ? "met" : "not met"}); goal ≥ ${WS_THROUGHPUT_RATIO_GOAL}× the baseline`,
      }),
    ];
  } finally {
    await dispose();
  }
}

export const wsFanoutGroup: BenchGroup = {
  name: "ws.fanout",
  description: "Quote fan-out to 1,000 WebSocket clients (20 symbols each) beside a naive per-socket send",
  run: wsFanout,
};
