/**
 * HTTP benchmarks (issue 4), on one real server listening on a local port (SQLite journal in a temp
 * directory, synchronous=FULL: every order is durable before its answer), driven from a child process
 * (so the load generator does not share the server's JavaScript thread):
 *
 * - http.orders, throughput (autocannon): market orders through `POST /api/v1/accounts/{login}/orders`
 *   with a JWT (authentication, ownership, validation, engine, journal and response all included),
 *   keep-alive, 50 connections, beside an empty route (`GET /bench/empty`, no auth) on the same server in
 *   the same run, and an authenticated no-op POST of the same shape (the HTTP work alone). Goal: at least
 *   50 % of the empty route's requests/s.
 * - http.orders, latency at a steady 2,000 orders/s (bench/paced-load.mjs, open loop, latency from each
 *   request's due time) beside the empty route at the same rate; goal p99 under 5 ms. autocannon's rate
 *   limit sends bursts (see paced-load.mjs), so its run is kept as a burst figure only.
 *
 * Orders alternate BUY and SELL 0.01 lot on netting accounts, so positions open and close and no
 * margin builds up, however long it runs. The clock is pinned to a Tuesday noon (markets open).
 */
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { monitorEventLoopDelay, performance, PerformanceObserver } from "node:perf_hooks";
import { promisify } from "node:util";
import { AccountIdParams } from "../packages/server/src/schemas.ts";
import { PlaceOrderBody } from "../packages/server/src/trading-service.ts";
import { createBenchServer } from "./bench-server.ts";
import {
  median,
  percentile,
  profileWhile,
  spreadOfRates,
  stealMeter,
  type BenchContext,
  type BenchGroup,
  type Row,
} from "./harness.ts";

export const HTTP_THROUGHPUT_RATIO_GOAL = 0.5;
export const HTTP_FIXED_RATE_ORDERS_PER_SECOND = 2_000;
export const HTTP_P99_GOAL_MILLISECONDS = 5;

const CONNECTIONS = Number(process.env.BOURSE_BENCH_HTTP_CONNECTIONS ?? 50);
const ACCOUNTS = 10;
/**
 * Connections of autocannon's rate-limited run. autocannon paces each connection on its own, so at 2,000/s over 50
 * connections the requests come in bursts and even the empty route shows a p99 of 10-60 ms; 10 connections (200
 * requests/s each) pace evenly enough that the empty route's p99 is ~3 ms, and still leave room for 5 ms answers.
 */
const FIXED_RATE_CONNECTIONS = Number(process.env.BOURSE_BENCH_HTTP_FIXED_CONNECTIONS ?? 10);
/**
 * Connections of the steady client (bench/paced-load.mjs), which paces the whole run, not each connection. An open-loop
 * client should not queue requests of its own: over 10 connections, a server answering in 2-3 ms (a slower machine)
 * keeps 5 of them busy on average at 2,000/s, and any hiccup left the rest waiting in the client for a connection.
 * As many as the throughput runs.
 */
const STEADY_CONNECTIONS = Number(process.env.BOURSE_BENCH_HTTP_STEADY_CONNECTIONS ?? 50);
const DURATION_SECONDS = Number(process.env.BOURSE_BENCH_HTTP_SECONDS ?? 8);
/**
 * The throughput runs (empty route, no-op POST, orders) take turns, round after round, and each ratio is the median of
 * the rounds' ratios: on a shared virtual machine the hypervisor's steal changes from one run to the next (0 to 50 % of
 * the CPU time within a minute here), and one run per route compared routes measured under different neighbours.
 */
const THROUGHPUT_ROUNDS = Number(process.env.BOURSE_BENCH_HTTP_ROUNDS ?? 3);
const THROUGHPUT_ROUND_SECONDS = Number(process.env.BOURSE_BENCH_HTTP_ROUND_SECONDS ?? 4);

interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number; average: number; p90?: number; max?: number };
  /** The steady client: how late requests left it after they were due (its own share of the latency), ms. */
  sendLateness?: { p50: number; p99: number; max: number };
  /** The steady client: its own CPU time during the run, in seconds. */
  cpuSeconds?: number;
  non2xx: number;
  errors: number;
  timeouts: number;
}

