/**
 * The rollover calendar: a clock time in UTC or in New York (FX's 17:00 close), daylight saving by the US rule
 * (second Sunday of March to first Sunday of November, 02:00 local), and a rollover time changed between starts.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  TIME_ZONES,
  TradingEngine,
  defaultEngineConfig,
  lastRolloverAtOrBefore,
  nextRolloverAfter,
  rolloverFollowing,
  tradingDayOf,
  tradingDayWeekday,
  zoneOffsetMs,
  type EngineEvent,
  type RolloverTime,
} from "../src/index.ts";
import { Scenario, TUESDAY_NOON, lots, points } from "./helpers.ts";

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
const NEW_YORK_FIVE_PM: RolloverTime = { minuteOfDay: 17 * 60, timeZone: "America/New_York" };
const UTC_TEN_PM: RolloverTime = { minuteOfDay: 22 * 60, timeZone: "UTC" };

function rollovers(events: readonly EngineEvent[]) {
  return events.filter((event): event is Extract<EngineEvent, { type: "Rollover" }> => event.type === "Rollover");
}

describe("the rollover calendar", () => {
  it("17:00 New York is 22:00 UTC in winter and 21:00 UTC under daylight saving time", () => {
    expect(new Date(nextRolloverAfter(NEW_YORK_FIVE_PM, Date.UTC(2026, 0, 13, 12))).toISOString()).toBe(
      "2026-01-13T22:00:00.000Z",
    );
    expect(new Date(nextRolloverAfter(NEW_YORK_FIVE_PM, Date.UTC(2026, 5, 2, 12))).toISOString()).toBe(
      "2026-06-02T21:00:00.000Z",
    );
  });

  it("daylight saving starts on the second Sunday of March and ends on the first Sunday of November, at 02:00 local", () => {
    // 2026: 8 March and 1 November. 02:00 EST is 07:00 UTC; 02:00 EDT is 06:00 UTC.
    expect(zoneOffsetMs("America/New_York", Date.UTC(2026, 2, 8, 6, 59))).toBe(-5 * HOUR_MS);
    expect(zoneOffsetMs("America/New_York", Date.UTC(2026, 2, 8, 7))).toBe(-4 * HOUR_MS);
    expect(zoneOffsetMs("America/New_York", Date.UTC(2026, 10, 1, 5, 59))).toBe(-4 * HOUR_MS);
    expect(zoneOffsetMs("America/New_York", Date.UTC(2026, 10, 1, 6))).toBe(-5 * HOUR_MS);
    // 2027: 14 March and 7 November.
    expect(zoneOffsetMs("America/New_York", Date.UTC(2027, 2, 14, 7))).toBe(-4 * HOUR_MS);
    expect(zoneOffsetMs("America/New_York", Date.UTC(2027, 2, 13, 12))).toBe(-5 * HOUR_MS);
    expect(zoneOffsetMs("America/New_York", Date.UTC(2027, 10, 7, 6))).toBe(-5 * HOUR_MS);
    expect(zoneOffsetMs("UTC", Date.UTC(2027, 5, 1))).toBe(0);
  });

  it("finds the change dates of any year as the calendar has them, leap years and centuries included", () => {
    for (let year = 1970; year <= 2400; year += 1) {
      let start = Date.UTC(year, 2, 8);
      while (new Date(start).getUTCDay() !== 0) start += DAY_MS;
      let end = Date.UTC(year, 10, 1);
      while (new Date(end).getUTCDay() !== 0) end += DAY_MS;
      expect(zoneOffsetMs("America/New_York", start + 7 * HOUR_MS - 1), `${year}`).toBe(-5 * HOUR_MS);
      expect(zoneOffsetMs("America/New_York", start + 7 * HOUR_MS), `${year}`).toBe(-4 * HOUR_MS);
      expect(zoneOffsetMs("America/New_York", end + 6 * HOUR_MS - 1), `${year}`).toBe(-4 * HOUR_MS);
      expect(zoneOffsetMs("America/New_York", end + 6 * HOUR_MS), `${year}`).toBe(-5 * HOUR_MS);
      // The first and last instants of the year are in winter time.
      expect(zoneOffsetMs("America/New_York", Date.UTC(year, 0, 1)), `${year}`).toBe(-5 * HOUR_MS);
      expect(zoneOffsetMs("America/New_York", Date.UTC(year + 1, 0, 1) - 1), `${year}`).toBe(-5 * HOUR_MS);
    }
  });

  it("the rollovers around the spring change are 23 hours apart, around the autumn change 25", () => {
    // Friday 6 March 2026 22:00 UTC → Monday 9 March 21:00 UTC: 71 hours over the weekend of the change.
    const friday = Date.UTC(2026, 2, 6, 22);
    expect(rolloverFollowing(NEW_YORK_FIVE_PM, friday)).toBe(Date.UTC(2026, 2, 7, 22));
    expect(rolloverFollowing(NEW_YORK_FIVE_PM, Date.UTC(2026, 2, 7, 22))).toBe(Date.UTC(2026, 2, 8, 21));
    expect(rolloverFollowing(NEW_YORK_FIVE_PM, Date.UTC(2026, 2, 8, 21))).toBe(Date.UTC(2026, 2, 9, 21));
    expect(rolloverFollowing(NEW_YORK_FIVE_PM, Date.UTC(2026, 9, 31, 21))).toBe(Date.UTC(2026, 10, 1, 22));
  });

  it("a local time the spring change skips is taken an hour later; one the autumn change repeats, the first time", () => {
    const twoThirty: RolloverTime = { minuteOfDay: 2 * 60 + 30, timeZone: "America/New_York" };
    // 8 March 2026, 02:30 does not exist in New York: 03:30 EDT, 07:30 UTC.
    expect(nextRolloverAfter(twoThirty, Date.UTC(2026, 2, 8, 0))).toBe(Date.UTC(2026, 2, 8, 7, 30));
    const oneThirty: RolloverTime = { minuteOfDay: 90, timeZone: "America/New_York" };
    // 1 November 2026, 01:30 happens twice: the first is 01:30 EDT, 05:30 UTC.
    expect(nextRolloverAfter(oneThirty, Date.UTC(2026, 10, 1, 0))).toBe(Date.UTC(2026, 10, 1, 5, 30));
  });

  it("the trading day a rollover ends is the local day before it, whatever its UTC date", () => {
    const newYorkMidnight: RolloverTime = { minuteOfDay: 0, timeZone: "America/New_York" };
    // Wednesday 3 June 2026 00:00 New York is 04:00 UTC on Wednesday: it ends Tuesday (2).
    const instant = nextRolloverAfter(newYorkMidnight, Date.UTC(2026, 5, 2, 12));
    expect(instant).toBe(Date.UTC(2026, 5, 3, 4));
    expect(tradingDayWeekday(newYorkMidnight, instant)).toBe(2);
    expect(tradingDayWeekday(UTC_TEN_PM, Date.UTC(2026, 5, 3, 22))).toBe(3);
  });

  it("as a property: the next rollover after a time is the smallest rollover instant after it, the last one at or before it the largest, and rollovers are 23 to 25 hours apart", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: Date.UTC(2020, 0, 1), max: Date.UTC(2040, 0, 1) }),
        fc.integer({ min: 0, max: 24 * 60 - 1 }),
        // Every zone a rollover time may be given in (Sydney's summer time spans the new year, as no other's does).
        fc.constantFrom(...TIME_ZONES),
        (time, minuteOfDay, timeZone) => {
          const rollover: RolloverTime = { minuteOfDay, timeZone };
          const next = nextRolloverAfter(rollover, time);
          const last = lastRolloverAtOrBefore(rollover, time);
          expect(next).toBeGreaterThan(time);
          expect(last).toBeLessThanOrEqual(time);
          // Nothing in between: the rollover after the last one is the next one.
          expect(nextRolloverAfter(rollover, last)).toBe(next);
          expect(lastRolloverAtOrBefore(rollover, next - 1)).toBe(last);
          expect(rolloverFollowing(rollover, last)).toBe(next);
          // Each ends the trading day after the one before.
          expect(tradingDayOf(rollover, next) - tradingDayOf(rollover, last)).toBe(DAY_MS);
          expect(next - last).toBeGreaterThanOrEqual(23 * HOUR_MS);
          expect(next - last).toBeLessThanOrEqual(25 * HOUR_MS);
          // The local clock reads the minute at both.
          for (const instant of [next, last]) {
            const local = instant + zoneOffsetMs(timeZone, instant);
            const minute = Math.floor((((local % DAY_MS) + DAY_MS) % DAY_MS) / 60_000);
            // Only a minute the spring change skips is an hour off.
            if (minute !== minuteOfDay) expect(minute - minuteOfDay).toBe(60);
          }
        },
      ),
      { numRuns: 2_000 },
    );
  });
});

describe("the engine's rollover at 17:00 New York", () => {
  it("charges a EURUSD position's swap at 21:00 UTC in June and DAY orders expire then", () => {
    const s = new Scenario(defaultEngineConfig({ rollover: NEW_YORK_FIVE_PM }));
    const account = s.account("USD", "10000");
    s.quote("EURUSD", "1.08430", "1.08440");
    const opened = s.buy(account, "EURUSD", "1");
    const day = s.ok(
      {
        kind: "placeOrder",
        accountId: account,
        symbol: "EURUSD",
        side: "BUY",
        type: "LIMIT",
        volume: 100,
        price: 100_000,
        timeInForce: "DAY",
      },
      TUESDAY_NOON,
    );
    expect(s.engine.nextDueTime()).toBe(TUESDAY_NOON + 9 * HOUR_MS);
    expect(rollovers(s.ok({ kind: "advanceTime" }, TUESDAY_NOON + 9 * HOUR_MS - 1).events)).toEqual([]);
    const events = s.ok({ kind: "advanceTime" }, TUESDAY_NOON + 9 * HOUR_MS).events;
    const [rollover] = rollovers(events);
    expect(rollover!.rolloverTime).toBe(TUESDAY_NOON + 9 * HOUR_MS);
    expect(rollover!.charges.map((charge) => charge.positionId)).toEqual([opened.positionId]);
    expect(events.some((event) => event.type === "OrderStatusChanged" && event.orderId === day.orderId)).toBe(true);
  });
});

describe("a rollover time changed between starts", () => {
  /** A position held over Tuesday 22:00 UTC's rollover, then the engine restarted from its state under `rollover`. */
  function restartedUnder(rollover: RolloverTime) {
    const s = new Scenario();
    const account = s.account("USD", "10000");
    s.quote("EURUSD", "1.08430", "1.08440");
    s.buy(account, "EURUSD", "1");
    expect(rollovers(s.ok({ kind: "advanceTime" }, TUESDAY_NOON + 10 * HOUR_MS).events)).toHaveLength(1);
    return TradingEngine.fromSnapshot(defaultEngineConfig({ rollover }), s.engine.snapshot());
  }

  it("moved an hour later, the next rollover is the next day's at the new time: no day is charged twice", () => {
    const engine = restartedUnder({ minuteOfDay: 23 * 60, timeZone: "UTC" });
    expect(engine.nextDueTime()).toBe(TUESDAY_NOON + 35 * HOUR_MS);
    const result = engine.execute({ kind: "advanceTime", time: TUESDAY_NOON + 11 * HOUR_MS });
    expect(result.ok && rollovers(result.events)).toEqual([]);
  });

  it("moved to 17:00 New York (21:00 UTC in June), the next rollover is Wednesday's at 21:00: no day is skipped", () => {
    const engine = restartedUnder(NEW_YORK_FIVE_PM);
    expect(engine.nextDueTime()).toBe(TUESDAY_NOON + 33 * HOUR_MS);
  });

  /** Tuesday noon under 22:00 UTC: an account and a DAY buy limit of EURUSD working. */
  function withDayOrder() {
    const s = new Scenario();
    const account = s.account("USD", "10000");
    s.quote("EURUSD", "1.08430", "1.08440");
    const placed = s.ok({
      kind: "placeOrder",
      accountId: account,
      symbol: "EURUSD",
      side: "BUY",
      type: "LIMIT",
      volume: lots("EURUSD", "1"),
      price: points("EURUSD", "1.08000"),
      timeInForce: "DAY",
    });
    return { s, account, placed };
  }

  // The audit of time of 7 December (ninth session): a DAY order kept the expiry the old rule gave it.
  it("a DAY order placed under 22:00 UTC expires at the next rollover after a restart at 17:00 New York", () => {
    const { s, placed } = withDayOrder();
    expect(s.engine.state.orders.get(placed.orderId as number)?.expiration).toBe(TUESDAY_NOON + 10 * HOUR_MS);
    const engine = TradingEngine.fromSnapshot(defaultEngineConfig({ rollover: NEW_YORK_FIVE_PM }), s.engine.snapshot());
    expect(engine.nextDueTime()).toBe(TUESDAY_NOON + 9 * HOUR_MS);
    const result = engine.execute({ kind: "advanceTime", time: TUESDAY_NOON + 9 * HOUR_MS });
    expect(result.ok && result.events.map((event) => [event.type, event.time])).toEqual([
      ["OrderStatusChanged", TUESDAY_NOON + 9 * HOUR_MS],
      ["Rollover", TUESDAY_NOON + 9 * HOUR_MS],
    ]);
    expect(engine.state.orders.has(placed.orderId as number)).toBe(false);
    // Replayed, the same state.
    expect(engine.stateHash()).toBe(
      TradingEngine.replay(defaultEngineConfig({ rollover: NEW_YORK_FIVE_PM }), [
        ...s.events,
        ...(result.ok ? result.events : []),
      ]).stateHash(),
    );
  });

  // The review of 7 December (ninth session): a server upgraded to the 17:00 New York default between 21:00 and 22:00
  // UTC in June met a rollover (21:00) before events the old rule (22:00) had journaled, and stamped it, and the DAY
  // orders it expired, at that past instant.
  it("moved earlier past events already journaled, its events are stamped no earlier than them", () => {
    const { s, account, placed } = withDayOrder();
    const modifiedAt = TUESDAY_NOON + 9.5 * HOUR_MS;
    s.ok(
      {
        kind: "modifyOrder",
        accountId: account,
        orderId: placed.orderId as number,
        price: points("EURUSD", "1.07990"),
      },
      modifiedAt,
    );
    const engine = TradingEngine.fromSnapshot(defaultEngineConfig({ rollover: NEW_YORK_FIVE_PM }), s.engine.snapshot());
    engine.resumeClock(modifiedAt);
    const result = engine.execute({ kind: "advanceTime", time: TUESDAY_NOON + 9.75 * HOUR_MS });
    expect(result.ok && result.events.map((event) => [event.type, event.time])).toEqual([
      ["OrderStatusChanged", modifiedAt],
      ["Rollover", modifiedAt],
    ]);
    // The calendar's instant is kept: the next rollover is Wednesday's 17:00 New York.
    expect(result.ok && result.events[1]).toMatchObject({ rolloverTime: TUESDAY_NOON + 9 * HOUR_MS });
    expect(engine.nextDueTime()).toBe(TUESDAY_NOON + 33 * HOUR_MS);
  });

  // The audit of time of 7 December (ninth session): the next rollover was the new rule's first instant at least 12 hours
  // after the last, while the day it charged was named by the local date 12 hours before it. Moved to near midday, the
  // two disagreed.
  it("moved from 22:00 to 11:00 UTC after Wednesday's rollover, Wednesday's triple swap is not charged a second time", () => {
    const s = new Scenario(defaultEngineConfig(), TUESDAY_NOON + 24 * HOUR_MS);
    const account = s.account("USD", "10000");
    s.quote("EURUSD", "1.08430", "1.08440");
    const opened = s.buy(account, "EURUSD", "1");
    const wednesday = rollovers(s.ok({ kind: "advanceTime" }, TUESDAY_NOON + 34 * HOUR_MS).events);
    expect(wednesday.map((rollover) => rollover.multiplier)).toEqual([3]);
    const engine = TradingEngine.fromSnapshot(
      defaultEngineConfig({ rollover: { minuteOfDay: 11 * 60, timeZone: "UTC" } }),
      s.engine.snapshot(),
    );
    // Thursday 11:00 UTC would end Wednesday's trading day again (23:00 Wednesday, 12 hours before it): Friday's
    // 11:00 ends Thursday's.
    expect(engine.nextDueTime()).toBe(TUESDAY_NOON + 71 * HOUR_MS);
    const result = engine.execute({ kind: "advanceTime", time: TUESDAY_NOON + 72 * HOUR_MS });
    const charged = result.ok ? rollovers(result.events) : [];
    expect(charged.map((rollover) => rollover.multiplier)).toEqual([1]);
    expect(charged.flatMap((rollover) => rollover.charges).map((charge) => charge.positionId)).toEqual([
      opened.positionId,
    ]);
  });

  it("moved from 11:00 to 22:00 UTC, no trading day goes uncharged", () => {
    const s = new Scenario(
      defaultEngineConfig({ rollover: { minuteOfDay: 11 * 60, timeZone: "UTC" } }),
      TUESDAY_NOON - 24 * HOUR_MS,
    );
    const account = s.account("USD", "10000");
    s.quote("EURUSD", "1.08430", "1.08440");
    s.buy(account, "EURUSD", "1");
    // Tuesday 11:00 UTC ends Monday's trading day.
    expect(rollovers(s.ok({ kind: "advanceTime" }, TUESDAY_NOON - HOUR_MS).events).map((r) => r.multiplier)).toEqual([
      1,
    ]);
    const engine = TradingEngine.fromSnapshot(defaultEngineConfig(), s.engine.snapshot());
    // Tuesday 22:00 ends Tuesday's, 11 hours after the last rollover.
    expect(engine.nextDueTime()).toBe(TUESDAY_NOON + 10 * HOUR_MS);
    const result = engine.execute({ kind: "advanceTime", time: TUESDAY_NOON + 59 * HOUR_MS });
    // Tuesday (1), Wednesday (3), Thursday (1).
    expect((result.ok ? rollovers(result.events) : []).map((rollover) => rollover.multiplier)).toEqual([1, 3, 1]);
  });
});

