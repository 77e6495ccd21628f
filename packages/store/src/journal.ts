/**
 * The event journal: the engine's events are the source of truth (DESIGN.md section 2).
 * Each record carries a global sequence number; the records of one append are stored together, under
 * one checksum that covers their sequences and payload (records.ts); a command is acknowledged only
 * after the batch holding its events is durable.
 *
 * Drivers implement `EventJournal`; one contract suite (test/journal.contract.ts) runs
 * against every driver.
 */
import type { EngineEvent, StateSnapshot } from "@bourse/core";
import type { AppliedMigration } from "./migrations.ts";
import type { SnapshotRow } from "./records.ts";

export interface JournalRecord {
  /** Global sequence, 1, 2, 3, … without gaps. */
  readonly sequence: number;
  readonly event: EngineEvent;
}

export interface SnapshotRecord {
  /** The sequence of the last event folded into the snapshot. */
  readonly sequence: number;
  readonly stateHash: string;
  readonly state: StateSnapshot;
  readonly createdAt: number;
}

/** What a journal found when it opened: how its tail looked and what it did about it. */
export interface JournalOpenReport {
  readonly lastSequence: number;
  /**
   * Records of the last append, dropped because its checksum failed (a torn, never acknowledged write). Only
   * the last append can be torn: damage to any earlier one is corruption.
   */
  readonly droppedTornRecords: number;
  /**
   * Sequences of snapshots whose checksum failed, newest first. They are skipped (`latestSnapshot`
   * returns the newest sound one, recovery replays more events): the events are the truth.
   */
  readonly damagedSnapshots: readonly number[];
  /** The schema's migrations this open applied, in order; empty when it was this build's already, and for an inspection. */
  readonly appliedMigrations: readonly AppliedMigration[];
}

/** A record before the last append is damaged or missing: the journal refuses to open. */
export class JournalCorruptionError extends Error {
  override readonly name = "JournalCorruptionError";
  constructor(
    readonly sequence: number,
    readonly detail: string,
  ) {
    super(`journal corrupt at sequence ${sequence}: ${detail}`);
  }
}

/**
 * The records given to `append` (or the snapshot given to `saveSnapshot`) do not fit the journal:
 * a sequence gap or duplicate, a snapshot past the last record, or a value JSON cannot keep exactly.
 * Nothing was written. A caller bug, or a second writer on the same journal.
 */
export class JournalRecordError extends Error {
  override readonly name = "JournalRecordError";
  constructor(
    readonly sequence: number,
    readonly detail: string,
  ) {
    super(`journal record ${sequence} refused: ${detail}`);
  }
}

/**
 * Another process holds the journal's writer lock: a journal has one writer (the engine, DESIGN.md section 2).
 * Two servers on one database each ran an engine of their own: each refused the other's next write, served
 * balances the other had changed without knowing it, and missed the other's logouts.
 */
export class JournalLockedError extends Error {
  override readonly name = "JournalLockedError";
  /** `journal` names the journal and the lock its holder keeps, for the operator. */
  constructor(journal: string) {
    super(
      `another Bourse engine is writing the journal ${journal}: a journal has one writer; stop the other server first`,
    );
  }
}

/** The storage refused a write (disk full, database down); nothing of the batch is durable. */
export class JournalWriteError extends Error {
  override readonly name = "JournalWriteError";
  constructor(
    message: string,
    /** True when the outcome is unknown (the connection dropped after the commit was sent). */
    readonly outcomeUnknown: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Recovery in the same pass as `open()`'s check of the journal (see `JournalOpenOptions.fold`), so a
 * large journal is read once, not once to check it and again to replay it.
 */
export interface JournalFold {
  /** Called once, before any record, with the newest sound snapshot the check starts from (null: from the start). */
  start(snapshot: SnapshotRecord | null): void;
  /**
   * Every sound record after that snapshot, in order, checksum verified, up to the last record `open()`
   * keeps: never one of a torn tail it drops. If `open()` then throws, what was folded must be discarded.
   */
  apply(record: JournalRecord): void;
}

export interface JournalOpenOptions {
  /** Fold the records while they are checked (recovery at start); without it `open()` only checks them. */
  readonly fold?: JournalFold;
  /**
   * Leave a torn tail in place and only report it (`droppedTornRecords` then counts the records found, not
   * dropped), and leave the read models as they are: for commands that inspect a journal (`verify`, `journal`),
   * which must not change what they check.
   * The server drops it at start (DESIGN.md section 2).
   * Any other open takes the journal's writer lock and holds it until `close()`: while another process (or
   * another open journal of this one) holds it, `open()` throws `JournalLockedError`. An inspection takes none.
   */
  readonly keepTornTail?: boolean;
}

/**
 * Snapshots a journal keeps: saving one deletes those older than the newest SNAPSHOTS_KEPT, so a damaged newest
 * one still has an older one behind it (recovery takes the newest sound one), and the table does not grow with
 * every snapshot for ever: one every five minutes kept 288 copies of the whole state a day (found by the audit of
 * limits of 7 December). The events stay: a recovery without any snapshot replays them all.
 */
export const SNAPSHOTS_KEPT = 3;

export interface EventJournal {
  /**
   * Creates or migrates the schema, checks the tail and reports it. Must be called first. The check
   * reads every record from the latest sound snapshot to the end; `options.fold` is given them as they
   * are read, so recovery needs no second read.
   */
  open(options?: JournalOpenOptions): Promise<JournalOpenReport>;
  /**
   * Appends records in one transaction and makes them durable before resolving (in rows of at most
   * `MAX_ROW_RECORDS`, as many as the batch needs). Sequences must continue from the last one without gaps, or it
   * rejects with `JournalRecordError` and writes nothing.
   * A storage failure rejects with `JournalWriteError`.
   * Calls made before an earlier one resolved are applied in call order, one at a time (each begins once the
   * one before it is durable or refused); one behind a refused call no longer follows the last record and is
   * refused too, so a batch never commits without the batches before it.
   */
  append(records: readonly JournalRecord[]): Promise<void>;
  lastSequence(): Promise<number>;
  /** Up to `limit` records with sequence > `afterSequence`, in order, checksums verified. */
  read(afterSequence: number, limit: number): Promise<JournalRecord[]>;
  /**
   * Stores a snapshot (replacing one at the same sequence); its sequence must be journaled already. Then deletes the
   * snapshots older than the newest SNAPSHOTS_KEPT (a deletion that fails is left to the next snapshot).
   */
  saveSnapshot(snapshot: SnapshotRecord): Promise<void>;
  /** `saveSnapshot` of a snapshot already encoded (`encodeSnapshot`, or `encodeSnapshotInSlices` off the hot path). */
  saveSnapshotRow(row: SnapshotRow): Promise<void>;
  /**
   * The snapshot with the highest sequence whose checksum holds, or null; with `atOrBefore`, the highest at or before
   * it (verify and a recovery `through` a sequence, beside a server that saves newer ones meanwhile).
   */
  latestSnapshot(atOrBefore?: number): Promise<SnapshotRecord | null>;
  /**
   * Why this journal is not its one writer now, or null: a journal whose writer lock can be lost while it is open
   * (PostgreSQL's advisory lock goes with its connection) says so, and the server is not ready meanwhile.
   */
  writerLockProblem?(): string | null;
  close(): Promise<void>;
}
