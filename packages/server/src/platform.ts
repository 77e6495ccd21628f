/**
 * The application layer every face calls (DESIGN.md section 1: faces are thin adapters; a rule lives
 * once, here or in the core). It owns the durable engine, the journal's read models, the platform store
 * and the bus, and gives the faces:
 * - `execute`: a command stamped with the server's clock, run durably, its rejection turned into an
 *   `ApiError` with the registry's code; its events published in journal order;
 * - `pushQuote`: the one way quotes enter (simulator, CSV replay, admin push);
 * - ownership: the accounts a user owns, and a 403 for any other.
 *
 * The HTTP listener starts before recovery (`/readyz` answers 503 meanwhile); every engine call made
 * before `start` finishes answers ENGINE_UNAVAILABLE.
 */
import {
  defaultEngineConfig,
  type Account,
  type Command,
  type CommandSuccess,
  type EngineConfig,
  type InstrumentSpec,
  type TickCommand,
  type TradingEngine,
} from "@bourse/core";
import {
  DurableEngine,
  EngineOverloadedError,
  EngineUnavailableError,
  PostgresJournal,
  PostgresPlatformStore,
  StorageUnavailableError,
  SqliteJournal,
  createPlatformStore,
  isPostgresUrl,
  type AppliedMigration,
  type CheckpointReport,
  type EventJournal,
  type JournalRecord,
  type PlatformStore,
  type PoolStatistics,
  type ReadModels,
} from "@bourse/store";
import { Bus } from "./bus.ts";
import { systemClock, type Clock } from "./clock.ts";
import { makeSqliteFiles, type ServerConfig } from "./config.ts";
import { ApiError, storageApiError } from "./errors.ts";
import { checkAccountGroups } from "./groups-file.ts";
import { describeMigrations, waitForDatabases } from "./settings.ts";
import { checkInstrumentScales, convertibleAccountCurrencies, keepInstrumentScales } from "./instruments-file.ts";

/** Every command but its time: the platform stamps it with its clock. */
export type UntimedCommand = Command extends infer Each ? (Each extends Command ? Omit<Each, "time"> : never) : never;

/** A quote as the engine's tick takes it (prices in points, book volumes in volume units), without its time. */
export type QuoteInput = Omit<TickCommand, "kind" | "time">;

/** A quote the engine took, as the rest of the platform sees it. */
export interface AcceptedQuote extends QuoteInput {
  readonly time: number;
}

export type QuoteListener = (quote: AcceptedQuote) => void;
export type EventListener = (records: readonly JournalRecord[]) => void;

export interface PlatformLog {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export interface PlatformOptions {
  readonly config: ServerConfig;
  readonly engineConfig?: EngineConfig;
  readonly clock?: Clock;
  readonly log?: PlatformLog;
  /** Tests: journal snapshots more or less often. */
  readonly snapshotEveryEvents?: number;
}

export type PlatformState = "starting" | "recovering" | "ready" | "failed" | "closed";

/** Both journal drivers serve the read models from the tables they write in the same transaction. */
function openJournal(url: string, poolSize: number, log: PlatformLog): EventJournal & ReadModels {
  return isPostgresUrl(url)
    ? new PostgresJournal({
        connectionString: url,
        poolSize,
        onWriterLockChange: (problem, detail) =>
          problem === null
            ? log.info("journal: this server is the journal's writer again: ready")
            : log.error(
                `journal: this server is not the journal's writer, so not ready: ${problem}${detail ? ` (${detail})` : ""}`,
              ),
      })
    : new SqliteJournal({ path: url, writer: "worker", checkpoints: "thread" });
}

/**
 * The store as the faces use it: a call that PostgreSQL did not answer in time, or could not be reached for
 * (StorageUnavailableError), answers 503 with a clear message instead of 500: OUTCOME_UNKNOWN when a write may have
 * been saved, ENGINE_UNAVAILABLE when nothing was. Every other error passes as it is.
 */
function answeringStorageFailures(store: PlatformStore): PlatformStore {
  const refusal = (error: unknown): never => {
    throw error instanceof StorageUnavailableError ? storageApiError(error) : error;
  };
  // Keyed by the method itself, not its name: a method replaced on the store (a test's spy) is wrapped anew.
  const wrapped = new WeakMap<(...parameters: unknown[]) => unknown, (...parameters: unknown[]) => unknown>();
  return new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      const original = value as (...parameters: unknown[]) => unknown;
      let method = wrapped.get(original);
      if (method === undefined) {
        method = (...args: unknown[]): unknown => {
          const result = original.apply(target, args);
          return result instanceof Promise ? result.catch(refusal) : result;
        };
        wrapped.set(original, method);
      }
      return method;
    },
  });
}

