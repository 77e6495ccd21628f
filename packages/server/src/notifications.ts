/**
 * Platform notifications (API.md "Notifications"): fills, SL/TP and stop-out closes, margin calls and
 * stop-outs become a notification of the account's user, stored (PlatformStore) and published as a
 * `notificationEvent` on the user's topic (`user.{userId}`). Price alerts add theirs through `notify`.
 *
 * The engine's event path never waits for the store: each write is a task of one ordered, bounded
 * queue (`WriteQueue`). Tasks run one at a time in the order they were queued, so notifications of
 * one command are stored, and published, in journal order. When the queue is full new tasks are
 * dropped and counted, and the drop is logged: a slow store cannot make the server run out of memory.
 *
 * Notifications of journal events survive a crash: each batch is stored with the journal sequence its
 * events reach (`addNotifications(batch, journalSequence)`, one transaction), and a start derives again
 * the notifications of the events after that mark before any new one (`start`). A kill -9 between a
 * fill's acknowledgement and its notification's write used to lose the notification for good.
 */
import {
  currencyDigits,
  formatDecimal,
  type Account,
  type DealExecutedEvent,
  type InstrumentSpec,
  type MarginCallEvent,
  type StopOutEvent,
  toDecimalNumber,
} from "@bourse/core";
import {
  NOTIFICATION_KINDS,
  PLATFORM_LIMITS,
  PlatformStoreError,
  type JournalRecord,
  type NewNotification,
  type Notification,
  type NotificationKind,
  type NotificationLevel,
} from "@bourse/store";
import { Type, type Static } from "@sinclair/typebox";
import { BusTopics } from "./bus.ts";
import { errorText } from "./errors.ts";
import type { Platform, PlatformLog } from "./platform.ts";
import { Nullable, TableOf } from "./schemas.ts";
import { timeToWire } from "./wire.ts";

/**
 * How long a notification waits for others to share its store write: short next to what a person
 * notices, long next to a group commit (so a stream of fills makes few commits).
 */
export const NOTIFICATION_BATCH_DELAY_MS = 20;

/** How often each user's notifications and alert logs are pruned to their newest (`pruneHistories`). */
export const HISTORY_PRUNE_INTERVAL_MS = 3_600_000;

/** Store writes waiting at most (alert triggers and notifications share the queue). */
export const WRITE_QUEUE_LIMIT = 10_000;

/**
 * Journal events a start may read again at most, besides those whose notifications a crash lost: while no
 * event calls for a notification, the mark still moves forward once this many events have passed.
 */
export const NOTIFICATION_MARK_EVERY_EVENTS = 100_000;

/** Journal records read per query when a start derives the notifications a crash lost. */
export const NOTIFICATION_RECOVERY_PAGE_EVENTS = 10_000;

/**
 * A notification write the store failed for a reason of its own (disk full, PostgreSQL restarting) is tried
 * again after this long, doubled each time up to NOTIFICATION_RETRY_MAX_MS, until it is stored or the server
 * closes (then the journal mark brings it back at the next start). Writes behind it wait: order is kept.
 */
export const NOTIFICATION_RETRY_FIRST_MS = 100;
export const NOTIFICATION_RETRY_MAX_MS = 5_000;
/** While a write is being tried again, a log line at most this often. */
export const NOTIFICATION_RETRY_LOG_EVERY_MS = 60_000;

/**
 * Whether a failed write may succeed if tried again: the store's own trouble (disk full, I/O, a lost connection),
 * not a refusal of what was written (`PlatformStoreError`) nor a fault of this program, which would fail forever.
 */
function isStoreOutage(error: unknown): boolean {
  return !(
    error instanceof PlatformStoreError ||
    error instanceof TypeError ||
    error instanceof RangeError ||
    error instanceof ReferenceError ||
    error instanceof SyntaxError
  );
}

/** Runs async tasks one at a time, in order, with at most `limit` waiting. */
export class WriteQueue {
  private tasks: (() => Promise<void>)[] = [];
  private head = 0;
  private running = false;
  private idleWaiters: (() => void)[] = [];
  /** Tasks refused because the queue was full. */
  dropped = 0;
  /** Tasks that threw (logged). */
  failed = 0;

  constructor(
    private readonly name: string,
    private readonly limit: number,
    private readonly log: PlatformLog,
  ) {}

