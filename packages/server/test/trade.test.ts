import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ManualClock } from "../src/clock.ts";
import {
  admin,
  call,
  pushQuote,
  signUp,
  startTestServer,
  tableObjects,
  TUESDAY_NOON,
  type TestServer,
} from "./helpers.ts";

type User = Awaited<ReturnType<typeof signUp>>;

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server.close();
});

const base = (user: User) => `/api/v1/accounts/${user.login}`;

function placeOrder(user: User, body: Record<string, unknown>) {
  return call(server, "POST", `${base(user)}/orders`, { token: user.token, body });
}

async function marketBuy(user: User, volume: number, extra: Record<string, unknown> = {}) {
  const response = await placeOrder(user, { symbol: "EURUSD", side: "BUY", type: "MARKET", volume, ...extra });
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return response.body.data;
}

async function positions(user: User) {
  const response = await call(server, "GET", `${base(user)}/positions`, { token: user.token });
  expect(response.status).toBe(200);
  return tableObjects(response.body);
}

async function account(user: User) {
  const response = await call(server, "GET", base(user), { token: user.token });
  expect(response.status).toBe(200);
  return response.body.data;
}

describe("market orders", () => {
  it("buys 0.10 lot at the pushed ask, holds the engine's margin and shows the position", async () => {
    const user = await signUp(server);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const data = await marketBuy(user, 0.1);
    expect(data.duplicate).toBe(false);
    expect(data.order).toMatchObject({
      accountId: user.login,
      symbol: "EURUSD",
      side: "BUY",
      type: "MARKET",
      cmd: 0,
      volume: 0.1,
      quantity: 10000,
      filledVolume: 0.1,
      status: "FILLED",
      timeInForce: "FOK",
      reason: "CLIENT",
      createdAt: "2026-06-02T12:00:00.000Z",
    });
    expect(data.deals).toEqual([
      {
        id: expect.any(Number),
        orderId: data.order.id,
        positionId: data.positionId,
        symbol: "EURUSD",
        side: "BUY",
        entry: "IN",
        volume: 0.1,
        price: 1.0844,
        profit: 0,
        commission: 0,
        swap: 0,
        reason: "CLIENT",
        time: "2026-06-02T12:00:00.000Z",
      },
    ]);
    const [position] = await positions(user);
    // FOREX margin: 0.10 lot × 100,000 EUR / leverage 100 = 100 EUR, converted to USD at the bid 1.0843.
    expect(position).toMatchObject({
      id: data.positionId,
      symbol: "EURUSD",
      side: "BUY",
      volume: 0.1,
      openPrice: 1.0844,
      currentPrice: 1.0843,
      profit: -1,
      swap: 0,
      commission: 0,
      margin: 108.43,
      sl: null,
      tp: null,
      openOrderId: data.order.id,
    });
    expect(await account(user)).toMatchObject({
      balance: 10000,
      equity: 9999,
      margin: 108.43,
      freeMargin: 9890.57,
      profit: -1,
      openPositions: 1,
      workingOrders: 0,
    });
  });

  it("moves the floating profit with the pushed quotes, to the cent", async () => {
    const user = await signUp(server);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    await marketBuy(user, 0.1);
    await pushQuote(server, "EURUSD", "1.08530", "1.08540");
    expect((await positions(user))[0]).toMatchObject({ currentPrice: 1.0853, profit: 9 });
    expect(await account(user)).toMatchObject({ equity: 10009, profit: 9 });
    await pushQuote(server, "EURUSD", "1.08327", "1.08337");
    expect((await positions(user))[0]).toMatchObject({ currentPrice: 1.08327, profit: -11.3 });
    expect(await account(user)).toMatchObject({ equity: 9988.7, balance: 10000 });
  });

  it("sells at the bid with a quantity in units of the base asset (seed 002)", async () => {
    const user = await signUp(server);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const response = await placeOrder(user, { symbol: "EURUSD", side: "SELL", type: "MARKET", quantity: 10000 });
    expect(response.status).toBe(200);
    expect(response.body.data.order).toMatchObject({ side: "SELL", volume: 0.1, quantity: 10000, cmd: 1 });
    expect(response.body.data.deals[0]).toMatchObject({ side: "SELL", price: 1.0843, volume: 0.1 });
    expect((await positions(user))[0]).toMatchObject({ side: "SELL", openPrice: 1.0843, currentPrice: 1.0844 });
    const odd = await placeOrder(user, { symbol: "EURUSD", side: "SELL", type: "MARKET", quantity: 10001 });
    expect(odd.status).toBe(400);
    expect(odd.body.error).toBe("INVALID_VOLUME");
    const both = await placeOrder(user, {
      symbol: "EURUSD",
      side: "SELL",
      type: "MARKET",
      quantity: 1000,
      volume: 0.01,
    });
    expect(both.status).toBe(400);
    expect(both.body.error).toBe("INVALID_DATA");
    const neither = await placeOrder(user, { symbol: "EURUSD", side: "SELL", type: "MARKET" });
    expect(neither.status).toBe(400);
    expect(neither.body.error).toBe("INVALID_DATA");
    expect(await positions(user)).toHaveLength(1);
  });

  it("walks the book: one deal per level, and IOC fills what the bound allows", async () => {
    const user = await signUp(server);
    const depth = {
      symbol: "EURUSD",
      bid: "1.08430",
      ask: "1.08440",
      bids: [{ price: "1.08430", volume: 1 }],
      asks: [
        { price: "1.08440", volume: 0.1 },
        { price: "1.08450", volume: 0.1 },
      ],
    };
    expect((await admin(server, "POST", "/admin/v1/quotes", depth)).status).toBe(200);
    const walked = await marketBuy(user, 0.15);
    expect(walked.order).toMatchObject({ status: "FILLED", filledVolume: 0.15 });
    expect(walked.deals.map((deal: { price: number; volume: number }) => [deal.price, deal.volume])).toEqual([
      [1.0844, 0.1],
      [1.0845, 0.05],
    ]);
    expect((await positions(user))[0]).toMatchObject({ volume: 0.15, openPrice: 1.08443 });
    expect((await admin(server, "POST", "/admin/v1/quotes", depth)).status).toBe(200);
    const ioc = await marketBuy(user, 0.3, { timeInForce: "IOC", price: 1.0844, deviation: 0 });
    expect(ioc.order).toMatchObject({ status: "CANCELLED", statusReason: "IOC_REMAINDER", filledVolume: 0.1 });
    expect(ioc.deals).toEqual([expect.objectContaining({ price: 1.0844, volume: 0.1 })]);
    const fok = await placeOrder(user, { symbol: "EURUSD", cmd: 0, volume: 0.5, price: 1.0845, deviation: 0 });
    expect(fok.status).toBe(400);
    expect(fok.body.error).toBe("PRICE_OFF");
    // A deviation without a price counts from the ask when the order arrives (it bounded nothing before: the audit
    // of 7 December, second session, saw a fill 100 pips away).
    expect((await admin(server, "POST", "/admin/v1/quotes", depth)).status).toBe(200);
    const unpriced = await placeOrder(user, {
      symbol: "EURUSD",
      side: "BUY",
      type: "MARKET",
      volume: 0.15,
      deviation: 0,
    });
    expect(unpriced.status).toBe(400);
    expect(unpriced.body.error).toBe("PRICE_OFF");
    const bounded = await marketBuy(user, 0.15, { timeInForce: "IOC", deviation: "0.0001" });
    expect(bounded.deals.map((deal: { price: number; volume: number }) => [deal.price, deal.volume])).toEqual([
      [1.0844, 0.1],
      [1.0845, 0.05],
    ]);
  });

  it("answers a retried clientOrderId with the first result and does nothing again", async () => {
    const user = await signUp(server);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const first = await marketBuy(user, 0.2, { clientOrderId: "retry-1" });
    await pushQuote(server, "EURUSD", "1.08450", "1.08460");
    const again = await marketBuy(user, 0.2, { clientOrderId: "retry-1" });
    expect(again.duplicate).toBe(true);
    expect(again.order.id).toBe(first.order.id);
    expect(again.order).toMatchObject({ status: "FILLED", filledVolume: 0.2, clientOrderId: "retry-1" });
    expect(again.deals).toEqual(first.deals);
    expect(again.deals[0].price).toBe(1.0844);
    expect(await positions(user)).toHaveLength(1);
    const different = await placeOrder(user, {
      symbol: "EURUSD",
      side: "BUY",
      type: "MARKET",
      volume: 0.3,
      clientOrderId: "retry-1",
    });
    expect(different.status).toBe(409);
    expect(different.body.error).toBe("DUPLICATE_CLIENT_ORDER_ID");
  });

  it("answers a retried pending order as it stands now, with the deals it made since", async () => {
    const user = await signUp(server);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const placed = await placeOrder(user, {
      symbol: "EURUSD",
      cmd: 2,
      volume: 0.1,
      price: 1.0835,
      clientOrderId: "pending-1",
    });
    expect(placed.body.data.order.status).toBe("PLACED");
    await pushQuote(server, "EURUSD", "1.08340", "1.08350");
    const again = await placeOrder(user, {
      symbol: "EURUSD",
      cmd: 2,
      volume: 0.1,
      price: 1.0835,
      clientOrderId: "pending-1",
    });
    expect(again.status).toBe(200);
    expect(again.body.data.duplicate).toBe(true);
    expect(again.body.data.order).toMatchObject({ id: placed.body.data.order.id, status: "FILLED" });
    expect(again.body.data.deals).toHaveLength(1);
    expect(again.body.data.deals[0]).toMatchObject({ price: 1.0835, entry: "IN", volume: 0.1 });
  });

  it("accepts the account in the body only when it is the path's", async () => {
    const user = await signUp(server);
    const other = await signUp(server);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const same = await placeOrder(user, {
      accountId: String(user.login),
      symbol: "EURUSD",
      side: "BUY",
      type: "MARKET",
      quantity: 10000,
    });
    expect(same.status).toBe(200);
    const foreign = await placeOrder(user, { accountId: other.login, symbol: "EURUSD", cmd: 0, volume: 0.1 });
    expect(foreign.status).toBe(403);
    expect(foreign.body.error).toBe("FORBIDDEN");
    const second = await call(server, "PUT", "/api/v1/accounts", { token: user.token, body: {} });
    const mine = await placeOrder(user, { accountId: second.body.data.login, symbol: "EURUSD", cmd: 0, volume: 0.1 });
    expect(mine.status).toBe(400);
    expect(mine.body.error).toBe("INVALID_DATA");
    expect(await positions(user)).toHaveLength(1);
    expect(await positions(other)).toHaveLength(0);
  });

  // On a033f98 bodies were coerced to the schema's types: `"volume": true` was read as 1 lot.
  it("refuses values of the wrong JSON type with 400 INVALID_DATA, placing nothing", async () => {
    const user = await signUp(server);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const valid = { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.1 };
    for (const body of [
      { ...valid, volume: true },
      { ...valid, volume: [0.1] },
      { ...valid, sl: false },
      { ...valid, symbol: ["EURUSD"] },
      { ...valid, magic: "7" },
      { ...valid, comment: 1 },
    ]) {
      const response = await placeOrder(user, body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.body.error).toBe("INVALID_DATA");
    }
    expect(await positions(user)).toHaveLength(0);
  });
});

