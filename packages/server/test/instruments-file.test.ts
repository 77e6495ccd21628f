/**
 * The broker's own instruments (DESIGN.md section 3: "from a config file; a default set ships"): BOURSE_INSTRUMENTS_FILE.
 * Every server used to trade the built-in set, whatever the broker offered. The file is checked at start (each bad
 * entry named), `bourse instruments` prints the default set in the file's form, and a database refuses a start that
 * drops an instrument it ran with or changes its scale, since its journal and histories hold integers of that scale.
 */
import { ACCOUNT_CURRENCIES, DEFAULT_INSTRUMENTS, DEFAULT_INSTRUMENT_DEFINITIONS } from "@bourse/core";
import Database from "better-sqlite3";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ManualClock } from "../src/clock.ts";
import { ConfigError, loadServerConfig } from "../src/config.ts";
import { runCommandLine } from "../src/index.ts";
import { Channels, parseChannel } from "../src/pusher-protocol.ts";
import {
  InstrumentsFileError,
  checkConversions,
  defaultInstrumentsFile,
  instrumentFileEntry,
  parseInstruments,
  type InstrumentFileEntry,
} from "../src/instruments-file.ts";
import { call, pushQuote, signUp, startTestServer, tableObjects, TUESDAY_NOON } from "./helpers.ts";

