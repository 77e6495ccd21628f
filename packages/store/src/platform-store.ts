/**
 * The platform's other data (issue 3): users, sessions, API keys, watchlists, scripts, settings, price
 * alerts and their logs, notifications and candles, behind one interface with a SQLite and a PostgreSQL
 * driver. Money and prices are integers (points, minor units), times are integer milliseconds.
 *
 * Every read or write of a user's rows takes the user id, and a row of another user is treated as absent
 * (null, false or NotFoundError), never returned. Every list and every stored size has a bound.
 */
import { isPortableText, textLength, type BookLevel } from "@bourse/core";
import type { AppliedMigration } from "./migrations.ts";

/** The base of the typed errors below. `field` names the input at fault, where there is one. */
export class PlatformStoreError extends Error {
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** An input is malformed, out of range, or would take a list or a document past its bound. */
export class ValidationError extends PlatformStoreError {}

/** The row named does not exist, or belongs to another user. */
export class NotFoundError extends PlatformStoreError {}

/** A value that must be unique (an id, an email, an API key prefix, a watchlist symbol) is taken. */
export class DuplicateError extends PlatformStoreError {}

/** A user's list is at its bound (scripts, watchlist symbols, alerts): one more is refused. */
export class LimitReachedError extends PlatformStoreError {}

export const PLATFORM_LIMITS = {
  /** Symbols in one user's watchlist. */
  watchlistSymbols: 200,
  /** Scripts one user may keep. */
  scriptsPerUser: 100,
  /** A script's source, in UTF-8 bytes (256 KiB). */
  scriptSourceBytes: 256 * 1024,
  /** A user's settings document as JSON, in UTF-8 bytes (64 KiB). */
  settingsBytes: 64 * 1024,
  /** Top-level keys of a user's settings document (a merge may not pass it either). */
  settingsKeys: 1000,
  /** Price alerts one user may keep, whatever their status. */
  alertsPerUser: 500,
  /** API keys one user may hold unrevoked. */
  activeApiKeysPerUser: 50,
  /** Revoked API keys kept per user (the newest revoked); older ones are deleted. */
  revokedApiKeysKept: 100,
  /** API keys returned by listApiKeys (the active ones, then the revoked, each newest first). */
  apiKeysListed: 200,
  /** Sessions one user may hold unrevoked and unexpired (opening one more revokes the oldest). */
  activeSessionsPerUser: 100,
  /** Notifications and alert log entries kept per user, the newest (`pruneUserHistories`). */
  historyRowsKeptPerUser: 1000,
  /** Rows per page of alert logs and notifications. */
  pageLimit: 1000,
  /** Candles per range query and per upsert batch. */
  candleLimit: 5000,
  /** Last quotes kept by one saveLastQuotes call (one per symbol). */
  lastQuotesBatch: 1000,
  /** Instruments a platform may define, and so scales kept (`saveInstrumentScales`). */
  instruments: 1000,
  /** Active alerts in one page of listActiveAlertsBySymbol. */
  activeAlertsBySymbol: 10_000,
  /** Names, titles, messages: characters. */
  nameLength: 100,
  messageLength: 1000,
  descriptionLength: 2000,
  notificationBodyLength: 4000,
  /** Notifications inserted by one addNotifications call (one transaction). */
  notificationBatch: 1000,
  /** Opaque hashes (argon2id strings, key hashes). */
  hashLength: 1024,
} as const;

export const API_KEY_SCOPES = ["read", "trade", "full"] as const;
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number];

export const ALERT_SIDES = ["BID", "ASK"] as const;
export type AlertSide = (typeof ALERT_SIDES)[number];

/** The 13 conditions of API.md, indexed by their numeric codes. */
export const ALERT_CONDITIONS = [
  "CROSSING_UP",
  "CROSSING_DOWN",
  "GREATER_THAN",
  "LESS_THAN",
  "ENTERING_CHANNEL",
  "EXITING_CHANNEL",
  "INSIDE_CHANNEL",
  "OUTSIDE_CHANNEL",
  "MOVING_UP",
  "MOVING_DOWN",
  "MOVING_UP_PERCENT",
  "MOVING_DOWN_PERCENT",
  "CROSSING_EITHER",
] as const;
export type AlertCondition = (typeof ALERT_CONDITIONS)[number];

