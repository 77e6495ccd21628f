import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseIsoTime, queryTimeFromWire, timeFromWire, timeToWire } from "../src/wire.ts";

describe("times on the wire", () => {
  it("writes ISO 8601 UTC with milliseconds, the same text for the same instant however often it is asked", () => {
    expect(timeToWire(0)).toBe("1970-01-01T00:00:00.000Z");
    expect(timeToWire(1_763_467_200_123)).toBe("2025-11-18T12:00:00.123Z");
    expect(timeToWire(1_763_467_200_123)).toBe("2025-11-18T12:00:00.123Z");
    expect(timeToWire(1_763_467_200_124)).toBe("2025-11-18T12:00:00.124Z");
    expect(timeToWire(0)).toBe("1970-01-01T00:00:00.000Z");
  });

  it("refuses a time that is not a number, writes one past year 9999 as its last millisecond, and formats the next one", () => {
    expect(() => timeToWire(Number.NaN)).toThrow(RangeError);
    // Journals from before the time bound may hold such times (old-journal-times.test.ts).
    expect(timeToWire(8.64e15 + 1)).toBe("9999-12-31T23:59:59.999Z");
    expect(timeToWire(1_000)).toBe("1970-01-01T00:00:01.000Z");
  });

  it("reads back what it writes", () => {
    expect(queryTimeFromWire(timeToWire(1_763_467_200_123), "from")).toBe(1_763_467_200_123);
  });
});

// On 88438e0 times were checked for their shape only, then read by Date.parse, which rolled impossible dates over:
// an alert expiring on 2026-06-31 was stored as July 1, a candle window of 2026-06-31 answered July's bars.
describe("parseIsoTime", () => {
  it("reads every real instant as Date.parse does, in Z and with any offset", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: Date.UTC(9999, 11, 31, 23, 59, 59, 999) }),
        fc.integer({ min: -14 * 60, max: 14 * 60 }),
        (time, offsetMinutes) => {
          const text = new Date(time).toISOString();
          expect(parseIsoTime(text)).toBe(time);
          // The same instant written with an offset: the local wall time, then ±hh:mm.
          const wall = time + offsetMinutes * 60_000;
          if (wall < 0 || wall > Date.UTC(9999, 11, 31, 23, 59, 59, 999)) return;
          const sign = offsetMinutes < 0 ? "-" : "+";
          const hours = String(Math.floor(Math.abs(offsetMinutes) / 60)).padStart(2, "0");
          const minutes = String(Math.abs(offsetMinutes) % 60).padStart(2, "0");
          const local = new Date(wall).toISOString().slice(0, 23);
          expect(parseIsoTime(`${local}${sign}${hours}:${minutes}`)).toBe(time);
        },
      ),
    );
    expect(parseIsoTime("2026-06-01T12:00Z")).toBe(Date.UTC(2026, 5, 1, 12));
    expect(parseIsoTime("2026-06-01T12:00:00.5Z")).toBe(Date.UTC(2026, 5, 1, 12, 0, 0, 500));
    // RFC 3339 writers' microseconds and nanoseconds (Python, Go, Java): the digits past the millisecond are dropped.
    expect(parseIsoTime("2026-06-02T13:00:00.123456+00:00")).toBe(Date.UTC(2026, 5, 2, 13, 0, 0, 123));
    expect(parseIsoTime("2026-06-02T13:00:00.999999999Z")).toBe(Date.UTC(2026, 5, 2, 13, 0, 0, 999));
    expect(parseIsoTime("2026-06-02T13:00:00.1234567890Z")).toBeNull();
    expect(parseIsoTime("2024-02-29T00:00:00Z")).toBe(Date.UTC(2024, 1, 29));
  });

  it("refuses dates and times that name no instant, and times before 1970", () => {
    for (const text of [
      "2026-06-31T00:00:00Z",
      "2026-02-29T00:00:00Z",
      "2026-13-01T00:00:00Z",
      "2026-00-10T00:00:00Z",
      "2026-06-00T00:00:00Z",
      "2026-06-01T24:00:00Z",
      "2026-06-01T12:60:00Z",
      "2026-06-01T12:00:60Z",
      "2026-06-01T12:00:00+24:00",
      "2026-06-01T12:00:00+02:60",
      "2026-06-01T12:00:00",
      "1969-12-31T23:59:59Z",
      "1970-01-01T00:30:00+01:00",
    ])
      expect(parseIsoTime(text), text).toBeNull();
    expect(() => timeFromWire("2026-06-31T00:00:00Z", "expiration")).toThrow(/expiration must be a real ISO 8601/);
  });

  // Found by the audit of time of 7 December: a `to` in epoch seconds was read as January 1970 and answered an empty
  // page; 0 stays the start of time.
  it("refuses epoch seconds, read as milliseconds of 1970, in bodies and query strings; takes 0", () => {
    const seconds = Math.floor(Date.UTC(2026, 5, 3) / 1000);
    expect(() => timeFromWire(seconds, "expiration")).toThrow(/expiration looks like epoch seconds/);
    expect(() => queryTimeFromWire(String(seconds), "to")).toThrow(/to looks like epoch seconds/);
    expect(queryTimeFromWire("0", "from")).toBe(0);
    expect(queryTimeFromWire(String(seconds * 1000), "to")).toBe(Date.UTC(2026, 5, 3));
  });
});
