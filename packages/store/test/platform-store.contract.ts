/**
 * The PlatformStore's contract (issue 3: users, sessions, API keys, watchlists, scripts, settings, price
 * alerts and logs, notifications, candles), run against each driver by its own test file with a factory
 * for fresh, empty storage.
 */
import { afterEach, describe, expect, it } from "vitest";
import { MAX_BOOK_LEVELS } from "@bourse/core";
import {
  ALERT_CONDITIONS,
  DuplicateError,
  LimitReachedError,
  NotFoundError,
  PLATFORM_LIMITS,
  ValidationError,
  type NewPriceAlert,
  type PlatformStore,
} from "../src/index.ts";

/** Fresh, empty storage for one test. */
export interface PlatformStorage {
  /** A new, unopened store over this storage; each call is a process starting again. */
  store(): PlatformStore;
  /**
   * How the storage would read the tables for `sql` (a statement as the store runs it: its dialect, `?` placeholders)
   * with `params`: a line per table read, in the words of SQLite's EXPLAIN QUERY PLAN, "SCAN t" for every row of t,
   * "SEARCH t USING INDEX i (…)" for a range of index i, "SEARCH t USING INTEGER PRIMARY KEY (…)" for one of t's key.
   */
  plan(sql: string, params: readonly unknown[]): Promise<string[]>;
  /** Runs `sql` on a connection of its own, `{s}` standing for the tables' schema prefix: to make an older build's tables. */
  execute(sql: string): Promise<void>;
  dispose(): Promise<void>;
}

/** A statement a store ran, as its driver got it. */
interface RanStatement {
  readonly sql: string;
  readonly params: readonly unknown[];
}

interface Executor {
  all(sql: string, params?: readonly unknown[]): Promise<unknown>;
  run(sql: string, params?: readonly unknown[]): Promise<number>;
}

/** Records every statement `store` runs from now on, in transactions too (through its driver's executor, private). */
function recordStatements(store: PlatformStore): RanStatement[] {
  const ran: RanStatement[] = [];
  const recording = (executor: Executor): Executor => ({
    all: (sql, params = []) => {
      ran.push({ sql, params });
      return executor.all(sql, params);
    },
    run: (sql, params = []) => {
      ran.push({ sql, params });
      return executor.run(sql, params);
    },
  });
  const database = (store as unknown as { database: Executor & { transaction: Transaction } }).database;
  const { all, run } = recording({ all: database.all.bind(database), run: database.run.bind(database) });
  const transaction = database.transaction.bind(database);
  Object.assign(database, {
    all,
    run,
    transaction: ((work, options) => transaction((tx) => work(recording(tx)), options)) satisfies Transaction,
  });
  return ran;
}

type Transaction = (work: (tx: Executor) => Promise<unknown>, options?: object) => Promise<unknown>;

export type PlatformStorageFactory = () => Promise<PlatformStorage>;

const T0 = 1_780_000_000_000;

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection");
}