export const ALERT_STATUSES = ["active", "triggered", "disabled", "expired"] as const;
export type AlertStatus = (typeof ALERT_STATUSES)[number];

export const NOTIFICATION_LEVELS = ["info", "warning", "error"] as const;
export type NotificationLevel = (typeof NOTIFICATION_LEVELS)[number];

/**
 * What a notification is about (`Notification.kind`), the one registry of kinds: a terminal picks an icon and routes a
 * click by it, not by the title, which is written for people and may change (found by the audit of a web terminal).
 * What each means: the server's notifications.ts. New kinds are added; none is renamed or reused.
 */
export const NOTIFICATION_KINDS = [
  "ORDER_FILLED",
  "ORDER_PARTIALLY_FILLED",
  "POSITION_CLOSED",
  "STOP_LOSS",
  "TAKE_PROFIT",
  "MARGIN_CALL",
  "MARGIN_CALL_CLEARED",
  "STOP_OUT",
  "PRICE_ALERT",
  "DEALER_CLOSE",
] as const;
export type NotificationKind = (typeof NOTIFICATION_KINDS)[number];

export const NOTIFICATION_STATUSES = ["unread", "read"] as const;
export type NotificationStatus = (typeof NOTIFICATION_STATUSES)[number];

export const CANDLE_TIMEFRAMES = ["M1", "M5", "M15", "M30", "H1", "H4", "D1", "W1", "MN1"] as const;
export type CandleTimeframe = (typeof CANDLE_TIMEFRAMES)[number];

export interface User {
  readonly id: string;
  /** As given at sign-up; lookups ignore case. */
  readonly email: string;
  readonly name: string;
  /** Opaque: the server hashes (argon2id) and verifies. */
  readonly passwordHash: string;
  readonly createdAt: number;
  readonly failedLoginCount: number;
  readonly lockedUntil: number | null;
  /** When the back office disabled the user (no sign-in, no session, no API key); null while enabled. */
  readonly disabledAt: number | null;
}

export interface NewUser {
  readonly id: string;
  readonly email: string;
  readonly name: string;
  readonly passwordHash: string;
  readonly createdAt: number;
}

export interface FailedLoginPolicy {
  readonly now: number;
  /** The failure count (after this one) at which the account locks. */
  readonly maxFailures: number;
  readonly lockMilliseconds: number;
}

export interface Session {
  readonly id: string;
  readonly userId: string;
  readonly accountId: number | null;
  readonly createdAt: number;
  /** When its token expires (a refresh moves it). */
  readonly expiresAt: number;
  readonly revokedAt: number | null;
  /** Until when its refresh token renews it; null: it has none (not asked for, or opened before refresh tokens). */
  readonly refreshExpiresAt: number | null;
}

export interface NewSession {
  readonly id: string;
  readonly userId: string;
  readonly accountId: number | null;
  readonly createdAt: number;
  readonly expiresAt: number;
  /**
   * Its refresh tokens' secret part (the server's key turns it into each token; the store holds no token), and until
   * when they renew the session; absent: none.
   */
  readonly refresh?: { readonly nonce: string; readonly expiresAt: number } | null;
}

/**
 * A refresh token presented for a session (`presentRefreshToken`). Its tokens are numbered from 0 (generation); each
 * refresh answers the next. The store never sees a token: `isGenuine` checks the one presented against the session's
 * nonce, so a forged one changes nothing, and an old one of the session's own is told apart from a forged one.
 */
export interface PresentedRefreshToken {
  readonly sessionId: string;
  readonly generation: number;
  /** Whether the token presented is the one the session issued at `generation`, given the session's nonce. */
  readonly isGenuine: (nonce: string) => boolean;
  /** `refresh`: renew the session; `end`: end it (a sign-out with the refresh token). */
  readonly purpose: "refresh" | "end";
  readonly now: number;
  /**
   * `refresh`: the session's token expiry wanted, moved there if later (never earlier), and never past the refresh
   * tokens' end.
   */
  readonly expiresAt: number;
  /** How long after a refresh the token it replaced is still taken (the answer may have been lost). */
  readonly reuseGraceMs: number;
}