const consoleLog: PlatformLog = {
  info: (message) => console.log(message),
  warn: (message) => console.warn(message),
  error: (message) => console.error(message),
};

export class Platform {
  readonly bus: Bus;
  readonly clock: Clock;
  readonly log: PlatformLog;
  readonly engineConfig: EngineConfig;
  readonly instruments: ReadonlyMap<string, InstrumentSpec>;
  /** The currencies an account may be opened in: those every instrument's money converts into. */
  readonly accountCurrencies: readonly string[];
  private readonly platformStore: PlatformStore;
  /** `platformStore` as the faces get it (answeringStorageFailures). */
  private readonly answeringStore: PlatformStore;
  private storeOpen = false;
  private readonly journal: EventJournal & ReadModels;
  private durable: DurableEngine | null = null;
  private currentState: PlatformState = "starting";
  private stoppingNow = false;
  private drainingNow = false;
  /** Aborted by `abandonStart`. */
  private readonly startAbandoned = new AbortController();
  private readonly quoteListeners: QuoteListener[] = [];
  /** The time of the last quote pushed: quote times never go back (pushQuote). */
  private lastQuoteTime = 0;
  private readonly eventListeners: EventListener[] = [];
  private readonly closeHooks: (() => Promise<void> | void)[] = [];
  /** User id → the logins of their accounts, in opening order (built at recovery, kept by AccountOpened). */
  private readonly accountsByUser = new Map<string, number[]>();

  constructor(
    readonly config: ServerConfig,
    private readonly options: PlatformOptions,
  ) {
    this.clock = options.clock ?? systemClock;
    this.log = options.log ?? consoleLog;
    const { maxQuoteAgeSeconds } = options.config;
    // The quote age limit is the server's setting (BOURSE_MAX_QUOTE_AGE_SECONDS), whatever engine configuration a
    // caller passes.
    this.engineConfig = {
      ...(options.engineConfig ??
        defaultEngineConfig({ instruments: options.config.instruments, ...options.config.trading })),
      maxQuoteAgeMs: maxQuoteAgeSeconds === 0 ? null : maxQuoteAgeSeconds * 1000,
    };
    this.instruments = new Map(this.engineConfig.instruments.map((instrument) => [instrument.symbol, instrument]));
    this.accountCurrencies = convertibleAccountCurrencies(this.engineConfig.instruments);
    this.bus = new Bus((error, topic) => this.log.error(`bus: a subscriber of ${topic} failed: ${String(error)}`));
    const storage = config.storage;
    makeSqliteFiles(storage, [storage.databaseUrl, storage.platformDatabaseUrl]);
    this.journal = openJournal(storage.databaseUrl, storage.databasePoolSize, this.log);
    // Notifications and candles are written by a thread of their own: their bursts never stop this one.
    this.platformStore = createPlatformStore(storage.platformDatabaseUrl, {
      sqliteDerivedWrites: "worker",
      postgresPoolSize: storage.databasePoolSize,
    });
    this.answeringStore = answeringStorageFailures(this.platformStore);
  }

  /**
   * PostgreSQL's pools, by name (`journal`, `platform`): their connections and the calls waiting for one, for
   * `/metrics`. Null on SQLite.
   */
  databasePools(): Record<string, PoolStatistics> | null {
    const pools: Record<string, PoolStatistics> = {};
    if (this.journal instanceof PostgresJournal) {
      const journal = this.journal.poolStatistics();
      if (journal) pools.journal = journal;
    }
    if (this.platformStore instanceof PostgresPlatformStore) {
      const platform = this.platformStore.poolStatistics();
      if (platform) pools.platform = platform;
    }
    return this.journal instanceof PostgresJournal || this.platformStore instanceof PostgresPlatformStore
      ? pools
      : null;
  }

