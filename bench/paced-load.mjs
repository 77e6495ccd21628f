// Open-loop load at a steady rate for bench/http.ts, run as a child process like load-generator.mjs.
//
// Why not autocannon for this: its rate limit lets each connection send back to back until it has made
// its share of the second, then waits for the next second, so "2,000/s over 10 connections" is a burst at
// full speed for ~0.2 s each second; and its coordinated-omission correction takes ceil(1 / rate) as the
// expected interval in milliseconds (1 ms for any rate above 1/s). Here request i is due at start + i / rate;
// a ticker thread says when it is due and it is sent at once on one of `connections` keep-alive sockets (or
// waits for one), and its latency counts from when it was due: a late tick, a busy socket or a slow answer
// all count against the server, none is left out.
//
// Reads {url, connections, duration (s), rate (requests/s), requests?: [{method, path, headers, body}]} as
// JSON from argv[2] (a file path); prints {requests: {average, total}, latency: {p50, p90, p99, max, average}
// (ms), sendLateness: {p50, p99, max} (ms: how late requests left this process), non2xx, errors, timeouts}
// as JSON on stdout.
import http from "node:http";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { URL } from "node:url";
import { Worker } from "node:worker_threads";

/** Milliseconds on a clock both threads share (each thread's performance.now() has its own origin). */
const now = () => performance.timeOrigin + performance.now();

/** The ticker thread: posts the index of each request when it is due, in order. */
const TICKER = `
const { parentPort, workerData } = require("node:worker_threads");
const { performance } = require("node:perf_hooks");
const { start, intervalMs, total } = workerData;
const sleeper = new Int32Array(new SharedArrayBuffer(4));
for (let index = 0; index < total; index += 1) {
  const wait = start + index * intervalMs - (performance.timeOrigin + performance.now());
  if (wait > 0) Atomics.wait(sleeper, 0, 0, wait);
  parentPort.postMessage(index);
}
`;

const options = JSON.parse(readFileSync(process.argv[2], "utf8"));
const target = new URL(options.url);
const requests = options.requests ?? [{ method: "GET", path: target.pathname + target.search, headers: {} }];
const agent = new http.Agent({ keepAlive: true, maxSockets: options.connections });
const intervalMs = 1000 / options.rate;
const total = Math.round(options.rate * options.duration);
const latencies = new Float64Array(total);
/** How late each request left this process after it was due: the client's own share of its latency. */
const lateness = new Float64Array(total);
/** The first request is due a little after start: time for the ticker thread to start. */
const START_DELAY_MS = 100;
let sent = 0;
/** Set once the load starts; ends with it. */
let ticker;
let answered = 0;
let non2xx = 0;
let errors = 0;

const finished = new Promise((resolve) => {
  const complete = () => {
    answered += 1;
    if (answered === total) resolve();
  };

  function send(index, dueAt) {
    lateness[index] = now() - dueAt;
    const request = requests[index % requests.length];
    const outgoing = http.request(
      {
        agent,
        host: target.hostname,
        port: target.port,
        method: request.method,
        path: request.path,
        headers: request.headers,
      },
      (response) => {
        response.resume();
        response.on("end", () => {
          latencies[index] = now() - dueAt;
          if (response.statusCode < 200 || response.statusCode > 299) non2xx += 1;
          complete();
        });
      },
    );
    outgoing.on("error", () => {
      latencies[index] = Number.NaN;
      errors += 1;
      complete();
    });
    outgoing.end(request.body);
  }

  // A thread of its own says when each request is due: Atomics.wait sleeps to within a few tens of
  // microseconds, where this thread's timers fire up to a millisecond late, which would add up to a
  // millisecond to every latency measured from the due time.
  const start = now() + START_DELAY_MS;
  ticker = new Worker(TICKER, { eval: true, workerData: { start, intervalMs, total } });
  ticker.on("message", (due) => {
    while (sent <= due) {
      send(sent, start + sent * intervalMs);
      sent += 1;
    }
  });
});

const startedAt = now();
await finished;
const seconds = (now() - startedAt - START_DELAY_MS) / 1000;
const measured = Array.from(latencies)
  .filter((latency) => !Number.isNaN(latency))
  .sort((a, b) => a - b);
const at = (share, sorted = measured) =>
  sorted[Math.min(sorted.length - 1, Math.floor(share * sorted.length))] ?? Number.NaN;
const late = Array.from(lateness).sort((a, b) => a - b);
agent.destroy();
await ticker.terminate();
process.stdout.write(
  JSON.stringify({
    requests: { average: total / seconds, total },
    latency: {
      p50: at(0.5),
      p90: at(0.9),
      p99: at(0.99),
      max: measured.at(-1) ?? Number.NaN,
      average: measured.reduce((sum, latency) => sum + latency, 0) / measured.length,
    },
    sendLateness: { p50: at(0.5, late), p99: at(0.99, late), max: late.at(-1) ?? Number.NaN },
    non2xx,
    errors,
    timeouts: 0,
  }),
);