/**
 * What a refresh token presented did:
 * - `renewed`: the session's token expiry moved; `generation` is the token to answer (the next one; the current one
 *   when the token presented was replaced within the grace, the answer that replaced it lost);
 * - `ended`: `end` revoked the session;
 * - `reused`: a token the session replaced, presented past the grace, as a copied token is: the session is revoked now;
 * - `revoked`, `expired`: the session ended before, or its refresh tokens' time is over;
 * - `unknown`: no such session, none with refresh tokens, or a token it never issued (checked before anything else is
 *   told).
 */
export type RefreshTokenOutcome =
  | {
      readonly kind: "renewed";
      readonly session: Session;
      readonly generation: number;
      /** The session's nonce, for the caller to derive the token of `generation` (as User answers its password hash). */
      readonly nonce: string;
    }
  | { readonly kind: "ended" | "reused"; readonly session: Session }
  | { readonly kind: "revoked" | "expired" | "unknown" };

/** What createSession did: the new session, and the user's sessions it revoked to stay within the bound. */
export interface OpenedSession {
  readonly session: Session;
  /**
   * The user's oldest active sessions revoked in the same transaction, because the user was at
   * PLATFORM_LIMITS.activeSessionsPerUser (usually none, at most one unless the bound was lowered): the
   * caller forgets them from its caches and tells whoever holds them (open sockets).
   */
  readonly revokedSessionIds: readonly string[];
}

export interface ApiKey {
  readonly id: string;
  readonly userId: string;
  readonly accountId: number;
  readonly name: string;
  readonly scope: ApiKeyScope;
  /** The public part of the key the lookup uses (unique). */
  readonly prefix: string;
  /** Opaque: the secret is shown once and only its hash is kept. */
  readonly secretHash: string;
  readonly createdAt: number;
  readonly lastUsedAt: number | null;
  readonly revokedAt: number | null;
  /** The key this one replaced by rotation. */
  readonly rotatedFrom: string | null;
}

export interface NewApiKey {
  readonly id: string;
  readonly userId: string;
  readonly accountId: number;
  readonly name: string;
  readonly scope: ApiKeyScope;
  readonly prefix: string;
  readonly secretHash: string;
  readonly createdAt: number;
}

/** The new key of a rotation: it inherits user, account, name and scope from the old one. */
export interface RotatedApiKey {
  readonly id: string;
  readonly prefix: string;
  readonly secretHash: string;
  readonly createdAt: number;
}

