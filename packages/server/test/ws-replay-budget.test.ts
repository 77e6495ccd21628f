/**
 * A native `subscribe` with `sinceSeq` read up to `replayWindowEvents` (10,000) journal events, in pages of 1,000,
 * and spent nothing, while a trading or history message spent one request of the credential's budget: a user could
 * ask for 10,000-event replays at the message rate on every socket. Now a replay spends one request of the same
 * budget per journal page it will read (a `resyncRequired` answer one), before it changes anything: past the budget
 * it answers `error` RATE_LIMITED, subscribes to nothing, replays nothing, and the socket stays open.
 */
import { beforeAll, describe, expect, it, vi } from "vitest";
import { FixedWindowLimiter } from "../src/rate-window.ts";
import { moneyFromWire } from "../src/wire.ts";
import { admin, createApiKey, signUp } from "./helpers.ts";
import { streamServer } from "./ws-helpers.ts";

const USER_LIMIT = 3;
const KEY_LIMIT = 3;
/** The native stream's journal page (REPLAY_PAGE). */
const PAGE_EVENTS = 1000;

const stream = streamServer({
  BOURSE_RATE_LIMIT_PER_SECOND: String(USER_LIMIT),
  BOURSE_AUTOMATION_RATE_LIMIT_PER_SECOND: String(KEY_LIMIT),
});
const connect = stream.connect;

/** Journals `count` deposits into the account (straight to the platform: thousands of them in a few seconds). */
async function deposits(accountId: number, count: number): Promise<void> {
  const currency = stream.server.platform.engine.state.accounts.get(accountId)!.currency;
  const amount = moneyFromWire(1, currency);
  for (let done = 0; done < count; done += 500)
    await Promise.all(
      Array.from({ length: Math.min(500, count - done) }, () =>
        stream.server.platform.execute({ kind: "deposit", accountId, amount }),
      ),
    );
}

/** Each test starts a fresh one-second window (the platform clock stands still otherwise). */
function nextWindow(): void {
  stream.server.clock.advance(1000);
}

describe("FixedWindowLimiter with weights", () => {
  it("a hit of weight n counts n; one past the limit is exceeded and counts nothing, leaving the rest for smaller hits", () => {
    const now = 1_000_000;
    const limiter = new FixedWindowLimiter(5, 1000, () => now);
    expect(limiter.hit("a", 3)).toEqual({ limit: 5, remaining: 2, resetSeconds: 1, exceeded: false });
    expect(limiter.hit("a", 3)).toEqual({ limit: 5, remaining: 2, resetSeconds: 1, exceeded: true });
    expect(limiter.hit("a", 2)).toEqual({ limit: 5, remaining: 0, resetSeconds: 1, exceeded: false });
    expect(limiter.hit("a").exceeded).toBe(true);
    expect(limiter.blocked("a")).toBe(1);
  });

  it("refuses a weight that is not a positive integer, counting nothing", () => {
    const limiter = new FixedWindowLimiter(5, 1000, () => 0);
    for (const weight of [0, -1, 1.5, Number.NaN]) expect(() => limiter.hit("a", weight)).toThrow(RangeError);
    expect(limiter.hit("a").remaining).toBe(4);
  });
});

