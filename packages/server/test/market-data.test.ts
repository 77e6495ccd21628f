import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BusMessage } from "../src/bus.ts";
import { ManualClock } from "../src/clock.ts";
import { CandleClock, UTC_CANDLE_DAY_START } from "../src/candle-clock.ts";
import { marketDataOf, weekSessionsView, type CandleTimeframe } from "../src/market-data.ts";
import { DEFAULT_INSTRUMENTS, nextSessionChange } from "@bourse/core";
import { TUESDAY_NOON, startTestServer, type TestServer } from "./helpers.ts";

const at = (iso: string) => Date.parse(iso);
const tick = (symbol: string, time: string, bid: number, spread = 10) => ({
  symbol,
  bid,
  ask: bid + spread,
  time: at(time),
});
const bar = (time: string, open: number, high: number, low: number, close: number, tickVolume: number) => ({
  openTime: at(time),
  open,
  high,
  low,
  close,
  tickVolume,
});
const ALL = { from: 0, to: at("2030-01-01T00:00:00Z"), limit: 5000 };

describe("bar arithmetic", () => {
  it("starts bars in UTC by default: H4 at 00/04/…, W1 on Monday 00:00, MN1 on the 1st", () => {
    const clock = new CandleClock(UTC_CANDLE_DAY_START);
    const bucketStart = (timeframe: CandleTimeframe, time: number) => clock.barStart(timeframe, time);
    const barsBefore = (timeframe: CandleTimeframe, start: number, count: number) =>
      clock.barsBefore(timeframe, start, count);
    const time = at("2026-07-01T13:47:12.345Z"); // a Wednesday
    expect(bucketStart("M1", time)).toBe(at("2026-07-01T13:47:00Z"));
    expect(bucketStart("M5", time)).toBe(at("2026-07-01T13:45:00Z"));
    expect(bucketStart("M15", time)).toBe(at("2026-07-01T13:45:00Z"));
    expect(bucketStart("M30", time)).toBe(at("2026-07-01T13:30:00Z"));
    expect(bucketStart("H1", time)).toBe(at("2026-07-01T13:00:00Z"));
    expect(bucketStart("H4", time)).toBe(at("2026-07-01T12:00:00Z"));
    expect(bucketStart("D1", time)).toBe(at("2026-07-01T00:00:00Z"));
    expect(bucketStart("W1", time)).toBe(at("2026-06-29T00:00:00Z"));
    expect(bucketStart("W1", at("2026-06-28T23:59:59Z"))).toBe(at("2026-06-22T00:00:00Z")); // Sunday
    expect(bucketStart("W1", at("2026-06-29T00:00:00Z"))).toBe(at("2026-06-29T00:00:00Z")); // Monday
    expect(bucketStart("MN1", time)).toBe(at("2026-07-01T00:00:00Z"));
    expect(bucketStart("MN1", at("2026-06-30T23:59:59Z"))).toBe(at("2026-06-01T00:00:00Z"));
    expect(barsBefore("MN1", at("2026-03-01T00:00:00Z"), 4)).toBe(at("2025-11-01T00:00:00Z"));
    expect(barsBefore("H1", at("2026-03-01T00:00:00Z"), 2)).toBe(at("2026-02-28T22:00:00Z"));
  });

  it("finds the next session change and writes sessions as intervals on the clock of their zone", () => {
    const eurusd = DEFAULT_INSTRUMENTS.find((each) => each.symbol === "EURUSD")!;
    // 17:00 New York: 21:00 UTC in June.
    expect(nextSessionChange(eurusd, TUESDAY_NOON)).toBe(at("2026-06-05T21:00:00Z"));
    expect(nextSessionChange(eurusd, at("2026-06-06T12:00:00Z"))).toBe(at("2026-06-07T21:00:00Z"));
    const btc = DEFAULT_INSTRUMENTS.find((each) => each.symbol === "BTCUSD")!;
    expect(nextSessionChange(btc, TUESDAY_NOON)).toBeNull();
    expect(weekSessionsView(eurusd.sessions)).toEqual([
      { day: "Sunday", intervals: ["17:00-24:00"] },
      { day: "Monday", intervals: ["00:00-24:00"] },
      { day: "Tuesday", intervals: ["00:00-24:00"] },
      { day: "Wednesday", intervals: ["00:00-24:00"] },
      { day: "Thursday", intervals: ["00:00-24:00"] },
      { day: "Friday", intervals: ["00:00-17:00"] },
      { day: "Saturday", intervals: [] },
    ]);
  });
});