export interface Script {
  readonly id: string;
  readonly userId: string;
  readonly name: string;
  readonly language: string;
  readonly source: string;
  readonly description: string;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export type ScriptSummary = Omit<Script, "source">;

export interface NewScript {
  readonly id: string;
  readonly userId: string;
  readonly name: string;
  readonly language: string;
  readonly source: string;
  readonly description?: string;
  readonly createdAt: number;
}

export interface ScriptPatch {
  readonly name?: string;
  readonly language?: string;
  readonly source?: string;
  readonly description?: string;
}

export type SettingsDocument = Record<string, unknown>;

export interface PriceAlert {
  readonly id: string;
  readonly userId: string;
  readonly accountId: number | null;
  readonly symbol: string;
  readonly side: AlertSide;
  readonly condition: AlertCondition;
  readonly targetPrice: number | null;
  readonly channelLow: number | null;
  readonly channelHigh: number | null;
  readonly moveThreshold: number | null;
  readonly referencePrice: number | null;
  readonly repeating: boolean;
  readonly expiration: number | null;
  readonly message: string;
  readonly status: AlertStatus;
  /**
   * Which of the alert's legs (its one or two price zones; server alert-engine.ts) are armed, a bit per leg,
   * bit 0 the first: what the alert engine knew when it last wrote it (`saveAlertArming`), so a restart does
   * not fire a repeating alert again at a price it already fired at. Null when not known yet, and again
   * after any change of what the legs are made of (side, condition, prices, status), which `updateAlert` makes.
   */
  readonly armedLegs: number | null;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface NewPriceAlert {
  readonly id: string;
  readonly userId: string;
  readonly accountId?: number | null;
  readonly symbol: string;
  readonly side: AlertSide;
  readonly condition: AlertCondition;
  readonly targetPrice?: number | null;
  readonly channelLow?: number | null;
  readonly channelHigh?: number | null;
  readonly moveThreshold?: number | null;
  readonly referencePrice?: number | null;
  readonly repeating?: boolean;
  readonly expiration?: number | null;
  readonly message?: string;
  readonly status?: AlertStatus;
  readonly createdAt: number;
}

export type PriceAlertPatch = Partial<
  Pick<
    PriceAlert,
    | "accountId"
    | "side"
    | "condition"
    | "targetPrice"
    | "channelLow"
    | "channelHigh"
    | "moveThreshold"
    | "referencePrice"
    | "repeating"
    | "expiration"
    | "message"
    | "status"
  >
>;

export interface AlertLog {
  /** Assigned by the store, increasing. */
  readonly id: number;
  readonly alertId: string;
  readonly userId: string;
  readonly symbol: string;
  readonly side: AlertSide;
  readonly condition: AlertCondition;
  readonly target: number | null;
  readonly triggeredPrice: number;
  readonly triggeredAt: number;
  /**
   * The alert's message when it triggered: the history shows what the live event showed, after the alert changed or
   * was deleted. Empty for entries from before migration 9 (found by the audit of a terminal's journey of 7 December,
   * sixth session).
   */
  readonly message: string;
}

export type NewAlertLog = Omit<AlertLog, "id">;

export interface AlertTrigger {
  /**
   * The trigger's own key (the alert engine's: the alert and a random id): a try whose outcome was lost and that is made
   * again records the trigger once (the second answers the first's log, no change and no notification).
   */
  readonly key: string;
  readonly log: NewAlertLog;
  readonly patch: PriceAlertPatch | null;
  /** When the patch is made (the alert's `updatedAt`). */
  readonly now: number;
  readonly notification: NewNotification;
}

export interface RecordedAlertTrigger {
  readonly log: AlertLog;
  /** The alert after the patch; null when there was none or the alert is gone. */
  readonly alert: PriceAlert | null;
  /** Null when the trigger was recorded already (its notification came with it then). */
  readonly notification: Notification | null;
}

export interface Notification {
  /** Assigned by the store, increasing. */
  readonly id: number;
  readonly userId: string;
  readonly accountId: number | null;
  /**
   * What it is about. Rows from before migration 10 have the kind their title says (the titles have kept their forms);
   * null only for one whose title matches none.
   */
  readonly kind: NotificationKind | null;
  /** The order, position, deal and price alert it is about, where it is about one (null for rows from before). */
  readonly orderId: number | null;
  readonly positionId: number | null;
  readonly dealId: number | null;
  readonly alertId: string | null;
  readonly level: NotificationLevel;
  readonly status: NotificationStatus;
  readonly title: string;
  readonly body: string;
  readonly createdAt: number;
}

export interface NewNotification {
  readonly userId: string;
  readonly accountId?: number | null;
  readonly kind: NotificationKind;
  readonly orderId?: number | null;
  readonly positionId?: number | null;
  readonly dealId?: number | null;
  readonly alertId?: string | null;
  readonly level: NotificationLevel;
  readonly title: string;
  readonly body?: string;
  readonly createdAt: number;
  /**
   * The journal event it is derived from, if any: a notification of an event is stored once, whatever derives it
   * again (a start after a crash, a write tried again); `addNotifications` answers only the ones it added.
   */
  readonly journalSequence?: number | null;
}

/** Newest first: rows with an id below `cursor` (all rows when it is absent), at most `limit` (≤ 1,000). */
export interface PageQuery {
  readonly cursor?: number | null;
  readonly limit: number;
}

export interface Page<T> {
  readonly rows: T[];
  /** Pass as `cursor` for the next page; null when this page is the last. */
  readonly nextCursor: number | null;
}

/** A symbol's last quote as the engine took it: prices in points, book volumes in volume units. */
export interface LastQuote {
  readonly symbol: string;
  readonly bid: number;
  readonly ask: number;
  /** The book's levels, best first, as the feed gave them; absent when it gave none. */
  readonly bids?: readonly BookLevel[];
  readonly asks?: readonly BookLevel[];
  readonly time: number;
}

/**
 * What an instrument's integers mean (`saveInstrumentScales`): prices in points of `digits`, volumes in units of
 * `volumeDigits`, `contractSize` units of `baseCurrency` a lot, priced in `quoteCurrency`. The journal, the
 * histories and the kept quotes hold integers of this scale, so it may not change once a database has used it.
 */
export interface InstrumentScale {
  readonly symbol: string;
  readonly digits: number;
  readonly volumeDigits: number;
  readonly contractSize: number;
  readonly baseCurrency: string;
  readonly quoteCurrency: string;
}

export interface Candle {
  readonly symbol: string;
  readonly timeframe: CandleTimeframe;
  readonly openTime: number;
  readonly open: number;
  readonly high: number;
  readonly low: number;
  readonly close: number;
  readonly tickVolume: number;
}

export interface CandleQuery {
  readonly symbol: string;
  readonly timeframe: CandleTimeframe;
  /** Inclusive bounds on open_time. */
  readonly from: number;
  readonly to: number;
  /** At most 5,000. */
  readonly limit: number;
}

/** What a platform store did when it opened. */
export interface PlatformStoreOpenReport {
  /** The schema's migrations this open applied, in order; empty when it was this build's already. */
  readonly appliedMigrations: readonly AppliedMigration[];
}

export interface PlatformStore {
  /** Connects and runs the store's migrations. */
  open(): Promise<PlatformStoreOpenReport>;
  close(): Promise<void>;