  /** Users, sessions, keys and the rest. Throws ENGINE_UNAVAILABLE (503) until `start` has opened it. */
  get store(): PlatformStore {
    if (!this.storeOpen) throw new ApiError("ENGINE_UNAVAILABLE", "The server is starting: try again shortly");
    return this.answeringStore;
  }

  /** The journal's read models (histories, ledger). Throws ENGINE_UNAVAILABLE (503) before recovery has finished. */
  get readModels(): ReadModels {
    this.recovered();
    return this.journal;
  }

  /**
   * Durable journal records after `afterSequence`, at most `limit`, for data derived from them again after a
   * stop (notifications). Throws ENGINE_UNAVAILABLE before recovery has finished.
   */
  journalRecords(afterSequence: number, limit: number): Promise<JournalRecord[]> {
    this.recovered();
    return this.journal.read(afterSequence, limit);
  }

  get state(): PlatformState {
    return this.currentState;
  }

  /** What the SQLite journal's checkpoints have done since start (metrics); null on PostgreSQL. */
  journalCheckpoints(): CheckpointReport | null {
    return this.journal instanceof SqliteJournal ? this.journal.checkpointReport() : null;
  }

  /**
   * The server is draining before it stops (`beginDraining`, BOURSE_SHUTDOWN_DRAIN_SECONDS): `/readyz` answers 503 so
   * a load balancer stops sending clients, while every request is still served.
   */
  get draining(): boolean {
    return this.drainingNow;
  }

  beginDraining(): void {
    this.drainingNow = true;
  }

  /**
   * The server is stopping (`beginStopping`, by its close): new requests are refused 503 in their face's envelope
   * while those under way are answered.
   */
  get stopping(): boolean {
    return this.stoppingNow;
  }

  /** A stop signal while the start waits for PostgreSQL: the wait ends at once, and the start fails. */
  abandonStart(): void {
    this.startAbandoned.abort();
  }

  beginStopping(): void {
    this.stoppingNow = true;
  }

  /**
   * Whether the engine takes commands: recovered, and its journal's one writer (a PostgreSQL journal whose writer lock
   * was lost is not, until it takes the lock again: the audit of an operator's journey of 7 December, sixth session,
   * found two servers answering ready on one database).
   */
  get ready(): boolean {
    return (
      this.currentState === "ready" &&
      this.durable !== null &&
      this.durable.ready &&
      this.durable.writerLockProblem() === null
    );
  }

  /** Opens the stores and recovers the engine from the journal. */
  async start(): Promise<void> {
    this.currentState = "recovering";
    try {
      // PostgreSQL started beside the server may come up after it: waited for, with a line for each failed attempt.
      await waitForDatabases(this.config.storage, (line) => this.log.warn(line), this.startAbandoned.signal);
      const platformOpened = await this.platformStore.open();
      this.storeOpen = true;
      this.logMigrations("platform schema", platformOpened.appliedMigrations);
      // Before recovery: the journal's integers are of the scales this database ran with.
      await checkInstrumentScales(this.platformStore, this.engineConfig.instruments);
      this.durable = await DurableEngine.open({
        journal: this.journal,
        config: this.engineConfig,
        log: (line, level) => this.log[level](line),
        snapshotOnClose: true,
        snapshotEveryEvents: this.options.snapshotEveryEvents,
      });
      this.logMigrations("journal schema", this.durable.recoveryReport.journal.appliedMigrations);
      await keepInstrumentScales(this.platformStore, this.engineConfig.instruments);
      // Before the engine serves: it judges every account at its group's levels, and a group gone would stop it.
      checkAccountGroups(this.durable.engine.state.accounts.values(), this.engineConfig.groups);
    } catch (error) {
      this.currentState = "failed";
      // A check after recovery refused the start: the journal (and its writer lock) is let go, so the same process,
      // or another, can start again once the configuration is put right.
      await this.durable?.close().catch(() => undefined);
      throw error;
    }
    for (const account of this.durable.engine.state.accounts.values()) this.indexAccount(account.userId, account.id);
    // A batch whose commands were answered OUTCOME_UNKNOWN and which did commit: published like any other.
    this.durable.onUnansweredDurable((records) => this.publishRecords(records));
    this.currentState = "ready";
  }