/** Registers the contract's describe blocks for one driver. */
export function platformStoreContract(factory: PlatformStorageFactory): void {
  let storage: PlatformStorage | null = null;
  const opened: PlatformStore[] = [];

  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
    await storage?.dispose();
    storage = null;
  });

  async function openStore(over?: PlatformStorage): Promise<PlatformStore> {
    storage = over ?? storage ?? (await factory());
    const store = storage.store();
    await store.open();
    opened.push(store);
    return store;
  }

  /** A store with two users, alice and bob. */
  async function withUsers(): Promise<PlatformStore> {
    const store = await openStore();
    await store.createUser({
      id: "alice",
      email: "Alice@Example.com",
      name: "Alice",
      passwordHash: "h1",
      createdAt: T0,
    });
    await store.createUser({ id: "bob", email: "bob@example.com", name: "Bob", passwordHash: "h2", createdAt: T0 });
    return store;
  }

  describe("PlatformStore: migrations", () => {
    // `bourse migrate` said "platform schema up to date" whether it had applied every migration or none (found by the
    // audit of an operator's journey): the open reports what it applied.
    it("open() reports the migrations it applied, by number and name, and none once the schema is this build's", async () => {
      storage = await factory();
      const first = storage.store();
      const { appliedMigrations } = await first.open();
      opened.push(first);
      expect(appliedMigrations.map((migration) => migration.version)).toEqual(
        appliedMigrations.map((_, index) => index + 1),
      );
      expect(appliedMigrations[0]).toEqual({ version: 1, name: "platform data" });
      expect(appliedMigrations.length).toBeGreaterThanOrEqual(10);
      await first.close();
      opened.splice(opened.indexOf(first), 1);
      const again = storage.store();
      expect(await again.open()).toEqual({ appliedMigrations: [] });
      opened.push(again);
    });

    it("opens an existing store again and keeps its data", async () => {
      const store = await withUsers();
      await store.close();
      opened.splice(opened.indexOf(store), 1);
      const again = await openStore();
      expect((await again.findUserById("alice"))?.name).toBe("Alice");
    });

    // Migration 12 (the audit of a mobile app's reconnects: an expired token could not be renewed).
    it("keeps the sessions from before refresh tokens, which have none and renew only by their token", async () => {
      const store = await withUsers();
      await store.createSession({ id: "old", userId: "alice", accountId: null, createdAt: T0, expiresAt: T0 + 1_000 });
      await store.close();
      opened.splice(opened.indexOf(store), 1);
      // The table as the build before migration 12 left it.
      await storage!.execute(`DROP INDEX {s}sessions_expires_plain;
        DROP INDEX {s}sessions_refresh_expires;
        ALTER TABLE {s}sessions DROP COLUMN refresh_nonce;
        ALTER TABLE {s}sessions DROP COLUMN refresh_generation;
        ALTER TABLE {s}sessions DROP COLUMN refresh_renewed_at;
        ALTER TABLE {s}sessions DROP COLUMN refresh_expires_at;
        CREATE INDEX sessions_expires ON {s}sessions (expires_at);
        DELETE FROM {s}platform_migrations WHERE version = 12`);
      const upgraded = storage!.store();
      expect(await upgraded.open()).toEqual({ appliedMigrations: [{ version: 12, name: "refresh tokens" }] });
      opened.push(upgraded);
      expect(await upgraded.findSession("old")).toMatchObject({ expiresAt: T0 + 1_000, refreshExpiresAt: null });
      const presented = {
        sessionId: "old",
        generation: 0,
        isGenuine: () => true,
        purpose: "refresh" as const,
        now: T0 + 5,
        expiresAt: T0 + 99,
        reuseGraceMs: 0,
      };
      expect((await upgraded.presentRefreshToken(presented)).kind).toBe("unknown");
      expect((await upgraded.extendSession("alice", "old", T0 + 2_000, T0 + 5))?.expiresAt).toBe(T0 + 2_000);
      expect(await upgraded.purgeExpiredSessions(T0 + 2_000)).toBe(1);
    });

    // Migration 10 (the audit of a web terminal: a notification's kind could be had only from its English title).
    it("gives the notifications from before kinds the kind their title says, and ids of none", async () => {
      const store = await withUsers();
      const titles = {
        "Order #12 filled": "ORDER_FILLED",
        "Order #13 partly filled": "ORDER_PARTIALLY_FILLED",
        "Position #5 closed": "POSITION_CLOSED",
        "Position #5 partly closed": "POSITION_CLOSED",
        "Position #5: 0.05 lots closed": "POSITION_CLOSED",
        "Stop loss: position #6 EURUSD closed": "STOP_LOSS",
        "Take profit: position #7 EURUSD closed": "TAKE_PROFIT",
        "Stop out: position #8 EURUSD closed": "STOP_OUT",
        "Stop out on account 1001": "STOP_OUT",
        "Margin call on account 1001": "MARGIN_CALL",
        "Margin call cleared on account 1001": "MARGIN_CALL_CLEARED",
        "Price alert: EURUSD bid crossing up 1.10000": "PRICE_ALERT",
        "Welcome to Bourse": null,
      };
      await store.addNotifications(
        Object.keys(titles).map((title) => ({
          userId: "alice",
          kind: "ORDER_FILLED",
          orderId: 1,
          level: "info",
          title,
          createdAt: T0,
        })),
      );
      await store.close();
      opened.splice(opened.indexOf(store), 1);
      // The tables as the build before migration 10 left them.
      await storage!.execute(`DROP INDEX {s}notifications_unread;
        ALTER TABLE {s}notifications DROP COLUMN kind;
        ALTER TABLE {s}notifications DROP COLUMN order_id;
        ALTER TABLE {s}notifications DROP COLUMN position_id;
        ALTER TABLE {s}notifications DROP COLUMN deal_id;
        ALTER TABLE {s}notifications DROP COLUMN alert_id;
        DELETE FROM {s}platform_migrations WHERE version = 10`);
      const upgraded = storage!.store();
      expect(await upgraded.open()).toEqual({
        appliedMigrations: [{ version: 10, name: "notification kinds and unread index" }],
      });
      opened.push(upgraded);
      const rows = (await upgraded.listNotifications("alice", { limit: 100 })).rows.reverse();
      expect(Object.fromEntries(rows.map((row) => [row.title, row.kind]))).toEqual(titles);
      expect(rows.every((row) => row.orderId === null && row.positionId === null && row.dealId === null)).toBe(true);
      expect(await upgraded.countUnreadNotifications("alice")).toBe(rows.length);
    });
  });

  describe("PlatformStore: users", () => {
    it("creates a user and finds it by id and by email, whatever the case", async () => {
      const store = await withUsers();
      const alice = await store.findUserById("alice");
      expect(alice).toEqual({
        id: "alice",
        email: "Alice@Example.com",
        name: "Alice",
        passwordHash: "h1",
        createdAt: T0,
        failedLoginCount: 0,
        lockedUntil: null,
        disabledAt: null,
      });
      expect(await store.findUserByEmail("alice@example.COM")).toEqual(alice);
      expect(await store.findUserByEmail("nobody@example.com")).toBeNull();
      expect(await store.findUserById("nobody")).toBeNull();
    });

    it("lists users in id order by pages, and refuses a limit past the page bound", async () => {
      const store = await withUsers();
      // Created after them, first in id order: the list is in id order, not creation order.
      await store.createUser({
        id: "aaron",
        email: "aaron@example.com",
        name: "Aaron",
        passwordHash: "h3",
        createdAt: T0,
      });
      const first = await store.listUsers(null, 2);
      expect(first.map((user) => user.id)).toEqual(["aaron", "alice"]);
      expect(first[1]).toEqual(await store.findUserById("alice"));
      expect((await store.listUsers("alice", 2)).map((user) => user.id)).toEqual(["bob"]);
      expect(await store.listUsers("bob", 2)).toEqual([]);
      await expect(store.listUsers(null, PLATFORM_LIMITS.pageLimit + 1)).rejects.toThrow(ValidationError);
    });

    it("refuses a duplicate email (case-insensitive) or id with DuplicateError", async () => {
      const store = await withUsers();
      const email = await rejection(
        store.createUser({ id: "alice2", email: "ALICE@example.com", name: "A", passwordHash: "h", createdAt: T0 }),
      );
      expect(email).toBeInstanceOf(DuplicateError);
      const id = await rejection(
        store.createUser({ id: "alice", email: "other@example.com", name: "A", passwordHash: "h", createdAt: T0 }),
      );
      expect(id).toBeInstanceOf(DuplicateError);
    });

    it("validates its inputs", async () => {
      const store = await openStore();
      const good = { id: "u", email: "u@example.com", name: "U", passwordHash: "h", createdAt: T0 };
      for (const bad of [
        { ...good, id: "" },
        { ...good, id: "has space" },
        { ...good, email: "not-an-email" },
        { ...good, name: "" },
        { ...good, name: "x".repeat(PLATFORM_LIMITS.nameLength + 1) },
        { ...good, passwordHash: "" },
        { ...good, createdAt: -1 },
        { ...good, createdAt: 1.5 },
      ])
        expect(await rejection(store.createUser(bad))).toBeInstanceOf(ValidationError);
      expect(await store.findUserById("u")).toBeNull();
    });

    it("updates the password hash", async () => {
      const store = await withUsers();
      await store.updatePasswordHash("alice", "new-hash");
      expect((await store.findUserById("alice"))?.passwordHash).toBe("new-hash");
      expect(await rejection(store.updatePasswordHash("nobody", "x"))).toBeInstanceOf(NotFoundError);
    });

    it("counts failed logins, locks at the limit, and a success resets both", async () => {
      const store = await withUsers();
      const policy = { now: T0, maxFailures: 3, lockMilliseconds: 60_000 };
      expect(await store.recordFailedLogin("alice", policy)).toMatchObject({ failedLoginCount: 1, lockedUntil: null });
      await store.recordFailedLogin("alice", policy);
      expect(await store.recordFailedLogin("alice", policy)).toMatchObject({
        failedLoginCount: 3,
        lockedUntil: T0 + 60_000,
      });
      expect((await store.findUserById("bob"))?.failedLoginCount).toBe(0);
      expect(await store.recordSuccessfulLogin("alice")).toMatchObject({ failedLoginCount: 0, lockedUntil: null });
      expect(await rejection(store.recordFailedLogin("nobody", policy))).toBeInstanceOf(NotFoundError);
    });

    // Found by the audit of security and operations of 7 December (third session): the count stayed at the limit after
    // the lock ran out, so one wrong guess every lock period (anyone's, from anywhere) kept the user locked out.
    it("starts a new count once the lock has run out: one failure after it does not lock again", async () => {
      const store = await withUsers();
      const policy = { now: T0, maxFailures: 3, lockMilliseconds: 60_000 };
      for (let failure = 0; failure < 3; failure += 1) await store.recordFailedLogin("alice", policy);
      const later = { ...policy, now: T0 + 60_000 };
      expect(await store.recordFailedLogin("alice", later)).toMatchObject({ failedLoginCount: 1, lockedUntil: null });
      await store.recordFailedLogin("alice", later);
      expect(await store.recordFailedLogin("alice", later)).toMatchObject({
        failedLoginCount: 3,
        lockedUntil: T0 + 120_000,
      });
    });

    // Migration 11: a user the back office disabled (compliance, fraud) keeps their row, with the time.
    it("disables a user and enables them again, the others untouched", async () => {
      const store = await withUsers();
      expect(await store.setUserDisabled("alice", T0 + 5)).toMatchObject({ id: "alice", disabledAt: T0 + 5 });
      expect((await store.findUserByEmail("alice@example.com"))?.disabledAt).toBe(T0 + 5);
      expect((await store.listUsers(null, 10)).map((user) => [user.id, user.disabledAt])).toEqual([
        ["alice", T0 + 5],
        ["bob", null],
      ]);
      expect(await store.setUserDisabled("alice", null)).toMatchObject({ disabledAt: null });
      expect(await rejection(store.setUserDisabled("nobody", T0))).toBeInstanceOf(NotFoundError);
      expect(await rejection(store.setUserDisabled("bob", -1))).toBeInstanceOf(ValidationError);
      expect((await store.findUserById("bob"))?.disabledAt).toBeNull();
    });

    it("counts concurrent failures exactly", async () => {
      const store = await withUsers();
      const policy = { now: T0, maxFailures: 100, lockMilliseconds: 1 };
      await Promise.all(Array.from({ length: 20 }, () => store.recordFailedLogin("alice", policy)));
      expect((await store.findUserById("alice"))?.failedLoginCount).toBe(20);
    });
  });

  describe("PlatformStore: sessions", () => {
    it("creates, finds, switches account and revokes a session, scoped by user", async () => {
      const store = await withUsers();
      const { session, revokedSessionIds } = await store.createSession({
        id: "s1",
        userId: "alice",
        accountId: 1001,
        createdAt: T0,
        expiresAt: T0 + 3_600_000,
      });
      expect(revokedSessionIds).toEqual([]);
      expect(session).toEqual({
        id: "s1",
        userId: "alice",
        accountId: 1001,
        createdAt: T0,
        expiresAt: T0 + 3_600_000,
        revokedAt: null,
        refreshExpiresAt: null,
      });
      expect(await store.findSession("s1")).toEqual(session);
      expect(await store.findSession("s2")).toBeNull();
      expect((await store.setSessionAccount("alice", "s1", 1002)).accountId).toBe(1002);
      expect(await rejection(store.setSessionAccount("bob", "s1", 7))).toBeInstanceOf(NotFoundError);
      expect(await store.revokeSession("bob", "s1", T0 + 1)).toBe(false);
      expect((await store.findSession("s1"))?.revokedAt).toBeNull();
      expect(await store.revokeSession("alice", "s1", T0 + 1)).toBe(true);
      expect(await store.revokeSession("alice", "s1", T0 + 2)).toBe(false);
      expect((await store.findSession("s1"))?.revokedAt).toBe(T0 + 1);
    });

    it("extends an unrevoked, unexpired session of its user, never backwards", async () => {
      const store = await withUsers();
      const base = { userId: "alice", accountId: null, createdAt: T0, expiresAt: T0 + 3_600_000 };
      await store.createSession({ ...base, id: "s1" });
      const extended = await store.extendSession("alice", "s1", T0 + 7_200_000, T0 + 60_000);
      expect(extended).toEqual({
        ...base,
        id: "s1",
        expiresAt: T0 + 7_200_000,
        revokedAt: null,
        refreshExpiresAt: null,
      });
      expect(await store.findSession("s1")).toEqual(extended);
      // Never earlier.
      expect((await store.extendSession("alice", "s1", T0 + 1_000, T0 + 60_000))?.expiresAt).toBe(T0 + 7_200_000);
      // Another user's, an unknown one, an expired one, a revoked one: null, and nothing changes.
      expect(await store.extendSession("bob", "s1", T0 + 9_000_000, T0 + 60_000)).toBeNull();
      expect(await store.extendSession("alice", "nope", T0 + 9_000_000, T0 + 60_000)).toBeNull();
      expect(await store.extendSession("alice", "s1", T0 + 9_000_000, T0 + 7_200_000)).toBeNull();
      await store.createSession({ ...base, id: "s2" });
      await store.revokeSession("alice", "s2", T0 + 1);
      expect(await store.extendSession("alice", "s2", T0 + 9_000_000, T0 + 60_000)).toBeNull();
      expect((await store.findSession("s2"))?.expiresAt).toBe(T0 + 3_600_000);
      expect((await store.findSession("s1"))?.expiresAt).toBe(T0 + 7_200_000);
    });

    it("refuses a duplicate id, an unknown user and an expiry before creation", async () => {
      const store = await withUsers();
      const session = { id: "s1", userId: "alice", accountId: null, createdAt: T0, expiresAt: T0 + 1000 };
      await store.createSession(session);
      expect(await rejection(store.createSession(session))).toBeInstanceOf(DuplicateError);
      expect(await rejection(store.createSession({ ...session, id: "s2", userId: "nobody" }))).toBeInstanceOf(
        NotFoundError,
      );
      expect(await rejection(store.createSession({ ...session, id: "s3", expiresAt: T0 }))).toBeInstanceOf(
        ValidationError,
      );
    });

    it("revokes all of a user's sessions but one, and no one else's", async () => {
      const store = await withUsers();
      for (const id of ["a1", "a2", "a3"])
        await store.createSession({ id, userId: "alice", accountId: null, createdAt: T0, expiresAt: T0 + 1000 });
      await store.createSession({ id: "b1", userId: "bob", accountId: null, createdAt: T0, expiresAt: T0 + 1000 });
      expect((await store.revokeOtherSessions("alice", "a2", T0 + 5)).sort()).toEqual(["a1", "a3"]);
      expect((await store.findSession("a1"))?.revokedAt).toBe(T0 + 5);
      expect((await store.findSession("a2"))?.revokedAt).toBeNull();
      expect((await store.findSession("a3"))?.revokedAt).toBe(T0 + 5);
      expect((await store.findSession("b1"))?.revokedAt).toBeNull();
      expect(await store.revokeOtherSessions("alice", null, T0 + 6)).toEqual(["a2"]);
    });

    it("purges expired and revoked sessions", async () => {
      const store = await withUsers();
      await store.createSession({ id: "old", userId: "alice", accountId: null, createdAt: T0, expiresAt: T0 + 10 });
      await store.createSession({ id: "gone", userId: "alice", accountId: null, createdAt: T0, expiresAt: T0 + 99 });
      await store.createSession({ id: "live", userId: "bob", accountId: null, createdAt: T0, expiresAt: T0 + 99 });
      await store.revokeSession("alice", "gone", T0 + 5);
      expect(await store.purgeExpiredSessions(T0 + 50)).toBe(2);
      expect(await store.findSession("old")).toBeNull();
      expect(await store.findSession("gone")).toBeNull();
      expect(await store.findSession("live")).not.toBeNull();
    });

    it("keeps a session its refresh tokens still renew, past its token's expiry, and purges it after", async () => {
      const store = await withUsers();
      const session = { userId: "alice", accountId: null, createdAt: T0, expiresAt: T0 + 10 };
      await store.createSession({ ...session, id: "renewable", refresh: { nonce: "n1", expiresAt: T0 + 1_000 } });
      await store.createSession({ ...session, id: "plain" });
      expect(await store.purgeExpiredSessions(T0 + 50)).toBe(1);
      expect(await store.findSession("plain")).toBeNull();
      expect((await store.findSession("renewable"))?.refreshExpiresAt).toBe(T0 + 1_000);
      expect(await store.purgeExpiredSessions(T0 + 1_000)).toBe(1);
      expect(await store.findSession("renewable")).toBeNull();
    });

    it("refuses refresh tokens that end before the session's token", async () => {
      const store = await withUsers();
      const session = { id: "a", userId: "alice", accountId: null, createdAt: T0, expiresAt: T0 + 10 };
      expect(
        await rejection(store.createSession({ ...session, refresh: { nonce: "n1", expiresAt: T0 + 9 } })),
      ).toBeInstanceOf(ValidationError);
      expect(await store.findSession("a")).toBeNull();
    });

    describe("presenting a refresh token", () => {
      const GRACE_MS = 30_000;
      const renewable = async () => {
        const store = await withUsers();
        await store.createSession({
          id: "s1",
          userId: "alice",
          accountId: null,
          createdAt: T0,
          expiresAt: T0 + 3_600_000,
          refresh: { nonce: "n1", expiresAt: T0 + 86_400_000 },
        });
        return store;
      };
      /** The token of `generation`, genuine (the session's nonce) unless `forged`. */
      const present = (
        store: PlatformStore,
        generation: number,
        now: number,
        options: { forged?: boolean; purpose?: "refresh" | "end"; sessionId?: string } = {},
      ) =>
        store.presentRefreshToken({
          sessionId: options.sessionId ?? "s1",
          generation,
          isGenuine: (nonce) => !options.forged && nonce === "n1",
          purpose: options.purpose ?? "refresh",
          now,
          expiresAt: now + 3_600_000,
          reuseGraceMs: GRACE_MS,
        });

      it("renews the session with the current token, answers the next one, and never moves the expiry back", async () => {
        const store = await renewable();
        const renewed = await present(store, 0, T0 + 7_200_000);
        expect(renewed).toEqual({
          kind: "renewed",
          generation: 1,
          nonce: "n1",
          session: expect.objectContaining({ id: "s1", expiresAt: T0 + 10_800_000, revokedAt: null }),
        });
        const again = await store.presentRefreshToken({
          sessionId: "s1",
          generation: 1,
          isGenuine: () => true,
          purpose: "refresh",
          now: T0 + 7_300_000,
          expiresAt: T0 + 1,
          reuseGraceMs: GRACE_MS,
        });
        expect(again.kind === "renewed" && [again.generation, again.session.expiresAt]).toEqual([2, T0 + 10_800_000]);
      });

      it("takes the token before within the grace (a lost answer) and answers the current one again", async () => {
        const store = await renewable();
        await present(store, 0, T0 + 1_000);
        const retried = await present(store, 0, T0 + 1_000 + GRACE_MS);
        expect(retried.kind === "renewed" && retried.generation).toBe(1);
        // The grace runs from the refresh it follows, not from the retry.
        expect((await present(store, 0, T0 + 1_001 + GRACE_MS)).kind).toBe("reused");
      });

      it("ends the session when any replaced token comes back past the grace, however many refreshes came since", async () => {
        const store = await renewable();
        // A thief's copy of token 0, renewed twice at once: the owner's token 0 comes back later.
        await present(store, 0, T0 + 1_000);
        await present(store, 1, T0 + 1_100);
        const reused = await present(store, 0, T0 + 5_000);
        expect(reused).toEqual({
          kind: "reused",
          session: expect.objectContaining({ id: "s1", revokedAt: T0 + 5_000 }),
        });
        // Every token of it is done: the current one too.
        expect((await present(store, 2, T0 + 6_000)).kind).toBe("revoked");
      });

      it("answers unknown for a forged token, a generation not issued, a session without refresh tokens and none, telling nothing else", async () => {
        const store = await renewable();
        expect((await present(store, 0, T0 + 1_000, { forged: true })).kind).toBe("unknown");
        expect((await present(store, 1, T0 + 1_000)).kind).toBe("unknown");
        await store.createSession({ id: "s2", userId: "alice", accountId: null, createdAt: T0, expiresAt: T0 + 10 });
        expect((await present(store, 0, T0 + 5, { sessionId: "s2" })).kind).toBe("unknown");
        expect((await present(store, 0, T0 + 5, { sessionId: "nope" })).kind).toBe("unknown");
        // A forged token learns nothing of an ended or expired session.
        expect((await present(store, 0, T0 + 86_400_000, { forged: true })).kind).toBe("unknown");
        await store.revokeSession("alice", "s1", T0 + 10);
        expect((await present(store, 0, T0 + 20, { forged: true })).kind).toBe("unknown");
        expect((await present(store, 0, T0 + 20)).kind).toBe("revoked");
      });

      it("never moves the token's expiry past the refresh tokens' end", async () => {
        const store = await renewable();
        const late = await present(store, 0, T0 + 86_000_000);
        expect(late.kind === "renewed" && late.session.expiresAt).toBe(T0 + 86_400_000);
      });

      it("answers expired past the refresh tokens' end, and changes nothing", async () => {
        const store = await renewable();
        expect((await present(store, 0, T0 + 86_400_000)).kind).toBe("expired");
        expect(await store.findSession("s1")).toMatchObject({ expiresAt: T0 + 3_600_000, revokedAt: null });
      });

      it("ends the session with any genuine token of it, and only with one", async () => {
        const store = await renewable();
        await present(store, 0, T0 + 1_000);
        expect((await present(store, 0, T0 + 2_000, { purpose: "end", forged: true })).kind).toBe("unknown");
        expect((await store.findSession("s1"))?.revokedAt).toBeNull();
        const ended = await present(store, 0, T0 + 2_000, { purpose: "end" });
        expect(ended).toEqual({ kind: "ended", session: expect.objectContaining({ revokedAt: T0 + 2_000 }) });
        expect((await present(store, 1, T0 + 3_000, { purpose: "end" })).kind).toBe("revoked");
      });

      it("ends a session's refresh tokens: every token of it stops working, its own token goes on", async () => {
        const store = await renewable();
        await present(store, 0, T0 + 1_000);
        expect(await store.endRefreshTokens("bob", "s1")).toBe(false);
        expect(await store.endRefreshTokens("alice", "s1")).toBe(true);
        expect(await store.findSession("s1")).toMatchObject({
          expiresAt: T0 + 3_601_000,
          refreshExpiresAt: null,
          revokedAt: null,
        });
        expect((await present(store, 1, T0 + 2_000)).kind).toBe("unknown");
        expect((await present(store, 0, T0 + 2_000)).kind).toBe("unknown");
        await store.revokeSession("alice", "s1", T0 + 3_000);
        expect(await store.endRefreshTokens("alice", "s1")).toBe(false);
      });

      it("answers two presentations of one token at once the same next token", async () => {
        const store = await renewable();
        const [first, second] = await Promise.all([present(store, 0, T0 + 1_000), present(store, 0, T0 + 1_000)]);
        expect([first, second].map((outcome) => outcome.kind === "renewed" && outcome.generation)).toEqual([1, 1]);
        expect((await present(store, 1, T0 + 2_000)).kind).toBe("renewed");
      });
    });

    it("counts a session its refresh tokens renew toward the user's bound", async () => {
      const store = await withUsers();
      const limit = PLATFORM_LIMITS.activeSessionsPerUser;
      for (let i = 0; i < limit; i++)
        await store.createSession({
          id: `r${i}`,
          userId: "alice",
          accountId: null,
          createdAt: T0 + i,
          expiresAt: T0 + 1_000,
          refresh: { nonce: `n${i}`, expiresAt: T0 + 86_400_000 },
        });
      // Every token expired, every session still renewable: the next sign-in revokes the oldest.
      const opened = await store.createSession({
        id: "next",
        userId: "alice",
        accountId: null,
        createdAt: T0 + 10_000,
        expiresAt: T0 + 20_000,
      });
      expect(opened.revokedSessionIds).toEqual(["r0"]);
    });

    it("bounds a user's active sessions: the next one revokes the oldest, in the same transaction", async () => {
      const store = await withUsers();
      const limit = PLATFORM_LIMITS.activeSessionsPerUser;
      const open = (id: string, userId: string, createdAt: number, expiresAt = T0 + 1_000_000) =>
        store.createSession({ id, userId, accountId: null, createdAt, expiresAt });
      // s0 is the oldest but expired, s1 revoked: neither counts nor is revoked again.
      await open("s0", "alice", T0, T0 + 1);
      await open("s1", "alice", T0 + 1);
      await store.revokeSession("alice", "s1", T0 + 2);
      for (let i = 2; i < limit + 2; i++)
        expect((await open(`s${i}`, "alice", T0 + 10 + i)).revokedSessionIds).toEqual([]);
      await open("b0", "bob", T0 + 5);
      // Alice is at the bound: her next session revokes her oldest active one (s2), nobody else's.
      const opened = await open("more", "alice", T0 + 500);
      expect(opened.revokedSessionIds).toEqual(["s2"]);
      expect(opened.session.revokedAt).toBeNull();
      expect((await store.findSession("s2"))?.revokedAt).toBe(T0 + 500);
      expect((await store.findSession("s3"))?.revokedAt).toBeNull();
      expect((await store.findSession("s1"))?.revokedAt).toBe(T0 + 2);
      expect((await store.findSession("b0"))?.revokedAt).toBeNull();
      // Still at the bound: the next one revokes the next oldest.
      expect((await open("again", "alice", T0 + 600)).revokedSessionIds).toEqual(["s3"]);
      // Below the bound (a logout made room), nothing is revoked.
      await store.revokeSession("alice", "s4", T0 + 601);
      expect((await open("room", "alice", T0 + 602)).revokedSessionIds).toEqual([]);
      expect((await store.findSession("s5"))?.revokedAt).toBeNull();
    });

    it("keeps the bound with concurrent sign-ins at the limit", async () => {
      const store = await withUsers();
      const limit = PLATFORM_LIMITS.activeSessionsPerUser;
      for (let i = 0; i < limit; i++)
        await store.createSession({
          id: `s${i}`,
          userId: "alice",
          accountId: null,
          createdAt: T0 + i,
          expiresAt: T0 + 9e6,
        });
      const opened = await Promise.all(
        Array.from({ length: 5 }, (_, i) =>
          store.createSession({
            id: `n${i}`,
            userId: "alice",
            accountId: null,
            createdAt: T0 + 1000,
            expiresAt: T0 + 9e6,
          }),
        ),
      );
      const revoked = opened.flatMap((each) => each.revokedSessionIds).sort();
      expect(revoked).toEqual(["s0", "s1", "s2", "s3", "s4"]);
      for (const id of revoked) expect((await store.findSession(id))?.revokedAt).toBe(T0 + 1000);
      expect((await store.findSession("s5"))?.revokedAt).toBeNull();
    });
  });

  describe("PlatformStore: API keys", () => {
    const key = {
      id: "k1",
      userId: "alice",
      accountId: 1001,
      name: "bot",
      scope: "trade" as const,
      prefix: "tk_live_aaaa",
      secretHash: "hash-1",
      createdAt: T0,
    };

    it("creates a key, finds it by prefix while active, lists it for its owner only", async () => {
      const store = await withUsers();
      const created = await store.createApiKey(key);
      expect(created).toEqual({ ...key, lastUsedAt: null, revokedAt: null, rotatedFrom: null });
      expect(await store.findActiveApiKeyByPrefix("tk_live_aaaa")).toEqual(created);
      expect(await store.findActiveApiKeyByPrefix("tk_live_bbbb")).toBeNull();
      expect(await store.listApiKeys("alice")).toEqual([created]);
      expect(await store.listApiKeys("bob")).toEqual([]);
      await store.touchApiKey("k1", T0 + 100);
      await store.touchApiKey("k1", T0 + 50);
      expect((await store.findActiveApiKeyByPrefix("tk_live_aaaa"))?.lastUsedAt).toBe(T0 + 100);
    });

    it("refuses a duplicate prefix or id, an unknown user, a bad scope", async () => {
      const store = await withUsers();
      await store.createApiKey(key);
      expect(await rejection(store.createApiKey({ ...key, id: "k2" }))).toBeInstanceOf(DuplicateError);
      expect(await rejection(store.createApiKey({ ...key, prefix: "tk_live_cccc" }))).toBeInstanceOf(DuplicateError);
      expect(
        await rejection(store.createApiKey({ ...key, id: "k3", prefix: "tk_live_dddd", userId: "nobody" })),
      ).toBeInstanceOf(NotFoundError);
      expect(
        await rejection(store.createApiKey({ ...key, id: "k4", prefix: "tk_live_eeee", scope: "admin" as "read" })),
      ).toBeInstanceOf(ValidationError);
    });

    it("revokes only the owner's key; a revoked key is not found by prefix", async () => {
      const store = await withUsers();
      await store.createApiKey(key);
      expect(await store.revokeApiKey("bob", "k1", T0 + 1)).toBe(false);
      expect(await store.findActiveApiKeyByPrefix(key.prefix)).not.toBeNull();
      expect(await store.revokeApiKey("alice", "k1", T0 + 1)).toBe(true);
      expect(await store.revokeApiKey("alice", "k1", T0 + 2)).toBe(false);
      expect(await store.findActiveApiKeyByPrefix(key.prefix)).toBeNull();
      expect((await store.listApiKeys("alice"))[0]?.revokedAt).toBe(T0 + 1);
    });

    it("rotates: the old key is revoked and the new one inherits account, name and scope", async () => {
      const store = await withUsers();
      await store.createApiKey(key);
      const next = { id: "k2", prefix: "tk_live_bbbb", secretHash: "hash-2", createdAt: T0 + 10 };
      const rotated = await store.rotateApiKey("alice", "k1", next);
      expect(rotated).toEqual({
        ...next,
        userId: "alice",
        accountId: 1001,
        name: "bot",
        scope: "trade",
        lastUsedAt: null,
        revokedAt: null,
        rotatedFrom: "k1",
      });
      expect(await store.findActiveApiKeyByPrefix(key.prefix)).toBeNull();
      expect(await store.findActiveApiKeyByPrefix(next.prefix)).toEqual(rotated);
      expect((await store.listApiKeys("alice")).map((k) => [k.id, k.revokedAt])).toEqual([
        ["k2", null],
        ["k1", T0 + 10],
      ]);
    });

    it("rotation is atomic: when the new key cannot be inserted, the old one stays active", async () => {
      const store = await withUsers();
      await store.createApiKey(key);
      await store.createApiKey({ ...key, id: "other", prefix: "tk_live_taken" });
      const error = await rejection(
        store.rotateApiKey("alice", "k1", { id: "k2", prefix: "tk_live_taken", secretHash: "h", createdAt: T0 + 1 }),
      );
      expect(error).toBeInstanceOf(DuplicateError);
      expect((await store.findActiveApiKeyByPrefix(key.prefix))?.revokedAt).toBeNull();
      expect((await store.listApiKeys("alice")).map((k) => k.id).sort()).toEqual(["k1", "other"]);
    });

    it("rotation refuses another user's key, a revoked key, and concurrent rotations yield one winner", async () => {
      const store = await withUsers();
      await store.createApiKey(key);
      const next = (n: number) => ({ id: `n${n}`, prefix: `tk_live_n${n}xx`, secretHash: "h", createdAt: T0 + n });
      expect(await rejection(store.rotateApiKey("bob", "k1", next(0)))).toBeInstanceOf(NotFoundError);
      const results = await Promise.allSettled([1, 2, 3, 4].map((n) => store.rotateApiKey("alice", "k1", next(n))));
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      for (const r of results) if (r.status === "rejected") expect(r.reason).toBeInstanceOf(NotFoundError);
      expect((await store.listApiKeys("alice")).filter((k) => k.revokedAt === null)).toHaveLength(1);
    });

    // Found by an audit: create-and-revoke and rotations left every row (502 for one user), and the user's oldest
    // active key dropped out of the list of the newest 200 rows while it still worked.
    it("lists the active keys first and keeps the newest revoked ones only", async () => {
      const store = await withUsers();
      await store.createApiKey({ ...key, id: "first", prefix: "tk_live_first" });
      const cycles = PLATFORM_LIMITS.revokedApiKeysKept + 5;
      for (let i = 0; i < cycles; i++) {
        await store.createApiKey({ ...key, id: `r${i}`, prefix: `tk_live_r${i}xx`, createdAt: T0 + 10 + i });
        expect(await store.revokeApiKey("alice", `r${i}`, T0 + 10 + i)).toBe(true);
      }
      const listed = await store.listApiKeys("alice");
      expect(listed[0]?.id).toBe("first");
      expect(listed.slice(1).map((k) => k.id)).toEqual(
        Array.from({ length: PLATFORM_LIMITS.revokedApiKeysKept }, (_, i) => `r${cycles - 1 - i}`),
      );
      // A rotation forgets the oldest revoked key too.
      await store.rotateApiKey("alice", "first", {
        id: "second",
        prefix: "tk_live_second",
        secretHash: "h",
        createdAt: T0 + 500,
      });
      const after = await store.listApiKeys("alice");
      expect(after[0]?.id).toBe("second");
      expect(after).toHaveLength(1 + PLATFORM_LIMITS.revokedApiKeysKept);
      // Kept by when they were revoked, listed by when they were made: "first" is the newest revoked, r5 went.
      expect(after.at(-1)?.id).toBe("first");
      expect(after.map((k) => k.id)).not.toContain("r5");
      expect(await store.findActiveApiKeyByPrefix("tk_live_second")).not.toBeNull();
    }, 30_000);

    it("bounds a user's active keys", async () => {
      const store = await withUsers();
      for (let i = 0; i < PLATFORM_LIMITS.activeApiKeysPerUser; i++)
        await store.createApiKey({ ...key, id: `k${i}`, prefix: `tk_live_${i}xxx` });
      expect(await rejection(store.createApiKey({ ...key, id: "kx", prefix: "tk_live_more" }))).toBeInstanceOf(
        ValidationError,
      );
      expect(await store.listApiKeys("alice")).toHaveLength(PLATFORM_LIMITS.activeApiKeysPerUser);
    });
  });

  describe("PlatformStore: watchlists", () => {
    it("appends, refuses duplicates, reorders by permutation and removes, per user", async () => {
      const store = await withUsers();
      expect(await store.getWatchlist("alice")).toEqual([]);
      await store.addToWatchlist("alice", "EURUSD");
      await store.addToWatchlist("alice", "USDJPY");
      expect(await store.addToWatchlist("alice", "XAUUSD")).toEqual(["EURUSD", "USDJPY", "XAUUSD"]);
      expect(await rejection(store.addToWatchlist("alice", "USDJPY"))).toBeInstanceOf(DuplicateError);
      await store.addToWatchlist("bob", "EURUSD");
      expect(await store.reorderWatchlist("alice", ["XAUUSD", "EURUSD", "USDJPY"])).toEqual([
        "XAUUSD",
        "EURUSD",
        "USDJPY",
      ]);
      expect(await store.getWatchlist("alice")).toEqual(["XAUUSD", "EURUSD", "USDJPY"]);
      for (const bad of [
        ["XAUUSD", "EURUSD"],
        ["XAUUSD", "EURUSD", "EURUSD"],
        ["XAUUSD", "EURUSD", "GBPUSD"],
      ])
        expect(await rejection(store.reorderWatchlist("alice", bad))).toBeInstanceOf(ValidationError);
      expect(await store.removeFromWatchlist("alice", "EURUSD")).toBe(true);
      expect(await store.removeFromWatchlist("alice", "EURUSD")).toBe(false);
      expect(await store.addToWatchlist("alice", "EURUSD")).toEqual(["XAUUSD", "USDJPY", "EURUSD"]);
      expect(await store.getWatchlist("bob")).toEqual(["EURUSD"]);
      expect(await rejection(store.addToWatchlist("alice", "bad symbol"))).toBeInstanceOf(ValidationError);
      expect(await rejection(store.addToWatchlist("nobody", "EURUSD"))).toBeInstanceOf(NotFoundError);
    });

    it(`holds at most ${PLATFORM_LIMITS.watchlistSymbols} symbols, even under concurrent adds`, async () => {
      const store = await withUsers();
      const symbols = Array.from({ length: PLATFORM_LIMITS.watchlistSymbols + 10 }, (_, i) => `SYM${i}`);
      const results = await Promise.allSettled(symbols.map((symbol) => store.addToWatchlist("alice", symbol)));
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(PLATFORM_LIMITS.watchlistSymbols);
      // A bound, not a malformed input: the faces answer LIMIT_REACHED (409), as they do for their own count.
      for (const r of results) if (r.status === "rejected") expect(r.reason).toBeInstanceOf(LimitReachedError);
      expect(await store.getWatchlist("alice")).toHaveLength(PLATFORM_LIMITS.watchlistSymbols);
    });
  });

  describe("PlatformStore: scripts", () => {
    const script = {
      id: "sc1",
      userId: "alice",
      name: "MA cross",
      language: "javascript",
      source: "export default () => 1;",
      description: "two moving averages",
      createdAt: T0,
    };

    // PostgreSQL refused a NUL (a 500 through the API) where SQLite kept it, and both changed an unpaired surrogate.
    it("refuses text with a NUL or an unpaired surrogate, on every driver, and keeps the rest exactly", async () => {
      const store = await withUsers();
      for (const bad of ["a\u0000b", "a\ud800b", "\udc00"])
        for (const field of ["name", "source", "description"] as const)
          expect(
            await rejection(store.createScript({ ...script, id: `bad-${field}`, [field]: bad })),
            `${field} ${JSON.stringify(bad)}`,
          ).toBeInstanceOf(ValidationError);
      const exact = await store.createScript({ ...script, name: "é € 😀 \t\u0001" });
      expect((await store.getScript("alice", exact.id))?.name).toBe("é € 😀 \t\u0001");
    });

    it("creates, reads, lists, updates and deletes a script, never another user's", async () => {
      const store = await withUsers();
      const created = await store.createScript(script);
      expect(created).toEqual({ ...script, updatedAt: T0 });
      expect(await store.getScript("alice", "sc1")).toEqual(created);
      expect(await store.getScript("bob", "sc1")).toBeNull();
      const { source: _source, ...summary } = created;
      expect(await store.listScripts("alice")).toEqual([summary]);
      expect(await store.listScripts("bob")).toEqual([]);
      expect(await store.updateScript("bob", "sc1", { name: "stolen" }, T0 + 1)).toBeNull();
      const updated = await store.updateScript("alice", "sc1", { source: "// v2", description: "" }, T0 + 2);
      expect(updated).toEqual({ ...created, source: "// v2", description: "", updatedAt: T0 + 2 });
      expect(await store.deleteScript("bob", "sc1")).toBe(false);
      expect(await store.deleteScript("alice", "sc1")).toBe(true);
      expect(await store.getScript("alice", "sc1")).toBeNull();
    });

    it("bounds the source size and the number of scripts; refuses a duplicate id", async () => {
      const store = await withUsers();
      const big = "x".repeat(PLATFORM_LIMITS.scriptSourceBytes + 1);
      expect(await rejection(store.createScript({ ...script, source: big }))).toBeInstanceOf(ValidationError);
      // Multi-byte characters count in bytes.
      const wide = "é".repeat(PLATFORM_LIMITS.scriptSourceBytes / 2 + 1);
      expect(await rejection(store.createScript({ ...script, source: wide }))).toBeInstanceOf(ValidationError);
      await store.createScript({ ...script, source: "x".repeat(PLATFORM_LIMITS.scriptSourceBytes) });
      expect(await rejection(store.updateScript("alice", "sc1", { source: big }, T0))).toBeInstanceOf(ValidationError);
      expect(await rejection(store.createScript(script))).toBeInstanceOf(DuplicateError);
      for (let i = 1; i < PLATFORM_LIMITS.scriptsPerUser; i++)
        await store.createScript({ ...script, id: `sc${i + 1}` });
      expect(await rejection(store.createScript({ ...script, id: "one-more" }))).toBeInstanceOf(LimitReachedError);
      expect(await store.listScripts("alice")).toHaveLength(PLATFORM_LIMITS.scriptsPerUser);
      await store.createScript({ ...script, id: "bobs", userId: "bob" });
    });
  });

  describe("PlatformStore: settings", () => {
    it("reads {} at first, replaces, merges top-level keys, per user", async () => {
      const store = await withUsers();
      expect(await store.getSettings("alice")).toEqual({});
      await store.replaceSettings("alice", { theme: "dark", chart: { type: "candles" } }, T0);
      expect(await store.mergeSettings("alice", { chart: { type: "line" }, lang: "en" }, T0 + 1)).toEqual({
        theme: "dark",
        chart: { type: "line" },
        lang: "en",
      });
      expect(await store.getSettings("alice")).toEqual({ theme: "dark", chart: { type: "line" }, lang: "en" });
      expect(await store.getSettings("bob")).toEqual({});
      expect(await store.mergeSettings("bob", { a: 1 }, T0)).toEqual({ a: 1 });
      await store.replaceSettings("alice", { only: true }, T0 + 2);
      expect(await store.getSettings("alice")).toEqual({ only: true });
    });

    it("refuses a non-object, an oversized document, and an unknown user", async () => {
      const store = await withUsers();
      for (const bad of [null, [1, 2], "text", 5])
        expect(await rejection(store.replaceSettings("alice", bad as never, T0))).toBeInstanceOf(ValidationError);
      const big = { blob: "x".repeat(PLATFORM_LIMITS.settingsBytes) };
      expect(await rejection(store.replaceSettings("alice", big, T0))).toBeInstanceOf(ValidationError);
      // A number JSON cannot write (it was kept as null): refused, at any depth.
      for (const bad of [{ n: Infinity }, { chart: { zoom: [1, -Infinity] } }, { n: NaN }])
        expect(await rejection(store.mergeSettings("alice", bad, T0))).toBeInstanceOf(ValidationError);
      // Each half fits; merged they do not.
      const half = "x".repeat(PLATFORM_LIMITS.settingsBytes / 2);
      await store.replaceSettings("alice", { a: half }, T0);
      expect(await rejection(store.mergeSettings("alice", { b: half }, T0))).toBeInstanceOf(ValidationError);
      expect(await store.getSettings("alice")).toEqual({ a: half });
      expect(await rejection(store.replaceSettings("nobody", {}, T0))).toBeInstanceOf(NotFoundError);
      expect(await rejection(store.mergeSettings("nobody", {}, T0))).toBeInstanceOf(NotFoundError);
    });

    // Found by an audit: five merges of 1,000 new keys each kept 5,000 keys (the bound was the route's, per body).
    it("bounds the top-level keys of the document a merge makes", async () => {
      const store = await withUsers();
      const keys = (prefix: string, count: number) =>
        Object.fromEntries(Array.from({ length: count }, (_, index) => [`${prefix}${index}`, 1]));
      await store.replaceSettings("alice", keys("a", PLATFORM_LIMITS.settingsKeys - 1), T0);
      expect(Object.keys(await store.mergeSettings("alice", keys("b", 1), T0))).toHaveLength(
        PLATFORM_LIMITS.settingsKeys,
      );
      expect(await rejection(store.mergeSettings("alice", keys("c", 1), T0))).toBeInstanceOf(ValidationError);
      expect(
        await rejection(store.replaceSettings("bob", keys("d", PLATFORM_LIMITS.settingsKeys + 1), T0)),
      ).toBeInstanceOf(ValidationError);
      expect(Object.keys(await store.getSettings("alice"))).toHaveLength(PLATFORM_LIMITS.settingsKeys);
      // Replacing a stored key is no new key.
      expect(Object.keys(await store.mergeSettings("alice", { a0: 2 }, T0))).toHaveLength(PLATFORM_LIMITS.settingsKeys);
    });
  });

  describe("PlatformStore: price alerts", () => {
    const alert: NewPriceAlert = {
      id: "al1",
      userId: "alice",
      accountId: 1001,
      symbol: "EURUSD",
      side: "BID",
      condition: "CROSSING_UP",
      targetPrice: 108500,
      message: "breakout",
      createdAt: T0,
    };

    it("creates, reads, lists, updates and deletes an alert, never another user's", async () => {
      const store = await withUsers();
      const created = await store.createAlert(alert);
      expect(created).toEqual({
        ...alert,
        channelLow: null,
        channelHigh: null,
        moveThreshold: null,
        referencePrice: null,
        repeating: false,
        expiration: null,
        status: "active",
        armedLegs: null,
        updatedAt: T0,
      });
      expect(await store.getAlert("alice", "al1")).toEqual(created);
      expect(await store.getAlert("bob", "al1")).toBeNull();
      expect(await store.listAlerts("alice")).toEqual([created]);
      expect(await store.listAlerts("bob")).toEqual([]);
      expect(await store.updateAlert("bob", "al1", { status: "disabled" }, T0 + 1)).toBeNull();
      const updated = await store.updateAlert("alice", "al1", { status: "triggered", repeating: true }, T0 + 2);
      expect(updated).toEqual({ ...created, status: "triggered", repeating: true, updatedAt: T0 + 2 });
      expect(await store.deleteAlert("bob", "al1")).toBe(false);
      expect(await store.deleteAlert("alice", "al1")).toBe(true);
      expect(await store.getAlert("alice", "al1")).toBeNull();
    });

    it("accepts each of the 13 conditions with its parameters and refuses them without", async () => {
      const store = await withUsers();
      for (const [index, condition] of ALERT_CONDITIONS.entries()) {
        const needs =
          index <= 3 || index === 12
            ? { targetPrice: 100 }
            : index <= 7
              ? { channelLow: 100, channelHigh: 200 }
              : { moveThreshold: 50, referencePrice: 1000 };
        const base = { ...alert, id: `c${index}`, condition, targetPrice: null };
        expect(await rejection(store.createAlert(base))).toBeInstanceOf(ValidationError);
        expect((await store.createAlert({ ...base, ...needs })).condition).toBe(condition);
      }
      const channel = { ...alert, id: "ch", condition: "INSIDE_CHANNEL" as const, channelLow: 200, channelHigh: 100 };
      expect(await rejection(store.createAlert(channel))).toBeInstanceOf(ValidationError);
      const move = { ...alert, id: "mv", condition: "MOVING_UP" as const, moveThreshold: 0 };
      expect(await rejection(store.createAlert(move))).toBeInstanceOf(ValidationError);
      for (const bad of [
        { ...alert, id: "b1", condition: "SIDEWAYS" as "CROSSING_UP" },
        { ...alert, id: "b2", side: "MID" as "BID" },
        { ...alert, id: "b3", targetPrice: 1.5 },
        { ...alert, id: "b4", status: "armed" as "active" },
        { ...alert, id: "b5", symbol: "" },
      ])
        expect(await rejection(store.createAlert(bad))).toBeInstanceOf(ValidationError);
      // An update is checked as the alert it would make.
      await store.createAlert(alert);
      expect(await rejection(store.updateAlert("alice", "al1", { condition: "INSIDE_CHANNEL" }, T0))).toBeInstanceOf(
        ValidationError,
      );
      expect((await store.getAlert("alice", "al1"))?.condition).toBe("CROSSING_UP");
    });

    it("refuses a duplicate id and an unknown user; bounds the alerts per user", async () => {
      const store = await withUsers();
      await store.createAlert(alert);
      expect(await rejection(store.createAlert(alert))).toBeInstanceOf(DuplicateError);
      expect(await rejection(store.createAlert({ ...alert, id: "x", userId: "nobody" }))).toBeInstanceOf(NotFoundError);
      for (let i = 1; i < PLATFORM_LIMITS.alertsPerUser; i++) await store.createAlert({ ...alert, id: `a${i}` });
      expect(await rejection(store.createAlert({ ...alert, id: "over" }))).toBeInstanceOf(LimitReachedError);
      expect(await store.listAlerts("alice")).toHaveLength(PLATFORM_LIMITS.alertsPerUser);
    });

    it("keeps the alert engine's arming without touching updatedAt, and forgets it when what makes the legs changes", async () => {
      const store = await withUsers();
      const created = await store.createAlert({ ...alert, condition: "CROSSING_EITHER" });
      expect(await store.saveAlertArming("alice", "al1", 2)).toBe(true);
      expect(await store.getAlert("alice", "al1")).toEqual({ ...created, armedLegs: 2 });
      expect((await store.listActiveAlertsBySymbol("EURUSD"))[0]?.armedLegs).toBe(2);
      // Another user's alert, or none: nothing written.
      expect(await store.saveAlertArming("bob", "al1", 0)).toBe(false);
      expect(await store.saveAlertArming("alice", "missing", 0)).toBe(false);
      expect((await store.getAlert("alice", "al1"))?.armedLegs).toBe(2);
      for (const bad of [4, -1, 1.5, "1" as unknown as number])
        expect(await rejection(store.saveAlertArming("alice", "al1", bad))).toBeInstanceOf(ValidationError);
      // The message, the expiration, repeating: the same legs, the arming stays.
      const edited = await store.updateAlert(
        "alice",
        "al1",
        { message: "new", expiration: T0 + 60_000, repeating: true },
        T0 + 1,
      );
      expect(edited?.armedLegs).toBe(2);
      for (const patch of [
        { targetPrice: 108600 },
        { side: "ASK" as const },
        { condition: "CROSSING_UP" as const },
        { status: "disabled" as const },
        { status: "active" as const },
      ]) {
        await store.saveAlertArming("alice", "al1", 1);
        expect((await store.updateAlert("alice", "al1", patch, T0 + 2))?.armedLegs).toBeNull();
      }
      await store.saveAlertArming("alice", "al1", 1);
      expect(await store.saveAlertArming("alice", "al1", null)).toBe(true);
      expect((await store.getAlert("alice", "al1"))?.armedLegs).toBeNull();
    });

    it("lists the active alerts of a symbol, of every user", async () => {
      const store = await withUsers();
      await store.createAlert(alert);
      await store.createAlert({ ...alert, id: "al2", userId: "bob" });
      await store.createAlert({ ...alert, id: "al3", status: "disabled" });
      await store.createAlert({ ...alert, id: "al4", symbol: "USDJPY" });
      expect((await store.listActiveAlertsBySymbol("EURUSD")).map((a) => a.id).sort()).toEqual(["al1", "al2"]);
      await store.updateAlert("alice", "al1", { status: "triggered" }, T0 + 1);
      expect((await store.listActiveAlertsBySymbol("EURUSD")).map((a) => a.id)).toEqual(["al2"]);
    });

    it("pages the active alerts of a symbol by id", async () => {
      const store = await withUsers();
      for (const id of ["al5", "al1", "al4", "al2", "al3"]) await store.createAlert({ ...alert, id });
      const first = await store.listActiveAlertsBySymbol("EURUSD", null, 2);
      const second = await store.listActiveAlertsBySymbol("EURUSD", first.at(-1)!.id, 2);
      const third = await store.listActiveAlertsBySymbol("EURUSD", second.at(-1)!.id, 2);
      expect([first, second, third].map((page) => page.map((a) => a.id))).toEqual([
        ["al1", "al2"],
        ["al3", "al4"],
        ["al5"],
      ]);
      expect(await store.listActiveAlertsBySymbol("EURUSD", "al5", 2)).toEqual([]);
      expect(await rejection(store.listActiveAlertsBySymbol("EURUSD", "bad id!"))).toBeInstanceOf(ValidationError);
      for (const limit of [0, PLATFORM_LIMITS.activeAlertsBySymbol + 1])
        expect(await rejection(store.listActiveAlertsBySymbol("EURUSD", null, limit))).toBeInstanceOf(ValidationError);
    });
  });

  describe("PlatformStore: alert logs", () => {
    const log = {
      alertId: "al1",
      userId: "alice",
      symbol: "EURUSD",
      side: "BID" as const,
      condition: "CROSSING_UP" as const,
      target: 108500,
      triggeredPrice: 108501,
      triggeredAt: T0,
      message: "EURUSD above 1.085 \u{1F4C8}",
    };

    it("adds logs and pages through them newest first, every row exactly once", async () => {
      const store = await withUsers();
      const added = [];
      for (let i = 0; i < 23; i++) {
        added.push(await store.addAlertLog({ ...log, triggeredAt: T0 + i }));
        if (i % 5 === 0) await store.addAlertLog({ ...log, userId: "bob" });
      }
      expect(added[0]).toEqual({ ...log, id: added[0]!.id });
      const seen: number[] = [];
      let cursor: number | null = null;
      for (let pages = 0; pages < 10; pages++) {
        const page: Awaited<ReturnType<PlatformStore["listAlertLogs"]>> = await store.listAlertLogs("alice", {
          cursor,
          limit: 5,
        });
        expect(page.rows.length).toBeLessThanOrEqual(5);
        for (const row of page.rows) expect(row.userId).toBe("alice");
        seen.push(...page.rows.map((row) => row.id));
        cursor = page.nextCursor;
        if (cursor === null) break;
      }
      expect(cursor).toBeNull();
      expect(seen).toEqual(added.map((row) => row.id).reverse());
      const exact = await store.listAlertLogs("bob", { limit: 5 });
      expect(exact.rows).toHaveLength(5);
      expect(exact.nextCursor).toBeNull();
    });

    it("records a trigger's log, the alert's change and the notification together, or none of them", async () => {
      const store = await withUsers();
      let keys = 0;
      await store.createAlert({
        id: "al1",
        userId: "alice",
        accountId: 1001,
        symbol: "EURUSD",
        side: "BID",
        condition: "CROSSING_UP",
        targetPrice: 108500,
        createdAt: T0,
      });
      const notification = {
        userId: "alice",
        accountId: 1001,
        kind: "PRICE_ALERT" as const,
        alertId: "al1",
        level: "info" as const,
        title: "Price alert",
        createdAt: T0 + 5,
      };
      // A notification the store refuses (an unknown user) refuses the log and the alert's change with it.
      expect(
        await rejection(
          store.recordAlertTrigger({
            key: `k${++keys}`,
            log,
            patch: { status: "triggered" },
            now: T0 + 5,
            notification: { ...notification, userId: "nobody" },
          }),
        ),
      ).toBeInstanceOf(NotFoundError);
      expect((await store.listAlertLogs("alice", { limit: 10 })).rows).toEqual([]);
      expect((await store.getAlert("alice", "al1"))?.status).toBe("active");
      expect(
        await rejection(
          store.recordAlertTrigger({
            key: `k${++keys}`,
            log: { ...log, triggeredPrice: -1 },
            patch: null,
            now: T0,
            notification,
          }),
        ),
      ).toBeInstanceOf(ValidationError);

      const recorded = await store.recordAlertTrigger({
        key: `k${++keys}`,
        log,
        patch: { status: "triggered" },
        now: T0 + 5,
        notification,
      });
      expect(recorded.log).toEqual({ ...log, id: recorded.log.id });
      expect(recorded.alert).toMatchObject({ id: "al1", status: "triggered", updatedAt: T0 + 5 });
      expect(recorded.notification).toMatchObject({ ...notification, body: "", status: "unread" });
      expect((await store.listAlertLogs("alice", { limit: 10 })).rows).toEqual([recorded.log]);
      expect((await store.getAlert("alice", "al1"))?.status).toBe("triggered");
      expect((await store.listNotifications("alice", { limit: 10 })).rows).toEqual([recorded.notification]);
      // No change asked for, or the alert gone: the log and the notification alone.
      await store.deleteAlert("alice", "al1");
      const again = await store.recordAlertTrigger({
        key: `k${++keys}`,
        log,
        patch: { status: "triggered" },
        now: T0 + 6,
        notification,
      });
      expect(again.alert).toBeNull();
      expect((await store.listAlertLogs("alice", { limit: 10 })).rows).toHaveLength(2);
      // The same trigger again (a try whose outcome was lost): recorded once, its log answered, nothing added.
      const repeated = await store.recordAlertTrigger({
        key: `k${keys}`,
        log,
        patch: { status: "triggered" },
        now: T0 + 6,
        notification,
      });
      expect(repeated).toEqual({ log: again.log, alert: null, notification: null });
      expect((await store.listAlertLogs("alice", { limit: 10 })).rows).toHaveLength(2);
      expect((await store.listNotifications("alice", { limit: 10 })).rows).toHaveLength(2);
    });

    it("bounds the page size and validates the cursor", async () => {
      const store = await withUsers();
      for (const limit of [0, -1, PLATFORM_LIMITS.pageLimit + 1, 1.5])
        expect(await rejection(store.listAlertLogs("alice", { limit }))).toBeInstanceOf(ValidationError);
      expect(await rejection(store.listAlertLogs("alice", { limit: 5, cursor: -3 }))).toBeInstanceOf(ValidationError);
      expect((await store.listAlertLogs("alice", { limit: PLATFORM_LIMITS.pageLimit })).rows).toEqual([]);
    });

    it("deletes one log, or all of a user's, never another user's", async () => {
      const store = await withUsers();
      const a1 = await store.addAlertLog(log);
      await store.addAlertLog(log);
      const b1 = await store.addAlertLog({ ...log, userId: "bob" });
      expect(await store.deleteAlertLog("bob", a1.id)).toBe(false);
      expect(await store.deleteAlertLog("alice", a1.id)).toBe(true);
      expect(await store.deleteAlertLog("alice", a1.id)).toBe(false);
      expect(await store.deleteAllAlertLogs("alice")).toBe(1);
      expect((await store.listAlertLogs("alice", { limit: 10 })).rows).toEqual([]);
      expect((await store.listAlertLogs("bob", { limit: 10 })).rows).toEqual([b1]);
      expect(await rejection(store.addAlertLog({ ...log, userId: "nobody" }))).toBeInstanceOf(NotFoundError);
    });
  });

  describe("PlatformStore: notifications", () => {
    it("adds, pages through every row once, and marks read only the owner's", async () => {
      const store = await withUsers();
      const added = [];
      for (let i = 0; i < 12; i++) {
        const [stored] = await store.addNotifications([
          {
            userId: "alice",
            accountId: i % 2 ? 1001 : null,
            kind: i % 2 ? "POSITION_CLOSED" : "ORDER_FILLED",
            orderId: 100 + i,
            positionId: 200 + i,
            dealId: i % 2 ? 300 + i : null,
            level: i % 3 === 0 ? "warning" : "info",
            title: `n${i}`,
            body: "body",
            createdAt: T0 + i,
          },
        ]);
        added.push(stored!);
        await store.addNotifications([
          { userId: "bob", kind: "ORDER_FILLED", level: "error", title: "b", createdAt: T0 },
        ]);
      }
      expect(added[1]).toEqual({
        id: added[1]!.id,
        userId: "alice",
        accountId: 1001,
        kind: "POSITION_CLOSED",
        orderId: 101,
        positionId: 201,
        dealId: 301,
        alertId: null,
        level: "info",
        status: "unread",
        title: "n1",
        body: "body",
        createdAt: T0 + 1,
      });
      const seen: number[] = [];
      let cursor: number | null = null;
      do {
        const page: Awaited<ReturnType<PlatformStore["listNotifications"]>> = await store.listNotifications("alice", {
          cursor,
          limit: 4,
        });
        for (const row of page.rows) expect(row.userId).toBe("alice");
        seen.push(...page.rows.map((row) => row.id));
        cursor = page.nextCursor;
      } while (cursor !== null && seen.length < 100);
      expect(seen).toEqual(added.map((n) => n.id).reverse());
      const first = added[0]!.id;
      expect(await store.markNotificationRead("bob", first)).toBe(false);
      expect(await store.markNotificationRead("alice", first)).toBe(true);
      expect(await store.markNotificationRead("alice", first)).toBe(false);
      const all = (await store.listNotifications("alice", { limit: 100 })).rows;
      expect(all.find((n) => n.id === first)?.status).toBe("read");
      expect(all.filter((n) => n.status === "read")).toHaveLength(1);
      // All of a user's at once, no other user's (the audit of a terminal's journey of 7 December, sixth session).
      await store.addNotifications([
        { userId: "bob", kind: "ORDER_FILLED", level: "info", title: "bob's", createdAt: T0 },
      ]);
      expect(await store.markAllNotificationsRead("alice")).toBe(all.length - 1);
      expect(await store.markAllNotificationsRead("alice")).toBe(0);
      const after = (await store.listNotifications("alice", { limit: 100 })).rows;
      expect(after.every((n) => n.status === "read")).toBe(true);
      const bobs = (await store.listNotifications("bob", { limit: 100 })).rows;
      expect(bobs.length).toBeGreaterThan(0);
      expect(bobs.every((n) => n.status === "unread")).toBe(true);
    });

    it("adds a batch in one transaction, in order; a bad or unknown-user row refuses the whole batch", async () => {
      const store = await withUsers();
      const batch = [
        { userId: "alice", kind: "ORDER_FILLED" as const, level: "info" as const, title: "first", createdAt: T0 },
        {
          userId: "bob",
          accountId: 7,
          kind: "ORDER_FILLED" as const,
          level: "warning" as const,
          title: "second",
          body: "b",
          createdAt: T0 + 1,
        },
        { userId: "alice", kind: "ORDER_FILLED" as const, level: "error" as const, title: "third", createdAt: T0 + 2 },
      ];
      const stored = await store.addNotifications(batch);
      expect(stored.map((n) => [n.userId, n.title, n.status])).toEqual([
        ["alice", "first", "unread"],
        ["bob", "second", "unread"],
        ["alice", "third", "unread"],
      ]);
      expect(stored[0]!.id).toBeLessThan(stored[1]!.id);
      expect(stored[1]!.id).toBeLessThan(stored[2]!.id);
      expect(await store.addNotifications([])).toEqual([]);
      expect(await rejection(store.addNotifications([batch[0]!, { ...batch[0]!, title: "" }]))).toBeInstanceOf(
        ValidationError,
      );
      expect(await rejection(store.addNotifications([batch[0]!, { ...batch[0]!, userId: "nobody" }]))).toBeInstanceOf(
        NotFoundError,
      );
      expect(
        await rejection(
          store.addNotifications(Array.from({ length: PLATFORM_LIMITS.notificationBatch + 1 }, () => batch[0]!)),
        ),
      ).toBeInstanceOf(ValidationError);
      const titles = (await store.listNotifications("alice", { limit: 100 })).rows.map((n) => n.title);
      expect(titles).toEqual(["third", "first"]);
      // A batch longer than one statement's rows (sql-platform-store.ts writes 64, 32, … at a time): still in order.
      const long = Array.from({ length: 150 }, (_, index) => ({ ...batch[1]!, title: `long ${index}` }));
      const storedLong = await store.addNotifications(long);
      expect(storedLong.map((n) => n.title)).toEqual(long.map((n) => n.title));
      expect(storedLong.every((n, index) => index === 0 || n.id > storedLong[index - 1]!.id)).toBe(true);
    });

    it("stores the notification of a journal event once, whatever adds it again; answers only the ones added", async () => {
      const store = await withUsers();
      const note = (title: string, journalSequence?: number) => ({
        userId: "alice",
        kind: "ORDER_FILLED" as const,
        level: "info" as const,
        title,
        createdAt: T0,
        ...(journalSequence === undefined ? {} : { journalSequence }),
      });
      const first = await store.addNotifications([note("fill 7", 7), note("alert"), note("fill 9", 9)], 9);
      expect(first.map((n) => n.title)).toEqual(["fill 7", "alert", "fill 9"]);
      const again = await store.addNotifications(
        [note("fill 7", 7), note("alert"), note("fill 9", 9), note("fill 12", 12)],
        12,
      );
      expect(again.map((n) => n.title)).toEqual(["alert", "fill 12"]);
      expect((await store.listNotifications("alice", { limit: 10 })).rows.map((n) => n.title)).toEqual([
        "fill 12",
        "alert",
        "fill 9",
        "alert",
        "fill 7",
      ]);
      expect(await rejection(store.addNotifications([note("bad", 0)]))).toBeInstanceOf(ValidationError);
    });

    it("records the journal sequence a batch derives through in the batch's own transaction", async () => {
      const store = await withUsers();
      const note = {
        userId: "alice",
        kind: "ORDER_FILLED" as const,
        level: "info" as const,
        title: "fill",
        createdAt: T0,
      };
      expect(await store.notificationJournalSequence()).toBeNull();
      await store.addNotifications([note], 7);
      expect(await store.notificationJournalSequence()).toBe(7);
      // An empty batch moves the mark alone; a batch without a sequence leaves it.
      expect(await store.addNotifications([], 9)).toEqual([]);
      expect(await store.notificationJournalSequence()).toBe(9);
      await store.addNotifications([{ ...note, title: "alert" }]);
      expect(await store.notificationJournalSequence()).toBe(9);
      // A refused batch moves nothing: not its rows, not the mark.
      expect(await rejection(store.addNotifications([note, { ...note, userId: "nobody" }], 12))).toBeInstanceOf(
        NotFoundError,
      );
      expect(await store.notificationJournalSequence()).toBe(9);
      for (const bad of [-1, 1.5, Number.NaN, "3" as unknown as number])
        expect(await rejection(store.addNotifications([note], bad))).toBeInstanceOf(ValidationError);
      expect(await store.notificationJournalSequence()).toBe(9);
      const titles = (await store.listNotifications("alice", { limit: 100 })).rows.map((n) => n.title);
      expect(titles).toEqual(["alert", "fill"]);
    });

    // Found by the audit of an operator's journey of 7 December (sixth session): a platform store newer than its
    // journal kept notifications of trades the books did not hold.
    it("forgets the notifications of journal events after a sequence, and moves the mark back to it", async () => {
      const store = await withUsers();
      const note = (title: string, journalSequence: number | null) => ({
        userId: "alice",
        kind: "ORDER_FILLED" as const,
        level: "info" as const,
        title,
        createdAt: T0,
        journalSequence,
      });
      await store.addNotifications([note("at 8", 8), note("at 10", 10), note("alert", null)], 10);
      await store.addNotifications([note("at 11", 11), note("at 12", 12)], 12);
      expect(await store.forgetNotificationsAfter(10)).toBe(2);
      expect(await store.notificationJournalSequence()).toBe(10);
      const titles = (await store.listNotifications("alice", { limit: 100 })).rows.map((n) => n.title);
      expect(titles).toEqual(["alert", "at 10", "at 8"]);
      expect(await store.forgetNotificationsAfter(10)).toBe(0);
      expect(await rejection(store.forgetNotificationsAfter(-1))).toBeInstanceOf(ValidationError);
    });

    // Found by an audit: notifications and alert logs grew with every fill and trigger, with no way to delete them.
    it("prunes each user's notifications and alert logs to their newest rows", async () => {
      const store = await withUsers();
      const note = (userId: string, title: string) => ({
        userId,
        kind: "ORDER_FILLED" as const,
        level: "info" as const,
        title,
        createdAt: T0,
      });
      await store.addNotifications(["a1", "a2", "a3", "a4"].map((title) => note("alice", title)));
      await store.addNotifications(["b1", "b2"].map((title) => note("bob", title)));
      const log = {
        alertId: "al1",
        side: "BID" as const,
        condition: "CROSSING_UP" as const,
        symbol: "EURUSD",
        target: 1,
        triggeredPrice: 2,
        message: "",
      };
      for (let index = 0; index < 4; index++)
        await store.addAlertLog({ ...log, userId: "alice", triggeredAt: T0 + index });
      expect(await store.pruneUserHistories(2)).toBe(2 + 2);
      expect((await store.listNotifications("alice", { limit: 10 })).rows.map((n) => n.title)).toEqual(["a4", "a3"]);
      expect((await store.listNotifications("bob", { limit: 10 })).rows.map((n) => n.title)).toEqual(["b2", "b1"]);
      expect((await store.listAlertLogs("alice", { limit: 10 })).rows.map((l) => l.triggeredAt)).toEqual([
        T0 + 3,
        T0 + 2,
      ]);
      expect(await store.pruneUserHistories(2)).toBe(0);
      for (const bad of [0, 1.5, -1])
        expect(await rejection(store.pruneUserHistories(bad))).toBeInstanceOf(ValidationError);
    });

    // The prune reads only the users with rows after the last prune's mark (found by the audit of complexity of
    // 7 December, sixth session): what it keeps must be what a prune of every user keeps.
    it("keeps the newest rows of every user, prune after prune, whatever came between and whatever the bound", async () => {
      const store = await withUsers();
      const note = (userId: string, title: string) => ({
        userId,
        kind: "ORDER_FILLED" as const,
        level: "info" as const,
        title,
        createdAt: T0,
      });
      const titles = async (userId: string) =>
        (await store.listNotifications(userId, { limit: 100 })).rows.map((n) => n.title);
      await store.addNotifications(["a1", "a2", "a3", "a4"].map((title) => note("alice", title)));
      await store.addNotifications(["b1", "b2", "b3"].map((title) => note("bob", title)));
      expect(await store.pruneUserHistories(3)).toBe(1);
      expect(await store.pruneUserHistories(3)).toBe(0);
      await store.addNotifications(["a5", "a6"].map((title) => note("alice", title)));
      expect(await store.pruneUserHistories(3)).toBe(2);
      expect(await titles("alice")).toEqual(["a6", "a5", "a4"]);
      expect(await titles("bob")).toEqual(["b3", "b2", "b1"]);
      // A smaller bound reaches the users with nothing new too; a larger one deletes nothing more.
      expect(await store.pruneUserHistories(2)).toBe(2);
      expect(await titles("bob")).toEqual(["b3", "b2"]);
      expect(await store.pruneUserHistories(5)).toBe(0);
      await store.addNotifications(["b4", "b5", "b6"].map((title) => note("bob", title)));
      expect(await store.pruneUserHistories(2)).toBe(3);
      expect(await titles("alice")).toEqual(["a6", "a5"]);
      expect(await titles("bob")).toEqual(["b6", "b5"]);
      // The mark is stored: a store opened again goes on from it.
      await store.close();
      opened.splice(opened.indexOf(store), 1);
      const again = await openStore();
      await again.addNotifications(["a7", "a8"].map((title) => note("alice", title)));
      expect(await again.pruneUserHistories(2)).toBe(2);
      expect((await again.listNotifications("alice", { limit: 100 })).rows.map((n) => n.title)).toEqual(["a8", "a7"]);
      expect((await again.listNotifications("bob", { limit: 100 })).rows.map((n) => n.title)).toEqual(["b6", "b5"]);
    });

    it("validates kind, ids, level, title and limit; refuses an unknown user", async () => {
      const store = await withUsers();
      const good = {
        userId: "alice",
        kind: "ORDER_FILLED" as const,
        level: "info" as const,
        title: "t",
        createdAt: T0,
      };
      for (const bad of [
        { ...good, level: "debug" as "info" },
        { ...good, kind: "FILLED" as "ORDER_FILLED" },
        { ...good, kind: undefined as unknown as "ORDER_FILLED" },
        { ...good, orderId: 0 },
        { ...good, positionId: 1.5 },
        { ...good, dealId: -3 },
        { ...good, alertId: "" },
        { ...good, title: "" },
        { ...good, body: "x".repeat(PLATFORM_LIMITS.notificationBodyLength + 1) },
      ])
        expect(await rejection(store.addNotifications([bad]))).toBeInstanceOf(ValidationError);
      expect(await rejection(store.addNotifications([{ ...good, userId: "nobody" }]))).toBeInstanceOf(NotFoundError);
      expect(
        await rejection(store.listNotifications("alice", { limit: PLATFORM_LIMITS.pageLimit + 1 })),
      ).toBeInstanceOf(ValidationError);
      expect(await rejection(store.countUnreadNotifications(""))).toBeInstanceOf(ValidationError);
    });

    // Found by the audit of a web terminal: its badge had no count but a page of every notification, counted.
    it("counts a user's unread notifications, never another user's, as marks read change them", async () => {
      const store = await withUsers();
      const note = (userId: string) => ({ userId, kind: "ORDER_FILLED" as const, level: "info" as const, title: "t" });
      expect(await store.countUnreadNotifications("alice")).toBe(0);
      const stored = await store.addNotifications(
        [note("alice"), note("bob"), note("alice"), note("alice")].map((notification, index) => ({
          ...notification,
          createdAt: T0 + index,
        })),
      );
      expect(await store.countUnreadNotifications("alice")).toBe(3);
      expect(await store.countUnreadNotifications("bob")).toBe(1);
      expect(await store.countUnreadNotifications("nobody")).toBe(0);
      expect(await store.markNotificationRead("alice", stored[0]!.id)).toBe(true);
      expect(await store.countUnreadNotifications("alice")).toBe(2);
      // Another user's mark changes nothing of alice's.
      expect(await store.markNotificationRead("bob", stored[2]!.id)).toBe(false);
      expect(await store.markAllNotificationsRead("bob")).toBe(1);
      expect(await store.countUnreadNotifications("alice")).toBe(2);
      expect(await store.countUnreadNotifications("bob")).toBe(0);
      expect(await store.markAllNotificationsRead("alice")).toBe(2);
      expect(await store.countUnreadNotifications("alice")).toBe(0);
      await store.addNotifications([{ ...note("alice"), createdAt: T0 + 9 }]);
      expect(await store.countUnreadNotifications("alice")).toBe(1);
    });

    it("counts up to what a user keeps (historyRowsKeptPerUser), through the index of unread notifications", async () => {
      const store = await withUsers();
      const kept = PLATFORM_LIMITS.historyRowsKeptPerUser;
      const note = {
        userId: "alice",
        kind: "ORDER_FILLED" as const,
        level: "info" as const,
        title: "t",
        createdAt: T0,
      };
      await store.addNotifications(Array.from({ length: kept }, () => note));
      await store.addNotifications(Array.from({ length: 5 }, () => note));
      expect(await store.countUnreadNotifications("alice")).toBe(kept);
      const ran = recordStatements(store);
      await store.countUnreadNotifications("bob");
      await store.markAllNotificationsRead("bob");
      expect(ran).toHaveLength(2);
      for (const { sql, params } of ran) {
        const reads = (await storage!.plan(sql, params)).filter((line) => /^(SCAN|SEARCH) notifications\b/.test(line));
        expect(reads, sql).toEqual([
          expect.stringMatching(/^SEARCH notifications USING (COVERING )?INDEX notifications_unread\b/),
        ]);
      }
    });
  });

  // Found by the audit of complexity of 7 December, sixth session: the hourly purge of sessions scanned every session
  // (its OR), the start-up load of a symbol's active alerts walked every alert by id, and the hourly prune counted
  // every user's notifications and alert logs. Plans, not timings: each statement reads a range of an index.
  describe("PlatformStore: what the hourly and start-up passes read", () => {
    const BIG_TABLES = /^(SCAN|SEARCH) (sessions|price_alerts|notifications|alert_logs)\b/;

    async function plansOf(ran: readonly RanStatement[]): Promise<string[][]> {
      const plans: string[][] = [];
      for (const { sql, params } of ran)
        if (/^\s*(SELECT|DELETE|UPDATE)\b/i.test(sql))
          plans.push((await storage!.plan(sql, params)).filter((line) => BIG_TABLES.test(line)));
      return plans;
    }

    // The renewable sessions through an index of their own (migration 12): by the tokens' expiry, the hourly purge
    // read a week of sign-ins that refresh tokens still renew (the review of 7 December, ninth session).
    it("the purge of sessions reads the expired ones, the renewable ones past their end and the revoked ones each through an index", async () => {
      const store = await withUsers();
      await store.createSession({ id: "old", userId: "alice", accountId: null, createdAt: T0, expiresAt: T0 + 10 });
      await store.createSession({ id: "gone", userId: "bob", accountId: null, createdAt: T0, expiresAt: T0 + 99 });
      const renewable = { userId: "alice", accountId: null, createdAt: T0, expiresAt: T0 + 10 };
      await store.createSession({ ...renewable, id: "over", refresh: { nonce: "n1", expiresAt: T0 + 20 } });
      await store.createSession({ ...renewable, id: "kept", refresh: { nonce: "n2", expiresAt: T0 + 900 } });
      await store.revokeSession("bob", "gone", T0 + 5);
      const ran = recordStatements(store);
      expect(await store.purgeExpiredSessions(T0 + 50)).toBe(3);
      expect(await store.findSession("kept")).not.toBeNull();
      const lines = (await plansOf(ran)).flat();
      expect(lines.filter((line) => line.startsWith("SCAN"))).toEqual([]);
      for (const index of ["sessions_expires_plain", "sessions_refresh_expires", "sessions_revoked"])
        expect(
          lines.some((line) => new RegExp(`^SEARCH sessions USING (COVERING )?INDEX ${index}\\b`).test(line)),
          `${index} in ${lines.join(" | ")}`,
        ).toBe(true);
    });

    it("the active alerts of a symbol are read in id order from an index of (symbol, status, id)", async () => {
      const store = await withUsers();
      const alert: NewPriceAlert = {
        id: "al1",
        userId: "alice",
        accountId: 1001,
        symbol: "EURUSD",
        side: "BID",
        condition: "CROSSING_UP",
        targetPrice: 108500,
        message: "breakout",
        createdAt: T0,
      };
      for (const id of ["al1", "al2", "al3"]) await store.createAlert({ ...alert, id });
      await store.createAlert({ ...alert, id: "al4", symbol: "USDJPY" });
      const ran = recordStatements(store);
      expect((await store.listActiveAlertsBySymbol("EURUSD", "al1", 10)).map((found) => found.id)).toEqual([
        "al2",
        "al3",
      ]);
      const lines = (await plansOf(ran)).flat();
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^SEARCH price_alerts USING (COVERING )?INDEX price_alerts_symbol_status_id\b/);
    });

    it("a prune reads only the rows after the last prune's, and each user's through an index", async () => {
      const store = await withUsers();
      const note = (userId: string, title: string) => ({
        userId,
        kind: "ORDER_FILLED" as const,
        level: "info" as const,
        title,
        createdAt: T0,
      });
      await store.addNotifications(["a1", "a2", "a3"].map((title) => note("alice", title)));
      await store.addNotifications([note("bob", "b1")]);
      const ran = recordStatements(store);
      expect(await store.pruneUserHistories(2)).toBe(1);
      await store.addNotifications([note("alice", "a4")]);
      expect(await store.pruneUserHistories(2)).toBe(1);
      const plans = await plansOf(ran);
      expect(plans.flat().filter((line) => line.startsWith("SCAN"))).toEqual([]);
      // The second prune asked for alice's rows only: the users with rows after the first prune's.
      const users = ran.filter(({ sql }) => /SELECT DISTINCT user_id FROM \S*notifications\b/.test(sql));
      expect(users).toHaveLength(2);
      // From the start, then from where the first stopped (the review of 7 December, sixth session: a mark ignored, every
      // prune from 0, kept the same rows and passed).
      expect(users[0]!.params[0]).toBe(0);
      expect(users[1]!.params[0]).toBe(users[0]!.params[1]);
      expect(users[1]!.params[0]).toBeGreaterThan(0);
      expect(await store.listNotifications("alice", { limit: 10 })).toMatchObject({
        rows: [{ title: "a4" }, { title: "a3" }],
      });
    });
  });

  describe("PlatformStore: last quotes", () => {
    it("keeps each symbol's last quote with its book, replacing the one kept; validates every field", async () => {
      const store = await openStore();
      expect(await store.lastQuotes()).toEqual([]);
      const book = {
        bids: [
          { price: 108430, volume: 500 },
          { price: 108420, volume: 900 },
        ],
        asks: [{ price: 108440, volume: 700 }],
      };
      await store.saveLastQuotes([
        { symbol: "EURUSD", bid: 108430, ask: 108440, ...book, time: T0 },
        { symbol: "BTCUSD", bid: 6000000, ask: 6001000, time: T0 + 1 },
      ]);
      await store.saveLastQuotes([{ symbol: "EURUSD", bid: 108431, ask: 108441, time: T0 + 2 }]);
      expect(await store.lastQuotes()).toEqual([
        { symbol: "BTCUSD", bid: 6000000, ask: 6001000, time: T0 + 1 },
        { symbol: "EURUSD", bid: 108431, ask: 108441, time: T0 + 2 },
      ]);
      await store.saveLastQuotes([{ symbol: "EURUSD", bid: 108430, ask: 108440, ...book, time: T0 + 3 }]);
      expect((await store.lastQuotes())[1]).toEqual({
        symbol: "EURUSD",
        bid: 108430,
        ask: 108440,
        ...book,
        time: T0 + 3,
      });
      const good = { symbol: "EURUSD", bid: 1, ask: 2, time: T0 };
      for (const bad of [
        { ...good, symbol: "" },
        { ...good, bid: 0 },
        { ...good, ask: 1.5 },
        { ...good, time: -1 },
        { ...good, bids: [{ price: 1, volume: 0 }] },
        { ...good, asks: Array.from({ length: MAX_BOOK_LEVELS + 1 }, (_, index) => ({ price: 2 + index, volume: 1 })) },
      ])
        expect(await rejection(store.saveLastQuotes([bad])), JSON.stringify(bad)).toBeInstanceOf(ValidationError);
      expect(
        await rejection(store.saveLastQuotes(Array.from({ length: PLATFORM_LIMITS.lastQuotesBatch + 1 }, () => good))),
      ).toBeInstanceOf(ValidationError);
      expect((await store.lastQuotes())[1]!.time).toBe(T0 + 3);
    });
  });

  describe("PlatformStore: instrument scales", () => {
    it("keeps each symbol's scale, replacing the one kept, all or none of a call; validates every field", async () => {
      const store = await openStore();
      expect(await store.instrumentScales()).toEqual([]);
      const eurusd = {
        symbol: "EURUSD",
        digits: 5,
        volumeDigits: 2,
        contractSize: 100_000,
        baseCurrency: "EUR",
        quoteCurrency: "USD",
      };
      const btcusd = { ...eurusd, symbol: "BTCUSD", digits: 2, contractSize: 1, baseCurrency: "BTC" };
      await store.saveInstrumentScales([eurusd, btcusd]);
      await store.saveInstrumentScales([{ ...eurusd, digits: 4 }]);
      expect(await store.instrumentScales()).toEqual([btcusd, { ...eurusd, digits: 4 }]);
      for (const bad of [
        { ...eurusd, symbol: "" },
        { ...eurusd, digits: -1 },
        { ...eurusd, volumeDigits: 1.5 },
        { ...eurusd, contractSize: 0 },
        { ...eurusd, baseCurrency: "" },
      ]) {
        // The bad scale comes second: the first of the call is not kept either.
        const refused = await rejection(store.saveInstrumentScales([{ ...btcusd, digits: 3 }, bad]));
        expect(refused, JSON.stringify(bad)).toBeInstanceOf(ValidationError);
      }
      expect(
        await rejection(
          store.saveInstrumentScales(Array.from({ length: PLATFORM_LIMITS.instruments + 1 }, () => eurusd)),
        ),
      ).toBeInstanceOf(ValidationError);
      expect(await store.instrumentScales()).toEqual([btcusd, { ...eurusd, digits: 4 }]);
    });
  });

  describe("PlatformStore: candles", () => {
    const bar = {
      symbol: "EURUSD",
      timeframe: "M1" as const,
      openTime: T0,
      open: 108400,
      high: 108450,
      low: 108390,
      close: 108420,
      tickVolume: 10,
    };

    it("inserts bars and merges an upsert into an existing bar", async () => {
      const store = await openStore();
      await store.upsertCandles([bar, { ...bar, openTime: T0 + 60_000 }, { ...bar, timeframe: "M5" }]);
      await store.upsertCandles([{ ...bar, open: 108430, high: 108500, low: 108410, close: 108480, tickVolume: 4 }]);
      await store.upsertCandles([{ ...bar, open: 108300, high: 108310, low: 108300, close: 108305, tickVolume: 1 }]);
      const rows = await store.candles({ symbol: "EURUSD", timeframe: "M1", from: T0, to: T0 + 60_000, limit: 10 });
      expect(rows).toEqual([
        { ...bar, high: 108500, low: 108300, close: 108305, tickVolume: 15 },
        { ...bar, openTime: T0 + 60_000 },
      ]);
      expect(await store.candles({ symbol: "EURUSD", timeframe: "M5", from: 0, to: T0 * 2, limit: 10 })).toEqual([
        { ...bar, timeframe: "M5" },
      ]);
    });

    it("answers a range oldest first, within [from, to], at most limit", async () => {
      const store = await openStore();
      await store.upsertCandles(
        Array.from({ length: 50 }, (_, i) => ({ ...bar, openTime: T0 + i * 60_000, close: 108400 + i })),
      );
      const range = await store.candles({
        symbol: "EURUSD",
        timeframe: "M1",
        from: T0 + 10 * 60_000,
        to: T0 + 19 * 60_000,
        limit: 100,
      });
      expect(range.map((c) => c.close)).toEqual(Array.from({ length: 10 }, (_, i) => 108410 + i));
      const limited = await store.candles({ symbol: "EURUSD", timeframe: "M1", from: 0, to: T0 * 2, limit: 3 });
      expect(limited.map((c) => c.openTime)).toEqual([T0, T0 + 60_000, T0 + 120_000]);
      expect(await store.candles({ symbol: "USDJPY", timeframe: "M1", from: 0, to: T0 * 2, limit: 3 })).toEqual([]);
    });

    it("validates bars, timeframes, ranges, limits and batch sizes", async () => {
      const store = await openStore();
      for (const bad of [
        { ...bar, timeframe: "M2" as "M1" },
        { ...bar, high: 108000 },
        { ...bar, open: 108400.5 },
        { ...bar, tickVolume: -1 },
        { ...bar, symbol: "" },
      ])
        expect(await rejection(store.upsertCandles([bar, bad]))).toBeInstanceOf(ValidationError);
      expect(await store.candles({ symbol: "EURUSD", timeframe: "M1", from: 0, to: T0 * 2, limit: 10 })).toEqual([]);
      const tooMany = Array.from({ length: PLATFORM_LIMITS.candleLimit + 1 }, (_, i) => ({
        ...bar,
        openTime: T0 + i,
      }));
      expect(await rejection(store.upsertCandles(tooMany))).toBeInstanceOf(ValidationError);
      const query = { symbol: "EURUSD", timeframe: "M1" as const, from: 0, to: T0, limit: 10 };
      for (const bad of [
        { ...query, limit: PLATFORM_LIMITS.candleLimit + 1 },
        { ...query, limit: 0 },
        { ...query, from: T0 + 1 },
        { ...query, timeframe: "H2" as "H1" },
      ])
        expect(await rejection(store.candles(bad))).toBeInstanceOf(ValidationError);
    });
  });
}
