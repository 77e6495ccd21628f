// The steady clients' pacing (bench/paced-load.mjs over HTTP, bench/store-latency.ts in process): a thread
// of its own says when each of `total` events is due, event i at start + i × intervalMs. Atomics.wait
// sleeps to within a few tens of microseconds, where the calling thread's timers fire up to a millisecond
// late, which would add up to a millisecond to every latency measured from the due time.
import { performance } from "node:perf_hooks";
import { Worker } from "node:worker_threads";

/** Milliseconds on a clock every thread shares (each thread's performance.now() has its own origin). */
export const sharedNow = () => performance.timeOrigin + performance.now();

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

/** Starts the ticker: `onDue(index)` for each event in order once it is due (on `sharedNow`'s clock). */
export function startTicker({ start, intervalMs, total }, onDue) {
  const ticker = new Worker(TICKER, { eval: true, workerData: { start, intervalMs, total } });
  ticker.on("message", onDue);
  return ticker;
}
