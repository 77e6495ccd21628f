/**
 * The Automation API (seed 003), endpoint by endpoint: success with exact values (prices with the
 * instrument's digits, money to the cent), a validation error (400), a missing key (401), and another
 * account's ticket (404, never data: another user's, and the same user's other account, since a key is
 * bound to one account). Then the envelope of errors and unknown routes, 503 before the engine is ready,
 * and the dedicated listener (`automation.port`) that serves this API and nothing else.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadServerConfig } from "../src/config.ts";
import { createServer } from "../src/server.ts";
import {
  TUESDAY_NOON,
  admin,
  automation,
  call,
  createApiKey,
  pushQuote,
  signUp,
  startTestServer,
  type TestServer,
} from "./helpers.ts";

const NOON = new Date(TUESDAY_NOON).toISOString();
const FAST = { BOURSE_AUTOMATION_RATE_LIMIT_PER_SECOND: "100000" };

let server: TestServer;
/** Another user with an open position and a pending order: their tickets must be 404 for everyone else. */
let other: { key: string; position: number; order: number };
/** The same user's second account (a key of the first must not reach it). */
let sibling: { key: string; login: number; position: number; order: number };

function expectError(response: { status: number; body: unknown }, status: number, code: string, error?: string) {
  expect(response.status, JSON.stringify(response.body)).toBe(status);
  expect(response.body).toEqual({ success: false, error: error ?? expect.any(String), code });
}

async function trader() {
  const user = await signUp(server);
  const { key } = await createApiKey(server, user, "full");
  return { user, key };
}

async function buy(key: string, volume = 0.1, extra: Record<string, unknown> = {}) {
  const response = await automation(server, "POST", "/v1/api/trade", key, {
    symbol: "EURUSD",
    action: "buy",
    volume,
    ...extra,
  });
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return response.body.data as { ticket: number; order: number; deal: number; price: number; volume: number };
}

async function buyLimit(key: string, price = 1.08) {
  const response = await automation(server, "POST", "/v1/api/order", key, {
    symbol: "EURUSD",
    type: 2,
    volume: 0.2,
    price,
  });
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return response.body.data.ticket as number;
}

beforeAll(async () => {
  server = await startTestServer({ environment: FAST });
  await pushQuote(server, "EURUSD", "1.08430", "1.08440");
  const stranger = await trader();
  other = { key: stranger.key, position: (await buy(stranger.key)).ticket, order: await buyLimit(stranger.key) };
  const owner = await signUp(server);
  const opened = await call(server, "PUT", "/api/v1/accounts", { token: owner.token, body: {} });
  expect(opened.status).toBe(200);
  const login = opened.body.data.login as number;
  const key = (await createApiKey(server, owner, "full", login)).key;
  sibling = { key, login, position: (await buy(key)).ticket, order: await buyLimit(key) };
});

afterAll(async () => {
  await server?.close();
});

/** Tickets a fresh key must never reach: 404 with the engine's code, and nothing of them in the body. */
function foreignPositions() {
  return [other.position, sibling.position, 999_999];
}
function foreignOrders() {
  return [other.order, sibling.order, 999_999];
}

describe("GET /v1/api/account", () => {
  it("answers the key's account with seed 003's fields, to the cent, before and after a trade", async () => {
    const { user, key } = await trader();
    const fresh = await automation(server, "GET", "/v1/api/account", key);
    expect(fresh.status).toBe(200);
    expect(fresh.body).toEqual({
      success: true,
      data: {
        login: user.login,
        currency: "USD",
        leverage: 100,
        mode: "hedging",
        balance: 10000,
        credit: 0,
        equity: 10000,
        margin: 0,
        freeMargin: 10000,
        marginLevel: null,
        profit: 0,
      },
    });
    await buy(key);
    // 0.1 lot bought at 1.08440, valued at the bid 1.08430: −1.00 USD; margin 10,000 EUR / 100 at 1.0843.
    const after = await automation(server, "GET", "/v1/api/account", key);
    expect(after.body.data).toEqual({
      login: user.login,
      currency: "USD",
      leverage: 100,
      mode: "hedging",
      balance: 10000,
      credit: 0,
      equity: 9999,
      margin: 108.43,
      freeMargin: 9890.57,
      marginLevel: 9221.61,
      profit: -1,
    });
  });

  it("a key bound to the user's second account answers that account, never the first", async () => {
    const response = await automation(server, "GET", "/v1/api/account", sibling.key);
    expect(response.body.data.login).toBe(sibling.login);
  });

  it("refuses query parameters it does not take (400), and answers 401 without a key", async () => {
    const { key } = await trader();
    expectError(await automation(server, "GET", "/v1/api/account?login=1", key), 400, "INVALID_DATA");
    expectError(
      await automation(server, "GET", "/v1/api/account", null),
      401,
      "UNAUTHORIZED",
      "Missing authorization header",
    );
  });
});