describe("the market data service", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it("aggregates ticks by bid into exact bars across the M1, H1, D1, W1 and MN1 boundaries", async () => {
    const market = marketDataOf(server.platform);
    const ticks = [
      tick("EURUSD", "2026-06-28T23:00:00Z", 107000), // Sunday: last week, June
      tick("EURUSD", "2026-06-30T23:59:30Z", 108000), // Tuesday, last minute of June
      tick("EURUSD", "2026-06-30T23:59:50Z", 108050),
      tick("EURUSD", "2026-07-01T00:00:10Z", 107900), // Wednesday 1 July: new minute, hour, day, month
      tick("EURUSD", "2026-07-01T00:00:40Z", 108100),
    ];
    for (const quote of ticks) market.ingest(quote);
    const query = (timeframe: CandleTimeframe) => market.candles({ symbol: "EURUSD", timeframe, ...ALL });
    const strip = (candles: Awaited<ReturnType<typeof query>>) =>
      candles.map(({ openTime, open, high, low, close, tickVolume }) => ({
        openTime,
        open,
        high,
        low,
        close,
        tickVolume,
      }));
    expect(strip(await query("M1"))).toEqual([
      bar("2026-06-28T23:00:00Z", 107000, 107000, 107000, 107000, 1),
      bar("2026-06-30T23:59:00Z", 108000, 108050, 108000, 108050, 2),
      bar("2026-07-01T00:00:00Z", 107900, 108100, 107900, 108100, 2),
    ]);
    expect(strip(await query("H1"))).toEqual([
      bar("2026-06-28T23:00:00Z", 107000, 107000, 107000, 107000, 1),
      bar("2026-06-30T23:00:00Z", 108000, 108050, 108000, 108050, 2),
      bar("2026-07-01T00:00:00Z", 107900, 108100, 107900, 108100, 2),
    ]);
    expect(strip(await query("D1"))).toEqual([
      bar("2026-06-28T00:00:00Z", 107000, 107000, 107000, 107000, 1),
      bar("2026-06-30T00:00:00Z", 108000, 108050, 108000, 108050, 2),
      bar("2026-07-01T00:00:00Z", 107900, 108100, 107900, 108100, 2),
    ]);
    expect(strip(await query("W1"))).toEqual([
      bar("2026-06-22T00:00:00Z", 107000, 107000, 107000, 107000, 1),
      bar("2026-06-29T00:00:00Z", 108000, 108100, 107900, 108100, 4),
    ]);
    expect(strip(await query("MN1"))).toEqual([
      bar("2026-06-01T00:00:00Z", 107000, 108050, 107000, 108050, 3),
      bar("2026-07-01T00:00:00Z", 107900, 108100, 107900, 108100, 2),
    ]);

    // Flushed: the store holds exactly these bars, and reading again counts nothing twice.
    await market.flush();
    const stored = await server.platform.store.candles({ symbol: "EURUSD", timeframe: "W1", ...ALL });
    expect(strip(stored)).toEqual(strip(await query("W1")));
    expect(strip(stored)[1]).toEqual(bar("2026-06-29T00:00:00Z", 108000, 108100, 107900, 108100, 4));

    // More ticks after the flush: the query merges the stored bar with the unflushed part …
    market.ingest(tick("EURUSD", "2026-07-01T00:00:50Z", 107800));
    market.ingest(tick("EURUSD", "2026-07-01T00:01:05Z", 107850));
    const expectedM1 = [
      bar("2026-06-28T23:00:00Z", 107000, 107000, 107000, 107000, 1),
      bar("2026-06-30T23:59:00Z", 108000, 108050, 108000, 108050, 2),
      bar("2026-07-01T00:00:00Z", 107900, 108100, 107800, 107800, 3),
      bar("2026-07-01T00:01:00Z", 107850, 107850, 107850, 107850, 1),
    ];
    expect(strip(await query("M1"))).toEqual(expectedM1);
    expect(strip(await query("W1"))[1]).toEqual(bar("2026-06-29T00:00:00Z", 108000, 108100, 107800, 107850, 6));
    // … and the store, once flushed, merged the delta exactly as the query did.
    await market.flush();
    expect(strip(await server.platform.store.candles({ symbol: "EURUSD", timeframe: "M1", ...ALL }))).toEqual(
      expectedM1,
    );
    expect(strip(await query("M1"))).toEqual(expectedM1);
    expect(strip(await query("MN1"))[1]).toEqual(bar("2026-07-01T00:00:00Z", 107900, 108100, 107800, 107850, 4));

    // Bounds and limit: open times in [from, to], oldest first, at most `limit`.
    const window = await market.candles({
      symbol: "EURUSD",
      timeframe: "M1",
      from: at("2026-06-30T23:59:00Z"),
      to: at("2026-07-01T00:00:59Z"),
      limit: 1,
    });
    expect(strip(window)).toEqual([expectedM1[1]]);
  });

  it("keeps the day's statistics: open, high, low by bid and the change in percent from integers", () => {
    const market = marketDataOf(server.platform);
    market.ingest(tick("USDJPY", "2026-07-01T08:00:00Z", 155000));
    market.ingest(tick("USDJPY", "2026-07-01T09:00:00Z", 156200));
    market.ingest(tick("USDJPY", "2026-07-01T10:00:00Z", 154900));
    market.ingest(tick("USDJPY", "2026-07-01T11:00:00Z", 155123));
    // (155123 − 155000) / 155000 = 0.0794 % → 0.08 (hundredths: 7.94 → 8)
    expect(market.dailyStats("USDJPY")).toEqual({
      open: 155000,
      high: 156200,
      low: 154900,
      changeHundredths: 8,
      day: at("2026-07-01T00:00:00Z"),
    });
    expect(market.lastQuote("USDJPY")).toMatchObject({ bid: 155123, ask: 155133 });
    // A new UTC day starts over from its first tick.
    market.ingest(tick("USDJPY", "2026-07-02T00:00:01Z", 154000));
    expect(market.dailyStats("USDJPY")).toMatchObject({ open: 154000, high: 154000, low: 154000, changeHundredths: 0 });
    market.ingest(tick("USDJPY", "2026-07-02T00:00:02Z", 152460));
    // −1540 / 154000 = −1 % exactly
    expect(market.dailyStats("USDJPY")!.changeHundredths).toBe(-100);
    expect(market.dailyStats("GBPUSD")).toBeUndefined();
  });

  it("publishes quote, depth and candle events as decimals with the instrument's digits", async () => {
    const market = marketDataOf(server.platform);
    const messages: [string, BusMessage][] = [];
    const bus = server.platform.bus;
    const record = (topic: string, message: BusMessage) => messages.push([topic, message]);
    const unsubscribe = [
      bus.subscribe("quotes.XAUUSD", record),
      bus.subscribe("depth.XAUUSD", record),
      bus.subscribe("candles.XAUUSD.M1", record),
    ];
    market.ingest({
      symbol: "XAUUSD",
      bid: 235010,
      ask: 235035,
      bids: [
        { price: 235010, volume: 50 },
        { price: 235000, volume: 120 },
      ],
      asks: [{ price: 235035, volume: 75 }],
      time: at("2026-07-01T12:00:30Z"),
    });
    market.ingest(tick("XAUUSD", "2026-07-01T12:01:00Z", 235100, 25));
    for (const dispose of unsubscribe) dispose();
    expect(messages).toEqual([
      [
        "candles.XAUUSD.M1",
        {
          type: "candleEvent",
          payload: {
            symbol: "XAUUSD",
            timeframe: "M1",
            time: "2026-07-01T12:00:00.000Z",
            open: 2350.1,
            high: 2350.1,
            low: 2350.1,
            close: 2350.1,
            tickVolume: 1,
            closed: false,
          },
        },
      ],
      [
        "quotes.XAUUSD",
        {
          type: "quoteEvent",
          payload: { symbol: "XAUUSD", bid: 2350.1, ask: 2350.35, ts: "2026-07-01T12:00:30.000Z" },
        },
      ],
      [
        "depth.XAUUSD",
        {
          type: "depthEvent",
          payload: {
            symbol: "XAUUSD",
            bids: [
              { price: 2350.1, volume: 0.5 },
              { price: 2350, volume: 1.2 },
            ],
            asks: [{ price: 2350.35, volume: 0.75 }],
            ts: "2026-07-01T12:00:30.000Z",
          },
        },
      ],
      [
        "candles.XAUUSD.M1",
        expect.objectContaining({
          payload: expect.objectContaining({ time: "2026-07-01T12:00:00.000Z", closed: true }),
        }),
      ],
      [
        "candles.XAUUSD.M1",
        expect.objectContaining({
          payload: expect.objectContaining({
            time: "2026-07-01T12:01:00.000Z",
            open: 2351,
            tickVolume: 1,
            closed: false,
          }),
        }),
      ],
      [
        "quotes.XAUUSD",
        { type: "quoteEvent", payload: { symbol: "XAUUSD", bid: 2351, ask: 2351.25, ts: "2026-07-01T12:01:00.000Z" } },
      ],
      [
        "depth.XAUUSD",
        {
          type: "depthEvent",
          payload: {
            symbol: "XAUUSD",
            bids: [{ price: 2351, volume: null }],
            asks: [{ price: 2351.25, volume: null }],
            ts: "2026-07-01T12:01:00.000Z",
          },
        },
      ],
    ]);
  });

  it("sees a quote pushed through the platform at once, before any flush", async () => {
    const market = marketDataOf(server.platform);
    server.clock.set(TUESDAY_NOON + 5000);
    await server.platform.pushQuote({ symbol: "AUDUSD", bid: 66000, ask: 66010 });
    const [candle] = await market.candles({ symbol: "AUDUSD", timeframe: "M1", ...ALL });
    expect(candle).toMatchObject({ openTime: TUESDAY_NOON, open: 66000, close: 66000, tickVolume: 1 });
    expect(market.lastQuote("AUDUSD")).toMatchObject({ bid: 66000, ask: 66010, time: TUESDAY_NOON + 5000 });
  });
});

