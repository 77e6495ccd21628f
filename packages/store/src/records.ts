/**
 * What every driver does the same way: turning records into rows (with their checksums) and back,
 * and judging a journal's tail when it opens. The drivers only move rows.
 */
import {
  SNAPSHOT_OPTIONAL_RECORD_KEYS,
  SNAPSHOT_RECORD_KEYS,
  TextHasher,
  canonicalStateHead,
  snapshotJsonHead,
  snapshotRecordParts,
  type EngineEvent,
  type StateSnapshot,
} from "@bourse/core";
import { batchChecksum, crc32Text } from "./checksum.ts";
import { EventDecodingError, decodeEvents, encodeEvents, isBinaryPayload } from "./event-codec.ts";
import {
  JournalCorruptionError,
  JournalRecordError,
  type JournalFold,
  type JournalRecord,
  type SnapshotRecord,
} from "./journal.ts";

/**
 * A journal row as stored: the events of one append (one group-commit batch), in sequence order, in one
 * payload, with one checksum over it and its sequences. One row per append means one insert and one
 * checksum per batch instead of one per event, and it bounds the torn-tail rule: only the last append can
 * have been cut short by a crash, so only the last row may be dropped as torn.
 */
export interface JournalBatchRow {
  readonly firstSequence: number;
  readonly lastSequence: number;
  /**
   * The events in the binary form of event-codec.ts (rows written since it; `encodeBatch` writes no other),
   * or as text: `[event, event, …]` in JSON, or one event's object for a row moved from schema 2.
   */
  readonly payload: Buffer | string;
  readonly checksum: number;
}

/** A row as read back, before anything about it is trusted (the first sequence is the primary key). */
export interface StoredBatch {
  readonly firstSequence: number;
  readonly lastSequence: unknown;
  readonly payload: unknown;
  readonly checksum: unknown;
}

export interface SnapshotRow {
  readonly sequence: number;
  readonly stateHash: string;
  readonly createdAt: number;
  readonly payload: string;
  readonly checksum: number;
}

export interface StoredSnapshot {
  readonly sequence: number;
  readonly stateHash: unknown;
  readonly createdAt: unknown;
  readonly payload: unknown;
  readonly checksum: unknown;
}

/**
 * Records read per query, about, when a journal reads or verifies its rows (never less than one row):
 * bounds the memory recovery holds at once, however many events each row carries.
 */
export const DEFAULT_VERIFICATION_BATCH_SIZE = 10_000;

/**
 * Records one journal row holds at most. A row is written and read whole, so this bounds a row (about 320 bytes an
 * event, so some 32 MB); the durable engine's batches stay below it (`DEFAULT_MAX_BATCH_EVENTS`), but one command
 * can make more (a rollover expiring the DAY orders of many accounts): an append of more records is written as
 * several rows in one transaction (`encodeBatchRows`).
 */
export const MAX_ROW_RECORDS = 100_000;

/** Rows read per query at most, however small they are. */
const MAX_ROWS_PER_READ = 10_000;

/**
 * The account an event belongs to, for read-by-account queries; null for a rollover and the swap events
 * that follow one, which span accounts (each of their entries names its own).
 */
export function eventAccountId(event: EngineEvent): number | null {
  switch (event.type) {
    case "AccountOpened":
    case "AccountChanged":
    case "BalanceOperation":
    case "MarginCallEntered":
    case "MarginCallCleared":
    case "StopOut":
    case "OrderChanged":
    case "OrderStatusChanged":
    case "PositionChanged":
    case "PositionMarginChanged":
      return event.accountId;
    case "OrderAccepted":
      return event.order.accountId;
    case "DealExecuted":
      return event.deal.accountId;
    case "Rollover":
    case "SwapsDeferred":
    case "DeferredSwapsCharged":
      return null;
  }
}

/**
 * Why JSON would not keep `value` exactly, as a path and a reason (".deal.price is 1.5, not a safe
 * integer"), or null when it would: only safe integers (no floats, NaN or infinities, which JSON would
 * round or turn into null), strings, booleans, null, plain objects and arrays without holes. A journal
 * that silently changed a number on the way to disk would replay to another state. The path is built
 * only on failure: this runs on every event appended.
 */