  createUser(user: NewUser): Promise<User>;
  findUserById(id: string): Promise<User | null>;
  /** Case-insensitive. */
  findUserByEmail(email: string): Promise<User | null>;
  /**
   * Users in id order, those after `afterId` (from the first when null), `limit` (PLATFORM_LIMITS.pageLimit at most)
   * of them: one page of the back office's list. Page on with the last id until a page is short.
   */
  listUsers(afterId: string | null, limit: number): Promise<User[]>;
  updatePasswordHash(userId: string, passwordHash: string): Promise<void>;
  /** Counts a failure; locks the user until now + lockMilliseconds when the count reaches maxFailures. */
  recordFailedLogin(userId: string, policy: FailedLoginPolicy): Promise<User>;
  /** Resets the failure count and the lock. */
  recordSuccessfulLogin(userId: string): Promise<User>;
  /** Disables the user as of `disabledAt`, or enables them (null); answers the user as it stands. */
  setUserDisabled(userId: string, disabledAt: number | null): Promise<User>;

  /**
   * Opens a session. A user at PLATFORM_LIMITS.activeSessionsPerUser active (unrevoked, unexpired) sessions
   * keeps signing in: the oldest active ones (by createdAt, then id) are revoked at `createdAt` in the same
   * transaction, and named in `revokedSessionIds`.
   */
  createSession(session: NewSession): Promise<OpenedSession>;
  /** The session as stored, revoked or expired ones included: the caller checks `revokedAt` and `expiresAt`. */
  findSession(id: string): Promise<Session | null>;
  setSessionAccount(userId: string, sessionId: string, accountId: number | null): Promise<Session>;
  /**
   * Moves an unrevoked session's expiry to `expiresAt` if that is later (never earlier); answers the session as it
   * stands, or null when it is absent, another user's, revoked, or expired at `now`.
   */
  extendSession(userId: string, sessionId: string, expiresAt: number, now: number): Promise<Session | null>;
  /**
   * Presents a refresh token for a session, atomically with every other presentation and revocation of it: see
   * PresentedRefreshToken and RefreshTokenOutcome.
   */
  presentRefreshToken(presented: PresentedRefreshToken): Promise<RefreshTokenOutcome>;
  /**
   * Ends an unrevoked session's refresh tokens (every token it issued stops working; its own token goes on): a password
   * change ends the copies a thief may hold of the caller's. False when the session is absent, another user's or revoked.
   */
  endRefreshTokens(userId: string, sessionId: string): Promise<boolean>;
  /** False when the session is absent, another user's, or already revoked. */
  revokeSession(userId: string, sessionId: string, now: number): Promise<boolean>;
  /** Revokes every unrevoked session of the user but `exceptSessionId` (a password change); returns their ids. */
  revokeOtherSessions(userId: string, exceptSessionId: string | null, now: number): Promise<string[]>;
  /**
   * Deletes sessions that expired (their token, and their refresh token if any), or were revoked, before `now`; returns
   * how many.
   */
  purgeExpiredSessions(now: number): Promise<number>;

