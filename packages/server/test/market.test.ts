import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ManualClock } from "../src/clock.ts";
import {
  TUESDAY_NOON,
  admin,
  call,
  createApiKey,
  pushQuote,
  signUp,
  startTestServer,
  type TestServer,
} from "./helpers.ts";

let server: TestServer;
let user: Awaited<ReturnType<typeof signUp>>;
beforeAll(async () => {
  // The tests move the clock through the afternoon: a day-long session keeps the token valid.
  server = await startTestServer({ environment: { BOURSE_SESSION_TTL_SECONDS: "86400" } });
  user = await signUp(server);
});
afterAll(async () => {
  await server.close();
});

const get = (url: string, token: string | null = user.token) => call(server, "GET", url, { token });

/** A market route shows nothing of any user: no email, user id or login anywhere in the body. */
function expectNoUserData(body: unknown): void {
  const text = JSON.stringify(body);
  expect(text).not.toContain(user.email);
  expect(text).not.toContain(user.userId);
  expect(text).not.toMatch(new RegExp(`\\b${user.login}\\b`));
}

/** Rows of a table as objects keyed by its structure. */
function rowsOf(body: { structure: string[]; rows: unknown[][] }): Record<string, unknown>[] {
  return body.rows.map((row) => Object.fromEntries(body.structure.map((column, index) => [column, row[index]])));
}

describe("GET /api/v1/market", () => {
  it("lists every instrument with its status now, today's session and the next change", async () => {
    const response = await get("/api/v1/market");
    expect(response.status).toBe(200);
    expect(response.body.structure).toEqual([
      "symbol",
      "description",
      "assetClass",
      "digits",
      "tradeMode",
      "status",
      "session",
      "nextChange",
      "contractSize",
      "volumeMin",
      "volumeMax",
      "volumeStep",
      "stopsLevel",
      "baseCurrency",
      "profitCurrency",
      "marginCurrency",
      "sessionTimeZone",
    ]);
    const rows = rowsOf(response.body);
    expect(rows).toHaveLength(16);
    const bySymbol = Object.fromEntries(rows.map((row) => [row.symbol, row]));
    // The contract's terms as the specification route gives them (the audit of a terminal's journey of 7 December,
    // sixth session: one request per symbol).
    const specification = (await get("/api/v1/market/EURUSD")).body.data;
    expect(bySymbol.EURUSD).toEqual({
      symbol: "EURUSD",
      description: "Euro vs US Dollar",
      assetClass: "forex",
      digits: 5,
      tradeMode: "FULL",
      status: "OPEN",
      session: ["00:00-24:00"],
      nextChange: "2026-06-05T21:00:00.000Z",
      contractSize: 100000,
      volumeMin: specification.volumeMin,
      volumeMax: specification.volumeMax,
      volumeStep: specification.volumeStep,
      stopsLevel: specification.stopsLevel,
      baseCurrency: "EUR",
      profitCurrency: "USD",
      marginCurrency: "EUR",
      sessionTimeZone: "America/New_York",
    });
    expect(bySymbol.EURUSD).toMatchObject({ volumeMin: 0.01, volumeStep: 0.01 });
    // Gold's daily break, 16:00-17:00 Chicago, is 21:00-22:00 UTC in June; GER40 closes at 22:00 Berlin, 20:00 UTC.
    expect(bySymbol.XAUUSD).toMatchObject({
      session: ["00:00-16:00", "17:00-24:00"],
      nextChange: "2026-06-02T21:00:00.000Z",
      status: "OPEN",
      sessionTimeZone: "America/Chicago",
    });
    expect(bySymbol.GER40).toMatchObject({
      session: ["08:00-22:00"],
      nextChange: "2026-06-02T20:00:00.000Z",
      sessionTimeZone: "Europe/Berlin",
    });
    expect(bySymbol.BTCUSD).toMatchObject({ sessionTimeZone: "UTC" });
    expect(bySymbol.BTCUSD).toMatchObject({ digits: 2, assetClass: "crypto", nextChange: null, status: "OPEN" });
    expectNoUserData(response.body);
  });

  it("says CLOSED outside the session (Tuesday 21:30 UTC: gold's daily break, GER40 after hours)", async () => {
    server.clock.set(Date.UTC(2026, 5, 2, 21, 30));
    try {
      const rows = rowsOf((await get("/api/v1/market")).body);
      const status = Object.fromEntries(rows.map((row) => [row.symbol, [row.status, row.nextChange]]));
      expect(status.XAUUSD).toEqual(["CLOSED", "2026-06-02T22:00:00.000Z"]);
      expect(status.GER40).toEqual(["CLOSED", "2026-06-03T06:00:00.000Z"]);
      expect(status.EURUSD![0]).toBe("OPEN");
    } finally {
      server.clock.set(TUESDAY_NOON);
    }
  });

  it("gives today's session of the zone's local day: on Monday 01:00 UTC it is still Sunday in New York and Chicago", async () => {
    // A server of its own: the platform's time never goes back.
    const monday = await startTestServer({ clock: new ManualClock(Date.UTC(2026, 5, 8, 1, 0)) });
    try {
      const trader = await signUp(monday);
      const rows = rowsOf((await call(monday, "GET", "/api/v1/market", { token: trader.token })).body);
      const session = Object.fromEntries(rows.map((row) => [row.symbol, row.session]));
      expect(session.EURUSD).toEqual(["17:00-24:00"]);
      expect(session.XAUUSD).toEqual(["17:00-24:00"]);
      // Berlin is already on Monday at 03:00; BTCUSD's UTC Monday.
      expect(session.GER40).toEqual(["08:00-22:00"]);
      expect(session.BTCUSD).toEqual(["00:00-24:00"]);
    } finally {
      await monday.close();
    }
  });

  it("refuses unknown query fields and requests without a token", async () => {
    const invalid = await get("/api/v1/market?foo=1");
    expect(invalid.status).toBe(400);
    expect(invalid.body.error).toBe("INVALID_DATA");
    const anonymous = await get("/api/v1/market", null);
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.error).toBe("UNAUTHORIZED");
    const forged = await get("/api/v1/market", "Bearer not-a-token");
    expect(forged.status).toBe(401);
  });
});

