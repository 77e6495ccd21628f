import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { makeDatabaseFile, makeDirectories } from "../src/directories.ts";
import { SqliteJournal } from "../src/sqlite-journal.ts";
import { SqlitePlatformStore } from "../src/sqlite-platform-store.ts";

let scratch: string | null = null;
afterEach(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  scratch = null;
});

describe("makeDirectories", () => {
  it("creates every missing folder of a path, and leaves an existing one as it is", () => {
    scratch = mkdtempSync(path.join(tmpdir(), "bourse-directories-"));
    const nested = path.join(scratch, "a", "b", "c");
    makeDirectories(nested);
    expect(statSync(nested).isDirectory()).toBe(true);
    makeDirectories(nested);
    makeDirectories(scratch);
    expect(statSync(nested).isDirectory()).toBe(true);
  });

  it("fails at once with the system's error under a folder that refuses new entries (Node's recursive mkdir never returned)", () => {
    // /proc answers ENOENT to mkdir; Node 20's mkdirSync(..., { recursive: true }) loops forever on it.
    expect(existsSync("/proc/self")).toBe(true);
    expect(() => makeDirectories("/proc/bourse-data/journal")).toThrow(
      expect.objectContaining({ code: "ENOENT" }) as Error,
    );
  });

  it("fails with the system's error where a file stands in the path", () => {
    scratch = mkdtempSync(path.join(tmpdir(), "bourse-directories-"));
    const file = path.join(scratch, "file");
    writeFileSync(file, "x");
    expect(() => makeDirectories(path.join(file, "data"))).toThrow(
      expect.objectContaining({ code: "ENOTDIR" }) as Error,
    );
  });
});

// Found by the audit of an operator's journey of 7 December (sixth session): a database named by BOURSE_DATABASE_URL
// outside the data directory was created 0644 in folders of 0755, its users' password hashes readable by anyone.
describe("a SQLite database's file", () => {
  it("is made private, in a private folder, with its write-ahead log, by both stores", async () => {
    scratch = mkdtempSync(path.join(tmpdir(), "bourse-database-file-"));
    const journalPath = path.join(scratch, "journal", "j.sqlite");
    const platformPath = path.join(scratch, "platform", "p.sqlite");
    const journal = new SqliteJournal({ path: journalPath });
    await journal.open();
    await journal.close();
    const store = new SqlitePlatformStore({ path: platformPath });
    await store.open();
    for (const file of [journalPath, platformPath, `${platformPath}-wal`]) {
      if (existsSync(file)) expect(statSync(file).mode & 0o777, file).toBe(0o600);
    }
    expect(statSync(path.dirname(journalPath)).mode & 0o777).toBe(0o700);
    expect(statSync(path.dirname(platformPath)).mode & 0o777).toBe(0o700);
    await store.close();
  });

  it("an existing file keeps the permissions its operator gave it", () => {
    scratch = mkdtempSync(path.join(tmpdir(), "bourse-database-file-"));
    const file = path.join(scratch, "shared.sqlite");
    writeFileSync(file, "", { mode: 0o640 });
    makeDatabaseFile(file);
    expect(statSync(file).mode & 0o777).toBe(0o640);
  });
});
