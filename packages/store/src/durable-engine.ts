/**
 * The engine's durable command path (DESIGN.md section 2): the one writer in front of a journal.
 *
 * Group commit: the commands submitted in one event-loop turn run synchronously, in arrival order,
 * against the engine; their events take consecutive global sequences and go to the journal in one
 * `append` (one transaction, one fsync). Only when it resolves are the commands answered, so an
 * acknowledged command's events are durable. Commands that arrive while an append is in flight wait for
 * it and go in the next batch; a backlog of at least `maxBatchCommands` goes at once, behind it (up to
 * `maxAppendsInFlight`, default two), so this thread executes the next batch while the journal writes one.
 * The journal applies appends in call order and refuses one behind a refused one, so a batch never commits
 * without the batches before it; batches are answered in order.
 *
 * Reads never see a batch in flight: the engine that executes runs a batch before its append, so reads
 * (`engine`, `stateHash`, snapshots) come from a follower that folds each batch only once it is durable
 * (`TradingEngine.follower`), before its commands are answered. It holds a second copy of the live
 * state (accounts, working orders, open positions) and folds every event a second time.
 *
 * Snapshots (every `snapshotEveryEvents` or `snapshotEveryMilliseconds`): a copy of the durable state is
 * taken between two batches, then hashed and encoded in slices of a few milliseconds while commands go on
 * (a large book took three quarters of a second in one go; bench store.snapshot).
 *
 * If an append fails, its commands are answered with `EngineUnavailableError` (never a success), the
 * engine refuses commands, lets the appends behind it settle (refused, or durable if the failed write's
 * outcome was unknown and it did commit), rebuilds its state from the journal (dropping the events that
 * never became durable, or keeping them if they did) and then serves again. Quotes are
 * not journaled (they are not part of the state), so a rebuilt engine, like a restarted one, trades
 * again after the feed's next tick.
 */
import {
  TradingEngine,
  type Command,
  type CommandResult,
  type EngineConfig,
  type MarketDataChange,
  type Rejection,
  type TickCommand,
} from "@bourse/core";
import {
  JournalRecordError,
  JournalWriteError,
  type EventJournal,
  type JournalOpenReport,
  type JournalRecord,
} from "./journal.ts";
import { DurationHistogram, type DurationHistogramSnapshot } from "./duration-histogram.ts";
import { MAX_ROW_RECORDS, encodeSnapshotInSlices } from "./records.ts";
import { DEFAULT_RECOVERY_BATCH_SIZE, openAndRecover, recoverEngine } from "./recovery.ts";

export const DEFAULT_SNAPSHOT_EVERY_EVENTS = 100_000;
export const DEFAULT_MAX_WAITING_COMMANDS = 10_000;
/**
 * A backlog larger than this is written in several appends, handed over one behind the other (two in flight), so
 * this thread executes the next batch while the journal writes one (bench store.orders, 1,000 commands in flight:
 * about a third more orders/s than in one batch of 1,000); one COMMIT's fsync is still shared by hundreds.
 */
export const DEFAULT_MAX_BATCH_COMMANDS = 500;
/** A batch closes once it holds this many events (a command's events are never split between batches). */
export const DEFAULT_MAX_BATCH_EVENTS = 50_000;
/** Five minutes: a quiet server still snapshots what it journaled, so a restart replays little. */
export const DEFAULT_SNAPSHOT_EVERY_MILLISECONDS = 300_000;
export const DEFAULT_REBUILD_RETRY_MILLISECONDS = 1_000;
/** Two: one being written, the next one handed over behind it (more only deepens the journal's queue). */
export const DEFAULT_MAX_APPENDS_IN_FLIGHT = 2;

/**
 * The engine cannot take or could not complete the command: a journal write failed, the engine is
 * rebuilding its state from the journal, or it is closed. Faces answer 503.
 */
