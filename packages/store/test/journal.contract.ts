/**
 * The contract every journal driver keeps (DESIGN.md section 2), run against each driver by its own
 * test file with a factory for fresh, empty storage.
 */
import { TradingEngine, defaultEngineConfig, type EngineEvent } from "@bourse/core";
import { afterEach, describe, expect, it } from "vitest";
import {
  JournalCorruptionError,
  JournalLockedError,
  JournalRecordError,
  MAX_ROW_RECORDS,
  SNAPSHOTS_KEPT,
  batchChecksum,
  recoverEngine,
  type EventJournal,
  type JournalRecord,
  type SnapshotRecord,
} from "../src/index.ts";
import { depositSession, toRecords, tradingSession } from "./trading-session.ts";

/** Fresh, empty storage for one test, and a way to reach it behind the journal's back. */
export interface JournalStorage {
  /** A new, unopened journal over this storage; each call is a process starting again. */
  journal(): EventJournal;
  /** Runs SQL on the storage directly (unqualified table names), as damage or another program would. */
  query(sql: string): Promise<Record<string, unknown>[]>;
  /** SQL that damages the events of the journal rows matching `where`, in this storage's dialect. */
  readonly damage: {
    /** A torn write: the row's bytes cut to half, its checksum still that of the whole. */
    truncate(where: string): string;
    /** One byte (the 21st) changed. */
    alterByte(where: string): string;
  };
  dispose(): Promise<void>;
}

export type JournalStorageFactory = () => Promise<JournalStorage>;

/**
 * Records per query while a journal verifies its tail: drivers under test are built with this small
 * batch so that every test crosses batch boundaries.
 */
export const TEST_VERIFICATION_BATCH_SIZE = 4;

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection");
}

function snapshotAt(events: readonly EngineEvent[], sequence: number, config = defaultEngineConfig()): SnapshotRecord {
  const engine = TradingEngine.replay(config, events.slice(0, sequence));
  return { sequence, stateHash: engine.stateHash(), state: engine.snapshot(), createdAt: 1_780_000_000_000 + sequence };
}