describe("GET /v1/api/account/history", () => {
  it("answers the deals and balance operations of the key's account only, with exact values", async () => {
    const { key } = await trader();
    const opened = await buy(key);
    await pushQuote(server, "EURUSD", "1.08530", "1.08540");
    try {
      const closed = await automation(server, "POST", `/v1/api/positions/${opened.ticket}/close`, key, {});
      expect(closed.status).toBe(200);
      const response = await automation(server, "GET", "/v1/api/account/history", key);
      expect(response.status).toBe(200);
      expect(response.body.data).toEqual({
        deals: [
          {
            ticket: opened.deal,
            order: opened.order,
            position: opened.ticket,
            symbol: "EURUSD",
            type: "buy",
            entry: "in",
            volume: 0.1,
            price: 1.0844,
            profit: 0,
            commission: 0,
            swap: 0,
            reason: "client",
            time: NOON,
          },
          {
            ticket: expect.any(Number),
            order: closed.body.data.order,
            position: opened.ticket,
            symbol: "EURUSD",
            type: "sell",
            entry: "out",
            volume: 0.1,
            price: 1.0853,
            profit: 9,
            commission: 0,
            swap: 0,
            reason: "client",
            time: NOON,
          },
        ],
        operations: [
          {
            ticket: expect.any(Number),
            type: "deposit",
            amount: 10000,
            balance: 10000,
            credit: 0,
            comment: expect.any(String),
            time: NOON,
          },
        ],
        more: false,
        nextCursor: null,
      });
      // limit cuts both lists; a range after everything is empty.
      const cut = await automation(server, "GET", "/v1/api/account/history?limit=1", key);
      expect(cut.body.data.deals).toHaveLength(1);
      expect(cut.body.data.more).toBe(true);
      const later = await automation(server, "GET", `/v1/api/account/history?from=${TUESDAY_NOON + 1}`, key);
      expect(later.body.data).toEqual({ deals: [], operations: [], more: false, nextCursor: null });
      const bounded = await automation(server, "GET", `/v1/api/account/history?from=${NOON}&to=${NOON}`, key);
      expect(bounded.body.data).toEqual({ deals: [], operations: [], more: false, nextCursor: null });
    } finally {
      await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    }
  });

  // Found by the audit of 7 December (second session): the history had no cursor, and its advice, "ask again from
  // the last time shown", gave the same rows forever once more than `limit` deals shared a millisecond.
  it("pages through deals that share one millisecond with nextCursor, each list on its own, every row once", async () => {
    const { key } = await trader();
    const tickets: number[] = [];
    for (let order = 0; order < 7; order += 1) tickets.push((await buy(key, 0.01)).deal);
    const deals: number[] = [];
    const operations: number[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = cursor === null ? "limit=3" : `limit=3&cursor=${cursor}`;
      const page = await automation(server, "GET", `/v1/api/account/history?${query}`, key);
      expect(page.status, JSON.stringify(page.body)).toBe(200);
      deals.push(...page.body.data.deals.map((deal: { ticket: number }) => deal.ticket));
      operations.push(...page.body.data.operations.map((operation: { ticket: number }) => operation.ticket));
      cursor = page.body.data.nextCursor;
      expect(page.body.data.more).toBe(cursor !== null);
      pages += 1;
    } while (cursor !== null && pages < 10);
    // 7 deals by 3: three pages; the one deposit comes in the first, then its list is complete.
    expect(pages).toBe(3);
    expect(deals).toEqual(tickets);
    expect(operations).toHaveLength(1);
  });

  // A bot, like a terminal, wants the latest deals of a long history first.
  it("pages both lists newest first with direction=desc: every row once, the oldest-first lists reversed", async () => {
    const { user, key } = await trader();
    for (let order = 0; order < 7; order += 1) {
      await buy(key, 0.01);
      if (order % 2 === 0)
        await admin(server, "POST", `/admin/v1/accounts/${user.login}/deposit`, { amount: `${order + 1}.00` });
    }
    const everything = async (direction: "asc" | "desc") => {
      const deals: number[] = [];
      const operations: number[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const query: string = `limit=3&direction=${direction}${cursor === null ? "" : `&cursor=${cursor}`}`;
        const page = await automation(server, "GET", `/v1/api/account/history?${query}`, key);
        expect(page.status, JSON.stringify(page.body)).toBe(200);
        deals.push(...page.body.data.deals.map((deal: { ticket: number }) => deal.ticket));
        operations.push(...page.body.data.operations.map((operation: { ticket: number }) => operation.ticket));
        cursor = page.body.data.nextCursor;
        pages += 1;
      } while (cursor !== null && pages < 10);
      return { deals, operations, pages };
    };
    const oldestFirst = await everything("asc");
    const newestFirst = await everything("desc");
    expect(oldestFirst.deals).toHaveLength(7);
    expect(oldestFirst.operations).toHaveLength(5);
    expect(newestFirst).toEqual({
      deals: [...oldestFirst.deals].reverse(),
      operations: [...oldestFirst.operations].reverse(),
      pages: 3,
    });
    // Without `direction`, the answer is what it always was.
    const plain = await automation(server, "GET", "/v1/api/account/history?limit=3", key);
    expect(plain.body.data.deals.map((deal: { ticket: number }) => deal.ticket)).toEqual(oldestFirst.deals.slice(0, 3));
    expect(Object.keys(plain.body.data)).toEqual(["deals", "operations", "more", "nextCursor"]);
    // A cursor goes on only in its own direction.
    const newest = await automation(server, "GET", "/v1/api/account/history?limit=1&direction=desc", key);
    expectError(
      await automation(server, "GET", `/v1/api/account/history?cursor=${newest.body.data.nextCursor}`, key),
      400,
      "INVALID_DATA",
      expect.stringContaining("direction=desc"),
    );
    expectError(await automation(server, "GET", "/v1/api/account/history?direction=down", key), 400, "INVALID_DATA");
  });

  it("refuses bad times, bounds, limits and cursors (400), and answers 401 without a key", async () => {
    const { key } = await trader();
    for (const query of [
      "from=yesterday",
      "limit=0",
      "limit=1001",
      `from=${TUESDAY_NOON + 1}&to=${TUESDAY_NOON}`,
      "x=1",
      "cursor=abc",
      "cursor=abc.def",
      "cursor=-.-.-",
      `cursor=${Buffer.from("id:-1").toString("base64url")}.-`,
    ])
      expectError(await automation(server, "GET", `/v1/api/account/history?${query}`, key), 400, "INVALID_DATA");
    expectError(await automation(server, "GET", "/v1/api/account/history", null), 401, "UNAUTHORIZED");
  });
});