const execFileAsync = promisify(execFile);
/** The child process that drives a run: autocannon, or the steady open-loop client (bench/paced-load.mjs). */
const LOAD_GENERATORS = {
  autocannon: join(import.meta.dirname, "load-generator.mjs"),
  paced: join(import.meta.dirname, "paced-load.mjs"),
} as const;

interface LoadOptions {
  readonly url: string;
  readonly connections: number;
  readonly duration: number;
  /** autocannon: requests per second over all connections (its rate limit); absent: as fast as the server answers. */
  readonly overallRate?: number;
  /** The steady client: requests per second, each due at its time whatever the answers before it. */
  readonly rate?: number;
  readonly requests?: readonly { method: string; path: string; headers: Record<string, string>; body: string }[];
}

/** An autocannon summary with what the server process spent meanwhile. */
interface LoadResult extends AutocannonResult {
  /** Process CPU time (every thread: the JavaScript thread and the journal's writer thread), in seconds. */
  readonly serverCpuSeconds: number;
  /**
   * CPU time of the server's JavaScript thread alone, in seconds (NaN where /proc is missing): what a
   * request costs the one thread that parses, authenticates and answers every request.
   */
  readonly serverMainThreadCpuSeconds: number;
  /**
   * Time the JavaScript thread was not idle (event-loop utilisation), in seconds: its CPU time plus the
   * waits inside synchronous calls (an inline journal's fsync) and the time other processes held its core.
   */
  readonly serverMainThreadBusySeconds: number;
  /** The server's own time per request (Fastify's elapsed time, request received to response written), ms. */
  readonly served: Percentiles;
  /** How late the server's event loop ran a 1 ms timer during the run (ms): the stalls requests behind them wait out. */
  readonly eventLoopDelay: Percentiles;
  /**
   * Share of the machine's CPU time the hypervisor gave to others during the run (steal, from /proc/stat; NaN off
   * Linux): on a shared virtual machine a run with much steal measured the neighbours as much as the server.
   */
  readonly stealShare: number;
  /** Garbage-collection pauses of the server's JavaScript thread during the run. */
  readonly garbageCollection: {
    readonly pauses: number;
    readonly totalMilliseconds: number;
    readonly maxMilliseconds: number;
  };
}

interface Percentiles {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/** At most this many server-side timings are kept per run (a run at 100 k requests/s for 8 s fits). */
const MAX_SERVED_TIMINGS = 1_000_000;

/** The server's elapsed time of each answered request, collected by an onResponse hook between runs. */
class ServedTimings {
  private timings: number[] = [];

  record(milliseconds: number): void {
    if (this.timings.length < MAX_SERVED_TIMINGS) this.timings.push(milliseconds);
  }

  /** The percentiles of the timings since the last call, and a fresh start. */
  take(): Percentiles {
    const sorted = this.timings.sort((a, b) => a - b);
    this.timings = [];
    return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: sorted.at(-1) ?? Number.NaN };
  }
}

/** Clock ticks per second of /proc's CPU times (USER_HZ: 100 on Linux). */
const PROC_TICKS_PER_SECOND = 100;

/**
 * CPU time of this process's main thread so far, in seconds, from /proc (Node 20 has no per-thread CPU
 * time; `process.cpuUsage` adds up every thread, the journal's writer thread included). NaN off Linux.
 */
function mainThreadCpuSeconds(): number {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, "utf8");
    // The fields after the command name (in parentheses, which may hold spaces): utime and stime are 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / PROC_TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}

/**
 * Runs a load generator (autocannon, or the steady client for `rate`) in a child process (bench/load-generator.mjs) and returns its summary with what the server
 * spent and suffered meanwhile (CPU, its own time per request, event-loop delay, GC pauses).
 */
