import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { JournalWriteError, PostgresJournal, SqliteJournal, createJournal } from "../src/index.ts";
import { TEST_VERIFICATION_BATCH_SIZE, journalContract, type JournalStorage } from "./journal.contract.ts";
import { readModelsContract } from "./read-models.contract.ts";
import { depositSession, toRecords } from "./trading-session.ts";

const directories: string[] = [];

/** A journal file in a fresh temporary directory: a file, not ':memory:', so WAL and reopening are real. */
function temporaryJournalPath(): string {
  const directory = mkdtempSync(join(tmpdir(), "bourse-sqlite-journal-"));
  directories.push(directory);
  return join(directory, "journal.db");
}

function removeTemporaryDirectories(): void {
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
}

async function sqliteStorage(): Promise<JournalStorage> {
  const path = temporaryJournalPath();
  return {
    journal: () => new SqliteJournal({ path, verificationBatchSize: TEST_VERIFICATION_BATCH_SIZE }),
    async query(sql) {
      // A second connection, as another program (or damage) would reach the file.
      const database = new Database(path);
      try {
        const statement = database.prepare(sql);
        return statement.reader ? (statement.all() as Record<string, unknown>[]) : (statement.run(), []);
      } finally {
        database.close();
      }
    },
    async dispose() {
      removeTemporaryDirectories();
    },
  };
}

describe("SqliteJournal", () => {
  journalContract(sqliteStorage);
  readModelsContract(sqliteStorage);

  describe("SQLite only", () => {
    const opened: SqliteJournal[] = [];
    afterEach(async () => {
      for (const journal of opened.splice(0)) await journal.close();
      removeTemporaryDirectories();
    });

    async function openSqlite(path: string, maxPageCount?: number): Promise<SqliteJournal> {
      const journal = new SqliteJournal({ path, maxPageCount });
      await journal.open();
      opened.push(journal);
      return journal;
    }

    it("keeps the file in WAL mode", async () => {
      const path = temporaryJournalPath();
      await openSqlite(path);
      const database = new Database(path, { readonly: true });
      expect(database.pragma("journal_mode", { simple: true })).toBe("wal");
      database.close();
    });

    it("a full disk refuses the batch with JournalWriteError, writes none of it, and works again once space returns", async () => {
      const records = toRecords(depositSession(600).events);
      const path = temporaryJournalPath();
      const journal = await openSqlite(path);
      await journal.append(records.slice(0, 100));
      // Cap the file at its current size: the next batch needs pages it cannot have.
      const cap = journal.setMaxPageCount(journal.pageCount());
      expect(cap).toBe(journal.pageCount());
      const error = await journal.append(records.slice(100)).then(
        () => null,
        (rejected: unknown) => rejected,
      );
      expect(error).toBeInstanceOf(JournalWriteError);
      expect((error as JournalWriteError).outcomeUnknown).toBe(false);
      expect((error as JournalWriteError).message).toMatch(/full/);
      expect(await journal.lastSequence()).toBe(100);
      expect(await journal.read(0, 1000)).toEqual(records.slice(0, 100));
      // Space returns: the same batch goes in, and the file reopens whole.
      journal.setMaxPageCount(1_000_000);
      await journal.append(records.slice(100));
      expect(await journal.read(0, 1000)).toEqual(records);
      await journal.close();
      const reopened = new SqliteJournal({ path });
      expect(await reopened.open()).toEqual({ lastSequence: 600, droppedTornRecords: 0, damagedSnapshots: [] });
      opened.push(reopened);
      expect(await reopened.read(0, 1000)).toEqual(records);
    });

    it("the maxPageCount option caps a journal from the start", async () => {
      const records = toRecords(depositSession(300).events);
      // Room for the schema (about a page per table and index) and little more.
      const journal = await openSqlite(temporaryJournalPath(), 32);
      await expect(journal.append(records)).rejects.toBeInstanceOf(JournalWriteError);
      expect(await journal.lastSequence()).toBe(0);
      journal.setMaxPageCount(10_000);
      await journal.append(records);
      expect(await journal.lastSequence()).toBe(300);
    });

    it("creates the data directory on first start", async () => {
      const path = join(dirname(temporaryJournalPath()), "data", "store", "journal.db");
      const journal = await openSqlite(path);
      await journal.append(toRecords(depositSession(3).events));
      expect(await journal.lastSequence()).toBe(3);
    });

    it("runs in memory for tests that need no file", async () => {
      const records = toRecords(depositSession(5).events);
      const journal = createJournal(":memory:");
      expect(journal).toBeInstanceOf(SqliteJournal);
      await journal.open();
      await journal.append(records);
      expect(await journal.read(0, 10)).toEqual(records);
      await journal.close();
    });
  });
});

describe("createJournal", () => {
  it("postgres:// and postgresql:// URLs make a PostgresJournal, anything else a SQLite file", () => {
    expect(createJournal("postgres://user@127.0.0.1:5432/bourse")).toBeInstanceOf(PostgresJournal);
    expect(createJournal("postgresql://user@127.0.0.1/bourse", { postgresSchema: "other" })).toMatchObject({
      schema: "other",
    });
    expect(createJournal("data/journal.db")).toBeInstanceOf(SqliteJournal);
  });
});
