import { describe, expect, it } from "vitest";
import {
  CurrencyConverter,
  DEFAULT_INSTRUMENTS,
  convertAmount,
  PriceHeap,
  isSessionOpen,
  weekdayOf,
} from "../src/index.ts";

describe("default instruments", () => {
  it("ships the set a broker needs on day one, with consistent integer specifications", () => {
    const symbols = DEFAULT_INSTRUMENTS.map((instrument) => instrument.symbol);
    for (const symbol of [
      "EURUSD",
      "GBPUSD",
      "USDJPY",
      "USDCHF",
      "AUDUSD",
      "USDCAD",
      "EURJPY",
      "XAUUSD",
      "XAGUSD",
      "US500",
      "NAS100",
      "GER40",
      "USOIL",
      "BTCUSD",
      "ETHUSD",
    ]) {
      expect(symbols).toContain(symbol);
    }
    expect(new Set(symbols).size).toBe(symbols.length);
    for (const instrument of DEFAULT_INSTRUMENTS) {
      for (const value of [
        instrument.digits,
        instrument.contractSize,
        instrument.volumeMin,
        instrument.volumeMax,
        instrument.volumeStep,
        instrument.marginRatePpm,
        instrument.swapLongMilliPoints,
        instrument.swapShortMilliPoints,
        instrument.commissionPerLot,
      ]) {
        expect(Number.isSafeInteger(value)).toBe(true);
      }
      expect(instrument.volumeMin % instrument.volumeStep).toBe(0);
      expect(instrument.volumeMax).toBeGreaterThan(instrument.volumeMin);
      expect(instrument.marginRatePpm).toBeGreaterThan(0);
    }
  });

  it("has realistic digits and contract sizes", () => {
    const spec = (symbol: string) => DEFAULT_INSTRUMENTS.find((instrument) => instrument.symbol === symbol);
    expect(spec("EURUSD")).toMatchObject({
      digits: 5,
      contractSize: 100_000,
      volumeMin: 1,
      volumeStep: 1,
      volumeDigits: 2,
      marginMode: "FOREX",
      marginCurrency: "EUR",
      profitCurrency: "USD",
    });
    expect(spec("USDJPY")).toMatchObject({ digits: 3, profitCurrency: "JPY", marginCurrency: "USD" });
    expect(spec("XAUUSD")).toMatchObject({ digits: 2, contractSize: 100, marginCurrency: "XAU" });
    expect(spec("US500")).toMatchObject({ marginMode: "CFD", marginRatePpm: 50_000, marginCurrency: "USD" });
    expect(spec("GER40")).toMatchObject({ profitCurrency: "EUR" });
    expect(spec("EURUSD")?.swapLongMilliPoints).toBe(-7200);
  });
});

describe("sessions", () => {
  const eurusd = DEFAULT_INSTRUMENTS.find((instrument) => instrument.symbol === "EURUSD")!;
  const ger40 = DEFAULT_INSTRUMENTS.find((instrument) => instrument.symbol === "GER40")!;
  const btcusd = DEFAULT_INSTRUMENTS.find((instrument) => instrument.symbol === "BTCUSD")!;

  it("counts weekdays from the epoch", () => {
    expect(weekdayOf(Date.UTC(2026, 5, 2))).toBe(new Date(Date.UTC(2026, 5, 2)).getUTCDay());
    expect(weekdayOf(Date.UTC(1969, 11, 31, 23))).toBe(3);
  });

  it("forex trades from Sunday 17:00 to Friday 17:00 New York: 21:00 UTC in June, 22:00 UTC in December", () => {
    expect(isSessionOpen(eurusd, Date.UTC(2026, 5, 7, 20, 59))).toBe(false); // Sunday
    expect(isSessionOpen(eurusd, Date.UTC(2026, 5, 7, 21, 0))).toBe(true);
    expect(isSessionOpen(eurusd, Date.UTC(2026, 5, 5, 20, 59))).toBe(true); // Friday
    expect(isSessionOpen(eurusd, Date.UTC(2026, 5, 5, 21, 0))).toBe(false);
    expect(isSessionOpen(eurusd, Date.UTC(2026, 5, 6, 12, 0))).toBe(false); // Saturday
    expect(isSessionOpen(eurusd, Date.UTC(2026, 11, 6, 21, 59))).toBe(false); // Sunday
    expect(isSessionOpen(eurusd, Date.UTC(2026, 11, 6, 22, 0))).toBe(true);
    expect(isSessionOpen(eurusd, Date.UTC(2026, 11, 4, 21, 59))).toBe(true); // Friday
    expect(isSessionOpen(eurusd, Date.UTC(2026, 11, 4, 22, 0))).toBe(false);
  });

  it("metals, US indices and oil keep CME's hours in Chicago, GER40 08:00-22:00 Berlin, and crypto never closes", () => {
    for (const symbol of ["XAUUSD", "XAGUSD", "US500", "NAS100", "USOIL"])
      expect(DEFAULT_INSTRUMENTS.find((instrument) => instrument.symbol === symbol)).toMatchObject({
        sessionTimeZone: "America/Chicago",
      });
    const gold = DEFAULT_INSTRUMENTS.find((instrument) => instrument.symbol === "XAUUSD")!;
    // The daily break, 16:00-17:00 Chicago: 21:00-22:00 UTC in June, 22:00-23:00 UTC in December.
    expect(isSessionOpen(gold, Date.UTC(2026, 5, 2, 20, 59))).toBe(true);
    expect(isSessionOpen(gold, Date.UTC(2026, 5, 2, 21, 0))).toBe(false);
    expect(isSessionOpen(gold, Date.UTC(2026, 5, 2, 22, 0))).toBe(true);
    expect(isSessionOpen(gold, Date.UTC(2026, 11, 1, 21, 59))).toBe(true);
    expect(isSessionOpen(gold, Date.UTC(2026, 11, 1, 22, 0))).toBe(false);
    expect(isSessionOpen(gold, Date.UTC(2026, 11, 1, 23, 0))).toBe(true);
    // GER40: 06:00-20:00 UTC in June, 07:00-21:00 UTC in December.
    expect(isSessionOpen(ger40, Date.UTC(2026, 5, 2, 5, 59))).toBe(false);
    expect(isSessionOpen(ger40, Date.UTC(2026, 5, 2, 6, 0))).toBe(true);
    expect(isSessionOpen(ger40, Date.UTC(2026, 5, 2, 19, 59))).toBe(true);
    expect(isSessionOpen(ger40, Date.UTC(2026, 5, 2, 20, 0))).toBe(false);
    expect(isSessionOpen(ger40, Date.UTC(2026, 11, 1, 6, 59))).toBe(false);
    expect(isSessionOpen(ger40, Date.UTC(2026, 11, 1, 7, 0))).toBe(true);
    expect(isSessionOpen(ger40, Date.UTC(2026, 11, 1, 20, 59))).toBe(true);
    expect(isSessionOpen(ger40, Date.UTC(2026, 11, 1, 21, 0))).toBe(false);
    expect(isSessionOpen(btcusd, Date.UTC(2026, 5, 6, 3, 0))).toBe(true);
  });
});