function inexactJson(value: unknown): string | null {
  switch (typeof value) {
    case "string":
    case "boolean":
      return null;
    case "number":
      return Number.isSafeInteger(value) ? null : ` is ${value}, not a safe integer`;
    case "object": {
      if (value === null) return null;
      if (Array.isArray(value)) {
        for (let index = 0; index < value.length; index++) {
          const item: unknown = value[index];
          const problem = item === undefined ? " is undefined" : inexactJson(item);
          if (problem !== null) return `[${index}]${problem}`;
        }
        return null;
      }
      const prototype: unknown = Object.getPrototypeOf(value);
      if (prototype !== Object.prototype && prototype !== null) return " is not a plain object";
      const record = value as Record<string, unknown>;
      for (const key in record) {
        const item = record[key];
        // An undefined property is an omitted optional field: JSON leaves it out, and reading it back gives undefined again.
        if (item === undefined) continue;
        const problem = inexactJson(item);
        if (problem !== null) return `.${key}${problem}`;
      }
      return null;
    }
    default:
      return ` is a ${typeof value}, which JSON cannot keep`;
  }
}

function assertExactJson(value: unknown, sequence: number, name: string): void {
  const problem = inexactJson(value);
  if (problem !== null) throw new JournalRecordError(sequence, `${name}${problem}`);
}

function assertSequence(sequence: unknown, what: string): asserts sequence is number {
  if (typeof sequence !== "number" || !Number.isSafeInteger(sequence) || sequence < 0)
    throw new JournalRecordError(Number(sequence), `${what} must be a non-negative safe integer`);
}

/**
 * Checks a batch holds consecutive sequences and exact values, and encodes it as one row. Whether the
 * first sequence continues the journal is for the driver to check inside its transaction.
 */
export function encodeBatch(records: readonly JournalRecord[]): JournalBatchRow {
  if (records.length > MAX_ROW_RECORDS)
    throw new JournalRecordError(
      records[0]!.sequence,
      `a journal row holds at most ${MAX_ROW_RECORDS} records, this one ${records.length}`,
    );
  const events: EngineEvent[] = [];
  let previous: number | null = null;
  for (const record of records) {
    const { sequence, event } = record;
    assertSequence(sequence, "a sequence");
    if (sequence === 0) throw new JournalRecordError(sequence, "sequences start at 1");
    if (previous !== null && sequence !== previous + 1)
      throw new JournalRecordError(sequence, `the batch skips or repeats a sequence: ${sequence} after ${previous}`);
    previous = sequence;
    if (typeof event.type !== "string") throw new JournalRecordError(sequence, "the event has no type");
    if (!Number.isSafeInteger(event.time)) throw new JournalRecordError(sequence, "the event has no integer time");
    events.push(event);
  }
  const firstSequence = records[0]!.sequence;
  const lastSequence = records[records.length - 1]!.sequence;
  // The codec keeps exactly what it writes in its compact form; an event it writes as JSON text must pass the
  // JSON exactness check first.
  const payload = encodeEvents(events, (event, index) => assertExactJson(event, firstSequence + index, "event"));
  return { firstSequence, lastSequence, payload, checksum: batchChecksum(firstSequence, lastSequence, payload) };
}

/**
 * `encodeBatch` of `records` in rows of at most `recordsPerRow`, which an append writes in one transaction. One
 * command's events went in one row, refused past MAX_ROW_RECORDS: the rollover that made them was refused, and
 * with it every later command, which runs the overdue rollover first, and every command after a restart (found
 * by the audit of durability of 7 December). The torn-tail rule reads rows: a damaged last row of such an append would
 * be dropped as torn and leave the rows before it, but a transaction cannot leave part of itself on disk, so that is
 * damage to an acknowledged write, not a torn one.
 */