  /** A start that migrated a schema says so (an upgrade's first start), as `bourse migrate` does. */
  private logMigrations(schema: string, applied: readonly AppliedMigration[]): void {
    if (applied.length > 0) this.log.info(`Bourse: ${describeMigrations(schema, applied)}`);
  }

  async close(): Promise<void> {
    if (this.currentState === "closed") return;
    this.currentState = "closed";
    for (const hook of this.closeHooks.splice(0).reverse()) await hook();
    if (this.durable) await this.durable.close();
    else await this.journal.close().catch(() => undefined);
    if (this.storeOpen) await this.platformStore.close();
    this.storeOpen = false;
  }

  /** Runs `hook` when the platform closes (feeds, timers, flushes), in reverse order of registration. */
  onClose(hook: () => Promise<void> | void): void {
    this.closeHooks.push(hook);
  }

  /**
   * The engine's state as of the last durable event, for reads (a batch being written is not in it, so
   * no answer shows what the journal may still refuse). Throws ENGINE_UNAVAILABLE before recovery has finished.
   */
  get engine(): TradingEngine {
    return this.recovered().engine;
  }

  /** The durable engine once recovery has finished; ENGINE_UNAVAILABLE (503) before, and once closed. */
  private recovered(): DurableEngine {
    if (!this.durable || this.currentState !== "ready")
      throw new ApiError("ENGINE_UNAVAILABLE", "The trading engine is starting: try again shortly");
    return this.durable;
  }

  /**
   * The journal sequence of the last durable event, which `engine`'s state reflects: read in the same turn as that
   * state, it is the `seq` through which an answer made of it is current (SNAPSHOT_SEQ_HEADER).
   */
  get durableSequence(): number {
    return this.recovered().lastSequence;
  }

  /** The durable engine (health and metrics), or null before recovery. */
  get durableEngine(): DurableEngine | null {
    return this.durable;
  }

  instrument(symbol: string): InstrumentSpec {
    const instrument = this.instruments.get(symbol);
    if (!instrument) throw new ApiError("UNKNOWN_SYMBOL", `No such instrument: ${symbol}`);
    return instrument;
  }

  // ---- commands ----

  /**
   * The time the engine judges the market at: the clock's, or the engine's when later (it never goes back, and runs a
   * command older than its clock at its clock's time). The market views show a session open or closed at it: at the
   * clock's alone, a clock set back showed a market open that refused orders MARKET_CLOSED (found by the audit of
   * time of 7 December).
   */
  marketTime(): number {
    // The durable engine's own, not `engine` (503 while recovering): the market list answers before the engine is ready.
    return Math.max(this.clock.now(), this.durable?.engine.time ?? Number.NEGATIVE_INFINITY);
  }

  /**
   * Runs a command at the server's time and resolves once its events are durable. A rejection by the
   * trading rules throws `ApiError` with its code (its time-driven events are journaled and published
   * all the same); a storage failure throws ENGINE_UNAVAILABLE or OUTCOME_UNKNOWN (503).
   */
  async execute(command: UntimedCommand, time: number = this.clock.now()): Promise<CommandSuccess> {
    const durable = this.recovered();
    let result;
    try {
      result = await durable.submit({ ...command, time } as Command);
    } catch (error) {
      if (error instanceof EngineUnavailableError)
        throw new ApiError(error.outcomeUnknown ? "OUTCOME_UNKNOWN" : "ENGINE_UNAVAILABLE");
      if (error instanceof EngineOverloadedError) throw new ApiError("ENGINE_OVERLOADED");
      throw error;
    }
    if (result.events.length > 0)
      this.publishRecords(result.events.map((event, index) => ({ sequence: result.sequences[index]!, event })));
    if (!result.ok) throw new ApiError(result.code, result.message);
    return result;
  }