describe("a silent feed (BOURSE_MAX_QUOTE_AGE_SECONDS)", () => {
  it("by default (300 s) a quote older than five minutes is no price to trade at: 400 NO_QUOTES until the next tick", async () => {
    const own = await startTestServer({ environment: { BOURSE_SESSION_TTL_SECONDS: "86400" } });
    try {
      const trader = await signUp(own);
      const order = (body: Record<string, unknown>) =>
        call(own, "POST", `${base(trader)}/orders`, { token: trader.token, body });
      await pushQuote(own, "EURUSD", "1.08430", "1.08440");
      own.clock.set(TUESDAY_NOON + 300_000);
      expect((await order({ symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.1 })).status).toBe(200);
      own.clock.set(TUESDAY_NOON + 301_000);
      const stale = await order({ symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.1 });
      expect(stale.status).toBe(400);
      expect(stale.body).toEqual({
        error: "NO_QUOTES",
        message: "The last price of EURUSD is 301 s old, more than 300 s: trading waits for its next tick",
      });
      await pushQuote(own, "EURUSD", "1.08500", "1.08510");
      const fresh = await order({ symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.1 });
      expect(fresh.status).toBe(200);
      expect(fresh.body.data.deals[0].price).toBe(1.0851);
    } finally {
      await own.close();
    }
  });

  it("0 sets no limit", async () => {
    const own = await startTestServer({
      environment: { BOURSE_SESSION_TTL_SECONDS: "86400", BOURSE_MAX_QUOTE_AGE_SECONDS: "0" },
    });
    try {
      const trader = await signUp(own);
      await pushQuote(own, "EURUSD", "1.08430", "1.08440");
      own.clock.set(TUESDAY_NOON + 3_600_000);
      const body = { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.1 };
      const answer = await call(own, "POST", `${base(trader)}/orders`, { token: trader.token, body });
      expect(answer.status).toBe(200);
      expect(answer.body.data.deals[0].price).toBe(1.0844);
    } finally {
      await own.close();
    }
  });
});