export function encodeBatchRows(
  records: readonly JournalRecord[],
  recordsPerRow: number = MAX_ROW_RECORDS,
): JournalBatchRow[] {
  if (!Number.isSafeInteger(recordsPerRow) || recordsPerRow < 1)
    throw new RangeError(`recordsPerRow must be a positive integer, got ${recordsPerRow}`);
  const rows: JournalBatchRow[] = [];
  for (let start = 0; start < records.length; start += recordsPerRow) {
    const row = encodeBatch(records.slice(start, start + recordsPerRow));
    const previous = rows.at(-1);
    if (previous && row.firstSequence !== previous.lastSequence + 1)
      throw new JournalRecordError(
        row.firstSequence,
        `the batch skips or repeats a sequence: ${row.firstSequence} after ${previous.lastSequence}`,
      );
    rows.push(row);
  }
  return rows;
}

/** The refusal for a batch whose first sequence does not follow the journal's last one. */
export function sequenceMismatch(firstSequence: number, lastSequence: number): JournalRecordError {
  return new JournalRecordError(
    firstSequence,
    firstSequence <= lastSequence
      ? `sequence ${firstSequence} is already journaled (the last is ${lastSequence})`
      : `a gap: the next sequence is ${lastSequence + 1}`,
  );
}

type SoundBatch = StoredBatch & { lastSequence: number; payload: Buffer | string; checksum: number };

function isSoundBatch(stored: StoredBatch): stored is SoundBatch {
  return (
    (typeof stored.payload === "string" || Buffer.isBuffer(stored.payload)) &&
    typeof stored.checksum === "number" &&
    typeof stored.lastSequence === "number" &&
    Number.isSafeInteger(stored.lastSequence) &&
    stored.lastSequence >= stored.firstSequence &&
    batchChecksum(stored.firstSequence, stored.lastSequence, stored.payload) === stored.checksum
  );
}

const OPENING_BRACE = 0x7b;

/** The events of a sound row; a payload the checksum vouches for but that does not hold them is a writer's bug. */
function parseBatch(row: SoundBatch): EngineEvent[] {
  const expected = row.lastSequence - row.firstSequence + 1;
  if (typeof row.payload !== "string") {
    if (!isBinaryPayload(row.payload))
      throw new JournalCorruptionError(row.firstSequence, "the payload is bytes, but not events in the binary form");
    try {
      return decodeEvents(row.payload, expected);
    } catch (error) {
      if (error instanceof EventDecodingError)
        throw new JournalCorruptionError(row.firstSequence, `the payload does not decode: ${error.message}`);
      throw error;
    }
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(row.payload);
  } catch (error) {
    throw new JournalCorruptionError(row.firstSequence, `payload is not JSON: ${String(error)}`);
  }
  // A row moved from schema 2 holds one event's object.
  const events = row.payload.charCodeAt(0) === OPENING_BRACE ? [parsed] : parsed;
  if (!Array.isArray(events) || events.length !== expected)
    throw new JournalCorruptionError(
      row.firstSequence,
      `the row of sequences ${row.firstSequence}-${row.lastSequence} does not hold ${expected} events`,
    );
  return events as EngineEvent[];
}

/**
 * The events of a row `encodeBatch` made, as records: what the SQLite writer thread projects into the read
 * models (it is handed the row, not the records).
 */
export function batchRowRecords(row: JournalBatchRow): JournalRecord[] {
  const events = parseBatch(row);
  const records: JournalRecord[] = [];
  for (let index = 0; index < events.length; index++)
    records.push({ sequence: row.firstSequence + index, event: events[index]! });
  return records;
}

/** How a driver hands its rows to the shared code: by primary key, in order. */
export interface BatchRowSource {
  /** The first sequence of the row holding `sequence` (the greatest first sequence ≤ it), or null. */
  rowStart(sequence: number): Promise<number | null>;
  /** Up to `limit` rows whose first sequence is ≥ `firstSequence`, in order. */
  rows(firstSequence: number, limit: number): Promise<readonly StoredBatch[]>;
}

/**
 * Visits the rows from the one holding `fromSequence` (or the first after it) to the end, in order, until
 * `visit` returns false. Each query asks for about `recordsPerRead` records' worth of rows, judged from
 * the rows seen so far, and never less than one row.
 */
