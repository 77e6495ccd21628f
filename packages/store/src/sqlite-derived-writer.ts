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
import { ConstraintViolation, type Row, type SqlStatement } from "./sql-platform-store.ts";
import { OrderedWorker, type ReadyReply } from "./worker-thread.ts";

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
  | ReadyReply
  | { readonly kind: "written"; readonly rows: Row[][] }
  | {
      readonly kind: "refused";
      /** A constraint the write broke (the store turns it into its typed error), or null for any other failure. */
      readonly constraint: ConstraintViolation["kind"] | null;
      readonly message: string;
    };

const ENTRY_URL = new URL("./sqlite-derived-writer-worker.ts", import.meta.url).href;

export class SqliteDerivedWriter {
  private readonly thread: OrderedWorker<DerivedWriteRequest, Exclude<DerivedWriteReply, ReadyReply>>;

  private constructor(options: DerivedWriterOptions) {
    this.thread = new OrderedWorker({
      name: "the SQLite derived-data writer thread",
      entryUrl: ENTRY_URL,
      data: () => options,
      maxInFlight: MAX_DERIVED_WRITES_IN_FLIGHT,
      overloaded: () =>
        new Error(`${MAX_DERIVED_WRITES_IN_FLIGHT} writes are already waiting for the SQLite derived-data writer`),
      // The write at the head may have committed: derived data is written once and never retried, so either way
      // the caller only learns that it failed.
      ended: (exitCode) =>
        new Error(`the SQLite derived-data writer thread ended (exit code ${exitCode}) before it answered`),
    });
  }

  /** Starts the thread and resolves once it has opened its connection. */
  static async start(options: DerivedWriterOptions): Promise<SqliteDerivedWriter> {
    const writer = new SqliteDerivedWriter(options);
    await writer.thread.start();
    return writer;
  }

  /** Runs the statements in one transaction on the thread; each statement's rows, in order. */
  async write(statements: readonly SqlStatement[]): Promise<Row[][]> {
    const reply = await this.thread.request({ kind: "write", statements });
    if (reply.kind === "written") return reply.rows;
    throw reply.constraint === null
      ? new Error(reply.message)
      : new ConstraintViolation(reply.constraint, reply.message);
  }

  /** Resolves once the writes already handed over are answered and the thread has ended. */
  close(): Promise<void> {
    return this.thread.close({ kind: "close" });
  }
}