describe("positions", () => {
  it("GET /v1/api/positions lists the key's open positions with P&L, oldest first, optionally of one symbol", async () => {
    const { key } = await trader();
    const first = await buy(key, 0.1, { sl: 1.08, tp: 1.095, comment: "grid 1", magic: 42 });
    const second = await automation(server, "POST", "/v1/api/trade", key, {
      symbol: "EURUSD",
      action: "sell",
      volume: 0.05,
    });
    const response = await automation(server, "GET", "/v1/api/positions", key);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      success: true,
      data: [
        {
          ticket: first.ticket,
          symbol: "EURUSD",
          type: "buy",
          volume: 0.1,
          openPrice: 1.0844,
          currentPrice: 1.0843,
          sl: 1.08,
          tp: 1.095,
          profit: -1,
          swap: 0,
          commission: 0,
          openTime: NOON,
          comment: "grid 1",
          magic: 42,
        },
        {
          ticket: second.body.data.ticket,
          symbol: "EURUSD",
          type: "sell",
          volume: 0.05,
          openPrice: 1.0843,
          currentPrice: 1.0844,
          sl: null,
          tp: null,
          profit: -0.5,
          swap: 0,
          commission: 0,
          openTime: NOON,
          comment: "",
          magic: 0,
        },
      ],
    });
    expect((await automation(server, "GET", "/v1/api/positions?symbol=GBPUSD", key)).body).toEqual({
      success: true,
      data: [],
    });
    expect((await automation(server, "GET", "/v1/api/positions?symbol=EURUSD", key)).body.data).toHaveLength(2);
    expectError(await automation(server, "GET", "/v1/api/positions?symbol=EUR%20USD", key), 400, "INVALID_DATA");
    expectError(await automation(server, "GET", "/v1/api/positions", null), 401, "UNAUTHORIZED");
  });

  it("GET /v1/api/positions/{ticket}: one position; another account's ticket is 404", async () => {
    const { key } = await trader();
    const opened = await buy(key);
    const response = await automation(server, "GET", `/v1/api/positions/${opened.ticket}`, key);
    expect(response.status).toBe(200);
    expect(response.body.data).toMatchObject({ ticket: opened.ticket, type: "buy", volume: 0.1, profit: -1 });
    for (const ticket of foreignPositions())
      expectError(await automation(server, "GET", `/v1/api/positions/${ticket}`, key), 404, "POSITION_NOT_FOUND");
    expectError(await automation(server, "GET", "/v1/api/positions/abc", key), 400, "INVALID_DATA");
    expectError(await automation(server, "GET", `/v1/api/positions/${opened.ticket}`, null), 401, "UNAUTHORIZED");
  });

  it("POST /v1/api/positions/{ticket}/close closes part, then the rest, with the realised profit", async () => {
    const { key } = await trader();
    const opened = await buy(key);
    await pushQuote(server, "EURUSD", "1.08530", "1.08540");
    try {
      const part = await automation(server, "POST", `/v1/api/positions/${opened.ticket}/close`, key, { volume: 0.04 });
      expect(part.status).toBe(200);
      expect(part.body).toEqual({
        success: true,
        data: {
          ticket: opened.ticket,
          order: expect.any(Number),
          volume: 0.04,
          price: 1.0853,
          profit: 3.6,
          remainingVolume: 0.06,
        },
      });
      // No body at all closes the whole rest (requests.post(url) sends none).
      const rest = await server.app.inject({
        method: "POST",
        url: `/v1/api/positions/${opened.ticket}/close`,
        headers: { authorization: `Bearer ${key}` },
      });
      expect(rest.statusCode).toBe(200);
      expect(rest.json().data).toMatchObject({ ticket: opened.ticket, volume: 0.06, profit: 5.4, remainingVolume: 0 });
      expect((await automation(server, "GET", "/v1/api/account", key)).body.data.balance).toBe(10009);
      expectError(
        await automation(server, "POST", `/v1/api/positions/${opened.ticket}/close`, key, {}),
        404,
        "POSITION_NOT_FOUND",
      );
    } finally {
      await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    }
  });

  it("close takes a clientOrderId: a retry answers the first close and closes nothing again", async () => {
    const { key } = await trader();
    const opened = await buy(key);
    await pushQuote(server, "EURUSD", "1.08530", "1.08540");
    try {
      const url = `/v1/api/positions/${opened.ticket}/close`;
      const first = await automation(server, "POST", url, key, { volume: 0.04, clientOrderId: "bot-close" });
      expect(first.status, JSON.stringify(first.body)).toBe(200);
      await pushQuote(server, "EURUSD", "1.08630", "1.08640");
      const again = await automation(server, "POST", url, key, { volume: 0.04, clientOrderId: "bot-close" });
      expect(again.body).toEqual(first.body);
      expect(again.body.data).toMatchObject({ volume: 0.04, price: 1.0853, profit: 3.6, remainingVolume: 0.06 });
      expectError(
        await automation(server, "POST", url, key, { volume: 0.05, clientOrderId: "bot-close" }),
        400,
        "DUPLICATE_CLIENT_ORDER_ID",
      );
      const rest = await automation(server, "POST", url, key, { clientOrderId: "bot-rest" });
      expect(rest.body.data).toMatchObject({ volume: 0.06, remainingVolume: 0 });
      expect((await automation(server, "POST", url, key, { clientOrderId: "bot-rest" })).body).toEqual(rest.body);
      expect((await automation(server, "GET", "/v1/api/account", key)).body.data.balance).toBe(10015); // 3.60 on the first 0.04, (1.0863 - 1.0844) × 6,000 = 11.40 on the rest
    } finally {
      await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    }
  });

  it("close refuses bad volumes (400), another account's ticket (404, the position stays open) and no key (401)", async () => {
    const { key } = await trader();
    const opened = await buy(key);
    expectError(
      await automation(server, "POST", `/v1/api/positions/${opened.ticket}/close`, key, { volume: 0.001 }),
      400,
      "INVALID_VOLUME",
      "volume has more than 2 decimals",
    );
    expectError(
      await automation(server, "POST", `/v1/api/positions/${opened.ticket}/close`, key, { volume: "lots" }),
      400,
      "INVALID_DATA",
    );
    expectError(
      await automation(server, "POST", `/v1/api/positions/${opened.ticket}/close`, key, { everything: true }),
      400,
      "INVALID_DATA",
    );
    for (const ticket of foreignPositions())
      expectError(
        await automation(server, "POST", `/v1/api/positions/${ticket}/close`, key, {}),
        404,
        "POSITION_NOT_FOUND",
      );
    expect((await automation(server, "GET", `/v1/api/positions/${other.position}`, other.key)).status).toBe(200);
    expectError(
      await automation(server, "POST", `/v1/api/positions/${opened.ticket}/close`, null, {}),
      401,
      "UNAUTHORIZED",
    );
    expect((await automation(server, "GET", `/v1/api/positions/${opened.ticket}`, key)).body.data.volume).toBe(0.1);
  });

  it("POST /v1/api/positions/{ticket}/modify sets and clears sl and tp; checks them; 404 for another account", async () => {
    const { key } = await trader();
    const opened = await buy(key, 0.1, { sl: 1.08, tp: 1.095 });
    const url = `/v1/api/positions/${opened.ticket}/modify`;
    const moved = await automation(server, "POST", url, key, { sl: 1.081 });
    expect(moved.status).toBe(200);
    expect(moved.body.data).toMatchObject({ ticket: opened.ticket, sl: 1.081, tp: 1.095 });
    const cleared = await automation(server, "POST", url, key, { sl: 0, tp: null });
    expect(cleared.body.data).toMatchObject({ sl: null, tp: null });
    // A stop loss above the bid of a buy position is refused by the trading rules.
    expectError(await automation(server, "POST", url, key, { sl: 1.09 }), 400, "INVALID_STOPS");
    expectError(await automation(server, "POST", url, key, { sl: "1.0x" }), 400, "INVALID_DATA");
    expectError(await automation(server, "POST", url, key, { sl: 1.081234 }), 400, "INVALID_PRICE");
    expectError(await automation(server, "POST", url, key, { trailing: 5 }), 400, "INVALID_DATA");
    for (const ticket of foreignPositions())
      expectError(
        await automation(server, "POST", `/v1/api/positions/${ticket}/modify`, key, { sl: 1.07 }),
        404,
        "POSITION_NOT_FOUND",
      );
    expect((await automation(server, "GET", `/v1/api/positions/${other.position}`, other.key)).body.data.sl).toBeNull();
    expectError(await automation(server, "POST", url, null, { sl: 1.07 }), 401, "UNAUTHORIZED");
    expect((await automation(server, "GET", `/v1/api/positions/${opened.ticket}`, key)).body.data.sl).toBeNull();
  });
});

