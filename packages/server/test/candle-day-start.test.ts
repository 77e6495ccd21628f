/**
 * BOURSE_CANDLE_DAY_START: with `17:00 America/New_York` the D1 bar and the shortlist's day start at 17:00 New York
 * (21:00 UTC in June, 22:00 UTC in January), as forex brokers chart; the setting is read as BOURSE_ROLLOVER_TIME is.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ManualClock } from "../src/clock.ts";
import { ConfigError, loadServerConfig } from "../src/config.ts";
import { marketDataOf } from "../src/market-data.ts";
import type { Candle } from "@bourse/store";
import { call, pushQuote, signUp, startTestServer, tableObjects } from "./helpers.ts";

const NEW_YORK_DAY = { BOURSE_CANDLE_DAY_START: "17:00 America/New_York" };

describe("BOURSE_CANDLE_DAY_START", () => {
  const dataDirectory = mkdtempSync(join(tmpdir(), "bourse-candle-day-start-"));
  const load = (settings: Record<string, string>) =>
    loadServerConfig({ BOURSE_DATA_DIR: dataDirectory, BOURSE_CONFIG: "", ...settings });

  it("is midnight UTC by default, takes a time in a zone, and refuses anything else naming the setting", () => {
    expect(load({}).candleDayStart).toEqual({ minuteOfDay: 0, timeZone: "UTC" });
    expect(load(NEW_YORK_DAY).candleDayStart).toEqual({ minuteOfDay: 17 * 60, timeZone: "America/New_York" });
    expect(load({ BOURSE_CANDLE_DAY_START: "22:00" }).candleDayStart).toEqual({
      minuteOfDay: 22 * 60,
      timeZone: "UTC",
    });
    expect(() => load({ BOURSE_CANDLE_DAY_START: "17:00 Europe/Paris" })).toThrow(ConfigError);
    expect(() => load({ BOURSE_CANDLE_DAY_START: "5pm" })).toThrow(
      /^BOURSE_CANDLE_DAY_START must be HH:MM \(UTC\) or HH:MM followed by one of UTC, America\/New_York, .*got "5pm"$/,
    );
    // The rollover's own setting is untouched by it.
    expect(load({ ...NEW_YORK_DAY, BOURSE_ROLLOVER_TIME: "22:00" }).trading.rollover).toEqual({
      minuteOfDay: 22 * 60,
      timeZone: "UTC",
    });
  });

  it.each([
    ["June (New York on daylight time)", "2026-06-02", "20:59", "21:00"],
    ["January (standard time)", "2026-01-13", "21:59", "22:00"],
  ])("starts D1 bars and the daily statistics at 17:00 New York in %s", async (_, date, before, start) => {
    const clock = new ManualClock(Date.parse(`${date}T${before}:00.000Z`));
    const server = await startTestServer({ clock, environment: NEW_YORK_DAY });
    try {
      const trader = await signUp(server);
      await pushQuote(server, "EURUSD", "1.08000", "1.08010");
      clock.set(Date.parse(`${date}T${before}:59.000Z`));
      await pushQuote(server, "EURUSD", "1.09000", "1.09010");
      clock.set(Date.parse(`${date}T${start}:00.000Z`));
      await pushQuote(server, "EURUSD", "1.08500", "1.08510");
      clock.set(Date.parse(`${date}T${start}:30.000Z`));
      await pushQuote(server, "EURUSD", "1.08200", "1.08210");
      const get = (url: string) => call(server, "GET", url, { token: trader.token });

      const daily = await get("/api/v1/market/EURUSD/candles?timeframe=D1");
      expect(daily.status).toBe(200);
      const bars = tableObjects(daily.body);
      expect(bars).toHaveLength(2);
      expect(bars[0]).toMatchObject({ open: 1.08, high: 1.09, low: 1.08, close: 1.09, tickVolume: 2 });
      expect(bars[1]).toMatchObject({
        time: `${date}T${start}:00.000Z`,
        open: 1.085,
        high: 1.085,
        low: 1.082,
        close: 1.082,
        tickVolume: 2,
      });
      // The previous bar started at 17:00 New York the day before.
      const dayBefore = new Date(Date.parse(`${date}T${start}:00.000Z`) - 86_400_000).toISOString();
      expect(bars[0]!.time).toBe(dayBefore);

      // The shortlist's day is the chart day: its open is the first bid after 17:00 New York.
      const shortlist = tableObjects((await get("/api/v1/market/shortlist")).body);
      expect(shortlist.find((row) => row.symbol === "EURUSD")).toMatchObject({
        open: 1.085,
        high: 1.085,
        low: 1.082,
        change: -0.28, // (1.08200 − 1.08500) / 1.08500 = −0.2765 %
      });
    } finally {
      await server.close();
    }
  });
});

// The review of 7 December (ninth session): the window of the latest bars, counted back in local slots, took the hour
// New York's spring change skips for a bar, and the latest 5,000 came back as 4,999.
describe("the latest candles on a New York chart clock", () => {
  it("are the 5,000 latest bars the store holds, across the spring change", { timeout: 60_000 }, async () => {
    const to = Date.parse("2026-04-01T12:00:00Z");
    const server = await startTestServer({
      clock: new ManualClock(to),
      environment: { BOURSE_CANDLE_DAY_START: "00:00 America/New_York" },
    });
    try {
      const marketData = marketDataOf(server.platform);
      const clock = marketData.candleClock;
      // Every H1 bar from August 2025 on (about 5,800), as the clock places them.
      const bars: Candle[] = [];
      for (let time = Date.parse("2025-08-01T00:00:00Z"); time <= to; time += 3_600_000) {
        const openTime = clock.barStart("H1", time);
        if (bars.at(-1)?.openTime !== openTime)
          bars.push({
            symbol: "EURUSD",
            timeframe: "H1",
            openTime,
            open: 108_000,
            high: 108_000,
            low: 108_000,
            close: 108_000,
            tickVolume: 1,
          });
      }
      for (let index = 0; index < bars.length; index += 5_000)
        await server.platform.store.upsertCandles(bars.slice(index, index + 5_000));
      const latest = await marketData.latestCandles("EURUSD", "H1", to, 5_000);
      expect(latest.map((bar) => bar.openTime)).toEqual(bars.slice(-5_000).map((bar) => bar.openTime));
    } finally {
      await server.close();
    }
  });
});

const h4Bar = (iso: string): Candle => ({
  symbol: "EURUSD",
  timeframe: "H4",
  openTime: Date.parse(iso),
  open: 108_000,
  high: 108_000,
  low: 108_000,
  close: 108_000,
  tickVolume: 1,
});

// The second review of 7 December (ninth session): read with `limit` rows, a window holding bars stored at the old
// boundaries lost its newest bars, the one in progress first.
describe("the latest candles after BOURSE_CANDLE_DAY_START changed", () => {
  it("include the newest bar", async () => {
    const to = Date.parse("2026-06-03T02:00:00Z");
    const server = await startTestServer({
      clock: new ManualClock(to),
      environment: { BOURSE_CANDLE_DAY_START: "17:00 America/New_York" },
    });
    try {
      // Stored under 00:00 UTC until 08:30 UTC on 2 June, then under 17:00 New York (H4 at 21, 01, 05, 09, 13, 17 UTC).
      const old = ["2026-06-01T20:00:00Z", "2026-06-02T00:00:00Z", "2026-06-02T04:00:00Z", "2026-06-02T08:00:00Z"];
      const fresh = ["05", "09", "13", "17", "21"].map((hour) => `2026-06-02T${hour}:00:00Z`);
      fresh.push("2026-06-03T01:00:00Z");
      await server.platform.store.upsertCandles([...old, ...fresh].map(h4Bar));
      const marketData = marketDataOf(server.platform);
      const latest = await marketData.latestCandles("EURUSD", "H4", to, 7);
      const times = latest.map((candle) => new Date(candle.openTime).toISOString());
      // The window [01:00 2 June, 02:00 3 June] holds 8 rows: the 7 newest are the answer.
      expect(times.at(-1)).toBe("2026-06-03T01:00:00.000Z");
      expect(times).toHaveLength(7);
    } finally {
      await server.close();
    }
  });
});