  /**
   * Feeds a quote to the engine (pending orders, SL/TP and risk run on it) and, once its events are
   * durable, to the quote listeners (market data, alerts, the bus). Invalid quotes throw INVALID_PRICE.
   */
  async pushQuote(quote: QuoteInput): Promise<AcceptedQuote> {
    this.instrument(quote.symbol);
    // Never before the last quote: the engine runs a command older than its clock at the clock's time, and a
    // wall clock stepped back (NTP) stamped a quote into the day before, so the shortlist mixed two days (a
    // bid outside the day's high and low).
    const time = Math.max(this.clock.now(), this.lastQuoteTime);
    this.lastQuoteTime = time;
    // At that time in the engine too: stamped by the clock, the engine's quote was older than the one published (after
    // a restart with the clock behind the kept quotes; found by the audit of time of 7 December).
    await this.execute({ kind: "tick", ...quote }, time);
    const accepted: AcceptedQuote = { ...quote, time };
    for (const listener of this.quoteListeners) {
      try {
        listener(accepted);
      } catch (error) {
        this.log.error(`a quote listener failed on ${quote.symbol}: ${String(error)}`);
      }
    }
    return accepted;
  }

  /**
   * Gives the engine the quotes kept from before the restart (`MarketDataService.load`), for the symbols it has
   * no quote of, without running anything at them (`TradingEngine.restoreQuote`: for display and valuation, no
   * trading, until the feed's next tick of each symbol); returns those it took. Quote times go on from the latest.
   * Called once recovery has finished, before the feed starts.
   */
  restoreQuotes(quotes: readonly AcceptedQuote[]): AcceptedQuote[] {
    const durable = this.recovered();
    const taken: AcceptedQuote[] = [];
    for (const quote of quotes) {
      if (!this.instruments.has(quote.symbol) || durable.engine.quote(quote.symbol)) continue;
      const refused = durable.restoreQuote(quote);
      if (refused) {
        this.log.warn(`market data: the kept quote of ${quote.symbol} is not taken: ${refused.message}`);
        continue;
      }
      taken.push(quote);
      this.lastQuoteTime = Math.max(this.lastQuoteTime, quote.time);
    }
    return taken;
  }

  onQuote(listener: QuoteListener): void {
    this.quoteListeners.push(listener);
  }

  /** Called with every batch of durable events of one command, in journal order. */
  onEvents(listener: EventListener): void {
    this.eventListeners.push(listener);
  }

  private publishRecords(records: readonly JournalRecord[]): void {
    for (const { event } of records) {
      if (event.type === "AccountOpened") this.indexAccount(event.userId, event.accountId);
    }
    for (const listener of this.eventListeners) {
      try {
        listener(records);
      } catch (error) {
        this.log.error(`an event listener failed: ${String(error)}`);
      }
    }
  }

  // ---- journal reads (stream resume) ----

  /** Up to `limit` journal records after `afterSequence`, in order (the streams' replay on resume). */
  async readJournal(afterSequence: number, limit: number): Promise<JournalRecord[]> {
    return this.journal.read(afterSequence, limit);
  }

  /** The sequence of the last journaled event (0 for an empty journal). */
  async lastJournalSequence(): Promise<number> {
    return this.journal.lastSequence();
  }

  // ---- ownership ----

  private indexAccount(userId: string, accountId: number): void {
    const list = this.accountsByUser.get(userId);
    if (!list) this.accountsByUser.set(userId, [accountId]);
    else if (!list.includes(accountId)) list.push(accountId);
  }

  /** The logins of the user's accounts, oldest first. */
  accountIdsOf(userId: string): readonly number[] {
    return this.accountsByUser.get(userId) ?? [];
  }

  /**
   * The account, when `userId` owns it. Anything else (another user's account, a login that does not
   * exist) is the same 403, so a client cannot probe which logins exist.
   */
  ownedAccount(userId: string, accountId: number): Account {
    const account = this.accountOwnedBy(userId, accountId);
    if (!account) throw new ApiError("FORBIDDEN", "This account does not belong to the signed-in user");
    return account;
  }

  /** The account when `userId` owns it, else null: the one ownership rule; each face says no in its own words. */
  accountOwnedBy(userId: string, accountId: number): Account | null {
    const account = this.engine.state.accounts.get(accountId);
    return account && account.userId === userId ? account : null;
  }
}
