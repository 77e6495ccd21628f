/**
 * The time zones a broker keeps its clock times in: the daily rollover (rollover-calendar.ts) and instruments' trading
 * sessions (instruments.ts) are local times, and a market keeps its local hours across daylight saving time (forex
 * closes at 17:00 New York, 21:00 UTC in summer and 22:00 UTC in winter).
 *
 * Each zone's offset and daylight saving rule are written here and computed in integer civil-date arithmetic: the core
 * reads no time-zone database and uses no `Date` or Intl, so a journal replays the same on any machine. The rules are
 * those in force since 2007 (United States) and 1996 (European Union, Australia's New South Wales since 2008); an
 * instant before them is read by today's rule.
 *
 * The zone's clock at an instant is UTC plus the offset in force at that instant (`localTimeOf`).
 */

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

/** The zones a rollover time or an instrument's sessions may be given in (IANA names). */
export const TIME_ZONES = [
  "UTC",
  "America/New_York",
  "America/Chicago",
  "Europe/London",
  "Europe/Berlin",
  "Asia/Tokyo",
  "Australia/Sydney",
] as const;
export type TimeZoneName = (typeof TIME_ZONES)[number];

export function isTimeZone(name: string): name is TimeZoneName {
  return (TIME_ZONES as readonly string[]).includes(name);
}

/** The weekday (0 = Sunday) of the UTC date of `timeMs`, or of the local date of a local time (`localTimeOf`). */
export function weekdayOf(timeMs: number): number {
  // 1970-01-01 was a Thursday.
  return (((Math.floor(timeMs / DAY_MS) + 4) % 7) + 7) % 7;
}

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

/** Midnight (UTC scale) of the `nth` Sunday of `month` (1-based) in `year`; `nth` -1 is the month's last Sunday. */
function sundayOfMonth(year: number, month: number, nth: number): number {
  if (nth < 0) {
    const lastDay = (month === 12 ? daysFromCivil(year + 1, 1, 1) : daysFromCivil(year, month + 1, 1)) - 1;
    return (lastDay - weekdayOf(lastDay * DAY_MS)) * DAY_MS;
  }
  const first = daysFromCivil(year, month, 1) * DAY_MS;
  return first + (((7 - weekdayOf(first)) % 7) + (nth - 1) * 7) * DAY_MS;
}

/** A daylight saving change: on the `sunday`th Sunday of `month` (-1: the last), at `clockMs` on the clock before it. */
interface ClockChange {
  readonly month: number;
  readonly sunday: number;
  readonly clockMs: number;
}

interface ZoneRule {
  readonly standardOffsetMs: number;
  /** Null: the zone keeps no daylight saving time. Daylight time is always an hour ahead of standard time here. */
  readonly daylight: { readonly start: ClockChange; readonly end: ClockChange } | null;
}

/** The United States (since 2007): from the second Sunday of March to the first Sunday of November, 02:00 local. */
const US_DAYLIGHT = {
  start: { month: 3, sunday: 2, clockMs: 2 * HOUR_MS },
  end: { month: 11, sunday: 1, clockMs: 2 * HOUR_MS },
};

/** The European Union (and the United Kingdom): from the last Sunday of March to the last of October, 01:00 UTC. */
function europeanDaylight(standardOffsetMs: number): ZoneRule {
  return {
    standardOffsetMs,
    daylight: {
      start: { month: 3, sunday: -1, clockMs: HOUR_MS + standardOffsetMs },
      end: { month: 10, sunday: -1, clockMs: HOUR_MS + standardOffsetMs + HOUR_MS },
    },
  };
}

const ZONE_RULES: { readonly [zone in TimeZoneName]: ZoneRule } = {
  UTC: { standardOffsetMs: 0, daylight: null },
  "America/New_York": { standardOffsetMs: -5 * HOUR_MS, daylight: US_DAYLIGHT },
  "America/Chicago": { standardOffsetMs: -6 * HOUR_MS, daylight: US_DAYLIGHT },
  "Europe/London": europeanDaylight(0),
  "Europe/Berlin": europeanDaylight(HOUR_MS),
  "Asia/Tokyo": { standardOffsetMs: 9 * HOUR_MS, daylight: null },
  // New South Wales (since 2008), the southern summer: from the first Sunday of October, 02:00 standard time, to the
  // first Sunday of April, 03:00 daylight time.
  "Australia/Sydney": {
    standardOffsetMs: 10 * HOUR_MS,
    daylight: {
      start: { month: 10, sunday: 1, clockMs: 2 * HOUR_MS },
      end: { month: 4, sunday: 1, clockMs: 3 * HOUR_MS },
    },
  },
};