  createApiKey(key: NewApiKey): Promise<ApiKey>;
  /** The unrevoked key with this prefix. */
  findActiveApiKeyByPrefix(prefix: string): Promise<ApiKey | null>;
  listApiKeys(userId: string): Promise<ApiKey[]>;
  revokeApiKey(userId: string, keyId: string, now: number): Promise<boolean>;
  /** Revokes the old key and inserts the new one in one transaction: both happen or neither. */
  rotateApiKey(userId: string, keyId: string, next: RotatedApiKey): Promise<ApiKey>;
  touchApiKey(keyId: string, now: number): Promise<void>;

  getWatchlist(userId: string): Promise<string[]>;
  /** Appends; DuplicateError when the symbol is already there; ValidationError when the list is full. */
  addToWatchlist(userId: string, symbol: string): Promise<string[]>;
  /** Replaces the order; the symbols must be a permutation of the current list. */
  reorderWatchlist(userId: string, symbols: readonly string[]): Promise<string[]>;
  removeFromWatchlist(userId: string, symbol: string): Promise<boolean>;

  createScript(script: NewScript): Promise<Script>;
  getScript(userId: string, scriptId: string): Promise<Script | null>;
  listScripts(userId: string): Promise<ScriptSummary[]>;
  updateScript(userId: string, scriptId: string, patch: ScriptPatch, now: number): Promise<Script | null>;
  deleteScript(userId: string, scriptId: string): Promise<boolean>;

  /** `{}` for a user who never saved any. */
  getSettings(userId: string): Promise<SettingsDocument>;
  replaceSettings(userId: string, document: SettingsDocument, now: number): Promise<SettingsDocument>;
  /** Shallow merge: the patch's top-level keys replace the stored ones. */
  mergeSettings(userId: string, patch: SettingsDocument, now: number): Promise<SettingsDocument>;

  createAlert(alert: NewPriceAlert): Promise<PriceAlert>;
  getAlert(userId: string, alertId: string): Promise<PriceAlert | null>;
  listAlerts(userId: string): Promise<PriceAlert[]>;
  /**
   * Applies the patch; forgets the alert's arming (`armedLegs` null) when the patch changes its side, condition,
   * any of its prices or its status, since arming belongs to the legs those make.
   */
  updateAlert(userId: string, alertId: string, patch: PriceAlertPatch, now: number): Promise<PriceAlert | null>;
  /**
   * The alert engine's record of which legs are armed (`PriceAlert.armedLegs`, 0-3, or null); not a change the
   * user made, so `updatedAt` stays. False when the alert is gone.
   */
  saveAlertArming(userId: string, alertId: string, armedLegs: number | null): Promise<boolean>;
  deleteAlert(userId: string, alertId: string): Promise<boolean>;
  /**
   * A page of a symbol's active alerts, of every user, by id: at most `limit` (≤ PLATFORM_LIMITS.activeAlertsBySymbol,
   * the default) with an id after `afterId` (from the first when null). Page on with the last id until a page is empty.
   */
  listActiveAlertsBySymbol(symbol: string, afterId?: string | null, limit?: number): Promise<PriceAlert[]>;

  addAlertLog(log: NewAlertLog): Promise<AlertLog>;
  /**
   * A price alert's trigger in one transaction: its log entry, the change it makes to the alert (status
   * `triggered` for a one-time alert, the new reference of a moving one; none when `patch` is null or the alert
   * is gone) and the user's notification. A crash or a failed write leaves all three or none, so a trigger is
   * never logged without its notification, nor fired again after a restart because only its log was kept.
   */
  recordAlertTrigger(trigger: AlertTrigger): Promise<RecordedAlertTrigger>;
  listAlertLogs(userId: string, query: PageQuery): Promise<Page<AlertLog>>;
  deleteAlertLog(userId: string, logId: number): Promise<boolean>;
  deleteAllAlertLogs(userId: string): Promise<number>;