/** Registers the contract's describe blocks for one driver. */
export function journalContract(factory: JournalStorageFactory): void {
  let storage: JournalStorage | null = null;
  const opened: EventJournal[] = [];

  async function freshStorage(): Promise<JournalStorage> {
    storage = await factory();
    return storage;
  }

  /** Opens a journal over the storage and closes it after the test. */
  async function openJournal(over: JournalStorage): Promise<EventJournal> {
    const journal = over.journal();
    await journal.open();
    opened.push(journal);
    return journal;
  }

  async function reopen(over: JournalStorage, journal: EventJournal): Promise<EventJournal> {
    await journal.close();
    return openJournal(over);
  }

  afterEach(async () => {
    for (const journal of opened.splice(0)) await journal.close();
    await storage?.dispose();
    storage = null;
  });

  describe("schema", () => {
    it("open() creates the schema and records every migration once, however often it opens", async () => {
      const over = await freshStorage();
      const journal = await openJournal(over);
      await reopen(over, journal);
      const versions = await over.query("SELECT version FROM schema_migrations ORDER BY version");
      // Each once, none skipped (the drivers' lists differ in length: SQLite has a fifth).
      const numbers = versions.map((row) => Number(row.version));
      expect(numbers).toEqual(numbers.map((_, index) => index + 1));
      expect(numbers.length).toBeGreaterThanOrEqual(4);
    });

    // `bourse migrate` said "schema up to date" whether it had applied every migration or none (found by the audit
    // of an operator's journey): the open reports what it applied.
    it("open() reports the migrations it applied, by number and name, and none once the schema is this build's", async () => {
      const over = await freshStorage();
      const first = over.journal();
      const { appliedMigrations } = await first.open();
      opened.push(first);
      const recorded = await over.query("SELECT version, name FROM schema_migrations ORDER BY version");
      expect(appliedMigrations).toEqual(recorded.map((row) => ({ version: Number(row.version), name: row.name })));
      expect(appliedMigrations[0]).toEqual({ version: 1, name: "journal and snapshots" });
      await first.close();
      opened.splice(opened.indexOf(first), 1);
      const again = over.journal();
      expect((await again.open()).appliedMigrations).toEqual([]);
      opened.push(again);
    });

    it("refuses storage whose schema is newer than this build knows", async () => {
      const over = await freshStorage();
      await (await openJournal(over)).close();
      await over.query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'from the future', 0)");
      await expect(over.journal().open()).rejects.toThrow(/newer than this build/);
    });

    // Found by the audit of durability of 7 December: `bourse verify` of a newer build migrated the database under the
    // server that was running on it.
    it("an inspection (keepTornTail) of a schema behind this build's migrates nothing and says to migrate first", async () => {
      const over = await freshStorage();
      await (await openJournal(over)).close();
      const newest = async () =>
        Number((await over.query("SELECT max(version) AS newest FROM schema_migrations"))[0]!.newest);
      const known = await newest();
      await over.query(`DELETE FROM schema_migrations WHERE version = ${known}`);
      await expect(over.journal().open({ keepTornTail: true })).rejects.toThrow(
        `is at schema version ${known - 1} and this build at ${known}: an inspection does not migrate it; stop the server and run \`bourse migrate\` first`,
      );
      expect(await newest()).toBe(known - 1);
      // One that is up to date opens.
      await over.query(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (${known}, 'put back', 0)`);
      const inspection = over.journal();
      await inspection.open({ keepTornTail: true });
      opened.push(inspection);
    });

    it("a new journal is empty and opens clean", async () => {
      const over = await freshStorage();
      const journal = over.journal();
      expect(await journal.open()).toMatchObject({ lastSequence: 0, droppedTornRecords: 0, damagedSnapshots: [] });
      opened.push(journal);
      expect(await journal.lastSequence()).toBe(0);
      expect(await journal.read(0, 100)).toEqual([]);
      expect(await journal.latestSnapshot()).toBeNull();
    });

    it("refuses to be used before open()", async () => {
      const over = await freshStorage();
      const journal = over.journal();
      await expect(journal.lastSequence()).rejects.toThrow(/not open/);
      await expect(journal.append(toRecords(tradingSession().events))).rejects.toThrow(/not open/);
    });
  });

  describe("append and read", () => {
    it("reads back what was appended, in order, from any point", async () => {
      const { events } = tradingSession();
      const records = toRecords(events);
      const journal = await openJournal(await freshStorage());
      await journal.append(records.slice(0, 3));
      await journal.append(records.slice(3, 4));
      await journal.append(records.slice(4));
      expect(await journal.lastSequence()).toBe(records.length);
      expect(await journal.read(0, 1000)).toEqual(records);
      expect(await journal.read(2, 3)).toEqual(records.slice(2, 5));
      expect(await journal.read(records.length, 10)).toEqual([]);
      await expect(journal.read(-1, 10)).rejects.toThrow(RangeError);
      await expect(journal.read(0, 0)).rejects.toThrow(RangeError);
    });

    it("events round-trip exactly: the same JSON, every type the session made", async () => {
      const { events } = tradingSession();
      const types = new Set(events.map((event) => event.type));
      for (const type of ["AccountOpened", "BalanceOperation", "OrderAccepted", "DealExecuted", "OrderStatusChanged"])
        expect(types).toContain(type);
      const journal = await openJournal(await freshStorage());
      await journal.append(toRecords(events));
      const read = await journal.read(0, 1000);
      expect(read.map((record) => record.event)).toEqual(events);
      expect(read.map((record) => JSON.stringify(record.event))).toEqual(events.map((event) => JSON.stringify(event)));
    });

    it("replaying the journaled events gives the live engine's state hash", async () => {
      const { config, engine, events } = tradingSession();
      const journal = await openJournal(await freshStorage());
      await journal.append(toRecords(events));
      const replayed = TradingEngine.replay(
        config,
        (await journal.read(0, 1000)).map((record) => record.event),
      );
      expect(replayed.stateHash()).toBe(engine.stateHash());
    });

    it("reads the rows written as JSON text before the binary form, and appends binary rows after them", async () => {
      const { config, engine, events } = tradingSession();
      const records = toRecords(events);
      const over = await freshStorage();
      const journal = await openJournal(over);
      // Rows as the journal wrote them before the binary form: a row of one event (the object alone) and a
      // row of several (a JSON array), each checksummed over its UTF-8 text.
      for (const [from, to] of [
        [0, 1],
        [1, 7],
      ] as const) {
        const first = records[from]!.sequence;
        const last = records[to - 1]!.sequence;
        const slice = events.slice(from, to);
        const payload = JSON.stringify(to - from === 1 ? slice[0] : slice);
        const checksum = batchChecksum(first, last, payload);
        await over.query(
          `INSERT INTO journal (first_sequence, last_sequence, payload, checksum) VALUES (${first}, ${last}, '${payload.replaceAll("'", "''")}', ${checksum})`,
        );
      }
      const reopened = await reopen(over, journal);
      expect(await reopened.lastSequence()).toBe(7);
      await reopened.append(records.slice(7, 12));
      await reopened.append(records.slice(12));
      expect(await reopened.read(0, 1000)).toEqual(records);
      expect(await reopened.read(5, 4)).toEqual(records.slice(5, 9));
      const again = await reopen(over, reopened);
      expect(await again.read(0, 1000)).toEqual(records);
      const replayed = TradingEngine.replay(
        config,
        (await again.read(0, 1000)).map((record) => record.event),
      );
      expect(replayed.stateHash()).toBe(engine.stateHash());
    });

    it("appends made without waiting land in call order", async () => {
      const records = toRecords(depositSession(30).events);
      const journal = await openJournal(await freshStorage());
      await Promise.all([
        journal.append(records.slice(0, 10)),
        journal.append(records.slice(10, 20)),
        journal.append(records.slice(20)),
      ]);
      expect(await journal.read(0, 100)).toEqual(records);
    });

    it("an empty batch is a no-op", async () => {
      const journal = await openJournal(await freshStorage());
      await journal.append([]);
      expect(await journal.lastSequence()).toBe(0);
    });
  });

  describe("an append larger than a row", () => {
    // Found by the audit of durability of 7 December: one command's events went in one row, refused past
    // MAX_ROW_RECORDS; the rollover that made them was refused, and so was every command after it, restarts included.
    it("is written as several rows in one transaction and reads back whole; a gap between its rows refuses it", async () => {
      const records = toRecords(depositSession(MAX_ROW_RECORDS + 5).events);
      const over = await freshStorage();
      const journal = await openJournal(over);
      const gapped = [...records.slice(0, MAX_ROW_RECORDS), ...records.slice(MAX_ROW_RECORDS + 1)];
      const refused = await rejection(journal.append(gapped));
      expect(refused).toBeInstanceOf(JournalRecordError);
      expect((refused as JournalRecordError).sequence).toBe(MAX_ROW_RECORDS + 2);
      expect(await journal.lastSequence()).toBe(0);
      await journal.append(records.slice(0, 3));
      await journal.append(records.slice(3));
      expect(await journal.lastSequence()).toBe(records.length);
      const [counted] = await over.query("SELECT count(*) AS count FROM journal");
      expect(Number(counted!.count)).toBe(3);
      const reopened = await reopen(over, journal);
      expect(await reopened.read(MAX_ROW_RECORDS - 2, 10)).toEqual(records.slice(MAX_ROW_RECORDS - 2));
    });
  });

  describe("sequences: gaps and duplicates are refused and nothing is written", () => {
    const records = toRecords(depositSession(10).events);

    async function journalWithThree(): Promise<EventJournal> {
      const journal = await openJournal(await freshStorage());
      await journal.append(records.slice(0, 3));
      return journal;
    }

    it("a batch that skips past the next sequence", async () => {
      const journal = await journalWithThree();
      const error = await rejection(journal.append(records.slice(4, 6)));
      expect(error).toBeInstanceOf(JournalRecordError);
      expect((error as JournalRecordError).sequence).toBe(5);
      expect(await journal.lastSequence()).toBe(3);
      expect(await journal.read(0, 100)).toEqual(records.slice(0, 3));
    });

    it("a batch that repeats journaled sequences", async () => {
      const journal = await journalWithThree();
      await expect(journal.append(records.slice(2, 6))).rejects.toBeInstanceOf(JournalRecordError);
      await expect(journal.append(records.slice(0, 1))).rejects.toBeInstanceOf(JournalRecordError);
      expect(await journal.read(0, 100)).toEqual(records.slice(0, 3));
    });

    it("a batch with a gap or a repeat inside it", async () => {
      const journal = await journalWithThree();
      const gapped = [records[3]!, records[5]!];
      const repeated = [records[3]!, records[3]!];
      await expect(journal.append(gapped)).rejects.toBeInstanceOf(JournalRecordError);
      await expect(journal.append(repeated)).rejects.toBeInstanceOf(JournalRecordError);
      expect(await journal.lastSequence()).toBe(3);
    });

    it("a journal that starts anywhere but 1", async () => {
      const journal = await openJournal(await freshStorage());
      await expect(journal.append(records.slice(1, 3))).rejects.toBeInstanceOf(JournalRecordError);
      await expect(journal.append([{ ...records[0]!, sequence: 0 }])).rejects.toBeInstanceOf(JournalRecordError);
      expect(await journal.lastSequence()).toBe(0);
    });

    it("a batch holding a value JSON would not keep exactly is refused whole", async () => {
      const journal = await journalWithThree();
      const fractional = { ...records[4]!, event: { ...records[4]!.event, amount: 1.5 } } as JournalRecord;
      const infinite = {
        ...records[4]!,
        event: { ...records[4]!.event, time: Number.POSITIVE_INFINITY },
      } as JournalRecord;
      await expect(journal.append([records[3]!, fractional])).rejects.toBeInstanceOf(JournalRecordError);
      await expect(journal.append([records[3]!, infinite])).rejects.toBeInstanceOf(JournalRecordError);
      expect(await journal.lastSequence()).toBe(3);
      await journal.append(records.slice(3));
      expect(await journal.read(0, 100)).toEqual(records);
    });

    // Whoever hands a batch over before the one ahead of it is durable must be able to count on this: a batch
    // never commits without the one before it.
    it("an append called behind a refused one, without waiting for it, is refused too and writes nothing", async () => {
      const journal = await journalWithThree();
      const fractional = { ...records[4]!, event: { ...records[4]!.event, amount: 1.5 } } as JournalRecord;
      const outcomes = await Promise.allSettled([
        journal.append(records.slice(2, 5)), // repeats sequence 3: refused by the storage
        journal.append(records.slice(5, 7)),
        journal.append([records[3]!, fractional]), // refused before it reaches the storage
        journal.append(records.slice(5, 7)),
      ]);
      for (const outcome of outcomes) {
        expect(outcome.status).toBe("rejected");
        expect((outcome as PromiseRejectedResult).reason).toBeInstanceOf(JournalRecordError);
      }
      expect(await journal.lastSequence()).toBe(3);
      expect(await journal.read(0, 100)).toEqual(records.slice(0, 3));
    });
  });

  describe("snapshots", () => {
    it("saves snapshots and returns the latest; one at the same sequence is replaced", async () => {
      const { events } = tradingSession();
      const journal = await openJournal(await freshStorage());
      await journal.append(toRecords(events));
      const early = snapshotAt(events, 3);
      const later = snapshotAt(events, 9);
      await journal.saveSnapshot(later);
      await journal.saveSnapshot(early);
      expect(await journal.latestSnapshot()).toEqual(later);
      const replacement = { ...later, createdAt: later.createdAt + 1 };
      await journal.saveSnapshot(replacement);
      expect(await journal.latestSnapshot()).toEqual(replacement);
    });

    // Found by the audit of limits of 7 December: every snapshot was kept, one every five minutes, for ever.
    it(`keeps the newest ${SNAPSHOTS_KEPT}: saving one deletes the older ones`, async () => {
      const { events } = tradingSession();
      const over = await freshStorage();
      const journal = await openJournal(over);
      await journal.append(toRecords(events));
      const sequences = [2, 4, 6, 8, 10];
      for (const sequence of sequences) await journal.saveSnapshot(snapshotAt(events, sequence));
      const kept = await over.query("SELECT sequence FROM snapshots ORDER BY sequence");
      expect(kept.map((row) => Number(row.sequence))).toEqual(sequences.slice(-SNAPSHOTS_KEPT));
      expect(await journal.latestSnapshot()).toEqual(snapshotAt(events, 10));
    });

    it("refuses a snapshot past the last journaled record", async () => {
      const { events } = tradingSession();
      const journal = await openJournal(await freshStorage());
      await journal.append(toRecords(events.slice(0, 5)));
      const error = await rejection(journal.saveSnapshot(snapshotAt(events, 6)));
      expect(error).toBeInstanceOf(JournalRecordError);
      expect(await journal.latestSnapshot()).toBeNull();
    });

    // Found by the review of 7 December: verify and a recovery through a sequence took the newest snapshot, one a
    // server beside them had saved past it, and reported it "past the journal's last sequence".
    it("the latest at or before a sequence, and a recovery through a sequence that a newer snapshot follows", async () => {
      const { config, events } = tradingSession();
      const journal = await openJournal(await freshStorage());
      await journal.append(toRecords(events));
      for (const sequence of [0, 4, 8]) await journal.saveSnapshot(snapshotAt(events, sequence, config));
      expect((await journal.latestSnapshot(7))?.sequence).toBe(4);
      expect((await journal.latestSnapshot(8))?.sequence).toBe(8);
      expect((await journal.latestSnapshot(3))?.sequence).toBe(0);
      const recovered = await recoverEngine(journal, config, { through: 6 });
      expect(recovered).toMatchObject({ lastSequence: 6, snapshotSequence: 4 });
      expect(recovered.engine.stateHash()).toBe(TradingEngine.replay(config, events.slice(0, 6)).stateHash());
      // A snapshot of the empty journal folded no event: recovery starts from it.
      expect(await recoverEngine(journal, config, { through: 2 })).toMatchObject({
        lastSequence: 2,
        snapshotSequence: 0,
      });
    });

    it("the latest snapshot plus the events after it recovers the live engine's state hash", async () => {
      const { config, engine, events } = tradingSession();
      const journal = await openJournal(await freshStorage());
      await journal.append(toRecords(events));
      await journal.saveSnapshot(snapshotAt(events, 7, config));
      const snapshot = (await journal.latestSnapshot())!;
      const recovered = TradingEngine.fromSnapshot(config, snapshot.state);
      expect(recovered.stateHash()).toBe(snapshot.stateHash);
      for (const record of await journal.read(snapshot.sequence, 1000)) recovered.applyRecovered(record.event);
      expect(recovered.stateHash()).toBe(engine.stateHash());
    });
  });

  describe("reopening", () => {
    it("keeps every record and snapshot, and the journal carries on from its last sequence", async () => {
      const records = toRecords(depositSession(12).events);
      const over = await freshStorage();
      const first = await openJournal(over);
      await first.append(records.slice(0, 10));
      const snapshot = snapshotAt(
        records.map((record) => record.event),
        6,
      );
      await first.saveSnapshot(snapshot);
      await first.close();
      const second = over.journal();
      expect(await second.open()).toEqual({
        lastSequence: 10,
        droppedTornRecords: 0,
        damagedSnapshots: [],
        appliedMigrations: [],
      });
      opened.push(second);
      expect(await second.read(0, 100)).toEqual(records.slice(0, 10));
      expect(await second.latestSnapshot()).toEqual(snapshot);
      await second.append(records.slice(10));
      expect(await second.read(0, 100)).toEqual(records);
    });

    // Two servers on one database each ran an engine: each refused the other's next write, and served balances
    // and sessions the other had changed without knowing it.
    it("has one writer: a second writing open is refused while the first is open, an inspection is not, and close() lets the lock go", async () => {
      const records = toRecords(depositSession(4).events);
      const over = await freshStorage();
      const first = await openJournal(over);
      await first.append(records.slice(0, 2));
      const refused = await rejection(over.journal().open());
      expect(refused).toBeInstanceOf(JournalLockedError);
      expect((refused as Error).message).toMatch(/another Bourse engine is writing the journal/);
      // The refused open took nothing: the first writes on, and an inspection reads beside it.
      await first.append(records.slice(2));
      const inspector = over.journal();
      expect(await inspector.open({ keepTornTail: true })).toMatchObject({ lastSequence: 4 });
      expect(await inspector.read(0, 10)).toEqual(records);
      await inspector.close();
      await first.close();
      const next = over.journal();
      expect(await next.open()).toMatchObject({ lastSequence: 4 });
      opened.push(next);
    });
  });

  describe("checksums", () => {
    const records = toRecords(depositSession(10).events);
    /** The row (the append) holding `sequence`. */
    const rowOf = (sequence: number) => `first_sequence <= ${sequence} AND last_sequence >= ${sequence}`;
    /** A torn write in the test's storage: the row cut short, its checksum still that of the whole. */
    const truncate = (sequence: number) => storage!.damage.truncate(rowOf(sequence));
    /** A damaged byte in the middle of a row. */
    const alter = (sequence: number) => storage!.damage.alterByte(rowOf(sequence));

    /** Appends the records one by one: each is its own append, so its own row. */
    async function appendOneByOne(journal: EventJournal, from: number, to: number): Promise<void> {
      for (const record of records.slice(from, to)) await journal.append([record]);
    }

    async function closedJournalOfTen(): Promise<JournalStorage> {
      const over = await freshStorage();
      const journal = over.journal();
      await journal.open();
      await appendOneByOne(journal, 0, 10);
      await journal.close();
      return over;
    }

    it("a damaged last record is a torn write: dropped, reported, and the journal carries on", async () => {
      const over = await closedJournalOfTen();
      await over.query(truncate(10));
      const journal = over.journal();
      expect(await journal.open()).toEqual({
        lastSequence: 9,
        droppedTornRecords: 1,
        damagedSnapshots: [],
        appliedMigrations: [],
      });
      opened.push(journal);
      expect(await journal.lastSequence()).toBe(9);
      expect(await journal.read(0, 100)).toEqual(records.slice(0, 9));
      await journal.append(records.slice(9));
      expect(await journal.read(0, 100)).toEqual(records);
    });

    it("the records of a damaged last append are dropped together", async () => {
      const over = await freshStorage();
      const journal = over.journal();
      await journal.open();
      await appendOneByOne(journal, 0, 6);
      await journal.append(records.slice(6));
      await journal.close();
      await over.query(alter(8));
      // Inspecting (verify, journal) reports the torn tail and leaves it: the rows are all still there after.
      const inspected = over.journal();
      expect(await inspected.open({ keepTornTail: true })).toMatchObject({ lastSequence: 6, droppedTornRecords: 4 });
      expect(await inspected.read(0, 6)).toEqual(records.slice(0, 6));
      await inspected.close();
      const reopened = over.journal();
      expect(await reopened.open()).toMatchObject({ lastSequence: 6, droppedTornRecords: 4 });
      opened.push(reopened);
      expect(await reopened.read(0, 100)).toEqual(records.slice(0, 6));
    });

    it("only the last append can be torn: damage in the two last rows is corruption, named at the first", async () => {
      const over = await closedJournalOfTen();
      await over.query(truncate(9));
      await over.query(alter(10));
      const error = await rejection(over.journal().open());
      expect(error).toBeInstanceOf(JournalCorruptionError);
      expect((error as JournalCorruptionError).sequence).toBe(9);
      expect(Number((await over.query("SELECT count(*) AS records FROM journal"))[0]!.records)).toBe(10);
    });

    it("a damaged record followed by sound ones is corruption: open() refuses, naming it, and drops nothing", async () => {
      const over = await closedJournalOfTen();
      await over.query(alter(5));
      await over.query(truncate(10));
      for (let attempt = 0; attempt < 2; attempt++) {
        const error = await rejection(over.journal().open());
        expect(error).toBeInstanceOf(JournalCorruptionError);
        expect((error as JournalCorruptionError).sequence).toBe(5);
        expect((error as Error).message).toMatch(/sequence 5/);
      }
      expect(Number((await over.query("SELECT count(*) AS records FROM journal"))[0]!.records)).toBe(10);
    });

    it("a missing record in the middle is corruption", async () => {
      const over = await closedJournalOfTen();
      await over.query(`DELETE FROM journal WHERE ${rowOf(4)}`);
      const error = await rejection(over.journal().open());
      expect(error).toBeInstanceOf(JournalCorruptionError);
      expect((error as JournalCorruptionError).sequence).toBe(4);
    });

    it("a damaged record a snapshot covers is corruption, even at the end", async () => {
      const over = await freshStorage();
      const journal = await openJournal(over);
      await appendOneByOne(journal, 0, 10);
      await journal.saveSnapshot(
        snapshotAt(
          records.map((record) => record.event),
          10,
        ),
      );
      await journal.close();
      await over.query(truncate(10));
      const error = await rejection(over.journal().open());
      expect(error).toBeInstanceOf(JournalCorruptionError);
      expect((error as JournalCorruptionError).sequence).toBe(10);
    });

    it("a damaged sequence column fails the checksum too", async () => {
      const over = await freshStorage();
      const journal = over.journal();
      await journal.open();
      await journal.append(records.slice(0, 5));
      await journal.append(records.slice(5));
      await journal.close();
      await over.query(`UPDATE journal SET last_sequence = 4 WHERE first_sequence = 1`);
      const error = await rejection(over.journal().open());
      expect(error).toBeInstanceOf(JournalCorruptionError);
      expect((error as JournalCorruptionError).sequence).toBe(1);
    });

    it("read() verifies checksums and refuses a damaged or missing record, naming it", async () => {
      const over = await freshStorage();
      const journal = await openJournal(over);
      await appendOneByOne(journal, 0, 10);
      await over.query(alter(3));
      const damaged = await rejection(journal.read(0, 100));
      expect(damaged).toBeInstanceOf(JournalCorruptionError);
      expect((damaged as JournalCorruptionError).sequence).toBe(3);
      expect(await journal.read(3, 100)).toEqual(records.slice(3));
      await over.query(`DELETE FROM journal WHERE ${rowOf(6)}`);
      const missing = await rejection(journal.read(3, 100));
      expect(missing).toBeInstanceOf(JournalCorruptionError);
      expect((missing as JournalCorruptionError).sequence).toBe(6);
    });

    it("a damaged snapshot is reported and skipped: the older one is used", async () => {
      const events = records.map((record) => record.event);
      const over = await freshStorage();
      const journal = await openJournal(over);
      await journal.append(records);
      await journal.saveSnapshot(snapshotAt(events, 3));
      await journal.saveSnapshot(snapshotAt(events, 6));
      await journal.close();
      await over.query("UPDATE snapshots SET state_hash = 'damaged' WHERE sequence = 6");
      const reopened = over.journal();
      expect(await reopened.open()).toEqual({
        lastSequence: 10,
        droppedTornRecords: 0,
        damagedSnapshots: [6],
        appliedMigrations: [],
      });
      opened.push(reopened);
      expect(await reopened.latestSnapshot()).toEqual(snapshotAt(events, 3));
    });
  });
}