describe("seed 003 cmd codes", () => {
  it("maps 0-5 to market buy/sell, buy/sell limit and buy/sell stop", async () => {
    const user = await signUp(server);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const expected = [
      { cmd: 0, side: "BUY", type: "MARKET", status: "FILLED" },
      { cmd: 1, side: "SELL", type: "MARKET", status: "FILLED" },
      { cmd: 2, side: "BUY", type: "LIMIT", status: "PLACED", price: 1.083 },
      { cmd: 3, side: "SELL", type: "LIMIT", status: "PLACED", price: 1.086 },
      { cmd: 4, side: "BUY", type: "STOP", status: "PLACED", price: 1.086 },
      { cmd: 5, side: "SELL", type: "STOP", status: "PLACED", price: 1.083 },
    ];
    for (const { cmd, side, type, status, price } of expected) {
      const response = await placeOrder(user, { symbol: "EURUSD", cmd, volume: 0.01, ...(price ? { price } : {}) });
      expect(response.status, JSON.stringify(response.body)).toBe(200);
      expect(response.body.data.order).toMatchObject({ cmd, side, type, status, price: price ?? null });
    }
    const working = await call(server, "GET", `${base(user)}/orders`, { token: user.token });
    expect(tableObjects(working.body).map((order) => order.cmd)).toEqual([2, 3, 4, 5]);
    const mixed = await placeOrder(user, { symbol: "EURUSD", cmd: 0, side: "BUY", volume: 0.01 });
    expect(mixed.status).toBe(400);
    expect(mixed.body.error).toBe("INVALID_DATA");
    const unknown = await placeOrder(user, { symbol: "EURUSD", cmd: 6, volume: 0.01 });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error).toBe("INVALID_DATA");
  });
});

