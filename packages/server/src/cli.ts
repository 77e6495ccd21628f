/**
 * The `bourse` command line.
 * - `start`: the server (engine, storage, feed, APIs) in this process, until SIGINT or SIGTERM.
 * - `migrate`: create or upgrade the database schema (also done at every start), naming the migrations it applied.
 * - `verify`: recompute every account's ledger from the journal and report any difference.
 * - `journal`: print the journal's events, one JSON line each (the rows hold them in a binary form).
 * - `instruments`: print the default instrument set as an instruments file (BOURSE_INSTRUMENTS_FILE) to start from.
 * - `groups`: print the default account groups as a groups file (BOURSE_GROUPS_FILE) to start from.
 * - `user create`, `deposit`, `withdraw`: back-office actions, sent to the running server's admin API
 *   (the engine is the one writer of the journal: a second process must not write it).
 */
import { createRequire } from "node:module";
import { randomUUID } from "node:crypto";
import { createServerLog } from "./server-log.ts";
import { defaultEngineConfig } from "@bourse/core";
import {
  createJournal,
  createPlatformStore,
  PostgresRefusedError,
  PostgresUnreachableError,
  eventAccountId,
  isPostgresUrl,
  verify,
  type EventJournal,
} from "@bourse/store";
import {
  ConfigError,
  dataDirectoryWarning,
  loadInstruments,
  loadServerConfig,
  loadStorageSettings,
  makeDataDirectory,
  makeSqliteFiles,
  unknownSettings,
  type ServerConfig,
} from "./config.ts";
import { defaultGroupsFileText } from "./groups-file.ts";
import { defaultInstrumentsFile } from "./instruments-file.ts";
import { minuteText } from "./market-data.ts";
import { createServer } from "./server.ts";
import { existsSync } from "node:fs";
import { describeDatabase, describeMigrations, waitForDatabases } from "./settings.ts";

/** Process exit codes of the command line, by meaning. */
export const ExitCode = {
  OK: 0,
  DIFFERENCES_FOUND: 1,
  USAGE: 2,
  FAILED: 3,
  /** The server answered no (NO_MONEY, EMAIL_TAKEN, DUPLICATE_REFERENCE…): nothing was done; the same request fails again. */
  REFUSED: 4,
  /**
   * No answer, or one the server could not confirm (unreachable, 503 ENGINE_UNAVAILABLE or OUTCOME_UNKNOWN, 429): the
   * outcome is unknown; send the same request again, with the same --reference for money. Found by the audit of an
   * operator's journey of 7 December (sixth session): both were exit 3, and a payment script could not tell them apart.
   * Also `start` and the storage commands when PostgreSQL stayed unreachable for BOURSE_DATABASE_CONNECT_TIMEOUT_SECONDS:
   * run them again once it is up.
   */
  UNAVAILABLE: 5,
} as const;

/** The admin API answered a definite refusal (a 4xx other than 429). */
class AdminRefusal extends Error {}
/** The admin API did not answer, or answered that it could not act or confirm (5xx, 429). */
class AdminUnavailable extends Error {}

/** This build's version, as its package says (`bourse --version`). */
const PACKAGE_VERSION = (createRequire(import.meta.url)("../package.json") as { version: string }).version;

