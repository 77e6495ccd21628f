import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Worker } from "node:worker_threads";
import {
  NotFoundError,
  PLATFORM_LIMITS,
  PostgresPlatformStore,
  SqliteJournal,
  SqlitePlatformStore,
  ValidationError,
  createPlatformStore,
} from "../src/index.ts";
import { platformStoreContract, type PlatformStorage } from "./platform-store.contract.ts";

const directories: string[] = [];

function temporaryPath(name = "platform.db"): string {
  const directory = mkdtempSync(join(tmpdir(), "bourse-sqlite-platform-"));
  directories.push(directory);
  return join(directory, name);
}

function removeTemporaryDirectories(): void {
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
}

/** EXPLAIN QUERY PLAN of `sql` on a connection of its own to `path`. */
async function sqlitePlan(path: string, sql: string, params: readonly unknown[]): Promise<string[]> {
  const database = new Database(path);
  try {
    return (database.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[]).map(
      (row) => row.detail,
    );
  } finally {
    database.close();
  }
}

/** Runs `sql` (`{s}`: no prefix) on a connection of its own to `path`. */
async function sqliteExecute(path: string, sql: string): Promise<void> {
  const database = new Database(path);
  try {
    database.exec(sql.replaceAll("{s}", ""));
  } finally {
    database.close();
  }
}

async function sqliteStorage(): Promise<PlatformStorage> {
  const path = temporaryPath();
  return {
    store: () => new SqlitePlatformStore({ path }),
    plan: (sql, params) => sqlitePlan(path, sql, params),
    execute: (sql) => sqliteExecute(path, sql),
    async dispose() {
      removeTemporaryDirectories();
    },
  };
}

async function sqliteWorkerStorage(): Promise<PlatformStorage> {
  const path = temporaryPath();
  return {
    store: () => new SqlitePlatformStore({ path, derivedWrites: "worker" }),
    plan: (sql, params) => sqlitePlan(path, sql, params),
    execute: (sql) => sqliteExecute(path, sql),
    async dispose() {
      removeTemporaryDirectories();
    },
  };
}

/** The store's derived-data writer thread (private), to end it as a crash would. */
function derivedWorkerOf(store: SqlitePlatformStore): Worker {
  const db = (store as unknown as { db: { derivedWriter: { thread: { worker: Worker | null } } } }).db;
  return db.derivedWriter.thread.worker!;
}