describe("GET /api/v1/market/shortlist", () => {
  it("answers bid, ask, the day's change in percent, high, low and time; nulls before any quote", async () => {
    server.clock.set(TUESDAY_NOON + 1_000);
    await pushQuote(server, "EURUSD", "1.08000", "1.08010");
    server.clock.set(TUESDAY_NOON + 2_000);
    await pushQuote(server, "EURUSD", "1.08500", "1.08512");
    server.clock.set(TUESDAY_NOON + 3_000);
    await pushQuote(server, "EURUSD", "1.07900", "1.07911");
    const response = await get("/api/v1/market/shortlist");
    expect(response.status).toBe(200);
    expect(response.body.structure).toEqual(["symbol", "bid", "ask", "change", "high", "low", "time", "open"]);
    const rows = rowsOf(response.body);
    expect(rows).toHaveLength(16);
    // (107900 − 108000) / 108000 = −0.0926 % → −0.09
    expect(rows.find((row) => row.symbol === "EURUSD")).toEqual({
      symbol: "EURUSD",
      bid: 1.079,
      ask: 1.07911,
      change: -0.09,
      high: 1.085,
      low: 1.079,
      time: "2026-06-02T12:00:03.000Z",
      open: 1.08,
    });
    expect(rows.find((row) => row.symbol === "NAS100")).toEqual({
      symbol: "NAS100",
      bid: null,
      ask: null,
      change: null,
      high: null,
      low: null,
      time: null,
      open: null,
    });
    expectNoUserData(response.body);
  });

  it("refuses unknown query fields (400) and a missing token (401)", async () => {
    expect((await get("/api/v1/market/shortlist?symbols=EURUSD")).status).toBe(400);
    expect((await get("/api/v1/market/shortlist", null)).status).toBe(401);
  });
});

