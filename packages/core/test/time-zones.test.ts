/**
 * The zones the core computes itself (time-zones.ts), checked against node's time-zone database (Intl, which the
 * test may use and the core may not): every zone's offset every day of 2024-2030, and each daylight saving change to
 * the millisecond.
 */
import { describe, expect, it } from "vitest";
import {
  TIME_ZONES,
  instantOfLocalTime,
  isTimeZone,
  localTimeOf,
  nextZoneChangeAfter,
  zoneOffsetMs,
  type TimeZoneName,
} from "../src/index.ts";

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

const formats = new Map<string, Intl.DateTimeFormat>();

/** The zone's offset at `time` by node's time-zone database, to the second. */
function intlOffsetMs(timeZone: string, time: number): number {
  let format = formats.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
    formats.set(timeZone, format);
  }
  const parts = Object.fromEntries(format.formatToParts(time).map((part) => [part.type, Number(part.value)]));
  const local = Date.UTC(parts.year!, parts.month! - 1, parts.day, parts.hour, parts.minute, parts.second);
  return local - Math.floor(time / 1000) * 1000;
}

/** The instants in [from, to) at which node's database changes the zone's offset (at most once a day), to the ms. */
function intlChanges(timeZone: string, from: number, to: number): number[] {
  const changes: number[] = [];
  for (let day = from; day < to; day += DAY_MS) {
    const before = intlOffsetMs(timeZone, day);
    if (before === intlOffsetMs(timeZone, day + DAY_MS)) continue;
    let [low, high] = [day, day + DAY_MS];
    while (high - low > 1) {
      const middle = Math.floor((low + high) / 2);
      if (intlOffsetMs(timeZone, middle) === before) low = middle;
      else high = middle;
    }
    changes.push(high);
  }
  return changes;
}

const iso = (time: number) => new Date(time).toISOString();