const USAGE = `usage: bourse <command>

commands:
  start                                   run the server (Client API, admin API, engine, quote feed)
  migrate                                 create or upgrade the database schema (also done at every start),
                                          naming each migration it applies, or saying the schema is up to date
  verify                                  recompute every account's ledger from the journal, report differences
  journal [--after S] [--limit N]         print the journal's events after sequence S (0), N at most (all), as
                                          JSON lines: {"sequence","type","time","accountId","event"}
  instruments                             print the default instruments as a file for BOURSE_INSTRUMENTS_FILE
  groups                                  print the default account groups as a file for BOURSE_GROUPS_FILE
  --version                               print this build's version
  user create --email E (--password-stdin | --password P) [--name N]
                                          create a user with a funded demo account (server must be running);
                                          --password-stdin reads the password from the first line of standard
                                          input (a --password argument is visible to every user of the machine)
  deposit <login> <amount> [--comment C] [--reference R]
                                          deposit to an account, amount in its currency (server must be running);
                                          a retry with the same reference moves no money again
  withdraw <login> <amount> [--comment C] [--reference R]
                                          withdraw from an account (server must be running)

exit codes: 0 done; 1 verify found differences; 2 usage or configuration error; 3 failed; 4 refused by the
  server (nothing done: the same request fails again); 5 no answer or an outcome the server could not confirm
  (send it again, with the same --reference for money), or PostgreSQL not reachable in time (run it again)

environment (or a JSON file named by BOURSE_CONFIG, default ./bourse.config.json):
  BOURSE_PORT (8080)  BOURSE_HOST (127.0.0.1)  BOURSE_DATA_DIR (./data)
  BOURSE_DATABASE_URL   postgres://… for PostgreSQL; unset: SQLite in BOURSE_DATA_DIR
  BOURSE_DATABASE_CONNECT_TIMEOUT_SECONDS  how long to go on trying to reach PostgreSQL at start (30)
  BOURSE_DATABASE_POOL_SIZE  PostgreSQL connections of each pool, the journal's and the platform data's (4)
  BOURSE_FEED           simulator (default) | push | csv:PATH
  BOURSE_INSTRUMENTS_FILE  the instruments traded, a JSON list (unset: the default set; see \`bourse instruments\`)
  BOURSE_GROUPS_FILE    the account groups, a JSON list (unset: standard and pro; see \`bourse groups\`)
  BOURSE_ROLLOVER_TIME  the daily rollover, HH:MM UTC or HH:MM and a zone ("17:00 America/New_York")
  BOURSE_CANDLE_DAY_START  when candles' day starts, as BOURSE_ROLLOVER_TIME (00:00)
  BOURSE_ADMIN_TOKEN    the admin API's bearer token (unset: generated and kept in the data directory)
  BOURSE_JWT_SECRET     the token signing secret (unset: generated and kept in the data directory)
  BOURSE_DEMO_BALANCE   a new demo account's first deposit (10000)
  BOURSE_SIGNUP         open (default): anyone signs up | closed: users only from \`bourse user create\` (admin API)
  BOURSE_TRUST_PROXY    reverse proxies whose X-Forwarded-For names the client, e.g. 127.0.0.1 (unset: none)
  BOURSE_URL            where the back-office commands find the server (http://127.0.0.1:BOURSE_PORT)
`;

export interface Output {
  info(line: string): void;
  error(line: string): void;
}

/** Standard input, whole, as text: where `--password-stdin` reads from. */
export type InputReader = () => Promise<string>;

/** Standard input, at most MAX_STANDARD_INPUT_BYTES of it (a password is a line, not a file). */
const MAX_STANDARD_INPUT_BYTES = 64 * 1024;