async function runLoad(
  generator: keyof typeof LOAD_GENERATORS,
  directory: string,
  served: ServedTimings,
  options: LoadOptions,
): Promise<LoadResult> {
  const optionsFile = join(directory, `load-${Date.now()}.json`);
  writeFileSync(optionsFile, JSON.stringify(options));
  served.take();
  const pauses: number[] = [];
  const gcObserver = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) pauses.push(entry.duration);
  });
  gcObserver.observe({ entryTypes: ["gc"] });
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const mainThreadCpuStart = mainThreadCpuSeconds();
  const eventLoopStart = performance.eventLoopUtilization();
  const cpuStart = process.cpuUsage();
  const steal = stealMeter();
  const { stdout } = await execFileAsync(process.execPath, [LOAD_GENERATORS[generator], optionsFile], {
    maxBuffer: 64 * 1024 * 1024,
  });
  const cpu = process.cpuUsage(cpuStart);
  const mainThreadCpu = mainThreadCpuSeconds() - mainThreadCpuStart;
  const eventLoop = performance.eventLoopUtilization(eventLoopStart);
  delay.disable();
  gcObserver.disconnect();
  const nanosecondsToMilliseconds = 1e-6;
  return {
    ...(JSON.parse(stdout) as AutocannonResult),
    serverCpuSeconds: (cpu.user + cpu.system) / 1e6,
    serverMainThreadCpuSeconds: mainThreadCpu,
    serverMainThreadBusySeconds: eventLoop.active / 1000,
    served: served.take(),
    stealShare: steal(),
    eventLoopDelay: {
      p50: delay.percentile(50) * nanosecondsToMilliseconds,
      p99: delay.percentile(99) * nanosecondsToMilliseconds,
      max: delay.max * nanosecondsToMilliseconds,
    },
    garbageCollection: {
      pauses: pauses.length,
      totalMilliseconds: pauses.reduce((sum, pause) => sum + pause, 0),
      maxMilliseconds: pauses.reduce((max, pause) => Math.max(max, pause), 0),
    },
  };
}

/** Milliseconds as printed: whole ones as they are (autocannon reports whole milliseconds), others to 0.01 ms. */
function formatMilliseconds(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(2);
}

/** The server's cost per request of a run: its JavaScript thread's CPU and busy time, and the whole process's CPU. */
function serverCost(result: LoadResult): string {
  const perRequest = (seconds: number) => ((seconds * 1e6) / result.requests.total).toFixed(0);
  const milliseconds = formatMilliseconds;
  const { served, eventLoopDelay, garbageCollection } = result;
  return (
    `server per request: JavaScript thread ${perRequest(result.serverMainThreadCpuSeconds)} µs CPU, ${perRequest(result.serverMainThreadBusySeconds)} µs busy; process ${perRequest(result.serverCpuSeconds)} µs CPU; ` +
    `server's own time p50 ${milliseconds(served.p50)} / p99 ${milliseconds(served.p99)} / max ${milliseconds(served.max)} ms; ` +
    `event-loop delay p99 ${milliseconds(eventLoopDelay.p99)} / max ${milliseconds(eventLoopDelay.max)} ms; ` +
    `${garbageCollection.pauses} GC pauses, ${garbageCollection.totalMilliseconds.toFixed(0)} ms in all, longest ${milliseconds(garbageCollection.maxMilliseconds)} ms` +
    (result.cpuSeconds === undefined ? "" : `; client ${perRequest(result.cpuSeconds)} µs CPU per request`) +
    (Number.isNaN(result.stealShare)
      ? ""
      : `; steal ${(result.stealShare * 100).toFixed(0)} % of the machine's CPU time`)
  );
}

function perCpuSecond(result: LoadResult): number {
  return result.requests.total / result.serverCpuSeconds;
}

/**
 * One route's rounds as one result: totals and CPU summed, rates and percentiles the median of the rounds' (a
 * percentile of all requests would need every round's latencies), maxima the largest, steal the mean.
 */