describe("GET /api/v1/market/shortlist when the clock steps back", () => {
  // Found by the audit of 6 December: a quote stamped by a wall clock stepped back across midnight went into
  // the day before while the day's bar stayed the new one: bid 150 with high and low 200.
  it("stamps a quote no earlier than the one before it, so the row keeps to one day", async () => {
    const clock = new ManualClock(Date.parse("2026-06-02T23:59:59.000Z"));
    const stepped = await startTestServer({ clock, environment: { BOURSE_SESSION_TTL_SECONDS: "86400" } });
    try {
      const trader = await signUp(stepped);
      await pushQuote(stepped, "BTCUSD", "100.00", "101.00");
      clock.set(Date.parse("2026-06-03T00:00:01.000Z"));
      await pushQuote(stepped, "BTCUSD", "200.00", "201.00");
      clock.set(Date.parse("2026-06-02T23:59:59.500Z"));
      await pushQuote(stepped, "BTCUSD", "150.00", "151.00");
      const rows = rowsOf((await call(stepped, "GET", "/api/v1/market/shortlist", { token: trader.token })).body);
      expect(rows.find((row) => row.symbol === "BTCUSD")).toMatchObject({
        bid: 150,
        high: 200,
        low: 150,
        change: -25,
        time: "2026-06-03T00:00:01.000Z",
      });
    } finally {
      await stepped.close();
    }
  });
});

describe("candles when the clock steps back", () => {
  // Found by the audit of time of 7 December: quote times never go back, but both candle routes read up to the clock
  // by default, so a clock set back an hour hid the bars of the last hour.
  it("still show the latest bars, on the Client API and the Automation API", async () => {
    const clock = new ManualClock(Date.parse("2026-06-02T13:00:10.000Z"));
    const stepped = await startTestServer({ clock });
    try {
      const trader = await signUp(stepped);
      await pushQuote(stepped, "EURUSD", "1.08430", "1.08440");
      clock.set(Date.parse("2026-06-02T12:00:00.000Z"));
      await pushQuote(stepped, "EURUSD", "1.08450", "1.08460");
      const bars = await call(stepped, "GET", "/api/v1/market/EURUSD/candles?timeframe=M1", { token: trader.token });
      expect(bars.status).toBe(200);
      expect(rowsOf(bars.body)).toMatchObject([{ time: "2026-06-02T13:00:00.000Z", open: 1.0843, close: 1.0845 }]);
      const key = await createApiKey(stepped, trader, "read");
      const automated = await call(stepped, "GET", "/v1/api/candles/EURUSD?timeframe=M1", {
        headers: { authorization: `Bearer ${key.key}` },
      });
      expect(automated.status).toBe(200);
      expect(automated.body.data).toHaveLength(1);
    } finally {
      await stepped.close();
    }
  });
});

describe("market status when the clock steps back", () => {
  // Found by the audit of time of 7 December: the list judged sessions at the wall clock, the engine at its own (which
  // never goes back): set back 55 s from just past Friday's close, EURUSD showed OPEN and refused orders MARKET_CLOSED.
  it("is judged at the engine's time, as orders are", async () => {
    // Friday's close: 17:00 New York, 21:00 UTC in June.
    const clock = new ManualClock(Date.parse("2026-06-05T21:00:05.000Z"));
    const stepped = await startTestServer({ clock });
    try {
      const trader = await signUp(stepped);
      clock.set(Date.parse("2026-06-05T20:59:10.000Z"));
      const rows = rowsOf((await call(stepped, "GET", "/api/v1/market", { token: trader.token })).body);
      expect(rows.find((row) => row.symbol === "EURUSD")).toMatchObject({ status: "CLOSED" });
      const key = await createApiKey(stepped, trader, "read");
      const symbols = await call(stepped, "GET", "/v1/api/symbols", {
        headers: { authorization: `Bearer ${key.key}` },
      });
      expect(
        (symbols.body.data as { symbol: string; status: string }[]).find((row) => row.symbol === "EURUSD"),
      ).toMatchObject({
        status: "closed",
      });
      const order = await call(stepped, "POST", `/api/v1/accounts/${trader.login}/orders`, {
        token: trader.token,
        body: { symbol: "EURUSD", side: "BUY", type: "LIMIT", volume: 0.01, price: 1.05 },
      });
      expect(order.body.error).toBe("MARKET_CLOSED");
    } finally {
      await stepped.close();
    }
  });
});