/**
 * A zone's clock: its offset at an instant and its next change. It remembers the span between two changes that it was
 * last asked about: every tick asks its symbol's session, at times close together, and the civil-date arithmetic of a
 * change costs as much as the rest of a tick (the rollover's did: 0fbf009). A pure function's memory: the answers are
 * the same whatever was asked before.
 */
class ZoneClock {
  /** The span [from, until) in which the offset is `offset`: the zone's changes on either side of the last instant. */
  private from = 0;
  private until = 0;
  private offset = 0;

  constructor(private readonly rule: ZoneRule) {
    if (rule.daylight === null) {
      this.from = -Infinity;
      this.until = Infinity;
      this.offset = rule.standardOffsetMs;
    }
  }

  offsetAt(time: number): number {
    // Negated, so that a span a NaN left behind is never taken for the one asked.
    if (!(time >= this.from && time < this.until)) this.findSpan(time);
    return this.offset;
  }

  /** The first change strictly after `time`; Infinity for a zone that keeps no daylight saving time. */
  nextChangeAfter(time: number): number {
    if (!(time >= this.from && time < this.until)) this.findSpan(time);
    return this.until;
  }

  private findSpan(time: number): void {
    const { standardOffsetMs, daylight } = this.rule;
    if (daylight === null) return;
    if (!Number.isFinite(time)) {
      // No instant (the engine takes none such): standard time, and no span remembered.
      this.from = NaN;
      this.until = NaN;
      this.offset = standardOffsetMs;
      return;
    }
    const daylightOffsetMs = standardOffsetMs + HOUR_MS;
    const { start, end } = daylight;
    // The changes of the year before, the year and the year after, in order: `time` falls between two of them.
    const changes: { at: number; offsetAfter: number }[] = [];
    const year = utcYearOf(time);
    for (let y = year - 1; y <= year + 1; y++) {
      changes.push(
        {
          at: sundayOfMonth(y, start.month, start.sunday) + start.clockMs - standardOffsetMs,
          offsetAfter: daylightOffsetMs,
        },
        { at: sundayOfMonth(y, end.month, end.sunday) + end.clockMs - daylightOffsetMs, offsetAfter: standardOffsetMs },
      );
    }
    changes.sort((a, b) => a.at - b.at);
    let index = 0;
    while (changes[index + 1]!.at <= time) index++;
    this.from = changes[index]!.at;
    this.until = changes[index + 1]!.at;
    this.offset = changes[index]!.offsetAfter;
  }
}

const ZONE_CLOCKS: { readonly [zone in TimeZoneName]: ZoneClock } = Object.fromEntries(
  TIME_ZONES.map((zone) => [zone, new ZoneClock(ZONE_RULES[zone])]),
) as { [zone in TimeZoneName]: ZoneClock };

/** The zone's offset from UTC at the instant `time` (ms), added to UTC to give the local clock. */
export function zoneOffsetMs(timeZone: TimeZoneName, time: number): number {
  return ZONE_CLOCKS[timeZone].offsetAt(time);
}

/**
 * The zone's clock at the instant `time`, as milliseconds on the UTC scale (a local midnight is a multiple of a day):
 * UTC plus the offset in force at that instant.
 */
export function localTimeOf(timeZone: TimeZoneName, time: number): number {
  return time + ZONE_CLOCKS[timeZone].offsetAt(time);
}

/** The zone's first daylight saving change strictly after `time`; Infinity for a zone that keeps none. */
export function nextZoneChangeAfter(timeZone: TimeZoneName, time: number): number {
  return ZONE_CLOCKS[timeZone].nextChangeAfter(time);
}

/**
 * The instant at which the zone's clock reads `local` (ms on the UTC scale). A local time the spring change skips is
 * read on the clock before the change (an hour later than it would be: 02:30 on a spring night is 03:30 daylight
 * time); one the autumn change repeats, the first time.
 */
export function instantOfLocalTime(timeZone: TimeZoneName, local: number): number {
  const { standardOffsetMs, daylight } = ZONE_RULES[timeZone];
  if (daylight === null) return local - standardOffsetMs;
  const daylightOffsetMs = standardOffsetMs + HOUR_MS;
  const asDaylight = local - daylightOffsetMs;
  return zoneOffsetMs(timeZone, asDaylight) === daylightOffsetMs ? asDaylight : local - standardOffsetMs;
}
