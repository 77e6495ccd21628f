/**
 * Price alerts (API.md "Alerts"), evaluated on every quote through a price index, never a scan.
 *
 * Every condition is one or two "legs", each a zone of prices (`p ≥ x`, `p ≤ x`, inside or outside a
 * channel). A leg fires when the price is in its zone while the leg is armed, and disarms; it re-arms
 * when the price leaves the zone. Level conditions (GREATER_THAN, LESS_THAN, INSIDE/OUTSIDE_CHANNEL,
 * MOVING_*) start armed: they fire at the first quote that satisfies them. Crossing conditions
 * (CROSSING_*, ENTERING/EXITING_CHANNEL) start armed only when the price is outside their zone: they
 * need the price to come from the other side. So a repeating GREATER_THAN fires once, then again only
 * after the price went back to the target or below. A repeating MOVING_* measures its next move from
 * the price it fired at (its referencePrice moves there).
 *
 * Whether each leg is armed is kept in memory and written to the store whenever it changes (`armedLegs`, a bit
 * per leg, through `saveAlertArming`, which leaves the alert's `updatedAt` alone): after a restart an alert takes
 * up its legs as they were, so a repeating GREATER_THAN that fired above its target does not fire again there,
 * and a crossing whose price moved to the other side while the server was down fires at its first quote.
 * An alert changed without being set active again and with the same zones (its message, its expiration) keeps
 * its legs: an edit of the message made a repeating GREATER_THAN fire again above its target. Any change of
 * what the legs are made of makes the store forget the arming, and the alert starts afresh.
 *
 * Index: per symbol and side (BID/ASK) two PriceHeaps (core), one of "up" thresholds (a min-heap: the
 * price at or above which the alert's zone membership may change) and one of "down" thresholds (a
 * max-heap). A quote pops only the entries it reached; each popped alert is re-evaluated exactly and
 * re-indexed at its next thresholds. `evaluations` counts the alerts a quote looked at.
 *
 * Thresholds are integers (points), so strict comparisons are exact: GREATER_THAN t is `p ≥ t + 1`.
 * MOVING_UP/DOWN's moveThreshold is a price distance in points; MOVING_*_PERCENT's is in hundredths of
 * a percent (basis points), so the threshold is ref ± ceil(ref × bp / 10,000).
 *
 * Triggers write through the notifications' ordered queue (never blocking the quote path): the log row,
 * the status (once → triggered) and the notification in one transaction (store.recordAlertTrigger, tried
 * again while the store fails it), then `notificationEvent` and `priceAlertEvent` on the user's topic.
 * Routes keep the index in sync: a store write through `writeUserChange`, then `sync` or `forget`; a
 * trigger's status write is skipped when the user changed the alert meanwhile.
 */
import { PriceHeap, formatDecimal, type InstrumentSpec } from "@bourse/core";
import { randomUUID } from "node:crypto";
import {
  ALERT_CONDITIONS,
  type AlertCondition,
  type AlertLog,
  type AlertSide,
  type NewAlertLog,
  type NewNotification,
  type PlatformStore,
  type PriceAlert,
  type PriceAlertPatch,
} from "@bourse/store";
import { Type, type Static } from "@sinclair/typebox";
import { BusTopics } from "./bus.ts";
import { NotificationService, formatPrice } from "./notifications.ts";
import type { AcceptedQuote, Platform } from "./platform.ts";
import { TableOf } from "./schemas.ts";
import { optionalTimeToWire, timeToWire } from "./wire.ts";

/**
 * Writes of the engine's changes after a user's update at most. Each round needs the alert to fire again during the
 * write before, so this is never reached in practice; past it, the last changes are queued as the engine's own.
 */
const MAX_USER_UPDATE_ROUNDS = 10;

// ---- the conditions ----

type Zone =
  | { readonly kind: "above"; readonly x: number }
  | { readonly kind: "below"; readonly x: number }
  | { readonly kind: "inside"; readonly low: number; readonly high: number }
  | { readonly kind: "outside"; readonly low: number; readonly high: number };

interface Leg {
  readonly zone: Zone;
  armed: boolean;
  /** The last price this leg was seen outside its zone at: the side a price entering a channel came from. */
  outsideAt: number | null;
}

const CROSSING_CONDITIONS: ReadonlySet<AlertCondition> = new Set([
  "CROSSING_UP",
  "CROSSING_DOWN",
  "CROSSING_EITHER",
  "ENTERING_CHANNEL",
  "EXITING_CHANNEL",
]);