describe("orders", () => {
  it("POST /v1/api/order places types 2-5 with their MetaTrader meaning and answers the ticket", async () => {
    const { key } = await trader();
    const cases = [
      { type: 2, price: 1.08 },
      { type: 3, price: 1.09 },
      { type: 4, price: 1.09 },
      { type: 5, price: 1.08 },
    ];
    const tickets: number[] = [];
    for (const { type, price } of cases) {
      const response = await automation(server, "POST", "/v1/api/order", key, {
        symbol: "EURUSD",
        type,
        volume: 0.2,
        price,
        sl: type % 2 === 0 ? 1.07 : 1.1,
        tp: null,
        expiration: "2026-06-03T00:00:00Z",
        comment: `type ${type}`,
        magic: 7,
      });
      expect(response.status, JSON.stringify(response.body)).toBe(200);
      expect(response.body).toEqual({
        success: true,
        data: {
          ticket: expect.any(Number),
          symbol: "EURUSD",
          type,
          volume: 0.2,
          filledVolume: 0,
          price,
          stopLimitPrice: null,
          currentPrice: type % 2 === 0 ? 1.0844 : 1.0843,
          sl: type % 2 === 0 ? 1.07 : 1.1,
          tp: null,
          expiration: "2026-06-03T00:00:00.000Z",
          status: "placed",
          openTime: NOON,
          comment: `type ${type}`,
          magic: 7,
        },
      });
      tickets.push(response.body.data.ticket);
    }
    const list = await automation(server, "GET", "/v1/api/orders", key);
    expect(list.body.data.map((order: { ticket: number; type: number }) => [order.ticket, order.type])).toEqual(
      tickets.map((ticket, index) => [ticket, cases[index]!.type]),
    );
    expect((await automation(server, "GET", "/v1/api/orders?symbol=XAUUSD", key)).body.data).toEqual([]);
    // A buy limit above the ask would fill at once: the trading rules refuse it.
    expectError(
      await automation(server, "POST", "/v1/api/order", key, { symbol: "EURUSD", type: 2, volume: 0.1, price: 1.09 }),
      400,
      "INVALID_PRICE",
    );
  });

  it("POST /v1/api/order refuses market types, missing prices and unknown symbols; 401 without a key", async () => {
    const { key } = await trader();
    for (const body of [
      { symbol: "EURUSD", type: 0, volume: 0.1, price: 1.08 },
      { symbol: "EURUSD", type: 6, volume: 0.1, price: 1.08 },
      { symbol: "EURUSD", type: 2, volume: 0.1 },
      { symbol: "EURUSD", type: 2, volume: 0.1, price: 1.08, expiration: "tomorrow" },
      { symbol: "EURUSD", type: "2", volume: 0.1, price: 1.08, stopLimit: 1 },
    ])
      expectError(await automation(server, "POST", "/v1/api/order", key, body), 400, "INVALID_DATA");
    expectError(
      await automation(server, "POST", "/v1/api/order", key, { symbol: "NOPE", type: 2, volume: 0.1, price: 1 }),
      404,
      "UNKNOWN_SYMBOL",
    );
    expectError(
      await automation(server, "POST", "/v1/api/order", null, { symbol: "EURUSD", type: 2, volume: 0.1, price: 1.08 }),
      401,
      "UNAUTHORIZED",
    );
    expect((await automation(server, "GET", "/v1/api/orders", key)).body.data).toEqual([]);
  });

  it("GET /v1/api/orders and /v1/api/orders/{ticket}: the key's pending orders; another account's ticket is 404", async () => {
    const { key } = await trader();
    const ticket = await buyLimit(key);
    const one = await automation(server, "GET", `/v1/api/orders/${ticket}`, key);
    expect(one.status).toBe(200);
    expect(one.body.data).toMatchObject({ ticket, type: 2, volume: 0.2, price: 1.08, expiration: null });
    const list = await automation(server, "GET", "/v1/api/orders", key);
    expect(list.body).toEqual({ success: true, data: [one.body.data] });
    for (const foreign of foreignOrders())
      expectError(await automation(server, "GET", `/v1/api/orders/${foreign}`, key), 404, "ORDER_NOT_FOUND");
    // A finished order, a filled market order too, is answered from the history with its final status (the audit of
    // the Automation API of 7 December, sixth session: it was 404), but not among the pending ones.
    const filled = await buy(key, 0.01);
    const market = await automation(server, "GET", `/v1/api/orders/${filled.order}`, key);
    expect(market.body.data).toMatchObject({ ticket: filled.order, type: 0, volume: 0.01, status: "filled" });
    expect((await automation(server, "GET", "/v1/api/orders", key)).body.data).toHaveLength(1);
    expectError(await automation(server, "GET", "/v1/api/orders/-1", key), 400, "INVALID_DATA");
    // Tickets start at 1 (the review of 7 December, sixth session: 0 was a 500).
    expectError(await automation(server, "GET", "/v1/api/orders/0", key), 404, "ORDER_NOT_FOUND");
    expectError(await automation(server, "GET", "/v1/api/orders?x=1", key), 400, "INVALID_DATA");
    expectError(await automation(server, "GET", "/v1/api/orders", null), 401, "UNAUTHORIZED");
    expectError(await automation(server, "GET", `/v1/api/orders/${ticket}`, null), 401, "UNAUTHORIZED");
  });

  it("POST /v1/api/orders/{ticket}/modify changes price, sl, tp and expiration", async () => {
    const { key } = await trader();
    const placed = await automation(server, "POST", "/v1/api/order", key, {
      symbol: "EURUSD",
      type: 2,
      volume: 0.2,
      price: 1.08,
      expiration: "2026-06-02T13:00:00Z",
    });
    const ticket = placed.body.data.ticket as number;
    const url = `/v1/api/orders/${ticket}/modify`;
    const response = await automation(server, "POST", url, key, {
      price: 1.079,
      sl: 1.07,
      tp: 1.09,
      expiration: TUESDAY_NOON + 2 * 3_600_000,
    });
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    expect(response.body.data).toMatchObject({
      ticket,
      price: 1.079,
      sl: 1.07,
      tp: 1.09,
      expiration: "2026-06-02T14:00:00.000Z",
      status: "placed",
    });
    const cleared = await automation(server, "POST", url, key, { tp: 0 });
    expect(cleared.body.data).toMatchObject({
      price: 1.079,
      sl: 1.07,
      tp: null,
      expiration: "2026-06-02T14:00:00.000Z",
    });
    // An order placed with an expiration keeps one; one placed without stays good till cancelled.
    expectError(await automation(server, "POST", url, key, { expiration: null }), 400, "INVALID_EXPIRATION");
    expectError(await automation(server, "POST", url, key, { expiration: NOON }), 400, "INVALID_EXPIRATION");
    const unlimited = await buyLimit(key);
    expectError(
      await automation(server, "POST", `/v1/api/orders/${unlimited}/modify`, key, {
        expiration: TUESDAY_NOON + 60_000,
      }),
      400,
      "INVALID_EXPIRATION",
      "expiration applies to GTD orders only",
    );
    expectError(await automation(server, "POST", url, key, { price: 1.09 }), 400, "INVALID_PRICE");
    expectError(await automation(server, "POST", url, key, { volume: 1 }), 400, "INVALID_DATA");
    for (const foreign of foreignOrders())
      expectError(
        await automation(server, "POST", `/v1/api/orders/${foreign}/modify`, key, { price: 1.07 }),
        404,
        "ORDER_NOT_FOUND",
      );
    expect((await automation(server, "GET", `/v1/api/orders/${other.order}`, other.key)).body.data.price).toBe(1.08);
    expectError(await automation(server, "POST", url, null, { price: 1.07 }), 401, "UNAUTHORIZED");
    expect((await automation(server, "GET", `/v1/api/orders/${ticket}`, key)).body.data.price).toBe(1.079);
  });

  it("DELETE /v1/api/orders/{ticket} cancels; the order is no longer pending, and its ticket answers it cancelled", async () => {
    const { key } = await trader();
    const ticket = await buyLimit(key);
    for (const foreign of foreignOrders())
      expectError(await automation(server, "DELETE", `/v1/api/orders/${foreign}`, key), 404, "ORDER_NOT_FOUND");
    expect((await automation(server, "GET", `/v1/api/orders/${other.order}`, other.key)).status).toBe(200);
    expectError(await automation(server, "DELETE", `/v1/api/orders/${ticket}`, null), 401, "UNAUTHORIZED");
    expectError(await automation(server, "DELETE", `/v1/api/orders/${ticket}?force=1`, key), 400, "INVALID_DATA");
    const response = await automation(server, "DELETE", `/v1/api/orders/${ticket}`, key);
    expect(response.status).toBe(200);
    expect(response.body.data).toMatchObject({ ticket, type: 2, status: "cancelled" });
    const after = await automation(server, "GET", `/v1/api/orders/${ticket}`, key);
    expect(after.body.data).toEqual(response.body.data);
    expect((await automation(server, "GET", "/v1/api/orders", key)).body.data).toEqual([]);
    expectError(await automation(server, "DELETE", `/v1/api/orders/${ticket}`, key), 404, "ORDER_NOT_FOUND");
  });
});

