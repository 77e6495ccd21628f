/**
 * When candles start: the chart clock (BOURSE_CANDLE_DAY_START). Pure: no IO, no clock of its own.
 *
 * The chart day starts at a clock time in a zone, as the rollover does (`TimeOfDayInZone`, rollover-calendar.ts's
 * rule): 00:00 UTC by default, or `17:00 America/New_York` as forex brokers chart (MetaTrader 5 servers on GMT+2/+3
 * with the US daylight saving rule), five daily bars a week and no Sunday stub. A chart day is named by the date most
 * of it falls on (a day starting 17:00 Sunday New York is Monday's, as on those servers), which places W1 (Monday's
 * day start) and MN1 (the 1st's).
 *
 * Bars within a day (M1 … H4) start at multiples of their length from the day's start on the zone's local clock, each
 * at the instant the zone's clock reads it (`instantOfLocalTime`). A chart day across a daylight saving change is 23
 * or 25 hours long and its bars follow the clock: a time the spring change skips starts no bar of its own, and the bar
 * holding the hour the autumn change repeats lasts an hour longer. Each bar starts at the latest of these instants at
 * or before a time, so starts never go back and every time is in exactly one bar.
 */
import {
  instantOfLocalTime,
  localDayOfLastRollover,
  localTimeOf,
  nextZoneChangeAfter,
  rolloverOfLocalDay,
  weekdayOf,
  type TimeOfDayInZone,
} from "@bourse/core";
import type { CandleTimeframe } from "@bourse/store";

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

/** Nominal bar lengths on the chart clock; W1 and MN1 by the calendar (W1 is 7 days; months vary). */
export const TIMEFRAME_MS: Readonly<Record<CandleTimeframe, number>> = {
  M1: MINUTE_MS,
  M5: 5 * MINUTE_MS,
  M15: 15 * MINUTE_MS,
  M30: 30 * MINUTE_MS,
  H1: HOUR_MS,
  H4: 4 * HOUR_MS,
  D1: DAY_MS,
  W1: 7 * DAY_MS,
  MN1: 31 * DAY_MS,
};

/** BOURSE_CANDLE_DAY_START's default: UTC days, as candles were before the setting. */
export const UTC_CANDLE_DAY_START: TimeOfDayInZone = { minuteOfDay: 0, timeZone: "UTC" };

/**
 * The chart clock of one day start. It remembers the chart day it was last asked about (its start, end, week and
 * month): a tick asks for every timeframe's bar at times close together. A pure function's memory: the answers are the
 * same whatever was asked before.
 */
export class CandleClock {
  private readonly dayStartMs: number;
  /** Added to a day start's local date to name its chart day (the date most of the day falls on). */
  private readonly dateShiftMs: number;
  /** The remembered chart day: [dayStart, nextDayStart), its local date and its week's and month's starts. */
  private dayStart = NaN;
  private nextDayStart = NaN;
  private localDay = 0;
  private weekStart = 0;
  private monthStart = 0;

  constructor(readonly start: TimeOfDayInZone) {
    this.dayStartMs = start.minuteOfDay * MINUTE_MS;
    this.dateShiftMs = this.dayStartMs >= 12 * HOUR_MS ? DAY_MS : 0;
  }

  /** The start of the bar of `timeframe` that holds `time`. */
  barStart(timeframe: CandleTimeframe, time: number): number {
    // Negated, so that a day a NaN left behind is never taken for the one asked.
    if (!(time >= this.dayStart && time < this.nextDayStart)) this.findDay(time);
    if (timeframe === "D1") return this.dayStart;
    if (timeframe === "W1") return this.weekStart;
    if (timeframe === "MN1") return this.monthStart;
    return this.intradayBarStart(TIMEFRAME_MS[timeframe], time);
  }

