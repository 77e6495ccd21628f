/**
 * The `bourse` command line. Commands so far: `migrate` (create or upgrade the schema) and
 * `verify` (recompute every account's ledger from the journal and report any difference).
 * `start`, `user create`, `deposit` and `withdraw` come with the server.
 */
import { defaultEngineConfig } from "@bourse/core";
import { createJournal, createPlatformStore, verify } from "@bourse/store";
import { mkdirSync } from "node:fs";
import { describeDatabase, storageSettings } from "./settings.ts";

/** Process exit codes of the command line, by meaning. */
export const ExitCode = {
  OK: 0,
  DIFFERENCES_FOUND: 1,
  USAGE: 2,
  FAILED: 3,
} as const;

const USAGE = `usage: bourse <command>

commands:
  migrate   create or upgrade the database schema (also done at every start)
  verify    recompute every account's ledger from the journal and report any difference

environment:
  BOURSE_DATABASE_URL   postgres://… for PostgreSQL; unset: SQLite in BOURSE_DATA_DIR (default ./data)
`;

export interface Output {
  info(line: string): void;
  error(line: string): void;
}

const consoleOutput: Output = {
  info: (line) => process.stdout.write(line + "\n"),
  error: (line) => process.stderr.write(line + "\n"),
};

export async function main(
  argumentsList: readonly string[],
  output: Output = consoleOutput,
  environment: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const [command, ...rest] = argumentsList;
  if (command === undefined || command === "help" || command === "--help") {
    output.info(USAGE);
    return command === undefined ? ExitCode.USAGE : ExitCode.OK;
  }
  if (rest.length > 0 || (command !== "migrate" && command !== "verify")) {
    output.error(`unknown command: ${argumentsList.join(" ")}\n\n${USAGE}`);
    return ExitCode.USAGE;
  }
  const settings = storageSettings(environment);
  if (!/^postgres(ql)?:\/\//i.test(settings.databaseUrl)) mkdirSync(settings.dataDirectory, { recursive: true });
  const journal = createJournal(settings.databaseUrl);
  try {
    const report = await journal.open();
    output.info(
      `${describeDatabase(settings.databaseUrl)}: schema up to date, journal at sequence ${report.lastSequence}`,
    );
    if (report.droppedTornRecords > 0)
      output.info(`dropped ${report.droppedTornRecords} torn record(s) at the end of the journal`);
    if (command === "migrate") {
      const platform = createPlatformStore(settings.platformDatabaseUrl);
      try {
        await platform.open();
        output.info(`${describeDatabase(settings.platformDatabaseUrl)}: platform schema up to date`);
      } finally {
        await platform.close();
      }
      return ExitCode.OK;
    }
    const result = await verify(journal, defaultEngineConfig());
    output.info(`verified ${result.lastSequence} events, ${result.accounts} accounts, state hash ${result.stateHash}`);
    if (result.differences.length === 0) {
      output.info("no differences");
      return ExitCode.OK;
    }
    for (const difference of result.differences) output.error(`${difference.subject}: ${difference.detail}`);
    return ExitCode.DIFFERENCES_FOUND;
  } catch (error) {
    output.error(`bourse ${command} failed: ${error instanceof Error ? error.message : String(error)}`);
    return ExitCode.FAILED;
  } finally {
    await journal.close();
  }
}
