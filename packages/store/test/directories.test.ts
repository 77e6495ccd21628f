import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { makeDirectories } from "../src/directories.ts";

let scratch: string | null = null;
afterEach(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  scratch = null;
});

describe("makeDirectories", () => {
  it("creates every missing folder of a path, and leaves an existing one as it is", () => {
    scratch = mkdtempSync(path.join(tmpdir(), "bourse-directories-"));
    const nested = path.join(scratch, "a", "b", "c");
    makeDirectories(nested);
    expect(statSync(nested).isDirectory()).toBe(true);
    makeDirectories(nested);
    makeDirectories(scratch);
    expect(statSync(nested).isDirectory()).toBe(true);
  });

  it("fails at once with the system's error under a folder that refuses new entries (Node's recursive mkdir never returned)", () => {
    // /proc answers ENOENT to mkdir; Node 20's mkdirSync(..., { recursive: true }) loops forever on it.
    expect(existsSync("/proc/self")).toBe(true);
    expect(() => makeDirectories("/proc/bourse-data/journal")).toThrow(
      expect.objectContaining({ code: "ENOENT" }) as Error,
    );
  });

  it("fails with the system's error where a file stands in the path", () => {
    scratch = mkdtempSync(path.join(tmpdir(), "bourse-directories-"));
    const file = path.join(scratch, "file");
    writeFileSync(file, "x");
    expect(() => makeDirectories(path.join(file, "data"))).toThrow(
      expect.objectContaining({ code: "ENOTDIR" }) as Error,
    );
  });
});