describe("the replay budget of a native subscribe with sinceSeq", () => {
  let user: Awaited<ReturnType<typeof signUp>>;
  beforeAll(async () => {
    user = await signUp(stream.server);
    const filler = await signUp(stream.server);
    // More than USER_LIMIT pages of journal, then three deposits of the user's.
    await deposits(filler.login, USER_LIMIT * PAGE_EVENTS + 100);
    for (const amount of [1, 2, 3])
      expect((await admin(stream.server, "POST", `/admin/v1/accounts/${user.login}/deposit`, { amount })).status).toBe(
        200,
      );
  }, 120_000);

  it("a replay of more pages than the budget answers RATE_LIMITED: no subscribed, nothing replayed, the subscriptions as they were, the socket open", async () => {
    nextWindow();
    const last = await stream.server.platform.lastJournalSequence();
    expect(Math.ceil(last / PAGE_EVENTS)).toBeGreaterThan(USER_LIMIT);
    const client = await connect(user.token);
    client.send("subscribe", { events: ["balanceEvent"] }, "live");
    await client.nextOf("subscribed");

    const refused = await client.request("subscribe", {
      events: ["balanceEvent", "executionEvent"],
      symbols: ["EURUSD"],
      sinceSeq: 0,
    });
    expect(refused.type).toBe("error");
    expect(refused.payload.code).toBe("RATE_LIMITED");
    expect(refused.payload.message).toMatch(/journal pages/);
    await client.expectOpen();

    // Still subscribed as before, to the live balance events only: the next deposit comes, nothing replayed.
    await admin(stream.server, "POST", `/admin/v1/accounts/${user.login}/deposit`, { amount: 9 });
    expect((await client.nextOf("balanceEvent")).payload.amount).toBe(9);
    await client.expectOpen();
    expect(client.all("subscribed").map((message) => message.id)).toEqual(["live"]);
    expect(client.all("balanceEvent")).toHaveLength(1);
    expect(client.all("quoteEvent")).toHaveLength(0);
    expect(client.all("resyncRequired")).toHaveLength(0);
  });

  it("a replay within the budget replays, and spends one request per page: the trading message past the budget is refused", async () => {
    nextWindow();
    const last = await stream.server.platform.lastJournalSequence();
    // Two pages: the user's deposits are in the last few events.
    const sinceSeq = last - PAGE_EVENTS - 10;
    const client = await connect(user.token);
    client.send("subscribe", { events: ["balanceEvent"], sinceSeq }, "resume");
    expect((await client.nextOf("subscribed")).id).toBe("resume");
    await client.next((message) => message.type === "balanceEvent" && message.payload.amount === 3);
    // The user's three deposits (and the first test's, later).
    expect(
      client
        .all("balanceEvent")
        .map((message) => message.payload.amount)
        .slice(0, 3),
    ).toEqual([1, 2, 3]);

    // Two of three spent: one order goes through, the next is refused.
    expect((await client.buyEurusd(user.login)).type).toBe("result");
    const refused = await client.buyEurusd(user.login);
    expect(refused.type).toBe("error");
    expect(refused.payload.code).toBe("RATE_LIMITED");
    await client.expectOpen();
  });

  it("a resyncRequired answer spends one request", async () => {
    nextWindow();
    const client = await connect(user.token);
    client.send("subscribe", { events: ["balanceEvent"], sinceSeq: Number.MAX_SAFE_INTEGER }, "ahead");
    await client.nextOf("resyncRequired");
    expect((await client.buyEurusd(user.login)).type).toBe("result");
    expect((await client.buyEurusd(user.login)).type).toBe("result");
    expect((await client.buyEurusd(user.login)).payload.code).toBe("RATE_LIMITED");
  });

  it("with the budget spent, a replay is refused before the journal is read for its cost (a query each on PostgreSQL)", async () => {
    nextWindow();
    const client = await connect(user.token);
    for (let index = 0; index < USER_LIMIT; index += 1)
      expect((await client.buyEurusd(user.login)).type).toBe("result");
    const reads = vi.spyOn(stream.server.platform, "lastJournalSequence");
    try {
      const refused = await client.request("subscribe", { events: ["balanceEvent"], sinceSeq: 0 });
      expect(refused.payload.code).toBe("RATE_LIMITED");
      expect(reads).not.toHaveBeenCalled();
    } finally {
      reads.mockRestore();
    }
    expect(client.all("subscribed")).toHaveLength(0);
    await client.expectOpen();
  });

  it("an API-key socket's replay spends the key's Automation budget", async () => {
    nextWindow();
    const key = await createApiKey(stream.server, user, "trade");
    const client = await connect(key.key);
    const refused = await client.request("subscribe", { events: ["balanceEvent"], sinceSeq: 0 });
    expect(refused.payload.code).toBe("RATE_LIMITED");
    expect(refused.payload.message).toMatch(/API key/);
    expect(client.all("subscribed")).toHaveLength(0);
    await client.expectOpen();
  });
});
