/**
 * When the trading day ends: the daily rollover, at which swaps are charged and DAY orders expire.
 *
 * A broker sets it as a clock time in a zone. Foreign exchange ends its day at 17:00 New York, which is 21:00 UTC
 * while the United States keeps daylight saving time and 22:00 UTC otherwise; the zone's rule is computed in
 * time-zones.ts.
 */
import { instantOfLocalTime, localTimeOf, weekdayOf, type TimeZoneName } from "./time-zones.ts";

/** A clock time (minutes after midnight) in a zone: the daily rollover's, the candles' day start. */
export interface TimeOfDayInZone {
  readonly minuteOfDay: number;
  /** Any zone trading sessions may be given in (time-zones.ts). */
  readonly timeZone: TimeZoneName;
}

/** The daily rollover: a clock time in a zone. */
export type RolloverTime = TimeOfDayInZone;

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

/**
 * The rollover instant of the local calendar day that starts `localDayStart` (a UTC midnight standing for the local
 * one). A local time skipped by the spring change is taken an hour later; one repeated in autumn, the first time
 * (`instantOfLocalTime`).
 */
export function rolloverOfLocalDay(rollover: RolloverTime, localDayStart: number): number {
  return instantOfLocalTime(rollover.timeZone, localDayStart + rollover.minuteOfDay * MINUTE_MS);
}

/** The first rollover instant strictly after `time`. */
export function nextRolloverAfter(rollover: RolloverTime, time: number): number {
  // The local day of `time`, give or take one: its rollover, or the next day's, is the one.
  let day = Math.floor(localTimeOf(rollover.timeZone, time) / DAY_MS) * DAY_MS - DAY_MS;
  for (;;) {
    const instant = rolloverOfLocalDay(rollover, day);
    if (instant > time) return instant;
    day += DAY_MS;
  }
}

/** The last rollover instant at or before `time`. */
export function lastRolloverAtOrBefore(rollover: RolloverTime, time: number): number {
  return rolloverOfLocalDay(rollover, localDayOfLastRollover(rollover, time));
}

/**
 * The local calendar day (a UTC midnight standing for the local one) whose rollover is the last at or before `time`:
 * the day a chart whose days start at that clock time is on.
 */
export function localDayOfLastRollover(rollover: RolloverTime, time: number): number {
  let day = Math.floor(localTimeOf(rollover.timeZone, time) / DAY_MS) * DAY_MS + DAY_MS;
  while (rolloverOfLocalDay(rollover, day) > time) day -= DAY_MS;
  return day;
}

/**
 * The rollover that follows one made at `lastRollover`: the rule's first instant after it that ends a later trading day
 * (`tradingDayOf`), the next day's under an unchanged rule (a day on, or 23 or 25 hours across a daylight saving
 * change). After the rollover time changed between starts, a time moved earlier may come again within hours naming the
 * day just ended, and is passed over (charged twice before); a time moved later comes within hours and ends the next
 * day (skipped before, when the rule asked for 12 hours between rollovers: the audit of time of 7 December, ninth
 * session).
 */
export function rolloverFollowing(rollover: RolloverTime, lastRollover: number): number {
  const lastDay = tradingDayOf(rollover, lastRollover);
  let next = nextRolloverAfter(rollover, lastRollover);
  while (tradingDayOf(rollover, next) <= lastDay) next = nextRolloverAfter(rollover, next);
  return next;
}

/**
 * The local trading day (a UTC midnight standing for the local date) that ends at the rollover instant `rolloverTime`:
 * the date most of it falls on, that of the local clock 12 hours before the rollover. A rollover at 17:00 or 22:00 ends
 * that day's trading day, one at 00:00 or 00:01 the day before's (taken just before the rollover, 00:01 named the day it
 * had barely begun: found by the review of 7 December, seventh session).
 */
export function tradingDayOf(rollover: RolloverTime, rolloverTime: number): number {
  return Math.floor((localTimeOf(rollover.timeZone, rolloverTime) - 12 * HOUR_MS) / DAY_MS) * DAY_MS;
}

/** The weekday (0 = Sunday) of the trading day that ends at the rollover instant `rolloverTime` (`tradingDayOf`). */
export function tradingDayWeekday(rollover: RolloverTime, rolloverTime: number): number {
  return weekdayOf(tradingDayOf(rollover, rolloverTime));
}