// Found by the audit of the Automation API of 7 December (sixth session).
describe("the Automation API beside the other faces", () => {
  it("reads a list's symbol filter as every route reads a symbol: in any case; an unknown one is 404", async () => {
    const { key } = await trader();
    await buy(key, 0.1);
    await buyLimit(key);
    expect((await automation(server, "GET", "/v1/api/positions?symbol=eurusd", key)).body.data).toHaveLength(1);
    expect((await automation(server, "GET", "/v1/api/orders?symbol=eurusd", key)).body.data).toHaveLength(1);
    expect((await automation(server, "GET", "/v1/api/positions?symbol=GBPUSD", key)).body.data).toEqual([]);
    expectError(await automation(server, "GET", "/v1/api/positions?symbol=EURUSDX", key), 404, "UNKNOWN_SYMBOL");
    expectError(await automation(server, "GET", "/v1/api/orders?symbol=NOPE", key), 404, "UNKNOWN_SYMBOL");
  });

  it("writes a commission negative, as a charge: profit + swap + commission of the deals is what the balance moved", async () => {
    await pushQuote(server, "BTCUSD", "67000.00", "67010.00");
    const { key } = await trader();
    const before = (await automation(server, "GET", "/v1/api/account", key)).body.data.balance as number;
    const opened = await automation(server, "POST", "/v1/api/trade", key, {
      symbol: "BTCUSD",
      action: "buy",
      volume: 0.1,
    });
    // BTCUSD charges 5.00 USD a lot a side: 0.50 on opening.
    const position = (await automation(server, "GET", `/v1/api/positions/${opened.body.data.ticket}`, key)).body.data;
    expect(position).toMatchObject({ commission: -0.5, swap: 0 });
    await automation(server, "POST", `/v1/api/positions/${opened.body.data.ticket}/close`, key);
    const after = (await automation(server, "GET", "/v1/api/account", key)).body.data.balance as number;
    const deals = (await automation(server, "GET", "/v1/api/account/history", key)).body.data.deals as {
      profit: number;
      swap: number;
      commission: number;
    }[];
    expect(deals.map((deal) => deal.commission)).toEqual([-0.5, -0.5]);
    // Closed at the bid 67,000.00 after buying at the ask 67,010.00: −1.00 of profit, −1.00 of commission.
    const net = deals.reduce((sum, deal) => sum + Math.round((deal.profit + deal.swap + deal.commission) * 100), 0);
    expect(net).toBe(Math.round((after - before) * 100));
    expect(net).toBe(-200);
  });

  it("publishes a rejected order on the stream, as the Client API does", async () => {
    const { user, key } = await trader();
    const events: { payload: { status?: string; reason?: string } }[] = [];
    const stop = server.platform.bus.subscribe(`account.${user.login}`, (_topic, message) =>
      events.push(message as (typeof events)[number]),
    );
    try {
      const refused = await automation(server, "POST", "/v1/api/trade", key, {
        symbol: "EURUSD",
        action: "buy",
        volume: 50,
      });
      expect(refused.body.code).toBe("NO_MONEY");
      const pending = await automation(server, "POST", "/v1/api/order", key, {
        symbol: "EURUSD",
        type: 2,
        volume: 50,
        price: 1.2,
      });
      expect(pending.body.code).toBe("INVALID_PRICE");
      expect(events).toHaveLength(2);
    } finally {
      stop();
    }
  });
});