describe("pending orders", () => {
  it("places a buy limit, lists it, and fills it when a pushed ask reaches its price", async () => {
    const user = await signUp(server);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const placed = await placeOrder(user, {
      symbol: "EURUSD",
      side: "BUY",
      type: "LIMIT",
      volume: 0.5,
      price: "1.08300",
      sl: 1.082,
      tp: 1.085,
      comment: "dip",
      magic: 7,
    });
    expect(placed.status).toBe(200);
    expect(placed.body.data).toMatchObject({ deals: [], positionId: null, duplicate: false });
    const orderId = placed.body.data.order.id;
    expect(placed.body.data.order).toMatchObject({
      status: "PLACED",
      filledVolume: 0,
      price: 1.083,
      sl: 1.082,
      tp: 1.085,
      timeInForce: "GTC",
      comment: "dip",
      magic: 7,
    });
    const working = await call(server, "GET", `${base(user)}/orders`, { token: user.token });
    expect(tableObjects(working.body)).toEqual([
      expect.objectContaining({ id: orderId, side: "BUY", type: "LIMIT", volume: 0.5, price: 1.083, status: "PLACED" }),
    ]);
    await pushQuote(server, "EURUSD", "1.08310", "1.08320");
    expect(tableObjects((await call(server, "GET", `${base(user)}/orders`, { token: user.token })).body)).toHaveLength(
      1,
    );
    await pushQuote(server, "EURUSD", "1.08290", "1.08300");
    expect(tableObjects((await call(server, "GET", `${base(user)}/orders`, { token: user.token })).body)).toEqual([]);
    const [position] = await positions(user);
    expect(position).toMatchObject({
      volume: 0.5,
      openPrice: 1.083,
      currentPrice: 1.0829,
      sl: 1.082,
      tp: 1.085,
      profit: -5,
      comment: "dip",
      magic: 7,
      openOrderId: orderId,
    });
    const history = await call(server, "GET", `${base(user)}/history/orders`, { token: user.token });
    expect(tableObjects(history.body)).toEqual([
      expect.objectContaining({ id: orderId, status: "FILLED", filledVolume: 0.5, price: 1.083 }),
    ]);
  });

  it("triggers a buy stop at the ask once it reaches the stop price", async () => {
    const user = await signUp(server);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const placed = await placeOrder(user, { symbol: "EURUSD", cmd: 4, volume: 0.1, price: 1.086 });
    expect(placed.body.data.order).toMatchObject({ type: "STOP", triggered: false });
    await pushQuote(server, "EURUSD", "1.08600", "1.08610");
    const [position] = await positions(user);
    expect(position).toMatchObject({ side: "BUY", openPrice: 1.0861, volume: 0.1 });
  });

  it("takes GTD expirations as ISO or epoch ms, and refuses a GTD order without one", async () => {
    const user = await signUp(server);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const iso = await placeOrder(user, {
      symbol: "EURUSD",
      side: "SELL",
      type: "LIMIT",
      volume: 0.1,
      price: 1.09,
      timeInForce: "GTD",
      expiration: "2026-06-03T12:00:00Z",
    });
    expect(iso.status).toBe(200);
    expect(iso.body.data.order.expiration).toBe("2026-06-03T12:00:00.000Z");
    const epoch = await placeOrder(user, {
      symbol: "EURUSD",
      side: "SELL",
      type: "LIMIT",
      volume: 0.1,
      price: 1.09,
      timeInForce: "GTD",
      expiration: TUESDAY_NOON + 3_600_000,
    });
    expect(epoch.body.data.order.expiration).toBe("2026-06-02T13:00:00.000Z");
    const missing = await placeOrder(user, {
      symbol: "EURUSD",
      side: "SELL",
      type: "LIMIT",
      volume: 0.1,
      price: 1.09,
      timeInForce: "GTD",
    });
    expect(missing.status).toBe(400);
    expect(missing.body.error).toBe("INVALID_EXPIRATION");
    const badTime = await placeOrder(user, {
      symbol: "EURUSD",
      side: "SELL",
      type: "LIMIT",
      volume: 0.1,
      price: 1.09,
      timeInForce: "GTD",
      expiration: "tomorrow",
    });
    expect(badTime.status).toBe(400);
    expect(badTime.body.error).toBe("INVALID_DATA");
  });

  // Found by the audit of 6 December: epoch milliseconds up to 2^53 were taken, past what a date holds (8.64 ×
  // 10^15). A GTD expiration of 9 × 10^15 was journaled, the placing answered 500, and every read of the
  // account's orders answered 500 from then on, restarts included.
  it("refuses a time past the end of year 9999, as epoch milliseconds or ISO with an offset, and places nothing", async () => {
    const user = await signUp(server);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    for (const expiration of [9_000_000_000_000_000, 253_402_300_800_000, "9999-12-31T23:59:00-05:00"]) {
      const placed = await placeOrder(user, {
        symbol: "EURUSD",
        side: "SELL",
        type: "LIMIT",
        volume: 0.1,
        price: 1.09,
        timeInForce: "GTD",
        expiration,
      });
      expect(placed.status, String(expiration)).toBe(400);
      expect(placed.body.error).toBe("INVALID_DATA");
      expect(placed.body.message).toMatch(/^expiration must be/);
    }
    const orders = await call(server, "GET", `${base(user)}/orders`, { token: user.token });
    expect(orders.status).toBe(200);
    expect(orders.body.rows).toEqual([]);
    const last = await placeOrder(user, {
      symbol: "EURUSD",
      side: "SELL",
      type: "LIMIT",
      volume: 0.1,
      price: 1.09,
      timeInForce: "GTD",
      expiration: 253_402_300_799_999,
    });
    expect(last.status).toBe(200);
    expect(last.body.data.order.expiration).toBe("9999-12-31T23:59:59.999Z");
    const candles = await call(server, "GET", "/api/v1/market/EURUSD/candles?timeframe=MN1&to=9000000000000000", {
      token: user.token,
    });
    expect(candles.status).toBe(400);
    expect(candles.body.message).toMatch(/^to must be/);
  });

  // Found by the audit of a terminal's journey of 7 December (sixth session): the Client API had no route for one order
  // or one position (the Automation API had), so a terminal read a whole table, or the history, for one row.
  it("answers one order, working or finished, and one open position; another account's ids are 404 there", async () => {
    const user = await signUp(server);
    const other = await signUp(server);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const placed = await placeOrder(user, {
      symbol: "EURUSD",
      cmd: 2,
      volume: 0.1,
      price: 1.083,
      trailingDistance: 0.002,
    });
    const orderId = placed.body.data.order.id as number;
    const working = await call(server, "GET", `${base(user)}/orders/${orderId}`, { token: user.token });
    expect(working.status).toBe(200);
    expect(working.body.data).toEqual(placed.body.data.order);
    const bought = await marketBuy(user, 0.2);
    const filled = await call(server, "GET", `${base(user)}/orders/${bought.order.id}`, { token: user.token });
    expect(filled.body.data).toMatchObject({ id: bought.order.id, type: "MARKET", status: "FILLED", volume: 0.2 });
    expect(filled.body.data).toMatchObject({ trailingDistance: null, deviation: null, triggered: false });
    await call(server, "DELETE", `${base(user)}/orders/${orderId}`, { token: user.token });
    const cancelled = await call(server, "GET", `${base(user)}/orders/${orderId}`, { token: user.token });
    expect(cancelled.body.data).toMatchObject({ id: orderId, status: "CANCELLED", statusReason: "CLIENT_CANCEL" });

    const position = await call(server, "GET", `${base(user)}/positions/${bought.positionId}`, { token: user.token });
    expect(position.status).toBe(200);
    expect(position.body.data).toEqual((await positions(user)).find((row) => row.id === bought.positionId));

    for (const path of [`orders/${orderId}`, `positions/${bought.positionId}`]) {
      const elsewhere = await call(server, "GET", `${base(other)}/${path}`, { token: other.token });
      expect(elsewhere.status, path).toBe(404);
      const foreign = await call(server, "GET", `${base(user)}/${path}`, { token: other.token });
      expect(foreign.status, path).toBe(403);
    }
    for (const id of ["0", "999999"])
      expect((await call(server, "GET", `${base(user)}/orders/${id}`, { token: user.token })).body.error).toBe(
        "ORDER_NOT_FOUND",
      );
    await call(server, "POST", `${base(user)}/positions/${bought.positionId}/close`, { token: user.token });
    const closed = await call(server, "GET", `${base(user)}/positions/${bought.positionId}`, { token: user.token });
    expect(closed.body).toEqual({ error: "POSITION_NOT_FOUND", message: expect.stringContaining("history") });
  });

  it("modifies price, SL and TP, clears SL with null, and cancels", async () => {
    const user = await signUp(server);
    const other = await signUp(server);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const placed = await placeOrder(user, { symbol: "EURUSD", cmd: 2, volume: 0.1, price: 1.083 });
    const orderId = placed.body.data.order.id;
    const url = `${base(user)}/orders/${orderId}`;
    const modified = await call(server, "POST", url, {
      token: user.token,
      body: { price: 1.082, sl: 1.08, tp: "1.08500" },
    });
    expect(modified.status).toBe(200);
    expect(modified.body.data).toMatchObject({ id: orderId, price: 1.082, sl: 1.08, tp: 1.085, status: "PLACED" });
    const cleared = await call(server, "POST", url, { token: user.token, body: { sl: null } });
    expect(cleared.status).toBe(200);
    expect(cleared.body.data).toMatchObject({ price: 1.082, sl: null, tp: 1.085 });
    const nothing = await call(server, "POST", url, { token: user.token, body: { sl: null } });
    expect(nothing.status).toBe(400);
    expect(nothing.body.error).toBe("NO_CHANGES");
    const wrongSide = await call(server, "POST", url, { token: user.token, body: { price: 1.09 } });
    expect(wrongSide.status).toBe(400);
    expect(wrongSide.body.error).toBe("INVALID_PRICE");
    const decimals = await call(server, "POST", url, { token: user.token, body: { price: 1.0820001 } });
    expect(decimals.status).toBe(400);
    expect(decimals.body.error).toBe("INVALID_PRICE");
    const unknownField = await call(server, "POST", url, { token: user.token, body: { volume: 1 } });
    expect(unknownField.status).toBe(400);
    expect(unknownField.body.error).toBe("INVALID_DATA");
    // The order through another user's own account path: not found there, and untouched.
    const otherPath = `${base(other)}/orders/${orderId}`;
    const foreignModify = await call(server, "POST", otherPath, { token: other.token, body: { price: 1.081 } });
    expect(foreignModify.status).toBe(404);
    expect(foreignModify.body.error).toBe("ORDER_NOT_FOUND");
    const foreignCancel = await call(server, "DELETE", otherPath, { token: other.token });
    expect(foreignCancel.status).toBe(404);

    const cancelled = await call(server, "DELETE", url, { token: user.token });
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.data).toMatchObject({ id: orderId, status: "CANCELLED", statusReason: "CLIENT_CANCEL" });
    expect(tableObjects((await call(server, "GET", `${base(user)}/orders`, { token: user.token })).body)).toEqual([]);
    const twice = await call(server, "DELETE", url, { token: user.token });
    expect(twice.status).toBe(404);
    expect(twice.body.error).toBe("ORDER_NOT_FOUND");
    const history = await call(server, "GET", `${base(user)}/history/orders`, { token: user.token });
    expect(tableObjects(history.body)[0]).toMatchObject({ id: orderId, status: "CANCELLED", price: 1.082, sl: null });
  });
});

