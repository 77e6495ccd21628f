/**
 * End to end over a real socket, with BOURSE_FEED=push (no simulator: only the admin API moves prices):
 * sign up, push quotes, buy at market, watch the position's floating P&L follow the pushed quotes,
 * set SL/TP, let a pushed quote trigger the TP, then find the deal in the history and the profit in
 * the ledger, to the cent.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { ManualClock } from "../src/clock.ts";
import { ADMIN_TOKEN, TUESDAY_NOON, startTestServer, tableObjects, type TestServer } from "./helpers.ts";

let server: TestServer;
let base: string;

beforeAll(async () => {
  server = await startTestServer({
    environment: { BOURSE_FEED: "push", BOURSE_PORT: "0" },
    clock: new ManualClock(TUESDAY_NOON),
  });
  base = await server.app.listen({ port: 0, host: "127.0.0.1" });
});
afterAll(async () => {
  await server.close();
});

async function http(method: string, path: string, token: string | null, body?: unknown) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: token } : {}),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return { status: response.status, body: (await response.json()) as any };
}

async function pushQuote(bid: string, ask: string) {
  const answer = await http("POST", "/admin/v1/quotes", `Bearer ${ADMIN_TOKEN}`, { symbol: "EURUSD", bid, ask });
  expect(answer.status).toBe(200);
  server.clock.advance(1000);
}

it("trades a position from sign-up to take profit, and the money adds up to the cent", async () => {
  expect(server.config.feed.kind).toBe("push");
  const signup = await http("POST", "/api/v1/signup", null, {
    email: "e2e@example.com",
    password: "end to end password",
    name: "End To End",
  });
  expect(signup.status).toBe(200);
  const token = signup.body.data.token as string;
  const login = signup.body.data.account.login as number;
  const account = `/api/v1/accounts/${login}`;

  // No price yet: the order is refused, nothing happens.
  const early = await http("POST", `${account}/orders`, token, {
    symbol: "EURUSD",
    side: "BUY",
    type: "MARKET",
    volume: 1,
  });
  expect(early).toMatchObject({ status: 400, body: { error: "NO_QUOTES" } });

  await pushQuote("1.08430", "1.08440");
  const bought = await http("POST", `${account}/orders`, `Bearer ${token}`, {
    symbol: "EURUSD",
    side: "BUY",
    type: "MARKET",
    volume: 1,
  });
  expect(bought.status).toBe(200);
  expect(bought.body.data.order.status).toBe("FILLED");
  expect(bought.body.data.deals).toHaveLength(1);
  expect(bought.body.data.deals[0]).toMatchObject({ price: 1.0844, volume: 1, entry: "IN" });
  const positionId = bought.body.data.positionId as number;

  let positions = tableObjects((await http("GET", `${account}/positions`, token)).body);
  expect(positions).toHaveLength(1);
  expect(positions[0]).toMatchObject({ id: positionId, openPrice: 1.0844, currentPrice: 1.0843, profit: -10 });

  // The bid moves up 7 pips: 1 lot × 100,000 × (1.08500 − 1.08440) = 60.00 USD.
  await pushQuote("1.08500", "1.08510");
  positions = tableObjects((await http("GET", `${account}/positions`, token)).body);
  expect(positions[0]).toMatchObject({ currentPrice: 1.085, profit: 60 });
  const metrics = (await http("GET", account, token)).body.data;
  expect(metrics).toMatchObject({ balance: 10000, profit: 60, equity: 10060 });

  const modified = await http("POST", `${account}/positions/${positionId}`, token, { sl: 1.08, tp: 1.087 });
  expect(modified.status).toBe(200);
  positions = tableObjects((await http("GET", `${account}/positions`, token)).body);
  expect(positions[0]).toMatchObject({ sl: 1.08, tp: 1.087 });

  // A quote below the TP leaves it open; one whose bid reaches it closes the position at that bid.
  await pushQuote("1.08690", "1.08700");
  expect(tableObjects((await http("GET", `${account}/positions`, token)).body)).toHaveLength(1);
  await pushQuote("1.08700", "1.08710");
  expect(tableObjects((await http("GET", `${account}/positions`, token)).body)).toHaveLength(0);

  const deals = tableObjects((await http("GET", `${account}/history/deals`, token)).body);
  expect(deals).toHaveLength(2);
  expect(deals[1]).toMatchObject({
    positionId,
    side: "SELL",
    entry: "OUT",
    volume: 1,
    price: 1.087,
    reason: "TAKE_PROFIT",
    // 1 lot × 100,000 × (1.08700 − 1.08440) = 260.00 USD.
    profit: 260,
  });
  const positionHistory = tableObjects((await http("GET", `${account}/history/positions`, token)).body);
  expect(positionHistory[0]).toMatchObject({ id: positionId, openPrice: 1.0844, closePrice: 1.087 });

  const ledger = tableObjects((await http("GET", `${account}/ledger`, token)).body);
  expect(ledger.map((row) => [row.kind, row.amount, row.balanceAfter])).toEqual([
    ["DEPOSIT", 10000, 10000],
    ["PROFIT", 260, 10260],
  ]);
  const after = (await http("GET", account, token)).body.data;
  expect(after).toMatchObject({ balance: 10260, equity: 10260, margin: 0, profit: 0, freeMargin: 10260 });

  // Notifications are written beside the engine's path, not on it: give the writer a moment.
  const takeProfitTitle = `Take profit: position #${positionId} EURUSD closed`;
  let titles: unknown[] = [];
  for (let attempt = 0; attempt < 50 && !titles.includes(takeProfitTitle); attempt += 1) {
    titles = tableObjects((await http("GET", "/api/v1/notifications", token)).body).map((row) => row.title);
    if (!titles.includes(takeProfitTitle)) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  expect(titles).toContain(takeProfitTitle);
});
