/**
 * The SQLite platform store's writer of derived data (`derivedWrites: "worker"`): notifications and candles,
 * which the server writes in bursts as trades fill and ticks arrive, are written by a thread with its own
 * connection to the same file (sqlite-derived-writer-worker.ts), so their inserts, COMMITs and the WAL
 * checkpoints those COMMITs run never stop the server's JavaScript thread. WAL lets the calling thread's
 * connection read beside it; the two connections take SQLite's write lock in turn (busy timeout), and each
 * write here is one short transaction.
 *
 * The thread takes requests in order, one at a time, so its answers come back in the order of the requests.
 * Its connection commits with synchronous=NORMAL (derived data: a power failure may cost the last ones, never
 * a trade; a crash of the process loses nothing committed).
 */
import type { Worker } from "node:worker_threads";
import { ConstraintViolation, type Row, type SqlStatement } from "./sql-platform-store.ts";
import { startTypeScriptWorker } from "./worker-thread.ts";

/** Writes handed to the thread and not yet answered, at most: a caller that does not wait cannot queue without limit. */
export const MAX_DERIVED_WRITES_IN_FLIGHT = 64;

export interface DerivedWriterOptions {
  readonly path: string;
  readonly busyTimeoutMilliseconds: number;
}

export type DerivedWriteRequest =
  | { readonly kind: "write"; readonly statements: readonly SqlStatement[] }
  /** Answered by the thread ending, once the writes before it are done. */
  | { readonly kind: "close" };

export type DerivedWriteReply =
  | { readonly kind: "ready" }
  | { readonly kind: "written"; readonly rows: Row[][] }
  | {
      readonly kind: "refused";
      /** A constraint the write broke (the store turns it into its typed error), or null for any other failure. */
      readonly constraint: ConstraintViolation["kind"] | null;
      readonly message: string;
    };

interface PendingWrite {
  readonly resolve: (rows: Row[][]) => void;
  readonly reject: (error: Error) => void;
}

const ENTRY_URL = new URL("./sqlite-derived-writer-worker.ts", import.meta.url).href;

export class SqliteDerivedWriter {
  private worker: Worker | null = null;
  private readonly pending: PendingWrite[] = [];

  private constructor(private readonly options: DerivedWriterOptions) {}

  /** Starts the thread and resolves once it has opened its connection. */
  static async start(options: DerivedWriterOptions): Promise<SqliteDerivedWriter> {
    const writer = new SqliteDerivedWriter(options);
    const worker = writer.spawn();
    await new Promise<void>((resolve, reject) => {
      const failed = (error: unknown) => reject(error instanceof Error ? error : new Error(String(error)));
      worker.once("error", failed);
      worker.once("exit", (code) =>
        failed(new Error(`the SQLite derived-data writer thread ended (exit code ${code}) before it opened the file`)),
      );
      worker.once("message", () => {
        worker.off("error", failed);
        worker.removeAllListeners("exit");
        worker.on("exit", (code) => writer.ended(worker, code));
        worker.unref();
        resolve();
      });
    });
    return writer;
  }

  /** Runs the statements in one transaction on the thread; each statement's rows, in order. */
  write(statements: readonly SqlStatement[]): Promise<Row[][]> {
    if (this.pending.length >= MAX_DERIVED_WRITES_IN_FLIGHT)
      return Promise.reject(
        new Error(`${MAX_DERIVED_WRITES_IN_FLIGHT} writes are already waiting for the SQLite derived-data writer`),
      );
    // A thread that died (its writes were refused) is replaced at the next write.
    const worker = this.worker ?? this.spawnAfterFailure();
    return new Promise<Row[][]>((resolve, reject) => {
      this.pending.push({ resolve, reject });
      // Held while a write is in flight, so the process waits for it; not while idle.
      worker.ref();
      worker.postMessage({ kind: "write", statements } satisfies DerivedWriteRequest);
    });
  }

  /** Resolves once the writes already handed over are answered and the thread has ended. */
  async close(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    worker.ref();
    const ended = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
    worker.postMessage({ kind: "close" } satisfies DerivedWriteRequest);
    await ended;
  }

  private spawn(): Worker {
    const worker = startTypeScriptWorker(ENTRY_URL, this.options);
    this.worker = worker;
    worker.on("message", (reply: DerivedWriteReply) => this.answer(reply));
    // An uncaught error ends the thread: `exit` follows and refuses what was in flight.
    worker.on("error", () => undefined);
    return worker;
  }

  private spawnAfterFailure(): Worker {
    const worker = this.spawn();
    worker.on("exit", (code) => this.ended(worker, code));
    return worker;
  }

  private answer(reply: DerivedWriteReply): void {
    if (reply.kind === "ready") return;
    const write = this.pending.shift();
    if (this.pending.length === 0) this.worker?.unref();
    if (!write) return;
    if (reply.kind === "written") write.resolve(reply.rows);
    else
      write.reject(
        reply.constraint === null ? new Error(reply.message) : new ConstraintViolation(reply.constraint, reply.message),
      );
  }

  /** The thread ended: after `close`, as asked; otherwise it died, and the writes it had not answered are refused. */
  private ended(worker: Worker, exitCode: number): void {
    if (this.worker !== worker) return;
    this.worker = null;
    for (const write of this.pending.splice(0))
      write.reject(new Error(`the SQLite derived-data writer thread ended (exit code ${exitCode}) before it answered`));
  }
}