describe("positions", () => {
  it("closes part of a position at the bid with its realised profit, then the rest without a body", async () => {
    const user = await signUp(server);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const opened = await marketBuy(user, 0.3);
    await pushQuote(server, "EURUSD", "1.08500", "1.08510");
    const url = `${base(user)}/positions/${opened.positionId}/close`;
    const partial = await call(server, "POST", url, { token: user.token, body: { volume: 0.1, comment: "half" } });
    expect(partial.status).toBe(200);
    expect(partial.body.data).toMatchObject({ positionId: opened.positionId, orderId: expect.any(Number) });
    expect(partial.body.data.deals).toEqual([
      expect.objectContaining({ side: "SELL", entry: "OUT", volume: 0.1, price: 1.085, profit: 6, commission: 0 }),
    ]);
    expect(partial.body.data.position).toMatchObject({ volume: 0.2, openPrice: 1.0844, profit: 12 });
    expect(await account(user)).toMatchObject({ balance: 10006, equity: 10018 });

    const tooMuch = await call(server, "POST", url, { token: user.token, body: { volume: 0.5 } });
    expect(tooMuch.status).toBe(400);
    expect(tooMuch.body.error).toBe("INVALID_VOLUME");
    const decimals = await call(server, "POST", url, { token: user.token, body: { volume: 0.105 } });
    expect(decimals.status).toBe(400);
    expect(decimals.body.error).toBe("INVALID_VOLUME");

    await pushQuote(server, "EURUSD", "1.08400", "1.08410");
    const rest = await call(server, "POST", url, { token: user.token });
    expect(rest.status).toBe(200);
    expect(rest.body.data.position).toBeNull();
    expect(rest.body.data.deals).toEqual([expect.objectContaining({ volume: 0.2, price: 1.084, profit: -8 })]);
    expect(await positions(user)).toEqual([]);
    expect(await account(user)).toMatchObject({ balance: 9998, equity: 9998, margin: 0, marginLevel: null });
    const again = await call(server, "POST", url, { token: user.token });
    expect(again.status).toBe(404);
    expect(again.body.error).toBe("POSITION_NOT_FOUND");

    const history = await call(server, "GET", `${base(user)}/history/positions`, { token: user.token });
    expect(tableObjects(history.body)).toEqual([
      expect.objectContaining({
        id: opened.positionId,
        volume: 0,
        openedVolume: 0.3,
        openPrice: 1.0844,
        closedVolume: 0.3,
        // (0.1 × 1.0850 + 0.2 × 1.0840) / 0.3 = 1.084333… rounded half up to 5 digits.
        closePrice: 1.08433,
        profit: -2,
        closeTime: "2026-06-02T12:00:00.000Z",
      }),
    ]);
  });

  // A partial close took no id: a client that retried one after a lost answer closed the volume again (the
  // idempotency audit of 7 December left it documented; closes take a clientOrderId now).
  it("answers a retried close with the same clientOrderId with the first close, also once the position is closed", async () => {
    const user = await signUp(server);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const opened = await marketBuy(user, 0.3);
    await pushQuote(server, "EURUSD", "1.08500", "1.08510");
    const url = `${base(user)}/positions/${opened.positionId}/close`;
    const part = { volume: 0.1, clientOrderId: "close-part" };
    const first = await call(server, "POST", url, { token: user.token, body: part });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body.data.duplicate).toBe(false);
    await pushQuote(server, "EURUSD", "1.08600", "1.08610");
    const again = await call(server, "POST", url, { token: user.token, body: part });
    expect(again.status).toBe(200);
    expect(again.body.data).toMatchObject({ duplicate: true, orderId: first.body.data.orderId });
    expect(again.body.data.deals).toEqual(first.body.data.deals);
    expect(again.body.data.deals[0]).toMatchObject({ volume: 0.1, price: 1.085, profit: 6 });
    expect(again.body.data.position).toMatchObject({ volume: 0.2 });
    expect(await account(user)).toMatchObject({ balance: 10006 });
    const otherVolume = await call(server, "POST", url, { token: user.token, body: { ...part, volume: 0.2 } });
    expect(otherVolume.status).toBe(409);
    expect(otherVolume.body.error).toBe("DUPLICATE_CLIENT_ORDER_ID");

    const whole = await call(server, "POST", url, { token: user.token, body: { clientOrderId: "close-rest" } });
    expect(whole.body.data).toMatchObject({ position: null, duplicate: false });
    const wholeAgain = await call(server, "POST", url, { token: user.token, body: { clientOrderId: "close-rest" } });
    expect(wholeAgain.status).toBe(200);
    expect(wholeAgain.body.data).toMatchObject({ position: null, duplicate: true, orderId: whole.body.data.orderId });
    expect(wholeAgain.body.data.deals).toEqual(whole.body.data.deals);
    expect(await account(user)).toMatchObject({ balance: 10006 + 32 });
    const unknown = await call(server, "POST", url, { token: user.token, body: { clientOrderId: "never-used" } });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toBe("POSITION_NOT_FOUND");
  });

  it("modifies SL and TP, refuses stops on the wrong side, clears with null, and closes at the TP", async () => {
    const user = await signUp(server);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const opened = await marketBuy(user, 0.1);
    const url = `${base(user)}/positions/${opened.positionId}`;
    const modified = await call(server, "POST", url, { token: user.token, body: { sl: 1.08, tp: 1.09 } });
    expect(modified.status).toBe(200);
    expect(modified.body.data).toMatchObject({ id: opened.positionId, sl: 1.08, tp: 1.09, trailingDistance: null });
    const trailing = await call(server, "POST", url, { token: user.token, body: { trailingDistance: 0.002 } });
    expect(trailing.body.data).toMatchObject({ trailingDistance: 0.002, sl: 1.08 });
    const wrong = await call(server, "POST", url, { token: user.token, body: { sl: 1.085 } });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error).toBe("INVALID_STOPS");
    const cleared = await call(server, "POST", url, { token: user.token, body: { sl: null, trailingDistance: 0 } });
    expect(cleared.status).toBe(200);
    expect(cleared.body.data).toMatchObject({ sl: null, tp: 1.09, trailingDistance: null });
    const decimals = await call(server, "POST", url, { token: user.token, body: { tp: "1.090001" } });
    expect(decimals.status).toBe(400);
    expect(decimals.body.error).toBe("INVALID_PRICE");

    await pushQuote(server, "EURUSD", "1.09000", "1.09010");
    expect(await positions(user)).toEqual([]);
    const deals = tableObjects((await call(server, "GET", `${base(user)}/history/deals`, { token: user.token })).body);
    expect(deals.at(-1)).toMatchObject({ entry: "OUT", reason: "TAKE_PROFIT", price: 1.09, profit: 56 });
    expect(await account(user)).toMatchObject({ balance: 10056 });
  });
});