export const TARGET_CONDITIONS: ReadonlySet<AlertCondition> = new Set([
  "CROSSING_UP",
  "CROSSING_DOWN",
  "GREATER_THAN",
  "LESS_THAN",
  "CROSSING_EITHER",
]);
export const CHANNEL_CONDITIONS: ReadonlySet<AlertCondition> = new Set([
  "ENTERING_CHANNEL",
  "EXITING_CHANNEL",
  "INSIDE_CHANNEL",
  "OUTSIDE_CHANNEL",
]);
export const MOVE_CONDITIONS: ReadonlySet<AlertCondition> = new Set(["MOVING_UP", "MOVING_DOWN"]);
export const PERCENT_CONDITIONS: ReadonlySet<AlertCondition> = new Set(["MOVING_UP_PERCENT", "MOVING_DOWN_PERCENT"]);

export function isMovingCondition(condition: AlertCondition): boolean {
  return MOVE_CONDITIONS.has(condition) || PERCENT_CONDITIONS.has(condition);
}

/** The move of a percent condition in points: ceil(ref × bp / 10,000), exact for any size. */
function percentMove(reference: number, basisPoints: number): number {
  const product = BigInt(reference) * BigInt(basisPoints);
  return Number((product + 9_999n) / 10_000n);
}

/** The legs of a condition; null when it needs a reference price that is not known yet. */
function sameZones(legs: readonly Leg[], zones: readonly Zone[] | null): boolean {
  return (
    zones !== null && legs.length === zones.length && legs.every((leg, index) => sameZone(leg.zone, zones[index]!))
  );
}

function sameZone(a: Zone, b: Zone): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === "above" || a.kind === "below") return a.x === (b as typeof a).x;
  return a.low === (b as typeof a).low && a.high === (b as typeof a).high;
}

type AlertLevels = Pick<
  PriceAlert,
  "condition" | "targetPrice" | "channelLow" | "channelHigh" | "moveThreshold" | "referencePrice"
>;

/**
 * Whether a quote of 1 to `maxPrice` points (the instrument's bound: no quote is taken past it) can put the price in
 * one of the alert's zones. One that no quote can reach never fires and holds a place of the user's alerts (found by
 * the audit of alerts of 7 December: a target of 90071992547 was taken).
 */
export function canTrigger(alert: AlertLevels, maxPrice: number): boolean {
  const zones = zonesOf(alert);
  if (zones === null) return true; // a MOVING_* alert without its reference yet: it takes the price when armed
  return zones.some((zone) => {
    switch (zone.kind) {
      case "above":
        return zone.x <= maxPrice;
      case "below":
        return zone.x >= 1;
      case "inside":
        return zone.low <= maxPrice && zone.high >= 1;
      case "outside":
        return zone.low > 1 || zone.high < maxPrice;
    }
  });
}

function zonesOf(alert: AlertLevels): Zone[] | null {
  const target = alert.targetPrice ?? 0;
  const low = alert.channelLow ?? 0;
  const high = alert.channelHigh ?? 0;
  const move = alert.moveThreshold ?? 0;
  const reference = alert.referencePrice;
  switch (alert.condition) {
    case "CROSSING_UP":
      return [{ kind: "above", x: target }];
    case "CROSSING_DOWN":
      return [{ kind: "below", x: target }];
    case "GREATER_THAN":
      return [{ kind: "above", x: target + 1 }];
    case "LESS_THAN":
      return [{ kind: "below", x: target - 1 }];
    case "CROSSING_EITHER":
      return [
        { kind: "above", x: target },
        { kind: "below", x: target },
      ];
    case "ENTERING_CHANNEL":
    case "INSIDE_CHANNEL":
      return [{ kind: "inside", low, high }];
    case "EXITING_CHANNEL":
    case "OUTSIDE_CHANNEL":
      return [{ kind: "outside", low, high }];
    case "MOVING_UP":
      return reference === null ? null : [{ kind: "above", x: reference + move }];
    case "MOVING_DOWN":
      return reference === null ? null : [{ kind: "below", x: reference - move }];
    case "MOVING_UP_PERCENT":
      return reference === null ? null : [{ kind: "above", x: reference + percentMove(reference, move) }];
    case "MOVING_DOWN_PERCENT":
      return reference === null ? null : [{ kind: "below", x: reference - percentMove(reference, move) }];
  }
}

function inZone(zone: Zone, price: number): boolean {
  switch (zone.kind) {
    case "above":
      return price >= zone.x;
    case "below":
      return price <= zone.x;
    case "inside":
      return price >= zone.low && price <= zone.high;
    case "outside":
      return price < zone.low || price > zone.high;
  }
}

/** The prices at (or beyond) which the zone membership of `price` may change: up (≥) and down (≤). */
function thresholds(zone: Zone, price: number): { up: number | null; down: number | null } {
  switch (zone.kind) {
    case "above":
      return price >= zone.x ? { up: null, down: zone.x - 1 } : { up: zone.x, down: null };
    case "below":
      return price <= zone.x ? { up: zone.x + 1, down: null } : { up: null, down: zone.x };
    case "inside":
    case "outside":
      if (price < zone.low) return { up: zone.low, down: null };
      if (price > zone.high) return { up: null, down: zone.high };
      return { up: zone.high + 1, down: zone.low - 1 };
  }
}

