/**
 * When the trading day ends: the daily rollover, at which swaps are charged and DAY orders expire.
 *
 * A broker sets it as a clock time in a zone. Foreign exchange ends its day at 17:00 New York, which is 21:00 UTC
 * while the United States keeps daylight saving time and 22:00 UTC otherwise, so the zone `America/New_York` follows
 * the US rule in force since 2007 (from the second Sunday of March, 02:00 local, to the first Sunday of November,
 * 02:00 local), computed here: the core reads no time-zone database, so a journal replays the same on any machine.
 */
import { weekdayOf } from "./instruments.ts";

/** The zones a rollover time may be given in. */
export const ROLLOVER_TIME_ZONES = ["UTC", "America/New_York"] as const;
export type RolloverTimeZone = (typeof ROLLOVER_TIME_ZONES)[number];

/** The daily rollover: a clock time (minutes after midnight) in a zone. */
export interface RolloverTime {
  readonly minuteOfDay: number;
  readonly timeZone: RolloverTimeZone;
}

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;
/** New York's offset from UTC: UTC−5 (EST), UTC−4 while daylight saving time is kept (EDT). */
const NEW_YORK_STANDARD_OFFSET_MS = -5 * HOUR_MS;
const NEW_YORK_DAYLIGHT_OFFSET_MS = -4 * HOUR_MS;

/**
 * The shortest time between two rollovers. Only a new rollover time between two starts brings two closer than a day
 * (a daylight saving change moves one by an hour): a move of up to 12 hours either way then neither charges a day
 * twice nor skips one.
 */
export const MIN_ROLLOVER_GAP_MS = 12 * HOUR_MS;

/**
 * Days from 1970-01-01 to the proleptic Gregorian date `year`-`month` (1-based)-`day`, in integers (the core uses no
 * `Date`): H. Hinnant's days_from_civil, counting in 400-year eras from 1 March so February's length comes last.
 */
function daysFromCivil(year: number, month: number, day: number): number {
  const shifted = month <= 2 ? year - 1 : year;
  const era = Math.floor(shifted / 400);
  const yearOfEra = shifted - era * 400;
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146_097 + dayOfEra - 719_468;
}

/** The UTC calendar year of the instant `time` (ms): the inverse of `daysFromCivil` for the year alone. */
function utcYearOf(time: number): number {
  const days = Math.floor(time / DAY_MS) + 719_468;
  const era = Math.floor(days / 146_097);
  const dayOfEra = days - era * 146_097;
  const yearOfEra = Math.floor(
    (dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36_524) - Math.floor(dayOfEra / 146_096)) / 365,
  );
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const monthIndex = Math.floor((5 * dayOfYear + 2) / 153);
  // Years here start on 1 March: January and February belong to the next calendar year.
  return yearOfEra + era * 400 + (monthIndex >= 10 ? 1 : 0);
}

/** Midnight UTC of the `nth` (1-based) `weekday` (0 = Sunday) of `month` (1-based) in `year`. */
function nthWeekdayOfMonth(year: number, month: number, weekday: number, nth: number): number {
  const first = daysFromCivil(year, month, 1) * DAY_MS;
  const shift = (weekday - weekdayOf(first) + 7) % 7;
  return first + (shift + (nth - 1) * 7) * DAY_MS;
}

/** The UTC interval of `year` during which New York keeps daylight saving time: [start, end). */
function newYorkDaylightSaving(year: number): { start: number; end: number } {
  // 02:00 EST is 07:00 UTC; 02:00 EDT is 06:00 UTC.
  return {
    start: nthWeekdayOfMonth(year, 3, 0, 2) + 7 * HOUR_MS,
    end: nthWeekdayOfMonth(year, 11, 0, 1) + 6 * HOUR_MS,
  };
}

/** The zone's offset from UTC at the instant `time` (ms), added to UTC to give the local clock. */
export function zoneOffsetMs(timeZone: RolloverTimeZone, time: number): number {
  if (timeZone === "UTC") return 0;
  const { start, end } = newYorkDaylightSaving(utcYearOf(time));
  return time >= start && time < end ? NEW_YORK_DAYLIGHT_OFFSET_MS : NEW_YORK_STANDARD_OFFSET_MS;
}

/**
 * The rollover instant of the local calendar day that starts `localDayStart` (a UTC midnight standing for the local
 * one). A local time skipped by the spring change is taken an hour later; one repeated in autumn, the first time.
 */
function rolloverOfLocalDay(rollover: RolloverTime, localDayStart: number): number {
  const local = localDayStart + rollover.minuteOfDay * MINUTE_MS;
  if (rollover.timeZone === "UTC") return local;
  const daylight = local - NEW_YORK_DAYLIGHT_OFFSET_MS;
  return zoneOffsetMs(rollover.timeZone, daylight) === NEW_YORK_DAYLIGHT_OFFSET_MS
    ? daylight
    : local - NEW_YORK_STANDARD_OFFSET_MS;
}

/** The first rollover instant strictly after `time`. */
export function nextRolloverAfter(rollover: RolloverTime, time: number): number {
  // The local day of `time`, give or take one: its rollover, or the next day's, is the one.
  let day = Math.floor((time + zoneOffsetMs(rollover.timeZone, time)) / DAY_MS) * DAY_MS - DAY_MS;
  for (;;) {
    const instant = rolloverOfLocalDay(rollover, day);
    if (instant > time) return instant;
    day += DAY_MS;
  }
}

/** The last rollover instant at or before `time`. */
export function lastRolloverAtOrBefore(rollover: RolloverTime, time: number): number {
  let day = Math.floor((time + zoneOffsetMs(rollover.timeZone, time)) / DAY_MS) * DAY_MS + DAY_MS;
  for (;;) {
    const instant = rolloverOfLocalDay(rollover, day);
    if (instant <= time) return instant;
    day -= DAY_MS;
  }
}

/**
 * The rollover that follows one made at `lastRollover`: the rule's next instant at least `MIN_ROLLOVER_GAP_MS` later
 * (a day, or 23 or 25 hours across a daylight saving change, under an unchanged rule).
 */
export function rolloverFollowing(rollover: RolloverTime, lastRollover: number): number {
  return nextRolloverAfter(rollover, lastRollover + MIN_ROLLOVER_GAP_MS - 1);
}

/**
 * The weekday (0 = Sunday) of the local trading day that ends at the rollover instant `rolloverTime`: the date most of
 * it falls on, that of the local clock 12 hours before the rollover. A rollover at 17:00 or 22:00 ends that day's
 * trading day, one at 00:00 or 00:01 the day before's (taken just before the rollover, 00:01 named the day it had
 * barely begun: found by the review of 7 December, seventh session).
 */
export function tradingDayWeekday(rollover: RolloverTime, rolloverTime: number): number {
  return weekdayOf(rolloverTime + zoneOffsetMs(rollover.timeZone, rolloverTime) - 12 * HOUR_MS);
}
