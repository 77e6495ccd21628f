import { describe, expect, it } from "vitest";
import { BoundedMap } from "../src/bounded-map.ts";

describe("BoundedMap", () => {
  it("forgets the oldest entry when a new key would pass the capacity, never on a replaced key", () => {
    const map = new BoundedMap<string, number>(2);
    map.set("a", 1);
    map.set("b", 2);
    map.set("a", 10);
    expect(map.size).toBe(2);
    map.set("c", 3);
    expect(map.get("a")).toBeUndefined();
    expect(map.get("b")).toBe(2);
    expect(map.get("c")).toBe(3);
  });

  it("deletes by key and by predicate", () => {
    const map = new BoundedMap<string, { user: string }>(10);
    map.set("s1", { user: "u1" });
    map.set("s2", { user: "u2" });
    map.set("s3", { user: "u1" });
    expect(map.deleteWhere((value) => value.user === "u1")).toBe(2);
    expect(map.delete("s2")).toBe(true);
    expect(map.size).toBe(0);
  });

  it("refuses a capacity that is not a positive integer", () => {
    expect(() => new BoundedMap(0)).toThrow(RangeError);
    expect(() => new BoundedMap(1.5)).toThrow(RangeError);
  });
});
