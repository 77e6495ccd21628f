import Database from "better-sqlite3";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { endianness, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  CHECK_INTERVAL_MS,
  FALLBACK_INTERVAL_MS,
  SqliteCheckpointer,
  readWalProgress,
} from "../src/sqlite-checkpointer.ts";
import { SqliteJournal, type CheckpointReport, type JournalRecord } from "../src/index.ts";
import { checkpointPassively } from "../src/sqlite-journal.ts";
import { depositSession, toRecords } from "./trading-session.ts";

const directories: string[] = [];
const databases: Database.Database[] = [];
const checkpointers: SqliteCheckpointer[] = [];
const journals: SqliteJournal[] = [];

afterEach(async () => {
  for (const checkpointer of checkpointers.splice(0)) await checkpointer.close();
  for (const journal of journals.splice(0)) await journal.close();
  for (const database of databases.splice(0)) database.close();
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

function temporaryPath(name = "journal.db"): string {
  const directory = mkdtempSync(join(tmpdir(), "bourse-checkpointer-"));
  directories.push(directory);
  return join(directory, name);
}

/** A WAL database that never checkpoints by itself, with a table to write to. */
function walDatabase(path: string): Database.Database {
  const database = new Database(path);
  databases.push(database);
  database.pragma("journal_mode = WAL");
  database.pragma("wal_autocheckpoint = 0");
  database.exec("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)");
  return database;
}

/** Commits transactions of one 2 KiB row each until the WAL holds at least `frames` frames. */
function writeUntil(database: Database.Database, path: string, frames: number): void {
  const insert = database.prepare("INSERT INTO rows (payload) VALUES (?)");
  while ((readWalProgress(`${path}-shm`)?.walFrames ?? 0) < frames) insert.run("x".repeat(2048));
}

function progressOf(path: string) {
  const progress = readWalProgress(`${path}-shm`);
  if (!progress) throw new Error("no readable WAL-index header");
  return progress;
}

/** A checkpointer on `path` with a manual clock; `writerCopies` counts the copies it asks the writer for. */
function checkpointerOn(path: string, thresholdPages: number, writer?: Database.Database) {
  const clock = { now: 0 };
  const calls = { writerCopies: 0 };
  const checkpointer = new SqliteCheckpointer(
    { path },
    thresholdPages,
    async () => {
      calls.writerCopies += 1;
      if (writer) checkpointPassively(writer);
    },
    () => clock.now,
  );
  checkpointers.push(checkpointer);
  /** A write at `timeMs` (its look at the WAL, if due) and the copy it starts, if any. */
  const lookAt = async (timeMs: number) => {
    clock.now = timeMs;
    checkpointer.afterWrite();
    await checkpointer.settled();
  };
  /** The same, CHECK_INTERVAL_MS after the last write: its look is due. */
  const lookAfterWrite = () => lookAt(clock.now + CHECK_INTERVAL_MS);
  return { checkpointer, calls, lookAt, lookAfterWrite };
}

/** Another connection inside a read transaction: a PASSIVE copy cannot go past the snapshot it reads. */
function pinnedReader(path: string, table = "rows"): Database.Database {
  const reader = new Database(path);
  databases.push(reader);
  reader.exec("BEGIN");
  reader.prepare(`SELECT count(*) FROM ${table}`).get();
  return reader;
}

describe("readWalProgress (the WAL-index header of the -shm file)", () => {
  it("reads the frames in the WAL and those a checkpoint copied, as SQLite itself reports them", () => {
    const path = temporaryPath();
    const database = walDatabase(path);
    writeUntil(database, path, 20);
    const before = progressOf(path);
    expect(before.walFrames).toBeGreaterThanOrEqual(20);
    expect(before.copiedFrames).toBe(0);

    const copied = checkpointPassively(database);
    expect(copied.copiedFrames).toBe(copied.walFrames);
    expect(progressOf(path)).toEqual(copied);
  });

  it("is null for a missing file, a short one, and a header of another WAL-index version", () => {
    const path = temporaryPath("other.db");
    expect(readWalProgress(`${path}-shm`)).toBeNull();
    writeFileSync(`${path}-shm`, Buffer.alloc(40));
    expect(readWalProgress(`${path}-shm`)).toBeNull();
    const otherVersion = Buffer.alloc(136);
    otherVersion.writeUInt32LE(3_007_001, 0);
    otherVersion[12] = 1;
    writeFileSync(`${path}-shm`, otherVersion);
    expect(readWalProgress(`${path}-shm`)).toBeNull();
  });
});

describe("SqliteCheckpointer", () => {
  it("copies the WAL on its thread once the frames not yet copied reach the threshold, and the WAL starts over", async () => {
    const path = temporaryPath();
    const database = walDatabase(path);
    const { checkpointer, calls, lookAt, lookAfterWrite } = checkpointerOn(path, 40, database);

    writeUntil(database, path, 10);
    await lookAt(0);
    expect(checkpointer.report()).toMatchObject({ byThread: 0, byWriter: 0, failed: 0 });

    writeUntil(database, path, 40);
    const written = progressOf(path).walFrames;
    await lookAfterWrite();
    expect(checkpointer.report()).toMatchObject({ byThread: 1, byWriter: 0, failed: 0 });
    expect(progressOf(path)).toEqual({ walFrames: written, copiedFrames: written });
    expect(calls.writerCopies).toBe(0);

    // Everything was copied: the next write starts the WAL from its beginning again.
    database.prepare("INSERT INTO rows (payload) VALUES (?)").run("after the copy");
    expect(progressOf(path).walFrames).toBeLessThan(written);
    expect(progressOf(path).copiedFrames).toBe(0);
  });

  it("looks at the WAL at most every CHECK_INTERVAL_MS", async () => {
    const path = temporaryPath();
    const database = walDatabase(path);
    const { checkpointer, lookAt } = checkpointerOn(path, 40, database);
    await lookAt(0); // the first look, nothing due
    writeUntil(database, path, 40);
    await lookAt(CHECK_INTERVAL_MS - 1);
    expect(checkpointer.report().byThread).toBe(0);
    await lookAt(CHECK_INTERVAL_MS);
    expect(checkpointer.report().byThread).toBe(1);
  });

  it("leaves a small rest of a started copy to the writer, after which the WAL starts over", async () => {
    const path = temporaryPath();
    const database = walDatabase(path);
    const { checkpointer, calls, lookAfterWrite } = checkpointerOn(path, 80, database);
    writeUntil(database, path, 80);
    const reader = pinnedReader(path);
    const pinned = progressOf(path).walFrames;
    database.prepare("INSERT INTO rows (payload) VALUES (?)").run("after the reader");

    await lookAfterWrite();
    expect(checkpointer.report()).toMatchObject({ byThread: 1, byWriter: 0 });
    const afterThread = progressOf(path);
    expect(afterThread.copiedFrames).toBe(pinned);
    expect(afterThread.walFrames - afterThread.copiedFrames).toBeLessThanOrEqual(10);

    reader.exec("COMMIT");
    await lookAfterWrite();
    expect(checkpointer.report()).toMatchObject({ byThread: 1, byWriter: 1, failed: 0 });
    expect(calls.writerCopies).toBe(1);
    expect(progressOf(path).copiedFrames).toBe(afterThread.walFrames);

    database.prepare("INSERT INTO rows (payload) VALUES (?)").run("after the copy");
    expect(progressOf(path).walFrames).toBeLessThan(afterThread.walFrames);
  });

  it("copies with the thread, not the writer, while the rest of a started copy is large", async () => {
    const path = temporaryPath();
    const database = walDatabase(path);
    const { checkpointer, calls, lookAfterWrite } = checkpointerOn(path, 40, database);
    writeUntil(database, path, 40);
    const reader = pinnedReader(path);
    writeUntil(database, path, progressOf(path).walFrames + 20); // more than 40 / 8 after the reader's snapshot
    await lookAfterWrite();
    reader.exec("COMMIT");
    await lookAfterWrite();
    expect(checkpointer.report()).toMatchObject({ byThread: 2, byWriter: 0 });
    expect(calls.writerCopies).toBe(0);
  });

  it("without a WAL-index header it can read, copies every FALLBACK_INTERVAL_MS: the thread, then the writer", async () => {
    const path = temporaryPath();
    // A database in rollback-journal mode has no -shm file.
    const database = new Database(path);
    databases.push(database);
    database.exec("CREATE TABLE rows (id INTEGER PRIMARY KEY)");
    const { checkpointer, calls, lookAt } = checkpointerOn(path, 40);
    await lookAt(FALLBACK_INTERVAL_MS - CHECK_INTERVAL_MS);
    expect(checkpointer.report()).toMatchObject({ byThread: 0, byWriter: 0 });
    await lookAt(FALLBACK_INTERVAL_MS);
    expect(checkpointer.report()).toMatchObject({ byThread: 1, byWriter: 1, failed: 0 });
    expect(calls.writerCopies).toBe(1);
  });

  it("reports a checkpoint thread that cannot start, never throws to the writer, and tries again later", async () => {
    const path = temporaryPath();
    mkdirSync(path); // a directory where the database file should be: the thread's connection fails to open
    const { checkpointer, calls, lookAt } = checkpointerOn(path, 40);
    await expect(lookAt(FALLBACK_INTERVAL_MS)).resolves.toBeUndefined();
    expect(checkpointer.report()).toMatchObject({ byThread: 0, byWriter: 0, failed: 1 });
    expect(checkpointer.report().lastFailure).toMatch(/checkpoint thread ended/);
    // The writer's copy is not asked for after the thread's failed.
    expect(calls.writerCopies).toBe(0);

    await lookAt(2 * FALLBACK_INTERVAL_MS);
    expect(checkpointer.report().failed).toBe(2);
  });

  it("copies nothing when it reads the header while the WAL starts over (more copied than in the WAL)", async () => {
    const path = temporaryPath();
    // What a reader can see between the two stores of a restart: mxFrame already 0, nBackfill not yet.
    const header = Buffer.alloc(136);
    const write = endianness() === "LE" ? header.writeUInt32LE.bind(header) : header.writeUInt32BE.bind(header);
    write(3_007_000, 0);
    header[12] = 1;
    write(0, 16);
    write(50, 96);
    writeFileSync(`${path}-shm`, header);
    expect(readWalProgress(`${path}-shm`)).toEqual({ walFrames: 0, copiedFrames: 50 });
    const { checkpointer, calls, lookAfterWrite } = checkpointerOn(path, 40);
    await lookAfterWrite();
    expect(checkpointer.report()).toMatchObject({ byThread: 0, byWriter: 0, failed: 0 });
    expect(calls.writerCopies).toBe(0);
  });

  it("after close, starts no copy", async () => {
    const path = temporaryPath();
    const database = walDatabase(path);
    const { checkpointer, lookAfterWrite } = checkpointerOn(path, 10, database);
    writeUntil(database, path, 10);
    await checkpointer.close();
    await lookAfterWrite();
    expect(checkpointer.report().byThread).toBe(0);
  });
});

describe.each(["worker", "inline"] as const)("SqliteJournal with checkpoints on a thread, writer %s", (writer) => {
  /** An open journal whose WAL holds none of open()'s frames (migrations), so a test counts its own. */
  async function openJournal(path: string, backgroundCheckpointPages: number): Promise<SqliteJournal> {
    const journal = new SqliteJournal({ path, writer, checkpoints: "thread", backgroundCheckpointPages });
    journals.push(journal);
    await journal.open();
    startWalOver(path);
    return journal;
  }

  /** Copies the frames open() wrote (migrations) and starts the WAL over, so a test counts its own frames. */
  function startWalOver(path: string): void {
    const other = new Database(path);
    try {
      other.pragma("wal_checkpoint(TRUNCATE)");
    } finally {
      other.close();
    }
  }

  const pause = () => new Promise((resolve) => setTimeout(resolve, CHECK_INTERVAL_MS + 1));

  /** Closes `journal`, opens its file again with SQLite's own checkpoints, and reads back exactly `written`. */
  async function expectReadBackAfterReopening(
    journal: SqliteJournal,
    path: string,
    written: readonly JournalRecord[],
  ): Promise<void> {
    await journal.close();
    journals.splice(journals.indexOf(journal), 1);
    const reopened = new SqliteJournal({ path });
    journals.push(reopened);
    expect((await reopened.open()).lastSequence).toBe(written.length);
    expect(await reopened.read(0, written.length)).toEqual(written);
  }

  /** The first copy also starts the thread: waits for the report to show what is expected. */
  async function reportShows(journal: SqliteJournal, expected: Partial<CheckpointReport>): Promise<void> {
    for (let attempt = 0; attempt < 500 && !matches(journal.checkpointReport()!, expected); attempt++)
      await new Promise((resolve) => setTimeout(resolve, 10));
    expect(journal.checkpointReport()).toMatchObject(expected);
  }

  function matches(report: CheckpointReport, expected: Partial<CheckpointReport>): boolean {
    return Object.entries(expected).every(([key, value]) => report[key as keyof CheckpointReport] === value);
  }

  it("copies the WAL on the thread as appends go on, the WAL keeps starting over, and every record reads back after reopening", async () => {
    const path = temporaryPath();
    // A threshold a few appends of 20 records (about 9 frames each) cannot overshoot by much: should appends go
    // on during a copy, the rest it leaves stays under an eighth of it, which the writer finishes.
    const threshold = 240;
    const journal = await openJournal(path, threshold);
    const records = toRecords(depositSession(8000).events);
    let appended = 0;
    /** Appends the next 20 records, then lets a look at the WAL (at most every CHECK_INTERVAL_MS) and its copy happen. */
    const appendAndPause = async () => {
      await journal.append(records.slice(appended, appended + 20));
      appended += 20;
      await pause();
    };
    // The first copy also waits for the thread to start (longer on a busy machine): measure from after it.
    while (journal.checkpointReport()!.byThread === 0 && appended < records.length / 2) await appendAndPause();
    expect(journal.checkpointReport()!.byThread).toBeGreaterThan(0);

    const copiesBefore = journal.checkpointReport()!.byThread;
    let framesWritten = 0;
    let longestWal = 0;
    let startsOver = 0;
    for (let append = 0; append < 200; append++) {
      const before = progressOf(path).walFrames;
      await appendAndPause();
      const after = progressOf(path).walFrames;
      framesWritten += after > before ? after - before : after;
      if (after < before) startsOver += 1;
      longestWal = Math.max(longestWal, after);
    }
    const report = journal.checkpointReport()!;
    expect(report).toMatchObject({ failed: 0, lastFailure: null });
    expect(report.byThread - copiesBefore).toBeGreaterThanOrEqual(3);
    // The WAL kept starting over from its beginning: of several thresholds written, it never held more than a
    // few (the margin is for a busy machine, where a copy can take several appends).
    expect(framesWritten).toBeGreaterThan(6 * threshold);
    expect(startsOver).toBeGreaterThanOrEqual(2);
    expect(longestWal).toBeLessThan(4 * threshold);

    await expectReadBackAfterReopening(journal, path, records.slice(0, appended));
  });

  it("has the writer copy a small rest between two appends, and the WAL starts over after it", async () => {
    const path = temporaryPath();
    const threshold = 400;
    const journal = await openJournal(path, threshold);
    const records = toRecords(depositSession(2000).events);
    let next = 0;
    const appendOne = () => journal.append(records.slice(next, ++next));
    while (progressOf(path).walFrames < threshold - 20) await appendOne();
    // A reader pinned here: the thread's copy stops at it, leaving a rest of less than threshold / 8.
    const reader = pinnedReader(path, "journal");
    const pinned = progressOf(path).walFrames;
    await pause();
    while (progressOf(path).walFrames < threshold) await appendOne();
    await pause();
    await appendOne(); // its check starts the thread's copy
    await reportShows(journal, { byThread: 1, byWriter: 0, failed: 0 });
    expect(progressOf(path).copiedFrames).toBe(pinned);
    const rest = progressOf(path);
    expect(rest.walFrames - rest.copiedFrames).toBeLessThanOrEqual(threshold / 8);

    reader.exec("COMMIT");
    await pause();
    await appendOne(); // its check finds the small rest: the writer copies it
    await reportShows(journal, { byThread: 1, byWriter: 1, failed: 0 });
    const copied = progressOf(path);
    expect(copied.copiedFrames).toBe(copied.walFrames);
    await appendOne();
    expect(progressOf(path).walFrames).toBeLessThan(copied.walFrames);

    await expectReadBackAfterReopening(journal, path, records.slice(0, next));
  });

  it("reports no checkpoints with SQLite's own", async () => {
    const journal = new SqliteJournal({ path: temporaryPath(), writer });
    journals.push(journal);
    await journal.open();
    expect(journal.checkpointReport()).toBeNull();
  });

  it("refuses a background threshold that is not a positive integer", () => {
    expect(() => new SqliteJournal({ path: temporaryPath(), backgroundCheckpointPages: 0 })).toThrow(RangeError);
    expect(() => new SqliteJournal({ path: temporaryPath(), backgroundCheckpointPages: 1.5 })).toThrow(RangeError);
  });
});
