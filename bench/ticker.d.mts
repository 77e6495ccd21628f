import type { Worker } from "node:worker_threads";

/** Milliseconds on a clock every thread shares. */
export declare function sharedNow(): number;

/** Starts the ticker: `onDue(index)` for each event in order once it is due (on `sharedNow`'s clock). */
export declare function startTicker(
  schedule: { start: number; intervalMs: number; total: number },
  onDue: (index: number) => void,
): Worker;
