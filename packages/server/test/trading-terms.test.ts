/**
 * The broker's trading terms: account groups (BOURSE_GROUPS_FILE, BOURSE_DEFAULT_GROUP), the highest leverage
 * (BOURSE_LEVERAGE_MAX), the daily rollover (BOURSE_ROLLOVER_TIME, in UTC or a market's zone) and the triple-swap day
 * (BOURSE_TRIPLE_SWAP_DAY). They were built into the engine's configuration: a broker could not set its own stop-out
 * level, nor roll over at 17:00 New York, FX's end of day, which is 21:00 UTC in the US summer.
 */
import { DEFAULT_GROUPS } from "@bourse/core";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ManualClock } from "../src/clock.ts";
import { ConfigError, loadServerConfig } from "../src/config.ts";
import { EngineClock } from "../src/engine-clock.ts";
import { checkAccountGroups, parseGroups } from "../src/groups-file.ts";
import { runCommandLine } from "../src/index.ts";
import { TUESDAY_NOON, admin, call, pushQuote, signUp, startTestServer, tableObjects } from "./helpers.ts";

const HOUR_MS = 3_600_000;
const directories: string[] = [];
afterEach(() => {
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

function temporaryDirectory(): string {
  const directory = mkdtempSync(path.join(tmpdir(), "bourse-terms-"));
  directories.push(directory);
  return directory;
}

function groupsFile(groups: unknown): string {
  const file = path.join(temporaryDirectory(), "groups.json");
  writeFileSync(file, JSON.stringify(groups));
  return file;
}

const BROKER_GROUPS = [
  { name: "retail", marginCallLevelPercent: 120, stopOutLevelPercent: 60 },
  { name: "vip", marginCallLevelPercent: 50, stopOutLevelPercent: 20 },
];

describe("the groups file", () => {
  it("`bourse groups` prints the default groups as a file that reads back as them", async () => {
    const lines: string[] = [];
    const code = await runCommandLine(["groups"], { info: (line) => lines.push(line), error: () => undefined }, {});
    expect(code).toBe(0);
    expect(parseGroups(lines.join("\n"))).toEqual(DEFAULT_GROUPS);
  });

  it("refuses a bad entry and names it and its field", () => {
    const refusal = (groups: unknown): string => {
      try {
        parseGroups(JSON.stringify(groups));
      } catch (error) {
        return (error as Error).message;
      }
      return "accepted";
    };
    expect(refusal([])).toMatch(/^the file: .*\(a list of 1 to 100 groups/);
    expect(refusal([{ ...BROKER_GROUPS[0], stopOutLevelPercent: 120 }])).toBe(
      "entry 0 (retail): stopOutLevelPercent (120) must be below marginCallLevelPercent (120)",
    );
    expect(refusal([BROKER_GROUPS[0], BROKER_GROUPS[0]])).toBe("entry 1 (retail): the group is defined twice");
    expect(refusal([{ ...BROKER_GROUPS[0], stopOut: 10 }])).toMatch(/^entry 0\.stopOut: Unexpected property/);
    expect(refusal([{ ...BROKER_GROUPS[0], marginCallLevelPercent: 99.5 }])).toMatch(
      /^entry 0\.marginCallLevelPercent: /,
    );
    expect(refusal([{ ...BROKER_GROUPS[0], name: "a b" }])).toMatch(/^entry 0\.name: /);
    expect(refusal(BROKER_GROUPS)).toBe("accepted");
  });

  it("names the accounts of a group the file leaves out, five at most", () => {
    const accounts = [1, 2, 3, 4, 5, 6, 7].map((id) => ({ id, group: id === 1 ? "retail" : "gold" }));
    expect(() => checkAccountGroups(accounts, BROKER_GROUPS)).toThrow(
      'the groups leave out groups that accounts are in: group "gold" holds accounts 2, 3, 4, 5, 6 and 1 more',
    );
    expect(() => checkAccountGroups(accounts.slice(0, 1), BROKER_GROUPS)).not.toThrow();
  });
});

describe("the trading terms in the configuration", () => {
  const load = (environment: NodeJS.ProcessEnv) =>
    loadServerConfig({ BOURSE_DATA_DIR: temporaryDirectory(), ...environment }).trading;
  const refusal = (environment: NodeJS.ProcessEnv): string => {
    try {
      load(environment);
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as Error).message;
    }
    return "accepted";
  };

  // The rollover's default is FX's end of day, as the default forex hours are New York's (the audit of time of
  // 7 December, ninth session: at 22:00 UTC a DAY order placed at Sunday's open expired half an hour later in summer,
  // and a position opened after the real rollover paid Wednesday's triple swap an hour later).
  it("defaults to the engine's groups and terms (standard and pro, 1:1000 at most, triple swap on Wednesday), the rollover at 17:00 New York", () => {
    expect(load({})).toEqual({
      groups: DEFAULT_GROUPS,
      defaultGroup: "standard",
      leverageMax: 1000,
      rollover: { minuteOfDay: 17 * 60, timeZone: "America/New_York" },
      tripleSwapWeekday: 3,
    });
  });

  it("reads each setting, and a bad one stops the start naming it", () => {
    const file = groupsFile(BROKER_GROUPS);
    expect(
      load({
        BOURSE_GROUPS_FILE: file,
        BOURSE_LEVERAGE_MAX: "500",
        BOURSE_ROLLOVER_TIME: "17:00 America/New_York",
        BOURSE_TRIPLE_SWAP_DAY: "Friday",
      }),
    ).toEqual({
      groups: BROKER_GROUPS,
      // No `standard` in the file: its first group.
      defaultGroup: "retail",
      leverageMax: 500,
      rollover: { minuteOfDay: 17 * 60, timeZone: "America/New_York" },
      tripleSwapWeekday: 5,
    });
    expect(load({ BOURSE_GROUPS_FILE: file, BOURSE_DEFAULT_GROUP: "vip" }).defaultGroup).toBe("vip");
    expect(refusal({ BOURSE_GROUPS_FILE: file, BOURSE_DEFAULT_GROUP: "standard" })).toBe(
      'BOURSE_DEFAULT_GROUP: the default group "standard" is not among the groups (retail, vip)',
    );
    expect(refusal({ BOURSE_GROUPS_FILE: groupsFile([{ name: "x" }]) })).toMatch(
      /^BOURSE_GROUPS_FILE: .*groups\.json: entry 0\.marginCallLevelPercent: Expected required property/,
    );
    expect(refusal({ BOURSE_ROLLOVER_TIME: "24:00" })).toMatch(/^BOURSE_ROLLOVER_TIME must be HH:MM/);
    // Any zone trading sessions take (it took UTC and New York only before 7 December, ninth session).
    expect(load({ BOURSE_ROLLOVER_TIME: "07:00 Asia/Tokyo" }).rollover).toEqual({
      minuteOfDay: 7 * 60,
      timeZone: "Asia/Tokyo",
    });
    expect(refusal({ BOURSE_ROLLOVER_TIME: "17:00 Europe/Paris" })).toMatch(
      /one of UTC, America\/New_York, America\/Chicago, Europe\/London, .*got "17:00 Europe\/Paris"$/,
    );
    expect(refusal({ BOURSE_TRIPLE_SWAP_DAY: "wed" })).toMatch(/^BOURSE_TRIPLE_SWAP_DAY must be one of monday/);
    // A weekend day never charged its triple: the calendar charges nothing for Saturday's and Sunday's trading days.
    for (const weekend of ["saturday", "Sunday"])
      expect(refusal({ BOURSE_TRIPLE_SWAP_DAY: weekend })).toBe(
        `BOURSE_TRIPLE_SWAP_DAY must be one of monday, tuesday, wednesday, thursday, friday, got "${weekend.toLowerCase()}"`,
      );
    expect(refusal({ BOURSE_LEVERAGE_MAX: "2000" })).toMatch(/^BOURSE_LEVERAGE_MAX/);
    // A demo leverage above the maximum would make every sign-up fail.
    expect(refusal({ BOURSE_LEVERAGE_MAX: "50" })).toMatch(/^BOURSE_DEMO_LEVERAGE/);
  });
});

describe("a server with the broker's groups", () => {
  it("opens accounts in the default group at its levels, moves one to another group, and refuses a start that drops a group accounts are in", async () => {
    const dataDirectory = temporaryDirectory();
    const start = (groups: unknown) =>
      startTestServer({ dataDirectory, environment: { BOURSE_GROUPS_FILE: groupsFile(groups) } });

    const server = await start(BROKER_GROUPS);
    let login: number;
    try {
      const user = await signUp(server);
      login = user.login;
      const account = await call(server, "GET", `/api/v1/accounts/${login}`, { token: user.token });
      expect(account.body.data).toMatchObject({ marginCallLevel: 120, stopOutLevel: 60 });
      expect((await admin(server, "POST", `/admin/v1/accounts/${login}`, { group: "gold" })).status).toBe(400);
      const moved = await admin(server, "POST", `/admin/v1/accounts/${login}`, { group: "vip" });
      expect(moved.status, JSON.stringify(moved.body)).toBe(200);
      const after = await call(server, "GET", `/api/v1/accounts/${login}`, { token: user.token });
      expect(after.body.data).toMatchObject({ marginCallLevel: 50, stopOutLevel: 20 });
      const groups = await admin(server, "GET", "/admin/v1/groups");
      expect(groups.status).toBe(200);
      expect(tableObjects(groups.body)).toEqual([
        { name: "retail", marginCallLevel: 120, stopOutLevel: 60, default: true, accounts: 0 },
        { name: "vip", marginCallLevel: 50, stopOutLevel: 20, default: false, accounts: 1 },
      ]);
      expect((await call(server, "GET", "/admin/v1/groups", { token: user.token })).status).toBe(401);
    } finally {
      await server.close();
    }

    await expect(start(BROKER_GROUPS.slice(0, 1))).rejects.toThrow(
      `the groups leave out groups that accounts are in: group "vip" holds account ${login}`,
    );
    // New levels for the same group are taken at the next start.
    const again = await start([BROKER_GROUPS[0], { name: "vip", marginCallLevelPercent: 70, stopOutLevelPercent: 40 }]);
    try {
      const detail = await admin(again, "GET", `/admin/v1/accounts/${login}`);
      expect(detail.status).toBe(200);
      expect(again.platform.engine.state.accounts.get(login)?.group).toBe("vip");
      expect(again.platform.engine.config.groups.find((group) => group.name === "vip")).toEqual({
        name: "vip",
        marginCallLevelPercent: 70,
        stopOutLevelPercent: 40,
      });
    } finally {
      await again.close();
    }
  });
});

describe("a lower leverage maximum", () => {
  it("refuses a higher leverage on opening or changing an account; one already above it keeps it and can change group", async () => {
    const dataDirectory = temporaryDirectory();
    const first = await startTestServer({ dataDirectory });
    let login: number;
    let token: string;
    let email: string;
    let password: string;
    try {
      const user = await signUp(first);
      ({ login, token, email, password } = user);
      expect((await admin(first, "POST", `/admin/v1/accounts/${login}`, { leverage: 500 })).status).toBe(200);
    } finally {
      await first.close();
    }
    const second = await startTestServer({ dataDirectory, environment: { BOURSE_LEVERAGE_MAX: "200" } });
    try {
      const signedIn = await call(second, "POST", "/api/v1/login", { body: { email, password } });
      token = signedIn.body.data.token as string;
      const opened = await call(second, "PUT", "/api/v1/accounts", {
        token,
        body: { currency: "USD", leverage: 300, mode: "HEDGING" },
      });
      expect(opened.status).toBe(400);
      const raised = await admin(second, "POST", `/admin/v1/accounts/${login}`, { leverage: 300 });
      expect(raised.status).toBe(400);
      // Its 1:500 stays, and its group can still change (it used to be refused INVALID_LEVERAGE).
      const regrouped = await admin(second, "POST", `/admin/v1/accounts/${login}`, { group: "pro" });
      expect(regrouped.status, JSON.stringify(regrouped.body)).toBe(200);
      const account = await call(second, "GET", `/api/v1/accounts/${login}`, { token });
      expect(account.body.data).toMatchObject({ leverage: 500, stopOutLevel: 30 });
    } finally {
      await second.close();
    }
  });
});

describe("a rollover at 17:00 New York", () => {
  /** A long EURUSD lot bought Tuesday noon (2 June 2026) and its swap at each of `times`, the clock moved to each. */
  async function swapsAt(environment: NodeJS.ProcessEnv, times: readonly number[]): Promise<number[]> {
    const clock = new ManualClock(TUESDAY_NOON);
    const server = await startTestServer({ clock, environment });
    try {
      const user = await signUp(server);
      await pushQuote(server, "EURUSD", "1.08430", "1.08440");
      const bought = await call(server, "POST", `/api/v1/accounts/${user.login}/orders`, {
        token: user.token,
        body: { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 1 },
      });
      expect(bought.status).toBe(200);
      const swaps: number[] = [];
      for (const time of times) {
        clock.set(time);
        await EngineClock.for(server.platform).advanceIfDue();
        // Read from the engine: hours on, the trader's token has expired.
        swaps.push([...server.platform.engine.state.positions.values()][0]!.swap);
      }
      return swaps;
    } finally {
      await server.close();
    }
  }

  it("charges a position's swap at 21:00 UTC in June, where 22:00 UTC charges it an hour later", async () => {
    const times = [TUESDAY_NOON + 9 * HOUR_MS - 1000, TUESDAY_NOON + 9 * HOUR_MS, TUESDAY_NOON + 10 * HOUR_MS];
    // The default.
    const newYork = await swapsAt({}, times);
    // 22:00 in London is 21:00 UTC in British summer time too.
    const london = await swapsAt({ BOURSE_ROLLOVER_TIME: "22:00 Europe/London" }, times);
    const utc = await swapsAt({ BOURSE_ROLLOVER_TIME: "22:00" }, times);
    const oneDay = utc[2]!;
    expect(oneDay).not.toBe(0);
    expect(newYork).toEqual([0, oneDay, oneDay]);
    expect(london).toEqual([0, oneDay, oneDay]);
    expect(utc).toEqual([0, 0, oneDay]);
  });
});