describe("currency conversion paths", () => {
  const converter = new CurrencyConverter(DEFAULT_INSTRUMENTS);
  it("uses a direct pair, an inverse pair, or goes through USD", () => {
    expect(converter.symbolsFor("EUR", "USD")).toEqual(["EURUSD"]);
    expect(converter.symbolsFor("USD", "EUR")).toEqual(["EURUSD"]);
    expect(converter.symbolsFor("JPY", "EUR")).toEqual(["EURJPY"]);
    expect(converter.symbolsFor("JPY", "GBP")).toEqual(["USDJPY", "GBPUSD"]);
    expect(converter.symbolsFor("USD", "USD")).toEqual([]);
  });

  it("multiplies by the bid of a direct pair and divides by the ask of an inverse pair", () => {
    const quotes = (symbol: string) => (symbol === "EURUSD" ? { bid: 108430, ask: 108440 } : undefined);
    expect(converter.rate("EUR", "USD", quotes)).toEqual({ factors: [108430], divisors: [100000] });
    expect(converter.rate("USD", "EUR", quotes)).toEqual({ factors: [100000], divisors: [108440] });
    expect(converter.rate("JPY", "EUR", quotes)).toBeNull();
  });

  it("converts an amount between minor units with the CONVERSION rule (half up)", () => {
    const quotes = (symbol: string) => (symbol === "EURUSD" ? { bid: 108430, ask: 108440 } : undefined);
    // 100.00 EUR × 1.08430 = 108.43 USD exactly.
    expect(convertAmount(10_000, "EUR", "USD", converter.rate("EUR", "USD", quotes)!)).toBe(10_843);
    // 100.00 USD / 1.08440 = 92.2168… EUR → 92.22; 1 cent / 1.0844 = 0.922… → 1 cent (half up).
    expect(convertAmount(10_000, "USD", "EUR", converter.rate("USD", "EUR", quotes)!)).toBe(9_222);
    expect(convertAmount(1, "USD", "EUR", converter.rate("USD", "EUR", quotes)!)).toBe(1);
    // JPY has no minor unit: 1.00 USD at USDJPY bid 150.230 = 150 yen (150.23 rounds down).
    const yen = (symbol: string) => (symbol === "USDJPY" ? { bid: 150230, ask: 150250 } : undefined);
    expect(convertAmount(100, "USD", "JPY", converter.rate("USD", "JPY", yen)!)).toBe(150);
  });
});

describe("price heap", () => {
  it("pops every reached price best first, ties by id, and skips stale entries", () => {
    const versions = new Map<number, number>([
      [1, 1],
      [2, 1],
      [3, 1],
      [4, 2],
    ]);
    const heap = new PriceHeap("MAX", (id, version) => versions.get(id) === version);
    heap.push(100, 1, 1);
    heap.push(105, 3, 1);
    heap.push(105, 2, 1);
    heap.push(110, 4, 1); // stale: its owner is at version 2
    heap.push(90, 4, 2);
    const popped: number[] = [];
    heap.popReached(100, popped);
    expect(popped).toEqual([2, 3, 1]);
    expect(heap.peekPrice()).toBe(90);
  });

  it("compacts when stale entries outnumber live ones", () => {
    const live = new Set<number>();
    const heap = new PriceHeap("MIN", (id) => live.has(id));
    for (let id = 0; id < 1000; id++) {
      live.add(id);
      heap.push(id, id, 0);
    }
    for (let id = 0; id < 900; id++) {
      live.delete(id);
      heap.noteStale();
    }
    expect(heap.size).toBeLessThan(1000);
    expect(heap.peekPrice()).toBe(900);
  });
});