/** The level the log names as the alert's target: the target, the channel edge reached, or the move's price. */
/** The level reached: the target, or the channel edge the price came through (entering) or is past (leaving). */
function targetOf(alert: PriceAlert, leg: Leg, price: number): number | null {
  const zone = leg.zone;
  if (TARGET_CONDITIONS.has(alert.condition)) return alert.targetPrice;
  if (zone.kind === "above" || zone.kind === "below") return Math.max(0, zone.x);
  // Entering: the nearest edge to where it is now named 1.2 for a price that came in through 1.1 to 1.19.
  if (zone.kind === "inside" && leg.outsideAt !== null) return leg.outsideAt < zone.low ? zone.low : zone.high;
  return Math.abs(price - zone.low) <= Math.abs(price - zone.high) ? zone.low : zone.high;
}

// ---- wire views (shared by the routes and the stream events) ----

export const AlertViewSchema = Type.Object({
  id: Type.String(),
  symbol: Type.String(),
  side: Type.Union([Type.Literal("BID"), Type.Literal("ASK")]),
  condition: Type.String({ description: "One of the 13 condition names" }),
  conditionCode: Type.Integer({ description: "The condition's code, 0-12" }),
  targetPrice: Type.Union([Type.Number(), Type.Null()]),
  channelLow: Type.Union([Type.Number(), Type.Null()]),
  channelHigh: Type.Union([Type.Number(), Type.Null()]),
  moveThreshold: Type.Union([Type.Number(), Type.Null()], {
    description: "MOVING_UP/DOWN: a price distance; MOVING_*_PERCENT: a percent (2 decimals)",
  }),
  referencePrice: Type.Union([Type.Number(), Type.Null()]),
  repeating: Type.Boolean(),
  expiration: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  message: Type.String(),
  status: Type.Union([
    Type.Literal("active"),
    Type.Literal("triggered"),
    Type.Literal("disabled"),
    Type.Literal("expired"),
  ]),
  accountId: Type.Union([Type.Integer(), Type.Null()]),
  createdAt: Type.String({ format: "date-time" }),
  updatedAt: Type.String({ format: "date-time" }),
});
export type AlertView = Static<typeof AlertViewSchema>;

export const AlertTable = TableOf(Object.keys(AlertViewSchema.properties) as (keyof AlertView)[], AlertViewSchema);

export const AlertLogViewSchema = Type.Object({
  id: Type.Integer(),
  alertId: Type.String(),
  symbol: Type.String(),
  side: Type.Union([Type.Literal("BID"), Type.Literal("ASK")]),
  condition: Type.String(),
  conditionCode: Type.Integer(),
  target: Type.Union([Type.Number(), Type.Null()]),
  triggeredPrice: Type.Number(),
  triggeredAt: Type.String({ format: "date-time" }),
  message: Type.String({ description: "The alert's message when it triggered, as its priceAlertEvent showed it" }),
});
export type AlertLogView = Static<typeof AlertLogViewSchema>;

export const AlertLogTable = TableOf(
  Object.keys(AlertLogViewSchema.properties) as (keyof AlertLogView)[],
  AlertLogViewSchema,
);

function priceView(points: number | null, instrument: InstrumentSpec | undefined): number | null {
  if (points === null) return null;
  return Number(formatDecimal(points, instrument?.digits ?? 0));
}

export function alertView(alert: PriceAlert, instrument: InstrumentSpec | undefined): AlertView {
  return {
    id: alert.id,
    symbol: alert.symbol,
    side: alert.side,
    condition: alert.condition,
    conditionCode: ALERT_CONDITIONS.indexOf(alert.condition),
    targetPrice: priceView(alert.targetPrice, instrument),
    channelLow: priceView(alert.channelLow, instrument),
    channelHigh: priceView(alert.channelHigh, instrument),
    moveThreshold:
      alert.moveThreshold === null
        ? null
        : PERCENT_CONDITIONS.has(alert.condition)
          ? Number(formatDecimal(alert.moveThreshold, 2))
          : priceView(alert.moveThreshold, instrument),
    referencePrice: priceView(alert.referencePrice, instrument),
    repeating: alert.repeating,
    expiration: optionalTimeToWire(alert.expiration),
    message: alert.message,
    status: alert.status,
    accountId: alert.accountId,
    createdAt: timeToWire(alert.createdAt),
    updatedAt: timeToWire(alert.updatedAt),
  };
}

export function alertLogView(log: AlertLog, instrument: InstrumentSpec | undefined): AlertLogView {
  return {
    id: log.id,
    alertId: log.alertId,
    symbol: log.symbol,
    side: log.side,
    condition: log.condition,
    conditionCode: ALERT_CONDITIONS.indexOf(log.condition),
    target: priceView(log.target, instrument),
    triggeredPrice: priceView(log.triggeredPrice, instrument)!,
    triggeredAt: timeToWire(log.triggeredAt),
    message: log.message,
  };
}