  /** The start of the bar `count` bars before the one starting at `start`, counted on the chart clock (never before the epoch). */
  barsBefore(timeframe: CandleTimeframe, start: number, count: number): number {
    if (!(start >= this.dayStart && start < this.nextDayStart)) this.findDay(start);
    const day = this.localDay;
    let back: number;
    if (timeframe === "MN1") back = this.dayInstant(this.firstOfMonth(day, count));
    else if (timeframe === "W1") back = this.dayInstant(this.mondayOf(day) - count * 7 * DAY_MS);
    else if (timeframe === "D1") back = this.dayInstant(day - count * DAY_MS);
    else {
      const length = TIMEFRAME_MS[timeframe];
      const origin = day + this.dayStartMs;
      const slot = Math.min(
        Math.max(0, Math.floor((localTimeOf(this.start.timeZone, start) - origin) / length)),
        DAY_MS / length - 1,
      );
      back = instantOfLocalTime(this.start.timeZone, origin + (slot - count) * length);
      // A zone change within the bars counted: local slots are not bars there (the hour the spring change skips has
      // none, and mapped an hour later it answered a time at or after the bar itself: found by the review of
      // 7 December, ninth session). The bars themselves are counted back, one at a time. They span at most `count`
      // lengths and the hour an autumn change repeats, so no change before that can matter.
      if (nextZoneChangeAfter(this.start.timeZone, start - count * length - HOUR_MS - 1) <= start) {
        back = start;
        for (let counted = 0; counted < count && back > 0; counted++) back = this.barStart(timeframe, back - 1);
      }
    }
    return Math.max(0, back);
  }

  private dayInstant(localDay: number): number {
    return rolloverOfLocalDay(this.start, localDay);
  }

  /** The local date of the day start of the Monday of the chart week holding the chart day that starts on `localDay`. */
  private mondayOf(localDay: number): number {
    return localDay - ((weekdayOf(localDay + this.dateShiftMs) + 6) % 7) * DAY_MS;
  }

  private findDay(time: number): void {
    const day = localDayOfLastRollover(this.start, time);
    this.localDay = day;
    this.dayStart = this.dayInstant(day);
    this.nextDayStart = this.dayInstant(day + DAY_MS);
    this.weekStart = this.dayInstant(this.mondayOf(day));
    this.monthStart = this.dayInstant(this.firstOfMonth(day, 0));
  }

  /** The local date of the day start of the 1st of the chart month `monthsBack` before the one holding `localDay`'s. */
  private firstOfMonth(localDay: number, monthsBack: number): number {
    const month = new Date(localDay + this.dateShiftMs);
    return Date.UTC(month.getUTCFullYear(), month.getUTCMonth() - monthsBack, 1) - this.dateShiftMs;
  }

  /** The bar of `length` (dividing a day) holding `time`, in the remembered day. */
  private intradayBarStart(length: number, time: number): number {
    const zone = this.start.timeZone;
    const local = localTimeOf(zone, time);
    const origin = this.localDay + this.dayStartMs;
    const sinceSlot = (((local - origin) % length) + length) % length;
    const candidate = time - sinceSlot;
    const slotFromOrigin = local - sinceSlot - origin;
    // Where the zone's offset was the same for an hour before the slot's instant and since, the clock read the slot
    // there once and no other slot lies between: the answer (every tick but those of an hour after a change).
    if (
      candidate >= this.dayStart &&
      slotFromOrigin >= 0 &&
      slotFromOrigin < DAY_MS &&
      nextZoneChangeAfter(zone, candidate - HOUR_MS - 1) > time
    )
      return candidate;
    // Near a change: the latest slot instant at or before `time`. A slot an hour or more below another has an instant
    // no later than it (offsets differ by an hour at most), and the slot an hour before `local` is at or before `time`.
    const slots = DAY_MS / length;
    const low = Math.max(0, Math.floor((local - origin - 2 * HOUR_MS) / length) - 1);
    const high = Math.min(slots - 1, Math.floor((local - origin + HOUR_MS) / length) + 1);
    let latest = this.dayStart;
    for (let slot = low; slot <= high; slot++) {
      const instant = instantOfLocalTime(zone, origin + slot * length);
      if (instant <= time && instant > latest) latest = instant;
    }
    return latest;
  }
}