async function scanRows(
  source: BatchRowSource,
  fromSequence: number,
  recordsPerRead: number,
  visit: (row: StoredBatch) => boolean,
): Promise<void> {
  let next = (await source.rowStart(fromSequence)) ?? fromSequence;
  let rowsSeen = 0;
  let recordsSeen = 0;
  let rowsPerRead = 1;
  for (;;) {
    const rows = await source.rows(next, rowsPerRead);
    for (const row of rows) {
      if (!visit(row)) return;
      rowsSeen++;
      const span = typeof row.lastSequence === "number" ? row.lastSequence - row.firstSequence + 1 : 1;
      recordsSeen += Number.isSafeInteger(span) && span > 0 ? span : 1;
      next = row.firstSequence + 1;
    }
    if (rows.length < rowsPerRead) return;
    rowsPerRead = Math.min(MAX_ROWS_PER_READ, Math.max(1, Math.floor((recordsPerRead * rowsSeen) / recordsSeen)));
  }
}

/**
 * `read(afterSequence, limit)` for every driver: the records after `afterSequence`, checksums verified, and no
 * sequence missing between `afterSequence` and the last one (a deleted row would otherwise replay as if it
 * never happened).
 */
export async function readRecords(
  source: BatchRowSource,
  afterSequence: number,
  limit: number,
  recordsPerRead: number,
): Promise<JournalRecord[]> {
  assertReadArguments(afterSequence, limit);
  const records: JournalRecord[] = [];
  let expected = afterSequence + 1;
  let first = true;
  await scanRows(source, expected, Math.min(limit, recordsPerRead), (row) => {
    if (first ? row.firstSequence > expected : row.firstSequence !== expected)
      throw new JournalCorruptionError(expected, "the record is missing");
    if (!isSoundBatch(row)) throw new JournalCorruptionError(row.firstSequence, "checksum mismatch");
    // The journal ends before `afterSequence + 1`.
    if (first && row.lastSequence < expected) return false;
    first = false;
    const events = parseBatch(row);
    for (let index = expected - row.firstSequence; index < events.length && records.length < limit; index++)
      records.push({ sequence: row.firstSequence + index, event: events[index]! });
    expected = row.lastSequence + 1;
    return records.length < limit;
  });
  return records;
}