export class EngineUnavailableError extends Error {
  override readonly name = "EngineUnavailableError";
  constructor(
    message: string,
    /**
     * True when the command ran and its batch was being written when the storage failed in a way that
     * leaves the outcome unknown (the connection dropped after the commit was sent): it may be durable.
     * The journal decides; the client should look before retrying (client order ids make a retry safe).
     * False means the command did not happen.
     */
    readonly outcomeUnknown: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Too many commands are waiting for the journal: this one was not taken (it did not happen). Faces answer 503. */
export class EngineOverloadedError extends Error {
  override readonly name = "EngineOverloadedError";
  constructor(readonly maxWaitingCommands: number) {
    super(`the engine is overloaded: ${maxWaitingCommands} commands are already waiting for the journal`);
  }
}

export type DurableEngineState = "ready" | "rebuilding" | "closing" | "closed";

/** How much an operator needs to see a line of the durable engine (`DurableEngineOptions.log`). */
export type DurableLogLevel = "info" | "warn" | "error";

export interface DurableEngineOptions {
  /** An unopened journal: `open` opens it and recovers from it. */
  readonly journal: EventJournal;
  readonly config: EngineConfig;
  /** A snapshot is saved once this many events have been journaled since the last one... */
  readonly snapshotEveryEvents?: number;
  /** ...or once this long has passed since the last one and events have been journaled since. */
  readonly snapshotEveryMilliseconds?: number;
  /**
   * Whether `close` saves a snapshot of the events journaled since the last one (default false): the next start then
   * replays nothing. A server's stop does (a restart for a deploy replayed up to 5 minutes of events: the PostgreSQL
   * soak audit of 7 December, ninth session).
   */
  readonly snapshotOnClose?: boolean;
  /**
   * Where the engine's lines go, each with its level: `error` when commands are refused or a rebuild failed, `warn` for
   * what recovery skipped or dropped and a snapshot not saved, `info` otherwise (an operator watching errors saw the
   * refusals of an outage as info: the PostgreSQL soak audit of 7 December, ninth session).
   */
  readonly log?: (line: string, level: DurableLogLevel) => void;
  readonly maxWaitingCommands?: number;
  readonly maxBatchCommands?: number;
  readonly maxBatchEvents?: number;
  /** Appends handed to the journal and not yet settled, at most (1: each batch waits for the one before it). */
  readonly maxAppendsInFlight?: number;
  readonly recoveryBatchSize?: number;
  /** How long to wait before trying a failed rebuild again (the storage is still down). */
  readonly rebuildRetryMilliseconds?: number;
  /** The clock for snapshots' createdAt, in milliseconds since the epoch (tests pin it). */
  readonly now?: () => number;
  /** How long a slice of a snapshot's encoding may run before it yields (tests: 0, a yield every 64 records). */
  readonly snapshotSliceMilliseconds?: number;
  /** A monotonic clock in milliseconds for the appends' durations (`journalStatistics`); `performance.now` by default. */
  readonly elapsedMilliseconds?: () => number;
}

/** What the journal's appends have done since the engine opened, for the server's metrics. */
export interface JournalStatistics {
  /** Appends that became durable, and appends the journal refused (or whose outcome it could not tell). */
  readonly appendsDurable: number;
  readonly appendsRefused: number;
  /** From handing a batch to the journal until it settled, each append with events. */
  readonly appendDurations: DurationHistogramSnapshot;
  /** Commands submitted and not yet executed (waiting for the batch ahead), and appends in flight. */
  readonly commandsWaiting: number;
  readonly appendsInFlight: number;
}

/** What `open` found and did. */
export interface RecoveryReport {
  readonly journal: JournalOpenReport;
  readonly snapshotSequence: number | null;
  readonly replayedEvents: number;
  readonly lastSequence: number;
  readonly stateHash: string;
}

/** A command's result, with the journal sequences its events were given (in order; empty when it made none). */
export type DurableCommandResult = CommandResult & { readonly sequences: readonly number[] };

interface PendingCommand {
  readonly command: Command;
  readonly resolve: (result: DurableCommandResult) => void;
  readonly reject: (error: Error) => void;
}

/** A batch that executed and was handed to the journal, until it settles. */
interface BatchInFlight {
  /** When it was handed to the journal (`elapsedMilliseconds`). */
  readonly handedOverAt: number;
  readonly answers: { pending: PendingCommand; result: DurableCommandResult }[];
  readonly records: JournalRecord[];
  /** The market data as the batch left it, for the follower once the batch is durable. */
  readonly marketData: MarketDataChange;
  /** A command that threw after the batch's other commands: refused once they are answered. */
  readonly engineFailure: { pending: PendingCommand; error: unknown } | null;
}

type AppendOutcome = { readonly ok: true } | { readonly ok: false; readonly error: unknown };

function positiveInteger(value: number | undefined, fallback: number, name: string): number {
  const chosen = value ?? fallback;
  if (!Number.isSafeInteger(chosen) || chosen < 1)
    throw new RangeError(`${name} must be a positive integer, got ${chosen}`);
  return chosen;
}

export class DurableEngine {
  /** Runs the commands; holds the batch in flight, which is not durable yet. */
  private executing: TradingEngine;
  /** The state as of the last durable event, and the market data with it: what reads are served from. */
  private durableState: TradingEngine;
  /** The last durable sequence. */
  private sequence: number;
  /** The last sequence given to an executed event (ahead of `sequence` by the batches in flight). */
  private executedSequence: number;
  private currentState: DurableEngineState = "ready";
  private readonly waiting: PendingCommand[] = [];
  private flushScheduled = false;
  /** Batches handed to the journal and not yet settled. */
  private appendsInFlight = 0;
  /** Settles once the last batch handed over has been answered: each batch settles after the one before it. */
  private lastSettled: Promise<void> = Promise.resolve();
  /** No batch executes until the rebuild: the journal refused a batch, or a command threw. */
  private executionHalted = false;
  /** The journal refused a batch: the ones behind it settle without being folded (the rebuild reads them). */
  private journalRefused = false;
  private eventsSinceSnapshot = 0;
  private snapshotInFlight: Promise<void> | null = null;
  private rebuildInFlight: Promise<void> | null = null;
  private rebuildTimer: NodeJS.Timeout | null = null;
  private readyWaiters: (() => void)[] = [];
  /**
   * The records of batches refused with an unknown outcome, in order, until it is known whether they committed: a
   * later batch committing behind them (it could only follow them), or the rebuild finding them in the journal.
   */
  private unknownOutcomeBatches: BatchInFlight[] = [];
  private readonly unansweredListeners: ((records: readonly JournalRecord[]) => void)[] = [];
  private idleWaiters: (() => void)[] = [];
  private readonly journal: EventJournal;
  private readonly config: EngineConfig;
  private readonly log: (line: string, level: DurableLogLevel) => void;
  private readonly snapshotEveryEvents: number;
  private readonly snapshotEveryMilliseconds: number;
  private readonly snapshotOnClose: boolean;
  private lastSnapshotAt: number;
  private readonly maxWaitingCommands: number;
  private readonly maxBatchCommands: number;
  private readonly maxBatchEvents: number;
  private readonly maxAppendsInFlight: number;
  private readonly recoveryBatchSize: number;
  private readonly rebuildRetryMilliseconds: number;
  private readonly now: () => number;
  private readonly elapsed: () => number;
  private readonly appendDurations = new DurationHistogram();
  private appendsDurable = 0;
  private appendsRefused = 0;
  private readonly snapshotSliceMilliseconds: number | undefined;

  private constructor(
    options: DurableEngineOptions,
    recovered: { engine: TradingEngine; lastSequence: number },
    readonly recoveryReport: RecoveryReport,
  ) {
    this.journal = options.journal;
    this.config = options.config;
    this.log = options.log ?? ((line) => console.warn(line));
    // What recovery replayed is in no snapshot: counted, so a stop with nothing journaled since saves one (an idle
    // restart replayed the same tail at every start: the audit of an upgrade of 7 December, ninth session).
    this.eventsSinceSnapshot = recoveryReport.replayedEvents;
    this.snapshotEveryEvents = positiveInteger(
      options.snapshotEveryEvents,
      DEFAULT_SNAPSHOT_EVERY_EVENTS,
      "snapshotEveryEvents",
    );
    this.maxWaitingCommands = positiveInteger(
      options.maxWaitingCommands,
      DEFAULT_MAX_WAITING_COMMANDS,
      "maxWaitingCommands",
    );
    this.maxBatchCommands = positiveInteger(options.maxBatchCommands, DEFAULT_MAX_BATCH_COMMANDS, "maxBatchCommands");
    this.maxBatchEvents = positiveInteger(options.maxBatchEvents, DEFAULT_MAX_BATCH_EVENTS, "maxBatchEvents");
    // Half the journal's limit: the command that crosses maxBatchEvents still joins the batch.
    if (this.maxBatchEvents > MAX_ROW_RECORDS / 2)
      throw new RangeError(`maxBatchEvents must be at most ${MAX_ROW_RECORDS / 2}, got ${this.maxBatchEvents}`);
    this.maxAppendsInFlight = positiveInteger(
      options.maxAppendsInFlight,
      DEFAULT_MAX_APPENDS_IN_FLIGHT,
      "maxAppendsInFlight",
    );
    this.recoveryBatchSize = positiveInteger(
      options.recoveryBatchSize,
      DEFAULT_RECOVERY_BATCH_SIZE,
      "recoveryBatchSize",
    );
    this.rebuildRetryMilliseconds = positiveInteger(
      options.rebuildRetryMilliseconds,
      DEFAULT_REBUILD_RETRY_MILLISECONDS,
      "rebuildRetryMilliseconds",
    );
    this.now = options.now ?? Date.now;
    this.elapsed = options.elapsedMilliseconds ?? (() => performance.now());
    const slice = options.snapshotSliceMilliseconds;
    if (slice !== undefined && !(Number.isFinite(slice) && slice >= 0))
      throw new RangeError(`snapshotSliceMilliseconds must be a non-negative number, got ${slice}`);
    this.snapshotSliceMilliseconds = slice;
    this.snapshotOnClose = options.snapshotOnClose ?? false;
    this.snapshotEveryMilliseconds = positiveInteger(
      options.snapshotEveryMilliseconds,
      DEFAULT_SNAPSHOT_EVERY_MILLISECONDS,
      "snapshotEveryMilliseconds",
    );
    this.lastSnapshotAt = this.now();
    this.executing = recovered.engine;
    this.durableState = TradingEngine.follower(recovered.engine);
    this.sequence = recovered.lastSequence;
    this.executedSequence = recovered.lastSequence;
  }

  /**
   * Opens the journal and recovers: the latest snapshot (its state hash checked) plus the events after
   * it, or the whole journal without one. Throws when the journal is corrupt or the snapshot does not
   * match its hash: a server must not start on a state it cannot vouch for.
   */
  static async open(options: DurableEngineOptions): Promise<DurableEngine> {
    const log = options.log ?? ((line: string) => console.warn(line));
    // One pass: the journal's check of its records on open folds them too (recovery.ts, `openAndRecover`).
    const { report: journalReport, recovered } = await openAndRecover(options.journal, options.config, {
      batchSize: options.recoveryBatchSize,
    });
    if (journalReport.droppedTornRecords > 0)
      log(
        `journal: dropped ${journalReport.droppedTornRecords} torn record(s) after sequence ${journalReport.lastSequence} (a write that was never acknowledged)`,
        "warn",
      );
    if (journalReport.damagedSnapshots.length > 0)
      log(`journal: skipped damaged snapshot(s) at sequence ${journalReport.damagedSnapshots.join(", ")}`, "warn");
    const report: RecoveryReport = {
      journal: journalReport,
      snapshotSequence: recovered.snapshotSequence,
      replayedEvents: recovered.replayedEvents,
      lastSequence: recovered.lastSequence,
      stateHash: recovered.engine.stateHash(),
    };
    log(
      `engine recovered to sequence ${report.lastSequence} (${report.snapshotSequence === null ? "no snapshot" : `snapshot ${report.snapshotSequence}`}, ${report.replayedEvents} events replayed), state hash ${report.stateHash}`,
      "info",
    );
    return new DurableEngine({ ...options, log }, recovered, report);
  }

  get state(): DurableEngineState {
    return this.currentState;
  }

  /** True when commands are taken. */
  get ready(): boolean {
    return this.currentState === "ready";
  }

  /** Why the journal is not its one writer now (its lock lost, or held by another server), or null. */
  writerLockProblem(): string | null {
    return this.journal.writerLockProblem?.() ?? null;
  }

  /** The sequence of the last durable event. */
  get lastSequence(): number {
    return this.sequence;
  }

  get journalStatistics(): JournalStatistics {
    return {
      appendsDurable: this.appendsDurable,
      appendsRefused: this.appendsRefused,
      appendDurations: this.appendDurations.snapshot(),
      commandsWaiting: this.waiting.length,
      appendsInFlight: this.appendsInFlight,
    };
  }

  /**
   * The engine's state as of the last durable event, with the market data that came with it: for reads
   * (snapshot routes, quotes, metrics). A batch being written is not in it; it is folded in once durable,
   * before its commands are answered. It must never be given commands.
   */
  get engine(): TradingEngine {
    return this.durableState;
  }

  /**
   * Gives both the executing engine and the durable state a quote kept from before a restart
   * (`TradingEngine.restoreQuote`: nothing runs or trades at it until the symbol's next tick; a symbol that has a
   * quote keeps it). Null when taken.
   */
  restoreQuote(quote: Omit<TickCommand, "kind">): Rejection | null {
    const refused = this.durableState.restoreQuote(quote);
    if (refused) return refused;
    return this.executing.restoreQuote(quote);
  }

  /** The state hash as of the last durable event. */
  stateHash(): string {
    return this.durableState.stateHash();
  }

  /**
   * Called with the records of a batch that became durable although its commands were refused with an unknown
   * outcome (the write committed, its acknowledgement was lost), in journal order, before any later batch is
   * answered and before commands are taken again after the rebuild. Every other durable record reaches the caller
   * through its command's answer; these reached nobody, so a server never published them: an account opened so was
   * missing from its user's list until a restart, and the client's retry opened a second one (found by the audit of
   * durability of 7 December).
   */
  onUnansweredDurable(listener: (records: readonly JournalRecord[]) => void): void {
    this.unansweredListeners.push(listener);
  }

  /** Forgets the unknown-outcome batches and returns those up to `lastSequence`: the ones that are durable. */
  private takeDurableUnknownOutcomes(lastSequence: number): BatchInFlight[] {
    const batches = this.unknownOutcomeBatches;
    this.unknownOutcomeBatches = [];
    return batches.filter(({ records }) => records[records.length - 1]!.sequence <= lastSequence);
  }

  private deliverUnanswered(batches: readonly BatchInFlight[]): void {
    for (const { records } of batches)
      for (const listener of this.unansweredListeners) {
        try {
          listener(records);
        } catch (error) {
          this.log(`engine: a listener of unanswered durable records failed: ${errorMessage(error)}`, "error");
        }
      }
  }

  /** Resolves when the engine takes commands again (at once if it does), or rejects once it is closed. */
  whenReady(): Promise<void> {
    if (this.currentState === "ready") return Promise.resolve();
    if (this.currentState !== "rebuilding")
      return Promise.reject(new EngineUnavailableError("the engine is closed", false));
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  /**
   * Runs a command and resolves with its result once its events are durable. Rejects with
   * `EngineUnavailableError` or `EngineOverloadedError`; a rejection by the trading rules is a
   * resolved `{ ok: false }` result, durable like any other (its time-driven events are journaled).
   */
  submit(command: Command): Promise<DurableCommandResult> {
    if (this.currentState !== "ready") return Promise.reject(this.unavailable());
    if (this.waiting.length >= this.maxWaitingCommands)
      return Promise.reject(new EngineOverloadedError(this.maxWaitingCommands));
    return new Promise((resolve, reject) => {
      this.waiting.push({ command, resolve, reject });
      this.scheduleFlush();
    });
  }

  /** Answers the waiting commands, waits for the write in flight and a snapshot being saved, and closes the journal. */
  async close(): Promise<void> {
    if (this.currentState === "closed" || this.currentState === "closing") return;
    const rebuilding = this.currentState === "rebuilding";
    this.currentState = "closing";
    if (this.rebuildTimer) clearTimeout(this.rebuildTimer);
    this.rebuildTimer = null;
    if (rebuilding) this.refuseWaiting(this.unavailable());
    if (!rebuilding) await new Promise<void>((resolve) => this.whenIdle(resolve));
    await this.rebuildInFlight;
    await this.snapshotInFlight;
    // Of the durable state only, and not after a refused write (the state then waits for a rebuild from the journal).
    if (this.snapshotOnClose && !rebuilding && !this.journalRefused && this.eventsSinceSnapshot > 0) {
      this.takeSnapshot();
      await this.snapshotInFlight;
    }
    this.currentState = "closed";
    for (const waiter of this.readyWaiters.splice(0)) waiter();
    await this.journal.close();
  }

  private unavailable(): EngineUnavailableError {
    return this.currentState === "rebuilding"
      ? new EngineUnavailableError("the engine is rebuilding its state from the journal after a failed write", false)
      : new EngineUnavailableError("the engine is closed", false);
  }

  private whenIdle(resolve: () => void): void {
    if (this.appendsInFlight === 0 && this.waiting.length === 0) resolve();
    else this.idleWaiters.push(resolve);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || !this.nextBatchGoesNow()) return;
    this.flushScheduled = true;
    // setImmediate, not a microtask: commands arriving from every I/O callback of this loop turn join the batch.
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    while (
      this.nextBatchGoesNow() &&
      !this.executionHalted &&
      (this.currentState === "ready" || this.currentState === "closing")
    )
      this.executeBatch();
    this.notifyIdle();
  }

  /**
   * Whether the waiting commands make a batch to hand over now. Behind an append in flight only a full batch
   * goes at once (a backlog: the journal then goes from one COMMIT to the next); fewer commands wait for the
   * append ahead and gather the ones that arrive meanwhile, so a moderate rate still shares each fsync.
   */
  private nextBatchGoesNow(): boolean {
    if (this.waiting.length === 0 || this.appendsInFlight >= this.maxAppendsInFlight) return false;
    return this.appendsInFlight === 0 || this.waiting.length >= this.maxBatchCommands;
  }

  /** Runs the next batch of waiting commands and hands its events to the journal. */
  private executeBatch(): void {
    const answers: BatchInFlight["answers"] = [];
    const records: JournalRecord[] = [];
    let engineFailure: BatchInFlight["engineFailure"] = null;
    while (this.waiting.length > 0 && answers.length < this.maxBatchCommands && records.length < this.maxBatchEvents) {
      const pending = this.waiting.shift()!;
      let result: CommandResult;
      try {
        result = this.executing.execute(pending.command);
      } catch (error) {
        // The engine threw mid-command: its state may hold events that were never returned. Journal
        // what came before, then rebuild from the journal to drop the rest.
        engineFailure = { pending, error };
        this.executionHalted = true;
        break;
      }
      const sequences: number[] = [];
      for (const event of result.events) {
        const sequence = this.executedSequence + records.length + 1;
        records.push({ sequence, event });
        sequences.push(sequence);
      }
      answers.push({ pending, result: { ...result, sequences } });
    }
    this.executedSequence += records.length;
    const batch: BatchInFlight = {
      handedOverAt: this.elapsed(),
      answers,
      records,
      marketData: this.executing.takeMarketDataChange(),
      engineFailure,
    };
    const appended: Promise<AppendOutcome> =
      records.length === 0
        ? Promise.resolve({ ok: true })
        : this.journal.append(records).then(
            () => ({ ok: true }),
            (error: unknown) => ({ ok: false, error }),
          );
    this.appendsInFlight += 1;
    const previous = this.lastSettled;
    // Answered in order: a batch's answers (even one without events, whose results may rest on the batch
    // before it) wait for the batches ahead of it.
    this.lastSettled = Promise.all([appended, previous]).then(([outcome]) => this.settle(batch, outcome));
  }

  private settle(batch: BatchInFlight, outcome: AppendOutcome): void {
    this.appendsInFlight -= 1;
    const { answers, records } = batch;
    if (records.length > 0) {
      // Settled in order: a batch behind a slow one is timed until it could be answered, as its clients waited.
      this.appendDurations.observe(this.elapsed() - batch.handedOverAt);
      if (outcome.ok) this.appendsDurable += 1;
      else this.appendsRefused += 1;
    }
    if (outcome.ok && this.journalRefused && records.length === 0) {
      // Behind a refused batch, a batch without events wrote nothing, and its answers (refusals by the trading
      // rules) may rest on the refused batch's effects: they did not happen.
      const failure = new EngineUnavailableError(
        "the journal refused a batch ahead of this command, which ran on top of it; it did not happen",
        false,
      );
      for (const { pending } of answers) pending.reject(failure);
      batch.engineFailure?.pending.reject(failure);
      this.startRebuild();
      return;
    }
    if (!outcome.ok) {
      const error = outcome.error;
      const outcomeUnknown =
        error instanceof JournalWriteError ? error.outcomeUnknown : !(error instanceof JournalRecordError);
      const failure = new EngineUnavailableError(
        `the journal refused the batch of sequences ${records[0]!.sequence}-${records[records.length - 1]!.sequence}${outcomeUnknown ? " (its outcome is unknown)" : ""}: ${errorMessage(error)}`,
        outcomeUnknown,
        { cause: error },
      );
      // The batches behind the first refused one are refused by the journal as well (they no longer follow
      // its last record), unless the refused write did commit: then they are durable, and answered so below.
      if (!this.journalRefused)
        this.log(`engine: ${failure.message}; refusing commands while the state is rebuilt from the journal`, "error");
      if (outcomeUnknown) this.unknownOutcomeBatches.push(batch);
      this.journalRefused = true;
      this.executionHalted = true;
      for (const { pending } of answers) pending.reject(failure);
      batch.engineFailure?.pending.reject(failure);
      this.startRebuild();
      return;
    }

    // This batch follows the unknown-outcome ones before it: they committed. Every batch from them on is durable, so
    // the durable state takes them and this one before its answers go out, as if none had been refused (an audit of
    // 7 December found this batch's answers going out while reads, and the quotes a rebuild starts from, lacked it).
    if (records.length > 0 && this.unknownOutcomeBatches.length > 0) {
      const committed = this.takeDurableUnknownOutcomes(records[0]!.sequence - 1);
      for (const earlier of committed) this.foldDurable(earlier);
      this.journalRefused = false;
      this.deliverUnanswered(committed);
    }
    // Before the answers: an answer, and any read after it, sees its own command's effects.
    if (this.journalRefused) this.sequence += records.length;
    else this.foldDurable(batch);
    for (const { pending, result } of answers) pending.resolve(result);
    if (
      !this.journalRefused &&
      (this.eventsSinceSnapshot >= this.snapshotEveryEvents ||
        (this.eventsSinceSnapshot > 0 && this.now() - this.lastSnapshotAt >= this.snapshotEveryMilliseconds))
    )
      this.takeSnapshot();
    if (batch.engineFailure) {
      const { pending, error } = batch.engineFailure;
      this.log(`engine: a command threw (${errorMessage(error)}); rebuilding the state from the journal`, "error");
      pending.reject(
        new EngineUnavailableError(`the engine failed on the command: ${errorMessage(error)}`, false, {
          cause: error,
        }),
      );
      this.startRebuild();
      return;
    }
    // Still rebuilding once a refusal proved to have committed: the rebuild starts when the last append settles.
    if (this.journalRefused || this.currentState === "rebuilding") return this.startRebuild();
    if (this.waiting.length > 0) this.scheduleFlush();
    else this.notifyIdle();
  }

  /** A durable batch into the durable state: its sequences, its events and its market data. */
  private foldDurable({ records, marketData }: BatchInFlight): void {
    this.sequence += records.length;
    this.eventsSinceSnapshot += records.length;
    this.durableState.followDurable(
      records.map((record) => record.event),
      marketData,
    );
  }

  private notifyIdle(): void {
    if (this.appendsInFlight > 0 || this.waiting.length > 0) return;
    for (const waiter of this.idleWaiters.splice(0)) waiter();
  }

  /**
   * Called right after a batch is durable. The copy of the durable state is taken now, at exactly
   * `sequence`; its hash and the journal's row are computed from the copy in slices between other work
   * (`encodeSnapshotInSlices`), so a large book does not stop the engine for the whole of it.
   */
  private takeSnapshot(): void {
    // One at a time: if the last one is still being encoded or written, the next batch tries again.
    if (this.snapshotInFlight) return;
    const sequence = this.sequence;
    const createdAt = this.now();
    const state = this.durableState.snapshot();
    this.eventsSinceSnapshot = 0;
    this.lastSnapshotAt = createdAt;
    this.snapshotInFlight = encodeSnapshotInSlices(
      { sequence, state, createdAt },
      { sliceMilliseconds: this.snapshotSliceMilliseconds },
    )
      .then((row) => this.journal.saveSnapshotRow(row))
      .catch((error: unknown) => {
        // Commands do not depend on snapshots: recovery only replays more events without this one.
        this.log(`engine: the snapshot at sequence ${sequence} was not saved: ${errorMessage(error)}`, "warn");
      })
      .finally(() => {
        this.snapshotInFlight = null;
      });
  }

  private refuseWaiting(error: Error): void {
    for (const pending of this.waiting.splice(0)) pending.reject(error);
  }

  /** Stops taking commands; once the appends in flight have settled, rebuilds the state from the journal. */
  private startRebuild(): void {
    if (this.currentState === "ready") this.currentState = "rebuilding";
    // Commands that waited behind the failure never ran: they did not happen.
    this.refuseWaiting(this.unavailable());
    this.notifyIdle();
    // The journal is read once nothing more can commit: a batch still in flight may yet become durable.
    if (this.currentState !== "rebuilding" || this.appendsInFlight > 0 || this.rebuildInFlight) return;
    this.rebuildInFlight = this.rebuild().finally(() => {
      this.rebuildInFlight = null;
    });
  }

  private async rebuild(): Promise<void> {
    try {
      const recovered = await recoverEngine(this.journal, this.config, { batchSize: this.recoveryBatchSize });
      if (this.currentState !== "rebuilding") return;
      const dropped = this.executing.stateHash() !== recovered.engine.stateHash();
      // Unknown-outcome batches the journal holds: their quotes are the newest durable ones.
      const committed = this.takeDurableUnknownOutcomes(recovered.lastSequence);
      for (const { marketData } of committed) this.durableState.followDurable([], marketData);
      // The market goes on: without the last durable quotes every order would be refused NO_QUOTES until the
      // feed's next tick of its symbol.
      recovered.engine.adoptQuotes(this.durableState);
      this.executing = recovered.engine;
      this.durableState = TradingEngine.follower(recovered.engine);
      this.sequence = recovered.lastSequence;
      this.executedSequence = recovered.lastSequence;
      this.executionHalted = false;
      this.journalRefused = false;
      this.eventsSinceSnapshot = recovered.replayedEvents;
      this.currentState = "ready";
      this.deliverUnanswered(committed);
      this.log(
        `engine: rebuilt from the journal at sequence ${this.sequence}${dropped ? " (unjournaled events dropped)" : ""}; taking commands again`,
        "warn",
      );
      for (const waiter of this.readyWaiters.splice(0)) waiter();
    } catch (error) {
      if (this.currentState !== "rebuilding") return;
      this.log(
        `engine: rebuilding from the journal failed (${errorMessage(error)}); trying again in ${this.rebuildRetryMilliseconds} ms`,
        "error",
      );
      this.rebuildTimer = setTimeout(() => {
        this.rebuildTimer = null;
        this.rebuildInFlight = this.rebuild().finally(() => {
          this.rebuildInFlight = null;
        });
      }, this.rebuildRetryMilliseconds);
    }
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