describe("SqlitePlatformStore", () => {
  platformStoreContract(sqliteStorage);

  describe("SQLite only", () => {
    afterEach(removeTemporaryDirectories);

    // Found by the audit of limits of 7 December: one insert statement a batch, its text and prepared statement kept
    // for every batch size seen (1 to 1,000), never freed: 458 MB once every size had come.
    it("writes notification batches of every size with a few statement texts, in order", async () => {
      const store = new SqlitePlatformStore({ path: temporaryPath() });
      await store.open();
      const texts = new Set<string>();
      const prepare = Database.prototype.prepare;
      Database.prototype.prepare = function (this: Database.Database, source: string) {
        if (source.includes("INSERT INTO notifications")) texts.add(source);
        return prepare.call(this, source);
      } as typeof prepare;
      try {
        await store.createUser({ id: "u", email: "u@example.com", name: "U", passwordHash: "h", createdAt: 1 });
        for (let size = 1; size <= 130; size++) {
          const titles = Array.from({ length: size }, (_, index) => `${size}-${index}`);
          const stored = await store.addNotifications(
            titles.map((title) => ({
              userId: "u",
              kind: "ORDER_FILLED" as const,
              level: "info" as const,
              title,
              createdAt: 1,
            })),
          );
          expect(stored.map((notification) => notification.title)).toEqual(titles);
        }
      } finally {
        Database.prototype.prepare = prepare;
        await store.close();
      }
      expect(texts.size).toBeGreaterThan(0);
      expect(texts.size).toBeLessThanOrEqual(7);
    });

    it("writes notifications and candles with relaxed durability, then commits everything else with FULL again", async () => {
      const store = new SqlitePlatformStore({ path: temporaryPath() });
      await store.open();
      // The connection the store writes with (private): its synchronous setting after each kind of write.
      const database = (store as unknown as { db: { database: Database.Database } }).db.database;
      const FULL = 2;
      expect(database.pragma("synchronous", { simple: true })).toBe(FULL);
      await store.createUser({ id: "u1", email: "u1@example.com", name: "U", passwordHash: "h", createdAt: 1 });
      await store.addNotifications([
        { userId: "u1", kind: "ORDER_FILLED", level: "info", title: "filled", createdAt: 2 },
      ]);
      expect(database.pragma("synchronous", { simple: true })).toBe(FULL);
      await store.upsertCandles([
        { symbol: "EURUSD", timeframe: "M1", openTime: 0, open: 1, high: 2, low: 1, close: 2, tickVolume: 1 },
      ]);
      expect(database.pragma("synchronous", { simple: true })).toBe(FULL);
      await expect(
        store.addNotifications([{ userId: "nobody", kind: "ORDER_FILLED", level: "info", title: "x", createdAt: 3 }]),
      ).rejects.toThrow();
      expect(database.pragma("synchronous", { simple: true })).toBe(FULL);
      await store.close();
    });

    it("shares the journal's file without clashing, and both reopen", async () => {
      const path = temporaryPath("bourse.db");
      const journal = new SqliteJournal({ path });
      await journal.open();
      const store = new SqlitePlatformStore({ path });
      await store.open();
      await store.createUser({ id: "u", email: "u@example.com", name: "U", passwordHash: "h", createdAt: 1 });
      await store.close();
      await journal.close();
      const database = new Database(path, { readonly: true });
      const tables = database
        .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
        .all()
        .map((row) => row.name);
      database.close();
      expect(tables).toEqual(expect.arrayContaining(["journal", "schema_migrations", "users", "platform_migrations"]));
      const again = new SqlitePlatformStore({ path });
      await again.open();
      expect((await again.findUserById("u"))?.email).toBe("u@example.com");
      await again.close();
      const journalAgain = new SqliteJournal({ path });
      await journalAgain.open();
      await journalAgain.close();
    });

    it("refuses a file whose platform schema is newer than this build", async () => {
      const path = temporaryPath();
      const store = new SqlitePlatformStore({ path });
      await store.open();
      await store.close();
      const database = new Database(path);
      database.prepare("INSERT INTO platform_migrations (version, name, applied_at) VALUES (99, 'future', 0)").run();
      database.close();
      await expect(new SqlitePlatformStore({ path }).open()).rejects.toThrow(/newer than this build/);
    });

    it("upgrades a file of schema 2 (before the notifications' journal mark) and keeps its data", async () => {
      const path = temporaryPath();
      const store = new SqlitePlatformStore({ path });
      await store.open();
      await store.createUser({ id: "u", email: "u@example.com", name: "U", passwordHash: "h", createdAt: 1 });
      await store.addNotifications([{ userId: "u", kind: "ORDER_FILLED", level: "info", title: "old", createdAt: 2 }]);
      await store.close();
      // What the build before this migration left: no table, no row for version 3.
      const database = new Database(path);
      database.exec("DROP TABLE derived_through; DELETE FROM platform_migrations WHERE version = 3");
      database.close();
      const upgraded = new SqlitePlatformStore({ path });
      await upgraded.open();
      expect(await upgraded.notificationJournalSequence()).toBeNull();
      expect((await upgraded.listNotifications("u", { limit: 10 })).rows.map((n) => n.title)).toEqual(["old"]);
      await upgraded.addNotifications(
        [{ userId: "u", kind: "ORDER_FILLED", level: "info", title: "new", createdAt: 3 }],
        5,
      );
      expect(await upgraded.notificationJournalSequence()).toBe(5);
      await upgraded.close();
    });

    it("runs in memory", async () => {
      const store = createPlatformStore(":memory:");
      expect(store).toBeInstanceOf(SqlitePlatformStore);
      await store.open();
      await store.createUser({ id: "u", email: "u@example.com", name: "U", passwordHash: "h", createdAt: 1 });
      expect(await store.findUserByEmail("U@EXAMPLE.COM")).not.toBeNull();
      await store.close();
    });
  });
});