  /** True when the next `push` would be refused. */
  get full(): boolean {
    return this.tasks.length - this.head >= this.limit;
  }

  /** Tasks waiting or running. */
  get size(): number {
    return this.tasks.length - this.head + (this.running ? 1 : 0);
  }

  /** Queues `task`; false (and a log line every 1,000 drops) when the queue is full. */
  push(task: () => Promise<void>): boolean {
    if (this.full) {
      this.refuse();
      return false;
    }
    this.tasks.push(task);
    if (!this.running) void this.run();
    return true;
  }

  /** Counts (and every 1,000th time logs) a write dropped because too many are waiting. */
  refuse(): void {
    if (this.dropped % 1000 === 0)
      this.log.warn(
        `${this.name}: write queue full (${this.limit} waiting), dropping writes (${this.dropped + 1} so far)`,
      );
    this.dropped += 1;
  }

  /** Resolves once every task queued so far (and any they queue) has run. */
  drain(): Promise<void> {
    if (!this.running && this.head >= this.tasks.length) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async run(): Promise<void> {
    this.running = true;
    while (this.head < this.tasks.length) {
      const task = this.tasks[this.head]!;
      this.head += 1;
      if (this.head > 1024 && this.head * 2 > this.tasks.length) {
        this.tasks = this.tasks.slice(this.head);
        this.head = 0;
      }
      try {
        await task();
      } catch (error) {
        this.failed += 1;
        this.log.error(`${this.name}: a write failed: ${errorText(error)}`);
      }
    }
    this.tasks = [];
    this.head = 0;
    this.running = false;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}

/** What each kind is about and the ids its notifications carry (a kind added to the registry must say it here). */
const NOTIFICATION_KIND_MEANINGS: Readonly<Record<NotificationKind, string>> = {
  ORDER_FILLED: "a fill that leaves its order filled; orderId, positionId, dealId",
  ORDER_PARTIALLY_FILLED: "a fill that leaves some of its order unfilled; orderId, positionId, dealId",
  POSITION_CLOSED: "a client's close of a position, whole or part; positionId, orderId, dealId",
  STOP_LOSS: "a position closed by its stop loss; positionId, orderId, dealId",
  TAKE_PROFIT: "a position closed by its take profit; positionId, orderId, dealId",
  MARGIN_CALL: "the account's margin level reached the margin-call level",
  MARGIN_CALL_CLEARED: "the account's margin level is back above the margin-call level",
  STOP_OUT: "a stop-out closed a position; positionId, and its closing deal's orderId and dealId",
  PRICE_ALERT: "a price alert triggered; alertId",
  DEALER_CLOSE:
    "the broker's dealing desk closed a position for the client, whole or part; positionId, orderId, dealId",
};

/** The kinds as the OpenAPI document says them. */
export const NOTIFICATION_KINDS_DESCRIPTION =
  "`kind` says what a notification is about, for an icon or a click (the title is for people and may change): " +
  NOTIFICATION_KINDS.map((kind) => `${kind} (${NOTIFICATION_KIND_MEANINGS[kind]})`).join(", ") +
  ". One execution is one notification: the deals of an order or a close that walked the book, and a stop-out's " +
  "closing deals, are named one by one in its body with their sums, and its dealId is the first deal's" +
  ". New kinds may be added: treat an unknown one as a plain notification. Notifications stored before kinds were " +
  "have the kind their title says (null if it says none) and null ids.";

export const NotificationViewSchema = Type.Object({
  id: Type.Integer(),
  accountId: Type.Union([Type.Integer(), Type.Null()], { description: "The account it is about, if any" }),
  level: Type.Union([Type.Literal("info"), Type.Literal("warning"), Type.Literal("error")]),
  status: Type.Union([Type.Literal("unread"), Type.Literal("read")]),
  title: Type.String(),
  body: Type.String(),
  createdAt: Type.String({ format: "date-time" }),
  kind: Nullable(Type.Union(NOTIFICATION_KINDS.map((kind) => Type.Literal(kind))), NOTIFICATION_KINDS_DESCRIPTION),
  orderId: Nullable(Type.Integer({ minimum: 1 }), "The order it is about, if it is about one"),
  positionId: Nullable(Type.Integer({ minimum: 1 }), "The position it is about, if it is about one"),
  dealId: Nullable(Type.Integer({ minimum: 1 }), "The deal it is about, if it is about one"),
  alertId: Nullable(Type.String(), "The price alert it is about, if it is about one"),
});
export type NotificationView = Static<typeof NotificationViewSchema>;

/** The REST table: columns added since the first come last, so a client reading rows by position still can. */
export const NotificationTable = TableOf(
  [
    "id",
    "accountId",
    "level",
    "status",
    "title",
    "body",
    "createdAt",
    "kind",
    "orderId",
    "positionId",
    "dealId",
    "alertId",
  ],
  NotificationViewSchema,
);

export function notificationView(notification: Notification): NotificationView {
  return {
    id: notification.id,
    accountId: notification.accountId,
    level: notification.level,
    status: notification.status,
    title: notification.title,
    body: notification.body,
    createdAt: timeToWire(notification.createdAt),
    kind: notification.kind,
    orderId: notification.orderId,
    positionId: notification.positionId,
    dealId: notification.dealId,
    alertId: notification.alertId,
  };
}

const services = new WeakMap<Platform, NotificationService>();

/** The closes made by a stop of the platform's rather than the client's (whole positions): their title and kind. */
const STOP_CLOSES = {
  CLIENT: null,
  DEALER: null,
  STOP_LOSS: { words: "Stop loss", kind: "STOP_LOSS" },
  TAKE_PROFIT: { words: "Take profit", kind: "TAKE_PROFIT" },
  STOP_OUT: { words: "Stop out", kind: "STOP_OUT" },
} as const satisfies Record<DealExecutedEvent["deal"]["reason"], { words: string; kind: NotificationKind } | null>;

const DEAL_LEVELS: Record<DealExecutedEvent["deal"]["reason"], NotificationLevel> = {
  CLIENT: "info",
  DEALER: "warning",
  TAKE_PROFIT: "info",
  STOP_LOSS: "warning",
  STOP_OUT: "error",
};

/**
 * The notification of journal events: `journalSequence` is its first event's (its key in the store: one execution's
 * notification keeps the key it had before the deals were joined, a stop-out's), `throughSequence` its last event's
 * (how far a mark stored with it may reach). A mark never falls inside an execution, so a start that derives again
 * from one always sees a whole execution and makes the same notification, under the same key (found by the review of
 * 7 December, ninth session: keyed by their last event, a dropped joined notification came back as its last part).
 */
type EventNotification = NewNotification & { readonly journalSequence: number; readonly throughSequence: number };

export class NotificationService {
  readonly queue: WriteQueue;
  private started = false;
  /** The sequence of the last journal record `onEvents` has taken: its notifications are pending or stored. */
  private seenThrough = 0;
  /** The journal sequence of the last mark written or queued. */
  private markedThrough = 0;

  /** The one service of a platform (route modules, the alert engine and server.ts share it). */
  static for(platform: Platform): NotificationService {
    let service = services.get(platform);
    if (!service) services.set(platform, (service = new NotificationService(platform)));
    return service;
  }

  private constructor(private readonly platform: Platform) {
    this.queue = new WriteQueue("notifications", WRITE_QUEUE_LIMIT, platform.log);
  }

  /**
   * Listens to the engine's events from the recovered journal's end on, after deriving again (first in the
   * queue) the notifications of the events before it that no batch stored; the queue is drained when the
   * platform closes. Called once the platform is ready, before any command can run.
   */
  start(): void {
    if (this.started) return;
    this.started = true;
    const recoveredThrough = this.platform.durableEngine?.lastSequence ?? 0;
    this.seenThrough = recoveredThrough;
    this.markedThrough = recoveredThrough;
    this.queue.push(async () => {
      try {
        await this.recover(recoveredThrough);
      } catch (error) {
        // The mark stays where the last stop left it, so the next start derives these again.
        this.marksHeld = true;
        throw error;
      }
    });
    this.platform.onEvents((records) => this.onEvents(records));
    void this.pruneHistories();
    const pruning = setInterval(() => void this.pruneHistories(), HISTORY_PRUNE_INTERVAL_MS);
    pruning.unref();
    this.platform.onClose(() => {
      clearInterval(pruning);
      this.closing = true;
      this.stopWaiting?.();
      return this.queue.drain();
    });
  }

  /**
   * Stores the notifications of the journal events after the stored mark, through `through`, in order, as
   * the live batches would have. A store with no mark (a new one, or one from before marks) starts at
   * `through`: its history's notifications are stored already, or were never made.
   */
  private async recover(through: number): Promise<void> {
    const store = this.platform.store;
    const marked = await this.untilStored(() => store.notificationJournalSequence());
    if (marked !== null && marked > through) {
      // The platform store is newer than the journal: a backup pair restored with the platform store taken last, or a
      // journal restored alone. Its notifications of events past the journal's end told of trades the books do not
      // hold (found by the audit of an operator's journey of 7 December, sixth session: users saw fills that were not
      // there, and the next real fill got none). The journal is the truth.
      const forgotten = await this.untilStored(() => store.forgetNotificationsAfter(through));
      this.platform.log.error(
        `notifications: the platform store is newer than the journal (its notifications reach journal sequence ` +
          `${marked}, the journal ends at ${through}): ${forgotten} notification(s) of events the journal does not ` +
          `hold deleted. Restore the journal and the platform store as one pair, the journal copied first.`,
      );
      return;
    }
    if (marked === null) {
      await this.untilStored(() => store.addNotifications([], through));
      return;
    }
    let after = marked;
    let storedAgain = 0;
    while (after < through) {
      const records = await this.untilStored(() =>
        this.platform.journalRecords(after, NOTIFICATION_RECOVERY_PAGE_EVENTS),
      );
      if (records.length === 0) break;
      const read = records.filter((record) => record.sequence <= through);
      const derivedPage = this.derive(read);
      // A full page may end inside one execution: between a stop-out and its closing deal, between the deals of an
      // order that walked the book, or before the status that says whether the order filled. Its last notification
      // waits for the next page, which starts with that notification's first event, so a start joins what the live
      // path joins (a page boundary there made two notifications of one before the audit of 7 December).
      const last = derivedPage.at(-1);
      const cut =
        read.length === NOTIFICATION_RECOVERY_PAGE_EVENTS && last && last.journalSequence > read[0]!.sequence
          ? last.journalSequence - 1
          : null;
      const found = cut === null ? derivedPage : derivedPage.slice(0, -1);
      after = cut ?? read.at(-1)?.sequence ?? through;
      // Those stored already (a mark held below them) are not stored again, nor counted: the line said derived ones.
      storedAgain += await this.storeBatches(found, after);
      if (read.length < records.length) break;
    }
    if (storedAgain > 0)
      this.platform.log.info(
        `notifications: stored ${storedAgain} notification(s) of journal events ${marked + 1}-${through} that the last stop had not stored`,
      );
  }

  /**
   * Stores `notifications` in batches, in order, each with the journal sequence its events reach: the last
   * batch's is `through` (every event up to it has been derived), an earlier one's its last notification's. Answers
   * how many were new (one stored already, under its journal sequence, is not stored again).
   */
  private async storeBatches(notifications: EventNotification[], through: number): Promise<number> {
    let added = 0;
    do {
      const batch = notifications.splice(0, PLATFORM_LIMITS.notificationBatch);
      const reached = notifications.length === 0 ? through : batch.at(-1)!.throughSequence;
      const mark = this.marksHeld ? undefined : Math.min(reached, this.markCeiling);
      const stored = await this.untilStored(() => this.platform.store.addNotifications(batch, mark));
      this.markedThrough = Math.max(this.markedThrough, reached);
      added += stored.length;
      await this.publish(stored);
    } while (notifications.length > 0);
    return added;
  }

  /**
   * `write`, tried again while the store fails it for a reason of its own (`isStoreOutage`;
   * NOTIFICATION_RETRY_FIRST_MS, doubling). Any other failure is final, and so is any failure once the server closes.
   * For the queue's tasks (the alert engine's too): the tasks behind one being tried again wait, so order is kept.
   */
  async untilStored<T>(write: () => Promise<T>): Promise<T> {
    for (let waitMs = NOTIFICATION_RETRY_FIRST_MS; ; waitMs = Math.min(waitMs * 2, NOTIFICATION_RETRY_MAX_MS)) {
      try {
        const result = await write();
        if (waitMs > NOTIFICATION_RETRY_FIRST_MS) this.platform.log.info("notifications: the store takes writes again");
        return result;
      } catch (error) {
        if (!isStoreOutage(error) || this.closing) throw error;
        const now = this.platform.clock.now();
        if (waitMs === NOTIFICATION_RETRY_FIRST_MS || now - this.lastRetryLogMs >= NOTIFICATION_RETRY_LOG_EVERY_MS) {
          this.lastRetryLogMs = now;
          this.platform.log.warn(
            `notifications: the store failed a write (${errorText(error)}); trying again until it takes it`,
          );
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, waitMs);
          this.stopWaiting = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.stopWaiting = null;
      }
    }
  }

  /** When the last "trying again" line was logged (the platform clock). */
  private lastRetryLogMs = 0;
  /** Set on close: no write is tried again (the next start brings back what is left). */
  private closing = false;
  /** Ends the wait before the next try at once (close). */
  private stopWaiting: (() => void) | null = null;

  /**
   * Queues the notification of a journal event: stored, then published on the user's topic;
   * never awaited by the caller. The first notification of a burst waits NOTIFICATION_BATCH_DELAY_MS for the
   * others, and they are stored together in one statement: one commit (an fsync on the server's thread with
   * SQLite) per burst instead of one per group-committed batch of fills. The order stays the queue's.
   */
  private notify(pending: EventNotification): void {
    if (this.pending.length >= WRITE_QUEUE_LIMIT) {
      this.queue.refuse();
      this.dropped(pending.journalSequence);
      return;
    }
    this.pending.push(pending);
    if (this.pending.length > 1) return;
    const queued = this.queue.push(async () => {
      await new Promise((resolve) => setTimeout(resolve, NOTIFICATION_BATCH_DELAY_MS));
      if (this.pending.length > 0) await this.storeBatches(this.pending.splice(0), this.seenThrough);
    });
    // Refused (the queue is full): it must not stay pending, or every later one would wait for a batch task that
    // never comes (they queue a task only when they are the first pending), and notifications stopped for good.
    if (!queued) {
      this.pending = [];
      this.dropped(pending.journalSequence);
    }
  }

  /**
   * A notification of the journal event `sequence` was dropped (the queue was full): no mark this run goes past the
   * events before it, so the next start derives it again (adding none twice: `journalSequence`).
   */
  private dropped(sequence: number): void {
    this.markCeiling = Math.min(this.markCeiling, sequence - 1);
  }

  /** The highest journal mark this run may store (`dropped`). */
  private markCeiling = Number.POSITIVE_INFINITY;
  /** Set when the start could not derive what the last stop had not stored: this run stores no mark at all. */
  private marksHeld = false;

  /** Notifications waiting for the next batch write. */
  private pending: EventNotification[] = [];

  /**
   * Keeps each user's newest PLATFORM_LIMITS.historyRowsKeptPerUser notifications and alert log entries; at start
   * and every HISTORY_PRUNE_INTERVAL_MS. Both grew with every fill and trigger, for good (found by an audit).
   */
  async pruneHistories(): Promise<void> {
    try {
      const deleted = await this.platform.store.pruneUserHistories(PLATFORM_LIMITS.historyRowsKeptPerUser);
      if (deleted > 0) this.platform.log.info(`notifications: pruned ${deleted} notification(s) and alert log entries`);
    } catch (error) {
      this.platform.log.warn(`notifications: pruning failed: ${errorText(error)}`);
    }
  }

  /**
   * Publishes stored notifications, in order, on their users' topics (`notificationEvent`), each with its user's unread
   * count once they are stored (`unread`): a terminal's badge follows the stream, and is set right again by each event
   * after a mark read elsewhere (another tab, another device). One count per user of the batch, one at a time: a burst
   * for many users must not take every pooled connection at once. Tried again while the store is out, as writes are.
   */
  async publish(stored: readonly Notification[]): Promise<void> {
    const bus = this.platform.bus;
    const unreadByUser = new Map<string, number>();
    // Only for users someone listens to: a wave of stop-outs notifies a thousand users at once, and counting each one's
    // unread rows is SQLite reads on this thread (found by the review of 7 December, sixth session: 102 ms for 1,000
    // users of 1,000 unread, the engine's ticks waiting). A user with no socket gets no event to carry the count.
    for (const { userId } of stored)
      if (!unreadByUser.has(userId) && bus.hasSubscribers(BusTopics.user(userId)))
        unreadByUser.set(userId, await this.untilStored(() => this.platform.store.countUnreadNotifications(userId)));
    for (const notification of stored) {
      const unread = unreadByUser.get(notification.userId);
      if (unread === undefined) continue;
      bus.publish(BusTopics.user(notification.userId), {
        type: "notificationEvent",
        // API.md: seed 000's streams carry `seq`; here the notification's id.
        payload: {
          ...notificationView(notification),
          seq: notification.id,
          unread,
        },
        seq: notification.id,
      });
    }
  }

  /** Every notification the events of one command call for, in journal order. */
  onEvents(records: readonly JournalRecord[]): void {
    for (const notification of this.derive(records)) this.notify(notification);
    const last = records.at(-1);
    if (last) this.seenThrough = Math.max(this.seenThrough, last.sequence);
    // Events that call for no notification move the mark too, now and then, so a start never reads far back.
    if (this.pending.length === 0 && this.seenThrough - this.markedThrough >= NOTIFICATION_MARK_EVERY_EVENTS) {
      const through = this.seenThrough;
      this.markedThrough = through;
      this.queue.push(async () => void (await this.storeBatches([], through)));
    }
  }

  /**
   * The notifications `records` call for, in journal order. One execution is one notification: the deals of one order
   * that walked the book (same order, position, entry, reason and time, with no other notification between them) are
   * joined, and so are a stop-out and its closing deals (found by the soak audit of 7 December: each deal was a
   * notification of its own, and the unread count counted each). A joined notification carries its first deal's ids.
   */
  private derive(records: readonly JournalRecord[]): EventNotification[] {
    const found: { notification: EventNotification; deals: DealExecutedEvent[]; stopOut?: StopOutEvent }[] = [];
    // The status each deal's execution left its order in: the order's next OrderStatusChanged (the engine emits it right
    // after an execution's deals). An order whose execution leaves it FILLED is "filled", else "partly". Taken from the
    // end of the records instead, a start reading a page that held a later fill of the order said "filled" where the
    // live path had said "partly" (the first review of 7 December, ninth session).
    const statusAfterDeal = new Map<number, string>();
    const nextStatus = new Map<number, string>();
    for (let index = records.length - 1; index >= 0; index--) {
      const { sequence, event } = records[index]!;
      if (event.type === "OrderStatusChanged") nextStatus.set(event.orderId, event.status);
      else if (event.type === "DealExecuted") {
        const status = nextStatus.get(event.deal.orderId);
        if (status !== undefined) statusAfterDeal.set(sequence, status);
      }
    }
    const filled = (sequence: number) => statusAfterDeal.get(sequence) === "FILLED";
    // What the last notification so far may still take in: the deals of its execution, or a stop-out's closing deals;
    // the order's status ends an execution (two executions of one order, in one millisecond, joined).
    let openGroup: string | null = null;
    let openGroupOrderId: number | null = null;
    const events = (sequence: number) => ({ journalSequence: sequence, throughSequence: sequence });
    for (const { sequence, event } of records) {
      if (event.type === "OrderStatusChanged") {
        if (event.orderId === openGroupOrderId) [openGroup, openGroupOrderId] = [null, null];
        continue;
      }
      if (event.type === "DealExecuted") {
        const last = found.at(-1);
        const { deal } = event;
        const key = `${deal.accountId}/${deal.orderId}/${deal.positionId}/${deal.entry}/${deal.reason}/${deal.time}`;
        const stopOutKey = `stop-out/${deal.accountId}/${deal.positionId}`;
        if (last && (openGroup === key || (deal.reason === "STOP_OUT" && openGroup === stopOutKey))) {
          const deals = [...last.deals, event];
          const joined =
            openGroup === key
              ? this.dealNotification(deals, filled(sequence))
              : this.stopOutNotification(last.stopOut!, deals);
          if (joined) {
            last.notification = {
              ...joined,
              journalSequence: last.notification.journalSequence,
              throughSequence: sequence,
            };
            last.deals = deals;
            openGroupOrderId = deal.orderId;
            continue;
          }
        }
        const notification = this.dealNotification([event], filled(sequence));
        openGroup = notification ? key : null;
        openGroupOrderId = notification ? deal.orderId : null;
        if (notification) found.push({ notification: { ...notification, ...events(sequence) }, deals: [event] });
        continue;
      }
      let notification: NewNotification | null = null;
      if (event.type === "MarginCallEntered" || event.type === "MarginCallCleared")
        notification = this.marginCallNotification(event);
      else if (event.type === "StopOut") notification = this.stopOutNotification(event, []);
      if (!notification) continue;
      openGroup = event.type === "StopOut" ? `stop-out/${event.accountId}/${event.positionId}` : null;
      openGroupOrderId = null;
      found.push({
        notification: { ...notification, ...events(sequence) },
        deals: [],
        ...(event.type === "StopOut" ? { stopOut: event } : {}),
      });
    }
    return found.map(({ notification }) => notification);
  }

  private account(accountId: number): Account | undefined {
    try {
      return this.platform.engine.state.accounts.get(accountId);
    } catch {
      return undefined;
    }
  }

  private money(amount: number, account: Account): string {
    return `${formatDecimal(amount, currencyDigits(account.currency))} ${account.currency}`;
  }

  /**
   * What the deals of one execution did, "Bought 0.1 lots EURUSD at 1.08440", and for closing deals what they realised:
   * the profit, and the swap and commission when not 0, each as the deal history shows it (a commission is a charge,
   * shown positive; the profit said was profit + swap without the commission before the audit of 7 December). Several
   * deals are named one by one with their ids, "Bought 0.2 lots EURUSD in 2 deals: 0.1 lots at 1.08440 (deal #5), 0.1
   * lots at 1.08450 (deal #6)", and what they realised is their sum (the same account's minor units: no rounding).
   */
  private tradeText(events: readonly DealExecutedEvent[], account: Account, instrument: InstrumentSpec): string {
    const first = events[0]!.deal;
    const verb = first.side === "BUY" ? "Bought" : "Sold";
    const total = (field: DealTotal) => dealsTotal(events, field);
    const trade =
      events.length === 1
        ? `${verb} ${lotsText(first.volume, instrument)} ${first.symbol} at ${formatPrice(first.price, instrument)}`
        : `${verb} ${lotsText(total("volume"), instrument)} ${first.symbol} in ${events.length} deals: ` +
          events
            .map(
              ({ deal }) =>
                `${lotsText(deal.volume, instrument)} at ${formatPrice(deal.price, instrument)} (deal #${deal.id})`,
            )
            .join(", ");
    if (first.entry !== "OUT") return trade;
    const swap = total("swap");
    const commission = total("commission");
    return (
      `${trade}; profit ${this.money(total("profit"), account)}` +
      (swap === 0 ? "" : `, swap ${this.money(swap, account)}`) +
      (commission === 0 ? "" : `, commission ${this.money(commission, account)}`)
    );
  }

  /**
   * The notification of the deals of one execution (one deal, or the deals of an order that walked the book): its ids
   * are the first deal's; titles that name lots name them all.
   */
  private dealNotification(events: readonly DealExecutedEvent[], filled: boolean): NewNotification | null {
    const { deal } = events[0]!;
    const account = this.account(deal.accountId);
    const instrument = this.platform.instruments.get(deal.symbol);
    if (!account || !instrument) return null;
    const withOutcome = this.tradeText(events, account, instrument);
    // A single deal's id is said after the trade; several deals are each named in it.
    const dealReference = (position: string) =>
      events.length === 1 ? ` (deal #${deal.id}${position ? `, ${position}` : ""})` : position ? `; ${position}` : "";
    const lots = lotsText(dealsTotal(events, "volume"), instrument);
    const stopClose = STOP_CLOSES[deal.reason];
    let kind: NotificationKind;
    let title: string;
    let body: string;
    if (stopClose) {
      kind = stopClose.kind;
      title = `${stopClose.words}: position #${deal.positionId} ${deal.symbol} closed`;
      body = `Position #${deal.positionId} closed by ${stopClose.words.toLowerCase()}: ${withOutcome.charAt(0).toLowerCase()}${withOutcome.slice(1)}`;
    } else if (deal.reason === "DEALER") {
      kind = "DEALER_CLOSE";
      title = `Position #${deal.positionId}: ${lots} closed by your broker`;
      body = `${withOutcome}${dealReference("")}`;
    } else if (deal.entry === "IN") {
      kind = filled ? "ORDER_FILLED" : "ORDER_PARTIALLY_FILLED";
      title = `Order #${deal.orderId} ${filled ? "filled" : "partly filled"}`;
      body = `${withOutcome}${dealReference(`position #${deal.positionId}`)}`;
    } else {
      kind = "POSITION_CLOSED";
      // The lots the deals closed: the events say what they took from the position, not whether some is left (a
      // partial close was said "closed"; the state after the batch is no answer either, as a later close of the
      // same batch or a rebuild at start would show).
      title = `Position #${deal.positionId}: ${lots} closed`;
      body = `${withOutcome}${dealReference("")}`;
    }
    return {
      userId: account.userId,
      accountId: account.id,
      kind,
      orderId: deal.orderId,
      positionId: deal.positionId,
      dealId: deal.id,
      level: DEAL_LEVELS[deal.reason],
      title,
      body,
      createdAt: events[0]!.time,
    };
  }

  private levelText(equity: number, margin: number, account: Account): string {
    const level = margin > 0 ? formatDecimal(Number((BigInt(equity) * 10_000n) / BigInt(margin)), 2) : null;
    return `equity ${this.money(equity, account)}, margin ${this.money(margin, account)}${level === null ? "" : `, margin level ${level}%`}`;
  }

  private marginCallNotification(event: MarginCallEvent): NewNotification | null {
    const account = this.account(event.accountId);
    if (!account) return null;
    const entered = event.type === "MarginCallEntered";
    return {
      userId: account.userId,
      accountId: account.id,
      kind: entered ? "MARGIN_CALL" : "MARGIN_CALL_CLEARED",
      level: entered ? "warning" : "info",
      title: entered ? `Margin call on account ${account.id}` : `Margin call cleared on account ${account.id}`,
      body: entered
        ? `The margin level reached the margin-call level: ${this.levelText(event.equity, event.margin, account)}. Deposit funds or close positions to avoid a stop-out.`
        : `The margin level is back above the margin-call level: ${this.levelText(event.equity, event.margin, account)}.`,
      createdAt: event.time,
    };
  }

  /**
   * A stop-out's notification, with its closing deals when the batch holds them (one error per position closed, not two:
   * found by the audit of alerts and notifications of 7 December), carrying the first closing deal's ids for a click.
   */
  private stopOutNotification(event: StopOutEvent, closingDeals: readonly DealExecutedEvent[]): NewNotification | null {
    const account = this.account(event.accountId);
    if (!account) return null;
    const first = closingDeals[0]?.deal;
    const instrument = first ? this.platform.instruments.get(first.symbol) : undefined;
    if (first && !instrument) return null;
    const trade = instrument ? ` ${this.tradeText(closingDeals, account, instrument)}.` : "";
    return {
      userId: account.userId,
      accountId: account.id,
      kind: "STOP_OUT",
      positionId: event.positionId,
      ...(first ? { orderId: first.orderId, dealId: first.id } : {}),
      level: "error",
      title: `Stop out on account ${account.id}`,
      body: `The margin level fell to the stop-out level (${this.levelText(event.equity, event.margin, account)}): position #${event.positionId} is closed.${trade}`,
      createdAt: event.time,
    };
  }
}

/** The integer fields of a deal the deals of one execution are summed by. */
type DealTotal = "volume" | "profit" | "swap" | "commission";

/** The sum of `field` over the deals of one execution (volume steps or the account's minor units: no rounding). */
function dealsTotal(events: readonly DealExecutedEvent[], field: DealTotal): number {
  return events.reduce((sum, { deal }) => sum + deal[field], 0);
}

/** A volume as lots in words: "1 lot", "0.05 lots". */
function lotsText(volume: number, instrument: InstrumentSpec): string {
  const lots = String(toDecimalNumber(volume, instrument.volumeDigits));
  return `${lots} ${lots === "1" ? "lot" : "lots"}`;
}

/** A price with exactly the instrument's digits ("1.08000"). */
export function formatPrice(points: number, instrument: InstrumentSpec): string {
  return formatDecimal(points, instrument.digits);
}
