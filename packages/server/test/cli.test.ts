import Database from "better-sqlite3";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createJournal } from "@bourse/store";
import { tradingSession, toRecords } from "../../store/test/trading-session.ts";
import { readStandardInput } from "../src/cli.ts";
import { ExitCode, runCommandLine } from "../src/index.ts";
import { spawnBourse } from "./helpers.ts";

const directories: string[] = [];
afterEach(() => {
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

function dataDirectory(): string {
  const directory = mkdtempSync(path.join(tmpdir(), "bourse-cli-"));
  directories.push(directory);
  return directory;
}

/** Runs the command line in this process; `input` is its standard input (none read unless given). */
async function run(argumentsList: string[], environment: NodeJS.ProcessEnv, input?: string) {
  const lines: string[] = [];
  const errors: string[] = [];
  const code = await runCommandLine(
    argumentsList,
    { info: (line) => lines.push(line), error: (line) => errors.push(line) },
    environment,
    () => (input === undefined ? Promise.reject(new Error("the test gave no standard input")) : Promise.resolve(input)),
  );
  return { code, out: lines.join("\n"), err: errors.join("\n") };
}

/** `snapshot`: also save a snapshot of the state at the last sequence. */
async function journalWithSession(directory: string, { snapshot = false } = {}): Promise<number> {
  const journal = createJournal(path.join(directory, "bourse.sqlite"));
  await journal.open();
  const session = tradingSession();
  const records = toRecords(session.events);
  // Two appends, so the journal holds a row before its last one (damage there is corruption, not a torn tail).
  const half = Math.floor(records.length / 2);
  await journal.append(records.slice(0, half));
  await journal.append(records.slice(half));
  if (snapshot)
    await journal.saveSnapshot({
      sequence: records.length,
      stateHash: session.engine.stateHash(),
      state: session.engine.snapshot(),
      createdAt: 1,
    });
  await journal.close();
  return records.length;
}

/**
 * Changes one byte of a journal row's events (binary form: substr counts bytes), so its checksum fails: the row
 * starting at `firstSequence`, or the last row. Answers that row's first sequence.
 */
function damageJournalRow(directory: string, firstSequence: number | "last"): number {
  const database = new Database(path.join(directory, "bourse.sqlite"));
  try {
    const first =
      firstSequence === "last"
        ? (database.prepare("SELECT max(first_sequence) AS first FROM journal").get() as { first: number }).first
        : firstSequence;
    database
      .prepare(
        "UPDATE journal SET payload = CAST(substr(payload, 1, 20) || x'FF' || substr(payload, 22) AS BLOB) WHERE first_sequence = ?",
      )
      .run(first);
    return first;
  } finally {
    database.close();
  }
}

/** A TCP port of this machine that nothing listens on (one the system gave, let go at once). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * `bourse migrate` twice on a new database: the first names every migration it applies to the journal and to the
 * platform store, the second says both are up to date. `journal` and `platform` are the databases as it describes them.
 * Found by the audit of an operator's journey: it said "schema up to date" whether it had applied anything or not.
 */
async function expectMigrateReports(
  environment: NodeJS.ProcessEnv,
  journal: string,
  platform: string,
  newestJournalMigration: string,
): Promise<void> {
  const first = await run(["migrate"], environment);
  expect(first).toMatchObject({ code: ExitCode.OK, err: "" });
  const [journalLine, platformLine, ...more] = first.out.split("\n");
  expect(more).toEqual([]);
  expect(journalLine).toMatch(
    new RegExp(
      `^${escapeRegExp(`${journal}: journal schema migrated: applied migrations 1 "journal and snapshots", 2 "read models", 3 "one journal row per append", `)}.*${escapeRegExp(`, ${newestJournalMigration}, journal at sequence 0`)}$`,
    ),
  );
  expect(platformLine).toMatch(
    new RegExp(
      `^${escapeRegExp(`${platform}: platform schema migrated: applied migrations 1 "platform data", 2 "alert arming", `)}.*${escapeRegExp(', 12 "refresh tokens"')}$`,
    ),
  );
  const second = await run(["migrate"], environment);
  expect(second).toMatchObject({ code: ExitCode.OK, err: "" });
  expect(second.out.split("\n")).toEqual([
    `${journal}: journal schema up to date (nothing to apply), journal at sequence 0`,
    `${platform}: platform schema up to date (nothing to apply)`,
  ]);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

describe("bourse command line", () => {
  it("migrate creates the schema in the data directory, naming the migrations it applies; again, it says it is up to date", async () => {
    const directory = path.join(dataDirectory(), "nested");
    await expectMigrateReports(
      { BOURSE_DATA_DIR: directory },
      `SQLite ${path.join(directory, "bourse.sqlite")}`,
      `SQLite ${path.join(directory, "platform.sqlite")}`,
      '6 "events in the binary form"',
    );
  });

  // Found by the audit of security and operations of 7 December (third session): pointed at a mistyped directory,
  // they made a new empty database there and answered "no differences".
  it("verify and journal refuse a data directory without a journal, and make nothing there", async () => {
    const directory = path.join(dataDirectory(), "typo");
    for (const command of [["verify"], ["journal"]]) {
      const result = await run(command, { BOURSE_DATA_DIR: directory });
      expect(result.code).toBe(ExitCode.FAILED);
      expect(result.err).toContain(`no journal at ${path.join(directory, "bourse.sqlite")}`);
    }
    expect(existsSync(directory)).toBe(false);
  });

  it("verify recomputes the ledgers of a real journal and finds no difference", async () => {
    const directory = dataDirectory();
    const events = await journalWithSession(directory);
    const result = await run(["verify"], { BOURSE_DATA_DIR: directory });
    expect(result.code).toBe(ExitCode.OK);
    expect(result.out).toContain(`verified ${events} events, 2 accounts`);
    expect(result.out).toContain("no differences");
  });

  // On 2bafc6c the storage commands read the environment alone: with the data directory in the configuration file
  // they opened a new empty database in ./data and verified it ("no differences").
  it("verify, journal and migrate read the data directory from the configuration file, as the server does", async () => {
    const directory = dataDirectory();
    const events = await journalWithSession(directory);
    const file = path.join(dataDirectory(), "bourse.config.json");
    writeFileSync(file, JSON.stringify({ dataDir: directory }));
    const verified = await run(["verify"], { BOURSE_CONFIG: file });
    expect(verified.code).toBe(ExitCode.OK);
    expect(verified.out).toContain(`verified ${events} events, 2 accounts`);
    const printed = await run(["journal", "--limit", "1"], { BOURSE_CONFIG: file });
    expect(printed.out.split("\n")).toHaveLength(1);
    expect((await run(["migrate"], { BOURSE_CONFIG: file })).out).toContain(path.join(directory, "bourse.sqlite"));
  });

  // On 77d9dfd verify read the journal alone: a ledger row changed and a deal lost in the history the API serves passed.
  it("verify checks the read models against the events: a damaged ledger row and a lost deal are differences", async () => {
    const directory = dataDirectory();
    await journalWithSession(directory);
    expect((await run(["verify"], { BOURSE_DATA_DIR: directory })).code).toBe(ExitCode.OK);
    const database = new Database(path.join(directory, "bourse.sqlite"));
    const ledger = database.prepare("SELECT id, account_id FROM balance_ledger ORDER BY id LIMIT 1").get() as {
      id: number;
      account_id: number;
    };
    database.prepare("UPDATE balance_ledger SET amount = amount + 99999999 WHERE id = ?").run(ledger.id);
    const deal = database.prepare("SELECT id, account_id FROM deal_history ORDER BY id LIMIT 1").get() as {
      id: number;
      account_id: number;
    };
    database.prepare("DELETE FROM deal_history WHERE id = ?").run(deal.id);
    database.close();
    const result = await run(["verify"], { BOURSE_DATA_DIR: directory });
    expect(result.code).toBe(ExitCode.DIFFERENCES_FOUND);
    expect(result.err).toMatch(
      new RegExp(`account ${ledger.account_id} read models: the ledger's rows sum to balance \\d+ and credit`),
    );
    expect(result.err).toMatch(
      new RegExp(
        `account ${deal.account_id} read models: deal ${deal.id} of the events is missing from the deal history \\(\\d+ deals in the deal history, \\d+ in the events\\)`,
      ),
    );
  });

  // On f992ff6 verify counted the deal rows and read no order or position row: a deal's price changed in the
  // history, a position's stop loss or volume changed, an order row gone or shown working again all passed.
  it("verify compares the order, deal and position histories row by row with the events and names the first difference", async () => {
    const directory = dataDirectory();
    await journalWithSession(directory);
    const database = new Database(path.join(directory, "bourse.sqlite"));
    const row = (sql: string) => database.prepare(sql).get() as { id: number; account_id: number };
    const deal = row("SELECT id, account_id FROM deal_history ORDER BY id LIMIT 1");
    database.prepare("UPDATE deal_history SET price = price + 1 WHERE id = ?").run(deal.id);
    const open = row("SELECT id, account_id FROM position_history WHERE close_time IS NULL ORDER BY id LIMIT 1");
    database.prepare("UPDATE position_history SET sl = 150000 WHERE id = ?").run(open.id);
    const closed = row("SELECT id, account_id FROM position_history WHERE close_time IS NOT NULL ORDER BY id LIMIT 1");
    database.prepare("UPDATE position_history SET volume = 10 WHERE id = ?").run(closed.id);
    const cancelled = row("SELECT id, account_id FROM order_history WHERE status = 'CANCELLED' ORDER BY id LIMIT 1");
    database.prepare("UPDATE order_history SET status = 'PLACED' WHERE id = ?").run(cancelled.id);
    const gone = row("SELECT id, account_id FROM order_history WHERE status = 'FILLED' ORDER BY id DESC LIMIT 1");
    database.prepare("DELETE FROM order_history WHERE id = ?").run(gone.id);
    database.close();
    const result = await run(["verify"], { BOURSE_DATA_DIR: directory });
    expect(result.code).toBe(ExitCode.DIFFERENCES_FOUND);
    const lines = result.err.split("\n");
    const expectLine = (pattern: string) =>
      expect(
        lines.some((line) => new RegExp(pattern).test(line)),
        pattern,
      ).toBe(true);
    expectLine(
      `account ${deal.account_id} read models: deal ${deal.id}: price \\d+ in the deal history, \\d+ in the events`,
    );
    expectLine(
      `account ${open.account_id} read models: position ${open.id}: sl 150000 in the position history, null in the events`,
    );
    expectLine(
      `account ${closed.account_id} read models: position ${closed.id}: volume 10 in the position history, 0 in the events`,
    );
    // One account's order history: the first row that differs is named, the missing one is counted.
    expect(gone.account_id).toBe(cancelled.account_id);
    expectLine(
      `account ${cancelled.account_id} read models: order ${cancelled.id}: status "PLACED" in the order history, "CANCELLED" in the events \\(\\d+ orders in the order history, \\d+ in the events\\)`,
    );
  });

  // Found by an audit of verify: a finished order's row was only checked not to be working, a closed position's only for
  // its volume and close time, the ledger only for its sums and its last row, and the command ignored the damaged
  // snapshots the journal's open reported. Each of these changes passed with "no differences" and exit 0.
  it.each([
    [
      "a finished order's status changed",
      "UPDATE order_history SET status = 'FILLED' WHERE status = 'CANCELLED'",
      'account \\d+ read models: order \\d+: status "FILLED" in the order history, "CANCELLED" in the events',
    ],
    [
      "a closed position's realised profit changed",
      "UPDATE position_history SET realised_profit = realised_profit + 123456 WHERE close_time IS NOT NULL",
      "account \\d+ read models: position \\d+: realisedProfit \\d+ in the position history, \\d+ in the events",
    ],
    [
      "a ledger row's kind changed",
      "UPDATE balance_ledger SET kind = 'CORRECTION' WHERE kind = 'DEPOSIT'",
      'account \\d+ read models: ledger row \\d+: kind "CORRECTION" in the ledger, "DEPOSIT" in the events',
    ],
    [
      "a snapshot's checksum damaged",
      "UPDATE snapshots SET checksum = checksum + 1",
      "snapshot \\d+: its checksum fails",
    ],
  ])("verify reports %s", async (_, damage, difference) => {
    const directory = dataDirectory();
    await journalWithSession(directory, { snapshot: true });
    expect((await run(["verify"], { BOURSE_DATA_DIR: directory })).code).toBe(ExitCode.OK);
    const database = new Database(path.join(directory, "bourse.sqlite"));
    expect(database.prepare(damage).run().changes).toBeGreaterThan(0);
    database.close();
    const result = await run(["verify"], { BOURSE_DATA_DIR: directory });
    expect(result.code).toBe(ExitCode.DIFFERENCES_FOUND);
    expect(result.err).toMatch(new RegExp(difference));
  });

  it("verify refuses a journal damaged before its end and names the sequence", async () => {
    const directory = dataDirectory();
    await journalWithSession(directory);
    damageJournalRow(directory, 1);
    const result = await run(["verify"], { BOURSE_DATA_DIR: directory });
    expect(result.code).toBe(ExitCode.FAILED);
    expect(result.err).toMatch(/journal corrupt at sequence 1/);
  });

  // On c3afa88 verify and journal opened the journal as the server does, which drops a torn tail: a damaged last
  // record (an acknowledged deposit) was deleted, and verify then answered "no differences" with exit 0.
  it("verify and journal report a damaged last record and leave it in place; migrate, like the start, drops it", async () => {
    const directory = dataDirectory();
    const events = await journalWithSession(directory);
    const file = path.join(directory, "bourse.sqlite");
    const last = { first: damageJournalRow(directory, "last") };
    const rows = () => {
      const database = new Database(file, { readonly: true });
      try {
        return (database.prepare("SELECT count(*) AS rows FROM journal").get() as { rows: number }).rows;
      } finally {
        database.close();
      }
    };
    const verified = await run(["verify"], { BOURSE_DATA_DIR: directory });
    expect(verified.code).toBe(ExitCode.DIFFERENCES_FOUND);
    expect(verified.out).toContain(`verified ${last.first - 1} events`);
    expect(verified.err).toContain(
      `journal: the last ${events - last.first + 1} record(s) after sequence ${last.first - 1}`,
    );
    const printed = await run(["journal"], { BOURSE_DATA_DIR: directory });
    expect(printed.code).toBe(ExitCode.DIFFERENCES_FOUND);
    expect(printed.out.split("\n")).toHaveLength(last.first - 1);
    expect(printed.err).toContain("not printed: the last");
    expect(rows()).toBe(2);
    const migrated = await run(["migrate"], { BOURSE_DATA_DIR: directory });
    expect(migrated.out).toContain("dropped the last");
    expect(rows()).toBe(1);
    expect((await run(["verify"], { BOURSE_DATA_DIR: directory })).code).toBe(ExitCode.OK);
  });

  it("journal prints every event as a JSON line with its sequence, type, time and account", async () => {
    const directory = dataDirectory();
    const { events } = tradingSession();
    await journalWithSession(directory);
    const result = await run(["journal"], { BOURSE_DATA_DIR: directory });
    expect(result.code).toBe(ExitCode.OK);
    expect(result.err).toContain(`journal at sequence ${events.length}`);
    const lines = result.out.split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.map((line) => line.sequence)).toEqual(events.map((_, index) => index + 1));
    expect(lines.map((line) => line.event)).toEqual(events);
    expect(lines.map((line) => line.type)).toEqual(events.map((event) => event.type));
    expect(lines.map((line) => line.time)).toEqual(events.map((event) => event.time));
    const deposit = events.findIndex((event) => event.type === "BalanceOperation");
    const rollover = events.findIndex((event) => event.type === "Rollover");
    expect(lines[deposit]!.accountId).toBe((events[deposit] as { accountId: number }).accountId);
    if (rollover >= 0) expect(lines[rollover]!.accountId).toBeNull();
  });

  it("journal --after and --limit print a window of it; anything else is a usage error", async () => {
    const directory = dataDirectory();
    await journalWithSession(directory);
    const result = await run(["journal", "--after", "3", "--limit", "4"], { BOURSE_DATA_DIR: directory });
    expect(result.code).toBe(ExitCode.OK);
    expect(result.out.split("\n").map((line) => (JSON.parse(line) as { sequence: number }).sequence)).toEqual([
      4, 5, 6, 7,
    ]);
    expect((await run(["journal", "--after", "10000"], { BOURSE_DATA_DIR: directory })).out).toBe("");
    for (const wrong of [["--after", "-1"], ["--limit", "x"], ["--after"], ["extra"]])
      expect((await run(["journal", ...wrong], { BOURSE_DATA_DIR: directory })).code).toBe(ExitCode.USAGE);
  });

  it("refuses a data directory that cannot be created as a configuration error, with every secret given", async () => {
    // With nothing to generate, the data directory was first created by the platform: a plain ENOENT, exit 3.
    const result = await run(["start"], {
      BOURSE_DATA_DIR: "/proc/bourse-cli-test",
      BOURSE_ADMIN_TOKEN: "an-admin-token-of-enough-length",
      BOURSE_JWT_SECRET: "a-jwt-secret-of-enough-length-0000000000",
      BOURSE_PUSHER_APP_KEY: "app-key",
      BOURSE_PUSHER_APP_SECRET: "an-app-secret-of-enough-length",
      BOURSE_FEED: "push",
      BOURSE_PORT: "0",
    });
    expect(result.code).toBe(ExitCode.USAGE);
    expect(result.err).toContain(
      "bourse start: configuration error: BOURSE_DATA_DIR: the data directory /proc/bourse-cli-test cannot be created: ENOENT",
    );
  });

  // Found by the audit of an operator's journey: a bare "ENOTDIR" or "EACCES", exit 3. A path under a regular file
  // cannot be made by any user, root included (whom no mode stops).
  it("refuses a database file or folder it cannot write as a configuration error naming it and the setting, exit 2", async () => {
    const file = path.join(dataDirectory(), "a-file");
    writeFileSync(file, "not a directory\n");
    const secrets = {
      BOURSE_ADMIN_TOKEN: "an-admin-token-of-enough-length",
      BOURSE_JWT_SECRET: "a-jwt-secret-of-enough-length-0000000000",
      BOURSE_PUSHER_APP_KEY: "app-key",
      BOURSE_PUSHER_APP_SECRET: "an-app-secret-of-enough-length",
      BOURSE_FEED: "push",
      BOURSE_PORT: "0",
    };
    const needs = "it needs a directory that the user it runs as";
    // With every secret given, the data directory (a file here) is first written by the stores.
    const dataDirectoryAFile = await run(["start"], { ...secrets, BOURSE_DATA_DIR: file });
    expect(dataDirectoryAFile.code).toBe(ExitCode.USAGE);
    expect(dataDirectoryAFile.err).toContain(
      `bourse start: configuration error: BOURSE_DATA_DIR: the database file ${path.join(file, "bourse.sqlite")} cannot be created or written by this server (ENOTDIR: `,
    );
    expect(dataDirectoryAFile.err).toContain(needs);
    const database = path.join(file, "db", "bourse.sqlite");
    for (const command of ["start", "migrate"]) {
      const result = await run([command], {
        ...secrets,
        BOURSE_DATA_DIR: dataDirectory(),
        BOURSE_DATABASE_URL: database,
      });
      expect(result.code).toBe(ExitCode.USAGE);
      expect(result.err).toContain(
        `bourse ${command}: configuration error: BOURSE_DATABASE_URL: the database file ${database} cannot be created or written by this server (ENOTDIR: `,
      );
      expect(result.err).toContain(needs);
    }
  });

  it("refuses a Pusher app secret shorter than 20 characters as a configuration error, exit 2", async () => {
    const result = await run(["start"], {
      BOURSE_DATA_DIR: dataDirectory(),
      BOURSE_PUSHER_APP_SECRET: "app-secret",
      BOURSE_FEED: "push",
      BOURSE_PORT: "0",
    });
    expect(result.code).toBe(ExitCode.USAGE);
    expect(result.err).toContain(
      "bourse start: configuration error: BOURSE_PUSHER_APP_SECRET must be at least 20 characters",
    );
  });

  it("prints this build's version", async () => {
    const result = await run(["--version"], { BOURSE_DATA_DIR: dataDirectory() });
    expect(result.code).toBe(ExitCode.OK);
    expect(result.out).toMatch(/^bourse \d+\.\d+\.\d+$/);
  });

  // Found by the audit of an operator's journey of 7 December (sixth session): "getaddrinfo ENOTFOUND", exit 3.
  it("refuses a BOURSE_HOST that is no address of the machine as a configuration error, exit 2", async () => {
    const bourse = spawnBourse({ BOURSE_DATA_DIR: dataDirectory(), BOURSE_HOST: "999.1.1.1", BOURSE_FEED: "push" });
    expect(await bourse.exited).toBe(ExitCode.USAGE);
    expect(bourse.printed()).toContain('bourse start: configuration error: BOURSE_HOST "999.1.1.1" is no address');
  });

  // Found by the audit of an operator's journey: PostgreSQL not up yet made the start exit at once with a raw
  // "connect ECONNREFUSED 127.0.0.1:5432", exit 3, naming no database and trying nothing again.
  it("waits for an unreachable PostgreSQL, saying so at each attempt, then exits 5 naming it, never printing the password", async () => {
    const port = await closedPort();
    const bourse = spawnBourse({
      BOURSE_DATA_DIR: dataDirectory(),
      BOURSE_FEED: "push",
      BOURSE_PORT: "0",
      BOURSE_DATABASE_URL: `postgres://bourse:the-db-password-0123@127.0.0.1:${port}/bourse`,
      BOURSE_DATABASE_CONNECT_TIMEOUT_SECONDS: "2",
    });
    expect(await bourse.exited).toBe(ExitCode.UNAVAILABLE);
    const printed = bourse.printed();
    expect(printed).toContain(`PostgreSQL at 127.0.0.1:${port} is not reachable (ECONNREFUSED), retrying in 1 s`);
    expect(printed.match(/is not reachable \(ECONNREFUSED\), retrying in/g)!.length).toBeGreaterThanOrEqual(2);
    expect(printed).toContain(
      `bourse start failed: BOURSE_DATABASE_URL: PostgreSQL at 127.0.0.1:${port} was not reachable within 2 s (ECONNREFUSED; `,
    );
    expect(printed).not.toContain("the-db-password-0123");
  });

  // A PostgreSQL host that did not resolve was blamed on BOURSE_HOST ("is no address of this machine"), exit 2.
  it("says a PostgreSQL host that does not resolve is not reachable, with one attempt at a timeout of 0, exit 5", async () => {
    const bourse = spawnBourse({
      BOURSE_DATA_DIR: dataDirectory(),
      BOURSE_FEED: "push",
      BOURSE_PORT: "0",
      BOURSE_DATABASE_URL: "postgres://bourse@no-such-host.invalid/bourse",
      BOURSE_DATABASE_CONNECT_TIMEOUT_SECONDS: "0",
    });
    expect(await bourse.exited).toBe(ExitCode.UNAVAILABLE);
    expect(bourse.printed()).toMatch(
      /bourse start failed: BOURSE_DATABASE_URL: PostgreSQL at no-such-host\.invalid:5432 was not reachable within 0 s \((ENOTFOUND|EAI_AGAIN); 1 attempt\)/,
    );
    expect(bourse.printed()).not.toContain("retrying");
    expect(bourse.printed()).not.toContain("BOURSE_HOST");
  });

  it("answers an unknown command with the usage and exit code 2", async () => {
    const result = await run(["frobnicate"], { BOURSE_DATA_DIR: dataDirectory() });
    expect(result.code).toBe(ExitCode.USAGE);
    expect(result.err).toContain("usage: bourse <command>");
  });
});

describe("bourse start and the back-office commands", () => {
  it("starts the server, creates a user, deposits and withdraws through it, and stops on SIGTERM", async () => {
    const directory = dataDirectory();
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const environment = {
      ...process.env,
      BOURSE_DATA_DIR: directory,
      BOURSE_PORT: String(port),
      BOURSE_FEED: "push",
      // Closed to the public, open to the back office: `user create` still creates users.
      BOURSE_SIGNUP: "closed",
    };
    const bourse = spawnBourse(environment);
    try {
      await bourse.waitFor("Bourse is running at");
      expect(bourse.printed()).toContain(`Bourse is running at http://127.0.0.1:${port}`);
      expect(bourse.printed()).toContain("/docs");
      // A first start migrates, and says what it applied, as `bourse migrate` does.
      expect(bourse.printed()).toContain('Bourse: platform schema migrated: applied migrations 1 "platform data"');
      expect(bourse.printed()).toContain(
        'Bourse: journal schema migrated: applied migrations 1 "journal and snapshots"',
      );
      // The trading day's end, whose default moved (the audit of an upgrade of 7 December, ninth session).
      expect(bourse.printed()).toContain(", feed push, daily rollover 17:00 America/New_York (BOURSE_ROLLOVER_TIME)");

      const created = await run(
        ["user", "create", "--email", "desk@example.com", "--password", "back office pass"],
        environment,
      );
      expect(created.err).toBe("");
      const login = Number(/account (\d+)/.exec(created.out)?.[1]);
      expect(created.out).toContain(`created user desk@example.com with account ${login} (10000 USD)`);
      // A password on the command line is in the process list for every user of the machine: --password-stdin
      // takes it from the first line of standard input instead.
      const piped = await run(
        ["user", "create", "--email", "piped@example.com", "--password-stdin"],
        environment,
        "piped pass phrase\nsecond line\n",
      );
      expect(piped.err).toBe("");
      const pipedLogin = Number(/account (\d+)/.exec(piped.out)?.[1]);
      const signIn = (password: string) =>
        fetch(`http://127.0.0.1:${port}/api/v1/login`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ email: "piped@example.com", password }),
        });
      expect((await signIn("piped pass phrase")).status).toBe(200);
      const walkIn = await fetch(`http://127.0.0.1:${port}/api/v1/signup`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ email: "walk-in@example.com", password: "a long password", name: "Walk In" }),
      });
      expect(walkIn.status).toBe(403);
      expect(((await walkIn.json()) as { error: string }).error).toBe("SIGNUP_CLOSED");
      expect((await signIn("piped pass phrase\nsecond line")).status).toBe(401);
      expect(pipedLogin).toBeGreaterThan(login);
      // The failure names the command as its usage does ("user create", not "user").
      const again = await run(
        ["user", "create", "--email", "desk@example.com", "--password", "back office pass"],
        environment,
      );
      expect(again.code).toBe(ExitCode.REFUSED);
      expect(again.err).toMatch(/^bourse user create failed: EMAIL_TAKEN/);
      const deposit = ["deposit", String(login), "250.50", "--comment", "wire", "--reference", "wire-77"];
      const deposited = await run(deposit, environment);
      expect(deposited.out).toMatch(new RegExp(`^account ${login}: balance 10250\\.5 USD \\(operation \\d+\\)$`));
      const operation = /operation (\d+)/.exec(deposited.out)![1];
      // A retry after a lost answer: the first deposit, nothing deposited again.
      expect((await run(deposit, environment)).out).toBe(
        `account ${login}: balance 10250.5 USD (operation ${operation}, done before: nothing moved again)`,
      );
      const withdrawn = await run(["withdraw", String(login), "0.50"], environment);
      expect(withdrawn.out).toMatch(new RegExp(`^account ${login}: balance 10250 USD \\(operation \\d+\\)$`));
      const refused = await run(["withdraw", String(login), "1000000"], environment);
      expect(refused.code).toBe(ExitCode.REFUSED);
      expect(refused.err).toContain("NO_MONEY");
    } finally {
      bourse.child.kill("SIGTERM");
    }
    expect(await bourse.exited).toBe(0);
  });

  // On be20657 a start that failed printed its error and stayed up: the listener answered /healthz "ok", the
  // first SIGTERM was swallowed, and a supervisor saw a live server.
  it("exits with FAILED and a message naming the damage when the journal is corrupt before its end", async () => {
    const directory = dataDirectory();
    await journalWithSession(directory);
    damageJournalRow(directory, 1);
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const child = spawn(process.execPath, [path.join(import.meta.dirname, "../bin/bourse.mjs"), "start"], {
      env: { ...process.env, BOURSE_DATA_DIR: directory, BOURSE_PORT: String(port), BOURSE_FEED: "push" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let printed = "";
    child.stdout.on("data", (chunk: Buffer) => (printed += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (printed += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const timeout = setTimeout(() => child.kill("SIGKILL"), 30_000);
    try {
      expect(await exited).toBe(ExitCode.FAILED);
    } finally {
      clearTimeout(timeout);
    }
    expect(printed).toMatch(/bourse start failed: .*journal corrupt at sequence 1/);
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  });

  it("says the server cannot be reached when it is not running", async () => {
    const result = await run(["deposit", "100001", "10"], { BOURSE_DATA_DIR: dataDirectory(), BOURSE_PORT: "1" });
    // Found by the audit of an operator's journey of 7 December (sixth session): a payment script could not tell this
    // (the outcome unknown: send again with the same reference) from a refusal (exit 3 both).
    expect(result.code).toBe(ExitCode.UNAVAILABLE);
    // Without --reference one was made for it, and told, so that the retry cannot move the money twice.
    expect(result.err).toMatch(/send it again with --reference cli-[0-9a-f-]{36}, which moves the money once/);
    expect(result.err).toContain("cannot reach the server");
  });

  it("answers a malformed back-office command with the usage", async () => {
    const result = await run(["deposit", "abc"], { BOURSE_DATA_DIR: dataDirectory() });
    expect(result.code).toBe(ExitCode.USAGE);
  });

  // Unknown options were dropped in silence: `deposit 100001 10 --coment x` deposited without the comment.
  it("refuses an option the command does not take, or one given twice, before doing anything", async () => {
    // BOURSE_PORT 1: had the command gone on, it would have failed to reach the server instead.
    const environment = { BOURSE_DATA_DIR: dataDirectory(), BOURSE_PORT: "1" };
    const typo = await run(["deposit", "100001", "10", "--coment", "x"], environment);
    expect(typo.code).toBe(ExitCode.USAGE);
    expect(typo.err).toContain("unknown option --coment (this command takes --comment, --reference)");
    const twice = await run(["withdraw", "100001", "10", "--comment", "a", "--comment", "b"], environment);
    expect(twice.code).toBe(ExitCode.USAGE);
    expect(twice.err).toContain("--comment is given twice");
    const user = await run(
      ["user", "create", "--email", "a@example.com", "--password", "p", "--admin", "yes"],
      environment,
    );
    expect(user.code).toBe(ExitCode.USAGE);
    expect((await run(["journal", "--from", "3"], environment)).code).toBe(ExitCode.USAGE);
  });

  it("--password-stdin reads a pipe to its end, and refuses a terminal (it would wait, showing what is typed)", async () => {
    async function* chunks() {
      yield Buffer.from("pass ");
      yield Buffer.from("phrase\n");
    }
    expect(await readStandardInput(chunks())).toBe("pass phrase\n");
    const terminal = Object.assign(chunks(), { isTTY: true });
    await expect(readStandardInput(terminal)).rejects.toThrow("standard input is a terminal: pipe the password in");
  });

  it("user create takes exactly one of --password-stdin and --password, and refuses an empty first line", async () => {
    const environment = { BOURSE_DATA_DIR: dataDirectory(), BOURSE_PORT: "1" };
    const create = ["user", "create", "--email", "a@example.com"];
    const neither = await run(create, environment);
    expect(neither.code).toBe(ExitCode.USAGE);
    expect(neither.err).toContain("one of --password-stdin and --password is required");
    const both = await run([...create, "--password-stdin", "--password", "p"], environment, "p\n");
    expect(both.code).toBe(ExitCode.USAGE);
    expect(both.err).toContain("one of --password-stdin and --password is required");
    const empty = await run([...create, "--password-stdin"], environment, "\nlater line\n");
    expect(empty.code).toBe(ExitCode.USAGE);
    expect(empty.err).toContain("--password-stdin read no password: its first line is empty");
    // With a password read, it goes on to the server (here: none listening).
    const read = await run([...create, "--password-stdin"], environment, "secret\r\n");
    expect(read.code).toBe(ExitCode.UNAVAILABLE);
    expect(read.err).toContain("cannot reach the server");
  });
});

const postgresUrl = process.env.BOURSE_TEST_PG_URL;
if (!postgresUrl) console.warn("cli.test.ts: the PostgreSQL cases are skipped, BOURSE_TEST_PG_URL is not set");

/** Runs one statement on the test server's PostgreSQL, on a connection of its own. */
async function runPostgres(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: postgresUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

describe.skipIf(!postgresUrl)("the storage commands on PostgreSQL", () => {
  const database = `bourse_cli_test_${process.pid}_${Date.now()}`;
  let databaseUrl = "";
  beforeAll(async () => {
    const url = new URL(postgresUrl!);
    url.pathname = `/${database}`;
    databaseUrl = url.toString();
    await runPostgres(`CREATE DATABASE "${database}"`);
  });
  afterAll(async () => {
    await runPostgres(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
  });

  it("migrate names the migrations it applies to the journal and the platform tables; again, it says both are up to date", async () => {
    await expectMigrateReports(
      { BOURSE_DATA_DIR: dataDirectory(), BOURSE_DATABASE_URL: databaseUrl },
      `PostgreSQL ${databaseUrl}`,
      `PostgreSQL ${databaseUrl}`,
      '6 "history indexes by symbol"',
    );
  });

  // Waiting would not change these answers: the URL must.
  it("start refuses at once a database that does not exist and a user PostgreSQL does not know, exit 2", async () => {
    const url = new URL(postgresUrl!);
    url.pathname = `/${database}_missing`;
    const missing = spawnBourse({
      BOURSE_DATA_DIR: dataDirectory(),
      BOURSE_FEED: "push",
      BOURSE_PORT: "0",
      BOURSE_DATABASE_URL: url.toString(),
    });
    expect(await missing.exited).toBe(ExitCode.USAGE);
    expect(missing.printed()).toContain(
      `bourse start: configuration error: BOURSE_DATABASE_URL: PostgreSQL at ${url.host} refused the connection: database "${database}_missing" does not exist (3D000); not retried`,
    );
    expect(missing.printed()).not.toContain("retrying");
    url.pathname = `/${database}`;
    url.username = "no_such_bourse_user";
    url.password = "the-db-password-0123";
    const unknownUser = await run(["migrate"], {
      BOURSE_DATA_DIR: dataDirectory(),
      BOURSE_DATABASE_URL: url.toString(),
    });
    expect(unknownUser.code).toBe(ExitCode.USAGE);
    expect(unknownUser.err).toContain(
      `bourse migrate: configuration error: BOURSE_DATABASE_URL: PostgreSQL at ${url.host} refused the connection: role "no_such_bourse_user" does not exist (28000); not retried`,
    );
    expect(unknownUser.err).not.toContain("the-db-password-0123");
  });
});