describe("POST /v1/api/trade", () => {
  it("fills a market buy at the ask and a sell at the bid, answering ticket, price and volume", async () => {
    const { key } = await trader();
    const bought = await automation(server, "POST", "/v1/api/trade", key, {
      symbol: "EURUSD",
      action: "buy",
      volume: 0.1,
      sl: 1.08,
      tp: 1.095,
      deviation: 10,
      comment: "seed 003",
      magic: 123,
    });
    expect(bought.status).toBe(200);
    expect(bought.body).toEqual({
      success: true,
      data: {
        ticket: expect.any(Number),
        order: expect.any(Number),
        deal: expect.any(Number),
        price: 1.0844,
        volume: 0.1,
      },
    });
    const position = await automation(server, "GET", `/v1/api/positions/${bought.body.data.ticket}`, key);
    expect(position.body.data).toMatchObject({
      sl: 1.08,
      tp: 1.095,
      comment: "seed 003",
      magic: 123,
      openPrice: 1.0844,
    });
    const sold = await automation(server, "POST", "/v1/api/trade", key, {
      symbol: "eurusd",
      action: "sell",
      volume: "0.25",
    });
    expect(sold.body.data).toMatchObject({ price: 1.0843, volume: 0.25 });
    expect(sold.body.data.ticket).not.toBe(bought.body.data.ticket);
  });

  // Found by the audit of idempotency of 7 December (third session): the Automation API took no client order id, so a
  // bot that retried a trade after a lost answer or a 503 could open two positions.
  it("takes a clientOrderId: a retry answers the first trade and trades nothing; another order with it is refused", async () => {
    const { user, key } = await trader();
    const trade = { symbol: "EURUSD", action: "buy", volume: 0.1, clientOrderId: "bot-1" };
    const first = await automation(server, "POST", "/v1/api/trade", key, trade);
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    const again = await automation(server, "POST", "/v1/api/trade", key, trade);
    expect(again.body).toEqual(first.body);
    const positions = await automation(server, "GET", "/v1/api/positions", key);
    expect(positions.body.data).toHaveLength(1);
    expectError(
      await automation(server, "POST", "/v1/api/trade", key, { ...trade, volume: 0.2 }),
      400,
      "DUPLICATE_CLIENT_ORDER_ID",
    );
    const pending = { symbol: "EURUSD", type: 2, volume: 0.1, price: 1.07, clientOrderId: "bot-2" };
    const placed = await automation(server, "POST", "/v1/api/order", key, pending);
    expect(placed.status, JSON.stringify(placed.body)).toBe(200);
    expect((await automation(server, "POST", "/v1/api/order", key, pending)).body).toEqual(placed.body);
    expect((await automation(server, "GET", "/v1/api/orders", key)).body.data).toHaveLength(1);
    // The id is the account's, whichever face placed it first.
    const viaClientApi = await call(server, "POST", `/api/v1/accounts/${user.login}/orders`, {
      token: user.token,
      body: { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.1, clientOrderId: "bot-1" },
    });
    expect(viaClientApi.body.data).toMatchObject({ duplicate: true, positionId: first.body.data.ticket });
  });

  // On a033f98 bodies were coerced to the schema's types: `"volume": true` filled 1 lot, `"price": true` placed a
  // limit at 1.00, `"sl": false` opened without a stop loss, `["ETHUSD"]` read as a symbol. Seed 003: 400 for
  // invalid parameters.
  it("refuses values of the wrong JSON type (400) instead of converting them, and trades nothing", async () => {
    const { key } = await trader();
    const valid = { symbol: "EURUSD", action: "buy", volume: 0.1 };
    for (const body of [
      { ...valid, volume: true },
      { ...valid, volume: [0.1] },
      { ...valid, sl: false },
      { ...valid, sl: true },
      { ...valid, tp: [1.1] },
      { ...valid, symbol: ["EURUSD"] },
      { ...valid, action: ["buy"] },
      { ...valid, deviation: true },
      { ...valid, comment: 123 },
      { ...valid, magic: "7" },
    ])
      expectError(await automation(server, "POST", "/v1/api/trade", key, body), 400, "INVALID_DATA");
    const order = { symbol: "EURUSD", type: 2, volume: 0.1, price: 1.07 };
    for (const body of [
      { ...order, price: true },
      { ...order, type: "2" },
      { ...order, expiration: true },
    ])
      expectError(await automation(server, "POST", "/v1/api/order", key, body), 400, "INVALID_DATA");
    expect((await automation(server, "GET", "/v1/api/positions", key)).body.data).toEqual([]);
    expect((await automation(server, "GET", "/v1/api/orders", key)).body.data).toEqual([]);
  });

  it("answers seed 003's error messages: Insufficient margin, bad volumes, stops, actions (400)", async () => {
    const { key } = await trader();
    const trade = (body: Record<string, unknown>) =>
      automation(server, "POST", "/v1/api/trade", key, { symbol: "EURUSD", action: "buy", volume: 0.1, ...body });
    expectError(await trade({ volume: 50 }), 400, "NO_MONEY", "Insufficient margin");
    expectError(await trade({ volume: 0.001 }), 400, "INVALID_VOLUME", "volume has more than 2 decimals");
    expectError(await trade({ volume: 0 }), 400, "INVALID_VOLUME");
    expectError(await trade({ volume: 1000 }), 400, "INVALID_VOLUME");
    expectError(await trade({ sl: 1.09 }), 400, "INVALID_STOPS");
    expectError(await trade({ action: "hold" }), 400, "INVALID_DATA");
    expectError(await trade({ type: 0 }), 400, "INVALID_DATA");
    expectError(await trade({ deviation: -1 }), 400, "INVALID_DATA");
    expectError(await trade({ symbol: "NOPE" }), 404, "UNKNOWN_SYMBOL");
    expectError(await trade({ symbol: "GBPUSD" }), 400, "NO_QUOTES");
    expectError(
      await automation(server, "POST", "/v1/api/trade", null, { symbol: "EURUSD", action: "buy", volume: 0.1 }),
      401,
      "UNAUTHORIZED",
    );
    expect((await automation(server, "GET", "/v1/api/positions", key)).body.data).toEqual([]);
    expect((await automation(server, "GET", "/v1/api/account", key)).body.data.balance).toBe(10000);
  });
});

describe("POST /v1/api/close-all", () => {
  it("closes the positions of one symbol, then every position, with the realised profit", async () => {
    await pushQuote(server, "XAUUSD", "2350.10", "2350.40");
    const { key } = await trader();
    const a = await buy(key, 0.1);
    const b = await buy(key, 0.2);
    const gold = await automation(server, "POST", "/v1/api/trade", key, {
      symbol: "XAUUSD",
      action: "buy",
      volume: 0.01,
    });
    expect(gold.status).toBe(200);
    const euros = await automation(server, "POST", "/v1/api/close-all", key, { symbol: "EURUSD" });
    expect(euros.status).toBe(200);
    // Bought at 1.08440, closed at the bid 1.08430: −1.00 and −2.00 USD.
    expect(euros.body).toEqual({ success: true, data: { closed: 2, tickets: [a.ticket, b.ticket], profit: -3 } });
    expect((await automation(server, "GET", "/v1/api/positions", key)).body.data).toHaveLength(1);
    const rest = await server.app.inject({
      method: "POST",
      url: "/v1/api/close-all",
      headers: { authorization: `Bearer ${key}` },
    });
    expect(rest.json()).toEqual({
      success: true,
      data: { closed: 1, tickets: [gold.body.data.ticket], profit: -0.3 },
    });
    const none = await automation(server, "POST", "/v1/api/close-all", key, {});
    expect(none.body.data).toEqual({ closed: 0, tickets: [], profit: 0 });
    expect((await automation(server, "GET", "/v1/api/account", key)).body.data.balance).toBe(9996.7);
    // Nobody else's positions were touched.
    expect((await automation(server, "GET", `/v1/api/positions/${other.position}`, other.key)).status).toBe(200);
    expect((await automation(server, "GET", `/v1/api/positions/${sibling.position}`, sibling.key)).status).toBe(200);
  });

  it("refuses unknown fields (400), unknown symbols (404) and no key (401), closing nothing", async () => {
    const { key } = await trader();
    await buy(key, 0.1);
    expectError(await automation(server, "POST", "/v1/api/close-all", key, { all: true }), 400, "INVALID_DATA");
    expectError(await automation(server, "POST", "/v1/api/close-all", key, { symbol: "NOPE" }), 404, "UNKNOWN_SYMBOL");
    expectError(await automation(server, "POST", "/v1/api/close-all", null, {}), 401, "UNAUTHORIZED");
    expect((await automation(server, "GET", "/v1/api/positions", key)).body.data).toHaveLength(1);
  });
});

