/**
 * The PlatformStore written once over a small SQL executor that each driver provides (SQLite, PostgreSQL).
 * Statements use `?` placeholders and `{s}` before table names (the schema prefix, empty for SQLite),
 * `{greatest}` / `{least}` for the two-argument max/min and `{lock}` for a row lock (FOR UPDATE).
 */
import { DEFAULT_INSTRUMENTS } from "@bourse/core";
import { MAX_BOOK_LEVELS, type BookLevel } from "@bourse/core";
import type { AppliedMigration } from "./migrations.ts";
import {
  ALERT_CONDITIONS,
  ALERT_SIDES,
  ALERT_STATUSES,
  API_KEY_SCOPES,
  CANDLE_TIMEFRAMES,
  DuplicateError,
  NOTIFICATION_KINDS,
  NOTIFICATION_LEVELS,
  LimitReachedError,
  NotFoundError,
  PLATFORM_LIMITS,
  ValidationError,
  checkAlertParameters,
  checkEmail,
  checkId,
  checkInteger,
  checkLanguage,
  checkLimit,
  checkOneOf,
  checkOptionalInteger,
  checkPrefix,
  checkSymbol,
  checkText,
  checkTime,
  settingsJson,
  utf8Length,
  type AlertLog,
  type AlertTrigger,
  type ApiKey,
  type ApiKeyScope,
  type Candle,
  type InstrumentScale,
  type LastQuote,
  type CandleQuery,
  type FailedLoginPolicy,
  type NewAlertLog,
  type NewApiKey,
  type NewNotification,
  type NewPriceAlert,
  type NewScript,
  type NewSession,
  type OpenedSession,
  type PresentedRefreshToken,
  type RefreshTokenOutcome,
  type NewUser,
  type Notification,
  type NotificationKind,
  type Page,
  type PageQuery,
  type PlatformStore,
  type PlatformStoreOpenReport,
  type PriceAlert,
  type PriceAlertPatch,
  type RecordedAlertTrigger,
  type RotatedApiKey,
  type Script,
  type ScriptPatch,
  type ScriptSummary,
  type Session,
  type SettingsDocument,
  type User,
} from "./platform-store.ts";

export type Row = Record<string, unknown>;

/** A unique or foreign-key violation, as each driver's executor reports it. */
export class ConstraintViolation extends Error {
  constructor(
    readonly kind: "unique" | "foreign",
    readonly detail: string,
    options?: ErrorOptions,
  ) {
    super(`${kind} constraint violated: ${detail}`, options);
  }
}

export interface SqlExecutor {
  all(sql: string, params?: readonly unknown[]): Promise<Row[]>;
  /** Returns the number of rows changed. */
  run(sql: string, params?: readonly unknown[]): Promise<number>;
}

export interface TransactionOptions {
  /**
   * For data derived from the journal or the feed (notifications, candles), which can be rebuilt: the
   * commit does not wait for the disk (SQLite synchronous=NORMAL in WAL mode, PostgreSQL
   * synchronous_commit off). A crash of the process loses nothing; a power failure may lose the last
   * such commits, never corrupt anything. Everything a user or the back office writes stays fully durable.
   */
  readonly relaxedDurability?: boolean;
}

/** A statement of the store's (in the driver's dialect) with its parameters. */
export interface SqlStatement {
  readonly sql: string;
  readonly params: readonly unknown[];
}

