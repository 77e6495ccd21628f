/**
 * Journals written before times were bounded (MAX_TIME_MILLISECONDS) may hold a GTD expiration past what a date
 * holds: the engine took any safe integer, and 9 × 10^15 ms was journaled. Bounding new input (a6f3bf7) left
 * such an order in place, and every read of the account's orders still answered 500 after the upgrade
 * (found by review). Such a time is now written as the last millisecond of year 9999.
 */
import { createJournal, type JournalRecord } from "@bourse/store";
import type { OrderAcceptedEvent } from "@bourse/core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect, it } from "vitest";
import { timeToWire } from "../src/wire.ts";
import { call, pushQuote, signUp, startTestServer, tableObjects } from "./helpers.ts";

it("an order journaled with an expiration past year 9999 is served, its expiration the last millisecond of 9999", async () => {
  expect(timeToWire(9_000_000_000_000_000)).toBe("9999-12-31T23:59:59.999Z");
  const dataDirectory = mkdtempSync(path.join(tmpdir(), "bourse-old-times-"));
  try {
    const first = await startTestServer({ dataDirectory });
    const trader = await signUp(first);
    const account = `/api/v1/accounts/${trader.login}`;
    await pushQuote(first, "EURUSD", "1.08430", "1.08440");
    const body = { symbol: "EURUSD", side: "BUY", type: "LIMIT", volume: 0.01, price: 1.07, timeInForce: "GTD" };
    const placed = await call(first, "POST", `${account}/orders`, {
      token: trader.token,
      body: { ...body, expiration: "2027-01-01T00:00:00Z" },
    });
    expect(placed.status).toBe(200);
    await first.close();
    // What an engine before the bound journaled for an expiration of 9 × 10^15 ms: the same order, another id.
    const journal = createJournal(first.config.storage.databaseUrl);
    const { lastSequence } = await journal.open();
    const accepted = (await journal.read(0, 1_000_000))
      .map((record) => record.event)
      .filter((event): event is OrderAcceptedEvent => event.type === "OrderAccepted")
      .at(-1)!;
    const order = { ...accepted.order, id: accepted.order.id + 1, expiration: 9_000_000_000_000_000 };
    const record: JournalRecord = { sequence: lastSequence + 1, event: { ...accepted, order } };
    await journal.append([record]);
    await journal.close();

    const second = await startTestServer({ dataDirectory });
    try {
      const orders = await call(second, "GET", `${account}/orders`, { token: trader.token });
      expect(orders.status).toBe(200);
      expect(tableObjects(orders.body).map((row) => row.expiration)).toEqual([
        "2027-01-01T00:00:00.000Z",
        "9999-12-31T23:59:59.999Z",
      ]);
      const history = await call(second, "GET", `${account}/history/orders`, { token: trader.token });
      expect(history.status).toBe(200);
    } finally {
      await second.close();
    }
  } finally {
    rmSync(dataDirectory, { recursive: true, force: true });
  }
});