describe("GET /api/v1/market/{symbol}", () => {
  it("answers the whole contract specification as decimals", async () => {
    const response = await get("/api/v1/market/EURUSD");
    expect(response.status).toBe(200);
    expect(response.body.data).toEqual({
      symbol: "EURUSD",
      description: "Euro vs US Dollar",
      assetClass: "forex",
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
      status: "OPEN",
      nextChange: "2026-06-05T21:00:00.000Z",
      timezone: "UTC",
      // Sunday 17:00 to Friday 17:00 New York.
      sessions: [
        { day: "Sunday", intervals: ["17:00-24:00"] },
        { day: "Monday", intervals: ["00:00-24:00"] },
        { day: "Tuesday", intervals: ["00:00-24:00"] },
        { day: "Wednesday", intervals: ["00:00-24:00"] },
        { day: "Thursday", intervals: ["00:00-24:00"] },
        { day: "Friday", intervals: ["00:00-17:00"] },
        { day: "Saturday", intervals: [] },
      ],
      sessionTimeZone: "America/New_York",
      stopsLevel: 0,
      swapMode: "POINTS",
      swapLong: -7.2,
      swapShort: 2.1,
      // Forex: the weekend's swap at Wednesday's rollover (spot settles two days later).
      swapDays: [0, 1, 1, 3, 1, 1, 0],
      commission: 0,
      commissionCurrency: "USD",
    });
    expectNoUserData(response.body);
  });

  it("shows CFD figures (margin rate in percent, commission, lots) and takes a lower-case symbol", async () => {
    const btc = await get("/api/v1/market/btcusd");
    expect(btc.status).toBe(200);
    expect(btc.body.data).toMatchObject({
      symbol: "BTCUSD",
      digits: 2,
      point: 0.01,
      contractSize: 1,
      volumeMax: 20,
      marginMode: "CFD",
      marginRate: 50,
      marginCurrency: "USD",
      swapLong: -2000,
      // Crypto trades every day: a day of swap at every rollover.
      swapDays: [1, 1, 1, 1, 1, 1, 1],
      commission: 5,
      commissionCurrency: "USD",
      nextChange: null,
    });
    const us500 = await get("/api/v1/market/US500");
    expect(us500.body.data).toMatchObject({
      volumeMin: 0.1,
      volumeStep: 0.1,
      marginRate: 5,
      stopsLevel: 50,
      swapDays: [0, 1, 1, 1, 1, 3, 0],
    });
  });

  it("answers 404 UNKNOWN_SYMBOL, 400 for a malformed symbol and 401 without a token", async () => {
    const unknown = await get("/api/v1/market/NOPE");
    expect(unknown.status).toBe(404);
    expect(unknown.body).toEqual({ error: "UNKNOWN_SYMBOL", message: expect.any(String) });
    const malformed = await get(`/api/v1/market/${"X".repeat(33)}`);
    expect(malformed.status).toBe(400);
    expect(malformed.body.error).toBe("INVALID_DATA");
    expect((await get("/api/v1/market/EUR$USD")).status).toBe(400);
    expect((await get("/api/v1/market/EURUSD", null)).status).toBe(401);
  });
});

