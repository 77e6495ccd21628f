import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createJournal } from "@bourse/store";
import { tradingSession, toRecords } from "../../store/test/trading-session.ts";
import { ExitCode, runCommandLine } from "../src/index.ts";

const directories: string[] = [];
afterEach(() => {
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

function dataDirectory(): string {
  const directory = mkdtempSync(path.join(tmpdir(), "bourse-cli-"));
  directories.push(directory);
  return directory;
}

async function run(argumentsList: string[], environment: NodeJS.ProcessEnv) {
  const lines: string[] = [];
  const errors: string[] = [];
  const code = await runCommandLine(
    argumentsList,
    { info: (line) => lines.push(line), error: (line) => errors.push(line) },
    environment,
  );
  return { code, out: lines.join("\n"), err: errors.join("\n") };
}

async function journalWithSession(directory: string): Promise<number> {
  const journal = createJournal(path.join(directory, "bourse.sqlite"));
  await journal.open();
  const records = toRecords(tradingSession().events);
  await journal.append(records);
  await journal.close();
  return records.length;
}

describe("bourse command line", () => {
  it("migrate creates the schema in the data directory", async () => {
    const directory = path.join(dataDirectory(), "nested");
    const result = await run(["migrate"], { BOURSE_DATA_DIR: directory });
    expect(result).toMatchObject({ code: ExitCode.OK, err: "" });
    expect(result.out).toContain(
      `SQLite ${path.join(directory, "bourse.sqlite")}: schema up to date, journal at sequence 0`,
    );
  });

  it("verify recomputes the ledgers of a real journal and finds no difference", async () => {
    const directory = dataDirectory();
    const events = await journalWithSession(directory);
    const result = await run(["verify"], { BOURSE_DATA_DIR: directory });
    expect(result.code).toBe(ExitCode.OK);
    expect(result.out).toContain(`verified ${events} events, 2 accounts`);
    expect(result.out).toContain("no differences");
  });

  it("verify refuses a journal damaged before its end and names the sequence", async () => {
    const directory = dataDirectory();
    await journalWithSession(directory);
    const database = new Database(path.join(directory, "bourse.sqlite"));
    database
      .prepare("UPDATE journal SET payload = replace(payload, '\"amount\":', '\"amount\":9') WHERE sequence = 3")
      .run();
    database.close();
    const result = await run(["verify"], { BOURSE_DATA_DIR: directory });
    expect(result.code).toBe(ExitCode.FAILED);
    expect(result.err).toMatch(/journal corrupt at sequence 3/);
  });

  it("answers an unknown command with the usage and exit code 2", async () => {
    const result = await run(["frobnicate"], { BOURSE_DATA_DIR: dataDirectory() });
    expect(result.code).toBe(ExitCode.USAGE);
    expect(result.err).toContain("usage: bourse <command>");
  });
});
