/**
 * The server on a PostgreSQL that stalls rather than fails (the audit of 6 December): another session holds the
 * journal's table and a user's row locked, so the order's append and the sign-in's update wait for locks that do
 * not come (and the order history's table, which a history page waits on). Before the drivers bounded their waits (store postgres-timeouts.ts) the order request hung for as long
 * as the lock lasted, /readyz said ready all along, and the sign-in held a pooled connection as long; once the pool
 * was held, other requests answered 500 after the pool's checkout timeout. Now both answer 503 within the statement
 * timeout (15 s, the drivers' default), /readyz answers 503 while the engine rebuilds, and the server serves again
 * by itself once the lock is released. The store's tests cover partitions and paused backends with short timeouts
 * (packages/store/test/postgres-stall.test.ts).
 */
import pg from "pg";
import { describe, expect, it } from "vitest";
import { call, postgresTestServer, pushQuote, signUp } from "./helpers.ts";

const connectionString = process.env.BOURSE_TEST_PG_URL;
if (!connectionString) console.warn("postgres-stall.test.ts: skipped, BOURSE_TEST_PG_URL is not set");

const database = `bourse_stall_test_${process.pid}_${Date.now()}`;
/** The drivers' default statement timeout (15 s) plus their answer grace (2 s), and room for the answer. */
const STALL_VERDICT_MILLISECONDS = 22_000;

const sleep = (milliseconds: number) => new Promise((resolve) => setTimeout(resolve, milliseconds));

async function settledWithin<T>(promise: Promise<T>, milliseconds: number): Promise<T | "still pending"> {
  let timer: NodeJS.Timeout | undefined;
  const pending = new Promise<"still pending">((resolve) => {
    timer = setTimeout(() => resolve("still pending"), milliseconds);
  });
  try {
    return await Promise.race([promise, pending]);
  } finally {
    clearTimeout(timer);
  }
}

describe.skipIf(!connectionString)("the server on a PostgreSQL that stalls", () => {
  const postgres = postgresTestServer(connectionString, database);

  it("answers 503, not never, while a lock stalls the journal and the platform store, and serves again once it is released", async () => {
    const trader = await signUp(postgres.server);
    await pushQuote(postgres.server, "EURUSD", "1.08430", "1.08440");
    const order = () =>
      call(postgres.server, "POST", `/api/v1/accounts/${trader.login}/orders`, {
        token: trader.token,
        body: { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.01 },
      });
    expect((await order()).status).toBe(200);

    const locker = new pg.Client({ connectionString: postgres.databaseUrl });
    await locker.connect();
    try {
      await locker.query("BEGIN");
      await locker.query("LOCK TABLE bourse.journal IN ACCESS EXCLUSIVE MODE");
      await locker.query("LOCK TABLE bourse.order_history IN ACCESS EXCLUSIVE MODE");
      await locker.query("SELECT id FROM bourse.users WHERE id = $1 FOR UPDATE", [trader.userId]);
      const [ordered, history, signedIn] = await Promise.all([
        settledWithin(order(), STALL_VERDICT_MILLISECONDS),
        settledWithin(
          call(postgres.server, "GET", `/api/v1/accounts/${trader.login}/history/orders`, { token: trader.token }),
          STALL_VERDICT_MILLISECONDS,
        ),
        settledWithin(
          call(postgres.server, "POST", "/api/v1/login", { body: { email: trader.email, password: trader.password } }),
          STALL_VERDICT_MILLISECONDS,
        ),
      ]);
      // The order did not happen (its statement was cancelled before COMMIT): 503 ENGINE_UNAVAILABLE.
      expect(ordered).not.toBe("still pending");
      expect(ordered).toMatchObject({ status: 503, body: { error: "ENGINE_UNAVAILABLE" } });
      // The history read was cancelled too: 503, where the journal's read models answered pg's own error as a 500.
      expect(history).not.toBe("still pending");
      expect(history).toMatchObject({
        status: 503,
        body: {
          error: "ENGINE_UNAVAILABLE",
          message: "The database is unavailable: nothing was changed; try again shortly",
        },
      });
      // The sign-in's update was cancelled: 503 with a message that says why, not a 500.
      expect(signedIn).not.toBe("still pending");
      expect(signedIn).toMatchObject({ status: 503, body: { error: "ENGINE_UNAVAILABLE" } });
      expect((signedIn as { body: { message: string } }).body.message).toMatch(/database/i);
      // The engine rebuilds from the journal, which the lock still withholds: not ready.
      expect((await call(postgres.server, "GET", "/readyz")).status).toBe(503);
    } finally {
      await locker.query("ROLLBACK").catch(() => undefined);
      await locker.end();
    }
    const deadline = Date.now() + 10_000;
    while ((await call(postgres.server, "GET", "/readyz")).status !== 200 && Date.now() < deadline) await sleep(100);
    expect((await call(postgres.server, "GET", "/readyz")).status).toBe(200);
    expect((await order()).status).toBe(200);
    expect(
      (
        await call(postgres.server, "POST", "/api/v1/login", {
          body: { email: trader.email, password: trader.password },
        })
      ).status,
    ).toBe(200);
  });
});
