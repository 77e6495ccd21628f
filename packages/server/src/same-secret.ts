import { timingSafeEqual } from "node:crypto";

/**
 * Whether a secret presented (a token, a key's hash, a signature) is the one expected, in time that does not depend on
 * where they differ: a byte-by-byte `===` tells a guesser how much of a guess was right. Different lengths answer at
 * once (the length of these secrets is no secret).
 */
export function sameSecret(given: string, expected: string): boolean {
  const left = Buffer.from(given, "utf8");
  const right = Buffer.from(expected, "utf8");
  return left.length === right.length && timingSafeEqual(left, right);
}
