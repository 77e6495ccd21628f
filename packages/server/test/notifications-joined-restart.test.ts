/**
 * A joined notification (one execution, one notification: the deals of a walk of the book, a stop-out and its closing
 * deals) derived again at start. Found by the review of 7 December (ninth session): keyed by its last event, a dropped
 * one came back as its last part only, and a stop-out stored by an earlier release (keyed by its StopOut event) was
 * derived a second time. Keyed by its first event, a start sees it whole and under the key it always had.
 */
import { describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { NotificationService } from "../src/notifications.ts";
import {
  call,
  pushQuote,
  pushThinEurusdBook,
  settle,
  signUp,
  startTestServer,
  TUESDAY_NOON,
  type TestServer,
} from "./helpers.ts";

type User = Awaited<ReturnType<typeof signUp>>;

async function texts(on: TestServer, user: User): Promise<string[]> {
  await settle(on);
  const rows = (await on.platform.store.listNotifications(user.userId, { limit: 100 })).rows;
  return rows.map((row) => `${row.title}: ${row.body}`);
}

/** Fills the notification write queue while `during` runs, so its notifications are dropped. */
async function withFullQueue(on: TestServer, during: () => Promise<void>): Promise<void> {
  await settle(on);
  const queue = NotificationService.for(on.platform).queue;
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  queue.push(() => gate);
  while (!queue.full) queue.push(async () => undefined);
  await during();
  release();
  await settle(on);
}

async function place(on: TestServer, user: User, body: Record<string, unknown>) {
  const placed = await call(on, "POST", `/api/v1/accounts/${user.login}/orders`, {
    token: user.token,
    body: { symbol: "EURUSD", type: "MARKET", ...body },
  });
  expect(placed.status, JSON.stringify(placed.body)).toBe(200);
  return placed.body.data;
}

/** A user whose account holds 1,000.00 USD and 0.5 lot of EURUSD bought at 1.08440: a fall of 2 figures stops it out. */
async function nearStopOut(on: TestServer): Promise<User> {
  const user = await signUp(on);
  const engine = on.platform.durableEngine!;
  const balance = engine.engine.state.accounts.get(user.login)!.balance;
  await engine.submit({ kind: "withdraw", time: TUESDAY_NOON, accountId: user.login, amount: balance - 100_000 });
  await pushQuote(on, "EURUSD", "1.08430", "1.08440");
  await place(on, user, { side: "BUY", volume: 0.5 });
  return user;
}

describe("a dropped joined notification (the write queue was full)", () => {
  it("is derived again whole at the next start: a walk of the book's two deals", { timeout: 60_000 }, async () => {
    const dataDirectory = mkdtempSync(path.join(tmpdir(), "review-dropped-walk-"));
    try {
      let own = await startTestServer({ dataDirectory });
      const user = await signUp(own);
      await pushThinEurusdBook(own, "1.08430", "1.08440");
      let dropped: { order: { id: number } } | undefined;
      await withFullQueue(own, async () => {
        dropped = await place(own, user, { side: "BUY", volume: 0.2 });
      });
      // A later notification stores the held mark (the ceiling the drop set).
      await pushQuote(own, "EURUSD", "1.08430", "1.08440");
      await place(own, user, { side: "BUY", volume: 0.01 });
      expect((await texts(own, user)).some((text) => text.startsWith(`Order #${dropped!.order.id} `))).toBe(false);
      await own.close();
      own = await startTestServer({ dataDirectory });
      try {
        const again = (await texts(own, user)).filter((text) => text.startsWith(`Order #${dropped!.order.id} `));
        // As the live path says it (keyed by the last event, the mark held at its sequence - 1 passed the first deal,
        // and the start derived the second alone).
        expect(again).toEqual([expect.stringMatching(/filled: Bought 0\.2 lots EURUSD in 2 deals: /)]);
      } finally {
        await own.close();
      }
    } finally {
      rmSync(dataDirectory, { recursive: true, force: true });
    }
  });

  it("is derived again whole at the next start: a stop-out and its closing deal", { timeout: 60_000 }, async () => {
    const dataDirectory = mkdtempSync(path.join(tmpdir(), "review-dropped-stopout-"));
    try {
      let own = await startTestServer({ dataDirectory });
      const user = await nearStopOut(own);
      await withFullQueue(own, async () => {
        await pushQuote(own, "EURUSD", "1.06430", "1.06440");
      });
      // A later notification (a deposit is none; a fill of a second user's order does not reach this user's rows, but
      // stores the mark).
      const other = await signUp(own);
      await place(own, other, { side: "BUY", volume: 0.01 });
      await settle(own);
      expect((await texts(own, user)).filter((text) => text.startsWith("Stop out"))).toEqual([]);
      await own.close();
      own = await startTestServer({ dataDirectory });
      try {
        const stopOuts = (await texts(own, user)).filter((text) => text.startsWith("Stop out"));
        // One stop-out notification with its closing deal, as the live path makes it ("Stop out on account N: The
        // margin level fell ... is closed. Sold 0.5 lots ..."), not the closing deal's alone ("Stop out: position #P
        // EURUSD closed: Position #P closed by stop out: ...").
        expect(stopOuts).toEqual([
          expect.stringMatching(
            /^Stop out on account \d+: The margin level fell to the stop-out level .* is closed\. Sold 0\.5 lots/,
          ),
        ]);
      } finally {
        await own.close();
      }
    } finally {
      rmSync(dataDirectory, { recursive: true, force: true });
    }
  });
});

describe("a stop-out notification stored by an earlier release (journal_sequence = the StopOut event's)", () => {
  it("is not derived a second time by a start whose mark is below it", { timeout: 60_000 }, async () => {
    const dataDirectory = mkdtempSync(path.join(tmpdir(), "review-upgrade-stopout-"));
    try {
      let own = await startTestServer({ dataDirectory });
      const user = await nearStopOut(own);
      await settle(own);
      const before = own.platform.durableEngine!.lastSequence;
      await pushQuote(own, "EURUSD", "1.06430", "1.06440");
      await settle(own);
      const records = await own.platform.journalRecords(before, 100);
      const stopOut = records.find((record) => record.event.type === "StopOut")!.sequence;
      const live = await texts(own, user);
      expect(live.filter((text) => text.startsWith("Stop out"))).toHaveLength(1);
      const platformDatabase = own.config.storage.platformDatabaseUrl;
      await own.close();
      // As an earlier release stored it: the stop-out's row keyed by its StopOut event; and a mark below it (held by a
      // dropped notification, or by a start whose derivation failed).
      const database = new Database(platformDatabase);
      database
        .prepare("UPDATE notifications SET journal_sequence = ? WHERE kind = 'STOP_OUT' AND user_id = ?")
        .run(stopOut, user.userId);
      database.prepare("UPDATE derived_through SET journal_sequence = ? WHERE kind = 'notifications'").run(before);
      database.close();
      own = await startTestServer({ dataDirectory });
      try {
        const again = await texts(own, user);
        expect(again.filter((text) => text.startsWith("Stop out"))).toHaveLength(1);
      } finally {
        await own.close();
      }
    } finally {
      rmSync(dataDirectory, { recursive: true, force: true });
    }
  });
});

// The first review of 7 December (ninth session): a start derived a page of records at once, and took an order's status
// from the page's end: a pending order partly filled by one tick and filled by the next was "filled" twice where the
// live path had said "partly filled" first. And two executions of one order in one millisecond were joined as one.
describe("a pending order filled in two executions", () => {
  it(
    "is notified partly filled, then filled, live and when a start derives them again",
    { timeout: 60_000 },
    async () => {
      const dataDirectory = mkdtempSync(path.join(tmpdir(), "bourse-two-executions-"));
      try {
        let own = await startTestServer({ dataDirectory });
        const user = await signUp(own);
        await pushQuote(own, "EURUSD", "1.08530", "1.08540");
        const before = own.platform.durableEngine!.lastSequence;
        const limit = await place(own, user, { type: "LIMIT", side: "BUY", volume: 0.2, price: 1.0844 });
        // 0.1 lot offered at the limit, then plenty: two ticks of the same millisecond (the test clock stands still).
        await pushThinEurusdBook(own, "1.08430", "1.08440");
        await pushQuote(own, "EURUSD", "1.08430", "1.08440");
        const live = await texts(own, user);
        expect(live).toEqual([
          expect.stringMatching(new RegExp(`^Order #${limit.order.id} filled: Bought 0\\.1 lots EURUSD at 1\\.08440`)),
          expect.stringMatching(
            new RegExp(`^Order #${limit.order.id} partly filled: Bought 0\\.1 lots EURUSD at 1\\.08440`),
          ),
        ]);
        const platformDatabase = own.config.storage.platformDatabaseUrl;
        await own.close();
        // As if the last stop had stored nothing after the order was placed: a start derives both from one page.
        const database = new Database(platformDatabase);
        database.prepare("UPDATE derived_through SET journal_sequence = ? WHERE kind = 'notifications'").run(before);
        database.prepare("DELETE FROM notifications WHERE journal_sequence > ?").run(before);
        database.close();
        own = await startTestServer({ dataDirectory });
        try {
          expect(await texts(own, user)).toEqual(live);
        } finally {
          await own.close();
        }
      } finally {
        rmSync(dataDirectory, { recursive: true, force: true });
      }
    },
  );
});
