import { DEFAULT_INSTRUMENTS } from "@bourse/core";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CsvFormatError, parseCsvHeader, parseCsvLine, startCsvReplay } from "../src/feed/csv-replay.ts";
import { startFeed } from "../src/feed/index.ts";
import { marketDataOf } from "../src/market-data.ts";
import type { AcceptedQuote } from "../src/platform.ts";
import { startTestServer, type TestServer } from "./helpers.ts";

const instruments = new Map(DEFAULT_INSTRUMENTS.map((spec) => [spec.symbol, spec]));

let server: TestServer;
let directory: string;
const received: AcceptedQuote[] = [];
beforeAll(async () => {
  server = await startTestServer();
  directory = mkdtempSync(path.join(tmpdir(), "bourse-csv-"));
  server.platform.onQuote((quote) => received.push(quote));
});
afterAll(async () => {
  await server.close();
  rmSync(directory, { recursive: true, force: true });
});

function file(name: string, text: string): string {
  const target = path.join(directory, name);
  writeFileSync(target, text);
  return target;
}

describe("parsing", () => {
  it("reads the header in any order and a line into integers", () => {
    const columns = parseCsvHeader("symbol,ask,bid,time,bids");
    expect(columns).toEqual({ count: 5, symbol: 0, ask: 1, bid: 2, time: 3, bids: 4, asks: null });
    expect(parseCsvLine("EURUSD,1.08012,1.08000,1780401600000,1.08000:1.5;1.07990:3", columns, instruments)).toEqual({
      ok: true,
      tick: {
        time: 1780401600000,
        quote: {
          symbol: "EURUSD",
          bid: 108000,
          ask: 108012,
          bids: [
            { price: 108000, volume: 150 },
            { price: 107990, volume: 300 },
          ],
        },
      },
    });
    expect(() => parseCsvHeader("when,symbol,bid,ask")).toThrow(CsvFormatError);
  });

  it("says why a line is bad", () => {
    const columns = parseCsvHeader("time,symbol,bid,ask");
    const reason = (line: string) => {
      const result = parseCsvLine(line, columns, instruments);
      return result.ok ? null : result.reason;
    };
    expect(reason("2026-06-02T12:00:00Z,NOPE,1,2")).toMatch(/unknown symbol "NOPE"/);
    expect(reason("yesterday,EURUSD,1.08,1.09")).toMatch(/bad time/);
    // On 88438e0 an impossible date was read as the next month's and reported as time going back.
    expect(reason("2026-02-30T12:00:02Z,EURUSD,1.08,1.09")).toMatch(/bad time/);
    expect(reason("2026-06-02T12:00:00Z,EURUSD,1.080001,1.09")).toMatch(/bad bid/);
    expect(reason("2026-06-02T12:00:00Z,EURUSD,1.08,")).toMatch(/bad ask/);
    expect(reason("2026-06-02T12:00:00Z,EURUSD,1.09,1.08")).toMatch(/ask below bid/);
    expect(reason("2026-06-02T12:00:00Z,EURUSD,-1.08,1.08")).toMatch(/bad bid/);
    expect(reason("2026-06-02T12:00:00+02:00,EURUSD,1.08,1.0801")).toBeNull();
  });

  // Found by the audit of market data of 7 December: a line with a decimal comma was read with its cells shifted
  // (bid 1, ask 8500), replayed and traded: a stop loss closed at 1.00000; and epoch seconds were read as
  // milliseconds of January 1970, so the file replayed a thousand times too fast.
  it("refuses a line whose cells do not match the header, and epoch seconds", () => {
    const columns = parseCsvHeader("time,symbol,bid,ask");
    const reason = (line: string) => {
      const result = parseCsvLine(line, columns, instruments);
      return result.ok ? null : result.reason;
    };
    expect(reason("2026-06-02T12:00:00Z,EURUSD,1,08500,1,08510")).toBe(
      "6 cells where the header names 4 (a decimal comma, or a stray comma?)",
    );
    expect(reason("2026-06-02T12:00:00Z,EURUSD,1.08500,1.08510,extra")).toMatch(/5 cells where the header names 4/);
    expect(reason("2026-06-02T12:00:00Z,EURUSD,1.08500")).toMatch(/bad ask/);
    // A trailing comma on the lines, or on the header, is no cell (the review of 7 December: such files replayed
    // before the cell count).
    expect(reason("2026-06-02T12:00:00Z,EURUSD,1.08500,1.08510,")).toBeNull();
    expect(parseCsvHeader("time,symbol,bid,ask,").count).toBe(4);
    expect(reason("1717329600,EURUSD,1.08500,1.08510")).toMatch(/bad time "1717329600" \(ISO 8601 with a zone/);
    expect(reason("1717329600000,EURUSD,1.08500,1.08510")).toBeNull();
    // A header may name columns the replay does not read; its lines have as many cells.
    const wider = parseCsvHeader("time,symbol,bid,ask,volume");
    expect(parseCsvLine("2026-06-02T12:00:00Z,EURUSD,1.08500,1.08510,17", wider, instruments).ok).toBe(true);
  });

  // Found by the audit of 6 December: "1.08000:1:999" was read as 1 lot at 1.08000, and epoch times up to year
  // 33658 were taken, so one mistyped line made every later one "time goes back".
  it("refuses a level with more than price and lots, and a time past the end of year 9999", () => {
    const columns = parseCsvHeader("time,symbol,bid,ask,bids");
    const reason = (line: string) => {
      const result = parseCsvLine(line, columns, instruments);
      return result.ok ? null : result.reason;
    };
    expect(reason("1780401600000,EURUSD,1.08000,1.08012,1.08000:1:999")).toMatch(/bids\[0\] must be price:lots/);
    expect(reason("999999999999999,EURUSD,1.08000,1.08012,")).toMatch(/bad time/);
    expect(reason("253402300799999,EURUSD,1.08000,1.08012,")).toBeNull();
  });
});

describe("replay", () => {
  it("pushes a good file in order and reports bad lines by number, skipping them", async () => {
    received.length = 0;
    const reports: [number, string][] = [];
    const target = file(
      "ticks.csv",
      [
        "time,symbol,bid,ask",
        "2026-06-02T12:00:00.000Z,EURUSD,1.08000,1.08010",
        "2026-06-02T12:00:00.250Z,GBPUSD,1.27000,1.27012",
        "",
        "# a comment",
        "2026-06-02T12:00:00.500Z,NOPE,1.0,1.1",
        "1780401600600,EURUSD,1.08005,1.08013",
        "2026-06-02T12:00:00.700Z,EURUSD,abc,1.08013",
        "2026-06-02T12:00:00.100Z,EURUSD,1.08005,1.08013",
        "2026-06-02T12:00:00.800Z,USDJPY,155.120,155.130\r",
        "2026-06-02T12:00:00.900Z,USDJPY,155.125,155.135",
      ].join("\n"),
    );
    const replay = startCsvReplay(server.platform, target, {
      speed: Infinity,
      report: (line, why) => reports.push([line, why]),
    });
    const summary = await replay.done;
    expect(summary).toEqual({ lines: 8, pushed: 5, closed: 0, badLines: 3, stopped: false });
    expect(reports.map(([line]) => line)).toEqual([6, 8, 9]);
    expect(reports[0]![1]).toMatch(/unknown symbol/);
    expect(reports[1]![1]).toMatch(/bad bid/);
    expect(reports[2]![1]).toMatch(/time goes back/);
    expect(received.map((quote) => [quote.symbol, quote.bid, quote.ask])).toEqual([
      ["EURUSD", 108000, 108010],
      ["GBPUSD", 127000, 127012],
      ["EURUSD", 108005, 108013],
      ["USDJPY", 155120, 155130],
      ["USDJPY", 155125, 155135],
    ]);
    expect(server.platform.engine.quote("USDJPY")).toMatchObject({ bid: 155125, ask: 155135 });
    expect(marketDataOf(server.platform).lastQuote("EURUSD")).toMatchObject({ bid: 108005 });
  });

  it("waits the recorded spacing, and stops cleanly in the middle of a wait", async () => {
    received.length = 0;
    const target = file(
      "slow.csv",
      [
        "time,symbol,bid,ask",
        "2026-06-02T12:00:00Z,EURUSD,1.08000,1.08010",
        "2026-06-02T13:00:00Z,EURUSD,1.08100,1.08110",
      ].join("\n"),
    );
    const replay = startCsvReplay(server.platform, target, { speed: 1 });
    const deadline = Date.now() + 5000;
    while (received.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(received).toHaveLength(1);
    await replay.stop();
    // The stop may come before or after the reader took the second line (it then waits an hour to push it).
    const summary = await replay.done;
    expect(summary).toMatchObject({ pushed: 1, badLines: 0, stopped: true });
    expect([1, 2]).toContain(summary.lines);
    expect(received).toHaveLength(1);
  });

  // setTimeout fires at once past 2^31 − 1 ms: two ticks 38 days apart were pushed together.
  it("waits a gap longer than setTimeout can hold, instead of pushing at once", async () => {
    received.length = 0;
    const target = file(
      "gap.csv",
      [
        "time,symbol,bid,ask",
        "2026-06-02T12:00:00Z,EURUSD,1.08000,1.08010",
        "2026-07-10T12:00:00Z,EURUSD,1.08100,1.08110",
      ].join("\n"),
    );
    const replay = startCsvReplay(server.platform, target, { speed: 1 });
    const deadline = Date.now() + 5000;
    while (received.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(received).toHaveLength(1);
    await replay.stop();
    expect(await replay.done).toMatchObject({ pushed: 1, stopped: true });
  });

  it("replays at a speed: a 200 ms gap at ×10 waits about 20 ms", async () => {
    received.length = 0;
    const target = file(
      "fast.csv",
      [
        "time,symbol,bid,ask,asks",
        "1780401600000,EURGBP,0.85500,0.85512,",
        "1780401600200,EURGBP,0.85501,0.85513,0.85513:2;0.85520:4",
      ].join("\n"),
    );
    const started = performance.now();
    const summary = await startCsvReplay(server.platform, target, { speed: 10 }).done;
    const elapsed = performance.now() - started;
    expect(summary.pushed).toBe(2);
    expect(elapsed).toBeGreaterThanOrEqual(15);
    expect(elapsed).toBeLessThan(2000);
    expect(server.platform.engine.quote("EURGBP")!.asks).toEqual([
      { price: 85513, volume: 200 },
      { price: 85520, volume: 400 },
    ]);
  });

  it("refuses a file without a header, and a missing file, without stopping the server", async () => {
    const noHeader = startCsvReplay(server.platform, file("none.csv", "\n# nothing\n"), { speed: Infinity });
    await expect(noHeader.done).rejects.toThrow(/no header/);
    const badHeader = startCsvReplay(server.platform, file("bad.csv", "a,b,c\n1,2,3\n"), { speed: Infinity });
    await expect(badHeader.done).rejects.toThrow(CsvFormatError);
    const missing = startCsvReplay(server.platform, path.join(directory, "missing.csv"), { speed: Infinity });
    await expect(missing.done).rejects.toThrow(/ENOENT/);
    // startFeed with csv logs the failure and its stop still resolves.
    const stop = startFeed(
      server.platform,
      { kind: "csv", path: path.join(directory, "missing.csv") },
      { rate: 1, replaySpeed: Infinity },
    );
    await stop();
    expect(server.platform.ready).toBe(true);
  });

  it("counts the quotes of markets closed at the server's time as closed, not as bad lines, and pushes the others", async () => {
    // A server of its own: its clock goes to Saturday, and the platform's quote time never goes back.
    const weekend = await startTestServer();
    try {
      weekend.clock.set(Date.UTC(2026, 5, 6, 12, 0)); // Saturday: forex closed, crypto open
      const taken: AcceptedQuote[] = [];
      weekend.platform.onQuote((quote) => taken.push(quote));
      const reports: number[] = [];
      const target = file(
        "weekend.csv",
        [
          "time,symbol,bid,ask",
          "2026-06-06T12:00:00Z,EURUSD,1.08000,1.08010",
          "2026-06-06T12:00:01Z,BTCUSD,60000.00,60010.00",
          "2026-06-06T12:00:02Z,EURUSD,1.08001,1.08011",
        ].join("\n"),
      );
      const summary = await startCsvReplay(weekend.platform, target, {
        speed: Infinity,
        report: (line) => reports.push(line),
      }).done;
      expect(summary).toEqual({ lines: 3, pushed: 1, closed: 2, badLines: 0, stopped: false });
      expect(reports).toEqual([]);
      expect(taken.map((quote) => quote.symbol)).toEqual(["BTCUSD"]);
      expect(weekend.platform.engine.quote("EURUSD")).toBeUndefined();
    } finally {
      await weekend.close();
    }
  });

  it("reports an overlong line and goes on", async () => {
    received.length = 0;
    const reports: number[] = [];
    const target = file(
      "long.csv",
      [
        "time,symbol,bid,ask",
        `2026-06-02T12:00:00Z,EURUSD,1.08000,1.08010,${"x".repeat(70_000)}`,
        "2026-06-02T12:00:01Z,EURUSD,1.08001,1.08011",
      ].join("\n"),
    );
    const summary = await startCsvReplay(server.platform, target, {
      speed: Infinity,
      report: (line) => reports.push(line),
    }).done;
    expect(summary).toEqual({ lines: 2, pushed: 1, closed: 0, badLines: 1, stopped: false });
    expect(reports).toEqual([2]);
    expect(received.map((quote) => quote.bid)).toEqual([108001]);
  });
});