describe("found by the review of 7 December (seventh session)", () => {
  it("a DAY order placed after a rollover time moved later expires at the calendar's next rollover, not the rule's sooner instant", () => {
    const s = new Scenario();
    const account = s.account("USD", "10000");
    s.quote("EURUSD", "1.08430", "1.08440");
    // Tuesday 22:00 UTC's rollover under the default, then a restart at 23:00 UTC: the next rollover is Wednesday's.
    expect(rollovers(s.ok({ kind: "advanceTime" }, TUESDAY_NOON + 10 * HOUR_MS).events)).toHaveLength(1);
    const engine = TradingEngine.fromSnapshot(
      defaultEngineConfig({ rollover: { minuteOfDay: 23 * 60, timeZone: "UTC" } }),
      s.engine.snapshot(),
    );
    // Quotes are no state: the restarted engine has the feed's next tick.
    expect(
      engine.execute({
        kind: "tick",
        time: TUESDAY_NOON + 10.5 * HOUR_MS,
        symbol: "EURUSD",
        bid: 108_430,
        ask: 108_440,
      }).ok,
    ).toBe(true);
    const placed = engine.execute({
      kind: "placeOrder",
      time: TUESDAY_NOON + 10.5 * HOUR_MS,
      accountId: account,
      symbol: "EURUSD",
      side: "BUY",
      type: "LIMIT",
      volume: 100,
      price: 100_000,
      timeInForce: "DAY",
    });
    expect(placed.ok).toBe(true);
    const order = placed.ok ? placed.order : null;
    expect(order?.expiration).toBe(TUESDAY_NOON + 35 * HOUR_MS);
    expect(engine.nextDueTime()).toBe(TUESDAY_NOON + 35 * HOUR_MS);
    const tuesday23 = engine.execute({ kind: "advanceTime", time: TUESDAY_NOON + 11 * HOUR_MS });
    expect(tuesday23.ok && tuesday23.events).toEqual([]);
  });

  it("a rollover just after midnight ends the trading day before it: the triple swap stays on the rollover that ends Wednesday", () => {
    const justAfterMidnight: RolloverTime = { minuteOfDay: 1, timeZone: "UTC" };
    // Thursday 4 June 2026 00:01 UTC ends Wednesday's trading day.
    expect(tradingDayWeekday(justAfterMidnight, Date.UTC(2026, 5, 4, 0, 1))).toBe(3);
    expect(tradingDayWeekday(justAfterMidnight, Date.UTC(2026, 5, 3, 0, 1))).toBe(2);
    for (const minuteOfDay of [0, 1, 11 * 60 + 59]) {
      const rollover: RolloverTime = { minuteOfDay, timeZone: "America/New_York" };
      const thursday = nextRolloverAfter(rollover, Date.UTC(2026, 5, 4, 0));
      expect(tradingDayWeekday(rollover, thursday), `${minuteOfDay}`).toBe(3);
    }
    for (const minuteOfDay of [12 * 60, 17 * 60, 23 * 60 + 59]) {
      const rollover: RolloverTime = { minuteOfDay, timeZone: "America/New_York" };
      const wednesday = nextRolloverAfter(rollover, Date.UTC(2026, 5, 3, 10));
      expect(tradingDayWeekday(rollover, wednesday), `${minuteOfDay}`).toBe(3);
    }
  });
});