describe("market data", () => {
  it("GET /v1/api/symbols lists the tradable symbols with their last prices", async () => {
    const { key } = await trader();
    const response = await automation(server, "GET", "/v1/api/symbols", key);
    expect(response.status).toBe(200);
    const symbols = response.body.data as { symbol: string }[];
    expect(symbols.map((entry) => entry.symbol)).toEqual(
      [...server.platform.instruments.values()]
        .filter((instrument) => instrument.tradeMode !== "DISABLED")
        .map((instrument) => instrument.symbol),
    );
    expect(symbols.find((entry) => entry.symbol === "EURUSD")).toEqual({
      symbol: "EURUSD",
      description: "Euro vs US Dollar",
      assetClass: "forex",
      digits: 5,
      bid: 1.0843,
      ask: 1.0844,
      status: "open",
    });
    expect(symbols.find((entry) => entry.symbol === "GBPUSD")).toMatchObject({ bid: null, ask: null });
    expectError(await automation(server, "GET", "/v1/api/symbols?page=2", key), 400, "INVALID_DATA");
    expectError(await automation(server, "GET", "/v1/api/symbols", null), 401, "UNAUTHORIZED");
  });

  it("GET /v1/api/symbols/{symbol} answers the contract specification", async () => {
    const { key } = await trader();
    const response = await automation(server, "GET", "/v1/api/symbols/eurusd", key);
    expect(response.status).toBe(200);
    expect(response.body.data).toMatchObject({
      symbol: "EURUSD",
      digits: 5,
      point: 0.00001,
      contractSize: 100000,
      volumeMin: 0.01,
      volumeMax: 100,
      volumeStep: 0.01,
      baseCurrency: "EUR",
      quoteCurrency: "USD",
      marginCurrency: "EUR",
      profitCurrency: "USD",
      marginMode: "FOREX",
      marginRate: 100,
      tradeMode: "FULL",
      status: "open",
      nextChange: "2026-06-05T21:00:00.000Z",
      stopsLevel: 0,
      swapLong: -7.2,
      swapShort: 2.1,
      commission: 0,
      commissionCurrency: "USD",
    });
    expect(response.body.data.sessions).toHaveLength(7);
    expect(response.body.data.sessionTimeZone).toBe("America/New_York");
    expectError(await automation(server, "GET", "/v1/api/symbols/NOPE", key), 404, "UNKNOWN_SYMBOL");
    expectError(await automation(server, "GET", "/v1/api/symbols/EUR%20USD", key), 400, "INVALID_DATA");
    expectError(await automation(server, "GET", "/v1/api/symbols/EURUSD", null), 401, "UNAUTHORIZED");
  });

  it("GET /v1/api/quote/{symbol} answers bid, ask, spread in points and time; 404 before any quote", async () => {
    const { key } = await trader();
    const response = await automation(server, "GET", "/v1/api/quote/EURUSD", key);
    expect(response.body).toEqual({
      success: true,
      data: { symbol: "EURUSD", bid: 1.0843, ask: 1.0844, spread: 10, time: NOON },
    });
    expectError(
      await automation(server, "GET", "/v1/api/quote/GBPUSD", key),
      404,
      "NOT_FOUND",
      "No quote for GBPUSD yet",
    );
    expectError(await automation(server, "GET", "/v1/api/quote/NOPE", key), 404, "UNKNOWN_SYMBOL");
    expectError(await automation(server, "GET", "/v1/api/quote/EURUSD?depth=1", key), 400, "INVALID_DATA");
    expectError(await automation(server, "GET", "/v1/api/quote/EURUSD", null), 401, "UNAUTHORIZED");
  });

  it("GET /v1/api/candles/{symbol} answers the latest bars by bid, oldest first", async () => {
    const { key } = await trader();
    await pushQuote(server, "USDCHF", "0.90000", "0.90020");
    server.clock.advance(60_000);
    await pushQuote(server, "USDCHF", "0.90100", "0.90120");
    await pushQuote(server, "USDCHF", "0.89950", "0.89970");
    const response = await automation(server, "GET", "/v1/api/candles/USDCHF?timeframe=M1&count=5", key);
    expect(response.status).toBe(200);
    expect(response.body.data).toEqual([
      { time: NOON, open: 0.9, high: 0.9, low: 0.9, close: 0.9, tickVolume: 1 },
      {
        time: "2026-06-02T12:01:00.000Z",
        open: 0.901,
        high: 0.901,
        low: 0.8995,
        close: 0.8995,
        tickVolume: 2,
      },
    ]);
    const last = await automation(server, "GET", "/v1/api/candles/USDCHF?timeframe=M1&count=1", key);
    expect(last.body.data).toHaveLength(1);
    expect(last.body.data[0].time).toBe("2026-06-02T12:01:00.000Z");
    const hourly = await automation(server, "GET", "/v1/api/candles/USDCHF", key);
    expect(hourly.body.data).toEqual([
      { time: NOON, open: 0.9, high: 0.901, low: 0.8995, close: 0.8995, tickVolume: 3 },
    ]);
    for (const query of ["timeframe=M2", "count=0", "count=5001", "from=1"])
      expectError(await automation(server, "GET", `/v1/api/candles/USDCHF?${query}`, key), 400, "INVALID_DATA");
    expectError(await automation(server, "GET", "/v1/api/candles/NOPE", key), 404, "UNKNOWN_SYMBOL");
    expectError(await automation(server, "GET", "/v1/api/candles/USDCHF", null), 401, "UNAUTHORIZED");
  });
});