describe("a position changed and closed in one batch", () => {
  // Found by the audit of races of 7 December: a change made, journaled and streamed was answered 404
  // POSITION_NOT_FOUND when a close of the same batch closed the position after it.
  it("answers the change as made, and the close as made", async () => {
    const user = await signUp(server);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const opened = await marketBuy(user, 0.1);
    const url = `${base(user)}/positions/${opened.positionId}`;
    const [modified, closed] = await Promise.all([
      call(server, "POST", url, { token: user.token, body: { sl: 1.07 } }),
      call(server, "POST", `${url}/close`, { token: user.token, body: {} }),
    ]);
    expect(closed.status).toBe(200);
    expect(modified.status).toBe(200);
    // The position as the change left it, before the close took its volume.
    expect(modified.body.data).toMatchObject({
      id: opened.positionId,
      volume: 0.1,
      openPrice: 1.0844,
      sl: 1.07,
      tp: null,
    });
    expect(await positions(user)).toEqual([]);
  });
});

describe("history and ledger", () => {
  it("pages deals, orders and positions with a cursor and filters by time and symbol", async () => {
    const user = await signUp(server);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const first = await marketBuy(user, 0.01);
    server.clock.advance(60_000);
    const second = await marketBuy(user, 0.02);
    server.clock.advance(60_000);
    const third = await marketBuy(user, 0.03);
    const deals = `${base(user)}/history/deals`;

    const page1 = await call(server, "GET", `${deals}?limit=2`, { token: user.token });
    expect(page1.status).toBe(200);
    expect(tableObjects(page1.body).map((deal) => deal.volume)).toEqual([0.01, 0.02]);
    expect(typeof page1.body.nextCursor).toBe("string");
    const page2 = await call(server, "GET", `${deals}?limit=2&cursor=${page1.body.nextCursor}`, { token: user.token });
    expect(tableObjects(page2.body)).toEqual([
      expect.objectContaining({ id: third.deals[0].id, volume: 0.03, price: 1.0844, orderId: third.order.id }),
    ]);
    expect(page2.body.nextCursor).toBeNull();

    const secondTime = second.deals[0].time as string;
    const fromIso = await call(server, "GET", `${deals}?from=${secondTime}`, { token: user.token });
    expect(tableObjects(fromIso.body).map((deal) => deal.orderId)).toEqual([second.order.id, third.order.id]);
    const toMs = await call(server, "GET", `${deals}?to=${Date.parse(secondTime)}`, { token: user.token });
    expect(tableObjects(toMs.body).map((deal) => deal.orderId)).toEqual([first.order.id]);
    const gbp = await call(server, "GET", `${deals}?symbol=GBPUSD`, { token: user.token });
    expect(gbp.body.rows).toEqual([]);
    // A symbol in any case, as every route reads one (the audit of the Automation API of 7 December, sixth session:
    // "eurusd" found nothing); one no longer traded is taken as written.
    const lower = await call(server, "GET", `${deals}?symbol=eurusd`, { token: user.token });
    expect(tableObjects(lower.body).map((deal) => deal.orderId)).toEqual([
      first.order.id,
      second.order.id,
      third.order.id,
    ]);
    expect((await call(server, "GET", `${deals}?symbol=DELISTED`, { token: user.token })).body.rows).toEqual([]);

    const orders = await call(server, "GET", `${base(user)}/history/orders?limit=1&symbol=EURUSD`, {
      token: user.token,
    });
    expect(tableObjects(orders.body)).toEqual([expect.objectContaining({ id: first.order.id, status: "FILLED" })]);
    expect(orders.body.nextCursor).toEqual(expect.any(String));
    const positionsPage = await call(server, "GET", `${base(user)}/history/positions?limit=5`, { token: user.token });
    expect(tableObjects(positionsPage.body).map((position) => position.volume)).toEqual([0.01, 0.02, 0.03]);
    expect(positionsPage.body.nextCursor).toBeNull();

    for (const query of [
      "limit=1001",
      "limit=0",
      "cursor=forged",
      "from=yesterday",
      "to=2026-06-01T00:00:00Z&from=2026-06-02T00:00:00Z",
      "page=2",
    ]) {
      const response = await call(server, "GET", `${deals}?${query}`, { token: user.token });
      expect(response.status, query).toBe(400);
      expect(response.body.error, query).toBe("INVALID_DATA");
    }
  });

  // A terminal shows the newest rows first: to show the latest deals of a long history it paged through all of them
  // (found by the audit of a terminal's journey).
  it("pages every history and the ledger newest first with direction=desc, ties on time in id order reversed", async () => {
    const user = await signUp(server);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    // Three orders in one millisecond, then three a minute later.
    const volumes = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06];
    const placed = [];
    for (const [index, volume] of volumes.entries()) {
      if (index === 3) server.clock.advance(60_000);
      placed.push(await marketBuy(user, volume));
    }
    const later = Date.parse(placed[3].deals[0].time as string);
    expect(Date.parse(placed[0].deals[0].time as string)).toBe(Date.parse(placed[2].deals[0].time as string));
    const token = { token: user.token };

    for (const kind of ["orders", "deals", "positions"]) {
      const url = `${base(user)}/history/${kind}`;
      const oldestFirst = tableObjects((await call(server, "GET", url, token)).body);
      expect(oldestFirst).toHaveLength(6);
      const first = await call(server, "GET", `${url}?direction=desc&limit=4`, token);
      expect(first.status).toBe(200);
      const second = await call(server, "GET", `${url}?direction=desc&limit=4&cursor=${first.body.nextCursor}`, token);
      expect(second.status).toBe(200);
      expect(second.body.nextCursor).toBeNull();
      expect([...tableObjects(first.body), ...tableObjects(second.body)], kind).toEqual([...oldestFirst].reverse());
      // Filtered by symbol and time: the same rows of the filtered history, newest first.
      const filtered = await call(server, "GET", `${url}?direction=desc&symbol=eurusd&from=${later}&limit=2`, token);
      expect(tableObjects(filtered.body).map((row) => row.volume)).toEqual([0.06, 0.05]);
      const rest = await call(
        server,
        "GET",
        `${url}?direction=desc&symbol=eurusd&from=${later}&limit=2&cursor=${filtered.body.nextCursor}`,
        token,
      );
      expect(tableObjects(rest.body).map((row) => row.volume)).toEqual([0.04]);
      expect(rest.body.nextCursor).toBeNull();
      // direction=asc is the default, spelled out.
      expect(tableObjects((await call(server, "GET", `${url}?direction=asc`, token)).body)).toEqual(oldestFirst);
    }
    const deals = tableObjects((await call(server, "GET", `${base(user)}/history/deals?direction=desc`, token)).body);
    expect(deals.map((deal) => deal.id)).toEqual(placed.map((data) => data.deals[0].id).reverse());

    const ledger = tableObjects((await call(server, "GET", `${base(user)}/ledger`, token)).body);
    await admin(server, "POST", `/admin/v1/accounts/${user.login}/deposit`, { amount: "1.00", comment: "latest" });
    const newest = await call(server, "GET", `${base(user)}/ledger?direction=desc&limit=1`, token);
    expect(tableObjects(newest.body)).toEqual([expect.objectContaining({ kind: "DEPOSIT", comment: "latest" })]);
    const older = await call(
      server,
      "GET",
      `${base(user)}/ledger?direction=desc&cursor=${newest.body.nextCursor}`,
      token,
    );
    expect(tableObjects(older.body)).toEqual([...ledger].reverse());
  });

  it("refuses a bad direction, and a cursor with a direction other than its page's, with the registry's 400", async () => {
    const user = await signUp(server);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    for (const volume of [0.01, 0.02, 0.03]) await marketBuy(user, volume);
    const deals = `${base(user)}/history/deals`;
    const token = { token: user.token };
    const ascending = (await call(server, "GET", `${deals}?limit=1`, token)).body.nextCursor as string;
    const descending = (await call(server, "GET", `${deals}?limit=1&direction=desc`, token)).body.nextCursor as string;
    for (const [query, message] of [
      ["direction=DESC", /direction/],
      ["direction=newest", /direction/],
      ["direction=", /direction/],
      [`cursor=${descending}`, /direction=desc/],
      [`cursor=${descending}&direction=asc`, /direction=desc/],
      [`cursor=${ascending}&direction=desc`, /direction=asc/],
    ] as const) {
      for (const url of [deals, `${base(user)}/history/orders`, `${base(user)}/ledger`]) {
        const response = await call(server, "GET", `${url}?${query}`, token);
        expect(response.status, `${url}?${query}`).toBe(400);
        expect(response.body, `${url}?${query}`).toEqual({
          error: "INVALID_DATA",
          message: expect.stringMatching(message),
        });
      }
    }
  });

  it("lists the ledger: deposits, realised profit, with balances after each row, paged", async () => {
    const user = await signUp(server);
    await admin(server, "POST", `/admin/v1/accounts/${user.login}/deposit`, { amount: "500.25", comment: "wire" });
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const opened = await marketBuy(user, 0.1);
    await pushQuote(server, "EURUSD", "1.08500", "1.08510");
    const closed = await call(server, "POST", `${base(user)}/positions/${opened.positionId}/close`, {
      token: user.token,
      body: {},
    });
    const dealId = closed.body.data.deals[0].id;
    const ledger = await call(server, "GET", `${base(user)}/ledger`, { token: user.token });
    expect(ledger.status).toBe(200);
    expect(ledger.body.structure).toEqual([
      "id",
      "kind",
      "amount",
      "balanceAfter",
      "creditAfter",
      "dealId",
      "operationId",
      "comment",
      "time",
    ]);
    expect(tableObjects(ledger.body)).toEqual([
      expect.objectContaining({ kind: "DEPOSIT", amount: 10000, balanceAfter: 10000, comment: "Demo account funding" }),
      expect.objectContaining({ kind: "DEPOSIT", amount: 500.25, balanceAfter: 10500.25, comment: "wire" }),
      expect.objectContaining({ kind: "PROFIT", amount: 6, balanceAfter: 10506.25, dealId, operationId: null }),
    ]);
    expect(ledger.body.nextCursor).toBeNull();
    const page1 = await call(server, "GET", `${base(user)}/ledger?limit=2`, { token: user.token });
    expect(page1.body.rows).toHaveLength(2);
    const page2 = await call(server, "GET", `${base(user)}/ledger?limit=2&cursor=${page1.body.nextCursor}`, {
      token: user.token,
    });
    expect(tableObjects(page2.body)).toEqual([expect.objectContaining({ kind: "PROFIT", amount: 6 })]);
    expect((await account(user)).balance).toBe(10506.25);
    const symbol = await call(server, "GET", `${base(user)}/ledger?symbol=EURUSD`, { token: user.token });
    expect(symbol.status).toBe(400);
    expect(symbol.body.error).toBe("INVALID_DATA");
  });
});

