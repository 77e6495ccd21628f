import { describe, expect, it } from "vitest";
import { queryTimeFromWire, timeToWire } from "../src/wire.ts";

describe("times on the wire", () => {
  it("writes ISO 8601 UTC with milliseconds, the same text for the same instant however often it is asked", () => {
    expect(timeToWire(0)).toBe("1970-01-01T00:00:00.000Z");
    expect(timeToWire(1_763_467_200_123)).toBe("2025-11-18T12:00:00.123Z");
    expect(timeToWire(1_763_467_200_123)).toBe("2025-11-18T12:00:00.123Z");
    expect(timeToWire(1_763_467_200_124)).toBe("2025-11-18T12:00:00.124Z");
    expect(timeToWire(0)).toBe("1970-01-01T00:00:00.000Z");
  });

  it("refuses a time Date cannot hold and still formats the next one", () => {
    expect(() => timeToWire(Number.NaN)).toThrow(RangeError);
    expect(() => timeToWire(8.64e15 + 1)).toThrow(RangeError);
    expect(timeToWire(1_000)).toBe("1970-01-01T00:00:01.000Z");
  });

  it("reads back what it writes", () => {
    expect(queryTimeFromWire(timeToWire(1_763_467_200_123), "from")).toBe(1_763_467_200_123);
  });
});