function combineRounds(rounds: readonly LoadResult[]): LoadResult {
  const middle = (pick: (result: LoadResult) => number) => median(rounds.map(pick));
  const largest = (pick: (result: LoadResult) => number) => Math.max(...rounds.map(pick));
  const sum = (pick: (result: LoadResult) => number) => rounds.reduce((total, result) => total + pick(result), 0);
  const percentiles = (pick: (result: LoadResult) => Percentiles): Percentiles => ({
    p50: middle((result) => pick(result).p50),
    p99: middle((result) => pick(result).p99),
    max: largest((result) => pick(result).max),
  });
  return {
    requests: { average: middle((result) => result.requests.average), total: sum((result) => result.requests.total) },
    latency: {
      p50: middle((result) => result.latency.p50),
      p99: middle((result) => result.latency.p99),
      average: middle((result) => result.latency.average),
      max: largest((result) => result.latency.max ?? Number.NaN),
    },
    non2xx: sum((result) => result.non2xx),
    errors: sum((result) => result.errors),
    timeouts: sum((result) => result.timeouts),
    serverCpuSeconds: sum((result) => result.serverCpuSeconds),
    serverMainThreadCpuSeconds: sum((result) => result.serverMainThreadCpuSeconds),
    serverMainThreadBusySeconds: sum((result) => result.serverMainThreadBusySeconds),
    served: percentiles((result) => result.served),
    eventLoopDelay: percentiles((result) => result.eventLoopDelay),
    stealShare: sum((result) => result.stealShare) / rounds.length,
    garbageCollection: {
      pauses: sum((result) => result.garbageCollection.pauses),
      totalMilliseconds: sum((result) => result.garbageCollection.totalMilliseconds),
      maxMilliseconds: largest((result) => result.garbageCollection.maxMilliseconds),
    },
  };
}

/** The median over rounds of a route's rate divided by the baseline's rate in the same round. */
function medianRatio(rounds: readonly LoadResult[], baselineRounds: readonly LoadResult[]): number {
  return median(rounds.map((result, index) => result.requests.average / baselineRounds[index]!.requests.average));
}

