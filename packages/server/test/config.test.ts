/**
 * Settings that sign-up depends on are checked when the configuration is read. On 655e7b2 BOURSE_DEMO_BALANCE was
 * passed through as text and read only at each sign-up: "abc" (or "12.345" in USD) started a server whose every
 * POST /api/v1/signup answered 500 after saving the user, and a demo leverage the engine refuses did the same.
 */
import { chmodSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  ConfigError,
  ENVIRONMENT_SETTINGS,
  dataDirectoryWarning,
  loadServerConfig,
  notWritableError,
  unknownSettings,
} from "../src/config.ts";
import { describeDatabase } from "../src/settings.ts";

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

describe("BOURSE_MAX_QUOTE_AGE_SECONDS", () => {
  it("is 300 by default, 0 for no limit, and refuses a negative or fractional value", () => {
    expect(load({}).maxQuoteAgeSeconds).toBe(300);
    expect(load({ BOURSE_MAX_QUOTE_AGE_SECONDS: "0" }).maxQuoteAgeSeconds).toBe(0);
    expect(() => load({ BOURSE_MAX_QUOTE_AGE_SECONDS: "-1" })).toThrow(ConfigError);
    expect(() => load({ BOURSE_MAX_QUOTE_AGE_SECONDS: "1.5" })).toThrow(
      /BOURSE_MAX_QUOTE_AGE_SECONDS must be an integer from 0 to 604800/,
    );
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

  // Found by the audit of security and operations of 7 December (third session): JSON.parse's message quotes the
  // text around the mistake, and a mistake beside a secret printed part of it.
  it("says a file is not JSON (and where, when the parser says), without quoting its text", () => {
    const file = join(dataDirectory, "broken.config.json");
    writeFileSync(file, '{"port": 8080,\n "jwtSecret": TOPSECRET-jwt-value}');
    expect(() => loadServerConfig({ BOURSE_CONFIG: file })).toThrow(ConfigError);
    expect(() => loadServerConfig({ BOURSE_CONFIG: file })).toThrow(
      /is not valid JSON( \(at line \d+, column \d+\))?$/,
    );
    expect(() => loadServerConfig({ BOURSE_CONFIG: file })).not.toThrow(/TOPSECRET/);
  });
});

// Found by a read of the README against the server: flat camelCase keys such as `automationPort` (as the README
// says) and misspelt ones such as `prot` were ignored in silence; BOURSE_FEED_RATE had no file key.
describe("the configuration file's keys", () => {
  const file = join(dataDirectory, "keys.config.json");
  const loadFile = (content: Record<string, unknown>, environment: Record<string, string> = {}) => {
    writeFileSync(file, JSON.stringify({ dataDir: dataDirectory, ...content }));
    return loadServerConfig({ BOURSE_CONFIG: file, ...environment });
  };

  it("takes every setting by its name in camelCase, and the first nested names", () => {
    const config = loadFile({
      databaseConnectTimeoutSeconds: 5,
      signup: "closed",
      automationPort: 18086,
      automationRateLimitPerSecond: 7,
      apiKeyRefusalsPerSecond: 9,
      pusherAppKey: "flatkey",
      feedRate: 2.5,
      feedReplaySpeed: "max",
      trustProxy: ["127.0.0.1"],
    });
    expect(config).toMatchObject({
      storage: { databaseConnectTimeoutSeconds: 5 },
      signup: "closed",
      automationPort: 18086,
      automationRateLimitPerSecond: 7,
      apiKeyRefusalsPerSecond: 9,
      pusherAppKey: "flatkey",
      feedTuning: { rate: 2.5, replaySpeed: Infinity },
      trustedProxies: ["127.0.0.1"],
    });
    expect(
      loadFile({ automation: { port: 18087, refusalsPerSecond: 4 }, pusher: { appKey: "nestedkey" } }),
    ).toMatchObject({ automationPort: 18087, apiKeyRefusalsPerSecond: 4, pusherAppKey: "nestedkey" });
    // The environment wins over either.
    expect(loadFile({ automationPort: 18086 }, { BOURSE_AUTOMATION_PORT: "18090" }).automationPort).toBe(18090);
  });

  it("refuses a key it does not know, naming the nearest one", () => {
    expect(() => loadFile({ prot: 1 })).toThrow(ConfigError);
    expect(() => loadFile({ prot: 1 })).toThrow(/unknown key "prot" \(did you mean "port"\?\)/);
    expect(() => loadFile({ automation: { prot: 1 } })).toThrow(
      /unknown key "automation.prot" \(automation takes port, rateLimitPerSecond, refusalsPerSecond\)/,
    );
    expect(() => loadFile({ pusher: "x" })).toThrow(/"pusher" must be an object/);
    // Settings of the environment alone are not file keys.
    expect(() => loadFile({ url: "http://x" })).toThrow(/unknown key "url"/);
    // The file's own keys (comments, a schema) are left alone.
    expect(loadFile({ _comment: "staging", $schema: "./schema.json", port: 8181 }).port).toBe(8181);
  });
});

describe("settings checked at start", () => {
  it("refuses a database URL of another scheme, without printing its password", () => {
    expect(() => load({ BOURSE_DATABASE_URL: "mysql://user:secret@db/x" })).toThrow(ConfigError);
    expect(() => load({ BOURSE_DATABASE_URL: "mysql://user:secret@db/x" })).toThrow(
      /BOURSE_DATABASE_URL must be a postgres:\/\/ \(or postgresql:\/\/\) URL, or the path of a SQLite file, got "mysql:\/\/\*\*\*@db\/x"/,
    );
    expect(load({ BOURSE_DATABASE_URL: "postgresql://postgres@127.0.0.1/test" }).storage.databaseUrl).toBe(
      "postgresql://postgres@127.0.0.1/test",
    );
    expect(load({ BOURSE_DATABASE_URL: join(dataDirectory, "one.sqlite") }).storage.databaseUrl).toBe(
      join(dataDirectory, "one.sqlite"),
    );
  });

  // Found by the audit of security and operations of 7 December (third session): the data directory was made with the
  // default mode (world-readable, as were the databases in it: emails, password hashes, balances), and a password in
  // a PostgreSQL URL's query string was printed at every start.
  it("makes the data directory readable by its owner alone, and warns of one others can read", () => {
    const directory = join(mkdtempSync(join(tmpdir(), "bourse-config-mode-")), "data");
    loadServerConfig({ BOURSE_DATA_DIR: directory, BOURSE_CONFIG: "" });
    expect(statSync(directory).mode & 0o777).toBe(0o700);
    expect(dataDirectoryWarning(directory)).toBeNull();
    chmodSync(directory, 0o755);
    expect(dataDirectoryWarning(directory)).toBe(
      `the data directory ${directory} can be read by others than its owner (mode 755): it holds the secrets and the databases; chmod 700 it`,
    );
  });

  it("describes a PostgreSQL database without any password, in the user part or the query", () => {
    expect(describeDatabase("postgres://bob:secret@db:5432/bourse")).toBe(
      "PostgreSQL postgres://bob:***@db:5432/bourse",
    );
    expect(describeDatabase("postgres://bob@db/bourse?password=secret&sslpassword=key&sslmode=require")).toBe(
      "PostgreSQL postgres://bob@db/bourse?password=***&sslpassword=***&sslmode=require",
    );
    // Found by the review of 7 December (third session): an encoded name, and a second value, which pg takes.
    for (const url of [
      "postgres://bob@db/bourse?pass%77ord=secret",
      "postgres://bob@db/bourse?password=a&password=secret",
    ])
      expect(describeDatabase(url)).not.toContain("secret");
  });

  it("refuses a data directory that cannot be created, at once (Node's recursive mkdir never returned under /proc)", () => {
    expect(() => load({ BOURSE_DATA_DIR: "/proc/bourse-data" })).toThrow(ConfigError);
    expect(() => load({ BOURSE_DATA_DIR: "/proc/bourse-data" })).toThrow(
      /^BOURSE_DATA_DIR: the data directory \/proc\/bourse-data cannot be created: ENOENT/,
    );
  });

  it("waits 30 s for PostgreSQL at start by default (BOURSE_DATABASE_CONNECT_TIMEOUT_SECONDS), 0 for one attempt", () => {
    expect(load({}).storage.databaseConnectTimeoutSeconds).toBe(30);
    expect(load({ BOURSE_DATABASE_CONNECT_TIMEOUT_SECONDS: "0" }).storage.databaseConnectTimeoutSeconds).toBe(0);
    for (const bad of ["-1", "1.5", "soon", "3601"])
      expect(() => load({ BOURSE_DATABASE_CONNECT_TIMEOUT_SECONDS: bad })).toThrow(
        /^BOURSE_DATABASE_CONNECT_TIMEOUT_SECONDS must be an integer from 0 to 3600/,
      );
  });

  it("gives each PostgreSQL pool 4 connections by default (BOURSE_DATABASE_POOL_SIZE), 1 to 40", () => {
    expect(load({}).storage.databasePoolSize).toBe(4);
    expect(load({ BOURSE_DATABASE_POOL_SIZE: "16" }).storage.databasePoolSize).toBe(16);
    for (const bad of ["0", "41", "2.5", "many"])
      expect(() => load({ BOURSE_DATABASE_POOL_SIZE: bad })).toThrow(
        /^BOURSE_DATABASE_POOL_SIZE must be an integer from 1 to 40/,
      );
  });

  // Found by the audit of an operator's journey: a data directory the server cannot write gave a bare "EACCES", exit
  // 3. Tests may run as root, whom no mode stops: a path under a regular file (ENOTDIR) cannot be made by anyone.
  it("refuses a data directory it cannot write as a configuration error naming it and what it needs", () => {
    const file = join(mkdtempSync(join(tmpdir(), "bourse-config-unwritable-")), "a-file");
    writeFileSync(file, "not a directory\n");
    // The data directory is a file: the generated secrets cannot be kept in it.
    expect(() => load({ BOURSE_DATA_DIR: file })).toThrow(ConfigError);
    expect(() => load({ BOURSE_DATA_DIR: file })).toThrow(
      new RegExp(
        `^BOURSE_DATA_DIR: the data directory ${file} \\(to keep the generated admin-token\\) cannot be created or written by this server \\(ENOTDIR: .*\\): it needs a directory that the user it runs as \\(.+\\) can create and write files in; change the directory's owner or permissions, or point BOURSE_DATA_DIR at another$`,
      ),
    );
    // Under a file: the data directory cannot be made.
    expect(() => load({ BOURSE_DATA_DIR: join(file, "data") })).toThrow(
      new RegExp(
        `^BOURSE_DATA_DIR: the data directory ${join(file, "data")} cannot be created or written by this server \\(ENOTDIR: `,
      ),
    );
  });

  it("says the same of a permission, a read-only file system and a file where a directory should be", () => {
    for (const code of ["EACCES", "EPERM", "EROFS", "ENOTDIR"]) {
      const error = Object.assign(new Error(`${code}: refused, open '/srv/bourse/admin-token'`), { code });
      const refused = notWritableError("BOURSE_DATA_DIR", "the data directory /srv/bourse", error);
      expect(refused).toBeInstanceOf(ConfigError);
      expect(refused?.message).toMatch(
        new RegExp(
          `^BOURSE_DATA_DIR: the data directory /srv/bourse cannot be created or written by this server \\(${code}: refused, open '/srv/bourse/admin-token'\\): it needs a directory that the user it runs as \\(.+\\) can create and write files in; change the directory's owner or permissions, or point BOURSE_DATA_DIR at another$`,
        ),
      );
    }
    // Anything else is not the directory's permissions: left as it is.
    const missing = Object.assign(new Error("ENOENT: no such file or directory"), { code: "ENOENT" });
    expect(notWritableError("BOURSE_DATA_DIR", "the data directory /x", missing)).toBeNull();
  });

  it("opens sign-up by default; BOURSE_SIGNUP closes it, and any other value is refused", () => {
    expect(load({}).signup).toBe("open");
    expect(load({ BOURSE_SIGNUP: "closed" }).signup).toBe("closed");
    expect(() => load({ BOURSE_SIGNUP: "invite" })).toThrow(ConfigError);
    expect(() => load({ BOURSE_SIGNUP: "invite" })).toThrow('BOURSE_SIGNUP must be one of open, closed, got "invite"');
  });

  it("refuses a CSV feed whose file is missing, and bad feed tuning, as configuration errors", () => {
    expect(() => load({ BOURSE_FEED: `csv:${join(dataDirectory, "missing.csv")}` })).toThrow(
      /BOURSE_FEED names .*missing\.csv, which is not a file that can be read/,
    );
    expect(() => load({ BOURSE_FEED: `csv:${dataDirectory}` })).toThrow(ConfigError);
    const csv = join(dataDirectory, "ticks.csv");
    writeFileSync(csv, "time,symbol,bid,ask\n");
    expect(load({ BOURSE_FEED: `csv:${csv}` }).feed).toEqual({ kind: "csv", path: csv });
    expect(() => load({ BOURSE_FEED_RATE: "0" })).toThrow(ConfigError);
    expect(() => load({ BOURSE_FEED_RATE: "0" })).toThrow(/BOURSE_FEED_RATE must be a number from 0.01 to 100/);
    expect(() => load({ BOURSE_FEED_REPLAY_SPEED: "fast" })).toThrow(ConfigError);
    expect(load({ BOURSE_FEED_RATE: "3" }).feedTuning).toEqual({ rate: 3, replaySpeed: 1 });
  });
});

// A misspelt setting was ignored in silence: BOURSE_DATABSE_URL ran the server on SQLite in ./data instead of the
// database it named. `bourse start` now warns of each BOURSE_* variable no setting reads.
describe("the secrets", () => {
  // Found by the audit of security and operations of 7 December (third session): an empty data/jwt-secret (a crash
  // while it was first written leaves one) started a server that said ready and answered every sign-in 500, logging
  // nothing; an empty admin-token locked the back office out in silence.
  it("refuses an empty secret file and a JWT secret shorter than 32 bytes (RFC 7518 section 3.2), naming them", () => {
    const directory = mkdtempSync(join(tmpdir(), "bourse-config-secrets-"));
    writeFileSync(join(directory, "jwt-secret"), "\n");
    const fromDirectory = () => loadServerConfig({ BOURSE_DATA_DIR: directory, BOURSE_CONFIG: "" });
    expect(fromDirectory).toThrow(ConfigError);
    expect(fromDirectory).toThrow(/jwt-secret is empty/);
    writeFileSync(join(directory, "jwt-secret"), "short\n");
    expect(fromDirectory).toThrow(/BOURSE_JWT_SECRET must be at least 32 bytes/);
    writeFileSync(join(directory, "jwt-secret"), "x".repeat(32));
    writeFileSync(join(directory, "admin-token"), "");
    expect(fromDirectory).toThrow(/admin-token is empty/);
    expect(() => load({ BOURSE_JWT_SECRET: "x".repeat(31) })).toThrow(/BOURSE_JWT_SECRET must be at least 32 bytes/);
    expect(load({ BOURSE_JWT_SECRET: "x".repeat(32) }).jwtSecret).toHaveLength(32);
    // The audit of the back office of 7 December: an admin token of one character was taken, on the listener
    // clients reach.
    expect(() => load({ BOURSE_ADMIN_TOKEN: "a" })).toThrow(/BOURSE_ADMIN_TOKEN must be at least 16 characters/);
    expect(load({ BOURSE_ADMIN_TOKEN: "x".repeat(16) }).adminToken).toBe("x".repeat(16));
  });

  // Found by the audit of an operator's journey: any Pusher app secret was taken, one character too; it signs the
  // channel auth that lets a socket hear an account's private channel.
  it("refuses a Pusher app secret shorter than 20 characters (Pusher's own length), set or kept, naming the setting", () => {
    const tooShort =
      /^BOURSE_PUSHER_APP_SECRET must be at least 20 characters \(Pusher's own are 20 hex characters; unset, one is generated\), got 19$/;
    expect(() => load({ BOURSE_PUSHER_APP_SECRET: "x".repeat(19) })).toThrow(ConfigError);
    expect(() => load({ BOURSE_PUSHER_APP_SECRET: "x".repeat(19) })).toThrow(tooShort);
    expect(load({ BOURSE_PUSHER_APP_SECRET: "x".repeat(20) }).pusherAppSecret).toBe("x".repeat(20));
    const file = join(dataDirectory, "pusher.config.json");
    for (const content of [{ pusherAppSecret: "x".repeat(19) }, { pusher: { appSecret: "x".repeat(19) } }]) {
      writeFileSync(file, JSON.stringify(content));
      expect(() => load({ BOURSE_CONFIG: file })).toThrow(tooShort);
    }
    const directory = mkdtempSync(join(tmpdir(), "bourse-config-secrets-"));
    writeFileSync(join(directory, "pusher-app-secret"), "x".repeat(19) + "\n");
    expect(() => loadServerConfig({ BOURSE_DATA_DIR: directory, BOURSE_CONFIG: "" })).toThrow(tooShort);
  });

  it("generates each missing secret once, long enough and readable by the owner alone", () => {
    const directory = mkdtempSync(join(tmpdir(), "bourse-config-secrets-"));
    const first = loadServerConfig({ BOURSE_DATA_DIR: directory, BOURSE_CONFIG: "" });
    expect(first.jwtSecret.length).toBeGreaterThanOrEqual(32);
    const again = loadServerConfig({ BOURSE_DATA_DIR: directory, BOURSE_CONFIG: "" });
    expect(again.jwtSecret).toEqual(first.jwtSecret);
    expect(again.adminToken).toBe(first.adminToken);
    expect(first.pusherAppSecret.length).toBeGreaterThanOrEqual(20);
    expect(again.pusherAppSecret).toBe(first.pusherAppSecret);
    expect(statSync(join(directory, "jwt-secret")).mode & 0o777).toBe(0o600);
    // Written whole or not at all: no temporary file is left beside it.
    expect(readdirSync(directory).sort()).toEqual(["admin-token", "jwt-secret", "pusher-app-key", "pusher-app-secret"]);
  });
});

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