describe("GET /api/v1/market/{symbol}/candles", () => {
  beforeAll(async () => {
    // GBPUSD ticks in three minutes of Tuesday 12:10 … 12:12 and one at 13:05.
    const ticks: [number, string][] = [
      [Date.UTC(2026, 5, 2, 12, 10, 5), "1.27000"],
      [Date.UTC(2026, 5, 2, 12, 10, 20), "1.27040"],
      [Date.UTC(2026, 5, 2, 12, 10, 40), "1.26980"],
      [Date.UTC(2026, 5, 2, 12, 10, 55), "1.27010"],
      [Date.UTC(2026, 5, 2, 12, 11, 1), "1.27020"],
      [Date.UTC(2026, 5, 2, 12, 12, 30), "1.27100"],
      [Date.UTC(2026, 5, 2, 13, 5, 0), "1.26900"],
    ];
    for (const [time, bid] of ticks) {
      server.clock.set(time);
      await pushQuote(server, "GBPUSD", bid, (Number(bid) + 0.00012).toFixed(5));
    }
  });

  it("answers exact M1 and H1 bars by bid with tick volumes, oldest first", async () => {
    const m1 = await get("/api/v1/market/GBPUSD/candles?timeframe=M1");
    expect(m1.status).toBe(200);
    expect(m1.body).toEqual({
      structure: ["time", "open", "high", "low", "close", "tickVolume"],
      rows: [
        ["2026-06-02T12:10:00.000Z", 1.27, 1.2704, 1.2698, 1.2701, 4],
        ["2026-06-02T12:11:00.000Z", 1.2702, 1.2702, 1.2702, 1.2702, 1],
        ["2026-06-02T12:12:00.000Z", 1.271, 1.271, 1.271, 1.271, 1],
        ["2026-06-02T13:05:00.000Z", 1.269, 1.269, 1.269, 1.269, 1],
      ],
    });
    const h1 = await get("/api/v1/market/GBPUSD/candles?timeframe=H1");
    expect(h1.body.rows).toEqual([
      ["2026-06-02T12:00:00.000Z", 1.27, 1.271, 1.2698, 1.271, 6],
      ["2026-06-02T13:00:00.000Z", 1.269, 1.269, 1.269, 1.269, 1],
    ]);
    // H1 is the default timeframe.
    expect((await get("/api/v1/market/GBPUSD/candles")).body.rows).toEqual(h1.body.rows);
    const w1 = await get("/api/v1/market/GBPUSD/candles?timeframe=W1");
    expect(w1.body.rows).toEqual([["2026-06-01T00:00:00.000Z", 1.27, 1.271, 1.269, 1.269, 7]]);
    expectNoUserData(m1.body);
  });

  it("gives the latest bars without from, the first ones from `from`, and respects `to`", async () => {
    const latest = await get("/api/v1/market/GBPUSD/candles?timeframe=M1&limit=2");
    expect(latest.body.rows.map((row: unknown[]) => row[0])).toEqual([
      "2026-06-02T12:12:00.000Z",
      "2026-06-02T13:05:00.000Z",
    ]);
    const one = await get("/api/v1/market/GBPUSD/candles?timeframe=M1&limit=1&to=2026-06-02T12:11:30Z");
    expect(one.body.rows).toEqual([["2026-06-02T12:11:00.000Z", 1.2702, 1.2702, 1.2702, 1.2702, 1]]);
    const three = await get("/api/v1/market/GBPUSD/candles?timeframe=M1&limit=3&to=2026-06-02T12:12:00Z");
    expect(three.body.rows.map((row: unknown[]) => row[0])).toEqual([
      "2026-06-02T12:10:00.000Z",
      "2026-06-02T12:11:00.000Z",
      "2026-06-02T12:12:00.000Z",
    ]);
    const forward = await get(
      `/api/v1/market/GBPUSD/candles?timeframe=M1&limit=2&from=${Date.UTC(2026, 5, 2, 12, 10, 30)}`,
    );
    expect(forward.body.rows.map((row: unknown[]) => row[0])).toEqual([
      "2026-06-02T12:11:00.000Z",
      "2026-06-02T12:12:00.000Z",
    ]);
    const bounded = await get(
      "/api/v1/market/GBPUSD/candles?timeframe=M1&from=2026-06-02T12:00:00Z&to=2026-06-02T12:11:00Z",
    );
    expect(bounded.body.rows.map((row: unknown[]) => row[0])).toEqual([
      "2026-06-02T12:10:00.000Z",
      "2026-06-02T12:11:00.000Z",
    ]);
    const empty = await get("/api/v1/market/EURGBP/candles?timeframe=D1");
    expect(empty.body).toEqual({ structure: ["time", "open", "high", "low", "close", "tickVolume"], rows: [] });
  });

  // Found by the audit of market data of 7 December: a `to` far ahead (a chart's "up to now") found no bar, since the
  // look-back counted 5,000 bars back from it; a `from` past the clock without `to` was refused as after `to`.
  it("finds the latest bars with a `to` far ahead, and answers a `from` past the clock with an empty page", async () => {
    const latest = await get("/api/v1/market/GBPUSD/candles?timeframe=M1&limit=2");
    for (const to of ["2026-06-09T12:00:00Z", "2099-01-01T00:00:00Z"]) {
      const ahead = await get(`/api/v1/market/GBPUSD/candles?timeframe=M1&limit=2&to=${to}`);
      expect(ahead.body.rows, to).toEqual(latest.body.rows);
    }
    const future = await get(`/api/v1/market/GBPUSD/candles?timeframe=M1&from=${server.clock.now() + 1}`);
    expect(future.status).toBe(200);
    expect(future.body.rows).toEqual([]);
  });

  it("refuses a bad timeframe, a limit over 5,000, bad times and unknown fields with INVALID_DATA", async () => {
    for (const query of [
      "timeframe=M2",
      "timeframe=m1",
      "timeframe=M1&limit=5001",
      "timeframe=M1&limit=0",
      "timeframe=M1&from=yesterday",
      "timeframe=M1&from=2026-06-02T13:00:00Z&to=2026-06-02T12:00:00Z",
      "timeframe=M1&count=5",
    ]) {
      const response = await get(`/api/v1/market/GBPUSD/candles?${query}`);
      expect(response.status, query).toBe(400);
      expect(response.body.error, query).toBe("INVALID_DATA");
    }
  });

  it("answers 404 UNKNOWN_SYMBOL and 401 without a token", async () => {
    const unknown = await get("/api/v1/market/NOPE/candles?timeframe=M1");
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toBe("UNKNOWN_SYMBOL");
    expect((await get("/api/v1/market/GBPUSD/candles?timeframe=M1", null)).status).toBe(401);
  });
});