  /**
   * Inserts up to PLATFORM_LIMITS.notificationBatch notifications in one transaction, in order. With
   * `journalSequence`, the same transaction records that the notifications of every journal event up to that
   * sequence are now stored (`notificationJournalSequence`): a restart derives again exactly those a crash
   * lost, never one twice. An empty batch with a sequence records the sequence alone.
   */
  addNotifications(notifications: readonly NewNotification[], journalSequence?: number): Promise<Notification[]>;
  /** The journal sequence recorded by the last `addNotifications` that gave one, or null when none did. */
  notificationJournalSequence(): Promise<number | null>;
  /**
   * Deletes the notifications derived from journal events after `journalSequence` and moves the mark back to it, in one
   * transaction; answers how many went. For a platform store newer than its journal (a backup pair restored with the
   * platform store taken last, or a journal restored alone): those notifications told of trades the books do not hold.
   */
  forgetNotificationsAfter(journalSequence: number): Promise<number>;
  listNotifications(userId: string, query: PageQuery): Promise<Page<Notification>>;
  /**
   * Deletes each user's notifications and alert log entries past their newest `keepPerUser` (at least 1); answers
   * how many rows went. Run now and then: without it both grew with every fill and every trigger, for good.
   */
  pruneUserHistories(keepPerUser: number): Promise<number>;
  markNotificationRead(userId: string, notificationId: number): Promise<boolean>;
  /** Marks every unread notification of the user read; answers how many changed. */
  markAllNotificationsRead(userId: string): Promise<number>;
  /**
   * How many of the user's notifications are unread, counted up to PLATFORM_LIMITS.historyRowsKeptPerUser (what a user
   * keeps, `pruneUserHistories`): more than that is a passing state until the next prune, and the read stays bounded.
   */
  countUnreadNotifications(userId: string): Promise<number>;

  /**
   * Inserts each bar, or merges it into the stored bar of the same symbol, timeframe and open time as the
   * later part of that bar: open stays, high is the max, low the min, close is the new one, volumes add.
   */
  upsertCandles(candles: readonly Candle[]): Promise<void>;
  /** Oldest first, open_time within [from, to], at most `limit` (≤ 5,000). */
  candles(query: CandleQuery): Promise<Candle[]>;

  /**
   * Keeps each symbol's last quote (replacing the one kept), at most PLATFORM_LIMITS.lastQuotesBatch a call, as
   * derived data (written like candles). A restart shows the market as it was and the simulator goes on from it.
   */
  saveLastQuotes(quotes: readonly LastQuote[]): Promise<void>;
  /** Every symbol's kept quote, by symbol. */
  lastQuotes(): Promise<LastQuote[]>;

  /** Keeps each instrument's scale (replacing the one kept for its symbol), at most PLATFORM_LIMITS.instruments. */
  saveInstrumentScales(scales: readonly InstrumentScale[]): Promise<void>;
  /** Every instrument scale kept, by symbol. */
  instrumentScales(): Promise<InstrumentScale[]>;
}

// ---- validation, shared by the drivers ----

const ID = /^[A-Za-z0-9_.:-]{1,128}$/;
const SYMBOL = /^[A-Za-z0-9._#+-]{1,32}$/;
const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,255}$/;
const LANGUAGE = /^[A-Za-z0-9_.+-]{1,32}$/;
const PREFIX = /^[A-Za-z0-9_-]{4,64}$/;

function fail(field: string, message: string): never {
  throw new ValidationError(`${field}: ${message}`, field);
}

export function checkId(field: string, value: unknown): string {
  if (typeof value !== "string" || !ID.test(value)) fail(field, "must be 1-128 characters of A-Z a-z 0-9 _ . : -");
  return value;
}

export function checkSymbol(field: string, value: unknown): string {
  if (typeof value !== "string" || !SYMBOL.test(value)) fail(field, "must be a symbol of 1-32 characters");
  return value;
}

export function checkEmail(value: unknown): string {
  if (typeof value !== "string" || value.length > 320 || !EMAIL.test(value)) fail("email", "must be an email address");
  return value;
}

export function checkText(field: string, value: unknown, maxLength: number, allowEmpty = false): string {
  if (typeof value !== "string") fail(field, "must be a string");
  if (!allowEmpty && value.trim().length === 0) fail(field, "must not be empty");
  if (textLength(value) > maxLength) fail(field, `must be at most ${maxLength} characters`);
  // PostgreSQL refused it (a 500) where SQLite kept it, or changed it (a lone surrogate): one rule for both.
  if (!isPortableText(value, maxLength)) fail(field, "must not hold a NUL character or an unpaired surrogate");
  return value;
}

export function checkLanguage(value: unknown): string {
  if (typeof value !== "string" || !LANGUAGE.test(value)) fail("language", "must be 1-32 characters");
  return value;
}

export function checkPrefix(value: unknown): string {
  if (typeof value !== "string" || !PREFIX.test(value)) fail("prefix", "must be 4-64 characters of A-Z a-z 0-9 _ -");
  return value;
}

export function checkInteger(field: string, value: unknown, min = Number.MIN_SAFE_INTEGER): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min)
    fail(
      field,
      min === 0 ? "must be a non-negative integer" : min === 1 ? "must be a positive integer" : "must be an integer",
    );
  return value;
}