// ---- the engine ----

interface Book {
  readonly symbol: string;
  readonly side: AlertSide;
  readonly up: PriceHeap;
  readonly down: PriceHeap;
  /** The last price of this side the engine saw, or null. */
  last: number | null;
  /** Alerts synced since the last quote: evaluated directly by the next one. */
  readonly fresh: Set<number>;
}

interface Tracked {
  readonly handle: number;
  alert: PriceAlert;
  readonly book: Book;
  /** Null until a price is known for an alert that needs one to start (a MOVING_* without reference). */
  legs: Leg[] | null;
  version: number;
  inUp: boolean;
  inDown: boolean;
  expiryVersion: number;
  inExpiry: boolean;
}

const engines = new WeakMap<Platform, AlertEngine>();

/** How often expirations are swept without quotes. */
const EXPIRY_SWEEP_MS = 1000;

export class AlertEngine {
  /** Alerts looked at (evaluated) by quotes since start: the index's work, for tests and metrics. */
  evaluations = 0;
  /** Triggers since start. */
  triggers = 0;

  private readonly books = new Map<string, Book>();
  private readonly byHandle = new Map<number, Tracked>();
  private readonly byId = new Map<string, Tracked>();
  /** Bumped whenever the user changes an alert: a queued trigger write of an older generation is skipped. */
  private readonly generations = new Map<string, number>();
  /**
   * The engine's own changes of alerts (a once alert triggered or expired, a MOVING_* alert's new reference) that are
   * queued for the store and not yet written, by alert id, with how many of their writes are still queued. A user's
   * change starts from them (`withUnwrittenChanges`): it replaces the stored row, and the queued writes of older
   * generations are skipped, so a change made from the stale row made a fired once alert active again (it fired
   * twice) and put a MOVING_* alert's reference back.
   */
  private readonly unwritten = new Map<string, { patch: PriceAlertPatch; writes: number }>();
  /** Alerts a user's write is under way for: the engine's changes made meanwhile (see writeUserUpdate). */
  private readonly userWrites = new Map<string, { patch: PriceAlertPatch | null }>();
  private readonly expiry: PriceHeap;
  private nextHandle = 1;
  private state: "idle" | "loading" | "running" | "closed" = "idle";
  private readonly pendingWhileLoading = new Map<string, { alert: PriceAlert; rearm: boolean } | null>();
  private timer: NodeJS.Timeout | null = null;
  private readonly notifications: NotificationService;

  /** The one engine of a platform (routes and server.ts share it). */
  static for(platform: Platform): AlertEngine {
    let engine = engines.get(platform);
    if (!engine) engines.set(platform, (engine = new AlertEngine(platform)));
    return engine;
  }

  private constructor(private readonly platform: Platform) {
    this.notifications = NotificationService.for(platform);
    this.expiry = new PriceHeap("MIN", (handle, version) => this.byHandle.get(handle)?.expiryVersion === version);
  }

  /** Triggers put off because the write queue was full (each fires at a later quote). */
  deferredTriggers = 0;

  /** Active alerts in the index. */
  get trackedCount(): number {
    return this.byId.size;
  }

  /** Loads every active alert of every instrument, then evaluates each quote. */
  async start(): Promise<void> {
    if (this.state !== "idle") return;
    this.state = "loading";
    for (const symbol of this.platform.instruments.keys()) {
      // By pages: a start took the first 10,000 of a symbol only, and the others' alerts never fired again.
      for (let afterId: string | null = null; ;) {
        const alerts = await this.platform.store.listActiveAlertsBySymbol(symbol, afterId);
        if (alerts.length === 0) break;
        for (const alert of alerts) if (!this.pendingWhileLoading.has(alert.id)) this.track(alert, false);
        afterId = alerts.at(-1)!.id;
      }
    }
    this.state = "running";
    for (const [id, change] of this.pendingWhileLoading) {
      if (change) this.track(change.alert, change.rearm);
      else this.untrack(id);
    }
    this.pendingWhileLoading.clear();
    this.platform.onQuote((quote) => this.onQuote(quote));
    this.timer = setInterval(() => this.sweepExpired(this.platform.clock.now()), EXPIRY_SWEEP_MS);
    this.timer.unref();
    this.platform.onClose(() => this.close());
  }