async function httpOrders(context: BenchContext): Promise<Row[]> {
  const { server, dataDirectory, dispose } = await createBenchServer(context, "http");
  const served = new ServedTimings();
  server.app.addHook("onResponse", (_request, reply, done) => {
    served.record(reply.elapsedTime);
    done();
  });
  server.app.get("/bench/empty", { config: { auth: "public", rateLimit: false } }, async () => ({ data: "OK" }));
  // The order route's HTTP work without the platform's: the same path shape, authentication, ownership check,
  // rate limit and body schema, answering {"data":"OK"}. Orders minus this is what placing the order costs.
  server.app.post(
    "/bench/accounts/:accountId/orders",
    { schema: { params: AccountIdParams, body: PlaceOrderBody } },
    async (request) => {
      server.platform.ownedAccount(request.principal!.userId, Number(request.params.accountId));
      return { data: "OK" };
    },
  );
  try {
    const address = await server.listen();
    await server.platform.pushQuote({ symbol: "EURUSD", bid: 108_430, ask: 108_440 });
    const orderRequests: { method: "POST"; path: string; headers: Record<string, string>; body: string }[] = [];
    const noopRequests: typeof orderRequests = [];
    for (let index = 0; index < ACCOUNTS; index += 1) {
      const signup = await server.app.inject({
        method: "POST",
        url: "/api/v1/signup",
        payload: { email: `bench${index}@example.com`, password: "benchmark password", name: `Bench ${index}` },
      });
      const token = (signup.json() as { data: { token: string; user: { id: string } } }).data.token;
      const userId = (signup.json() as { data: { user: { id: string } } }).data.user.id;
      const account = await server.context.auth.openDemoAccount(userId, { mode: "NETTING" });
      await server.platform.execute({ kind: "deposit", accountId: account.id, amount: 100_000_000_00 });
      for (const side of ["BUY", "SELL"]) {
        orderRequests.push({
          method: "POST",
          path: `/api/v1/accounts/${account.id}/orders`,
          headers: { authorization: token, "content-type": "application/json" },
          body: JSON.stringify({ symbol: "EURUSD", side, type: "MARKET", volume: 0.01 }),
        });
        noopRequests.push({ ...orderRequests.at(-1)!, path: `/bench/accounts/${account.id}/orders` });
      }
    }
    const check = await server.app.inject({
      method: "POST",
      url: orderRequests[0]!.path,
      headers: orderRequests[0]!.headers,
      payload: orderRequests[0]!.body,
    });
    if (check.statusCode !== 200) throw new Error(`the order route answered ${check.statusCode}: ${check.body}`);

    // Each connection cycles through the list: every account's BUY then SELL, so nets stay near zero.
    const load = { connections: CONNECTIONS, duration: DURATION_SECONDS };
    const throughputLoad = { connections: CONNECTIONS, duration: THROUGHPUT_ROUND_SECONDS };
    const emptyRounds: LoadResult[] = [];
    const noopRounds: LoadResult[] = [];
    const orderRounds: LoadResult[] = [];
    for (let round = 1; round <= THROUGHPUT_ROUNDS; round += 1) {
      const each = `${CONNECTIONS} connections, ${THROUGHPUT_ROUND_SECONDS} s, round ${round} of ${THROUGHPUT_ROUNDS}`;
      context.log(`http: empty route, ${each}`);
      emptyRounds.push(
        await profileWhile(`http empty route round ${round}`, () =>
          runLoad("autocannon", dataDirectory, served, { ...throughputLoad, url: `${address}/bench/empty` }),
        ),
      );
      context.log(`http: authenticated no-op POST, ${each}`);
      noopRounds.push(
        await profileWhile(`http authenticated no-op round ${round}`, () =>
          runLoad("autocannon", dataDirectory, served, { ...throughputLoad, url: address, requests: noopRequests }),
        ),
      );
      context.log(`http: orders, ${each}`);
      orderRounds.push(
        await profileWhile(`http orders round ${round}`, () =>
          runLoad("autocannon", dataDirectory, served, { ...throughputLoad, url: address, requests: orderRequests }),
        ),
      );
    }
    const empty = combineRounds(emptyRounds);
    const noop = combineRounds(noopRounds);
    const orders = combineRounds(orderRounds);
    // The goal's latency: a steady 2,000 orders/s, open loop (bench/paced-load.mjs says why not autocannon's rate
    // limit), beside the empty route at the same rate: the floor of the client, the loopback and the HTTP layer.
    const fixedRate = { ...load, connections: STEADY_CONNECTIONS, rate: HTTP_FIXED_RATE_ORDERS_PER_SECOND };
    context.log(`http: orders at a steady ${HTTP_FIXED_RATE_ORDERS_PER_SECOND}/s, ${DURATION_SECONDS} s`);
    const steady = await profileWhile("http orders at a steady rate", () =>
      runLoad("paced", dataDirectory, served, { ...fixedRate, url: address, requests: orderRequests }),
    );
    context.log(`http: empty route at a steady ${HTTP_FIXED_RATE_ORDERS_PER_SECOND}/s, ${DURATION_SECONDS} s`);
    const emptySteady = await runLoad("paced", dataDirectory, served, {
      ...fixedRate,
      url: `${address}/bench/empty`,
    });
    // autocannon's own rate limit, kept for comparison with earlier runs: each second's 2,000 requests go as one
    // burst at full speed over the 10 connections, so this is the latency of bursts, not of a steady rate.
    context.log(`http: orders, autocannon rate limit ${HTTP_FIXED_RATE_ORDERS_PER_SECOND}/s, ${DURATION_SECONDS} s`);
    const bursts = await runLoad("autocannon", dataDirectory, served, {
      ...load,
      url: address,
      connections: FIXED_RATE_CONNECTIONS,
      requests: orderRequests,
      overallRate: HTTP_FIXED_RATE_ORDERS_PER_SECOND,
    });
    const failures = [orders, noop, steady, bursts].reduce((sum, result) => sum + result.non2xx + result.errors, 0);
    if (failures > 0) context.log(`http: ${failures} order requests failed or answered non-2xx`);
    const emptyRate = empty.requests.average;
    const ordersRatio = medianRatio(orderRounds, emptyRounds);
    const baseline = { name: "empty route (GET, no auth)", perSecond: emptyRate };
    const clientLateness = (result: LoadResult) =>
      result.sendLateness
        ? `requests left the client late by p50 ${milliseconds(result.sendLateness.p50)} / p99 ${milliseconds(result.sendLateness.p99)} / max ${milliseconds(result.sendLateness.max)} ms`
        : "";
    const milliseconds = formatMilliseconds;
    const latency = (result: LoadResult) =>
      `p50 ${milliseconds(result.latency.p50)} ms, p99 ${milliseconds(result.latency.p99)} ms; ${serverCost(result)}`;
    /** A row of the table: `result` is the run (or the route's rounds combined), `rounds` its runs. */
    const loadRow = (
      name: string,
      unit: string,
      result: LoadResult,
      rounds: readonly LoadResult[],
      extra: { ratio: number; note: string; goal?: number },
    ): Row => ({
      group: "http.orders",
      name,
      unit,
      perSecond: result.requests.average,
      perCpuSecond: perCpuSecond(result),
      spread: spreadOfRates(rounds.map((result) => result.requests.average)),
      samples: rounds.map((round) => round.requests.average),
      baseline,
      ...extra,
    });
    return [
      loadRow("empty route (GET, no auth)", "req/s", empty, emptyRounds, { ratio: 1, note: latency(empty) }),
      loadRow(
        `authenticated no-op POST, ${CONNECTIONS} connections (the order route's HTTP work)`,
        "req/s",
        noop,
        noopRounds,
        {
          ratio: medianRatio(noopRounds, emptyRounds),
          note: `${latency(noop)}; same auth, ownership check, rate limit and body schema as the order route; ${noop.non2xx} non-2xx`,
        },
      ),
      loadRow(`market orders, ${CONNECTIONS} connections (durable, JWT)`, "orders/s", orders, orderRounds, {
        ratio: ordersRatio,
        // The goal is a ratio, judged on the median of the rounds' ratios; the table wants a rate, so this is the rate at
        // which that ratio would be the goal (the median rates of two routes need not come from the same round).
        goal: (orders.requests.average / ordersRatio) * HTTP_THROUGHPUT_RATIO_GOAL,
        note: `${latency(orders)}; goal ≥ ${HTTP_THROUGHPUT_RATIO_GOAL * 100} % of the empty route; ${orders.non2xx} non-2xx`,
      }),
      loadRow(
        `empty route at a steady ${HTTP_FIXED_RATE_ORDERS_PER_SECOND}/s, ${STEADY_CONNECTIONS} connections`,
        "req/s",
        emptySteady,
        [emptySteady],
        {
          ratio: emptySteady.requests.average / emptyRate,
          note: `${latency(emptySteady)}; ${clientLateness(emptySteady)} (open loop, latency from when each request was due: the floor of the steady runs)`,
        },
      ),
      loadRow(
        `market orders at a steady ${HTTP_FIXED_RATE_ORDERS_PER_SECOND}/s, ${STEADY_CONNECTIONS} connections (durable, JWT)`,
        "orders/s",
        steady,
        [steady],
        {
          ratio: steady.requests.average / emptyRate,
          note: `${latency(steady)}; p90 ${milliseconds(steady.latency.p90 ?? Number.NaN)} ms, max ${milliseconds(steady.latency.max ?? Number.NaN)} ms; ${clientLateness(steady)} (goal p99 < ${HTTP_P99_GOAL_MILLISECONDS} ms: ${steady.latency.p99 < HTTP_P99_GOAL_MILLISECONDS ? "met" : "not met"}); ${steady.non2xx} non-2xx`,
        },
      ),
      loadRow(
        `market orders, autocannon rate limit ${HTTP_FIXED_RATE_ORDERS_PER_SECOND}/s (bursts), ${FIXED_RATE_CONNECTIONS} connections`,
        "orders/s",
        bursts,
        [bursts],
        {
          ratio: bursts.requests.average / emptyRate,
          note: `${latency(bursts)} (each second's quota sent back to back: the latency of bursts, not of a steady rate); ${bursts.non2xx} non-2xx`,
        },
      ),
    ];
  } finally {
    await dispose();
  }
}

export const httpOrdersGroup: BenchGroup = {
  name: "http.orders",
  description: "Order placement over HTTP (autocannon, keep-alive) beside an empty route on the same server",
  run: httpOrders,
};
