/**
 * What every driver does the same way: turning records into rows (with their checksums) and back,
 * and judging a journal's tail when it opens. The drivers only move rows.
 */
import type { EngineEvent, StateSnapshot } from "@bourse/core";
import { recordChecksum } from "./checksum.ts";
import {
  JournalCorruptionError,
  JournalRecordError,
  type JournalFold,
  type JournalRecord,
  type SnapshotRecord,
} from "./journal.ts";

/** A journal record as stored: the event's JSON plus the columns later queries select on. */
export interface JournalRow {
  readonly sequence: number;
  readonly time: number;
  readonly type: string;
  readonly accountId: number | null;
  readonly payload: string;
  readonly checksum: number;
}

/** A row as read back, before anything about it is trusted. */
export interface StoredRecord {
  readonly sequence: number;
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

/** Records read per query when a journal verifies its tail on open. */
export const DEFAULT_VERIFICATION_BATCH_SIZE = 10_000;

/**
 * The account an event belongs to, for read-by-account queries; null for a rollover, which spans
 * accounts (each of its charges names its own).
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
      return event.accountId;
    case "OrderAccepted":
      return event.order.accountId;
    case "DealExecuted":
      return event.deal.accountId;
    case "Rollover":
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
 * Checks a batch holds consecutive sequences and exact values, and encodes it. Whether the first
 * sequence continues the journal is for the driver to check inside its transaction.
 */
export function encodeRecords(records: readonly JournalRecord[]): JournalRow[] {
  const rows: JournalRow[] = [];
  let previous: number | null = null;
  for (const record of records) {
    const { sequence, event } = record;
    assertSequence(sequence, "a sequence");
    if (sequence === 0) throw new JournalRecordError(sequence, "sequences start at 1");
    if (previous !== null && sequence !== previous + 1)
      throw new JournalRecordError(sequence, `the batch skips or repeats a sequence: ${sequence} after ${previous}`);
    previous = sequence;
    assertExactJson(event, sequence, "event");
    if (typeof event.type !== "string") throw new JournalRecordError(sequence, "the event has no type");
    if (!Number.isSafeInteger(event.time)) throw new JournalRecordError(sequence, "the event has no integer time");
    const payload = JSON.stringify(event);
    rows.push({
      sequence,
      time: event.time,
      type: event.type,
      // `?? null`: an event type this build does not know names no account.
      accountId: eventAccountId(event) ?? null,
      payload,
      checksum: recordChecksum(sequence, payload),
    });
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

function isSound(stored: StoredRecord): stored is StoredRecord & { payload: string; checksum: number } {
  return (
    typeof stored.payload === "string" &&
    typeof stored.checksum === "number" &&
    recordChecksum(stored.sequence, stored.payload) === stored.checksum
  );
}

/**
 * Decodes rows read for `read(afterSequence, …)`: checksums verified, and no sequence missing between
 * `afterSequence` and the last row (a deleted row would otherwise replay as if it never happened).
 */
export function decodeRecords(afterSequence: number, rows: readonly StoredRecord[]): JournalRecord[] {
  const records: JournalRecord[] = [];
  let expected = afterSequence + 1;
  for (const row of rows) {
    if (row.sequence !== expected) throw new JournalCorruptionError(expected, "the record is missing");
    if (!isSound(row)) throw new JournalCorruptionError(row.sequence, "checksum mismatch");
    records.push({ sequence: row.sequence, event: parsePayload(row.sequence, row.payload) });
    expected++;
  }
  return records;
}

function parsePayload(sequence: number, payload: string): EngineEvent {
  try {
    return JSON.parse(payload) as EngineEvent;
  } catch (error) {
    throw new JournalCorruptionError(sequence, `payload is not JSON: ${String(error)}`);
  }
}

export function assertReadArguments(afterSequence: number, limit: number): void {
  if (!Number.isSafeInteger(afterSequence) || afterSequence < 0)
    throw new RangeError(`afterSequence must be a non-negative integer, got ${afterSequence}`);
  if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer, got ${limit}`);
}

/** What a tail scan found: the last sound sequence, and where a torn tail starts (null if none). */
export interface TailVerdict {
  readonly lastSequence: number;
  readonly firstTornSequence: number | null;
}

/**
 * Verifies every record from the latest snapshot's (or from 1) to the end, `batchSize` rows per read. A run of damaged
 * records that reaches the very end is a torn write that was never acknowledged: reported, for the
 * driver to delete. A damaged record followed by a sound one, a missing record, or a damaged record
 * a snapshot already covers (a snapshot is only saved over durable records) is corruption: throws.
 *
 * With `fold`, every sound record after the snapshot is decoded and given to `fold.apply` as it is
 * checked (recovery in the same pass); a record after the first damaged one never is (it is either
 * torn, or the scan throws). `fold.start` must have been called by the driver.
 */
export async function verifyTail(
  readStored: (afterSequence: number, limit: number) => Promise<readonly StoredRecord[]>,
  snapshotSequence: number,
  batchSize: number,
  fold?: JournalFold,
): Promise<TailVerdict> {
  // Start at the snapshot's own record: it must be there and sound, which checks the seam.
  const fromSequence = Math.max(snapshotSequence, 1);
  let expected = fromSequence;
  let firstDamagedSequence: number | null = null;
  for (;;) {
    const rows = await readStored(expected - 1, batchSize);
    for (const row of rows) {
      if (row.sequence !== expected) throw new JournalCorruptionError(expected, "the record is missing");
      if (isSound(row)) {
        if (firstDamagedSequence !== null)
          throw new JournalCorruptionError(
            firstDamagedSequence,
            `checksum mismatch before sound record ${row.sequence}: damage inside the journal, not a torn write`,
          );
        if (fold && row.sequence > snapshotSequence)
          fold.apply({ sequence: row.sequence, event: parsePayload(row.sequence, row.payload) });
      } else {
        if (row.sequence <= snapshotSequence)
          throw new JournalCorruptionError(
            row.sequence,
            `checksum mismatch in a record snapshot ${snapshotSequence} covers: it was durable, so this is damage`,
          );
        firstDamagedSequence ??= row.sequence;
      }
      expected++;
    }
    if (rows.length < batchSize) break;
  }
  if (snapshotSequence > 0 && expected === fromSequence)
    throw new JournalCorruptionError(snapshotSequence, "the record the latest snapshot was taken at is missing");
  return firstDamagedSequence === null
    ? { lastSequence: expected - 1, firstTornSequence: null }
    : { lastSequence: firstDamagedSequence - 1, firstTornSequence: firstDamagedSequence };
}

function snapshotChecksum(sequence: number, stateHash: string, createdAt: number, payload: string): number {
  return recordChecksum(sequence, `${stateHash}:${createdAt}:${payload}`);
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
