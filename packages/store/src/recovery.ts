/**
 * Recovery (DESIGN.md section 2): the latest sound snapshot, checked against its stored state hash,
 * then every journaled event after it folded in order. Shared by the durable engine's start, its
 * rebuild after a failed write, and `verify`.
 */
import { TradingEngine, type EngineConfig } from "@bourse/core";
import type { EventJournal, JournalFold, JournalOpenReport, JournalRecord, SnapshotRecord } from "./journal.ts";

/** Records read per query while recovering: large enough to amortise a round trip, small enough to bound memory. */
export const DEFAULT_RECOVERY_BATCH_SIZE = 10_000;

/** A snapshot restored to a state whose hash is not the one stored with it: the snapshot cannot be trusted. */
export class SnapshotMismatchError extends Error {
  override readonly name = "SnapshotMismatchError";
  constructor(
    readonly sequence: number,
    readonly storedStateHash: string,
    readonly restoredStateHash: string,
  ) {
    super(
      `the snapshot at sequence ${sequence} restores to state hash ${restoredStateHash}, not the ${storedStateHash} stored with it`,
    );
  }
}

export interface RecoveredEngine {
  readonly engine: TradingEngine;
  /** The sequence of the last event folded in (0 for an empty journal). */
  readonly lastSequence: number;
  /** The snapshot recovery started from, or null when it replayed the whole journal. */
  readonly snapshotSequence: number | null;
  /** Events folded after the snapshot (or from the start). */
  readonly replayedEvents: number;
}

export interface RecoverOptions {
  readonly batchSize?: number;
  /** Ignore snapshots and replay the whole journal (to compare the two recoveries). */
  readonly withoutSnapshot?: boolean;
  /** The last sequence to fold (default: the journal's last): verify's, beside a server that appends meanwhile. */
  readonly through?: number;
}

/** Resumes a snapshot's engine at the time of the last event it folded, the journal's record at its sequence. */
async function resumeClockAtSnapshot(journal: EventJournal, engine: TradingEngine, sequence: number): Promise<void> {
  // A snapshot of the empty journal (sequence 0) folded no event.
  if (sequence === 0) return;
  const [last] = await journal.read(sequence - 1, 1);
  if (last) engine.resumeClock(last.event.time);
}

/** The engine a snapshot restores to, its stored state hash checked. */
function engineFromSnapshot(config: EngineConfig, snapshot: SnapshotRecord): TradingEngine {
  const engine = TradingEngine.fromSnapshot(config, snapshot.state);
  const restoredStateHash = engine.stateHash();
  if (restoredStateHash !== snapshot.stateHash)
    throw new SnapshotMismatchError(snapshot.sequence, snapshot.stateHash, restoredStateHash);
  // Under this configuration's bounds, as a replay under it would hold it (a snapshot of a larger bound holds more).
  engine.boundMemories();
  return engine;
}

/**
 * Opens an unopened journal and recovers in the same pass: the records `open()` reads to check the
 * journal are folded as they are checked (`JournalFold`), so a journal is read once. Every guarantee
 * of `open()` holds: a torn tail is dropped (and never folded), damage before it throws naming the
 * sequence, and the engine built so far is then discarded. Throws `SnapshotMismatchError` too.
 */
export async function openAndRecover(
  journal: EventJournal,
  config: EngineConfig,
  options: RecoverOptions = {},
): Promise<{ report: JournalOpenReport; recovered: RecoveredEngine }> {
  let engine: TradingEngine | null = null;
  let snapshotSequence: number | null = null;
  let lastSequence = 0;
  let replayedEvents = 0;
  const fold: JournalFold = {
    start(snapshot) {
      engine = snapshot ? engineFromSnapshot(config, snapshot) : new TradingEngine(config);
      snapshotSequence = snapshot ? snapshot.sequence : null;
      lastSequence = snapshot ? snapshot.sequence : 0;
    },
    apply(record) {
      if (record.sequence !== lastSequence + 1)
        throw new Error(`recovery was given sequence ${record.sequence} after ${lastSequence}`);
      engine!.applyRecovered(record.event);
      lastSequence = record.sequence;
      replayedEvents++;
    },
  };
  const report = await journal.open({ fold });
  const folded = engine as TradingEngine | null;
  try {
    // A journal that ignores the fold (a wrapper, an older driver): recover with a second read.
    if (folded === null) return { report, recovered: await recoverEngine(journal, config, options) };
    if (report.lastSequence !== lastSequence)
      throw new Error(
        `the journal ended at sequence ${report.lastSequence} but recovery folded up to ${lastSequence}: a driver bug`,
      );
    if (snapshotSequence !== null) await resumeClockAtSnapshot(journal, folded, snapshotSequence);
  } catch (error) {
    await journal.close();
    throw error;
  }
  return { report, recovered: { engine: folded, lastSequence, snapshotSequence, replayedEvents } };
}

/** Builds the engine an open journal holds. Throws `SnapshotMismatchError` or the journal's own errors. */
export async function recoverEngine(
  journal: EventJournal,
  config: EngineConfig,
  options: RecoverOptions = {},
): Promise<RecoveredEngine> {
  const batchSize = options.batchSize ?? DEFAULT_RECOVERY_BATCH_SIZE;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1)
    throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  // Never one past `through`: a server beside verify saves newer ones meanwhile (found by the review of 7 December).
  const snapshot = options.withoutSnapshot ? null : await journal.latestSnapshot(options.through);
  let engine: TradingEngine;
  let lastSequence = 0;
  if (snapshot) {
    engine = engineFromSnapshot(config, snapshot);
    lastSequence = snapshot.sequence;
    await resumeClockAtSnapshot(journal, engine, snapshot.sequence);
  } else {
    engine = new TradingEngine(config);
  }
  let replayedEvents = 0;
  for await (const records of journalBatches(
    journal,
    lastSequence,
    options.through ?? Number.MAX_SAFE_INTEGER,
    batchSize,
  )) {
    for (const record of records) engine.applyRecovered(record.event);
    lastSequence = records[records.length - 1]!.sequence;
    replayedEvents += records.length;
  }
  return { engine, lastSequence, snapshotSequence: snapshot ? snapshot.sequence : null, replayedEvents };
}

/** The journal's records after sequence `after`, through sequence `through`, `batchSize` at most per read. */
export async function* journalBatches(
  journal: EventJournal,
  after: number,
  through: number,
  batchSize: number,
): AsyncGenerator<readonly JournalRecord[]> {
  while (after < through) {
    const wanted = Math.min(batchSize, through - after);
    const records = await journal.read(after, wanted);
    if (records.length > 0) yield records;
    if (records.length < wanted) return;
    after = records[records.length - 1]!.sequence;
  }
}
