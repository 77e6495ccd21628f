/**
 * Trading sessions in a time zone: a market keeps its local hours across daylight saving time (forex closes at 17:00
 * New York, 21:00 UTC in summer and 22:00 UTC in winter). The sessions are read on the zone's clock at each instant;
 * a boundary the spring change skips takes effect at the change, one in the hour the autumn change repeats is crossed
 * twice.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  TIME_ZONES,
  isSessionOpen,
  isSessionOpenThroughout,
  nextSessionChange,
  nextZoneChangeAfter,
  type DaySessions,
  type TimeZoneName,
  type TradingHours,
  type WeekSessions,
} from "../src/index.ts";

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;
const at = (text: string) => Date.parse(text);
const iso = (time: number | null) => (time === null ? null : new Date(time).toISOString());

const ALL_DAY: DaySessions = [[0, 1440]];
const hm = (hours: number, minutes = 0) => hours * 60 + minutes;
/** Monday to Friday, the same intervals each day. */
const weekdays = (day: DaySessions): WeekSessions => [[], day, day, day, day, day, []];

/** Forex: Sunday 17:00 to Friday 17:00 New York. */
const NEW_YORK_FOREX: TradingHours = {
  sessions: [[[hm(17), 1440]], ALL_DAY, ALL_DAY, ALL_DAY, ALL_DAY, [[0, hm(17)]], []],
  sessionTimeZone: "America/New_York",
};
const CME_DAY: DaySessions = [
  [0, hm(16)],
  [hm(17), 1440],
];
/** CME Globex: Sunday 17:00 to Friday 16:00 Chicago, a daily break 16:00-17:00. */
const CHICAGO_CME: TradingHours = {
  sessions: [[[hm(17), 1440]], CME_DAY, CME_DAY, CME_DAY, CME_DAY, [[0, hm(16)]], []],
  sessionTimeZone: "America/Chicago",
};
const BERLIN_08_22: TradingHours = { sessions: weekdays([[hm(8), hm(22)]]), sessionTimeZone: "Europe/Berlin" };
const LONDON_08_1630: TradingHours = { sessions: weekdays([[hm(8), hm(16, 30)]]), sessionTimeZone: "Europe/London" };
const TOKYO_09_15: TradingHours = { sessions: weekdays([[hm(9), hm(15)]]), sessionTimeZone: "Asia/Tokyo" };
const SYDNEY_10_16: TradingHours = { sessions: weekdays([[hm(10), hm(16)]]), sessionTimeZone: "Australia/Sydney" };

/** Whether the session is open just before and at `time`: a boundary there shows as [false, true] or [true, false]. */
const around = (hours: TradingHours, time: number) => [isSessionOpen(hours, time - 1), isSessionOpen(hours, time)];

