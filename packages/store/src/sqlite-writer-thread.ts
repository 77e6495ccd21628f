/**
 * The calling thread's side of the SQLite journal's writer thread (`writer: "worker"`): it hands the
 * encoded batches and snapshots to a worker (sqlite-writer-worker.ts) that owns the write connection,
 * and answers each write once the worker has committed it. The worker takes requests in order, one at a
 * time, so its answers come back in the order of the requests.
 */
import { JournalRecordError, JournalWriteError } from "./journal.ts";
import type { JournalBatchRow, SnapshotRow } from "./records.ts";
import type { SqliteJournalOptions } from "./sqlite-journal.ts";
import { OrderedWorker } from "./worker-thread.ts";

/**
 * Writes handed to the thread and not yet answered, at most. The durable engine has one append and one
 * snapshot in flight; the bound keeps a caller that does not wait from queueing batches without limit.
 */
export const MAX_WRITES_IN_FLIGHT = 16;

export type WriterRequest =
  /** The rows of one append (`encodeBatchRows`), written in one transaction. */
  | { readonly kind: "append"; readonly rows: readonly JournalBatchRow[] }
  | { readonly kind: "saveSnapshot"; readonly row: SnapshotRow }
  /** A PASSIVE checkpoint on the write connection, between two writes (sqlite-checkpointer.ts says when). */
  | { readonly kind: "checkpoint" }
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

const ENTRY_URL = new URL("./sqlite-writer-worker.ts", import.meta.url).href;

export class SqliteWriterThread {
  private maxPageCount: number | undefined;
  private readonly thread: OrderedWorker<WriterRequest, Exclude<WriterReply, { kind: "ready" }>>;

  private constructor(options: SqliteJournalOptions) {
    this.maxPageCount = options.maxPageCount;
    this.thread = new OrderedWorker({
      name: "the SQLite writer thread",
      entryUrl: ENTRY_URL,
      data: () => ({ ...options, maxPageCount: this.maxPageCount }),
      maxInFlight: MAX_WRITES_IN_FLIGHT,
      overloaded: () =>
        new JournalWriteError(`${MAX_WRITES_IN_FLIGHT} writes are already waiting for the SQLite writer thread`, false),
      // Only the write at the head can have been under way (the thread takes them one at a time), and only once
      // the thread was ready: it may have committed. The others never started.
      ended: (exitCode, mayHaveRun) =>
        new JournalWriteError(
          `the SQLite writer thread ended (exit code ${exitCode}) before it answered the write${mayHaveRun ? "" : "; nothing of it was written"}`,
          mayHaveRun,
        ),
    });
  }

  /** Starts the thread and resolves once it has opened its write connection. */
  static async start(options: SqliteJournalOptions): Promise<SqliteWriterThread> {
    const thread = new SqliteWriterThread(options);
    await thread.thread.start();
    return thread;
  }

  append(rows: readonly JournalBatchRow[]): Promise<void> {
    return this.write({ kind: "append", rows });
  }

  saveSnapshot(row: SnapshotRow): Promise<void> {
    return this.write({ kind: "saveSnapshot", row });
  }

  /** Copies what is left of the WAL into the database file, between the writes before it and after it. */
  checkpoint(): Promise<void> {
    return this.write({ kind: "checkpoint" });
  }

  setMaxPageCount(pages: number): void {
    this.maxPageCount = pages;
    this.thread.tell({ kind: "setMaxPageCount", pages });
  }

  /** Resolves once the writes already handed over are answered and the thread has ended. */
  close(): Promise<void> {
    return this.thread.close({ kind: "close" });
  }

  /** A write the thread refused comes back as the journal's own error (a thread that died: see `ended`). */
  private async write(request: WriterRequest): Promise<void> {
    const reply = await this.thread.request(request);
    if (reply.kind !== "written") throw failureError(reply);
  }
}