describe("GET /api/v1/market/{symbol}/depth", () => {
  it("answers the book with the volume left at each level in lots", async () => {
    server.clock.set(Date.UTC(2026, 5, 2, 14, 0));
    const push = await admin(server, "POST", "/admin/v1/quotes", {
      symbol: "USDJPY",
      bid: "155.100",
      ask: "155.110",
      bids: [
        { price: "155.100", volume: "1.5" },
        { price: "155.095", volume: "3" },
        { price: "155.090", volume: "6" },
      ],
      asks: [
        { price: "155.110", volume: "2" },
        { price: "155.115", volume: "4" },
      ],
    });
    expect(push.status).toBe(200);
    const response = await get("/api/v1/market/USDJPY/depth");
    expect(response.status).toBe(200);
    expect(response.body.data).toEqual({
      symbol: "USDJPY",
      bid: 155.1,
      ask: 155.11,
      time: "2026-06-02T14:00:00.000Z",
      bids: [
        { price: 155.1, volume: 1.5 },
        { price: 155.095, volume: 3 },
        { price: 155.09, volume: 6 },
      ],
      asks: [
        { price: 155.11, volume: 2 },
        { price: 155.115, volume: 4 },
      ],
    });
    // A market buy of 0.5 lot takes from the best ask: 1.5 lots left there.
    await server.platform.execute({
      kind: "placeOrder",
      accountId: user.login,
      symbol: "USDJPY",
      side: "BUY",
      type: "MARKET",
      volume: 50,
    });
    const after = await get("/api/v1/market/USDJPY/depth?depth=1");
    expect(after.body.data.asks).toEqual([{ price: 155.11, volume: 1.5 }]);
    expect(after.body.data.bids).toEqual([{ price: 155.1, volume: 1.5 }]);
    expectNoUserData(after.body);
  });

  it("answers null volumes for a quote without levels, and an empty book before any quote", async () => {
    await pushQuote(server, "USDCHF", "0.90000", "0.90014");
    const unlimited = await get("/api/v1/market/USDCHF/depth");
    expect(unlimited.body.data).toMatchObject({
      bids: [{ price: 0.9, volume: null }],
      asks: [{ price: 0.90014, volume: null }],
    });
    const none = await get("/api/v1/market/NAS100/depth");
    expect(none.status).toBe(200);
    expect(none.body.data).toEqual({ symbol: "NAS100", bid: null, ask: null, time: null, bids: [], asks: [] });
  });

  it("refuses a bad depth (400), an unknown symbol (404) and a missing token (401)", async () => {
    for (const query of ["depth=0", "depth=51", "depth=two", "levels=3"]) {
      const response = await get(`/api/v1/market/USDJPY/depth?${query}`);
      expect(response.status, query).toBe(400);
      expect(response.body.error).toBe("INVALID_DATA");
    }
    expect((await get("/api/v1/market/NOPE/depth")).body.error).toBe("UNKNOWN_SYMBOL");
    expect((await get("/api/v1/market/NOPE/depth")).status).toBe(404);
    expect((await get("/api/v1/market/USDJPY/depth", null)).status).toBe(401);
  });
});