describe("envelope and statuses", () => {
  it("unknown routes and methods under /v1/api answer 404 in the automation envelope; the Client API keeps its own", async () => {
    const { key } = await trader();
    expectError(await automation(server, "GET", "/v1/api/nothing", key), 404, "ROUTE_NOT_FOUND");
    expectError(await automation(server, "PUT", "/v1/api/account", key, {}), 404, "ROUTE_NOT_FOUND");
    expectError(await automation(server, "GET", "/v1/api", null), 404, "ROUTE_NOT_FOUND");
    const client = await call(server, "GET", "/api/v1/nothing");
    expect(client.status).toBe(404);
    expect(client.body).toEqual({ error: "ROUTE_NOT_FOUND", message: "No route GET /api/v1/nothing" });
    const clientAuth = await call(server, "GET", "/api/v1/account");
    expect(clientAuth.status).toBe(401);
    expect(clientAuth.body.error).toBe("UNAUTHORIZED");
  });

  it("a body that is not JSON is a 400 in the envelope, never a 500", async () => {
    const { key } = await trader();
    for (const [contentType, payload] of [
      ["application/json", "{not json"],
      ["text/plain", "symbol=EURUSD"],
      ["application/json", JSON.stringify({ symbol: "EURUSD", action: "buy", volume: 1e308 })],
      ["application/json", JSON.stringify([1, 2, 3])],
    ] as const) {
      const response = await server.app.inject({
        method: "POST",
        url: "/v1/api/trade",
        headers: { authorization: `Bearer ${key}`, "content-type": contentType },
        payload,
      });
      expect(response.statusCode, payload).toBe(400);
      expect(response.json()).toMatchObject({ success: false, code: expect.any(String) });
    }
  });

  it("answers a Client API status seed 003 does not list as 400 with the registry's code, as /docs says", async () => {
    const { key } = await trader();
    const xml = await server.app.inject({
      method: "POST",
      url: "/v1/api/trade",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/xml" },
      payload: "<trade/>",
    });
    expect(xml.statusCode).toBe(400);
    expect(xml.json()).toMatchObject({ success: false, code: "UNSUPPORTED_MEDIA_TYPE" });
    const clientApi = await server.app.inject({
      method: "POST",
      url: "/api/v1/login",
      headers: { "content-type": "application/xml" },
      payload: "<login/>",
    });
    expect(clientApi.statusCode).toBe(415);
    const document = (await server.app.inject({ method: "GET", url: "/docs/json" })).json() as {
      paths: Record<string, { post?: { responses: Record<string, { description: string }> } }>;
    };
    expect(JSON.stringify(document.paths["/v1/api/trade"]!.post!.responses["400"])).toContain(
      "415 UNSUPPORTED_MEDIA_TYPE…) is answered 400 here",
    );
  });

  // Found by the audit of the API contract of 7 December (third session): a disabled account's trade answered 403,
  // which seed 003 gives to an invalid API key only; a bot that drops its key on 403 dropped a sound one.
  it("answers 403 only for the key itself: a disabled account's trade is 400 ACCOUNT_DISABLED", async () => {
    const { user, key } = await trader();
    const disabled = await admin(server, "POST", `/admin/v1/accounts/${user.login}`, { tradingEnabled: false });
    expect(disabled.status).toBe(200);
    expectError(
      await automation(server, "POST", "/v1/api/trade", key, { symbol: "EURUSD", action: "buy", volume: 0.1 }),
      400,
      "ACCOUNT_DISABLED",
    );
    expectError(await automation(server, "GET", "/v1/api/account", "tk_live_not-a-key"), 403, "INVALID_API_KEY");
    const { key: readOnly } = await createApiKey(server, user, "read");
    expectError(
      await automation(server, "POST", "/v1/api/trade", readOnly, { symbol: "EURUSD", action: "buy", volume: 0.1 }),
      403,
      "INSUFFICIENT_SCOPE",
    );
  });

  it("answers 503 while the engine is not ready (a key cannot even be checked), 401 without a key", async () => {
    const directory = mkdtempSync(path.join(tmpdir(), "bourse-automation-"));
    const idle = await createServer({
      config: loadServerConfig({
        BOURSE_DATA_DIR: directory,
        BOURSE_FEED: "push",
        BOURSE_ADMIN_TOKEN: "idle-admin-token",
        BOURSE_JWT_SECRET: "test-jwt-secret-of-enough-length-000000",
      }),
      log: { info: () => undefined, warn: () => undefined, error: () => undefined },
    });
    try {
      const key = `tk_live_0123456789abcdef_${"A".repeat(43)}`;
      for (const url of ["/v1/api/account", "/v1/api/symbols", "/v1/api/quote/EURUSD"]) {
        const response = await idle.app.inject({ method: "GET", url, headers: { authorization: `Bearer ${key}` } });
        expect(response.statusCode, url).toBe(503);
        expect(response.json()).toEqual({
          success: false,
          error: "Not connected to the trading server: try again shortly",
          code: "ENGINE_UNAVAILABLE",
        });
      }
      const missing = await idle.app.inject({ method: "GET", url: "/v1/api/account" });
      expect(missing.statusCode).toBe(401);
    } finally {
      await idle.close().catch(() => undefined);
      rmSync(directory, { recursive: true, force: true });
    }
  });
});

describe("the dedicated listener (automation.port)", () => {
  it("serves the Automation API (and /healthz) and nothing else; the main listener serves both", async () => {
    const dedicated = await startTestServer({
      environment: { ...FAST, BOURSE_PORT: "0", BOURSE_AUTOMATION_PORT: "0" },
    });
    try {
      const mainAddress = await dedicated.listen();
      const port = (dedicated.automationApp!.server.address() as { port: number }).port;
      const base = `http://127.0.0.1:${port}`;
      expect(mainAddress).not.toBe(base);
      const user = await signUp(dedicated);
      const { key } = await createApiKey(dedicated, user, "full");
      await pushQuote(dedicated, "EURUSD", "1.08430", "1.08440");
      const headers = { authorization: `Bearer ${key}` };

      const account = await fetch(`${base}/v1/api/account`, { headers });
      expect(account.status).toBe(200);
      expect(((await account.json()) as { data: { login: number } }).data.login).toBe(user.login);
      const traded = await fetch(`${base}/v1/api/trade`, {
        method: "POST",
        headers: { ...headers, "content-type": "application/json" },
        body: JSON.stringify({ symbol: "EURUSD", action: "buy", volume: 0.1 }),
      });
      expect(traded.status).toBe(200);
      expect(((await traded.json()) as { data: { price: number } }).data.price).toBe(1.0844);
      expect((await fetch(`${base}/healthz`)).status).toBe(200);

      // Nothing of the Client API, the admin API, metrics or docs.
      for (const url of [
        "/api/v1/session",
        "/api/v1/signup",
        "/api/v1/accounts",
        "/admin/v1/users",
        "/metrics",
        "/readyz",
        "/docs",
        "/docs/json",
        "/",
      ]) {
        for (const init of [{ headers: { authorization: user.token } }, { headers: { authorization: "Bearer x" } }]) {
          const response = await fetch(`${base}${url}`, init);
          expect(response.status, url).toBe(404);
          expect(await response.json()).toEqual({
            success: false,
            error: `No route GET ${url}`,
            code: "ROUTE_NOT_FOUND",
          });
        }
      }
      // A URL the router cannot read, outside /v1/api, in this listener's envelope too (the review of 7 December).
      const unreadable = await fetch(`${base}/api/v1/alerts/%E0%A4%A`, { headers });
      expect(unreadable.status).toBe(400);
      expect(await unreadable.json()).toEqual({
        success: false,
        error: "The URL is not valid: it has a malformed percent-encoding",
        code: "INVALID_DATA",
      });
      expect(
        dedicated.automationApp!.routeRegistry.map((route) => route.url).filter((url) => !url.startsWith("/v1/api/")),
      ).toEqual(["/healthz"]);

      // The main listener serves the Automation API too, on the same platform.
      const positions = await fetch(`${mainAddress}/v1/api/positions`, { headers });
      expect(((await positions.json()) as { data: unknown[] }).data).toHaveLength(1);
    } finally {
      await dedicated.close();
    }
  });

  it("is not started when automation.port is not set", () => {
    expect(server.automationApp).toBeNull();
  });
});