describe("sessions on a zone's clock", () => {
  it("forex closes on Friday at 17:00 New York: 21:00 UTC in July, 22:00 UTC in January; it opens on Sunday at 17:00", () => {
    expect(around(NEW_YORK_FOREX, at("2026-07-10T21:00:00Z"))).toEqual([true, false]);
    expect(around(NEW_YORK_FOREX, at("2026-07-12T21:00:00Z"))).toEqual([false, true]);
    expect(around(NEW_YORK_FOREX, at("2027-01-15T22:00:00Z"))).toEqual([true, false]);
    expect(around(NEW_YORK_FOREX, at("2027-01-17T22:00:00Z"))).toEqual([false, true]);
    // What UTC hours would have got wrong: open at 21:30 UTC on a Friday in July, closed at 21:30 on a Sunday.
    expect(isSessionOpen(NEW_YORK_FOREX, at("2026-07-10T21:30:00Z"))).toBe(false);
    expect(isSessionOpen(NEW_YORK_FOREX, at("2026-07-12T21:30:00Z"))).toBe(true);
    expect(iso(nextSessionChange(NEW_YORK_FOREX, at("2026-07-08T12:00:00Z")))).toBe("2026-07-10T21:00:00.000Z");
    expect(iso(nextSessionChange(NEW_YORK_FOREX, at("2027-01-13T12:00:00Z")))).toBe("2027-01-15T22:00:00.000Z");
  });

  it("over the weekends of the US changes the week closes at one UTC hour and opens at the other", () => {
    // 8 March 2026: Friday 6 March closes at 17:00 EST (22:00 UTC), Sunday opens at 17:00 EDT (21:00 UTC).
    expect(iso(nextSessionChange(NEW_YORK_FOREX, at("2026-03-06T12:00:00Z")))).toBe("2026-03-06T22:00:00.000Z");
    expect(iso(nextSessionChange(NEW_YORK_FOREX, at("2026-03-06T22:00:00Z")))).toBe("2026-03-08T21:00:00.000Z");
    expect(around(NEW_YORK_FOREX, at("2026-03-08T21:00:00Z"))).toEqual([false, true]);
    // 1 November 2026: Friday 30 October closes at 17:00 EDT (21:00 UTC), Sunday opens at 17:00 EST (22:00 UTC).
    expect(iso(nextSessionChange(NEW_YORK_FOREX, at("2026-10-30T12:00:00Z")))).toBe("2026-10-30T21:00:00.000Z");
    expect(iso(nextSessionChange(NEW_YORK_FOREX, at("2026-10-31T12:00:00Z")))).toBe("2026-11-01T22:00:00.000Z");
    expect(around(NEW_YORK_FOREX, at("2026-11-01T22:00:00Z"))).toEqual([false, true]);
    expect(isSessionOpen(NEW_YORK_FOREX, at("2026-11-01T21:30:00Z"))).toBe(false);
  });

  it("CME's daily break is 16:00-17:00 Chicago: 21:00-22:00 UTC in July, 22:00-23:00 UTC in January", () => {
    expect(around(CHICAGO_CME, at("2026-07-07T21:00:00Z"))).toEqual([true, false]);
    expect(around(CHICAGO_CME, at("2026-07-07T22:00:00Z"))).toEqual([false, true]);
    expect(around(CHICAGO_CME, at("2027-01-12T22:00:00Z"))).toEqual([true, false]);
    expect(around(CHICAGO_CME, at("2027-01-12T23:00:00Z"))).toEqual([false, true]);
    expect(iso(nextSessionChange(CHICAGO_CME, at("2026-07-07T21:00:00Z")))).toBe("2026-07-07T22:00:00.000Z");
    // Friday closes at 16:00, Sunday opens at 17:00, Chicago.
    expect(iso(nextSessionChange(CHICAGO_CME, at("2026-07-10T12:00:00Z")))).toBe("2026-07-10T21:00:00.000Z");
    expect(iso(nextSessionChange(CHICAGO_CME, at("2026-07-10T21:00:00Z")))).toBe("2026-07-12T22:00:00.000Z");
  });

  it("Berlin and London follow the EU's dates, three weeks after the US change in spring and one before it in autumn", () => {
    // Between 8 and 29 March 2026 New York keeps summer time and Berlin does not: 08:00 Berlin is still 07:00 UTC.
    expect(around(BERLIN_08_22, at("2026-03-27T07:00:00Z"))).toEqual([false, true]);
    expect(around(BERLIN_08_22, at("2026-03-27T21:00:00Z"))).toEqual([true, false]);
    // From Monday 30 March, 06:00 and 20:00 UTC.
    expect(around(BERLIN_08_22, at("2026-03-30T06:00:00Z"))).toEqual([false, true]);
    expect(iso(nextSessionChange(BERLIN_08_22, at("2026-03-27T21:00:00Z")))).toBe("2026-03-30T06:00:00.000Z");
    expect(iso(nextSessionChange(BERLIN_08_22, at("2026-03-30T06:00:00Z")))).toBe("2026-03-30T20:00:00.000Z");
    // Back on 25 October 2026: Friday 23 October closes at 20:00 UTC, Monday 26 opens at 07:00 UTC.
    expect(iso(nextSessionChange(BERLIN_08_22, at("2026-10-23T12:00:00Z")))).toBe("2026-10-23T20:00:00.000Z");
    expect(iso(nextSessionChange(BERLIN_08_22, at("2026-10-23T20:00:00Z")))).toBe("2026-10-26T07:00:00.000Z");
    // London: 08:00-16:30 is 07:00-15:30 UTC in summer, 08:00-16:30 UTC in winter.
    expect(around(LONDON_08_1630, at("2026-07-01T07:00:00Z"))).toEqual([false, true]);
    expect(around(LONDON_08_1630, at("2026-07-01T15:30:00Z"))).toEqual([true, false]);
    expect(around(LONDON_08_1630, at("2026-12-01T08:00:00Z"))).toEqual([false, true]);
    expect(around(LONDON_08_1630, at("2026-12-01T16:30:00Z"))).toEqual([true, false]);
  });

  it("Sydney keeps summer time from October to April, a local day ahead of UTC; Tokyo keeps no daylight saving time", () => {
    // Monday 10:00 Sydney: Sunday 23:00 UTC under summer time (to 5 April 2026), Monday 00:00 UTC after.
    expect(around(SYDNEY_10_16, at("2026-03-29T23:00:00Z"))).toEqual([false, true]);
    expect(iso(nextSessionChange(SYDNEY_10_16, at("2026-04-03T12:00:00Z")))).toBe("2026-04-06T00:00:00.000Z");
    expect(isSessionOpen(SYDNEY_10_16, at("2026-04-05T23:30:00Z"))).toBe(false);
    // Summer time again from 4 October 2026: Monday 5 October opens on Sunday at 23:00 UTC.
    expect(iso(nextSessionChange(SYDNEY_10_16, at("2026-10-02T12:00:00Z")))).toBe("2026-10-04T23:00:00.000Z");
    // Tokyo: 09:00-15:00 is 00:00-06:00 UTC all year.
    for (const date of ["2026-01-13", "2026-07-14"]) {
      expect(around(TOKYO_09_15, at(`${date}T00:00:00Z`))).toEqual([false, true]);
      expect(around(TOKYO_09_15, at(`${date}T06:00:00Z`))).toEqual([true, false]);
    }
  });

  it("a boundary in the hour the spring change skips takes effect at the change; one in the hour the autumn change repeats is crossed twice", () => {
    // Sundays from 02:30 New York. 8 March 2026: the clock goes from 01:59:59 EST to 03:00 EDT at 07:00 UTC, past 02:30.
    const sundayFromTwoThirty: TradingHours = {
      sessions: [[[hm(2, 30), 1440]], [], [], [], [], [], []],
      sessionTimeZone: "America/New_York",
    };
    expect(around(sundayFromTwoThirty, at("2026-03-08T07:00:00Z"))).toEqual([false, true]);
    expect(iso(nextSessionChange(sundayFromTwoThirty, at("2026-03-07T12:00:00Z")))).toBe("2026-03-08T07:00:00.000Z");
    // Sundays from 01:30. 1 November 2026: 01:30 EDT (05:30 UTC), back to 01:00 EST at 06:00 UTC, 01:30 EST (06:30 UTC).
    const sundayFromOneThirty: TradingHours = {
      sessions: [[[hm(1, 30), 1440]], [], [], [], [], [], []],
      sessionTimeZone: "America/New_York",
    };
    const changes = [at("2026-10-31T12:00:00Z")];
    for (let index = 0; index < 3; index++) changes.push(nextSessionChange(sundayFromOneThirty, changes.at(-1)!)!);
    expect(changes.slice(1).map(iso)).toEqual([
      "2026-11-01T05:30:00.000Z",
      "2026-11-01T06:00:00.000Z",
      "2026-11-01T06:30:00.000Z",
    ]);
    expect(isSessionOpen(sundayFromOneThirty, at("2026-11-01T06:15:00Z"))).toBe(false);
  });

  it("open throughout a span: not across a close, on either side of a change; a closed half hour the spring change skips never comes", () => {
    const july = at("2026-07-10T20:30:00Z");
    expect(isSessionOpenThroughout(NEW_YORK_FOREX, july, at("2026-07-10T20:59:59.999Z"))).toBe(true);
    expect(isSessionOpenThroughout(NEW_YORK_FOREX, july, at("2026-07-10T21:00:00Z"))).toBe(false);
    const january = at("2027-01-15T21:30:00Z");
    expect(isSessionOpenThroughout(NEW_YORK_FOREX, january, at("2027-01-15T21:59:59.999Z"))).toBe(true);
    expect(isSessionOpenThroughout(NEW_YORK_FOREX, january, at("2027-01-15T22:00:00Z"))).toBe(false);
    // From Friday's last price before the close to Sunday's open, across the spring change: closed in between.
    expect(isSessionOpenThroughout(NEW_YORK_FOREX, at("2026-03-06T21:59:00Z"), at("2026-03-08T21:00:01Z"))).toBe(false);
    // Sunday to Friday across nothing: open throughout.
    expect(isSessionOpenThroughout(NEW_YORK_FOREX, at("2026-03-08T21:00:00Z"), at("2026-03-13T20:59:59Z"))).toBe(true);
    // Berlin, Sundays closed 02:30-03:00: on 29 March 2026 the clock skips 02:00-03:00, so that Sunday never closes.
    const sundayBreak: TradingHours = {
      sessions: [
        [
          [0, hm(2, 30)],
          [hm(3), 1440],
        ],
        ALL_DAY,
        ALL_DAY,
        ALL_DAY,
        ALL_DAY,
        ALL_DAY,
        ALL_DAY,
      ],
      sessionTimeZone: "Europe/Berlin",
    };
    expect(isSessionOpenThroughout(sundayBreak, at("2026-03-28T12:00:00Z"), at("2026-03-29T12:00:00Z"))).toBe(true);
    expect(nextSessionChange(sundayBreak, at("2026-03-28T12:00:00Z"))).toBe(at("2026-04-05T00:30:00Z"));
    expect(isSessionOpenThroughout(sundayBreak, at("2026-04-04T12:00:00Z"), at("2026-04-05T12:00:00Z"))).toBe(false);
    // On 25 October it closes twice: 02:30-03:00 CEST (00:30-01:00 UTC) and 02:30-03:00 CET (01:30-02:00 UTC).
    expect(isSessionOpenThroughout(sundayBreak, at("2026-10-25T01:00:00Z"), at("2026-10-25T01:29:59Z"))).toBe(true);
    expect(isSessionOpen(sundayBreak, at("2026-10-25T00:45:00Z"))).toBe(false);
    expect(isSessionOpen(sundayBreak, at("2026-10-25T01:45:00Z"))).toBe(false);
  });
});