describe("time zones", () => {
  it("gives each zone's offset as node's time-zone database has it, every day of 2024-2030", () => {
    for (const timeZone of TIME_ZONES)
      for (let time = Date.UTC(2024, 0, 1, 12); time < Date.UTC(2031, 0, 1); time += DAY_MS)
        expect(zoneOffsetMs(timeZone, time), `${timeZone} ${iso(time)}`).toBe(intlOffsetMs(timeZone, time));
  });

  it("changes each zone's offset at the instant node's database does, both ways, 2024-2030", () => {
    for (const timeZone of TIME_ZONES) {
      const expected = intlChanges(timeZone, Date.UTC(2024, 0, 1), Date.UTC(2031, 0, 1));
      const changes: number[] = [];
      for (let time = Date.UTC(2024, 0, 1); ;) {
        time = nextZoneChangeAfter(timeZone, time);
        if (time >= Date.UTC(2031, 0, 1)) break;
        changes.push(time);
      }
      expect(changes.map(iso), timeZone).toEqual(expected.map(iso));
      // Two a year where daylight saving time is kept, none in UTC and Tokyo.
      expect(changes.length, timeZone).toBe(timeZone === "UTC" || timeZone === "Asia/Tokyo" ? 0 : 14);
      for (const change of changes) {
        expect(zoneOffsetMs(timeZone, change - 1), `${timeZone} ${iso(change)}`).toBe(
          intlOffsetMs(timeZone, change - 1),
        );
        expect(zoneOffsetMs(timeZone, change), `${timeZone} ${iso(change)}`).toBe(intlOffsetMs(timeZone, change));
        expect(nextZoneChangeAfter(timeZone, change - 1)).toBe(change);
      }
    }
  });

  it("changes on the rule's dates: US 02:00 local on the second Sunday of March and first of November, the EU 01:00 UTC on the last Sundays of March and October, Sydney 02:00 standard on the first Sunday of October and 03:00 daylight on the first of April", () => {
    const changesOf2026 = (timeZone: TimeZoneName) => {
      const first = nextZoneChangeAfter(timeZone, Date.UTC(2026, 0, 1));
      return [first, nextZoneChangeAfter(timeZone, first)].map(iso);
    };
    expect(changesOf2026("America/New_York")).toEqual(["2026-03-08T07:00:00.000Z", "2026-11-01T06:00:00.000Z"]);
    expect(changesOf2026("America/Chicago")).toEqual(["2026-03-08T08:00:00.000Z", "2026-11-01T07:00:00.000Z"]);
    expect(changesOf2026("Europe/London")).toEqual(["2026-03-29T01:00:00.000Z", "2026-10-25T01:00:00.000Z"]);
    expect(changesOf2026("Europe/Berlin")).toEqual(["2026-03-29T01:00:00.000Z", "2026-10-25T01:00:00.000Z"]);
    // 5 April 03:00 AEDT is 4 April 16:00 UTC; 4 October 02:00 AEST is 3 October 16:00 UTC.
    expect(changesOf2026("Australia/Sydney")).toEqual(["2026-04-04T16:00:00.000Z", "2026-10-03T16:00:00.000Z"]);
    expect(nextZoneChangeAfter("Asia/Tokyo", Date.UTC(2026, 0, 1))).toBe(Infinity);
    expect(nextZoneChangeAfter("UTC", Date.UTC(2026, 0, 1))).toBe(Infinity);
  });

  it("answers the same whatever instant it was asked about before (it remembers the last span between changes)", () => {
    const times = [Date.UTC(2030, 6, 1), Date.UTC(2024, 0, 1), Date.UTC(2026, 2, 8, 7), Date.UTC(2026, 2, 8, 7) - 1];
    for (const timeZone of TIME_ZONES)
      for (const time of [...times, ...times.reverse()])
        expect(zoneOffsetMs(timeZone, time), `${timeZone} ${iso(time)}`).toBe(intlOffsetMs(timeZone, time));
  });

  it("is not led astray by an instant it cannot read: the next answers are right", () => {
    for (const timeZone of TIME_ZONES)
      for (const unreadable of [NaN, Infinity, -Infinity]) {
        zoneOffsetMs(timeZone, unreadable);
        nextZoneChangeAfter(timeZone, unreadable);
        for (const time of [Date.UTC(2026, 0, 15), Date.UTC(2026, 6, 15)])
          expect(zoneOffsetMs(timeZone, time), `${timeZone} after ${unreadable}`).toBe(intlOffsetMs(timeZone, time));
      }
  });

  it("reads the local clock at an instant; a local time the spring change skips is an hour later, a repeated one the first", () => {
    expect(iso(localTimeOf("Europe/Berlin", Date.UTC(2026, 6, 1, 12)))).toBe("2026-07-01T14:00:00.000Z");
    expect(iso(localTimeOf("Australia/Sydney", Date.UTC(2026, 6, 1, 12)))).toBe("2026-07-01T22:00:00.000Z");
    // Berlin, 29 March 2026: 02:30 does not exist (03:30 CEST, 01:30 UTC); 25 October: 02:30 is first CEST, 00:30 UTC.
    expect(iso(instantOfLocalTime("Europe/Berlin", Date.UTC(2026, 2, 29, 2, 30)))).toBe("2026-03-29T01:30:00.000Z");
    expect(iso(instantOfLocalTime("Europe/Berlin", Date.UTC(2026, 9, 25, 2, 30)))).toBe("2026-10-25T00:30:00.000Z");
    // Sydney, 4 October 2026: 02:30 does not exist (03:30 AEDT); 5 April: 02:30 is first AEDT, 15:30 UTC the day before.
    expect(iso(instantOfLocalTime("Australia/Sydney", Date.UTC(2026, 9, 4, 2, 30)))).toBe("2026-10-03T16:30:00.000Z");
    expect(iso(instantOfLocalTime("Australia/Sydney", Date.UTC(2026, 3, 5, 2, 30)))).toBe("2026-04-04T15:30:00.000Z");
    expect(iso(instantOfLocalTime("Asia/Tokyo", Date.UTC(2026, 3, 5, 9)))).toBe("2026-04-05T00:00:00.000Z");
  });

  it("knows the IANA names it computes, and no other (Frankfurt keeps Berlin's time and is no zone name)", () => {
    for (const timeZone of TIME_ZONES) expect(isTimeZone(timeZone)).toBe(true);
    for (const name of ["Europe/Frankfurt", "utc", "EST", "America/Los_Angeles", ""])
      expect(isTimeZone(name)).toBe(false);
  });
});