describe("rejections", () => {
  it("answers the engine's codes and refuses inexact decimals", async () => {
    const user = await signUp(server);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const cases: [Record<string, unknown>, number, string][] = [
      [{ symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 100 }, 400, "NO_MONEY"],
      [{ symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.001 }, 400, "INVALID_VOLUME"],
      [{ symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 500 }, 400, "INVALID_VOLUME"],
      [{ symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0 }, 400, "INVALID_VOLUME"],
      [{ symbol: "EURUSD", side: "BUY", type: "LIMIT", volume: 0.1, price: 1.083001 }, 400, "INVALID_PRICE"],
      [{ symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.1, sl: "1.0800001" }, 400, "INVALID_PRICE"],
      [{ symbol: "EURUSD", side: "BUY", type: "LIMIT", volume: 0.1, price: 1.09 }, 400, "INVALID_PRICE"],
      [{ symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.1, sl: 1.085 }, 400, "INVALID_STOPS"],
      [{ symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.1, timeInForce: "GTC" }, 400, "INVALID_FILL_POLICY"],
      [
        { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.1, price: 1.084, deviation: 0.0002 },
        400,
        "PRICE_OFF",
      ],
      [
        { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.1, price: 1.084, deviation: 0.000001 },
        400,
        "INVALID_PRICE",
      ],
      [{ symbol: "NOPE", side: "BUY", type: "MARKET", volume: 0.1 }, 404, "UNKNOWN_SYMBOL"],
      [{ symbol: "EURUSD", type: "MARKET", volume: 0.1 }, 400, "INVALID_DATA"],
      [{ symbol: "EURUSD", side: "HOLD", type: "MARKET", volume: 0.1 }, 400, "INVALID_DATA"],
      [{ symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.1, leverage: 1000 }, 400, "INVALID_DATA"],
      [{ symbol: "EURUSD", side: "BUY", type: "MARKET", volume: "lots" }, 400, "INVALID_DATA"],
      [{ symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.1, comment: "x".repeat(65) }, 400, "INVALID_DATA"],
    ];
    for (const [body, status, code] of cases) {
      const response = await placeOrder(user, body);
      expect(response.status, JSON.stringify(body)).toBe(status);
      expect(response.body, JSON.stringify(body)).toEqual({ error: code, message: expect.any(String) });
    }
    expect(await positions(user)).toEqual([]);
    expect((await account(user)).balance).toBe(10000);
    // Within the deviation the market order fills at the ask.
    const bounded = await marketBuy(user, 0.1, { price: 1.084, deviation: "0.0004" });
    expect(bounded.order).toMatchObject({ price: 1.084, deviation: 0.0004, status: "FILLED" });
    expect(bounded.deals[0].price).toBe(1.0844);
  });

  it("refuses a market order with MARKET_CLOSED when the clock is at a Saturday", async () => {
    const saturday = await startTestServer({ clock: new ManualClock(Date.UTC(2026, 5, 6, 12, 0)) });
    try {
      const user = await signUp(saturday);
      const response = await call(saturday, "POST", `/api/v1/accounts/${user.login}/orders`, {
        token: user.token,
        body: { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.1 },
      });
      expect(response.status).toBe(400);
      expect(response.body.error).toBe("MARKET_CLOSED");
    } finally {
      await saturday.close();
    }
  });
});

