/**
 * The engine's clock (engine-clock.ts): expirations and rollovers run on time with no quote and no request. Found by
 * the audit of 7 December (second session): only a command ran them, and the server sent none of its own, so a GTD
 * order an hour past its expiration was still PLACED in the working orders and the history, and its executionEvent
 * waited for the next quote or request.
 */
import { describe, expect, it } from "vitest";
import { BusTopics, type BusMessage } from "../src/bus.ts";
import { EngineClock } from "../src/engine-clock.ts";
import { call, pushQuote, signUp, startTestServer, tableObjects, TUESDAY_NOON } from "./helpers.ts";

const sleep = (milliseconds: number) => new Promise((resolve) => setTimeout(resolve, milliseconds));

describe("the engine's clock", () => {
  it("expires a GTD order on time though no quote or request comes: not working, EXPIRED in history, an executionEvent", async () => {
    // Sessions outlive the hour the clock moves on.
    const server = await startTestServer({ environment: { BOURSE_SESSION_TTL_SECONDS: "86400" } });
    try {
      const trader = await signUp(server);
      const account = `/api/v1/accounts/${trader.login}`;
      await pushQuote(server, "EURUSD", "1.08430", "1.08440");
      const placed = await call(server, "POST", `${account}/orders`, {
        token: trader.token,
        body: {
          symbol: "EURUSD",
          side: "BUY",
          type: "LIMIT",
          volume: 0.1,
          price: 1.08,
          timeInForce: "GTD",
          expiration: TUESDAY_NOON + 60_000,
        },
      });
      expect(placed.status, JSON.stringify(placed.body)).toBe(200);
      const orderId = placed.body.data.order.id as number;
      const events: BusMessage[] = [];
      server.platform.bus.subscribe(BusTopics.account(trader.login), (_topic, message) => events.push(message));

      server.clock.set(TUESDAY_NOON + 59_999);
      expect(await EngineClock.for(server.platform).advanceIfDue()).toBe(false);
      server.clock.set(TUESDAY_NOON + 3_600_000);
      // The server's own clock looks every second: no call of ours.
      const working = async () =>
        tableObjects((await call(server, "GET", `${account}/orders`, { token: trader.token })).body);
      const deadline = Date.now() + 5_000;
      while ((await working()).length > 0 && Date.now() < deadline) await sleep(50);
      expect(await working()).toEqual([]);

      const history = tableObjects(
        (await call(server, "GET", `${account}/history/orders`, { token: trader.token })).body,
      );
      expect(history.find((order) => order.id === orderId)).toMatchObject({
        status: "EXPIRED",
        statusReason: "EXPIRED",
      });
      expect(events.map((message) => message.payload)).toContainEqual(
        expect.objectContaining({
          event: "ORDER_STATUS",
          orderId,
          status: "EXPIRED",
          time: "2026-06-02T12:01:00.000Z",
        }),
      );
      // Nothing more is due before the day's rollover.
      expect(await EngineClock.for(server.platform).advanceIfDue()).toBe(false);
    } finally {
      await server.close();
    }
  });
});