// Found by the review of 7 December (ninth session): in a zone with summer time the walk never ended.
describe("a span that is no span of instants", () => {
  it("is not one a session is open throughout, and the answer comes at once", () => {
    const always: WeekSessions = [ALL_DAY, ALL_DAY, ALL_DAY, ALL_DAY, ALL_DAY, ALL_DAY, ALL_DAY];
    for (const sessionTimeZone of ["UTC", "America/New_York"] as const)
      for (const [from, to] of [
        [Number.NaN, 0],
        [0, Number.NaN],
        [0, Number.POSITIVE_INFINITY],
        [Number.NEGATIVE_INFINITY, 0],
      ])
        expect(isSessionOpenThroughout({ sessions: always, sessionTimeZone }, from!, to!)).toBe(false);
  });
});

describe("as properties, any week of sessions in any zone", () => {
  const intlFormats = new Map<string, Intl.DateTimeFormat>();
  /** The zone's clock at `time` by node's time-zone database (Intl: the test may use it, the core may not). */
  function intlClock(timeZone: string, time: number): { weekday: number; minute: number } {
    let format = intlFormats.get(timeZone);
    if (!format) {
      format = new Intl.DateTimeFormat("en-US", {
        timeZone,
        hourCycle: "h23",
        weekday: "short",
        hour: "numeric",
        minute: "numeric",
      });
      intlFormats.set(timeZone, format);
    }
    const parts = Object.fromEntries(format.formatToParts(time).map((part) => [part.type, part.value]));
    const weekday = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"].indexOf(parts.weekday!);
    return { weekday, minute: Number(parts.hour) * 60 + Number(parts.minute) };
  }

  const daySessions = fc
    .uniqueArray(fc.integer({ min: 0, max: 1440 }), { maxLength: 6 })
    .map((minutes): DaySessions => {
      const sorted = [...minutes].sort((a, b) => a - b);
      const intervals: [number, number][] = [];
      for (let index = 0; index + 1 < sorted.length; index += 2) intervals.push([sorted[index]!, sorted[index + 1]!]);
      return intervals;
    });
  const hours = fc.record({
    sessions: fc.tuple(daySessions, daySessions, daySessions, daySessions, daySessions, daySessions, daySessions),
    sessionTimeZone: fc.constantFrom(...TIME_ZONES),
  });
  /** A time within three days of one of the zone's changes (or any time, in a zone without), 2024-2030. */
  const timeNearChange = (timeZone: TimeZoneName) =>
    fc
      .tuple(
        fc.integer({ min: Date.UTC(2024, 0, 1), max: Date.UTC(2030, 11, 1) }),
        fc.integer({ min: -3 * DAY_MS, max: 3 * DAY_MS }),
      )
      .map(([time, shift]) => {
        const change = nextZoneChangeAfter(timeZone, time);
        return (change === Infinity ? time : change) + shift;
      });
  const hoursAndTime = hours.chain((h) => fc.tuple(fc.constant(h), timeNearChange(h.sessionTimeZone)));

  it("open at an instant when the zone's clock then (node's database) reads a time inside one of that day's intervals", () => {
    fc.assert(
      fc.property(hoursAndTime, ([h, time]) => {
        const { weekday, minute } = intlClock(h.sessionTimeZone, time);
        const open = h.sessions[weekday as 0].some(([from, to]) => minute >= from && minute < to);
        expect(isSessionOpen(h, time)).toBe(open);
      }),
      { numRuns: 1_000 },
    );
  });

  it("the next change is the first whole minute at which the session is not as it is now, and open throughout a span is open until that change", () => {
    fc.assert(
      fc.property(hoursAndTime, fc.integer({ min: 0, max: 10 * DAY_MS }), ([h, time], length) => {
        const openNow = isSessionOpen(h, time);
        // Boundaries and changes fall on whole minutes: scan them, two weeks ahead.
        let scanned: number | null = null;
        for (
          let minute = Math.floor(time / MINUTE_MS) * MINUTE_MS + MINUTE_MS;
          minute < time + 15 * DAY_MS;
          minute += MINUTE_MS
        )
          if (isSessionOpen(h, minute) !== openNow) {
            scanned = minute;
            break;
          }
        const next = nextSessionChange(h, time);
        expect(iso(next)).toBe(iso(scanned));
        expect(isSessionOpenThroughout(h, time, time + length)).toBe(
          openNow && (next === null || next > time + length),
        );
      }),
      { numRuns: 300 },
    );
  });
});