export async function readStandardInput(
  input: AsyncIterable<Buffer> & { readonly isTTY?: boolean } = process.stdin,
): Promise<string> {
  // From a terminal it would wait for the end of input with the password shown as typed (found by the review).
  if (input.isTTY)
    throw new UsageError(
      `standard input is a terminal: pipe the password in, e.g. printf '%s\\n' "$PASSWORD" | bourse ...`,
    );
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of input) {
    size += chunk.length;
    if (size > MAX_STANDARD_INPUT_BYTES)
      throw new UsageError(`standard input is over ${MAX_STANDARD_INPUT_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** The first line of standard input without its line ending: `printf '%s\n' "$PASSWORD" | bourse ...`. */
async function passwordFromInput(input: InputReader): Promise<string> {
  const password = (await input()).split(/\r?\n/, 1)[0]!;
  if (password === "") throw new UsageError("--password-stdin read no password: its first line is empty");
  return password;
}

const consoleOutput: Output = {
  info: (line) => process.stdout.write(line + "\n"),
  error: (line) => process.stderr.write(line + "\n"),
};

class UsageError extends Error {}

/**
 * `--name value` options and positional arguments. An option the command does not take, or one given twice, is
 * a usage error: a mistyped `--coment` must not be dropped in silence.
 */
function parseArguments(
  argumentsList: readonly string[],
  known: readonly string[],
  /** Options without a value, present or not (their value is ""). */
  flags: readonly string[] = [],
): { positional: string[]; options: Map<string, string> } {
  const positional: string[] = [];
  const options = new Map<string, string>();
  const taken = [...known, ...flags];
  for (let index = 0; index < argumentsList.length; index += 1) {
    const argument = argumentsList[index]!;
    if (argument.startsWith("--")) {
      const name = argument.slice(2);
      if (!taken.includes(name))
        throw new UsageError(
          `unknown option ${argument}${taken.length > 0 ? ` (this command takes ${taken.map((option) => `--${option}`).join(", ")})` : ""}`,
        );
      if (options.has(name)) throw new UsageError(`${argument} is given twice`);
      if (flags.includes(name)) {
        options.set(name, "");
        continue;
      }
      const value = argumentsList[index + 1];
      if (value === undefined || value.startsWith("--")) throw new UsageError(`${argument} needs a value`);
      options.set(name, value);
      index += 1;
    } else positional.push(argument);
  }
  return { positional, options };
}

function requireOption(options: Map<string, string>, name: string): string {
  const value = options.get(name);
  if (value === undefined) throw new UsageError(`--${name} is required`);
  return value;
}

/** Calls the running server's admin API; throws with the server's error code and message. */
async function adminCall(
  config: ServerConfig,
  environment: NodeJS.ProcessEnv,
  method: string,
  path: string,
  body: unknown,
) {
  const host = config.host === "0.0.0.0" || config.host === "::" ? "127.0.0.1" : config.host;
  const base = environment.BOURSE_URL ?? `http://${host.includes(":") ? `[${host}]` : host}:${config.port}`;
  let response: Response;
  try {
    response = await fetch(new URL(path, base), {
      method,
      headers: { authorization: `Bearer ${config.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  } catch (error) {
    throw new AdminUnavailable(
      `cannot reach the server at ${base} (is \`bourse start\` running?): ${(error as Error).message}`,
    );
  }
  const answer = (await response.json().catch(() => null)) as {
    data?: unknown;
    error?: string;
    message?: string;
  } | null;
  if (!response.ok) {
    const message = `${answer?.error ?? response.status}: ${answer?.message ?? response.statusText}`;
    throw response.status >= 500 || response.status === 429 ? new AdminUnavailable(message) : new AdminRefusal(message);
  }
  return answer?.data as Record<string, unknown>;
}

async function startServer(config: ServerConfig, output: Output): Promise<number> {
  const log = createServerLog(config.logFormat, config.logRequests, { out: output.info, error: output.error });
  const server = await createServer({ config, log, httpLog: log.requests });
  let stopSignalled = (): void => undefined;
  const stop = new Promise<void>((resolve) => (stopSignalled = resolve));
  // A signal while the start waits for PostgreSQL ends the wait at once, not when its time is out.
  const stopped = (): void => {
    stopSignalled();
    server.platform.abandonStart();
  };
  process.once("SIGINT", stopped);
  process.once("SIGTERM", stopped);
  // The trading day's end, said at every start: its default moved from 22:00 UTC to 17:00 New York, an hour earlier in
  // the US summer, and an operator upgrading should see it (the audit of an upgrade of 7 December, ninth session).
  const rollover = `${minuteText(config.trading.rollover.minuteOfDay)} ${config.trading.rollover.timeZone}`;
  log.info(
    `Bourse: ${describeDatabase(config.storage.databaseUrl)}, feed ${config.feed.kind}, daily rollover ${rollover} (BOURSE_ROLLOVER_TIME)`,
  );
  const exposed = dataDirectoryWarning(config.storage.dataDirectory);
  if (exposed) log.warn(`bourse start: warning: ${exposed}`);
  let address: string;
  try {
    address = await server.listen();
  } catch (error) {
    // Not started: the signals end the process again, and nothing is left open to keep it alive.
    process.off("SIGINT", stopped);
    process.off("SIGTERM", stopped);
    // An address this machine does not have is a setting's fault, exit 2 as every other (found by the audit of an
    // operator's journey of 7 December, sixth session: "getaddrinfo ENOTFOUND", exit 3). The listener's own lookup
    // only: a PostgreSQL host that did not resolve was blamed on BOURSE_HOST.
    const { code, syscall, hostname } = error as NodeJS.ErrnoException & { hostname?: string };
    const lookupOfHost = syscall === "getaddrinfo" && hostname === config.host;
    if (
      ((code === "ENOTFOUND" || code === "EAI_AGAIN") && lookupOfHost) ||
      (code === "EADDRNOTAVAIL" && syscall === "listen")
    )
      throw new ConfigError(
        `BOURSE_HOST ${JSON.stringify(config.host)} is no address of this machine to listen on (${code})`,
      );
    throw error;
  }
  const base = address.replace("://0.0.0.0", "://127.0.0.1").replace("://[::]", "://127.0.0.1");
  // The banner is for a person at a terminal; a JSON log gets one line a collector can read.
  if (config.logFormat === "json")
    log.info(
      `Bourse is running at ${base}: /docs, /api/v1, /api/v1/ws, /v1/api, /admin/v1, /healthz, /readyz, /metrics`,
    );
  else
    output.info(
      [
        "",
        `Bourse is running at ${base}`,
        `  browser:     ${base}/docs            (the API reference, try it out)`,
        `  client API:  ${base}/api/v1          (POST /api/v1/signup to get a token and a funded demo account)`,
        `  stream:      ${base.replace(/^http/, "ws")}/api/v1/ws?token=<token>   (quotes, depth, account events; seed 002)`,
        `  automation:  ${base}/v1/api          (Authorization: Bearer tk_live_…, keys from PUT /api/v1/api-keys)`,
        `  pusher:      POST ${base}/api/v2/ws/session   (then pusher-js at the wsHost/wsPort/appKey it answers)`,
        `  admin API:   ${base}/admin/v1        (Authorization: Bearer <token in ${config.storage.dataDirectory}/admin-token or BOURSE_ADMIN_TOKEN>)`,
        `  health:      ${base}/healthz  ${base}/readyz  ${base}/metrics`,
        "Stop with Ctrl+C.",
      ].join("\n"),
    );
  await stop;
  if (config.shutdownDrainSeconds > 0) {
    // Serving on while /readyz says 503, so a load balancer takes the server out before its connections end; a second
    // signal cuts it short.
    log.info(`Bourse: draining for ${config.shutdownDrainSeconds} s (/readyz answers 503; requests are still served)`);
    server.platform.beginDraining();
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        process.off("SIGINT", done);
        process.off("SIGTERM", done);
        resolve();
      };
      const timer = setTimeout(done, config.shutdownDrainSeconds * 1000);
      process.once("SIGINT", done);
      process.once("SIGTERM", done);
    });
  }
  log.info("Bourse: stopping (answering the commands in flight, closing the journal)");
  await server.close();
  return ExitCode.OK;
}

export async function main(
  argumentsList: readonly string[],
  output: Output = consoleOutput,
  environment: NodeJS.ProcessEnv = process.env,
  input: InputReader = readStandardInput,
): Promise<number> {
  const [command, ...rest] = argumentsList;
  if (command === undefined || command === "help" || command === "--help") {
    output.info(USAGE);
    return command === undefined ? ExitCode.USAGE : ExitCode.OK;
  }
  if (command === "--version" || command === "version") {
    output.info(`bourse ${PACKAGE_VERSION}`);
    return ExitCode.OK;
  }
  try {
    switch (command) {
      case "migrate":
      case "verify":
        if (rest.length > 0) throw new UsageError(`${command} takes no arguments`);
        return await storageCommand(command, output, environment);
      case "journal": {
        const { positional, options } = parseArguments(rest, ["after", "limit"]);
        if (positional.length > 0) throw new UsageError("usage: bourse journal [--after S] [--limit N]");
        const after = sequenceOption(options, "after", 0);
        const limit = sequenceOption(options, "limit", Number.MAX_SAFE_INTEGER);
        return await storageCommand({ after, limit }, output, environment);
      }
      case "instruments":
        if (rest.length > 0) throw new UsageError("instruments takes no arguments");
        output.info(defaultInstrumentsFile().trimEnd());
        return ExitCode.OK;
      case "groups":
        if (rest.length > 0) throw new UsageError("groups takes no arguments");
        output.info(defaultGroupsFileText().trimEnd());
        return ExitCode.OK;
      case "start": {
        if (rest.length > 0) throw new UsageError("start takes no arguments: configure it with the environment");
        const config = loadServerConfig(environment);
        for (const { name, meant } of unknownSettings(environment))
          output.error(
            `bourse start: warning: ${name} is not a setting and is ignored${meant ? ` (did you mean ${meant}?)` : ""}`,
          );
        return await startServer(config, output);
      }
      case "user": {
        const usage = "usage: bourse user create --email E (--password-stdin | --password P) [--name N]";
        const { positional, options } = parseArguments(rest, ["email", "password", "name"], ["password-stdin"]);
        if (positional.length !== 1 || positional[0] !== "create") throw new UsageError(usage);
        if (options.has("password") === options.has("password-stdin"))
          throw new UsageError(`one of --password-stdin and --password is required\n${usage}`);
        const email = requireOption(options, "email");
        const config = loadServerConfig(environment);
        const password = options.has("password") ? requireOption(options, "password") : await passwordFromInput(input);
        const data = await adminCall(config, environment, "PUT", "/admin/v1/users", {
          email,
          password,
          name: options.get("name") ?? email.split("@")[0],
        });
        const account = data.account as { login: number; balance: number; currency: string };
        output.info(
          `created user ${requireOption(options, "email")} with account ${account.login} (${account.balance} ${account.currency})`,
        );
        return ExitCode.OK;
      }
      case "deposit":
      case "withdraw": {
        const { positional, options } = parseArguments(rest, ["comment", "reference"]);
        const [login, amount] = positional;
        if (positional.length !== 2 || !/^[0-9]{1,15}$/.test(login!))
          throw new UsageError(`usage: bourse ${command} <login> <amount> [--comment C] [--reference R]`);
        // Always with a reference: one the operator gave, or one made here and told when the outcome is unknown, so
        // that the retry exit code 5 calls for cannot move the money twice (found by the review of 7 December, sixth
        // session: without --reference a retry after OUTCOME_UNKNOWN deposited again).
        const reference = options.get("reference") ?? `cli-${randomUUID()}`;
        let data: Record<string, unknown>;
        try {
          data = await adminCall(
            loadServerConfig(environment),
            environment,
            "POST",
            `/admin/v1/accounts/${login}/${command}`,
            { amount: amount!, ...(options.has("comment") ? { comment: options.get("comment") } : {}), reference },
          );
        } catch (error) {
          if (error instanceof AdminUnavailable && !options.has("reference"))
            throw new AdminUnavailable(
              `${error.message}; send it again with --reference ${reference}, which moves the money once whatever happened`,
            );
          throw error;
        }
        output.info(
          `account ${login}: balance ${String(data.balance)} ${String(data.currency)} (operation ${String(data.operationId)}` +
            `${data.duplicate === true ? ", done before: nothing moved again" : ""})`,
        );
        return ExitCode.OK;
      }
      default:
        throw new UsageError(`unknown command: ${argumentsList.join(" ")}`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      output.error(`${error.message}\n\n${USAGE}`);
      return ExitCode.USAGE;
    }
    if (error instanceof ConfigError) {
      output.error(`bourse ${command}: configuration error: ${error.message}`);
      return ExitCode.USAGE;
    }
    // PostgreSQL answered and refused the sign-in or the database: waiting would not change its answer.
    if (error instanceof PostgresRefusedError) {
      output.error(`bourse ${command}: configuration error: BOURSE_DATABASE_URL: ${error.message}`);
      return ExitCode.USAGE;
    }
    if (error instanceof PostgresUnreachableError) {
      output.error(
        `bourse ${command} failed: BOURSE_DATABASE_URL: ${error.message} (BOURSE_DATABASE_CONNECT_TIMEOUT_SECONDS says how long to wait)`,
      );
      return ExitCode.UNAVAILABLE;
    }
    // `user create`, not `user`: the command as the usage names it.
    const named = command === "user" ? "user create" : command;
    output.error(`bourse ${named} failed: ${error instanceof Error ? error.message : String(error)}`);
    if (error instanceof AdminRefusal) return ExitCode.REFUSED;
    if (error instanceof AdminUnavailable) return ExitCode.UNAVAILABLE;
    return ExitCode.FAILED;
  }
}

/** A non-negative whole number option (`--after`, `--limit`), or `fallback` when absent. */
function sequenceOption(options: Map<string, string>, name: string, fallback: number): number {
  const text = options.get(name);
  if (text === undefined) return fallback;
  if (!/^[0-9]{1,15}$/.test(text)) throw new UsageError(`--${name} takes a whole number, not ${text}`);
  return Number(text);
}

/** Events read from the journal per query while printing it: bounds what the command holds at once. */
const JOURNAL_PRINT_PAGE_EVENTS = 1000;

/** Prints the journal's events after `after`, `limit` at most, one JSON line each. */
async function printJournal(journal: EventJournal, after: number, limit: number, output: Output): Promise<void> {
  let printed = 0;
  let last = after;
  while (printed < limit) {
    const records = await journal.read(last, Math.min(JOURNAL_PRINT_PAGE_EVENTS, limit - printed));
    if (records.length === 0) break;
    for (const { sequence, event } of records)
      output.info(
        JSON.stringify({ sequence, type: event.type, time: event.time, accountId: eventAccountId(event), event }),
      );
    printed += records.length;
    last = records[records.length - 1]!.sequence;
  }
}

async function storageCommand(
  command: "migrate" | "verify" | { readonly after: number; readonly limit: number },
  output: Output,
  environment: NodeJS.ProcessEnv,
): Promise<number> {
  const settings = loadStorageSettings(environment);
  // `verify` and `journal` inspect a journal that is there: pointed at a mistyped directory they made a new, empty
  // one and answered "no differences".
  if (command !== "migrate" && !isPostgresUrl(settings.databaseUrl) && !existsSync(settings.databaseUrl))
    throw new Error(`no journal at ${settings.databaseUrl}: check BOURSE_DATA_DIR or BOURSE_DATABASE_URL`);
  // An inspection writes nothing, so needs no writable directory (a backup on a read-only disk is verified).
  if (command === "migrate") makeSqliteFiles(settings, [settings.databaseUrl, settings.platformDatabaseUrl]);
  else if (!isPostgresUrl(settings.databaseUrl)) makeDataDirectory(settings.dataDirectory);
  // As the start does: a `bourse migrate` run beside a database that is still starting waits for it.
  await waitForDatabases(settings, output.error);
  const journal = createJournal(settings.databaseUrl);
  try {
    // `verify` and `journal` inspect: a torn tail is reported, never dropped (they deleted an acknowledged record
    // whose last row was damaged, then answered "no differences"). `migrate` prepares the start, which drops it.
    const inspecting = command !== "migrate";
    const report = await journal.open({ keepTornTail: inspecting });
    // `journal` prints the events alone on standard output, so that it pipes into other programs: what it opened
    // goes to standard error.
    const tell = typeof command === "object" ? output.error : output.info;
    // An inspection migrates nothing: it opened a schema that is this build's, or refused it.
    const schema = inspecting ? "schema up to date" : describeMigrations("journal schema", report.appliedMigrations);
    tell(`${describeDatabase(settings.databaseUrl)}: ${schema}, journal at sequence ${report.lastSequence}`);
    const tornTail =
      report.droppedTornRecords === 0
        ? null
        : `the last ${report.droppedTornRecords} record(s) after sequence ${report.lastSequence} fail their checksum: ` +
          "a write that was never acknowledged, or damage to one that was";
    if (tornTail !== null && !inspecting) tell(`dropped ${tornTail}`);
    if (typeof command === "object") {
      await printJournal(journal, command.after, Math.min(command.limit, report.lastSequence - command.after), output);
      if (tornTail === null) return ExitCode.OK;
      output.error(`not printed: ${tornTail}`);
      return ExitCode.DIFFERENCES_FOUND;
    }
    if (command === "migrate") {
      const platform = createPlatformStore(settings.platformDatabaseUrl);
      try {
        const { appliedMigrations } = await platform.open();
        output.info(
          `${describeDatabase(settings.platformDatabaseUrl)}: ${describeMigrations("platform schema", appliedMigrations)}`,
        );
      } finally {
        await platform.close();
      }
      return ExitCode.OK;
    }
    const config = defaultEngineConfig({ instruments: loadInstruments(environment) });
    const result = await verify(journal, config, { through: report.lastSequence, readModels: journal });
    output.info(`verified ${result.lastSequence} events, ${result.accounts} accounts, state hash ${result.stateHash}`);
    // Damaged snapshots are known from the open alone: `latestSnapshot`, which verify reads, skips them.
    const differences = [
      ...result.differences,
      ...(tornTail === null ? [] : [{ subject: "journal", detail: `${tornTail}; \`bourse start\` drops them` }]),
      ...report.damagedSnapshots.map((sequence) => ({
        subject: `snapshot ${sequence}`,
        detail: "its checksum fails: recovery skips it and replays the events from an older snapshot or the start",
      })),
    ];
    if (differences.length === 0) {
      output.info("no differences");
      return ExitCode.OK;
    }
    for (const difference of differences) output.error(`${difference.subject}: ${difference.detail}`);
    // A server writing meanwhile changes rows verify compares as of its last sequence (an order filled, a position
    // closed since): say so rather than leave them for damage (found by the review of 7 December).
    const grown = (await journal.lastSequence()) - report.lastSequence;
    if (grown > 0)
      output.error(
        `the journal grew by ${grown} events while verify ran: a server is writing it, and rows those events changed ` +
          "show as differences; stop the server and verify again for a verdict",
      );
    return ExitCode.DIFFERENCES_FOUND;
  } finally {
    await journal.close();
  }
}
