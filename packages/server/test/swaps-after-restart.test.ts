/**
 * A restart across the daily rollover (22:00 UTC). The server comes back with the last quotes it kept, so the
 * rollover that falls due with its first command converts a USDJPY position's yen swap at the kept USDJPY
 * price. Without a kept quote (a data directory from before quotes were kept, or a power failure that took the
 * last second of derived data) it cannot convert it. That swap used to be lost for good; now it is owed, shown
 * nowhere as money until the first USDJPY quote charges it, and then it is in the position, the position
 * history, the account's stream and, once closed, the deal and the ledger, to the cent.
 */
import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect, it } from "vitest";
import { ManualClock } from "../src/clock.ts";
import { TUESDAY_NOON, call, pushQuote, signUp, startTestServer, tableObjects } from "./helpers.ts";

const TUESDAY_23H = TUESDAY_NOON + 11 * 3_600_000;

/** A server on `dataDirectory` with a trader holding 1 lot of USDJPY bought at 150.250 (USDJPY 150.230/150.250). */
async function buyOneLotOfUsdJpy(dataDirectory: string) {
  const first = await startTestServer({ dataDirectory });
  const trader = await signUp(first);
  const account = `/api/v1/accounts/${trader.login}`;
  await pushQuote(first, "USDJPY", "150.230", "150.250");
  const bought = await call(first, "POST", `${account}/orders`, {
    token: trader.token,
    body: { symbol: "USDJPY", side: "BUY", type: "MARKET", volume: 1 },
  });
  expect(bought.status).toBe(200);
  return { first, trader, account };
}

it("a restart across the rollover defers a USDJPY position's swap until the first USDJPY quote, then charges it to the cent", async () => {
  const dataDirectory = mkdtempSync(path.join(tmpdir(), "bourse-swaps-"));
  try {
    const { first, trader, account } = await buyOneLotOfUsdJpy(dataDirectory);
    const platformDatabase = first.config.storage.platformDatabaseUrl;
    await first.close();
    // The kept USDJPY quote is gone, as after a power failure right after the first USDJPY quote.
    const database = new Database(platformDatabase);
    expect(database.prepare("DELETE FROM last_quotes WHERE symbol = 'USDJPY'").run().changes).toBe(1);
    database.close();

    const second = await startTestServer({ dataDirectory, clock: new ManualClock(TUESDAY_23H) });
    try {
      const login = await call(second, "POST", "/api/v1/login", {
        body: { email: trader.email, password: trader.password },
      });
      expect(login.status).toBe(200);
      const token = login.body.data.token as string;
      const position = async () => {
        const positions = await call(second, "GET", `${account}/positions`, { token });
        expect(positions.status).toBe(200);
        return tableObjects(positions.body)[0]!;
      };
      // The first command after the restart runs Tuesday's rollover; USDJPY has not been quoted since.
      await pushQuote(second, "EURUSD", "1.08430", "1.08440");
      expect((await position()).swap).toBe(0);
      await pushQuote(second, "USDJPY", "150.330", "150.350");
      // 14.6 points a lot a day on 100,000 USD: 1,460 JPY at 150.35, 9.71 USD.
      expect((await position()).swap).toBe(9.71);
      const positionId = (await position()).id as number;
      const closed = await call(second, "POST", `${account}/positions/${positionId}/close`, { token, body: {} });
      expect(closed.status).toBe(200);
      const deals = tableObjects((await call(second, "GET", `${account}/history/deals`, { token })).body);
      expect(deals.filter((deal) => deal.entry === "OUT").map((deal) => deal.swap)).toEqual([9.71]);
      const history = tableObjects((await call(second, "GET", `${account}/history/positions`, { token })).body);
      expect(history.map((row) => row.swap)).toEqual([9.71]);
      const ledger = tableObjects((await call(second, "GET", `${account}/ledger`, { token })).body);
      expect(ledger.filter((row) => row.kind === "SWAP").map((row) => row.amount)).toEqual([9.71]);
    } finally {
      await second.close();
    }
  } finally {
    rmSync(dataDirectory, { recursive: true, force: true });
  }
});

it("a restart across the rollover converts a USDJPY position's swap at the USDJPY quote kept from before it", async () => {
  const dataDirectory = mkdtempSync(path.join(tmpdir(), "bourse-swaps-"));
  try {
    const { first, trader, account } = await buyOneLotOfUsdJpy(dataDirectory);
    await first.close();

    const second = await startTestServer({ dataDirectory, clock: new ManualClock(TUESDAY_23H) });
    try {
      const login = await call(second, "POST", "/api/v1/login", {
        body: { email: trader.email, password: trader.password },
      });
      const token = login.body.data.token as string;
      // The first command after the restart runs Tuesday's rollover at the kept quote.
      await pushQuote(second, "EURUSD", "1.08430", "1.08440");
      const positions = await call(second, "GET", `${account}/positions`, { token });
      // 14.6 points a lot a day on 100,000 USD: 1,460 JPY at 150.25, 9.72 USD.
      expect(tableObjects(positions.body)[0]).toMatchObject({ swap: 9.72, currentPrice: 150.23 });
    } finally {
      await second.close();
    }
  } finally {
    rmSync(dataDirectory, { recursive: true, force: true });
  }
});
