/**
 * Checkpoints of the SQLite journal off the writer's path (`checkpoints: "thread"`).
 *
 * SQLite's automatic checkpoint runs inside the COMMIT that takes the WAL past its size
 * (https://www.sqlite.org/wal.html#automatic_checkpoint): one append in every 64 MiB of WAL waited while the
 * whole WAL was copied into the database file and fsynced. Measured on the writer thread at a steady 2,000
 * orders/s over HTTP: those COMMITs took 24-238 ms, most of it CPU (copying the pages), against 0.1 ms for
 * the others.
 *
 * Here the bulk of the WAL is copied by a thread of its own on its own connection, with a PASSIVE checkpoint,
 * which never takes the write lock: the writer goes on committing meanwhile. But SQLite starts the WAL over
 * from its beginning only when a write finds every frame in it copied, and the writer commits during the
 * thread's copy, so the thread alone would chase the WAL's end (each pass copying what was written during the
 * one before, two fsyncs each) or let it grow. So once the part not yet copied is small, the writer copies it
 * itself, between two of its writes: nothing is committed meanwhile, the copy is complete, and its next write
 * starts the WAL over. That pause is the tail of one pass (60-120 frames at 2,000 orders/s, 2-10 ms with its
 * two fsyncs) instead of the whole WAL.
 *
 * When: after each write this side reads the WAL-index header in the `-shm` file (its layout is documented
 * in https://www.sqlite.org/walformat.html: `mxFrame` at byte 16, `nBackfill` at byte 96, in the machine's
 * byte order) at most every CHECK_INTERVAL_MS. The thread copies when the frames not yet copied
 * reach `thresholdPages`, or, once a copy has started, while they are more than TAIL_FRACTION of it; the
 * writer copies a smaller rest. A header this code does not recognise (another WAL-index version) makes a
 * thread copy followed by the writer's due every FALLBACK_INTERVAL_MS instead.
 *
 * The writer keeps SQLite's automatic checkpoint as a backstop at a larger size (BACKSTOP_CHECKPOINT_PAGES in
 * sqlite-journal.ts): copies that fail or fall behind cost latency, never an unbounded WAL.
 */
import { closeSync, openSync, readSync } from "node:fs";
import { endianness } from "node:os";
import type { SqliteJournalOptions } from "./sqlite-journal.ts";
import { OrderedWorker } from "./worker-thread.ts";

/** How often, at most, a write looks at the WAL-index header. */
export const CHECK_INTERVAL_MS = 10;
/** How often a checkpoint is due when the WAL-index header cannot be read. */
export const FALLBACK_INTERVAL_MS = 1000;
/** The rest of a started copy that the writer copies itself: at most this share of `thresholdPages`. */
export const TAIL_FRACTION = 1 / 8;

/** `iVersion` of the WAL-index header this code reads (SQLite's WALINDEX_MAX_VERSION since 3.7.0). */
const WAL_INDEX_VERSION = 3_007_000;
/** Bytes of the header read: two copies of WalIndexHdr (48 bytes each), then WalCkptInfo up to nBackfill. */
const HEADER_BYTES = 100;

export type CheckpointerRequest = { readonly kind: "checkpoint" } | { readonly kind: "close" };

export type CheckpointerReply =
  | { readonly kind: "ready" }
  /** `walFrames`: frames in the WAL when the checkpoint ran; `copiedFrames`: those now in the database file. */
  | { readonly kind: "checkpointed"; readonly walFrames: number; readonly copiedFrames: number }
  | { readonly kind: "failed"; readonly message: string };

/** What the checkpoints have done since the journal opened. */
export interface CheckpointReport {
  /** Copies made by the checkpoint thread. */
  readonly byThread: number;
  /** Rests copied by the writer between two of its writes. */
  readonly byWriter: number;
  readonly failed: number;
  /** The last failure's message, null when none failed. */
  readonly lastFailure: string | null;
}

/** Frames in the WAL and frames of it already copied into the database file, read from the `-shm` file. */
export interface WalProgress {
  readonly walFrames: number;
  readonly copiedFrames: number;
}