export function assertReadArguments(afterSequence: number, limit: number): void {
  if (!Number.isSafeInteger(afterSequence) || afterSequence < 0)
    throw new RangeError(`afterSequence must be a non-negative integer, got ${afterSequence}`);
  if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer, got ${limit}`);
}

/** What a tail scan found: the last sound sequence, and the torn row at the end, if any. */
export interface TailVerdict {
  readonly lastSequence: number;
  /** The first sequence of the torn last row (the driver deletes from it), or null. */
  readonly firstTornSequence: number | null;
  /** The records the torn row claims to hold (its sequence columns are not trusted: at least 1). */
  readonly tornRecords: number;
}

/**
 * Verifies every row from the one holding the latest snapshot's sequence (or from 1) to the end. A damaged
 * last row is a torn append that was never acknowledged (each append is one row, and an append starts
 * only once the one before it is durable): reported, for the driver to delete. A damaged row before the
 * last, a missing record, or a damaged row a snapshot already covers (a snapshot is only saved over
 * durable records) is corruption: throws.
 *
 * With `fold`, every record after the snapshot is decoded and given to `fold.apply` as its row is checked
 * (recovery in the same pass); a torn row's never is. `fold.start` must have been called by the driver.
 */
export async function verifyTail(
  source: BatchRowSource,
  snapshotSequence: number,
  recordsPerRead: number,
  fold?: JournalFold,
): Promise<TailVerdict> {
  // Start at the snapshot's own record: it must be there and sound, which checks the seam.
  const fromSequence = Math.max(snapshotSequence, 1);
  let expected = fromSequence;
  let first = true;
  let damaged: StoredBatch | null = null;
  await scanRows(source, fromSequence, recordsPerRead, (row) => {
    if (damaged !== null)
      throw new JournalCorruptionError(
        damaged.firstSequence,
        `checksum mismatch in the row from ${damaged.firstSequence}, before the row from ${row.firstSequence}: only the last append can be torn, so this is damage`,
      );
    if (first ? row.firstSequence > expected : row.firstSequence !== expected)
      throw new JournalCorruptionError(expected, "the record is missing");
    if (!isSoundBatch(row)) {
      if (row.firstSequence <= snapshotSequence)
        throw new JournalCorruptionError(
          row.firstSequence,
          `checksum mismatch in a row snapshot ${snapshotSequence} covers: it was durable, so this is damage`,
        );
      damaged = row;
      return true;
    }
    if (first && row.lastSequence < expected) {
      // The journal ends before the snapshot's record (or is empty before 1): nothing to check.
      return false;
    }
    first = false;
    if (fold && row.lastSequence > snapshotSequence) {
      const events = parseBatch(row);
      for (let index = Math.max(0, snapshotSequence + 1 - row.firstSequence); index < events.length; index++)
        fold.apply({ sequence: row.firstSequence + index, event: events[index]! });
    }
    expected = row.lastSequence + 1;
    return true;
  });
  if (snapshotSequence > 0 && expected <= snapshotSequence)
    throw new JournalCorruptionError(snapshotSequence, "the record the latest snapshot was taken at is missing");
  const torn = damaged as StoredBatch | null;
  if (torn === null) return { lastSequence: expected - 1, firstTornSequence: null, tornRecords: 0 };
  const claimed = typeof torn.lastSequence === "number" ? torn.lastSequence - torn.firstSequence + 1 : 1;
  return {
    lastSequence: torn.firstSequence - 1,
    firstTornSequence: torn.firstSequence,
    tornRecords: Number.isSafeInteger(claimed) && claimed >= 1 && claimed <= MAX_ROW_RECORDS ? claimed : 1,
  };
}

/**
 * A snapshot is stored with the CRC-32 of `<sequence>:<stateHash>:<createdAt>:<payload>` (checksum.ts's record
 * checksum with the hash and time in front of the payload). Its start, before the payload, so the payload can
 * follow in parts (`crc32Text` continues a checksum).
 */
function snapshotChecksumStart(sequence: number, stateHash: string, createdAt: number): number {
  return crc32Text(`${stateHash}:${createdAt}:`, crc32Text(`${sequence}:`));
}

function snapshotChecksum(sequence: number, stateHash: string, createdAt: number, payload: string): number {
  return crc32Text(payload, snapshotChecksumStart(sequence, stateHash, createdAt));
}

export function encodeSnapshot(snapshot: SnapshotRecord): SnapshotRow {
  const { sequence, stateHash, state, createdAt } = snapshot;
  assertSequence(sequence, "a snapshot's sequence");
  if (typeof stateHash !== "string") throw new JournalRecordError(sequence, "the snapshot has no state hash");
  if (!Number.isSafeInteger(createdAt)) throw new JournalRecordError(sequence, "createdAt must be an integer");
  assertExactJson(state, sequence, "snapshot.state");
  const payload = JSON.stringify(state);
  return {
    sequence,
    stateHash,
    createdAt,
    payload,
    checksum: snapshotChecksum(sequence, stateHash, createdAt, payload),
  };
}

/** Yields to the event loop: other callbacks (requests, the journal's answers) run before the next slice. */
const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Work done between two yields of `encodeSnapshotInSlices`, at most about this long. */
export const SNAPSHOT_SLICE_MILLISECONDS = 4;

/**
 * `encodeSnapshot` of `snapshot` with its state hash computed from it, without stopping the engine's thread
 * for the whole of it (three quarters of a second for a book of 100,000 working orders): each record is
 * written as JSON once (`snapshotRecordParts`), checked as `encodeSnapshot` checks the whole and fed to the
 * hash; then the row's checksum runs over the parts. It yields to the event loop every `sliceMilliseconds` or
 * so, and makes the same row, byte for byte. `snapshot.state` must not change meanwhile: a copy
 * (`TradingEngine.snapshot`) shares nothing with the engine.
 */
export async function encodeSnapshotInSlices(
  snapshot: Omit<SnapshotRecord, "stateHash">,
  options: { sliceMilliseconds?: number; pause?: () => Promise<void> } = {},
): Promise<SnapshotRow> {
  const { sequence, state, createdAt } = snapshot;
  assertSequence(sequence, "a snapshot's sequence");
  if (!Number.isSafeInteger(createdAt)) throw new JournalRecordError(sequence, "createdAt must be an integer");
  const sliceMilliseconds = options.sliceMilliseconds ?? SNAPSHOT_SLICE_MILLISECONDS;
  const pause = options.pause ?? yieldToEventLoop;
  let sliceStart = performance.now();
  let partsSinceClock = 0;
  const sliceOver = (): boolean => {
    // The clock is read every 64 parts: a part is one record, a few microseconds.
    if (++partsSinceClock < 64) return false;
    partsSinceClock = 0;
    return performance.now() - sliceStart >= sliceMilliseconds;
  };
  const pauseNow = async (): Promise<void> => {
    await pause();
    sliceStart = performance.now();
  };

  // Every field but the records (those are checked one by one below).
  const recordKeys: readonly string[] = [...SNAPSHOT_RECORD_KEYS, ...SNAPSHOT_OPTIONAL_RECORD_KEYS];
  for (const [key, value] of Object.entries(state))
    if (!recordKeys.includes(key)) assertExactJson(value, sequence, `snapshot.state.${key}`);
  const jsonHead = snapshotJsonHead(state);
  const hasher = new TextHasher();
  hasher.update(canonicalStateHead(state));
  const parts = [jsonHead];
  const check = (record: unknown, path: string) => assertExactJson(record, sequence, `snapshot.state.${path}`);
  for (const part of snapshotRecordParts(state, check)) {
    hasher.update(part);
    parts.push(part);
    if (sliceOver()) await pauseNow();
  }
  const stateHash = hasher.digest();

  let checksum = snapshotChecksumStart(sequence, stateHash, createdAt);
  for (const part of parts) {
    checksum = crc32Text(part, checksum);
    if (sliceOver()) await pauseNow();
  }
  return { sequence, stateHash, createdAt, payload: parts.join(""), checksum };
}

export function isSoundSnapshot(
  stored: StoredSnapshot,
): stored is StoredSnapshot & { stateHash: string; createdAt: number; payload: string; checksum: number } {
  return (
    typeof stored.stateHash === "string" &&
    typeof stored.createdAt === "number" &&
    typeof stored.payload === "string" &&
    typeof stored.checksum === "number" &&
    snapshotChecksum(stored.sequence, stored.stateHash, stored.createdAt, stored.payload) === stored.checksum
  );
}

/** Decodes a snapshot row, or null when its checksum fails (the caller falls back to an older one). */
export function decodeSnapshot(stored: StoredSnapshot): SnapshotRecord | null {
  if (!isSoundSnapshot(stored)) return null;
  return {
    sequence: stored.sequence,
    stateHash: stored.stateHash,
    createdAt: stored.createdAt,
    state: JSON.parse(stored.payload) as StateSnapshot,
  };
}

/**
 * An integer column as a number: drivers return PostgreSQL bigint as a string. Anything that is not a
 * safe integer comes back unchanged, so a damaged value fails its checksum instead of throwing here.
 */
export function integerColumn(value: unknown): unknown {
  if (typeof value === "number") return value;
  if (typeof value === "string" && /^-?[0-9]{1,16}$/.test(value)) {
    const number = Number(value);
    if (Number.isSafeInteger(number)) return number;
  }
  return value;
}

/** A sequence column: the primary key, so always an integer; anything else is a driver or schema bug. */
export function sequenceColumn(value: unknown): number {
  const number = integerColumn(value);
  if (typeof number !== "number") throw new TypeError(`a sequence column holds ${String(value)}`);
  return number;
}
