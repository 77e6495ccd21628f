/**
 * The server's configuration: defaults, then an optional JSON file, then environment variables
 * (the environment wins, so a container can override a shipped file). Secrets left unset are generated
 * once and kept in the data directory, so a restart keeps sessions and the admin token valid.
 */
import { LOG_FORMATS, type LogFormat } from "./server-log.ts";
import {
  ACCOUNT_CURRENCIES,
  DEFAULT_INSTRUMENTS,
  MAX_ACCOUNT_MONEY,
  currencyDigits,
  defaultEngineConfig,
  formatDecimal,
  isAccountCurrency,
  isTimeZone,
  parseDecimal,
  TIME_ZONES,
  type EngineConfig,
  type InstrumentSpec,
  type TimeOfDayInZone,
} from "@bourse/core";
import { isPostgresUrl, makeDatabaseFile, makeDirectories } from "@bourse/store";
import { randomBytes } from "node:crypto";
import {
  accessSync,
  closeSync,
  constants as accessModes,
  existsSync,
  fsyncSync,
  linkSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { userInfo } from "node:os";
import path from "node:path";
import { parseTrustedProxies } from "./client-address.ts";
import { feedTuning, type FeedTuning } from "./feed/index.ts";
import { GroupsFileError, defaultGroupOf, readGroupsFile } from "./groups-file.ts";
import { InstrumentsFileError, checkConversions, readInstrumentsFile } from "./instruments-file.ts";
import {
  DEFAULT_DATABASE_CONNECT_TIMEOUT_SECONDS,
  DEFAULT_DATABASE_POOL_SIZE,
  storageSettings,
  type StorageSettings,
} from "./settings.ts";

/** BOURSE_DATABASE_POOL_SIZE at most: each pool's connections, well within a PostgreSQL server's 100 by default. */
const MAX_DATABASE_POOL_SIZE = 40;

export type FeedSettings =
  | { readonly kind: "simulator"; readonly seed: number }
  | { readonly kind: "push" }
  | { readonly kind: "csv"; readonly path: string };

/** The engine configuration's broker-set part (the rest is the instruments and the engine's own bounds). */
export interface TradingSettings {
  readonly groups: EngineConfig["groups"];
  readonly defaultGroup: EngineConfig["defaultGroup"];
  readonly leverageMax: EngineConfig["leverageMax"];
  readonly rollover: EngineConfig["rollover"];
  readonly tripleSwapWeekday: EngineConfig["tripleSwapWeekday"];
}

/** BOURSE_SIGNUP's choices. */
export const SIGNUP_POLICIES = ["open", "closed"] as const;
export type SignupPolicy = (typeof SIGNUP_POLICIES)[number];

export interface ServerConfig {
  readonly port: number;
  readonly host: string;
  readonly storage: StorageSettings;
  /** The instruments traded: BOURSE_INSTRUMENTS_FILE's, else the default set. */
  readonly instruments: readonly InstrumentSpec[];
  /** The engine's trading terms the broker sets: groups, leverage, rollover (`TradingSettings`). */
  readonly trading: TradingSettings;
  /**
   * When the chart day starts (BOURSE_CANDLE_DAY_START): candles D1 and the daily statistics are that day, and every
   * other timeframe's bars are placed on its clock (candle-clock.ts). 00:00 UTC by default.
   */
  readonly candleDayStart: TimeOfDayInZone;
  readonly feed: FeedSettings;
  /** The simulator's rate and the CSV replay's speed (BOURSE_FEED_RATE, BOURSE_FEED_REPLAY_SPEED). */
  readonly feedTuning: FeedTuning;
  /** The back office's bearer token (`/admin/v1`). */
  readonly adminToken: string;
  readonly jwtSecret: Uint8Array;
  /** How long a Client API token lives. */
  readonly sessionTtlSeconds: number;
  /** A new demo account's first deposit, as a decimal in the account currency. */
  readonly demoBalance: string;
  readonly demoCurrency: string;
  readonly demoLeverage: number;
  /**
   * The oldest a quote may be for trading at it (the engine's `maxQuoteAgeMs`), in seconds; 0 for no limit. An open
   * market whose feed went silent is then not traded, nor stopped out, at its last price.
   */
  readonly maxQuoteAgeSeconds: number;
  /** Client API requests per user (or per address before sign-in) per second. */
  readonly rateLimitPerSecond: number;
  /**
   * Sign-ups one client address may make per hour (a fixed hour from its first), beyond the request rate: each makes
   * a user, a funded demo account and an argon2 hash. The address is the client's by BOURSE_TRUST_PROXY.
   */
  readonly signupsPerAddressPerHour: number;
  /**
   * Whether anyone may sign up (`POST /api/v1/signup`): `open`, a demo server's way, or `closed`, a live broker's,
   * whose users are created by the back office (`PUT /admin/v1/users`, `bourse user create`) after its checks.
   */
  readonly signup: SignupPolicy;
  /** Failed logins in a row that lock a user out, and for how long. */
  readonly loginMaxFailures: number;
  readonly loginLockSeconds: number;
  /**
   * Failed logins one client address may make in a lock period (counted from its first), whichever users they name:
   * past it, the address's sign-ins answer LOGIN_LOCKED until the period ends. A user's lock stops guesses at one
   * password; this stops one address guessing a common password across many users (password spraying).
   */
  readonly loginAddressMaxFailures: number;
  /**
   * Web origins whose pages may call the HTTP API from a browser (CORS), e.g. a terminal or cabinet on another
   * domain; ["*"] for any; empty (the default): none, same origin only.
   */
  readonly corsOrigins: readonly string[];
  /**
   * How long a stop signal leaves the server serving with `/readyz` at 503 `draining` before it closes (a load balancer
   * sees it leave before its connections end); 0: it closes at once.
   */
  readonly shutdownDrainSeconds: number;
  /** The running server's log lines: text with time and level, or JSON (server-log.ts). */
  readonly logFormat: LogFormat;
  /** Whether each HTTP request is logged (method, path with credentials redacted, address, status, time). */
  readonly logRequests: boolean;
  /** The largest request body any route takes. */
  readonly bodyLimitBytes: number;
  /** The dedicated Automation API listener (seed 003's custom port); null: main listener only. */
  readonly automationPort: number | null;
  /** Automation API requests per key per second (seed 003: 100 req/s). */
  readonly automationRateLimitPerSecond: number;
  /** Refused API keys one client address may present per second, on any face; then 429 for the rest of it. */
  readonly apiKeyRefusalsPerSecond: number;
  /**
   * Stream sockets (native and Pusher together) one client address may hold open, and of them those waiting for
   * `authorize`. A carrier's NAT puts thousands of phones behind one address: at 100 (the first bound) the 101st
   * phone of a carrier was refused (found by the audit of a mobile client's journey of 7 December, seventh session).
   */
  readonly streamSocketsPerAddress: number;
  readonly streamUnauthorizedSocketsPerAddress: number;
  /**
   * The journal events a stream's `sinceSeq` replay reaches back, every account's together: on a busy server the
   * default covered seconds of a phone's background, after which every resume was a `resyncRequired` (found by the
   * audit of a mobile client's journey of 7 December, seventh session).
   */
  readonly streamReplayWindowEvents: number;
  /** The Pusher endpoint's app key (public: clients connect to `/app/{appKey}`) and secret (signs channel auth). */
  readonly pusherAppKey: string;
  readonly pusherAppSecret: string;
  /**
   * The reverse proxies whose `X-Forwarded-For` names the client (addresses, CIDR ranges, named ranges);
   * empty: none, every client is its socket's peer (client-address.ts).
   */
  readonly trustedProxies: readonly string[];
}

/**
 * The keys a configuration file may hold: each environment setting's name in camelCase without `BOURSE_`
 * (`fileKey`: BOURSE_AUTOMATION_PORT is `automationPort`), and, as first documented, `automation.port`,
 * `automation.rateLimitPerSecond`, `automation.refusalsPerSecond`, `pusher.appKey` and `pusher.appSecret`.
 * Keys starting with `_` or `$` are the file's own (comments, `$schema`) and ignored; any other key stops the start
 * (`readConfigFile`): a misspelt key used to be ignored in silence.
 */
type ConfigFile = Readonly<Record<string, unknown>>;

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

const SECRET_FILE_MODE = 0o600;
const DATA_DIRECTORY_MODE = 0o700;

function integerSetting(name: string, value: unknown, min: number, max: number): number {
  const number = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
  if (typeof number !== "number" || !Number.isSafeInteger(number) || number < min || number > max)
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  return number;
}

/** An account currency the engine keeps (sign-up and `PUT /api/v1/accounts` open accounts in it). */
function currencySetting(name: string, value: string): string {
  if (!isAccountCurrency(value))
    throw new ConfigError(`${name} must be one of ${ACCOUNT_CURRENCIES.join(", ")}, got ${JSON.stringify(value)}`);
  return value;
}

/**
 * The demo funding: a plain decimal, no more decimals than `currency` has, at most the engine's account money
 * bound. Checked here so that a bad value stops the start instead of failing every sign-up.
 */
function demoBalanceSetting(name: string, value: string, currency: string): string {
  const digits = currencyDigits(currency);
  const parsed = /^\d+(\.\d+)?$/.test(value) ? parseDecimal(value, digits) : null;
  if (!parsed?.ok || parsed.value > MAX_ACCOUNT_MONEY)
    throw new ConfigError(
      `${name} must be an amount from 0 to ${formatDecimal(MAX_ACCOUNT_MONEY, digits)} ${currency} with at most ${digits} decimals, got ${JSON.stringify(value)}`,
    );
  return value;
}

function parseFeed(text: string, seed: number): FeedSettings {
  if (text === "simulator") return { kind: "simulator", seed };
  if (text === "push") return { kind: "push" };
  if (text.startsWith("csv:") && text.length > 4) {
    // Checked now: a missing file used to start a server with no prices and a log line after "running".
    const file = path.resolve(text.slice(4));
    let isFile = false;
    try {
      isFile = statSync(file).isFile();
    } catch {
      isFile = false;
    }
    if (!isFile) throw new ConfigError(`BOURSE_FEED names ${file}, which is not a file that can be read`);
    return { kind: "csv", path: file };
  }
  throw new ConfigError(`BOURSE_FEED must be simulator, push or csv:PATH, got ${JSON.stringify(text)}`);
}

/** BOURSE_FEED_RATE and BOURSE_FEED_REPLAY_SPEED, checked at start like every setting (they stopped it late, exit 3). */
function feedTuningSetting(pick: Pick): FeedTuning {
  try {
    return feedTuning({
      BOURSE_FEED_RATE: pick("BOURSE_FEED_RATE"),
      BOURSE_FEED_REPLAY_SPEED: pick("BOURSE_FEED_REPLAY_SPEED"),
    });
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
}

/**
 * A secret from the setting, or the one kept in the data directory, or a new one written there. A kept file that is
 * empty is refused, not taken: an empty JWT secret started a server that answered every sign-in 500. A new one is
 * written whole or not at all (a temporary file renamed), and never over one another process wrote meanwhile.
 */
function keptSecret(directory: string, fileName: string, given: string | undefined): string {
  if (given !== undefined && given !== "") return given;
  const file = path.join(directory, fileName);
  if (!existsSync(file)) {
    makeDataDirectory(directory);
    try {
      writeNewSecret(file);
    } catch (error) {
      throw (
        notWritableError(
          "BOURSE_DATA_DIR",
          `the data directory ${directory} (to keep the generated ${fileName})`,
          error,
        ) ?? error
      );
    }
  }
  const secret = readFileSync(file, "utf8").trim();
  if (secret === "")
    throw new ConfigError(`${file} is empty: delete it to have a new secret generated, or set the secret`);
  return secret;
}

/** Writes a new random secret to `file`, whole or not at all, unless another process wrote one meanwhile. */
function writeNewSecret(file: string): void {
  // Random, not the process id: a crash before the removal below, then a restart under the same id (PID 1 in a
  // container), would find it there.
  const temporary = `${file}.${randomBytes(6).toString("hex")}.tmp`;
  const descriptor = openSync(temporary, "wx", SECRET_FILE_MODE);
  try {
    writeSync(descriptor, randomBytes(32).toString("base64url") + "\n");
    fsyncSync(descriptor);
  } finally {
    closeSync(descriptor);
  }
  try {
    // A hard link fails if the file exists: a second process starting at once keeps the first one's secret.
    linkSync(temporary, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  } finally {
    rmSync(temporary, { force: true });
  }
}

/** HS256 takes a key of at least the hash's size (RFC 7518, section 3.2): 32 bytes. */
const MIN_JWT_SECRET_BYTES = 32;

/**
 * The admin token guards the back office (money in and out) on the listener clients reach: a short one set by an
 * operator could be guessed (found by the audit of the back office of 7 December: "a" was taken). A generated one is
 * 43 characters.
 */
const MIN_ADMIN_TOKEN_LENGTH = 16;

function adminTokenSetting(token: string): string {
  if (token.length < MIN_ADMIN_TOKEN_LENGTH)
    throw new ConfigError(
      `BOURSE_ADMIN_TOKEN must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters (unset, one is generated), got ${token.length}`,
    );
  return token;
}

/**
 * The Pusher app secret signs channel auth (HMAC-SHA256): a short one set by an operator could be guessed, and with it
 * any socket's subscription to any account's private channel forged. Pusher's own app secrets are 20 hex characters
 * (found by the audit of an operator's journey: any length was taken). A generated one is 43 characters.
 */
const MIN_PUSHER_APP_SECRET_LENGTH = 20;

function pusherAppSecretSetting(secret: string): string {
  if (secret.length < MIN_PUSHER_APP_SECRET_LENGTH)
    throw new ConfigError(
      `BOURSE_PUSHER_APP_SECRET must be at least ${MIN_PUSHER_APP_SECRET_LENGTH} characters (Pusher's own are 20 hex characters; unset, one is generated), got ${secret.length}`,
    );
  return secret;
}

function jwtSecretSetting(secret: string): Uint8Array {
  const bytes = new TextEncoder().encode(secret);
  if (bytes.length < MIN_JWT_SECRET_BYTES)
    throw new ConfigError(
      `BOURSE_JWT_SECRET must be at least ${MIN_JWT_SECRET_BYTES} bytes (HS256, RFC 7518 section 3.2), got ${bytes.length}`,
    );
  return bytes;
}

/**
 * A warning when the data directory can be read by others than its owner (one made before it was made 0700, or by
 * hand): it holds the secrets and, with SQLite, the databases (emails, password hashes, sessions, balances).
 */
export function dataDirectoryWarning(directory: string): string | null {
  // Windows keeps no such mode bits.
  if (process.platform === "win32") return null;
  let mode: number;
  try {
    mode = statSync(directory).mode & 0o777;
  } catch {
    return null;
  }
  if ((mode & 0o077) === 0) return null;
  return (
    `the data directory ${directory} can be read by others than its owner (mode ${mode.toString(8)}): ` +
    `it holds the secrets and the databases; chmod 700 it`
  );
}

/**
 * The file system's answers that say this process cannot create or write a path: a permission (EACCES, EPERM), a
 * read-only file system (EROFS), a file where a directory should be (ENOTDIR). A setting to correct, not a failure of
 * the server: they gave a bare "EACCES", exit 3 (found by the audit of an operator's journey).
 */
const NOT_WRITABLE_CODES: ReadonlySet<string> = new Set(["EACCES", "EPERM", "EROFS", "ENOTDIR"]);

/** Who the server runs as, for a message about permissions. */
function processUser(): string {
  try {
    return userInfo().username;
  } catch {
    // A container's user may have no entry in /etc/passwd.
    return `uid ${process.getuid?.() ?? "unknown"}`;
  }
}

/**
 * `error` as a configuration error of `setting` when it says `subject` (the directory or file, named) cannot be
 * created or written by this process (NOT_WRITABLE_CODES), saying what is needed; null for any other error.
 */
export function notWritableError(setting: string, subject: string, error: unknown): ConfigError | null {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (code === undefined || !NOT_WRITABLE_CODES.has(code)) return null;
  return new ConfigError(
    `${setting}: ${subject} cannot be created or written by this server (${(error as Error).message}): ` +
      `it needs a directory that the user it runs as (${processUser()}) can create and write files in; ` +
      `change the directory's owner or permissions, or point ${setting} at another`,
  );
}

/** Creates the data directory (BOURSE_DATA_DIR) if it is missing; one that cannot be is a configuration error. */
export function makeDataDirectory(directory: string): void {
  try {
    // The owner's alone: the databases in it hold emails, password hashes, sessions and balances.
    makeDirectories(directory, DATA_DIRECTORY_MODE);
  } catch (error) {
    throw (
      notWritableError("BOURSE_DATA_DIR", `the data directory ${directory}`, error) ??
      new ConfigError(`BOURSE_DATA_DIR: the data directory ${directory} cannot be created: ${(error as Error).message}`)
    );
  }
}

/**
 * Makes the SQLite databases' folders and files (`makeDatabaseFile`, as the stores do) among `files`, and checks this
 * process can write them and their folders (SQLite writes its -wal and -shm files beside a database): one that cannot
 * be is a configuration error naming the file and the setting, before any store opens it. PostgreSQL URLs are skipped.
 */
export function makeSqliteFiles(storage: StorageSettings, files: readonly string[]): void {
  const sqliteFiles = files.filter((file) => !isPostgresUrl(file) && file !== ":memory:" && file !== "");
  if (sqliteFiles.length === 0) return;
  makeDataDirectory(storage.dataDirectory);
  for (const file of sqliteFiles) {
    // The files BOURSE_DATA_DIR places, or one BOURSE_DATABASE_URL names.
    const inDataDirectory = [
      path.join(storage.dataDirectory, "bourse.sqlite"),
      path.join(storage.dataDirectory, "platform.sqlite"),
    ].includes(file);
    try {
      makeDatabaseFile(file);
      // As root, or with the file already there, the calls above may pass where SQLite's writes would not.
      accessSync(path.dirname(file), accessModes.W_OK | accessModes.X_OK);
      accessSync(file, accessModes.R_OK | accessModes.W_OK);
    } catch (error) {
      throw (
        notWritableError(
          inDataDirectory ? "BOURSE_DATA_DIR" : "BOURSE_DATABASE_URL",
          `the database file ${file}`,
          error,
        ) ?? error
      );
    }
  }
}

function readConfigFile(file: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new ConfigError(`cannot read the configuration file ${file}: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    // Where, not what: JSON.parse's message quotes the text around the mistake, which may be a secret.
    const position = /position (\d+)/.exec((error as Error).message);
    const offset = position ? Number(position[1]) : null;
    const before = offset === null ? "" : text.slice(0, offset);
    const where =
      offset === null ? "" : ` (at line ${before.split("\n").length}, column ${offset - before.lastIndexOf("\n")})`;
    throw new ConfigError(`the configuration file ${file} is not valid JSON${where}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw new ConfigError(`the configuration file ${file} must hold a JSON object`);
  for (const [key, value] of Object.entries(parsed)) {
    const nested = NESTED_FILE_KEYS[key];
    if (nested) {
      if (typeof value !== "object" || value === null || Array.isArray(value))
        throw new ConfigError(`the configuration file ${file}: "${key}" must be an object`);
      for (const inner of Object.keys(value))
        if (!nested.includes(inner))
          throw new ConfigError(
            `the configuration file ${file} has an unknown key "${key}.${inner}" (${key} takes ${nested.join(", ")})`,
          );
    } else if (!FILE_KEYS.has(key) && !/^[_$]/.test(key)) {
      const meant = nearest(key, [...FILE_KEYS, ...Object.keys(NESTED_FILE_KEYS)]);
      throw new ConfigError(
        `the configuration file ${file} has an unknown key "${key}"${meant ? ` (did you mean "${meant}"?)` : ""}`,
      );
    }
  }
  return parsed as ConfigFile;
}

/** A setting's key in the configuration file: its name in camelCase without `BOURSE_` (BOURSE_DATA_DIR: dataDir). */
export function fileKey(variable: string): string {
  return variable
    .slice("BOURSE_".length)
    .toLowerCase()
    .replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

/** Settings the file cannot hold: the file's own name, and where the back-office commands find the server. */
const ENVIRONMENT_ONLY = new Set(["BOURSE_CONFIG", "BOURSE_URL"]);

/** The nested keys of the first configuration files, still read: the setting each stands for. */
const NESTED_ALIASES: Readonly<Record<string, readonly [string, string]>> = {
  BOURSE_AUTOMATION_PORT: ["automation", "port"],
  BOURSE_AUTOMATION_RATE_LIMIT_PER_SECOND: ["automation", "rateLimitPerSecond"],
  BOURSE_API_KEY_REFUSALS_PER_SECOND: ["automation", "refusalsPerSecond"],
  BOURSE_PUSHER_APP_KEY: ["pusher", "appKey"],
  BOURSE_PUSHER_APP_SECRET: ["pusher", "appSecret"],
};

/** Each nested object of the file and its keys (from NESTED_ALIASES). */
const NESTED_FILE_KEYS: Readonly<Record<string, readonly string[]>> = Object.values(NESTED_ALIASES).reduce<
  Record<string, string[]>
>((nested, [outer, inner]) => ({ ...nested, [outer]: [...(nested[outer] ?? []), inner] }), {});

/** Every environment setting the server and the `bourse` command read: README.md's table. */
/**
 * BOURSE_MAX_QUOTE_AGE_SECONDS's default: an open market without a tick for five minutes has a silent feed (the
 * simulator ticks every symbol within seconds; a feed that sends only changes sends quiet markets' quotes far more
 * often than this).
 */
export const DEFAULT_MAX_QUOTE_AGE_SECONDS = 300;

/**
 * The stream sockets one client address may hold, and of them waiting for `authorize` (a legitimate client authorises
 * within a round trip): room for a carrier's NAT, a bound on one address all the same.
 */
export const DEFAULT_STREAM_SOCKETS_PER_ADDRESS = 1_000;
export const DEFAULT_STREAM_UNAUTHORIZED_SOCKETS_PER_ADDRESS = 100;

/** The journal events a `sinceSeq` replay reaches back (every account's): `BOURSE_STREAM_REPLAY_WINDOW_EVENTS`. */
export const DEFAULT_STREAM_REPLAY_WINDOW_EVENTS = 10_000;

export const ENVIRONMENT_SETTINGS: ReadonlySet<string> = new Set([
  "BOURSE_CONFIG",
  "BOURSE_PORT",
  "BOURSE_HOST",
  "BOURSE_DATA_DIR",
  "BOURSE_DATABASE_URL",
  "BOURSE_DATABASE_CONNECT_TIMEOUT_SECONDS",
  "BOURSE_DATABASE_POOL_SIZE",
  "BOURSE_FEED",
  "BOURSE_FEED_SEED",
  "BOURSE_FEED_RATE",
  "BOURSE_FEED_REPLAY_SPEED",
  "BOURSE_INSTRUMENTS_FILE",
  "BOURSE_GROUPS_FILE",
  "BOURSE_DEFAULT_GROUP",
  "BOURSE_LEVERAGE_MAX",
  "BOURSE_ROLLOVER_TIME",
  "BOURSE_CANDLE_DAY_START",
  "BOURSE_TRIPLE_SWAP_DAY",
  "BOURSE_ADMIN_TOKEN",
  "BOURSE_JWT_SECRET",
  "BOURSE_SESSION_TTL_SECONDS",
  "BOURSE_DEMO_BALANCE",
  "BOURSE_DEMO_CURRENCY",
  "BOURSE_DEMO_LEVERAGE",
  "BOURSE_MAX_QUOTE_AGE_SECONDS",
  "BOURSE_RATE_LIMIT_PER_SECOND",
  "BOURSE_SIGNUP",
  "BOURSE_SIGNUPS_PER_ADDRESS_PER_HOUR",
  "BOURSE_LOGIN_MAX_FAILURES",
  "BOURSE_LOGIN_LOCK_SECONDS",
  "BOURSE_LOGIN_ADDRESS_MAX_FAILURES",
  "BOURSE_BODY_LIMIT_BYTES",
  "BOURSE_AUTOMATION_PORT",
  "BOURSE_AUTOMATION_RATE_LIMIT_PER_SECOND",
  "BOURSE_API_KEY_REFUSALS_PER_SECOND",
  "BOURSE_STREAM_SOCKETS_PER_ADDRESS",
  "BOURSE_STREAM_UNAUTHORIZED_SOCKETS_PER_ADDRESS",
  "BOURSE_STREAM_REPLAY_WINDOW_EVENTS",
  "BOURSE_PUSHER_APP_KEY",
  "BOURSE_PUSHER_APP_SECRET",
  "BOURSE_TRUST_PROXY",
  "BOURSE_CORS_ORIGINS",
  "BOURSE_LOG_FORMAT",
  "BOURSE_LOG_REQUESTS",
  "BOURSE_SHUTDOWN_DRAIN_SECONDS",
  "BOURSE_URL",
]);

/** The flat keys a configuration file may hold. */
const FILE_KEYS: ReadonlySet<string> = new Set(
  [...ENVIRONMENT_SETTINGS].filter((variable) => !ENVIRONMENT_ONLY.has(variable)).map(fileKey),
);

/** Prefixes of the project's own tooling (tests, benchmarks), which the server never reads. */
const TOOLING_PREFIXES = ["BOURSE_TEST_", "BOURSE_BENCH_", "BOURSE_CRASH_"];

/**
 * `BOURSE_*` variables set in the environment that no setting reads, each with the setting it most likely means:
 * a misspelt `BOURSE_DATABSE_URL` was ignored in silence, and the server ran on SQLite in ./data instead of the
 * database the operator named. `bourse start` prints them as warnings.
 */
export function unknownSettings(environment: NodeJS.ProcessEnv): { name: string; meant: string | null }[] {
  return Object.keys(environment)
    .filter(
      (name) =>
        name.startsWith("BOURSE_") &&
        !ENVIRONMENT_SETTINGS.has(name) &&
        !TOOLING_PREFIXES.some((prefix) => name.startsWith(prefix)),
    )
    .sort()
    .map((name) => ({ name, meant: nearestSetting(name) }));
}

/** The known setting within three single-character edits of `name`; null when none is. */
function nearestSetting(name: string): string | null {
  return nearest(name, ENVIRONMENT_SETTINGS);
}

/** The name of `known` within three single-character edits of `name`, the nearest first; null when none is. */
function nearest(name: string, known: Iterable<string>): string | null {
  let best: { name: string; distance: number } | null = null;
  for (const candidate of known) {
    const distance = editDistance(name, candidate);
    if (distance <= 3 && (best === null || distance < best.distance)) best = { name: candidate, distance };
  }
  return best?.name ?? null;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++)
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = current;
  }
  return previous[b.length]!;
}

/** A setting's text from the environment, else from the configuration file (`fileKey`, or its nested alias). */
type Pick = (variable: string) => string | undefined;

/** The configuration file (`BOURSE_CONFIG`, else `bourse.config.json` when present) and the rule that the environment wins. */
function configPick(environment: NodeJS.ProcessEnv): Pick {
  const fileName = environment.BOURSE_CONFIG ?? (existsSync("bourse.config.json") ? "bourse.config.json" : undefined);
  const file: ConfigFile = fileName ? readConfigFile(fileName) : {};
  const pick: Pick = (variable) => {
    // A setting read here and missing from the list would be warned about as unknown when it is set.
    if (!ENVIRONMENT_SETTINGS.has(variable)) throw new Error(`${variable} is not in ENVIRONMENT_SETTINGS`);
    const value = environment[variable];
    if (value !== undefined && value !== "") return value;
    const alias = NESTED_ALIASES[variable];
    let fromFile = file[fileKey(variable)];
    if (fromFile === undefined && alias) fromFile = (file[alias[0]] as Record<string, unknown> | undefined)?.[alias[1]];
    if (LIST_SETTINGS.has(variable)) fromFile = listFromFile(variable, fromFile);
    if (fromFile === undefined) return undefined;
    // A list or an object was read as its text: `"host": {}` listened on "[object Object]", `"dataDir": ["a"]` used ./a.
    if (typeof fromFile !== "string" && typeof fromFile !== "number" && typeof fromFile !== "boolean")
      throw new ConfigError(`the configuration file's setting for ${variable} must be a string or a number`);
    return String(fromFile);
  };
  return pick;
}

function storageFrom(environment: NodeJS.ProcessEnv, pick: Pick): StorageSettings {
  const databaseUrl = pick("BOURSE_DATABASE_URL");
  // Any other scheme was taken for a SQLite path: `mysql://x` made a directory "mysql:" and ran on SQLite there.
  if (databaseUrl !== undefined && /^[a-z][a-z0-9+.-]*:\/\//i.test(databaseUrl) && !isPostgresUrl(databaseUrl))
    throw new ConfigError(
      `BOURSE_DATABASE_URL must be a postgres:// (or postgresql://) URL, or the path of a SQLite file, got ${JSON.stringify(databaseUrl.replace(/\/\/[^@/]*@/, "//***@"))}`,
    );
  const connectTimeoutSeconds = integerSetting(
    "BOURSE_DATABASE_CONNECT_TIMEOUT_SECONDS",
    pick("BOURSE_DATABASE_CONNECT_TIMEOUT_SECONDS") ?? String(DEFAULT_DATABASE_CONNECT_TIMEOUT_SECONDS),
    0,
    3_600,
  );
  const poolSize = integerSetting(
    "BOURSE_DATABASE_POOL_SIZE",
    pick("BOURSE_DATABASE_POOL_SIZE") ?? String(DEFAULT_DATABASE_POOL_SIZE),
    1,
    MAX_DATABASE_POOL_SIZE,
  );
  return storageSettings(
    { ...environment, BOURSE_DATA_DIR: pick("BOURSE_DATA_DIR"), BOURSE_DATABASE_URL: databaseUrl },
    connectTimeoutSeconds,
    poolSize,
  );
}

/**
 * Where the data is, from the environment and the configuration file like the server's: the storage commands
 * (`migrate`, `verify`, `journal`) read only this (they read the environment alone, and with a file naming the
 * data directory verified a new empty database elsewhere, answering "no differences").
 */
export function loadStorageSettings(environment: NodeJS.ProcessEnv = process.env): StorageSettings {
  const pick = configPick(environment);
  return storageFrom(environment, pick);
}

/** The instruments traded, for the commands that need them and not the rest (`verify`, `instruments`). */
export function loadInstruments(environment: NodeJS.ProcessEnv = process.env): readonly InstrumentSpec[] {
  return instrumentsSetting(configPick(environment));
}

/** BOURSE_INSTRUMENTS_FILE: a JSON list of instrument definitions (instruments-file.ts); unset, the default set. */
function instrumentsSetting(pick: Pick): readonly InstrumentSpec[] {
  const file = pick("BOURSE_INSTRUMENTS_FILE");
  if (file === undefined) return DEFAULT_INSTRUMENTS;
  return asFileSetting("BOURSE_INSTRUMENTS_FILE", () => readInstrumentsFile(path.resolve(file)));
}

/** BOURSE_ROLLOVER_TIME's default: 17:00 New York, FX's end of day (21:00 UTC in the US summer, 22:00 in winter). */
export const DEFAULT_ROLLOVER_TIME = "17:00 America/New_York";

/** The weekdays, Sunday (0) first as the engine counts them. */
const WEEKDAY_NAMES = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"] as const;

/**
 * The days BOURSE_TRIPLE_SWAP_DAY may name: Monday to Friday. The engine's calendar charges nothing for a Saturday or
 * Sunday trading day, so a triple day there never came, and every week charged 5 days instead of 7 (found by the audit
 * of time of 7 December, ninth session).
 */
const TRIPLE_SWAP_DAYS = WEEKDAY_NAMES.slice(1, 6);

/** A clock time setting: `HH:MM` in UTC, or `HH:MM <zone>` such as `17:00 America/New_York` (FX's day's end). */
const TIME_OF_DAY_PATTERN = /^([01][0-9]|2[0-3]):([0-5][0-9])(?: +(\S+))?$/;

/** A daily clock time in a zone (BOURSE_ROLLOVER_TIME, BOURSE_CANDLE_DAY_START): `HH:MM` (UTC) or `HH:MM <zone>`. */
function timeOfDaySetting(variable: string, text: string): TimeOfDayInZone {
  const match = TIME_OF_DAY_PATTERN.exec(text);
  const timeZone = match?.[3] ?? "UTC";
  if (!match || !isTimeZone(timeZone))
    throw new ConfigError(
      `${variable} must be HH:MM (UTC) or HH:MM followed by one of ${TIME_ZONES.join(", ")}, e.g. ` +
        `"17:00 America/New_York"; got ${JSON.stringify(text)}`,
    );
  return { minuteOfDay: Number(match[1]) * 60 + Number(match[2]), timeZone };
}

/**
 * The broker's trading terms: the groups (BOURSE_GROUPS_FILE, groups-file.ts) and the group new accounts join, the
 * highest leverage an account may be given, the daily rollover and the day it charges three days of swap.
 */
function tradingSettings(pick: Pick): TradingSettings {
  const engineDefaults = defaultEngineConfig();
  const groupsFile = pick("BOURSE_GROUPS_FILE");
  const groups = asFileSetting("BOURSE_GROUPS_FILE", () =>
    groupsFile === undefined ? engineDefaults.groups : readGroupsFile(path.resolve(groupsFile)),
  );
  const defaultGroup = asFileSetting("BOURSE_DEFAULT_GROUP", () =>
    defaultGroupOf(groups, pick("BOURSE_DEFAULT_GROUP")),
  );
  // FX's end of day by default, as the default forex hours are New York's; the engine's own default stays 22:00 UTC,
  // which its tests are written to. At 22:00 UTC the trading day ended an hour after the forex close in the US summer
  // (the audit of time of 7 December, ninth session).
  const rollover = timeOfDaySetting("BOURSE_ROLLOVER_TIME", pick("BOURSE_ROLLOVER_TIME") ?? DEFAULT_ROLLOVER_TIME);
  const tripleSwapDay = choiceSetting(
    "BOURSE_TRIPLE_SWAP_DAY",
    (pick("BOURSE_TRIPLE_SWAP_DAY") ?? WEEKDAY_NAMES[engineDefaults.tripleSwapWeekday]!).toLowerCase(),
    TRIPLE_SWAP_DAYS,
  );
  return {
    groups,
    defaultGroup,
    leverageMax: integerSetting(
      "BOURSE_LEVERAGE_MAX",
      pick("BOURSE_LEVERAGE_MAX") ?? String(engineDefaults.leverageMax),
      engineDefaults.leverageMin,
      engineDefaults.leverageMax,
    ),
    rollover,
    tripleSwapWeekday: WEEKDAY_NAMES.indexOf(tripleSwapDay),
  };
}

/** `work`, its InstrumentsFileError or GroupsFileError (a broker's file refused) a ConfigError naming `variable`. */
function asFileSetting<T>(variable: string, work: () => T): T {
  try {
    return work();
  } catch (error) {
    if (error instanceof InstrumentsFileError || error instanceof GroupsFileError)
      throw new ConfigError(`${variable}: ${error.message}`);
    throw error;
  }
}

/**
 * Reads the configuration. `BOURSE_CONFIG` names the file; without it `bourse.config.json` in the
 * working directory is read when present.
 */
export function loadServerConfig(environment: NodeJS.ProcessEnv = process.env): ServerConfig {
  const pick = configPick(environment);
  /** An integer setting from the environment or the file, else `fallback`, within [min, max]. */
  const integer = (variable: string, fallback: string, min: number, max: number): number =>
    integerSetting(variable, pick(variable) ?? fallback, min, max);
  const storage = storageFrom(environment, pick);
  const seed = integer("BOURSE_FEED_SEED", "1", 0, 2 ** 31 - 1);
  const automationPortText = pick("BOURSE_AUTOMATION_PORT");
  const demoCurrency = currencySetting("BOURSE_DEMO_CURRENCY", pick("BOURSE_DEMO_CURRENCY") ?? "USD");
  const trading = tradingSettings(pick);
  // The engine's bounds: a demo leverage outside them would make every sign-up fail.
  const { leverageMin } = defaultEngineConfig();
  const { leverageMax } = trading;
  const instruments = instrumentsSetting(pick);
  asFileSetting("BOURSE_INSTRUMENTS_FILE", () => checkConversions(instruments, demoCurrency));
  return {
    port: integer("BOURSE_PORT", "8080", 0, 65_535),
    host: pick("BOURSE_HOST") ?? "127.0.0.1",
    storage,
    instruments,
    trading,
    candleDayStart: timeOfDaySetting("BOURSE_CANDLE_DAY_START", pick("BOURSE_CANDLE_DAY_START") ?? "00:00"),
    feed: parseFeed(pick("BOURSE_FEED") ?? "simulator", seed),
    feedTuning: feedTuningSetting(pick),
    adminToken: adminTokenSetting(keptSecret(storage.dataDirectory, "admin-token", pick("BOURSE_ADMIN_TOKEN"))),
    jwtSecret: jwtSecretSetting(keptSecret(storage.dataDirectory, "jwt-secret", pick("BOURSE_JWT_SECRET"))),
    sessionTtlSeconds: integer("BOURSE_SESSION_TTL_SECONDS", "3600", 60, 7 * 86_400),
    demoBalance: demoBalanceSetting("BOURSE_DEMO_BALANCE", pick("BOURSE_DEMO_BALANCE") ?? "10000", demoCurrency),
    demoCurrency,
    demoLeverage: integer("BOURSE_DEMO_LEVERAGE", "100", leverageMin, leverageMax),
    maxQuoteAgeSeconds: integer("BOURSE_MAX_QUOTE_AGE_SECONDS", String(DEFAULT_MAX_QUOTE_AGE_SECONDS), 0, 7 * 86_400),
    rateLimitPerSecond: integer("BOURSE_RATE_LIMIT_PER_SECOND", "100", 1, 1_000_000),
    signupsPerAddressPerHour: integer("BOURSE_SIGNUPS_PER_ADDRESS_PER_HOUR", "30", 1, 1_000_000),
    signup: choiceSetting("BOURSE_SIGNUP", pick("BOURSE_SIGNUP") ?? "open", SIGNUP_POLICIES),
    loginMaxFailures: integer("BOURSE_LOGIN_MAX_FAILURES", "5", 1, 1000),
    loginLockSeconds: integer("BOURSE_LOGIN_LOCK_SECONDS", "900", 1, 86_400),
    loginAddressMaxFailures: integer("BOURSE_LOGIN_ADDRESS_MAX_FAILURES", "100", 1, 1_000_000),
    bodyLimitBytes: integer("BOURSE_BODY_LIMIT_BYTES", String(512 * 1024), 1024, 16 * 1024 * 1024),
    automationPort:
      automationPortText === undefined ? null : integerSetting("BOURSE_AUTOMATION_PORT", automationPortText, 0, 65_535),
    automationRateLimitPerSecond: integer("BOURSE_AUTOMATION_RATE_LIMIT_PER_SECOND", "100", 1, 1_000_000),
    apiKeyRefusalsPerSecond: integer("BOURSE_API_KEY_REFUSALS_PER_SECOND", "20", 1, 1_000_000),
    streamSocketsPerAddress: integer(
      "BOURSE_STREAM_SOCKETS_PER_ADDRESS",
      String(DEFAULT_STREAM_SOCKETS_PER_ADDRESS),
      1,
      1_000_000,
    ),
    streamUnauthorizedSocketsPerAddress: integer(
      "BOURSE_STREAM_UNAUTHORIZED_SOCKETS_PER_ADDRESS",
      String(DEFAULT_STREAM_UNAUTHORIZED_SOCKETS_PER_ADDRESS),
      1,
      1_000_000,
    ),
    streamReplayWindowEvents: integer(
      "BOURSE_STREAM_REPLAY_WINDOW_EVENTS",
      String(DEFAULT_STREAM_REPLAY_WINDOW_EVENTS),
      1_000,
      10_000_000,
    ),
    pusherAppKey: pusherAppKey(keptSecret(storage.dataDirectory, "pusher-app-key", pick("BOURSE_PUSHER_APP_KEY"))),
    pusherAppSecret: pusherAppSecretSetting(
      keptSecret(storage.dataDirectory, "pusher-app-secret", pick("BOURSE_PUSHER_APP_SECRET")),
    ),
    trustedProxies: trustedProxiesSetting("BOURSE_TRUST_PROXY", pick("BOURSE_TRUST_PROXY")),
    corsOrigins: corsOriginsSetting("BOURSE_CORS_ORIGINS", pick("BOURSE_CORS_ORIGINS")),
    shutdownDrainSeconds: integer("BOURSE_SHUTDOWN_DRAIN_SECONDS", "0", 0, 300),
    logFormat: choiceSetting("BOURSE_LOG_FORMAT", pick("BOURSE_LOG_FORMAT") ?? "text", LOG_FORMATS),
    logRequests:
      choiceSetting("BOURSE_LOG_REQUESTS", pick("BOURSE_LOG_REQUESTS") ?? "false", ["true", "false"]) === "true",
  };
}

/** A setting that is one of a few words. */
function choiceSetting<Choice extends string>(name: string, value: string, choices: readonly Choice[]): Choice {
  if (!(choices as readonly string[]).includes(value))
    throw new ConfigError(`${name} must be one of ${choices.join(", ")}, got ${JSON.stringify(value)}`);
  return value as Choice;
}

/** Origins a browser sends (scheme, host and port, nothing after), comma-separated, or `*` alone. */
function corsOriginsSetting(name: string, value: string | undefined): readonly string[] {
  const origins = (value ?? "")
    .split(",")
    .map((origin) => origin.trim())
    .filter((origin) => origin !== "");
  if (origins.includes("*")) {
    if (origins.length > 1) throw new ConfigError(`${name}: "*" allows every origin and stands alone`);
    return origins;
  }
  for (const origin of origins) {
    let parsed: URL | null = null;
    try {
      parsed = new URL(origin);
    } catch {
      parsed = null;
    }
    if (!parsed || (parsed.protocol !== "https:" && parsed.protocol !== "http:") || parsed.origin !== origin)
      throw new ConfigError(
        `${name}: ${JSON.stringify(origin)} is not an origin as a browser sends it (scheme://host[:port], no path or trailing slash)`,
      );
  }
  return origins;
}

/**
 * BOURSE_TRUST_PROXY: the proxies believed about the client's address. `true` and hop counts are refused: either
 * lets a client that reaches the server directly pick its address with X-Forwarded-For, escaping the per-address limits.
 */
function trustedProxiesSetting(name: string, value: string | undefined): readonly string[] {
  try {
    return parseTrustedProxies(value ?? "");
  } catch (error) {
    throw new ConfigError(
      `${name} must be a comma-separated list of proxy addresses or CIDR ranges (e.g. 127.0.0.1,10.0.0.0/8; also loopback, linklocal, uniquelocal), got ${JSON.stringify(value)}: ${(error as Error).message}`,
    );
  }
}

/** Settings the file may give as a list of strings (the environment writes them comma-separated). */
const LIST_SETTINGS: ReadonlySet<string> = new Set(["BOURSE_TRUST_PROXY", "BOURSE_CORS_ORIGINS"]);

/** A list setting from the file: its text, a list joined as the environment writes it. */
function listFromFile(variable: string, value: unknown): unknown {
  if (!Array.isArray(value)) return value;
  if (!value.every((entry) => typeof entry === "string"))
    throw new ConfigError(`the configuration file's setting for ${variable} must be a string or a list of strings`);
  return value.join(",");
}

/** An app key travels in the socket's path: letters, digits, `-` and `_` only. */
function pusherAppKey(value: string): string {
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(value))
    throw new ConfigError("BOURSE_PUSHER_APP_KEY must be 1 to 128 letters, digits, - or _");
  return value;
}