  close(): void {
    this.state = "closed";
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * Writes a user's change of the alert (`write`, its update or delete in the store); queued trigger writes then skip
   * theirs. The change was made from `withUnwrittenChanges`, so it carries the engine's unwritten changes, or replaces
   * them. If the write fails, the engine's changes it took over are queued for the store again, merged with any the
   * engine made since, so a once alert that fired is not left active in the store.
   */
  async writeUserChange<T>(alert: Pick<PriceAlert, "id" | "userId">, write: () => Promise<T>): Promise<T> {
    return (await this.writeWatched(alert, write)).result;
  }

  /**
   * Writes a user's update of the alert (`patch`, made from the row as read with `withUnwrittenChanges`). The engine's
   * own changes made while it was being written (the alert fired or expired, a MOVING_* alert took a new reference) are
   * applied after it, but for the fields the user set (`userSet`): the trigger came first, then the user's change.
   * Before, the update put a once alert that fired meanwhile back in the index as active, from the row read before the
   * trigger, and it fired a second time (found by the audit of alerts of 7 December). The alert is then indexed as it
   * stands (`sync`); null when it was deleted meanwhile.
   */
  async writeUserUpdate(
    alert: Pick<PriceAlert, "id" | "userId">,
    patch: PriceAlertPatch,
    userSet: ReadonlySet<keyof PriceAlertPatch>,
    now: number,
    /** The change sets the alert active (or changes its side): it starts afresh when indexed (see `sync`). */
    rearm: boolean,
  ): Promise<PriceAlert | null> {
    const store = this.platform.store;
    let { result: updated, during } = await this.writeWatched(alert, () =>
      store.updateAlert(alert.userId, alert.id, patch, now),
    );
    const engineChangesOf = (changes: PriceAlertPatch | null): PriceAlertPatch | null => {
      const kept = Object.entries(changes ?? {}).filter(([field]) => !userSet.has(field as keyof PriceAlertPatch));
      return kept.length === 0 ? null : (Object.fromEntries(kept) as PriceAlertPatch);
    };
    // Each round writes what the engine changed during the one before; a repeating alert may fire again meanwhile.
    let engineChanges = engineChangesOf(during);
    for (let round = 0; updated && engineChanges && round < MAX_USER_UPDATE_ROUNDS; round += 1) {
      const changes: PriceAlertPatch = engineChanges;
      ({ result: updated, during } = await this.writeWatched(alert, () =>
        store.updateAlert(alert.userId, alert.id, changes, now),
      ));
      engineChanges = engineChangesOf(during);
    }
    if (!updated) return null;
    // Indexed as it now stands; changes made during the last round (past the bound) are written as the engine's.
    const result = engineChanges ? { ...updated, ...engineChanges } : updated;
    this.sync(result, rearm);
    if (engineChanges) this.persist(result, engineChanges);
    return result;
  }

  /** Runs a user's write of the alert (see writeUserChange) and returns the engine's own changes made meanwhile. */
  private async writeWatched<T>(
    alert: Pick<PriceAlert, "id" | "userId">,
    write: () => Promise<T>,
  ): Promise<{ result: T; during: PriceAlertPatch | null }> {
    const taken = this.unwritten.get(alert.id)?.patch;
    this.nextGeneration(alert.id);
    const watch: { patch: PriceAlertPatch | null } = { patch: null };
    this.userWrites.set(alert.id, watch);
    try {
      return { result: await write(), during: watch.patch };
    } catch (error) {
      if (taken) this.persist(alert, { ...taken, ...this.unwritten.get(alert.id)?.patch });
      throw error;
    } finally {
      if (this.userWrites.get(alert.id) === watch) this.userWrites.delete(alert.id);
    }
  }

  /** A user's change of the alert is written: queued engine writes of older generations skip their change. */
  private nextGeneration(alertId: string): void {
    this.generations.set(alertId, (this.generations.get(alertId) ?? 0) + 1);
    this.unwritten.delete(alertId);
  }

  /**
   * The engine's changes of the alert still queued for the store, to take before reading the alert from the store
   * and give to `withUnwrittenChanges` after: a write that lands while the read runs may or may not be in what the
   * read returns (PostgreSQL, another connection), and it is no longer among the unwritten ones once it has landed.
   */
  unwrittenChanges(alertId: string): PriceAlertPatch | null {
    return this.unwritten.get(alertId)?.patch ?? null;
  }

  /**
   * The alert as the engine knows it: the stored row with the engine's changes queued for the store when the read
   * began (`before`, from `unwrittenChanges`) and those still queued now.
   */
  withUnwrittenChanges(alert: PriceAlert, before: PriceAlertPatch | null): PriceAlert {
    const now = this.unwritten.get(alert.id)?.patch;
    return before || now ? { ...alert, ...before, ...now } : alert;
  }

  /**
   * The alert as stored after a user's change: indexed when active, dropped from the index otherwise. `rearm`:
   * created, or set active by this change (it starts afresh); otherwise it keeps whether it was armed.
   */
  sync(alert: PriceAlert, rearm: boolean): void {
    this.nextGeneration(alert.id);
    if (this.state === "loading") this.pendingWhileLoading.set(alert.id, { alert, rearm });
    else if (this.state === "running") this.track(alert, rearm);
  }

  /** The alert was deleted. */
  forget(alertId: string): void {
    this.generations.delete(alertId);
    this.unwritten.delete(alertId);
    if (this.state === "loading") this.pendingWhileLoading.set(alertId, null);
    else if (this.state === "running") this.untrack(alertId);
  }

  /** The current price of a symbol's side: the last quote seen, else the engine's, else null. */
  currentPrice(symbol: string, side: AlertSide): number | null {
    const book = this.books.get(`${symbol}:${side}`);
    if (book?.last != null) return book.last;
    try {
      const quote = this.platform.engine.quote(symbol);
      return quote ? (side === "BID" ? quote.bid : quote.ask) : null;
    } catch {
      return null;
    }
  }

  /** Expires every alert whose expiration is at or before `now`. */
  sweepExpired(now: number): void {
    const due: number[] = [];
    this.expiry.popReached(now, due);
    for (const handle of due) {
      const tracked = this.byHandle.get(handle);
      if (!tracked) continue;
      tracked.inExpiry = false;
      this.remove(tracked);
      this.persist(tracked.alert, { status: "expired" });
    }
  }

  private book(symbol: string, side: AlertSide): Book {
    const key = `${symbol}:${side}`;
    let book = this.books.get(key);
    if (!book) {
      const live = (handle: number, version: number) => this.byHandle.get(handle)?.version === version;
      book = {
        symbol,
        side,
        up: new PriceHeap("MIN", live),
        down: new PriceHeap("MAX", live),
        last: null,
        fresh: new Set(),
      };
      this.books.set(key, book);
    }
    return book;
  }

  private track(alert: PriceAlert, rearm: boolean): void {
    const previous = this.byId.get(alert.id);
    this.untrack(alert.id);
    if (alert.status !== "active") return;
    const book = this.book(alert.symbol, alert.side);
    const tracked: Tracked = {
      handle: this.nextHandle++,
      alert,
      book,
      legs: null,
      version: 0,
      inUp: false,
      inDown: false,
      expiryVersion: 0,
      inExpiry: false,
    };
    this.byHandle.set(tracked.handle, tracked);
    this.byId.set(alert.id, tracked);
    const price = this.currentPrice(alert.symbol, alert.side);
    const zones = zonesOf(alert);
    if (!rearm && previous?.legs && previous.book === book && sameZones(previous.legs, zones))
      tracked.legs = previous.legs.map((leg) => ({ ...leg }));
    else if (!rearm && alert.armedLegs !== null && zones !== null && alert.armedLegs >> zones.length === 0)
      // As the store kept them (a restart): which legs are armed; where the price was outside is not kept.
      tracked.legs = zones.map((zone, index) => ({
        zone,
        armed: (alert.armedLegs! & (1 << index)) !== 0,
        outsideAt: null,
      }));
    else if (price !== null) this.initialise(tracked, price);
    book.fresh.add(tracked.handle);
    if (alert.expiration !== null) {
      tracked.inExpiry = true;
      this.expiry.push(alert.expiration, tracked.handle, tracked.expiryVersion);
    }
  }

  private untrack(alertId: string): void {
    const tracked = this.byId.get(alertId);
    if (tracked) this.remove(tracked);
  }

  private remove(tracked: Tracked): void {
    this.unindex(tracked);
    tracked.book.fresh.delete(tracked.handle);
    if (tracked.inExpiry) this.expiry.noteStale();
    tracked.inExpiry = false;
    tracked.expiryVersion += 1;
    this.byHandle.delete(tracked.handle);
    if (this.byId.get(tracked.alert.id) === tracked) this.byId.delete(tracked.alert.id);
  }

  /** Makes the alert's heap entries stale. */
  private unindex(tracked: Tracked): void {
    tracked.version += 1;
    if (tracked.inUp) tracked.book.up.noteStale();
    if (tracked.inDown) tracked.book.down.noteStale();
    tracked.inUp = false;
    tracked.inDown = false;
  }

  /** Arms the legs from the price the alert starts at; a MOVING_* without reference takes this price. */
  private initialise(tracked: Tracked, price: number): void {
    if (isMovingCondition(tracked.alert.condition) && tracked.alert.referencePrice === null) {
      // updateAlert makes the store forget the arming, which saveArming below writes again.
      tracked.alert = { ...tracked.alert, referencePrice: price, armedLegs: null };
      this.persist(tracked.alert, { referencePrice: price });
    }
    const zones = zonesOf(tracked.alert) ?? [];
    const crossing = CROSSING_CONDITIONS.has(tracked.alert.condition);
    tracked.legs = zones.map((zone) => {
      const inside = inZone(zone, price);
      return { zone, armed: !crossing || !inside, outsideAt: inside ? null : price };
    });
    this.saveArming(tracked);
  }

  /** Writes which legs are armed when that differs from what the store has (`tracked.alert.armedLegs`). */
  private saveArming(tracked: Tracked): void {
    const armedLegs = (tracked.legs ?? []).reduce((bits, leg, index) => (leg.armed ? bits | (1 << index) : bits), 0);
    if (tracked.legs === null || tracked.alert.armedLegs === armedLegs) return;
    const alert = (tracked.alert = { ...tracked.alert, armedLegs });
    this.writeUnlessChanged(alert, () => this.platform.store.saveAlertArming(alert.userId, alert.id, armedLegs));
  }

  /** Indexes the alert at the thresholds around `price`. */
  private index(tracked: Tracked, price: number): void {
    this.unindex(tracked);
    let up: number | null = null;
    let down: number | null = null;
    for (const leg of tracked.legs ?? []) {
      const next = thresholds(leg.zone, price);
      if (next.up !== null) up = up === null ? next.up : Math.min(up, next.up);
      if (next.down !== null) down = down === null ? next.down : Math.max(down, next.down);
    }
    if (up !== null) {
      tracked.book.up.push(up, tracked.handle, tracked.version);
      tracked.inUp = true;
    }
    if (down !== null) {
      tracked.book.down.push(down, tracked.handle, tracked.version);
      tracked.inDown = true;
    }
  }

  private onQuote(quote: AcceptedQuote): void {
    if (this.state !== "running") return;
    if (this.expiry.size > 0) this.sweepExpired(quote.time);
    this.onPrice(this.books.get(`${quote.symbol}:BID`), quote.bid, quote.time);
    this.onPrice(this.books.get(`${quote.symbol}:ASK`), quote.ask, quote.time);
  }

  private onPrice(book: Book | undefined, price: number, time: number): void {
    if (!book) return;
    book.last = price;
    const touched: number[] = [];
    if (book.fresh.size > 0) {
      touched.push(...book.fresh);
      book.fresh.clear();
    }
    const fromUp = touched.length;
    book.up.popReached(price, touched);
    const fromDown = touched.length;
    book.down.popReached(price, touched);
    for (let index = 0; index < touched.length; index++) {
      const tracked = this.byHandle.get(touched[index]!);
      if (!tracked) continue;
      if (index >= fromUp && index < fromDown) tracked.inUp = false;
      else if (index >= fromDown) tracked.inDown = false;
    }
    const seen = new Set<number>();
    for (const handle of touched) {
      if (seen.has(handle)) continue;
      seen.add(handle);
      const tracked = this.byHandle.get(handle);
      if (!tracked) continue;
      this.evaluations += 1;
      this.evaluate(tracked, price, time);
    }
  }

  private evaluate(tracked: Tracked, price: number, time: number): void {
    if (tracked.legs === null) this.initialise(tracked, price);
    let fired: Leg | null = null;
    const disarmed: Leg[] = [];
    for (const leg of tracked.legs!) {
      const inside = inZone(leg.zone, price);
      if (!inside) leg.outsideAt = price;
      if (inside && leg.armed) {
        leg.armed = false;
        disarmed.push(leg);
        fired ??= leg;
      } else if (!inside && !leg.armed) {
        leg.armed = true;
      }
    }
    // A trigger the write queue cannot take (other users' alerts filled it) stays armed and fires at a later quote;
    // it was dropped, and the alert, gone from the index, stayed active in the store and never fired again.
    if (fired && this.notifications.queue.full) {
      for (const leg of disarmed) leg.armed = true;
      // Looked at again at the next price whatever it crosses, as a new alert is.
      tracked.book.fresh.add(tracked.handle);
      if (this.deferredTriggers % 1000 === 0)
        this.platform.log.warn(
          `alerts: the write queue is full; triggers wait for a later quote (${this.deferredTriggers + 1} so far)`,
        );
      this.deferredTriggers += 1;
      fired = null;
    }
    if (fired) this.trigger(tracked, fired, price, time);
    if (this.byHandle.get(tracked.handle) !== tracked) return;
    this.saveArming(tracked);
    this.index(tracked, price);
  }

  private trigger(tracked: Tracked, leg: Leg, price: number, time: number): void {
    this.triggers += 1;
    const alert = tracked.alert;
    const log: NewAlertLog = {
      alertId: alert.id,
      userId: alert.userId,
      symbol: alert.symbol,
      side: alert.side,
      condition: alert.condition,
      target: targetOf(alert, leg, price),
      triggeredPrice: price,
      triggeredAt: time,
      message: alert.message,
    };
    let patch: PriceAlertPatch | null = null;
    let after: PriceAlert = alert;
    if (!alert.repeating) {
      this.remove(tracked);
      patch = { status: "triggered" };
      after = { ...alert, status: "triggered", updatedAt: time };
    } else if (isMovingCondition(alert.condition)) {
      // The next move is measured from here. The store forgets the arming with the old reference (updateAlert).
      tracked.alert = after = { ...alert, referencePrice: price, armedLegs: null };
      tracked.legs = (zonesOf(after) ?? []).map((zone) => ({ zone, armed: true, outsideAt: price }));
      patch = { referencePrice: price };
    }
    const generation = this.generations.get(alert.id);
    const instrument = this.platform.instruments.get(alert.symbol);
    const notification: NewNotification = {
      userId: alert.userId,
      accountId: alert.accountId,
      kind: "PRICE_ALERT",
      alertId: alert.id,
      level: "info",
      title: `Price alert: ${alert.symbol} ${alert.side.toLowerCase()} ${describe(alert, instrument)}`,
      body:
        `${alert.symbol} ${alert.side.toLowerCase()} at ${instrument ? formatPrice(price, instrument) : price}` +
        (alert.message ? `: ${alert.message}` : ""),
      createdAt: time,
    };
    // The trigger's own key: a try made again after its outcome was lost records it once. Random, so no trigger of
    // another run can share it (a count restarts at 0, and quote times can repeat across a restart).
    const key = `${alert.id}:${randomUUID()}`;
    const written = patch ? this.noteUnwritten(alert.id, patch) : null;
    const queued = this.notifications.queue.push(async () => {
      // The log, the alert's change and the notification in one transaction; the change is left out if the
      // user changed the alert since (checked at each try).
      let recorded: Awaited<ReturnType<PlatformStore["recordAlertTrigger"]>>;
      try {
        recorded = await this.notifications.untilStored(() =>
          this.platform.store.recordAlertTrigger({
            key,
            log,
            patch: patch && this.generations.get(alert.id) === generation ? patch : null,
            now: time,
            notification,
          }),
        );
      } finally {
        written?.();
      }
      const stored = recorded.log;
      const view = alertLogView(stored, instrument);
      if (recorded.notification) await this.notifications.publish([recorded.notification]);
      this.platform.bus.publish(BusTopics.user(alert.userId), {
        type: "priceAlertEvent",
        payload: {
          ...view,
          message: alert.message,
          repeating: alert.repeating,
          status: after.status,
          accountId: alert.accountId,
          // API.md: seed 000's streams carry `seq`; here the alert log entry's id.
          seq: stored.id,
        },
        seq: stored.id,
      });
    });
    // Checked before the trigger (see evaluate), so this does not happen; were it refused, nothing would be unwritten.
    if (!queued) written?.();
  }

  /** Writes an engine-made change of the alert, unless the user changed the alert since. */
  private persist(alert: Pick<PriceAlert, "id" | "userId">, patch: PriceAlertPatch): void {
    const written = this.noteUnwritten(alert.id, patch);
    this.writeUnlessChanged(
      alert,
      () => this.platform.store.updateAlert(alert.userId, alert.id, patch, this.platform.clock.now()),
      written,
    );
  }

  /** Records an engine-made change queued for the store; the function it returns says the write is done. */
  private noteUnwritten(alertId: string, patch: PriceAlertPatch): () => void {
    const watch = this.userWrites.get(alertId);
    if (watch) watch.patch = { ...watch.patch, ...patch };
    const entry = this.unwritten.get(alertId) ?? { patch: {}, writes: 0 };
    entry.patch = { ...entry.patch, ...patch };
    entry.writes += 1;
    this.unwritten.set(alertId, entry);
    return () => {
      entry.writes -= 1;
      if (entry.writes === 0 && this.unwritten.get(alertId) === entry) this.unwritten.delete(alertId);
    };
  }

  /** Queues an engine-made write of the alert, skipped if the user changes the alert before it runs. */
  private writeUnlessChanged(alert: Pick<PriceAlert, "id">, write: () => Promise<unknown>, written?: () => void): void {
    const generation = this.generations.get(alert.id);
    const queued = this.notifications.queue.push(async () => {
      try {
        await this.notifications.untilStored(async () => {
          if (this.generations.get(alert.id) !== generation) return;
          await write();
        });
      } finally {
        written?.();
      }
    });
    // A full queue drops the write (and counts it): it is not waiting to be written either.
    if (!queued) written?.();
  }
}

function describe(alert: PriceAlert, instrument: InstrumentSpec | undefined): string {
  const price = (points: number | null) =>
    points === null ? "" : instrument ? formatPrice(points, instrument) : String(points);
  const words = alert.condition.toLowerCase().replaceAll("_", " ");
  if (TARGET_CONDITIONS.has(alert.condition)) return `${words} ${price(alert.targetPrice)}`;
  if (CHANNEL_CONDITIONS.has(alert.condition)) return `${words} ${price(alert.channelLow)}-${price(alert.channelHigh)}`;
  if (PERCENT_CONDITIONS.has(alert.condition))
    return `${words.replace(" percent", "")} ${formatDecimal(alert.moveThreshold ?? 0, 2)}%`;
  return `${words} ${price(alert.moveThreshold)}`;
}