describe("SqlitePlatformStore, notifications and candles written by a thread of their own", () => {
  platformStoreContract(sqliteWorkerStorage);

  describe("the derived-data writer thread", () => {
    afterEach(removeTemporaryDirectories);

    const user = { id: "u1", email: "u1@example.com", name: "U", passwordHash: "h", createdAt: 1 };
    const note = (title: string) => ({
      userId: "u1",
      kind: "ORDER_FILLED" as const,
      level: "info" as const,
      title,
      createdAt: 2,
    });

    it("writes with its own connection: what it wrote is read at once on the caller's, which stays FULL", async () => {
      const store = new SqlitePlatformStore({ path: temporaryPath(), derivedWrites: "worker" });
      await store.open();
      await store.createUser(user);
      const stored = await store.addNotifications([note("a"), note("b")]);
      expect(stored.map((notification) => notification.title)).toEqual(["a", "b"]);
      expect((await store.listNotifications("u1", { limit: 10 })).rows.map((item) => item.title)).toEqual(["b", "a"]);
      const database = (store as unknown as { db: { database: Database.Database } }).db.database;
      expect(database.pragma("synchronous", { simple: true })).toBe(2);
      await store.close();
    });

    it("refuses a notification of an unknown user with the store's typed error, and writes the next", async () => {
      const store = new SqlitePlatformStore({ path: temporaryPath(), derivedWrites: "worker" });
      await store.open();
      await store.createUser(user);
      await expect(store.addNotifications([{ ...note("x"), userId: "nobody" }])).rejects.toBeInstanceOf(NotFoundError);
      expect(await store.addNotifications([note("after")])).toHaveLength(1);
      await store.close();
    });

    it("refuses the writes a thread that ended had not answered; the next write starts a new thread", async () => {
      const path = temporaryPath();
      const store = new SqlitePlatformStore({ path, derivedWrites: "worker" });
      await store.open();
      await store.createUser(user);
      const worker = derivedWorkerOf(store);
      const exited = new Promise((resolve) => worker.once("exit", resolve));
      // The thread ends before it reaches the write, as a crash between two requests would end it. It is ended by
      // its own close message, not `terminate()`: a thread terminated inside a SQLite call that then fails (a busy
      // wait for the lock) aborts the whole process, because better-sqlite3 cannot throw into a thread being
      // terminated (FATAL ERROR: v8::ToLocalChecked Empty MaybeLocal, which once took a test run down with it).
      worker.postMessage({ kind: "close" });
      const lost = store.addNotifications([note("lost")]);
      await exited;
      await expect(lost).rejects.toThrow(/writer thread ended/);
      expect(await store.addNotifications([note("after")])).toHaveLength(1);
      expect(derivedWorkerOf(store)).not.toBe(worker);
      expect((await store.listNotifications("u1", { limit: 10 })).rows.map((row) => row.title)).toEqual(["after"]);
      await store.close();
    });

    it("close waits for the writes handed over", async () => {
      const path = temporaryPath();
      const store = new SqlitePlatformStore({ path, derivedWrites: "worker" });
      await store.open();
      await store.createUser(user);
      const writes = Array.from({ length: 20 }, (_, index) => store.addNotifications([note(`n${index}`)]));
      await store.close();
      expect((await Promise.all(writes)).flat()).toHaveLength(20);
      const again = new SqlitePlatformStore({ path });
      await again.open();
      expect((await again.listNotifications("u1", { limit: 100 })).rows).toHaveLength(20);
      await again.close();
    });

    it("writes inline for an in-memory database (a second connection would see another one)", async () => {
      const store = new SqlitePlatformStore({ path: ":memory:", derivedWrites: "worker" });
      await store.open();
      await store.createUser(user);
      expect(await store.addNotifications([note("m")])).toHaveLength(1);
      expect((store as unknown as { db: { derivedWriter: unknown } }).db.derivedWriter).toBeNull();
      await store.close();
    });
  });
});

describe("createPlatformStore", () => {
  it("postgres:// and postgresql:// URLs make a PostgresPlatformStore, anything else a SQLite file", () => {
    expect(createPlatformStore("postgres://user@127.0.0.1:5432/bourse")).toBeInstanceOf(PostgresPlatformStore);
    expect(createPlatformStore("postgresql://user@127.0.0.1/bourse", { postgresSchema: "other" })).toMatchObject({
      schema: "other",
    });
    expect(createPlatformStore("data/platform.db")).toBeInstanceOf(SqlitePlatformStore);
  });
});

// A merge used to pass the 1,000-key bound; documents saved then may hold more. Such a document may still change
// its keys by a merge (a merge only refuses to add keys past the bound).
describe("SqlitePlatformStore: a settings document over the key bound from before", () => {
  afterEach(removeTemporaryDirectories);

  it("takes a merge that changes its keys, and refuses one that adds a key", async () => {
    const path = temporaryPath();
    const store = new SqlitePlatformStore({ path });
    await store.open();
    await store.createUser({ id: "u", email: "u@example.com", name: "U", passwordHash: "h", createdAt: 1 });
    await store.replaceSettings("u", { a: 1 }, 1);
    const over = Object.fromEntries(
      Array.from({ length: PLATFORM_LIMITS.settingsKeys + 5 }, (_, index) => [`k${index}`, index]),
    );
    const database = new Database(path);
    database.prepare("UPDATE settings SET document = ? WHERE user_id = 'u'").run(JSON.stringify(over));
    database.close();
    const changed = await store.mergeSettings("u", { k0: "changed" }, 2);
    expect(Object.keys(changed)).toHaveLength(PLATFORM_LIMITS.settingsKeys + 5);
    expect(changed.k0).toBe("changed");
    await expect(store.mergeSettings("u", { extra: 1 }, 3)).rejects.toBeInstanceOf(ValidationError);
    await store.close();
  });
});
