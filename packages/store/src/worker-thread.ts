/**
 * Worker threads of the SQLite drivers (the journal's writer, the platform store's derived-data writer):
 * starting one whose entry module is TypeScript, and `OrderedWorker`, the calling side of a thread that
 * takes requests in order, one at a time, and answers each in that order.
 */
import { Worker } from "node:worker_threads";

/**
 * The worker runs TypeScript without a build step: tsx's loader is registered inside it before the module is
 * imported (Node 20 does not hand a worker the loader of an `--import` flag in time for its entry module).
 */
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

/** The first message every such thread sends, once it has opened what it works on. */
export interface ReadyReply {
  readonly kind: "ready";
}

export interface OrderedWorkerOptions {
  /** What the thread is, for messages ("the SQLite writer thread"). */
  readonly name: string;
  readonly entryUrl: string;
  /** Its `workerData.options`, read at each start (a thread started after a failure gets the current value). */
  readonly data: () => unknown;
  /** Requests handed over and not yet answered, at most: a caller that does not wait cannot queue without limit. */
  readonly maxInFlight: number;
  /** The refusal of a request over that bound. */
  readonly overloaded: () => Error;
  /**
   * The refusal of a request the thread never answered because it ended: `mayHaveRun` when it was the one at
   * the head and the thread was ready (it may have been under way, even done); the others never started.
   */
  readonly ended: (exitCode: number, mayHaveRun: boolean) => Error;
}

interface Pending<Reply> {
  readonly resolve: (reply: Reply) => void;
  readonly reject: (error: Error) => void;
}

export class OrderedWorker<Request, Reply> {
  private worker: Worker | null = null;
  /** True once the thread sent `ready`: the request at the head of `pending` may then be under way. */
  private workerReady = false;
  private readonly pending: Pending<Reply>[] = [];

  constructor(private readonly options: OrderedWorkerOptions) {}

  /** Starts the thread; resolves once it is ready, rejects if it fails or ends before. */
  async start(): Promise<void> {
    const worker = this.spawn();
    await new Promise<void>((resolve, reject) => {
      const failed = (error: unknown) => reject(error instanceof Error ? error : new Error(String(error)));
      worker.once("error", failed);
      worker.once("exit", (code) =>
        failed(new Error(`${this.options.name} ended (exit code ${code}) before it was ready`)),
      );
      worker.once("message", () => {
        worker.off("error", failed);
        worker.removeAllListeners("exit");
        worker.on("exit", (code) => this.ended(worker, code));
        worker.unref();
        resolve();
      });
    });
  }

  /** Hands `request` over; resolves with the thread's answer to it. A thread that died is replaced first. */
  request(request: Request): Promise<Reply> {
    if (this.pending.length >= this.options.maxInFlight) return Promise.reject(this.options.overloaded());
    const worker = this.worker ?? this.spawnAfterFailure();
    return new Promise<Reply>((resolve, reject) => {
      this.pending.push({ resolve, reject });
      // Held while a request is in flight, so the process waits for it; not while idle, so an unclosed store
      // does not keep a process alive.
      worker.ref();
      worker.postMessage(request);
    });
  }

  /** Hands over a message the thread does not answer; it reaches the thread after the requests before it. */
  tell(message: Request): void {
    this.worker?.postMessage(message);
  }

  /** Sends `message` (the thread's close) and resolves once the requests before it are answered and the thread ended. */
  async close(message: Request): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    worker.ref();
    const ended = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
    worker.postMessage(message);
    await ended;
  }

  private spawn(): Worker {
    const worker = startTypeScriptWorker(this.options.entryUrl, this.options.data());
    this.worker = worker;
    this.workerReady = false;
    worker.on("message", (reply: Reply | ReadyReply) => this.answer(reply));
    // An uncaught error ends the thread: `exit` follows and refuses what was in flight.
    worker.on("error", () => undefined);
    return worker;
  }

  private spawnAfterFailure(): Worker {
    const worker = this.spawn();
    worker.on("exit", (code) => this.ended(worker, code));
    return worker;
  }

  private answer(reply: Reply | ReadyReply): void {
    if ((reply as ReadyReply).kind === "ready") {
      this.workerReady = true;
      return;
    }
    const request = this.pending.shift();
    if (this.pending.length === 0) this.worker?.unref();
    request?.resolve(reply as Reply);
  }

  /** The thread ended: after `close`, as asked; otherwise it died, and the requests it had not answered are refused. */
  private ended(worker: Worker, exitCode: number): void {
    if (this.worker !== worker) return;
    this.worker = null;
    this.pending
      .splice(0)
      .forEach((request, index) => request.reject(this.options.ended(exitCode, index === 0 && this.workerReady)));
  }
}
