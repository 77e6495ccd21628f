/**
 * Settings that sign-up depends on are checked when the configuration is read. On 655e7b2 BOURSE_DEMO_BALANCE was
 * passed through as text and read only at each sign-up: "abc" (or "12.345" in USD) started a server whose every
 * POST /api/v1/signup answered 500 after saving the user, and a demo leverage the engine refuses did the same.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, ENVIRONMENT_SETTINGS, loadServerConfig, unknownSettings } from "../src/config.ts";

const dataDirectory = mkdtempSync(join(tmpdir(), "bourse-config-test-"));
const load = (settings: Record<string, string>) =>
  loadServerConfig({ BOURSE_DATA_DIR: dataDirectory, BOURSE_CONFIG: "", ...settings });

describe("the demo account settings", () => {
  it("accept amounts the demo currency can hold, up to the engine's money bound", () => {
    expect(load({}).demoBalance).toBe("10000");
    expect(load({ BOURSE_DEMO_BALANCE: "0" }).demoBalance).toBe("0");
    expect(load({ BOURSE_DEMO_BALANCE: "2500.75" }).demoBalance).toBe("2500.75");
    expect(load({ BOURSE_DEMO_BALANCE: "100000000000" }).demoBalance).toBe("100000000000");
    expect(load({ BOURSE_DEMO_BALANCE: "5000", BOURSE_DEMO_CURRENCY: "JPY" }).demoCurrency).toBe("JPY");
  });

  it.each([
    ["abc", "USD"],
    ["-5", "USD"],
    ["12.345", "USD"],
    ["1e9", "USD"],
    [" 10", "USD"],
    ["100000000000.01", "USD"],
    ["10.5", "JPY"],
  ])("refuse BOURSE_DEMO_BALANCE=%j in %s at start, naming the setting", (balance, currency) => {
    expect(() => load({ BOURSE_DEMO_BALANCE: balance, BOURSE_DEMO_CURRENCY: currency })).toThrow(ConfigError);
    expect(() => load({ BOURSE_DEMO_BALANCE: balance, BOURSE_DEMO_CURRENCY: currency })).toThrow(
      /BOURSE_DEMO_BALANCE must be an amount from 0 to /,
    );
  });

  it("refuse a currency accounts cannot hold and a leverage the engine refuses", () => {
    expect(() => load({ BOURSE_DEMO_CURRENCY: "XYZ" })).toThrow(/BOURSE_DEMO_CURRENCY must be one of USD, EUR/);
    expect(() => load({ BOURSE_DEMO_LEVERAGE: "5000" })).toThrow(
      /BOURSE_DEMO_LEVERAGE must be an integer from 1 to 1000/,
    );
    expect(load({ BOURSE_DEMO_LEVERAGE: "1000" }).demoLeverage).toBe(1000);
  });
});

describe("the configuration file", () => {
  // On c54cc5e a list or an object was read as its text.
  it("refuses a setting that is a list or an object, naming it", () => {
    const file = join(dataDirectory, "bourse.config.json");
    for (const [content, variable] of [
      [{ host: {} }, "BOURSE_HOST"],
      [{ dataDir: ["a"] }, "BOURSE_DATA_DIR"],
      [{ port: [8080] }, "BOURSE_PORT"],
    ] as const) {
      writeFileSync(file, JSON.stringify(content));
      expect(() => loadServerConfig({ BOURSE_CONFIG: file })).toThrow(
        new RegExp(`setting for ${variable} must be a string or a number`),
      );
    }
    writeFileSync(file, JSON.stringify({ dataDir: dataDirectory, port: 8181, host: "0.0.0.0" }));
    expect(loadServerConfig({ BOURSE_CONFIG: file })).toMatchObject({ port: 8181, host: "0.0.0.0" });
  });
});

// A misspelt setting was ignored in silence: BOURSE_DATABSE_URL ran the server on SQLite in ./data instead of the
// database it named. `bourse start` now warns of each BOURSE_* variable no setting reads.
describe("unknown settings", () => {
  it("names each BOURSE_* variable no setting reads, with the one it most likely means, and leaves the tooling's alone", () => {
    expect(
      unknownSettings({
        BOURSE_DATABSE_URL: "postgres://db/prod",
        BOURSE_NATS_URL: "nats://x",
        BOURSE_PORT: "8080",
        BOURSE_TEST_PG_URL: "postgres://test",
        BOURSE_BENCH_HTTP_SECONDS: "5",
        BOURSE_CRASH_CYCLES: "50",
        PATH: "/usr/bin",
      }),
    ).toEqual([
      { name: "BOURSE_DATABSE_URL", meant: "BOURSE_DATABASE_URL" },
      { name: "BOURSE_NATS_URL", meant: null },
    ]);
  });

  it("every setting the server reads is documented in the README", () => {
    const readme = readFileSync(new URL("../../../README.md", import.meta.url), "utf8");
    for (const name of ENVIRONMENT_SETTINGS) expect(readme, name).toContain(name);
  });
});
