/**
 * Starting a worker thread whose entry module is TypeScript, without a build step: tsx's loader is
 * registered inside the worker before the module is imported (Node 20 does not hand a worker the loader of
 * an `--import` flag in time for its entry module). Used by the SQLite journal's writer thread and the SQLite
 * platform store's derived-data writer.
 */
import { Worker } from "node:worker_threads";

const BOOTSTRAP = `
const { workerData } = require("node:worker_threads");
import(workerData.tsxApiUrl).then(({ register }) => {
  register();
  return import(workerData.entryUrl);
});
`;

/** Starts `entryUrl` (a module URL) on a new thread; it reads `data` as `workerData.options`. */
export function startTypeScriptWorker(entryUrl: string, data: unknown): Worker {
  return new Worker(BOOTSTRAP, {
    eval: true,
    workerData: {
      // Resolved here, not when this module loads: a store that never starts a thread does not need tsx.
      tsxApiUrl: import.meta.resolve("tsx/esm/api"),
      entryUrl,
      options: data,
    },
  });
}