export interface SqlDatabase extends SqlExecutor {
  transaction<T>(work: (tx: SqlExecutor) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /**
   * A write of derived data (notifications, candles): `statements` in one transaction with relaxed durability,
   * each one's rows in order (none for a statement without RETURNING). A driver may run it off the caller's
   * thread; it is ordered after the derived writes before it, not with the other calls.
   */
  derivedWrite(statements: readonly SqlStatement[]): Promise<Row[][]>;
  close(): Promise<void>;
}

/** Turns a column (a number, or a bigint string from pg) into a number; null stays null. */
function num(value: unknown): number {
  return typeof value === "number" ? value : Number(value);
}
function optNum(value: unknown): number | null {
  return value === null || value === undefined ? null : num(value);
}
function str(value: unknown): string {
  return String(value);
}
function optStr(value: unknown): string | null {
  return value === null || value === undefined ? null : String(value);
}

const USER_COLUMNS = "id, email, name, password_hash, created_at, failed_login_count, locked_until, disabled_at";
function toUser(row: Row): User {
  return {
    id: str(row.id),
    email: str(row.email),
    name: str(row.name),
    passwordHash: str(row.password_hash),
    createdAt: num(row.created_at),
    failedLoginCount: num(row.failed_login_count),
    lockedUntil: optNum(row.locked_until),
    disabledAt: optNum(row.disabled_at),
  };
}

const SESSION_COLUMNS = "id, user_id, account_id, created_at, expires_at, revoked_at, refresh_expires_at";
function toSession(row: Row): Session {
  return {
    id: str(row.id),
    userId: str(row.user_id),
    accountId: optNum(row.account_id),
    createdAt: num(row.created_at),
    expiresAt: num(row.expires_at),
    revokedAt: optNum(row.revoked_at),
    refreshExpiresAt: optNum(row.refresh_expires_at),
  };
}

/**
 * A session counts toward the user's bound (and is kept by the purge) while a token of it works or its refresh token
 * can renew it: a phone in the background past its token's hour still holds the session. Parameters: now, now.
 */
const SESSION_USABLE = "revoked_at IS NULL AND (expires_at > ? OR refresh_expires_at > ?)";

const API_KEY_COLUMNS =
  "id, user_id, account_id, name, scope, prefix, secret_hash, created_at, last_used_at, revoked_at, rotated_from";
function toApiKey(row: Row): ApiKey {
  return {
    id: str(row.id),
    userId: str(row.user_id),
    accountId: num(row.account_id),
    name: str(row.name),
    scope: str(row.scope) as ApiKeyScope,
    prefix: str(row.prefix),
    secretHash: str(row.secret_hash),
    createdAt: num(row.created_at),
    lastUsedAt: optNum(row.last_used_at),
    revokedAt: optNum(row.revoked_at),
    rotatedFrom: optStr(row.rotated_from),
  };
}

const SCRIPT_SUMMARY_COLUMNS = "id, user_id, name, language, description, created_at, updated_at";
const SCRIPT_COLUMNS = `${SCRIPT_SUMMARY_COLUMNS}, source`;
function toScriptSummary(row: Row): ScriptSummary {
  return {
    id: str(row.id),
    userId: str(row.user_id),
    name: str(row.name),
    language: str(row.language),
    description: str(row.description),
    createdAt: num(row.created_at),
    updatedAt: num(row.updated_at),
  };
}
function toScript(row: Row): Script {
  return { ...toScriptSummary(row), source: str(row.source) };
}

const ALERT_COLUMNS =
  "id, user_id, account_id, symbol, side, condition, target_price, channel_low, channel_high, move_threshold, " +
  "reference_price, repeating, expiration, message, status, armed_legs, created_at, updated_at";
function toAlert(row: Row): PriceAlert {
  return {
    id: str(row.id),
    userId: str(row.user_id),
    accountId: optNum(row.account_id),
    symbol: str(row.symbol),
    side: str(row.side) as PriceAlert["side"],
    condition: str(row.condition) as PriceAlert["condition"],
    targetPrice: optNum(row.target_price),
    channelLow: optNum(row.channel_low),
    channelHigh: optNum(row.channel_high),
    moveThreshold: optNum(row.move_threshold),
    referencePrice: optNum(row.reference_price),
    repeating: num(row.repeating) !== 0,
    expiration: optNum(row.expiration),
    message: str(row.message),
    status: str(row.status) as PriceAlert["status"],
    armedLegs: optNum(row.armed_legs),
    createdAt: num(row.created_at),
    updatedAt: num(row.updated_at),
  };
}

/** What an alert's legs are made of: a change to any of these forgets its arming (`PriceAlert.armedLegs`). */
const ALERT_LEG_FIELDS = [
  "side",
  "condition",
  "targetPrice",
  "channelLow",
  "channelHigh",
  "moveThreshold",
  "referencePrice",
  "status",
] as const satisfies readonly (keyof PriceAlert)[];

/** Migration 2 of the platform tables: where the alert engine keeps which legs of an alert are armed. */
export const PLATFORM_ALERT_ARMING_SQL = `ALTER TABLE {s}price_alerts ADD COLUMN armed_legs {int}`;

/**
 * Migration 3 of the platform tables: how far in the journal each kind of derived data is stored
 * (`addNotifications`' journal sequence), so a start derives again what a crash lost.
 */
export const PLATFORM_DERIVED_THROUGH_SQL = `CREATE TABLE {s}derived_through (
    kind text PRIMARY KEY,
    journal_sequence {int} NOT NULL
  )`;

/** Migration 4 of the platform tables: each symbol's last quote (`saveLastQuotes`), its book as JSON text. */
export const PLATFORM_LAST_QUOTES_SQL = `CREATE TABLE {s}last_quotes (
    symbol text PRIMARY KEY,
    bid {int} NOT NULL,
    ask {int} NOT NULL,
    bids text,
    asks text,
    quote_time {int} NOT NULL
  )`;

/**
 * Migration 5 of the platform tables: the journal event a notification was derived from, stored once. A start that
 * derives again the notifications after the stored mark, or a write tried again after its outcome was lost, adds
 * none twice (`ON CONFLICT DO NOTHING`). Notifications of no event (price alerts) have none.
 */
export const PLATFORM_NOTIFICATION_EVENTS_SQL = `ALTER TABLE {s}notifications ADD COLUMN journal_sequence {int};
  CREATE UNIQUE INDEX notifications_journal_sequence ON {s}notifications (journal_sequence)`;

/**
 * Migration 6 of the platform tables: each alert trigger's own key (`AlertTrigger.key`), so a trigger tried again
 * after its outcome was lost is recorded once. Rows from before have none.
 */
export const PLATFORM_ALERT_TRIGGER_KEYS_SQL = `ALTER TABLE {s}alert_logs ADD COLUMN trigger_key text;
  CREATE UNIQUE INDEX alert_logs_trigger_key ON {s}alert_logs (trigger_key)`;

/**
 * Migration 7 of the platform tables: the scale of every instrument the platform has run with (`saveInstrumentScales`).
 * A database that has run before (it has users) ran with the default instruments, the only set there was: their
 * scales are kept at once, so that the first start with an instruments file is checked against them.
 */
export const PLATFORM_INSTRUMENT_SCALES_SQL = [
  `CREATE TABLE {s}instrument_scales (
    symbol text PRIMARY KEY,
    digits {int} NOT NULL,
    volume_digits {int} NOT NULL,
    contract_size {int} NOT NULL,
    base_currency text NOT NULL,
    quote_currency text NOT NULL
  )`,
  ...DEFAULT_INSTRUMENTS.map(
    (instrument) =>
      `INSERT INTO {s}instrument_scales (symbol, digits, volume_digits, contract_size, base_currency, quote_currency)
    SELECT '${instrument.symbol}', ${instrument.digits}, ${instrument.volumeDigits}, ${instrument.contractSize},
      '${instrument.baseCurrency}', '${instrument.quoteCurrency}' WHERE EXISTS (SELECT 1 FROM {s}users)`,
  ),
].join(";\n");

/**
 * Migration 8 of the platform tables, for the hourly and start-up passes (found by the audit of complexity of 7 December,
 * sixth session): the revoked sessions, which the purge read by scanning every session; the active alerts of a symbol
 * in id order, which the start-up load read by walking every alert by id (556 ms for one symbol at 100k alerts; the
 * (symbol, status) index is the new one's prefix); and how far each table's rows were pruned (`pruneUserHistories`).
 */
export const PLATFORM_CLEANUP_INDEXES_SQL = `CREATE INDEX sessions_revoked ON {s}sessions (revoked_at) WHERE revoked_at IS NOT NULL;
  DROP INDEX {s}price_alerts_symbol_status;
  CREATE INDEX price_alerts_symbol_status_id ON {s}price_alerts (symbol, status, id);
  CREATE TABLE {s}history_prune_marks (
    table_name text PRIMARY KEY,
    keep_per_user {int} NOT NULL,
    pruned_through {int} NOT NULL
  )`;

/** Migration 9 of the platform tables: the alert's message on each of its log entries (`AlertLog.message`). */
export const PLATFORM_ALERT_LOG_MESSAGES_SQL = "ALTER TABLE {s}alert_logs ADD COLUMN message text NOT NULL DEFAULT ''";

/**
 * Migration 10 of the platform tables (found by the audit of a web terminal, which could tell notifications apart only
 * by parsing their English titles): each notification's kind (NOTIFICATION_KINDS) and the order, position, deal and
 * price alert it is about, and the user's unread notifications by an index of their own, for the unread count and
 * marking all read (`countUnreadNotifications`). The rows from before keep a null kind, read as the kind their title
 * says (`kindFromTitle`): an UPDATE of every row rewrote a table of 2 M rows in 36 s under an exclusive lock (found by
 * the review of 7 December, sixth session).
 */
export const PLATFORM_NOTIFICATION_KINDS_SQL = `ALTER TABLE {s}notifications ADD COLUMN kind text;
  ALTER TABLE {s}notifications ADD COLUMN order_id {int};
  ALTER TABLE {s}notifications ADD COLUMN position_id {int};
  ALTER TABLE {s}notifications ADD COLUMN deal_id {int};
  ALTER TABLE {s}notifications ADD COLUMN alert_id text;
  CREATE INDEX notifications_unread ON {s}notifications (user_id) WHERE status = 'unread'`;

/**
 * Platform migration 11: a user the back office disabled (compliance, fraud) keeps their row, accounts and history,
 * with the time it was disabled.
 */
export const PLATFORM_USER_DISABLED_SQL = "ALTER TABLE {s}users ADD COLUMN disabled_at {int}";

/**
 * Platform migration 12: each session's refresh tokens (a session asks for them at sign-in, "keep me signed in"):
 * their secret part (a nonce the server's key turns into each token: the row holds no token), which one is current
 * (a generation, each refresh the next), when it last changed (the token replaced is taken again for a short grace,
 * its answer may have been lost; after, presented again, it ends the session), and until when they renew the session
 * (7 days from the sign-in). Sessions from before have none. The purge reads each kind through an index of its own:
 * those without refresh tokens by their token's expiry, the others by their refresh tokens' end (`sessions_expires`
 * would walk a week of renewable sessions every hour).
 */
export const PLATFORM_REFRESH_TOKENS_SQL = `ALTER TABLE {s}sessions ADD COLUMN refresh_nonce text;
  ALTER TABLE {s}sessions ADD COLUMN refresh_generation {int};
  ALTER TABLE {s}sessions ADD COLUMN refresh_renewed_at {int};
  ALTER TABLE {s}sessions ADD COLUMN refresh_expires_at {int};
  DROP INDEX {s}sessions_expires;
  CREATE INDEX sessions_expires_plain ON {s}sessions (expires_at) WHERE refresh_expires_at IS NULL;
  CREATE INDEX sessions_refresh_expires ON {s}sessions (refresh_expires_at) WHERE refresh_expires_at IS NOT NULL`;

/** Every form a notification's title has had since the first release, in the order they are told apart, and its kind. */
const KINDS_BY_TITLE: readonly (readonly [RegExp, NotificationKind])[] = [
  [/^Order #.* partly filled$/s, "ORDER_PARTIALLY_FILLED"],
  [/^Order #.* filled$/s, "ORDER_FILLED"],
  [/^Position #.* closed$/s, "POSITION_CLOSED"],
  [/^Stop loss: /, "STOP_LOSS"],
  [/^Take profit: /, "TAKE_PROFIT"],
  [/^Stop out/, "STOP_OUT"],
  [/^Margin call cleared on account /, "MARGIN_CALL_CLEARED"],
  [/^Margin call on account /, "MARGIN_CALL"],
  [/^Price alert: /, "PRICE_ALERT"],
];

/** The kind a notification stored before kinds has, by its title; null for a title of no known form. */
function kindFromTitle(title: string): NotificationKind | null {
  for (const [form, kind] of KINDS_BY_TITLE) if (form.test(title)) return kind;
  return null;
}

/** Whether `error` (or its cause) is PostgreSQL's lock_not_available (55P03): a `lock_timeout` ran out. */
function isLockTimeout(error: unknown): boolean {
  for (let current = error; current instanceof Error; current = current.cause)
    if ((current as Error & { code?: unknown }).code === "55P03") return true;
  return false;
}

/** A book side as stored: `[[price, volume], …]`, or null for none. */
function levelsToText(field: string, levels: readonly BookLevel[] | undefined): string | null {
  if (levels === undefined) return null;
  if (!Array.isArray(levels) || levels.length > MAX_BOOK_LEVELS)
    throw new ValidationError(`${field}: must be a list of at most ${MAX_BOOK_LEVELS} levels`, field);
  return JSON.stringify(
    levels.map((level: BookLevel) => [
      checkInteger(`${field}.price`, level?.price, 1),
      checkInteger(`${field}.volume`, level?.volume, 1),
    ]),
  );
}

function levelsFromText(text: unknown): BookLevel[] | undefined {
  if (text === null || text === undefined) return undefined;
  return (JSON.parse(String(text)) as [number, number][]).map(([price, volume]) => ({ price, volume }));
}

const ALERT_LOG_COLUMNS =
  "id, alert_id, user_id, symbol, side, condition, target, triggered_price, triggered_at, message";
function toAlertLog(row: Row): AlertLog {
  return {
    id: num(row.id),
    alertId: str(row.alert_id),
    userId: str(row.user_id),
    symbol: str(row.symbol),
    side: str(row.side) as AlertLog["side"],
    condition: str(row.condition) as AlertLog["condition"],
    target: optNum(row.target),
    triggeredPrice: num(row.triggered_price),
    triggeredAt: num(row.triggered_at),
    message: str(row.message),
  };
}

const NOTIFICATION_COLUMNS =
  "id, user_id, account_id, kind, order_id, position_id, deal_id, alert_id, level, status, title, body, created_at";
function toNotification(row: Row): Notification {
  return {
    id: num(row.id),
    userId: str(row.user_id),
    accountId: optNum(row.account_id),
    kind: (optStr(row.kind) as Notification["kind"]) ?? kindFromTitle(str(row.title)),
    orderId: optNum(row.order_id),
    positionId: optNum(row.position_id),
    dealId: optNum(row.deal_id),
    alertId: optStr(row.alert_id),
    level: str(row.level) as Notification["level"],
    status: str(row.status) as Notification["status"],
    title: str(row.title),
    body: str(row.body),
    createdAt: num(row.created_at),
  };
}

const CANDLE_COLUMNS = "symbol, timeframe, open_time, open, high, low, close, tick_volume";
function toCandle(row: Row): Candle {
  return {
    symbol: str(row.symbol),
    timeframe: str(row.timeframe) as Candle["timeframe"],
    openTime: num(row.open_time),
    open: num(row.open),
    high: num(row.high),
    low: num(row.low),
    close: num(row.close),
    tickVolume: num(row.tick_volume),
  };
}

export interface SqlDialect {
  /** Prefix of table names: `"schema".` or empty. */
  readonly schemaPrefix: string;
  readonly greatest: string;
  readonly least: string;
  /** Appended to a SELECT that locks the rows it reads until the transaction ends (empty where writes serialise anyway). */
  readonly lock: string;
  /**
   * Run in a transaction before it reads the largest id of `{table}`: waits for the inserts in progress and holds off
   * new ones until it ends, so no row with a smaller id commits after. None where that holds anyway (SQLite: one
   * writer at a time, whose new ids are above every committed one).
   */
  readonly settleInserts: readonly string[];
}

/** The tables, with `{s}` for the schema prefix and `{int}` / `{serial}` for the dialect's integer types. */
export const PLATFORM_SCHEMA_SQL = `
  CREATE TABLE {s}users (
    id text PRIMARY KEY,
    email text NOT NULL,
    email_key text NOT NULL UNIQUE,
    name text NOT NULL,
    password_hash text NOT NULL,
    created_at {int} NOT NULL,
    failed_login_count {int} NOT NULL DEFAULT 0,
    locked_until {int}
  );
  CREATE TABLE {s}sessions (
    id text PRIMARY KEY,
    user_id text NOT NULL REFERENCES {s}users (id) ON DELETE CASCADE,
    account_id {int},
    created_at {int} NOT NULL,
    expires_at {int} NOT NULL,
    revoked_at {int}
  );
  CREATE INDEX sessions_user ON {s}sessions (user_id);
  CREATE INDEX sessions_expires ON {s}sessions (expires_at);
  CREATE TABLE {s}api_keys (
    id text PRIMARY KEY,
    user_id text NOT NULL REFERENCES {s}users (id) ON DELETE CASCADE,
    account_id {int} NOT NULL,
    name text NOT NULL,
    scope text NOT NULL,
    prefix text NOT NULL UNIQUE,
    secret_hash text NOT NULL,
    created_at {int} NOT NULL,
    last_used_at {int},
    revoked_at {int},
    rotated_from text
  );
  CREATE INDEX api_keys_user ON {s}api_keys (user_id, created_at);
  CREATE TABLE {s}watchlist_items (
    user_id text NOT NULL REFERENCES {s}users (id) ON DELETE CASCADE,
    symbol text NOT NULL,
    position {int} NOT NULL,
    PRIMARY KEY (user_id, symbol)
  );
  CREATE TABLE {s}scripts (
    id text PRIMARY KEY,
    user_id text NOT NULL REFERENCES {s}users (id) ON DELETE CASCADE,
    name text NOT NULL,
    language text NOT NULL,
    source text NOT NULL,
    description text NOT NULL,
    created_at {int} NOT NULL,
    updated_at {int} NOT NULL
  );
  CREATE INDEX scripts_user ON {s}scripts (user_id);
  CREATE TABLE {s}settings (
    user_id text PRIMARY KEY REFERENCES {s}users (id) ON DELETE CASCADE,
    document text NOT NULL,
    updated_at {int} NOT NULL
  );
  CREATE TABLE {s}price_alerts (
    id text PRIMARY KEY,
    user_id text NOT NULL REFERENCES {s}users (id) ON DELETE CASCADE,
    account_id {int},
    symbol text NOT NULL,
    side text NOT NULL,
    condition text NOT NULL,
    target_price {int},
    channel_low {int},
    channel_high {int},
    move_threshold {int},
    reference_price {int},
    repeating {int} NOT NULL,
    expiration {int},
    message text NOT NULL,
    status text NOT NULL,
    created_at {int} NOT NULL,
    updated_at {int} NOT NULL
  );
  CREATE INDEX price_alerts_user ON {s}price_alerts (user_id);
  CREATE INDEX price_alerts_symbol_status ON {s}price_alerts (symbol, status);
  CREATE TABLE {s}alert_logs (
    id {serial},
    alert_id text NOT NULL,
    user_id text NOT NULL REFERENCES {s}users (id) ON DELETE CASCADE,
    symbol text NOT NULL,
    side text NOT NULL,
    condition text NOT NULL,
    target {int},
    triggered_price {int} NOT NULL,
    triggered_at {int} NOT NULL
  );
  CREATE INDEX alert_logs_user ON {s}alert_logs (user_id, id);
  CREATE TABLE {s}notifications (
    id {serial},
    user_id text NOT NULL REFERENCES {s}users (id) ON DELETE CASCADE,
    account_id {int},
    level text NOT NULL,
    status text NOT NULL,
    title text NOT NULL,
    body text NOT NULL,
    created_at {int} NOT NULL
  );
  CREATE INDEX notifications_user ON {s}notifications (user_id, id);
  CREATE TABLE {s}candles (
    symbol text NOT NULL,
    timeframe text NOT NULL,
    open_time {int} NOT NULL,
    open {int} NOT NULL,
    high {int} NOT NULL,
    low {int} NOT NULL,
    close {int} NOT NULL,
    tick_volume {int} NOT NULL,
    PRIMARY KEY (symbol, timeframe, open_time)
  );
`;

function page<T extends { id: number }>(rows: T[], limit: number): Page<T> {
  const more = rows.length > limit;
  const kept = more ? rows.slice(0, limit) : rows;
  return { rows: kept, nextCursor: more ? kept[kept.length - 1]!.id : null };
}

function checkCursor(cursor: unknown): number | null {
  return cursor === null || cursor === undefined ? null : checkInteger("cursor", cursor, 1);
}

function checkSource(source: unknown): string {
  const text = checkText("source", source, PLATFORM_LIMITS.scriptSourceBytes, true);
  if (utf8Length(text) > PLATFORM_LIMITS.scriptSourceBytes)
    throw new ValidationError(`source: must be at most ${PLATFORM_LIMITS.scriptSourceBytes} bytes`, "source");
  return text;
}

function checkHash(field: string, value: unknown): string {
  return checkText(field, value, PLATFORM_LIMITS.hashLength);
}

function checkCandle(candle: Candle): Candle {
  const open = checkInteger("open", candle.open, 0);
  const high = checkInteger("high", candle.high, 0);
  const low = checkInteger("low", candle.low, 0);
  const close = checkInteger("close", candle.close, 0);
  if (low > high || open < low || open > high || close < low || close > high)
    throw new ValidationError("high: a candle needs low ≤ open, close ≤ high", "high");
  return {
    symbol: checkSymbol("symbol", candle.symbol),
    timeframe: checkOneOf("timeframe", candle.timeframe, CANDLE_TIMEFRAMES),
    openTime: checkTime("openTime", candle.openTime),
    open,
    high,
    low,
    close,
    tickVolume: checkInteger("tickVolume", candle.tickVolume, 0),
  };
}

/** Notifications one insert statement carries at most: a power of two (`notificationInserts` halves it). */
const NOTIFICATION_ROWS_PER_STATEMENT = 64;

export abstract class SqlPlatformStore implements PlatformStore {
  private database: SqlDatabase | null = null;
  private readonly texts = new Map<string, string>();

  protected abstract readonly dialect: SqlDialect;
  /** Connects and migrates; answers the database and the migrations it applied. */
  protected abstract connect(): Promise<{
    readonly database: SqlDatabase;
    readonly appliedMigrations: readonly AppliedMigration[];
  }>;

  async open(): Promise<PlatformStoreOpenReport> {
    if (this.database) throw new Error("the platform store is already open");
    const { database, appliedMigrations } = await this.connect();
    this.database = database;
    return { appliedMigrations };
  }

  async close(): Promise<void> {
    const database = this.database;
    this.database = null;
    await database?.close();
  }

  private get db(): SqlDatabase {
    if (!this.database) throw new Error("the platform store is not open: call open() first");
    return this.database;
  }

  /** The statement in this dialect (cached). */
  private q(text: string): string {
    let done = this.texts.get(text);
    if (done === undefined) {
      done = text
        .replaceAll("{s}", this.dialect.schemaPrefix)
        .replaceAll("{greatest}", this.dialect.greatest)
        .replaceAll("{least}", this.dialect.least)
        .replaceAll("{lock}", this.dialect.lock);
      this.texts.set(text, done);
    }
    return done;
  }

  private async all(sql: string, params: readonly unknown[] = [], on: SqlExecutor = this.db): Promise<Row[]> {
    return on.all(this.q(sql), params);
  }

  private async run(sql: string, params: readonly unknown[] = [], on: SqlExecutor = this.db): Promise<number> {
    return on.run(this.q(sql), params);
  }

  /** Runs a write, turning constraint violations into the store's typed errors. */
  private async guarded<T>(what: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof ConstraintViolation) {
        if (error.kind === "unique") throw new DuplicateError(`${what}: already exists (${error.detail})`);
        throw new NotFoundError(`${what}: the user does not exist`, "userId");
      }
      throw error;
    }
  }

  /** Locks the user's row for the rest of the transaction (serialises a user's bounded lists); NotFoundError if absent. */
  private async lockUser(tx: SqlExecutor, userId: string): Promise<void> {
    const rows = await this.all("SELECT id FROM {s}users WHERE id = ?{lock}", [userId], tx);
    if (rows.length === 0) throw new NotFoundError(`user ${userId} does not exist`, "userId");
  }

  private async count(tx: SqlExecutor, sql: string, params: readonly unknown[]): Promise<number> {
    const rows = await this.all(sql, params, tx);
    return num(rows[0]?.n ?? 0);
  }

  // ---- users ----

  async createUser(user: NewUser): Promise<User> {
    const id = checkId("id", user.id);
    const email = checkEmail(user.email);
    const name = checkText("name", user.name, PLATFORM_LIMITS.nameLength);
    const passwordHash = checkHash("passwordHash", user.passwordHash);
    const createdAt = checkTime("createdAt", user.createdAt);
    const rows = await this.guarded(`user ${email}`, () =>
      this.all(
        `INSERT INTO {s}users (id, email, email_key, name, password_hash, created_at, failed_login_count)
         VALUES (?, ?, ?, ?, ?, ?, 0) RETURNING ${USER_COLUMNS}`,
        [id, email, email.toLowerCase(), name, passwordHash, createdAt],
      ),
    );
    return toUser(rows[0]!);
  }

  async findUserById(id: string): Promise<User | null> {
    const rows = await this.all(`SELECT ${USER_COLUMNS} FROM {s}users WHERE id = ?`, [checkId("id", id)]);
    return rows[0] ? toUser(rows[0]) : null;
  }

  async listUsers(afterId: string | null, limit: number): Promise<User[]> {
    const rows = await this.all(`SELECT ${USER_COLUMNS} FROM {s}users WHERE id > ? ORDER BY id LIMIT ?`, [
      afterId === null ? "" : checkId("afterId", afterId),
      checkLimit(limit, PLATFORM_LIMITS.pageLimit),
    ]);
    return rows.map(toUser);
  }

  async findUserByEmail(email: string): Promise<User | null> {
    if (typeof email !== "string") throw new ValidationError("email: must be a string", "email");
    const rows = await this.all(`SELECT ${USER_COLUMNS} FROM {s}users WHERE email_key = ?`, [email.toLowerCase()]);
    return rows[0] ? toUser(rows[0]) : null;
  }

  async updatePasswordHash(userId: string, passwordHash: string): Promise<void> {
    const changed = await this.run("UPDATE {s}users SET password_hash = ? WHERE id = ?", [
      checkHash("passwordHash", passwordHash),
      checkId("userId", userId),
    ]);
    if (changed === 0) throw new NotFoundError(`user ${userId} does not exist`, "userId");
  }

  async recordFailedLogin(userId: string, policy: FailedLoginPolicy): Promise<User> {
    const now = checkTime("now", policy.now);
    const maxFailures = checkInteger("maxFailures", policy.maxFailures, 1);
    const lockMilliseconds = checkInteger("lockMilliseconds", policy.lockMilliseconds, 0);
    // One statement: concurrent failures each count (the right-hand sides read the row before the update). A lock
    // that has run out starts a new count: kept at the limit, one wrong guess each lock period (anyone's) locked
    // the user out again for good.
    const rows = await this.all(
      `UPDATE {s}users SET
         failed_login_count = CASE WHEN locked_until <= ? THEN 1 ELSE failed_login_count + 1 END,
         locked_until = CASE
           WHEN (CASE WHEN locked_until <= ? THEN 1 ELSE failed_login_count + 1 END) >= ? THEN ?
           WHEN locked_until <= ? THEN NULL
           ELSE locked_until END
       WHERE id = ? RETURNING ${USER_COLUMNS}`,
      [now, now, maxFailures, now + lockMilliseconds, now, checkId("userId", userId)],
    );
    if (!rows[0]) throw new NotFoundError(`user ${userId} does not exist`, "userId");
    return toUser(rows[0]);
  }

  async recordSuccessfulLogin(userId: string): Promise<User> {
    const rows = await this.all(
      `UPDATE {s}users SET failed_login_count = 0, locked_until = NULL WHERE id = ? RETURNING ${USER_COLUMNS}`,
      [checkId("userId", userId)],
    );
    if (!rows[0]) throw new NotFoundError(`user ${userId} does not exist`, "userId");
    return toUser(rows[0]);
  }

  async setUserDisabled(userId: string, disabledAt: number | null): Promise<User> {
    const rows = await this.all(`UPDATE {s}users SET disabled_at = ? WHERE id = ? RETURNING ${USER_COLUMNS}`, [
      disabledAt === null ? null : checkTime("disabledAt", disabledAt),
      checkId("userId", userId),
    ]);
    if (!rows[0]) throw new NotFoundError(`user ${userId} does not exist`, "userId");
    return toUser(rows[0]);
  }

  // ---- sessions ----

  async createSession(session: NewSession): Promise<OpenedSession> {
    const id = checkId("id", session.id);
    const userId = checkId("userId", session.userId);
    const accountId = checkOptionalInteger("accountId", session.accountId, 1);
    const createdAt = checkTime("createdAt", session.createdAt);
    const expiresAt = checkTime("expiresAt", session.expiresAt);
    if (expiresAt <= createdAt) throw new ValidationError("expiresAt: must be after createdAt", "expiresAt");
    const refreshNonce = session.refresh ? checkHash("refresh.nonce", session.refresh.nonce) : null;
    const refreshExpiresAt = session.refresh ? checkTime("refresh.expiresAt", session.refresh.expiresAt) : null;
    if (refreshExpiresAt !== null && refreshExpiresAt < expiresAt)
      throw new ValidationError("refresh.expiresAt: must not be before expiresAt", "refresh.expiresAt");
    return this.guarded(`session ${id}`, () =>
      this.db.transaction(async (tx) => {
        // The user's row lock serialises their sign-ins: the count and the revocation below see every
        // session opened before, so the bound holds with concurrent sign-ins.
        await this.lockUser(tx, userId);
        const active = await this.count(
          tx,
          `SELECT count(*) AS n FROM {s}sessions WHERE user_id = ? AND ${SESSION_USABLE}`,
          [userId, createdAt, createdAt],
        );
        // At the bound, the oldest active sessions make room (the common behaviour of session stores): the
        // user can always sign in, and the sessions they forgot on other devices end first.
        const excess = active - PLATFORM_LIMITS.activeSessionsPerUser + 1;
        const revokedSessionIds: string[] = [];
        if (excess > 0) {
          const oldest = await this.all(
            `SELECT id FROM {s}sessions WHERE user_id = ? AND ${SESSION_USABLE} ORDER BY created_at, id LIMIT ?`,
            [userId, createdAt, createdAt, excess],
            tx,
          );
          for (const row of oldest) {
            const oldId = str(row.id);
            await this.run("UPDATE {s}sessions SET revoked_at = ? WHERE id = ?", [createdAt, oldId], tx);
            revokedSessionIds.push(oldId);
          }
        }
        const rows = await this.all(
          `INSERT INTO {s}sessions (id, user_id, account_id, created_at, expires_at, refresh_nonce, refresh_generation,
             refresh_renewed_at, refresh_expires_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ${SESSION_COLUMNS}`,
          [
            id,
            userId,
            accountId,
            createdAt,
            expiresAt,
            refreshNonce,
            refreshNonce === null ? null : 0,
            refreshNonce === null ? null : createdAt,
            refreshExpiresAt,
          ],
          tx,
        );
        return { session: toSession(rows[0]!), revokedSessionIds };
      }),
    );
  }

  async findSession(id: string): Promise<Session | null> {
    const rows = await this.all(`SELECT ${SESSION_COLUMNS} FROM {s}sessions WHERE id = ?`, [checkId("id", id)]);
    return rows[0] ? toSession(rows[0]) : null;
  }

  async setSessionAccount(userId: string, sessionId: string, accountId: number | null): Promise<Session> {
    const rows = await this.all(
      `UPDATE {s}sessions SET account_id = ? WHERE id = ? AND user_id = ? RETURNING ${SESSION_COLUMNS}`,
      [checkOptionalInteger("accountId", accountId, 1), checkId("sessionId", sessionId), checkId("userId", userId)],
    );
    if (!rows[0]) throw new NotFoundError(`session ${sessionId} does not exist`, "sessionId");
    return toSession(rows[0]);
  }

  async extendSession(userId: string, sessionId: string, expiresAt: number, now: number): Promise<Session | null> {
    const rows = await this.all(
      `UPDATE {s}sessions SET expires_at = ${this.dialect.greatest}(expires_at, ?)
       WHERE id = ? AND user_id = ? AND revoked_at IS NULL AND expires_at > ? RETURNING ${SESSION_COLUMNS}`,
      [
        checkTime("expiresAt", expiresAt),
        checkId("sessionId", sessionId),
        checkId("userId", userId),
        checkTime("now", now),
      ],
    );
    return rows[0] ? toSession(rows[0]) : null;
  }

  async presentRefreshToken(presented: PresentedRefreshToken): Promise<RefreshTokenOutcome> {
    const sessionId = checkId("sessionId", presented.sessionId);
    const generation = checkInteger("generation", presented.generation, 0);
    const now = checkTime("now", presented.now);
    const expiresAt = checkTime("expiresAt", presented.expiresAt);
    const graceMs = checkInteger("reuseGraceMs", presented.reuseGraceMs, 0);
    const purpose = checkOneOf("purpose", presented.purpose, ["refresh", "end"] as const);
    return this.db.transaction(async (tx): Promise<RefreshTokenOutcome> => {
      // Locked: presentations of one session's tokens, and its revocations, one at a time.
      const rows = await this.all(
        `SELECT refresh_nonce, refresh_generation, refresh_renewed_at, refresh_expires_at, revoked_at
         FROM {s}sessions WHERE id = ?{lock}`,
        [sessionId],
        tx,
      );
      const row = rows[0];
      const nonce = row ? optStr(row.refresh_nonce) : null;
      // Genuineness first: a forged token learns nothing of the session (ended, expired) and changes nothing.
      if (!row || nonce === null || generation > num(row.refresh_generation) || !presented.isGenuine(nonce))
        return { kind: "unknown" };
      if (row.revoked_at !== null && row.revoked_at !== undefined) return { kind: "revoked" };
      const revoke = async () =>
        toSession(
          (
            await this.all(
              `UPDATE {s}sessions SET revoked_at = ? WHERE id = ? RETURNING ${SESSION_COLUMNS}`,
              [now, sessionId],
              tx,
            )
          )[0]!,
        );
      // Any of its tokens ends it, an old one too (its holder had it from the session).
      if (purpose === "end") return { kind: "ended", session: await revoke() };
      if (num(row.refresh_expires_at) <= now) return { kind: "expired" };
      const current = num(row.refresh_generation);
      const withinGrace = generation === current - 1 && num(row.refresh_renewed_at) + graceMs >= now;
      if (generation < current && !withinGrace) return { kind: "reused", session: await revoke() };
      // The current token: the next one is answered and becomes current. The one before within the grace (the answer
      // was lost): the current one is answered again, the grace still counted from that refresh.
      const renewed = await this.all(
        `UPDATE {s}sessions SET refresh_generation = ?, refresh_renewed_at = ?,
           expires_at = {greatest}(expires_at, {least}(?, refresh_expires_at))
         WHERE id = ? RETURNING ${SESSION_COLUMNS}`,
        withinGrace
          ? [current, num(row.refresh_renewed_at), expiresAt, sessionId]
          : [current + 1, now, expiresAt, sessionId],
        tx,
      );
      return {
        kind: "renewed",
        session: toSession(renewed[0]!),
        generation: withinGrace ? current : current + 1,
        nonce,
      };
    });
  }

  async endRefreshTokens(userId: string, sessionId: string): Promise<boolean> {
    const changed = await this.run(
      `UPDATE {s}sessions SET refresh_nonce = NULL, refresh_generation = NULL, refresh_renewed_at = NULL,
         refresh_expires_at = NULL WHERE id = ? AND user_id = ? AND revoked_at IS NULL`,
      [checkId("sessionId", sessionId), checkId("userId", userId)],
    );
    return changed > 0;
  }

  async revokeSession(userId: string, sessionId: string, now: number): Promise<boolean> {
    const changed = await this.run(
      "UPDATE {s}sessions SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
      [checkTime("now", now), checkId("sessionId", sessionId), checkId("userId", userId)],
    );
    return changed > 0;
  }

  async revokeOtherSessions(userId: string, exceptSessionId: string | null, now: number): Promise<string[]> {
    const except = exceptSessionId === null ? "" : checkId("exceptSessionId", exceptSessionId);
    const rows = await this.all(
      "UPDATE {s}sessions SET revoked_at = ? WHERE user_id = ? AND id <> ? AND revoked_at IS NULL RETURNING id",
      [checkTime("now", now), checkId("userId", userId), except],
    );
    return rows.map((row) => str(row.id));
  }

  async purgeExpiredSessions(now: number): Promise<number> {
    const at = checkTime("now", now);
    // Two statements, each through its index (migration 8): with OR, SQLite scanned every session (found by the audit
    // of complexity of 7 December, sixth session).
    // A session whose refresh tokens still renew it stays (its token's expiry alone is not its end); each kind through
    // its own partial index (migration 12).
    const expired =
      (await this.run("DELETE FROM {s}sessions WHERE refresh_expires_at IS NULL AND expires_at <= ?", [at])) +
      (await this.run("DELETE FROM {s}sessions WHERE refresh_expires_at IS NOT NULL AND refresh_expires_at <= ?", [
        at,
      ]));
    return expired + (await this.run("DELETE FROM {s}sessions WHERE revoked_at <= ?", [at]));
  }

  // ---- API keys ----

  async createApiKey(key: NewApiKey): Promise<ApiKey> {
    const id = checkId("id", key.id);
    const userId = checkId("userId", key.userId);
    const values = [
      id,
      userId,
      checkInteger("accountId", key.accountId, 1),
      checkText("name", key.name, PLATFORM_LIMITS.nameLength),
      checkOneOf("scope", key.scope, API_KEY_SCOPES),
      checkPrefix(key.prefix),
      checkHash("secretHash", key.secretHash),
      checkTime("createdAt", key.createdAt),
    ];
    return this.guarded(`API key ${id}`, () =>
      this.db.transaction(async (tx) => {
        await this.lockUser(tx, userId);
        await this.checkActiveKeyRoom(tx, userId);
        const rows = await this.all(
          `INSERT INTO {s}api_keys (id, user_id, account_id, name, scope, prefix, secret_hash, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING ${API_KEY_COLUMNS}`,
          values,
          tx,
        );
        return toApiKey(rows[0]!);
      }),
    );
  }

  private async checkActiveKeyRoom(tx: SqlExecutor, userId: string): Promise<void> {
    const active = await this.count(
      tx,
      "SELECT count(*) AS n FROM {s}api_keys WHERE user_id = ? AND revoked_at IS NULL",
      [userId],
    );
    if (active >= PLATFORM_LIMITS.activeApiKeysPerUser)
      throw new ValidationError(
        `userId: at most ${PLATFORM_LIMITS.activeApiKeysPerUser} active API keys per user`,
        "userId",
      );
  }

  async findActiveApiKeyByPrefix(prefix: string): Promise<ApiKey | null> {
    const rows = await this.all(`SELECT ${API_KEY_COLUMNS} FROM {s}api_keys WHERE prefix = ? AND revoked_at IS NULL`, [
      checkPrefix(prefix),
    ]);
    return rows[0] ? toApiKey(rows[0]) : null;
  }

  async listApiKeys(userId: string): Promise<ApiKey[]> {
    // The active keys first (at most activeApiKeysPerUser, fewer than the list's bound): a user's oldest working key
    // dropped out of a list of the newest 200, revoked ones included, while it still worked.
    const rows = await this.all(
      `SELECT ${API_KEY_COLUMNS} FROM {s}api_keys WHERE user_id = ?
       ORDER BY CASE WHEN revoked_at IS NULL THEN 0 ELSE 1 END, created_at DESC, id DESC LIMIT ?`,
      [checkId("userId", userId), PLATFORM_LIMITS.apiKeysListed],
    );
    return rows.map(toApiKey);
  }

  async revokeApiKey(userId: string, keyId: string, now: number): Promise<boolean> {
    checkId("userId", userId);
    const at = checkTime("now", now);
    const id = checkId("keyId", keyId);
    return this.db.transaction(async (tx) => {
      const changed = await this.run(
        "UPDATE {s}api_keys SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
        [at, id, userId],
        tx,
      );
      if (changed > 0) await this.forgetOldRevokedKeys(tx, userId);
      return changed > 0;
    });
  }

  /**
   * Deletes a user's revoked keys past the newest PLATFORM_LIMITS.revokedApiKeysKept: each create-and-revoke or
   * rotation left a row for good (502 rows for one user in an audit). No revoked key authenticates anything.
   */
  private async forgetOldRevokedKeys(tx: SqlExecutor, userId: string): Promise<void> {
    await this.run(
      `DELETE FROM {s}api_keys WHERE user_id = ? AND revoked_at IS NOT NULL AND id NOT IN (
         SELECT id FROM {s}api_keys WHERE user_id = ? AND revoked_at IS NOT NULL
         ORDER BY revoked_at DESC, id DESC LIMIT ?)`,
      [userId, userId, PLATFORM_LIMITS.revokedApiKeysKept],
      tx,
    );
  }

  async rotateApiKey(userId: string, keyId: string, next: RotatedApiKey): Promise<ApiKey> {
    checkId("userId", userId);
    checkId("keyId", keyId);
    const id = checkId("id", next.id);
    const prefix = checkPrefix(next.prefix);
    const secretHash = checkHash("secretHash", next.secretHash);
    const createdAt = checkTime("createdAt", next.createdAt);
    return this.guarded(`API key ${id}`, () =>
      this.db.transaction(async (tx) => {
        // The UPDATE locks the old row: of two concurrent rotations, the second finds it revoked.
        const old = await this.all(
          `UPDATE {s}api_keys SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL
           RETURNING ${API_KEY_COLUMNS}`,
          [createdAt, keyId, userId],
          tx,
        );
        if (!old[0]) throw new NotFoundError(`API key ${keyId} does not exist or is revoked`, "keyId");
        const previous = toApiKey(old[0]);
        const rows = await this.all(
          `INSERT INTO {s}api_keys (id, user_id, account_id, name, scope, prefix, secret_hash, created_at, rotated_from)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ${API_KEY_COLUMNS}`,
          [id, userId, previous.accountId, previous.name, previous.scope, prefix, secretHash, createdAt, keyId],
          tx,
        );
        await this.forgetOldRevokedKeys(tx, userId);
        return toApiKey(rows[0]!);
      }),
    );
  }

  async touchApiKey(keyId: string, now: number): Promise<void> {
    await this.run("UPDATE {s}api_keys SET last_used_at = {greatest}(coalesce(last_used_at, 0), ?) WHERE id = ?", [
      checkTime("now", now),
      checkId("keyId", keyId),
    ]);
  }

  // ---- watchlists ----

  private async watchlist(userId: string, on: SqlExecutor = this.db): Promise<string[]> {
    const rows = await this.all(
      "SELECT symbol FROM {s}watchlist_items WHERE user_id = ? ORDER BY position LIMIT ?",
      [userId, PLATFORM_LIMITS.watchlistSymbols],
      on,
    );
    return rows.map((row) => str(row.symbol));
  }

  async getWatchlist(userId: string): Promise<string[]> {
    return this.watchlist(checkId("userId", userId));
  }

  async addToWatchlist(userId: string, symbol: string): Promise<string[]> {
    checkId("userId", userId);
    checkSymbol("symbol", symbol);
    return this.guarded(`watchlist symbol ${symbol}`, () =>
      this.db.transaction(async (tx) => {
        await this.lockUser(tx, userId);
        const current = await this.watchlist(userId, tx);
        if (current.includes(symbol)) throw new DuplicateError(`${symbol} is already in the watchlist`, "symbol");
        if (current.length >= PLATFORM_LIMITS.watchlistSymbols)
          throw new LimitReachedError(
            `A watchlist holds at most ${PLATFORM_LIMITS.watchlistSymbols} symbols`,
            "symbol",
          );
        await this.run(
          `INSERT INTO {s}watchlist_items (user_id, symbol, position)
           VALUES (?, ?, (SELECT coalesce(max(position), 0) + 1 FROM {s}watchlist_items WHERE user_id = ?))`,
          [userId, symbol, userId],
          tx,
        );
        return [...current, symbol];
      }),
    );
  }

  async reorderWatchlist(userId: string, symbols: readonly string[]): Promise<string[]> {
    checkId("userId", userId);
    if (!Array.isArray(symbols) || symbols.length > PLATFORM_LIMITS.watchlistSymbols)
      throw new ValidationError(`symbols: must be a list of at most ${PLATFORM_LIMITS.watchlistSymbols}`, "symbols");
    symbols.forEach((symbol) => checkSymbol("symbols", symbol));
    return this.db.transaction(async (tx) => {
      await this.lockUser(tx, userId);
      const current = await this.watchlist(userId, tx);
      const wanted = new Set(symbols);
      if (wanted.size !== symbols.length || symbols.length !== current.length || current.some((s) => !wanted.has(s)))
        throw new ValidationError("symbols: must be a permutation of the current watchlist", "symbols");
      for (const [index, symbol] of symbols.entries())
        await this.run(
          "UPDATE {s}watchlist_items SET position = ? WHERE user_id = ? AND symbol = ?",
          [index + 1, userId, symbol],
          tx,
        );
      return [...symbols];
    });
  }

  async removeFromWatchlist(userId: string, symbol: string): Promise<boolean> {
    const changed = await this.run("DELETE FROM {s}watchlist_items WHERE user_id = ? AND symbol = ?", [
      checkId("userId", userId),
      checkSymbol("symbol", symbol),
    ]);
    return changed > 0;
  }

  // ---- scripts ----

  async createScript(script: NewScript): Promise<Script> {
    const id = checkId("id", script.id);
    const userId = checkId("userId", script.userId);
    const createdAt = checkTime("createdAt", script.createdAt);
    const values = [
      id,
      userId,
      checkText("name", script.name, PLATFORM_LIMITS.nameLength),
      checkLanguage(script.language),
      checkSource(script.source),
      checkText("description", script.description ?? "", PLATFORM_LIMITS.descriptionLength, true),
      createdAt,
      createdAt,
    ];
    return this.guarded(`script ${id}`, () =>
      this.db.transaction(async (tx) => {
        await this.lockUser(tx, userId);
        const count = await this.count(tx, "SELECT count(*) AS n FROM {s}scripts WHERE user_id = ?", [userId]);
        if (count >= PLATFORM_LIMITS.scriptsPerUser)
          throw new LimitReachedError(`At most ${PLATFORM_LIMITS.scriptsPerUser} scripts per user`, "userId");
        const rows = await this.all(
          `INSERT INTO {s}scripts (id, user_id, name, language, source, description, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING ${SCRIPT_COLUMNS}`,
          values,
          tx,
        );
        return toScript(rows[0]!);
      }),
    );
  }

  async getScript(userId: string, scriptId: string): Promise<Script | null> {
    const rows = await this.all(`SELECT ${SCRIPT_COLUMNS} FROM {s}scripts WHERE id = ? AND user_id = ?`, [
      checkId("scriptId", scriptId),
      checkId("userId", userId),
    ]);
    return rows[0] ? toScript(rows[0]) : null;
  }

  async listScripts(userId: string): Promise<ScriptSummary[]> {
    const rows = await this.all(
      `SELECT ${SCRIPT_SUMMARY_COLUMNS} FROM {s}scripts WHERE user_id = ? ORDER BY created_at, id LIMIT ?`,
      [checkId("userId", userId), PLATFORM_LIMITS.scriptsPerUser],
    );
    return rows.map(toScriptSummary);
  }

  async updateScript(userId: string, scriptId: string, patch: ScriptPatch, now: number): Promise<Script | null> {
    checkId("userId", userId);
    checkId("scriptId", scriptId);
    const at = checkTime("now", now);
    const name = patch.name === undefined ? null : checkText("name", patch.name, PLATFORM_LIMITS.nameLength);
    const language = patch.language === undefined ? null : checkLanguage(patch.language);
    const source = patch.source === undefined ? null : checkSource(patch.source);
    const description =
      patch.description === undefined
        ? null
        : checkText("description", patch.description, PLATFORM_LIMITS.descriptionLength, true);
    const rows = await this.all(
      `UPDATE {s}scripts SET name = coalesce(?, name), language = coalesce(?, language), source = coalesce(?, source),
         description = coalesce(?, description), updated_at = ?
       WHERE id = ? AND user_id = ? RETURNING ${SCRIPT_COLUMNS}`,
      [name, language, source, description, at, scriptId, userId],
    );
    return rows[0] ? toScript(rows[0]) : null;
  }

  async deleteScript(userId: string, scriptId: string): Promise<boolean> {
    const changed = await this.run("DELETE FROM {s}scripts WHERE id = ? AND user_id = ?", [
      checkId("scriptId", scriptId),
      checkId("userId", userId),
    ]);
    return changed > 0;
  }

  // ---- settings ----

  private async settings(userId: string, on: SqlExecutor): Promise<SettingsDocument> {
    const rows = await this.all("SELECT document FROM {s}settings WHERE user_id = ?", [userId], on);
    return rows[0] ? (JSON.parse(str(rows[0].document)) as SettingsDocument) : {};
  }

  async getSettings(userId: string): Promise<SettingsDocument> {
    return this.settings(checkId("userId", userId), this.db);
  }

  private async saveSettings(tx: SqlExecutor, userId: string, json: string, now: number): Promise<void> {
    await this.run(
      `INSERT INTO {s}settings (user_id, document, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (user_id) DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at`,
      [userId, json, now],
      tx,
    );
  }

  async replaceSettings(userId: string, document: SettingsDocument, now: number): Promise<SettingsDocument> {
    checkId("userId", userId);
    const at = checkTime("now", now);
    const json = settingsJson("document", document);
    await this.guarded("settings", () =>
      this.db.transaction(async (tx) => {
        await this.lockUser(tx, userId);
        await this.saveSettings(tx, userId, json, at);
      }),
    );
    return JSON.parse(json) as SettingsDocument;
  }

  async mergeSettings(userId: string, patch: SettingsDocument, now: number): Promise<SettingsDocument> {
    checkId("userId", userId);
    const at = checkTime("now", now);
    settingsJson("patch", patch);
    return this.db.transaction(async (tx) => {
      await this.lockUser(tx, userId);
      const current = await this.settings(userId, tx);
      const merged = { ...current, ...patch };
      // A document over the bound from before it held for merges may still change its keys, not add any.
      const json = settingsJson(
        "document",
        merged,
        Math.max(PLATFORM_LIMITS.settingsKeys, Object.keys(current).length),
      );
      await this.saveSettings(tx, userId, json, at);
      return JSON.parse(json) as SettingsDocument;
    });
  }

  // ---- price alerts ----

  private checkedAlert(alert: Omit<PriceAlert, "id" | "userId" | "symbol" | "armedLegs" | "createdAt" | "updatedAt">) {
    const checked = {
      accountId: checkOptionalInteger("accountId", alert.accountId, 1),
      side: checkOneOf("side", alert.side, ALERT_SIDES),
      condition: checkOneOf("condition", alert.condition, ALERT_CONDITIONS),
      targetPrice: checkOptionalInteger("targetPrice", alert.targetPrice, 0),
      channelLow: checkOptionalInteger("channelLow", alert.channelLow, 0),
      channelHigh: checkOptionalInteger("channelHigh", alert.channelHigh, 0),
      moveThreshold: checkOptionalInteger("moveThreshold", alert.moveThreshold, 0),
      referencePrice: checkOptionalInteger("referencePrice", alert.referencePrice, 0),
      repeating: alert.repeating,
      expiration: checkOptionalInteger("expiration", alert.expiration, 0),
      message: checkText("message", alert.message, PLATFORM_LIMITS.messageLength, true),
      status: checkOneOf("status", alert.status, ALERT_STATUSES),
    };
    if (typeof checked.repeating !== "boolean") throw new ValidationError("repeating: must be a boolean", "repeating");
    checkAlertParameters(checked);
    return checked;
  }

  async createAlert(alert: NewPriceAlert): Promise<PriceAlert> {
    const id = checkId("id", alert.id);
    const userId = checkId("userId", alert.userId);
    const symbol = checkSymbol("symbol", alert.symbol);
    const createdAt = checkTime("createdAt", alert.createdAt);
    const a = this.checkedAlert({
      accountId: alert.accountId ?? null,
      side: alert.side,
      condition: alert.condition,
      targetPrice: alert.targetPrice ?? null,
      channelLow: alert.channelLow ?? null,
      channelHigh: alert.channelHigh ?? null,
      moveThreshold: alert.moveThreshold ?? null,
      referencePrice: alert.referencePrice ?? null,
      repeating: alert.repeating ?? false,
      expiration: alert.expiration ?? null,
      message: alert.message ?? "",
      status: alert.status ?? "active",
    });
    return this.guarded(`alert ${id}`, () =>
      this.db.transaction(async (tx) => {
        await this.lockUser(tx, userId);
        const count = await this.count(tx, "SELECT count(*) AS n FROM {s}price_alerts WHERE user_id = ?", [userId]);
        if (count >= PLATFORM_LIMITS.alertsPerUser)
          throw new LimitReachedError(`At most ${PLATFORM_LIMITS.alertsPerUser} alerts per user`, "userId");
        const rows = await this.all(
          `INSERT INTO {s}price_alerts (${ALERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)
           RETURNING ${ALERT_COLUMNS}`,
          [
            id,
            userId,
            a.accountId,
            symbol,
            a.side,
            a.condition,
            a.targetPrice,
            a.channelLow,
            a.channelHigh,
            a.moveThreshold,
            a.referencePrice,
            a.repeating ? 1 : 0,
            a.expiration,
            a.message,
            a.status,
            createdAt,
            createdAt,
          ],
          tx,
        );
        return toAlert(rows[0]!);
      }),
    );
  }

  async getAlert(userId: string, alertId: string): Promise<PriceAlert | null> {
    const rows = await this.all(`SELECT ${ALERT_COLUMNS} FROM {s}price_alerts WHERE id = ? AND user_id = ?`, [
      checkId("alertId", alertId),
      checkId("userId", userId),
    ]);
    return rows[0] ? toAlert(rows[0]) : null;
  }

  async listAlerts(userId: string): Promise<PriceAlert[]> {
    const rows = await this.all(
      `SELECT ${ALERT_COLUMNS} FROM {s}price_alerts WHERE user_id = ? ORDER BY created_at, id LIMIT ?`,
      [checkId("userId", userId), PLATFORM_LIMITS.alertsPerUser],
    );
    return rows.map(toAlert);
  }

  async updateAlert(userId: string, alertId: string, patch: PriceAlertPatch, now: number): Promise<PriceAlert | null> {
    checkId("userId", userId);
    checkId("alertId", alertId);
    const at = checkTime("now", now);
    return this.db.transaction((tx) => this.updateAlertIn(tx, userId, alertId, patch, at));
  }

  /** `updateAlert` inside the caller's transaction, its arguments checked. */
  private async updateAlertIn(
    tx: SqlExecutor,
    userId: string,
    alertId: string,
    patch: PriceAlertPatch,
    at: number,
  ): Promise<PriceAlert | null> {
    const rows = await this.all(
      `SELECT ${ALERT_COLUMNS} FROM {s}price_alerts WHERE id = ? AND user_id = ?{lock}`,
      [alertId, userId],
      tx,
    );
    if (!rows[0]) return null;
    const current = toAlert(rows[0]);
    const defined = Object.fromEntries(Object.entries(patch).filter(([, value]) => value !== undefined));
    const a = this.checkedAlert({ ...current, ...defined });
    const legsChanged = ALERT_LEG_FIELDS.some((field) => a[field] !== current[field]);
    const updated = await this.all(
      `UPDATE {s}price_alerts SET account_id = ?, side = ?, condition = ?, target_price = ?, channel_low = ?,
           channel_high = ?, move_threshold = ?, reference_price = ?, repeating = ?, expiration = ?, message = ?,
           status = ?, updated_at = ?${legsChanged ? ", armed_legs = NULL" : ""}
         WHERE id = ? AND user_id = ? RETURNING ${ALERT_COLUMNS}`,
      [
        a.accountId,
        a.side,
        a.condition,
        a.targetPrice,
        a.channelLow,
        a.channelHigh,
        a.moveThreshold,
        a.referencePrice,
        a.repeating ? 1 : 0,
        a.expiration,
        a.message,
        a.status,
        at,
        alertId,
        userId,
      ],
      tx,
    );
    return toAlert(updated[0]!);
  }

  async saveAlertArming(userId: string, alertId: string, armedLegs: number | null): Promise<boolean> {
    const legs = checkOptionalInteger("armedLegs", armedLegs, 0);
    // Two legs at most (CROSSING_EITHER), a bit each.
    if (legs !== null && legs > 3) throw new ValidationError("armedLegs: must be 0 to 3, a bit per leg", "armedLegs");
    const changed = await this.run("UPDATE {s}price_alerts SET armed_legs = ? WHERE id = ? AND user_id = ?", [
      legs,
      checkId("alertId", alertId),
      checkId("userId", userId),
    ]);
    return changed > 0;
  }

  async deleteAlert(userId: string, alertId: string): Promise<boolean> {
    const changed = await this.run("DELETE FROM {s}price_alerts WHERE id = ? AND user_id = ?", [
      checkId("alertId", alertId),
      checkId("userId", userId),
    ]);
    return changed > 0;
  }

  async listActiveAlertsBySymbol(
    symbol: string,
    afterId: string | null = null,
    limit: number = PLATFORM_LIMITS.activeAlertsBySymbol,
  ): Promise<PriceAlert[]> {
    const rows = await this.all(
      `SELECT ${ALERT_COLUMNS} FROM {s}price_alerts WHERE symbol = ? AND status = 'active' AND id > ?
       ORDER BY id LIMIT ?`,
      [
        checkSymbol("symbol", symbol),
        afterId === null ? "" : checkId("afterId", afterId),
        checkLimit(limit, PLATFORM_LIMITS.activeAlertsBySymbol),
      ],
    );
    return rows.map(toAlert);
  }

  // ---- alert logs ----

  async addAlertLog(log: NewAlertLog): Promise<AlertLog> {
    const insert = this.alertLogInsert(log);
    const rows = await this.guarded("alert log", () => this.all(insert.sql, insert.params));
    return toAlertLog(rows[0]!);
  }

  /** The checked insert of an alert log entry, returning its row (none when its trigger key is stored already). */
  private alertLogInsert(log: NewAlertLog, triggerKey: string | null = null): SqlStatement {
    return {
      sql: `INSERT INTO {s}alert_logs (alert_id, user_id, symbol, side, condition, target, triggered_price, triggered_at,
           trigger_key, message)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (trigger_key) DO NOTHING RETURNING ${ALERT_LOG_COLUMNS}`,
      params: [
        checkId("alertId", log.alertId),
        checkId("userId", log.userId),
        checkSymbol("symbol", log.symbol),
        checkOneOf("side", log.side, ALERT_SIDES),
        checkOneOf("condition", log.condition, ALERT_CONDITIONS),
        checkOptionalInteger("target", log.target, 0),
        checkInteger("triggeredPrice", log.triggeredPrice, 0),
        checkTime("triggeredAt", log.triggeredAt),
        triggerKey === null ? null : checkText("key", triggerKey, PLATFORM_LIMITS.nameLength * 2),
        checkText("message", log.message, PLATFORM_LIMITS.messageLength, true),
      ],
    };
  }

  async recordAlertTrigger(trigger: AlertTrigger): Promise<RecordedAlertTrigger> {
    const logInsert = this.alertLogInsert(trigger.log, trigger.key);
    const [notificationInsert] = this.notificationInserts([trigger.notification]) as [SqlStatement];
    const at = checkTime("now", trigger.now);
    return this.guarded("alert trigger", () =>
      this.db.transaction(async (tx) => {
        const [logRow] = await this.all(logInsert.sql, logInsert.params, tx);
        if (!logRow) {
          // Recorded already (a try whose outcome was lost committed): its change and notification came with it.
          const [stored] = await this.all(
            `SELECT ${ALERT_LOG_COLUMNS} FROM {s}alert_logs WHERE trigger_key = ?`,
            [trigger.key],
            tx,
          );
          return { log: toAlertLog(stored!), alert: null, notification: null };
        }
        const alert = trigger.patch
          ? await this.updateAlertIn(tx, trigger.log.userId, trigger.log.alertId, trigger.patch, at)
          : null;
        const [notificationRow] = await this.all(notificationInsert.sql, notificationInsert.params, tx);
        return { log: toAlertLog(logRow!), alert, notification: toNotification(notificationRow!) };
      }),
    );
  }

  async listAlertLogs(userId: string, query: PageQuery): Promise<Page<AlertLog>> {
    const limit = checkLimit(query.limit, PLATFORM_LIMITS.pageLimit);
    const cursor = checkCursor(query.cursor);
    const rows = await this.all(
      `SELECT ${ALERT_LOG_COLUMNS} FROM {s}alert_logs WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?`,
      [checkId("userId", userId), cursor ?? Number.MAX_SAFE_INTEGER, limit + 1],
    );
    return page(rows.map(toAlertLog), limit);
  }

  async deleteAlertLog(userId: string, logId: number): Promise<boolean> {
    const changed = await this.run("DELETE FROM {s}alert_logs WHERE id = ? AND user_id = ?", [
      checkInteger("logId", logId, 1),
      checkId("userId", userId),
    ]);
    return changed > 0;
  }

  async deleteAllAlertLogs(userId: string): Promise<number> {
    return this.run("DELETE FROM {s}alert_logs WHERE user_id = ?", [checkId("userId", userId)]);
  }

  // ---- notifications ----

  /**
   * One statement for the whole batch, in order, and the journal mark with it: one commit (one fsync on SQLite)
   * for a burst of fills, not a disk flush and a statement each. Notifications are derived from journaled events:
   * a power failure may cost the last ones, never a trade, and the mark written with them makes the next start
   * derive those again. Ids are handed out in VALUES order; RETURNING does not promise an order, so the rows are
   * sorted by id.
   */
  async addNotifications(notifications: readonly NewNotification[], journalSequence?: number): Promise<Notification[]> {
    if (notifications.length > PLATFORM_LIMITS.notificationBatch)
      throw new ValidationError(
        `notifications: at most ${PLATFORM_LIMITS.notificationBatch} per batch, got ${notifications.length}`,
        "notifications",
      );
    const inserts = this.notificationInserts(notifications);
    const statements: SqlStatement[] = [...inserts];
    if (journalSequence !== undefined)
      statements.push({
        sql: this.q(`INSERT INTO {s}derived_through (kind, journal_sequence) VALUES ('notifications', ?)
               ON CONFLICT (kind) DO UPDATE SET journal_sequence = excluded.journal_sequence`),
        params: [checkInteger("journalSequence", journalSequence, 0)],
      });
    if (statements.length === 0) return [];
    const results = await this.guarded("notifications", () => this.db.derivedWrite(statements));
    return results
      .slice(0, inserts.length)
      .flat()
      .map(toNotification)
      .sort((a, b) => a.id - b.id);
  }

  async forgetNotificationsAfter(journalSequence: number): Promise<number> {
    const through = checkInteger("journalSequence", journalSequence, 0);
    // Through the unique index on journal_sequence: only the rows past the mark.
    const [deleted] = await this.guarded("notifications", () =>
      this.db.derivedWrite([
        { sql: this.q("DELETE FROM {s}notifications WHERE journal_sequence > ? RETURNING id"), params: [through] },
        {
          sql: this.q(`INSERT INTO {s}derived_through (kind, journal_sequence) VALUES ('notifications', ?)
               ON CONFLICT (kind) DO UPDATE SET journal_sequence = excluded.journal_sequence`),
          params: [through],
        },
      ]),
    );
    return deleted?.length ?? 0;
  }

  async notificationJournalSequence(): Promise<number | null> {
    const [row] = await this.all("SELECT journal_sequence FROM {s}derived_through WHERE kind = 'notifications'");
    return row ? num(row.journal_sequence) : null;
  }

  /**
   * The checked inserts of notifications, returning their rows, in statements of NOTIFICATION_ROWS_PER_STATEMENT rows
   * and then of halves of it (32, 16, … 1), so a batch of any size is written with seven statement texts at most. One
   * statement a batch, with a text for each batch size up to 1,000, kept a prepared statement and its text for every
   * size seen, never freed: 458 MB once every size had come (found by the audit of limits of 7 December). Ids are
   * handed out in VALUES order, statement after statement; RETURNING does not promise an order, so callers sort the
   * rows by id.
   */
  private notificationInserts(notifications: readonly NewNotification[]): SqlStatement[] {
    const checked = notifications.map((notification) => [
      checkId("userId", notification.userId),
      checkOptionalInteger("accountId", notification.accountId, 1),
      checkOneOf("kind", notification.kind, NOTIFICATION_KINDS),
      checkOptionalInteger("orderId", notification.orderId, 1),
      checkOptionalInteger("positionId", notification.positionId, 1),
      checkOptionalInteger("dealId", notification.dealId, 1),
      notification.alertId === null || notification.alertId === undefined
        ? null
        : checkId("alertId", notification.alertId),
      checkOneOf("level", notification.level, NOTIFICATION_LEVELS),
      checkText("title", notification.title, PLATFORM_LIMITS.nameLength * 2),
      checkText("body", notification.body ?? "", PLATFORM_LIMITS.notificationBodyLength, true),
      checkTime("createdAt", notification.createdAt),
      checkOptionalInteger("journalSequence", notification.journalSequence, 1),
    ]);
    const statements: SqlStatement[] = [];
    for (let start = 0; start < checked.length;) {
      let count = NOTIFICATION_ROWS_PER_STATEMENT;
      while (count > checked.length - start) count /= 2;
      const rows = checked.slice(start, start + count);
      start += count;
      statements.push({
        sql: this.q(`INSERT INTO {s}notifications (user_id, account_id, kind, order_id, position_id, deal_id, alert_id,
               level, status, title, body, created_at, journal_sequence)
             VALUES ${rows.map(() => "(?, ?, ?, ?, ?, ?, ?, ?, 'unread', ?, ?, ?, ?)").join(", ")}
             ON CONFLICT (journal_sequence) DO NOTHING RETURNING ${NOTIFICATION_COLUMNS}`),
        params: rows.flat(),
      });
    }
    return statements;
  }

  async pruneUserHistories(keepPerUser: number): Promise<number> {
    const keep = checkInteger("keepPerUser", keepPerUser, 1);
    let deleted = 0;
    for (const table of ["notifications", "alert_logs"] as const) {
      // Only the users with rows after the last prune's mark, if that prune kept as many or fewer: it left every other
      // user at most that many, and rows only come with larger ids. Counting every user's rows took 73 ms at 1M rows,
      // synchronous on SQLite (found by the audit of complexity of 7 December, sixth session). No mark: every user.
      const [mark] = await this.all(
        "SELECT keep_per_user, pruned_through FROM {s}history_prune_marks WHERE table_name = ?",
        [table],
      );
      const after = mark !== undefined && num(mark.keep_per_user) <= keep ? num(mark.pruned_through) : 0;
      let through: number;
      try {
        through = await this.db.transaction(async (tx) => {
          for (const statement of this.dialect.settleInserts)
            await this.run(statement.replaceAll("{table}", `{s}${table}`), [], tx);
          return this.count(tx, `SELECT max(id) AS n FROM {s}${table}`, []);
        });
      } catch (error) {
        // The lock waited past its bound (a VACUUM holding the table, say): this table is pruned at the next run, and
        // no insert waited behind the prune longer than that (found by the review of 7 December, sixth session).
        if (isLockTimeout(error)) continue;
        throw error;
      }
      const users = await this.all(`SELECT DISTINCT user_id FROM {s}${table} WHERE id > ? AND id <= ?`, [
        after,
        through,
      ]);
      for (const { user_id: userId } of users)
        deleted += await this.run(
          `DELETE FROM {s}${table} WHERE user_id = ? AND id <= (
             SELECT id FROM {s}${table} WHERE user_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`,
          [userId, userId, keep],
        );
      await this.run(
        `INSERT INTO {s}history_prune_marks (table_name, keep_per_user, pruned_through) VALUES (?, ?, ?)
         ON CONFLICT (table_name) DO UPDATE SET keep_per_user = excluded.keep_per_user,
           pruned_through = excluded.pruned_through`,
        [table, keep, through],
      );
    }
    return deleted;
  }

  async listNotifications(userId: string, query: PageQuery): Promise<Page<Notification>> {
    const limit = checkLimit(query.limit, PLATFORM_LIMITS.pageLimit);
    const cursor = checkCursor(query.cursor);
    const rows = await this.all(
      `SELECT ${NOTIFICATION_COLUMNS} FROM {s}notifications WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?`,
      [checkId("userId", userId), cursor ?? Number.MAX_SAFE_INTEGER, limit + 1],
    );
    return page(rows.map(toNotification), limit);
  }

  async markNotificationRead(userId: string, notificationId: number): Promise<boolean> {
    const changed = await this.run(
      "UPDATE {s}notifications SET status = 'read' WHERE id = ? AND user_id = ? AND status = 'unread'",
      [checkInteger("notificationId", notificationId, 1), checkId("userId", userId)],
    );
    return changed > 0;
  }

  async markAllNotificationsRead(userId: string): Promise<number> {
    // Through the index of unread notifications (migration 10): only the rows it changes.
    return this.run("UPDATE {s}notifications SET status = 'read' WHERE user_id = ? AND status = 'unread'", [
      checkId("userId", userId),
    ]);
  }

  async countUnreadNotifications(userId: string): Promise<number> {
    // The status is written out, not a parameter: only then may either planner use the partial index (migration 10).
    return this.count(
      this.db,
      `SELECT count(*) AS n FROM (
         SELECT 1 FROM {s}notifications WHERE user_id = ? AND status = 'unread' LIMIT ?) AS unread`,
      [checkId("userId", userId), PLATFORM_LIMITS.historyRowsKeptPerUser],
    );
  }

  // ---- candles ----

  async upsertCandles(candles: readonly Candle[]): Promise<void> {
    if (!Array.isArray(candles) || candles.length > PLATFORM_LIMITS.candleLimit)
      throw new ValidationError(`candles: must be a list of at most ${PLATFORM_LIMITS.candleLimit}`, "candles");
    const checked = candles.map(checkCandle);
    if (checked.length === 0) return;
    const sql = this.q(`INSERT INTO {s}candles AS stored (${CANDLE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (symbol, timeframe, open_time) DO UPDATE SET
             high = {greatest}(stored.high, excluded.high),
             low = {least}(stored.low, excluded.low),
             close = excluded.close,
             tick_volume = stored.tick_volume + excluded.tick_volume`);
    // Candles are aggregated from the feed's ticks: the last second's bars may be lost to a power failure.
    await this.db.derivedWrite(
      checked.map((c) => ({
        sql,
        params: [c.symbol, c.timeframe, c.openTime, c.open, c.high, c.low, c.close, c.tickVolume],
      })),
    );
  }

  async saveLastQuotes(quotes: readonly LastQuote[]): Promise<void> {
    if (!Array.isArray(quotes) || quotes.length > PLATFORM_LIMITS.lastQuotesBatch)
      throw new ValidationError(`quotes: must be a list of at most ${PLATFORM_LIMITS.lastQuotesBatch}`, "quotes");
    const sql = this.q(`INSERT INTO {s}last_quotes (symbol, bid, ask, bids, asks, quote_time) VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (symbol) DO UPDATE SET bid = excluded.bid, ask = excluded.ask, bids = excluded.bids,
             asks = excluded.asks, quote_time = excluded.quote_time`);
    const statements = quotes.map((quote) => ({
      sql,
      params: [
        checkSymbol("symbol", quote.symbol),
        checkInteger("bid", quote.bid, 1),
        checkInteger("ask", quote.ask, 1),
        levelsToText("bids", quote.bids),
        levelsToText("asks", quote.asks),
        checkTime("time", quote.time),
      ],
    }));
    if (statements.length === 0) return;
    // Derived from the feed, like candles: a power failure may cost the last second's.
    await this.db.derivedWrite(statements);
  }

  async saveInstrumentScales(scales: readonly InstrumentScale[]): Promise<void> {
    if (!Array.isArray(scales) || scales.length > PLATFORM_LIMITS.instruments)
      throw new ValidationError(`scales: must be a list of at most ${PLATFORM_LIMITS.instruments}`, "scales");
    const sql = `INSERT INTO {s}instrument_scales (symbol, digits, volume_digits, contract_size, base_currency, quote_currency)
           VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (symbol) DO UPDATE SET digits = excluded.digits, volume_digits = excluded.volume_digits,
             contract_size = excluded.contract_size, base_currency = excluded.base_currency,
             quote_currency = excluded.quote_currency`;
    const rows = scales.map((scale) => [
      checkSymbol("symbol", scale.symbol),
      checkInteger("digits", scale.digits, 0),
      checkInteger("volumeDigits", scale.volumeDigits, 0),
      checkInteger("contractSize", scale.contractSize, 1),
      checkText("baseCurrency", scale.baseCurrency, 16),
      checkText("quoteCurrency", scale.quoteCurrency, 16),
    ]);
    if (rows.length === 0) return;
    await this.db.transaction(async (tx) => {
      for (const params of rows) await this.run(sql, params, tx);
    });
  }

  async instrumentScales(): Promise<InstrumentScale[]> {
    const rows = await this.all(
      `SELECT symbol, digits, volume_digits, contract_size, base_currency, quote_currency FROM {s}instrument_scales
         ORDER BY symbol LIMIT ${PLATFORM_LIMITS.instruments}`,
    );
    return rows.map((row) => ({
      symbol: str(row.symbol),
      digits: num(row.digits),
      volumeDigits: num(row.volume_digits),
      contractSize: num(row.contract_size),
      baseCurrency: str(row.base_currency),
      quoteCurrency: str(row.quote_currency),
    }));
  }

  async lastQuotes(): Promise<LastQuote[]> {
    const rows = await this.all(
      `SELECT symbol, bid, ask, bids, asks, quote_time FROM {s}last_quotes ORDER BY symbol LIMIT ${PLATFORM_LIMITS.lastQuotesBatch}`,
    );
    return rows.map((row) => {
      const bids = levelsFromText(row.bids);
      const asks = levelsFromText(row.asks);
      return {
        symbol: str(row.symbol),
        bid: num(row.bid),
        ask: num(row.ask),
        ...(bids ? { bids } : {}),
        ...(asks ? { asks } : {}),
        time: num(row.quote_time),
      };
    });
  }

  async candles(query: CandleQuery): Promise<Candle[]> {
    const from = checkTime("from", query.from);
    const to = checkTime("to", query.to);
    if (to < from) throw new ValidationError("to: must not be before from", "to");
    const rows = await this.all(
      `SELECT ${CANDLE_COLUMNS} FROM {s}candles WHERE symbol = ? AND timeframe = ? AND open_time >= ? AND open_time <= ?
       ORDER BY open_time LIMIT ?`,
      [
        checkSymbol("symbol", query.symbol),
        checkOneOf("timeframe", query.timeframe, CANDLE_TIMEFRAMES),
        from,
        to,
        checkLimit(query.limit, PLATFORM_LIMITS.candleLimit),
      ],
    );
    return rows.map(toCandle);
  }
}
