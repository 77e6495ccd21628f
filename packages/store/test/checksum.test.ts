import { randomBytes } from "node:crypto";
import { crc32 as zlibCrc32 } from "node:zlib";
import { describe, expect, it } from "vitest";
import { crc32, crc32Text, recordChecksum } from "../src/index.ts";

describe("crc32", () => {
  it("gives the standard check values", () => {
    // The CRC-32 catalogue's check value, and the empty input.
    expect(crc32Text("123456789")).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    expect(crc32Text("The quick brown fox jumps over the lazy dog")).toBe(0x414fa339);
  });

  it("agrees with zlib on every length around the 8-byte step, and on a large buffer", () => {
    for (let length = 0; length <= 70; length++) {
      const bytes = randomBytes(length);
      expect(crc32(bytes)).toBe(zlibCrc32(bytes));
    }
    const large = randomBytes(1_000_003);
    expect(crc32(large)).toBe(zlibCrc32(large));
  });

  it("continues over data in parts", () => {
    const bytes = randomBytes(1000);
    for (const split of [0, 1, 7, 8, 9, 500, 1000])
      expect(crc32(bytes.subarray(split), crc32(bytes.subarray(0, split)))).toBe(crc32(bytes));
  });

  it("checksums text as its UTF-8 bytes", () => {
    for (const text of ["", "plain", 'say "hi" \\ é€ 😀', "\u0000", "x".repeat(100_000) + "€"])
      expect(crc32Text(text)).toBe(zlibCrc32(Buffer.from(text, "utf8")));
  });

  it("a record's checksum covers its sequence as well as its payload", () => {
    const payload = '{"type":"BalanceOperation","amount":100}';
    expect(recordChecksum(12, payload)).toBe(zlibCrc32(Buffer.from(`12:${payload}`, "utf8")));
    expect(recordChecksum(12, payload)).not.toBe(recordChecksum(13, payload));
    expect(recordChecksum(12, payload)).not.toBe(recordChecksum(12, payload.replace("100", "101")));
  });
});