export function checkOptionalInteger(field: string, value: unknown, min?: number): number | null {
  return value === null || value === undefined ? null : checkInteger(field, value, min);
}

export function checkTime(field: string, value: unknown): number {
  return checkInteger(field, value, 0);
}

export function checkOneOf<T extends string>(field: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value))
    fail(field, `must be one of ${allowed.join(", ")}`);
  return value as T;
}

export function checkLimit(value: unknown, max: number): number {
  const limit = checkInteger("limit", value, 1);
  if (limit > max) fail("limit", `must be at most ${max}`);
  return limit;
}

export function utf8Length(text: string): number {
  return Buffer.byteLength(text, "utf8");
}

/** A plain JSON object within the settings bound; returns its JSON text. */
export function settingsJson(field: string, document: unknown, maxKeys: number = PLATFORM_LIMITS.settingsKeys): string {
  if (typeof document !== "object" || document === null || Array.isArray(document))
    fail(field, "must be a JSON object");
  let json: string;
  let nonFinite = false;
  try {
    json = JSON.stringify(document, (_key, value: unknown) => {
      if (typeof value === "number" && !Number.isFinite(value)) nonFinite = true;
      return value;
    });
  } catch {
    fail(field, "must be serialisable as JSON");
  }
  // JSON writes Infinity as null: a number like 1e400 was kept as null without a word (the audit of 7 December).
  if (nonFinite) fail(field, "must hold finite numbers only (a number like 1e400 has no JSON form)");
  if (utf8Length(json) > PLATFORM_LIMITS.settingsBytes)
    fail(field, `must be at most ${PLATFORM_LIMITS.settingsBytes} bytes as JSON`);
  // Checked on the document a merge makes too: five merges of 1,000 new keys each kept 5,000.
  if (Object.keys(document).length > maxKeys) fail(field, `must have at most ${maxKeys} top-level keys`);
  return json;
}

/** The parameters each condition needs (API.md): a target, a channel with low < high, or a positive move. */
export function checkAlertParameters(alert: {
  condition: AlertCondition;
  targetPrice: number | null;
  channelLow: number | null;
  channelHigh: number | null;
  moveThreshold: number | null;
}): void {
  const code = ALERT_CONDITIONS.indexOf(alert.condition);
  if (code <= 3 || code === 12) {
    if (alert.targetPrice === null) fail("targetPrice", `${alert.condition} needs a target price`);
  } else if (code <= 7) {
    if (alert.channelLow === null || alert.channelHigh === null)
      fail("channelLow", `${alert.condition} needs channelLow and channelHigh`);
    if (alert.channelLow >= alert.channelHigh) fail("channelLow", "channelLow must be below channelHigh");
  } else if (alert.moveThreshold === null || alert.moveThreshold <= 0) {
    fail("moveThreshold", `${alert.condition} needs a positive moveThreshold`);
  }
}
