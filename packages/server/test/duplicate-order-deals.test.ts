/**
 * A retried order's answer names every deal of the order. Found by the audit of idempotency of 7 December (third
 * session): the deals were found by paging the account's deal history from the first one, ten pages of 1,000 at most,
 * so an order with 10,000 of the account's deals between its fills answered its retry without its later fills.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  admin,
  automation,
  call,
  createApiKey,
  pushQuote,
  signUp,
  startTestServer,
  type TestServer,
} from "./helpers.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ environment: { BOURSE_AUTOMATION_RATE_LIMIT_PER_SECOND: "100000" } });
});
afterAll(async () => {
  await server.close();
});

it("a retry answers every deal of the order, however many of the account's deals lie between its fills", async () => {
  const user = await signUp(server);
  await admin(server, "POST", `/admin/v1/accounts/${user.login}/deposit`, { amount: 10_000_000 });
  const { key } = await createApiKey(server, user, "full");
  await pushQuote(server, "EURUSD", "1.08000", "1.08010");
  const order = { symbol: "EURUSD", side: "BUY", type: "LIMIT", volume: 0.02, price: 1.07, clientOrderId: "L" };
  const orders = `/api/v1/accounts/${user.login}/orders`;
  expect((await call(server, "POST", orders, { token: user.token, body: order })).status).toBe(200);
  // Half of it fills at 1.07, then the market goes back up.
  const level = (volume: number) => ({
    symbol: "EURUSD",
    bid: "1.06990",
    ask: "1.07000",
    asks: [{ price: "1.07000", volume }],
  });
  expect((await admin(server, "POST", "/admin/v1/quotes", level(0.01))).status).toBe(200);
  await pushQuote(server, "EURUSD", "1.08000", "1.08010");
  // More than 10,000 of the account's deals: 900 positions opened and closed, six times over (10,800 deals).
  for (let round = 0; round < 6; round += 1) {
    const opened = await Promise.all(
      Array.from({ length: 900 }, () =>
        call(server, "POST", orders, {
          token: user.token,
          body: { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.01 },
        }),
      ),
    );
    expect(opened.every((answer) => answer.status === 200)).toBe(true);
    expect((await automation(server, "POST", "/v1/api/close-all", key, {})).status).toBe(200);
  }
  // The rest of it fills.
  expect((await admin(server, "POST", "/admin/v1/quotes", level(1))).status).toBe(200);
  const retry = await call(server, "POST", orders, { token: user.token, body: order });
  expect(retry.status).toBe(200);
  expect(retry.body.data).toMatchObject({ duplicate: true, order: { status: "FILLED", filledVolume: 0.02 } });
  expect(retry.body.data.deals.map((deal: { volume: number }) => deal.volume)).toEqual([0.01, 0.01]);
}, 120_000);