describe("after a restart", () => {
  it("flushes on close and reloads the live bars, so the day's open, high and low survive", async () => {
    const dataDirectory = mkdtempSync(path.join(tmpdir(), "bourse-market-"));
    try {
      const clock = new ManualClock(TUESDAY_NOON);
      const first = await startTestServer({ dataDirectory, clock });
      const market = marketDataOf(first.platform);
      market.ingest(tick("GBPUSD", "2026-06-02T08:00:00Z", 127000));
      market.ingest(tick("GBPUSD", "2026-06-02T09:00:00Z", 127300));
      market.ingest(tick("GBPUSD", "2026-06-02T11:59:00Z", 126900));
      await first.close();

      clock.set(TUESDAY_NOON + 60_000);
      const second = await startTestServer({ dataDirectory, clock });
      try {
        const reloaded = marketDataOf(second.platform);
        expect(reloaded).not.toBe(market);
        expect(reloaded.liveBar("GBPUSD", "D1")).toMatchObject({
          openTime: at("2026-06-02T00:00:00Z"),
          open: 127000,
          high: 127300,
          low: 126900,
          close: 126900,
          tickVolume: 3,
        });
        await second.platform.pushQuote({ symbol: "GBPUSD", bid: 127100, ask: 127110 });
        expect(reloaded.dailyStats("GBPUSD")).toEqual({
          open: 127000,
          high: 127300,
          low: 126900,
          changeHundredths: 8, // 100 / 127000 = 0.0787 %
          day: at("2026-06-02T00:00:00Z"),
        });
        expect(reloaded.liveBar("GBPUSD", "D1")!.tickVolume).toBe(4);
        const [day] = await reloaded.candles({ symbol: "GBPUSD", timeframe: "D1", ...ALL });
        expect(day).toMatchObject({ open: 127000, high: 127300, low: 126900, close: 127100, tickVolume: 4 });
      } finally {
        await second.close();
      }
    } finally {
      rmSync(dataDirectory, { recursive: true, force: true });
    }
  });
});