describe("POST /admin/v1/quotes", () => {
  // Found by the review of 6 December: a feed's Saturday EURUSD quote was taken while EURUSD was closed; it traded
  // nothing, but it valued positions, and that valuation could stop out an account's BTCUSD position, an open market.
  it("a quote of a closed market is not taken: the push answers 200 naming it in `closed` and takes the others", async () => {
    // A server of its own: its clock goes to Saturday, and the platform's quote time never goes back.
    const weekend = await startTestServer();
    try {
      await pushQuote(weekend, "EURUSD", "1.08430", "1.08440");
      await pushQuote(weekend, "BTCUSD", "60000.00", "60010.00");
      weekend.clock.set(Date.UTC(2026, 5, 6, 12, 0)); // Saturday: forex closed, crypto open
      const eurBefore = weekend.platform.engine.quote("EURUSD");
      const push = await admin(weekend, "POST", "/admin/v1/quotes", {
        quotes: [
          { symbol: "EURUSD", bid: "1.05000", ask: "1.05010" },
          { symbol: "BTCUSD", bid: "61000.00", ask: "61010.00" },
        ],
      });
      expect(push.status).toBe(200);
      expect(push.body.data).toEqual({ accepted: 1, closed: ["EURUSD"], time: "2026-06-06T12:00:00.000Z" });
      expect(weekend.platform.engine.quote("EURUSD")).toEqual(eurBefore);
      expect(weekend.platform.engine.quote("BTCUSD")).toMatchObject({ bid: 6_100_000 });
      const single = await admin(weekend, "POST", "/admin/v1/quotes", {
        symbol: "EURUSD",
        bid: "1.05000",
        ask: "1.05010",
      });
      expect(single.status).toBe(200);
      expect(single.body.data).toMatchObject({ accepted: 0, closed: ["EURUSD"] });
      expect(weekend.platform.engine.quote("EURUSD")).toEqual(eurBefore);
      const trader = await signUp(weekend);
      const shortlist = await call(weekend, "GET", "/api/v1/market/shortlist", { token: trader.token });
      expect(rowsOf(shortlist.body).find((row) => row.symbol === "EURUSD")).toMatchObject({ bid: 1.0843 });
    } finally {
      await weekend.close();
    }
  });

  // Found by the audit of 6 December: the engine's own checks ran quote by quote as the batch was pushed, so a
  // batch refused 400 for its second quote had already moved the market with its first, and closed a position
  // at its stop loss: 10,000.00 became 8,560.00 on an answer that said nothing happened.
  it("a batch with a quote the engine would refuse changes nothing, names the quote, and fires no stop", async () => {
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const account = `/api/v1/accounts/${user.login}`;
    const opened = await call(server, "POST", `${account}/orders`, {
      token: user.token,
      body: { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 1, sl: 1.08 },
    });
    expect(opened.status).toBe(200);
    const balance = (await get(account)).body.data.balance as number;
    const positions = rowsOf((await get(`${account}/positions`)).body);
    const before = server.platform.engine.quote("EURUSD");
    for (const second of [
      { symbol: "EURUSD", bid: "1.07000", ask: "1.06000" },
      { symbol: "EURUSD", bid: "1.07000", ask: "1.07010", bids: [{ price: "1.06990", volume: 1 }] },
      {
        symbol: "EURUSD",
        bid: "1.07000",
        ask: "1.07010",
        asks: [
          { price: "1.07010", volume: 1 },
          { price: "1.07000", volume: 1 },
        ],
      },
    ]) {
      const push = await admin(server, "POST", "/admin/v1/quotes", {
        quotes: [{ symbol: "EURUSD", bid: "1.07000", ask: "1.07010" }, second],
      });
      expect(push.status).toBe(400);
      expect(push.body.error).toBe("INVALID_PRICE");
      expect(push.body.message).toMatch(/^quotes\[1\]: /);
      expect(server.platform.engine.quote("EURUSD")).toEqual(before);
      expect(rowsOf((await get(`${account}/positions`)).body)).toEqual(positions);
      expect((await get(account)).body.data.balance).toBe(balance);
    }
  });
});