/** Reads the WAL-index header of `shmPath`; null when the file is missing, short or of another version. */
export function readWalProgress(shmPath: string, buffer = Buffer.alloc(HEADER_BYTES)): WalProgress | null {
  let descriptor: number;
  try {
    descriptor = openSync(shmPath, "r");
  } catch {
    return null;
  }
  try {
    if (readSync(descriptor, buffer, 0, HEADER_BYTES, 0) < HEADER_BYTES) return null;
  } catch {
    return null;
  } finally {
    closeSync(descriptor);
  }
  const littleEndian = endianness() === "LE";
  const word = (offset: number) => (littleEndian ? buffer.readUInt32LE(offset) : buffer.readUInt32BE(offset));
  // isInit (byte 12) is 1 once a connection has built the index.
  if (word(0) !== WAL_INDEX_VERSION || buffer[12] !== 1) return null;
  return { walFrames: word(16), copiedFrames: word(96) };
}

type CheckpointKind = "thread" | "writer";

export class SqliteCheckpointer {
  private readonly thread: OrderedWorker<CheckpointerRequest, Exclude<CheckpointerReply, { kind: "ready" }>>;
  private readonly shmPath: string;
  private readonly buffer = Buffer.alloc(HEADER_BYTES);
  private lastCheckMs = -Infinity;
  private lastFallbackMs: number;
  private running: Promise<void> | null = null;
  private closed = false;
  private byThread = 0;
  private byWriter = 0;
  private failed = 0;
  private lastFailure: string | null = null;

  constructor(
    options: SqliteJournalOptions,
    /** Frames not yet copied at which the thread copies them. */
    private readonly thresholdPages: number,
    /** A PASSIVE checkpoint on the write connection, run between two writes. */
    private readonly checkpointOnWriter: () => Promise<unknown>,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.shmPath = `${options.path}-shm`;
    this.lastFallbackMs = now();
    this.thread = new OrderedWorker({
      name: "the SQLite checkpoint thread",
      entryUrl: new URL("./sqlite-checkpointer-worker.ts", import.meta.url).href,
      data: () => options,
      // One checkpoint at a time: the next is asked for only once the last is answered.
      maxInFlight: 1,
      overloaded: () => new Error("a checkpoint is already running"),
      ended: (exitCode) => new Error(`the SQLite checkpoint thread ended (exit code ${exitCode})`),
    });
  }

  /** Called after each write: starts the copy that is due, if any and none is running. Never throws. */
  afterWrite(): void {
    if (this.running || this.closed) return;
    const now = this.now();
    if (now - this.lastCheckMs < CHECK_INTERVAL_MS) return;
    this.lastCheckMs = now;
    const due = this.due(now);
    if (due.length === 0) return;
    this.running = this.copy(due).finally(() => {
      this.running = null;
    });
  }

  report(): CheckpointReport {
    return { byThread: this.byThread, byWriter: this.byWriter, failed: this.failed, lastFailure: this.lastFailure };
  }

  /** Resolves once the copy under way, if any, is over. */
  async settled(): Promise<void> {
    await this.running;
  }

  /** Waits for the copy under way, if any, then ends the thread. */
  async close(): Promise<void> {
    this.closed = true;
    await this.running;
    await this.thread.close({ kind: "close" });
  }

  /** The copies due now, in order. */
  private due(now: number): CheckpointKind[] {
    const progress = readWalProgress(this.shmPath, this.buffer);
    if (!progress) {
      if (now - this.lastFallbackMs < FALLBACK_INTERVAL_MS) return [];
      this.lastFallbackMs = now;
      return ["thread", "writer"];
    }
    const notCopied = progress.walFrames - progress.copiedFrames;
    if (notCopied >= this.thresholdPages) return ["thread"];
    // copiedFrames > 0: a copy started since the WAL last started over; finish it so the WAL can start over.
    // (notCopied < 0: read while the WAL was starting over, between its header and the copy count.)
    if (progress.copiedFrames === 0 || notCopied <= 0) return [];
    return notCopied > this.thresholdPages * TAIL_FRACTION ? ["thread"] : ["writer"];
  }

  private async copy(kinds: readonly CheckpointKind[]): Promise<void> {
    for (const kind of kinds) {
      try {
        if (kind === "writer") {
          await this.checkpointOnWriter();
          this.byWriter += 1;
          continue;
        }
        const reply = await this.thread.request({ kind: "checkpoint" });
        if (reply.kind === "failed") throw new Error(reply.message);
        this.byThread += 1;
      } catch (error) {
        // A thread that died is replaced at the next copy; the writer's backstop keeps the WAL bounded meanwhile.
        this.failed += 1;
        this.lastFailure = error instanceof Error ? error.message : String(error);
        return;
      }
    }
  }
}