const directories: string[] = [];
afterEach(() => {
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

function temporaryDirectory(): string {
  const directory = mkdtempSync(path.join(tmpdir(), "bourse-instruments-"));
  directories.push(directory);
  return directory;
}

const DEFAULT_ENTRIES = DEFAULT_INSTRUMENT_DEFINITIONS.map(instrumentFileEntry);
const EURUSD = DEFAULT_ENTRIES.find((entry) => entry.symbol === "EURUSD")!;

/** A broker's file: the default set, a raw-spread EURUSD with commission, and GBPUSD withdrawn. */
function brokerEntries(overrides: Partial<InstrumentFileEntry> = {}): InstrumentFileEntry[] {
  return [
    ...DEFAULT_ENTRIES.map((entry) =>
      entry.symbol === "GBPUSD" ? { ...entry, tradeMode: "DISABLED" as const } : entry,
    ),
    { ...EURUSD, symbol: "EURUSD.raw", description: "Euro vs US Dollar, raw spread", commission: "3.50", ...overrides },
  ];
}

function writeFile(directory: string, entries: unknown): string {
  const file = path.join(directory, "instruments.json");
  writeFileSync(file, JSON.stringify(entries));
  return file;
}

describe("the instruments file", () => {
  it("the default set printed as a file reads back as the default instruments, exactly", () => {
    expect(parseInstruments(defaultInstrumentsFile())).toEqual(DEFAULT_INSTRUMENTS);
  });

  it("refuses a bad entry and names it and its field", () => {
    const refusal = (entries: unknown): string => {
      try {
        parseInstruments(JSON.stringify(entries));
      } catch (error) {
        expect(error).toBeInstanceOf(InstrumentsFileError);
        return (error as Error).message;
      }
      throw new Error(`accepted ${JSON.stringify(entries)}`);
    };
    expect(refusal([])).toMatch(/^the file: .*1 to 1000 instrument definitions/);
    expect(refusal({ EURUSD })).toMatch(/^the file: /);
    expect(refusal([EURUSD, { ...EURUSD, spread: 2 }])).toMatch(/^entry 1.spread: Unexpected property/);
    expect(refusal([{ ...EURUSD, symbol: "EUR/USD" }])).toMatch(/^entry 0\.symbol: /);
    // Not a character of a Pusher channel name (quotes.{SYMBOL}), nor of the history's symbol filter.
    expect(refusal([{ ...EURUSD, symbol: "US30#" }])).toMatch(/^entry 0\.symbol: /);
    expect(refusal([{ ...EURUSD, base: "XYZ" }])).toMatch(/^entry 0\.base: /);
    expect(refusal([{ ...EURUSD, digits: 9 }])).toMatch(/^entry 0\.digits: /);
    expect(refusal([{ ...EURUSD, swapLong: -7.2 }])).toMatch(/^entry 0\.swapLong: /);
    expect(refusal([{ ...EURUSD, sessions: EURUSD.sessions.slice(1) }])).toMatch(/^entry 0\.sessions: /);
    expect(refusal([EURUSD, EURUSD])).toBe("entry 1 (EURUSD): the symbol is defined twice");
    expect(refusal([{ ...EURUSD, lots: { min: "1", max: "0.5", step: "0.01" } }])).toBe(
      "entry 0 (EURUSD): lots.max is below lots.min",
    );
    expect(refusal([{ ...EURUSD, lots: { min: "0.015", max: "100", step: "0.01" } }])).toBe(
      "entry 0 (EURUSD): lots.min and lots.max must be whole steps of lots.step",
    );
    expect(refusal([{ ...EURUSD, marginRatePercent: "0" }])).toBe(
      "entry 0 (EURUSD): marginRatePercent must be above 0",
    );
    expect(refusal([{ ...EURUSD, swapShort: "2.1234" }])).toMatch(/^entry 0\.swapShort: /);
    expect(refusal([{ ...EURUSD, commission: "0.005" }])).toBe(
      "entry 0 (EURUSD): commission 0.005 has more than 2 decimals",
    );
    const sessions = [...EURUSD.sessions];
    sessions[2] = ["08:00-12:00", "11:00-14:00"];
    expect(refusal([{ ...EURUSD, sessions }])).toBe(
      "entry 0 (EURUSD): sessions[2]: 11:00-14:00 overlaps or touches the interval before it",
    );
    sessions[2] = ["12:00-08:00"];
    expect(refusal([{ ...EURUSD, sessions }])).toBe("entry 0 (EURUSD): sessions[2]: 12:00-08:00 ends before it starts");
  });

  it("takes the sessions' time zone by its IANA name, UTC when absent, and refuses one it does not know by name", () => {
    const [chicago] = parseInstruments(JSON.stringify([{ ...EURUSD, sessionTimeZone: "America/Chicago" }]));
    expect(chicago?.sessionTimeZone).toBe("America/Chicago");
    const { sessionTimeZone: _, ...withoutZone } = EURUSD;
    expect(parseInstruments(JSON.stringify([withoutZone]))[0]?.sessionTimeZone).toBe("UTC");
    for (const name of ["Europe/Frankfurt", "utc", "EST"])
      expect(() => parseInstruments(JSON.stringify([{ ...EURUSD, sessionTimeZone: name }]))).toThrow(
        new InstrumentsFileError(
          `entry 0 (EURUSD): sessionTimeZone "${name}" is not one Bourse knows: one of UTC, America/New_York, ` +
            "America/Chicago, Europe/London, Europe/Berlin, Asia/Tokyo, Australia/Sydney (IANA names: Frankfurt's is " +
            "Europe/Berlin)",
        ),
      );
    expect(() => parseInstruments(JSON.stringify([{ ...EURUSD, sessionTimeZone: 1 }]))).toThrow(
      /^entry 0\.sessionTimeZone: Expected string/,
    );
  });

  it("is read by the configuration; a bad one stops the start with a ConfigError naming the setting", () => {
    const directory = temporaryDirectory();
    const file = writeFile(directory, brokerEntries());
    const config = loadServerConfig({ BOURSE_DATA_DIR: directory, BOURSE_INSTRUMENTS_FILE: file });
    expect(config.instruments.map((instrument) => instrument.symbol)).toContain("EURUSD.raw");
    expect(config.instruments.find((instrument) => instrument.symbol === "EURUSD.raw")?.commissionPerLot).toBe(350);
    expect(loadServerConfig({ BOURSE_DATA_DIR: directory }).instruments).toBe(DEFAULT_INSTRUMENTS);
    const bad = writeFile(temporaryDirectory(), [{ ...EURUSD, digits: -1 }]);
    expect(() => loadServerConfig({ BOURSE_DATA_DIR: directory, BOURSE_INSTRUMENTS_FILE: bad })).toThrow(ConfigError);
    expect(() => loadServerConfig({ BOURSE_DATA_DIR: directory, BOURSE_INSTRUMENTS_FILE: bad })).toThrow(
      /^BOURSE_INSTRUMENTS_FILE: .*instruments\.json: entry 0\.digits: /,
    );
  });

  // Found by the review of 7 December (third session): a file whose money no instrument converts into the demo
  // accounts' currency started, and every order of it answered NO_QUOTES, for good.
  it("refuses instruments whose money cannot be converted into the demo accounts' currency", () => {
    const directory = temporaryDirectory();
    const eurjpy = DEFAULT_ENTRIES.find((entry) => entry.symbol === "EURJPY")!;
    const file = writeFile(temporaryDirectory(), [eurjpy]);
    expect(() => loadServerConfig({ BOURSE_DATA_DIR: directory, BOURSE_INSTRUMENTS_FILE: file })).toThrow(
      "BOURSE_INSTRUMENTS_FILE: EURJPY: no instrument converts JPY into USD, the demo accounts' currency",
    );
    // In JPY accounts, EURJPY's yen need no conversion, and its euros convert through EURJPY itself.
    const inYen = loadServerConfig({
      BOURSE_DATA_DIR: directory,
      BOURSE_INSTRUMENTS_FILE: file,
      BOURSE_DEMO_CURRENCY: "JPY",
    });
    expect(inYen.instruments.map((instrument) => instrument.symbol)).toEqual(["EURJPY"]);
    // The default set converts into every currency an account may have.
    for (const currency of ACCOUNT_CURRENCIES)
      expect(() => checkConversions(DEFAULT_INSTRUMENTS, currency)).not.toThrow();
  });

  it("`bourse instruments` prints the default set as a file", async () => {
    const lines: string[] = [];
    const code = await runCommandLine(
      ["instruments"],
      { info: (line) => lines.push(line), error: () => undefined },
      {},
    );
    expect(code).toBe(0);
    expect(parseInstruments(lines.join("\n"))).toEqual(DEFAULT_INSTRUMENTS);
  });
});

describe("an account in a currency the instruments cannot convert into", () => {
  // Found by the audit of accounts of 7 December (third session): PUT /api/v1/accounts opened and funded it, and
  // every order of it then answered NO_QUOTES, for good.
  it("is refused INVALID_CURRENCY when opened; the currencies the instruments convert into are taken", async () => {
    const eurusd = DEFAULT_ENTRIES.filter((entry) => entry.symbol === "EURUSD");
    const server = await startTestServer({
      environment: { BOURSE_INSTRUMENTS_FILE: writeFile(temporaryDirectory(), eurusd) },
    });
    try {
      const user = await signUp(server);
      const open = (currency: string) =>
        call(server, "PUT", "/api/v1/accounts", { token: user.token, body: { currency } });
      const yen = await open("JPY");
      expect(yen.status).toBe(400);
      expect(yen.body).toEqual({ error: "INVALID_CURRENCY", message: expect.stringContaining("USD, EUR") });
      expect((await open("EUR")).status).toBe(200);
      expect((await call(server, "GET", "/api/v1/accounts", { token: user.token })).body.rows).toHaveLength(2);
    } finally {
      await server.close();
    }
  });
});

describe("a symbol with dots or dashes", () => {
  // Found by the review of 7 December (third session): the Pusher endpoint took letters, digits and `_` only, so the
  // session named channels such as quotes.EURUSD.raw that a subscription then refused as InvalidChannel.
  it("names Pusher channels that read back as the same symbol and timeframe", () => {
    for (const symbol of ["EURUSD.raw", "BRENT-F", "US_30", "X.M1"]) {
      expect(parseChannel(Channels.quotes(symbol))).toEqual({ kind: "public", stream: "quotes", symbol });
      expect(parseChannel(Channels.depth(symbol))).toEqual({ kind: "public", stream: "depth", symbol });
      expect(parseChannel(Channels.candles(symbol, "H1"))).toEqual({
        kind: "public",
        stream: "candles",
        symbol,
        timeframe: "H1",
      });
    }
  });
});

describe("the scales a database keeps", () => {
  // Found by the review of 7 December (third session): a database from before the scales were kept had none, so the
  // first start with a file took the file's word for what the journal's integers mean (EURUSD at 4 digits read an
  // open price of 1.08440 as 10.844), and then refused the right file.
  it("a database that ran before scales were kept is taken to have run with the default set", async () => {
    const dataDirectory = temporaryDirectory();
    const first = await startTestServer({ dataDirectory, clock: new ManualClock(TUESDAY_NOON) });
    await signUp(first);
    await first.close();
    // As the database was before migration 7.
    const database = new Database(path.join(dataDirectory, "platform.sqlite"));
    database.exec("DROP TABLE instrument_scales; DELETE FROM platform_migrations WHERE version = 7");
    database.close();
    const fourDigits = DEFAULT_ENTRIES.map((entry) => (entry.symbol === "EURUSD" ? { ...entry, digits: 4 } : entry));
    await expect(
      startTestServer({
        dataDirectory,
        environment: { BOURSE_INSTRUMENTS_FILE: writeFile(temporaryDirectory(), fourDigits) },
      }),
    ).rejects.toThrow(/EURUSD: digits was 5, is now 4/);
    const again = await startTestServer({ dataDirectory });
    await again.close();
  });

  it("a start refused before it recovered (another server holds the journal) keeps no scale", async () => {
    const dataDirectory = temporaryDirectory();
    const running = await startTestServer({ dataDirectory });
    try {
      await expect(
        startTestServer({
          dataDirectory,
          environment: { BOURSE_INSTRUMENTS_FILE: writeFile(temporaryDirectory(), brokerEntries({ digits: 3 })) },
        }),
      ).rejects.toThrow(/another Bourse engine/);
    } finally {
      await running.close();
    }
    const later = await startTestServer({
      dataDirectory,
      environment: { BOURSE_INSTRUMENTS_FILE: writeFile(temporaryDirectory(), brokerEntries()) },
    });
    expect(later.platform.instruments.get("EURUSD.raw")?.digits).toBe(5);
    await later.close();
  });
});

describe("a server with the broker's instruments", () => {
  it("lists and trades the file's instruments, refuses a withdrawn one, and keeps their scales across restarts", async () => {
    const dataDirectory = temporaryDirectory();
    const fileDirectory = temporaryDirectory();
    const start = (entries: InstrumentFileEntry[]) =>
      startTestServer({
        dataDirectory,
        clock: new ManualClock(TUESDAY_NOON),
        environment: { BOURSE_INSTRUMENTS_FILE: writeFile(fileDirectory, entries) },
      });

    const server = await start(brokerEntries());
    let login: number;
    try {
      const user = await signUp(server);
      login = user.login;
      const market = await call(server, "GET", "/api/v1/market", { token: user.token });
      expect(tableObjects(market.body).map((row) => row.symbol)).toContain("EURUSD.raw");
      await pushQuote(server, "EURUSD.raw", "1.08430", "1.08431");
      // The margin (in euros) converts at the first EUR/USD instrument of the file: EURUSD.
      await pushQuote(server, "EURUSD", "1.08430", "1.08440");
      const order = await call(server, "POST", `/api/v1/accounts/${user.login}/orders`, {
        token: user.token,
        body: { symbol: "EURUSD.raw", side: "BUY", type: "MARKET", volume: 1 },
      });
      expect(order.status, JSON.stringify(order.body)).toBe(200);
      const account = await call(server, "GET", `/api/v1/accounts/${user.login}`, { token: user.token });
      // The file's commission: 3.50 USD a lot a side.
      expect(account.body.data.balance).toBe(10000 - 3.5);
      await pushQuote(server, "GBPUSD", "1.27000", "1.27010");
      const withdrawn = await call(server, "POST", `/api/v1/accounts/${user.login}/orders`, {
        token: user.token,
        body: { symbol: "GBPUSD", side: "BUY", type: "MARKET", volume: 0.1 },
      });
      expect(withdrawn.status).toBe(400);
      const spec = await call(server, "GET", "/api/v1/market/GBPUSD", { token: user.token });
      expect(spec.body.data).toMatchObject({ tradeMode: "DISABLED", status: "DISABLED" });
    } finally {
      await server.close();
    }

    // A changed scale or a dropped instrument: refused before recovery, naming the symbol and the field.
    await expect(start(brokerEntries({ digits: 4 }))).rejects.toThrow(
      /EURUSD\.raw: digits was 5, is now 4 \(a new scale needs a new symbol\)/,
    );
    await expect(start(DEFAULT_ENTRIES)).rejects.toThrow(/EURUSD\.raw is missing/);

    // Anything else may change: a new commission, and the position is still there.
    const again = await start(brokerEntries({ commission: "2.00" }));
    try {
      expect(again.platform.instruments.get("EURUSD.raw")?.commissionPerLot).toBe(200);
      const kept = [...again.platform.engine.state.positions.values()].filter(
        (position) => position.accountId === login,
      );
      expect(kept.map((position) => [position.symbol, position.volume])).toEqual([["EURUSD.raw", 100]]);
    } finally {
      await again.close();
    }
  });
});