describe("every trade route", () => {
  let owner: User;
  let intruder: User;
  let orderId: number;
  let positionId: number;
  const routes = () => [
    { method: "POST", url: `${base(owner)}/orders`, body: { symbol: "EURUSD", cmd: 0, volume: 0.01 } },
    { method: "GET", url: `${base(owner)}/orders` },
    { method: "POST", url: `${base(owner)}/orders/${orderId}`, body: { price: 1.0801 } },
    { method: "DELETE", url: `${base(owner)}/orders/${orderId}` },
    { method: "GET", url: `${base(owner)}/positions` },
    { method: "POST", url: `${base(owner)}/positions/${positionId}`, body: { sl: 1.07 } },
    { method: "POST", url: `${base(owner)}/positions/${positionId}/close`, body: {} },
    { method: "GET", url: `${base(owner)}/history/orders` },
    { method: "GET", url: `${base(owner)}/history/deals` },
    { method: "GET", url: `${base(owner)}/history/positions` },
  ];

  beforeAll(async () => {
    owner = await signUp(server);
    intruder = await signUp(server);
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    positionId = (await marketBuy(owner, 0.1)).positionId;
    orderId = (await placeOrder(owner, { symbol: "EURUSD", cmd: 2, volume: 0.1, price: 1.08 })).body.data.order.id;
  });

  it("answers 401 without a token", async () => {
    for (const route of routes()) {
      const response = await call(server, route.method, route.url, { body: route.body });
      expect(response.status, route.url).toBe(401);
      expect(response.body.error).toBe("UNAUTHORIZED");
    }
  });

  it("answers 403 and no data for another user's account, and changes nothing", async () => {
    for (const route of routes()) {
      const response = await call(server, route.method, route.url, { token: intruder.token, body: route.body });
      expect(response.status, `${route.method} ${route.url}`).toBe(403);
      expect(response.body).toEqual({ error: "FORBIDDEN", message: expect.any(String) });
    }
    expect(await positions(owner)).toEqual([expect.objectContaining({ id: positionId, sl: null })]);
    const working = await call(server, "GET", `${base(owner)}/orders`, { token: owner.token });
    expect(tableObjects(working.body)).toEqual([expect.objectContaining({ id: orderId, price: 1.08 })]);
  });

  it("answers 400 INVALID_DATA for malformed paths, queries and bodies", async () => {
    const invalid = [
      { method: "POST", url: `${base(owner)}/orders`, body: { symbol: "EURUSD", cmd: 0 } },
      { method: "POST", url: "/api/v1/accounts/abc/orders", body: { symbol: "EURUSD", cmd: 0, volume: 0.01 } },
      { method: "GET", url: `${base(owner)}/orders?status=all` },
      { method: "POST", url: `${base(owner)}/orders/x1`, body: { price: 1.0801 } },
      { method: "POST", url: `${base(owner)}/orders/${orderId}`, body: { side: "SELL" } },
      { method: "DELETE", url: `${base(owner)}/orders/-1` },
      { method: "GET", url: `${base(owner)}/positions?symbol=EURUSD` },
      { method: "POST", url: `${base(owner)}/positions/${positionId}`, body: { sl: "low" } },
      { method: "POST", url: `${base(owner)}/positions/${positionId}/close`, body: { volume: 0.01, all: true } },
      { method: "GET", url: `${base(owner)}/history/orders?limit=5000` },
      { method: "GET", url: `${base(owner)}/history/deals?cursor=!!` },
      { method: "GET", url: `${base(owner)}/history/positions?from=2026-13-45` },
    ];
    for (const route of invalid) {
      const response = await call(server, route.method, route.url, { token: owner.token, body: route.body });
      expect(response.status, `${route.method} ${route.url}`).toBe(400);
      expect(response.body.error, `${route.method} ${route.url}`).toBe("INVALID_DATA");
    }
    expect(await positions(owner)).toHaveLength(1);
  });
});
