/**
 * The calling thread's side of the SQLite journal's writer thread (`writer: "worker"`): it hands the
 * encoded batches and snapshots to a worker (sqlite-writer-worker.ts) that owns the write connection,
 * and answers each write once the worker has committed it. The worker takes requests in order, one at a
 * time, so its answers come back in the order of the requests.
 */
import type { Worker } from "node:worker_threads";
import { JournalRecordError, JournalWriteError } from "./journal.ts";
import type { JournalBatchRow, SnapshotRow } from "./records.ts";
import type { SqliteJournalOptions } from "./sqlite-journal.ts";
import { startTypeScriptWorker } from "./worker-thread.ts";

/**
 * Writes handed to the thread and not yet answered, at most. The durable engine has one append and one
 * snapshot in flight; the bound keeps a caller that does not wait from queueing batches (up to
 * `MAX_APPEND_RECORDS` records each) without limit.
 */
export const MAX_WRITES_IN_FLIGHT = 16;

export type WriterRequest =
  | { readonly kind: "append"; readonly row: JournalBatchRow }
  | { readonly kind: "saveSnapshot"; readonly row: SnapshotRow }
  /** Not answered: the writes after it reach the thread after it. */
  | { readonly kind: "setMaxPageCount"; readonly pages: number }
  /** Answered by the thread ending, once the writes before it are done. */
  | { readonly kind: "close" };

export type WriterReply = { readonly kind: "ready" } | { readonly kind: "written" } | WriteFailure;

/** A refused write, as it crosses the thread boundary (the errors' classes do not survive a structured clone). */
export type WriteFailure =
  | { readonly kind: "recordRefused"; readonly sequence: number; readonly detail: string }
  | {
      readonly kind: "writeFailed";
      readonly message: string;
      readonly outcomeUnknown: boolean;
      readonly cause: unknown;
    };

/** What the worker sends for an error its write threw. */
export function describeFailure(error: unknown): WriteFailure {
  if (error instanceof JournalRecordError)
    return { kind: "recordRefused", sequence: error.sequence, detail: error.detail };
  if (error instanceof JournalWriteError)
    return {
      kind: "writeFailed",
      message: error.message,
      outcomeUnknown: error.outcomeUnknown,
      cause: cloneable(error.cause),
    };
  // Not one of the write's own errors: a bug in the writer, at any point of the write, so it may have committed.
  return {
    kind: "writeFailed",
    message: `the SQLite writer thread failed: ${String(error)}`,
    outcomeUnknown: true,
    cause: cloneable(error),
  };
}

/** An error crosses as an Error (its message and stack); anything else as its text, which always can. */
function cloneable(cause: unknown): unknown {
  return cause instanceof Error || cause === undefined ? cause : String(cause);
}

function failureError(failure: WriteFailure): Error {
  return failure.kind === "recordRefused"
    ? new JournalRecordError(failure.sequence, failure.detail)
    : new JournalWriteError(failure.message, failure.outcomeUnknown, { cause: failure.cause });
}

interface PendingWrite {
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

const ENTRY_URL = new URL("./sqlite-writer-worker.ts", import.meta.url).href;

export class SqliteWriterThread {
  private worker: Worker | null = null;
  /** True once the worker has opened its connection: the write at the head of `pending` may then be under way. */
  private workerReady = false;
  private readonly pending: PendingWrite[] = [];
  private maxPageCount: number | undefined;

  private constructor(private readonly options: SqliteJournalOptions) {
    this.maxPageCount = options.maxPageCount;
  }

  /** Starts the thread and resolves once it has opened its write connection. */
  static async start(options: SqliteJournalOptions): Promise<SqliteWriterThread> {
    const thread = new SqliteWriterThread(options);
    const worker = thread.spawn();
    await new Promise<void>((resolve, reject) => {
      const failed = (error: unknown) => reject(error instanceof Error ? error : new Error(String(error)));
      worker.once("error", failed);
      worker.once("exit", (code) =>
        failed(new Error(`the SQLite writer thread ended (exit code ${code}) before it opened the journal`)),
      );
      worker.once("message", () => {
        worker.off("error", failed);
        worker.removeAllListeners("exit");
        worker.on("exit", (code) => thread.ended(worker, code));
        worker.unref();
        resolve();
      });
    });
    return thread;
  }

  append(row: JournalBatchRow): Promise<void> {
    return this.request({ kind: "append", row });
  }

  saveSnapshot(row: SnapshotRow): Promise<void> {
    return this.request({ kind: "saveSnapshot", row });
  }

  setMaxPageCount(pages: number): void {
    this.maxPageCount = pages;
    this.worker?.postMessage({ kind: "setMaxPageCount", pages } satisfies WriterRequest);
  }

  /** Resolves once the writes already handed over are answered and the thread has ended. */
  async close(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    worker.ref();
    const ended = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
    worker.postMessage({ kind: "close" } satisfies WriterRequest);
    await ended;
  }

  private request(request: WriterRequest): Promise<void> {
    if (this.pending.length >= MAX_WRITES_IN_FLIGHT)
      return Promise.reject(
        new JournalWriteError(`${MAX_WRITES_IN_FLIGHT} writes are already waiting for the SQLite writer thread`, false),
      );
    // A thread that died (its writes were refused) is replaced at the next write: the journal works again.
    const worker = this.worker ?? this.spawnAfterFailure();
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ resolve, reject });
      // Held while a write is in flight, so the process waits for it; not while idle, so an unclosed journal
      // does not keep a process alive.
      worker.ref();
      worker.postMessage(request);
    });
  }

  private spawn(): Worker {
    const worker = startTypeScriptWorker(ENTRY_URL, { ...this.options, maxPageCount: this.maxPageCount });
    this.worker = worker;
    this.workerReady = false;
    worker.on("message", (reply: WriterReply) => this.answer(reply));
    // An uncaught error ends the thread: `exit` follows and refuses what was in flight.
    worker.on("error", () => undefined);
    return worker;
  }

  private spawnAfterFailure(): Worker {
    const worker = this.spawn();
    worker.on("exit", (code) => this.ended(worker, code));
    return worker;
  }

  private answer(reply: WriterReply): void {
    if (reply.kind === "ready") {
      this.workerReady = true;
      return;
    }
    const write = this.pending.shift();
    if (this.pending.length === 0) this.worker?.unref();
    if (!write) return;
    if (reply.kind === "written") write.resolve();
    else write.reject(failureError(reply));
  }

  /** The thread ended: after `close`, as asked; otherwise it died, and the writes it had not answered are refused. */
  private ended(worker: Worker, exitCode: number): void {
    if (this.worker !== worker) return;
    this.worker = null;
    const writes = this.pending.splice(0);
    writes.forEach((write, index) => {
      // Only the write at the head can have been under way (the thread takes them one at a time), and only
      // once the thread was ready: it may have committed. The others never started.
      const outcomeUnknown = index === 0 && this.workerReady;
      write.reject(
        new JournalWriteError(
          `the SQLite writer thread ended (exit code ${exitCode}) before it answered the write${outcomeUnknown ? "" : "; nothing of it was written"}`,
          outcomeUnknown,
        ),
      );
    });
  }
}
