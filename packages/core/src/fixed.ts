/**
 * Fixed-point numbers. Every quantity in state, events and storage is an integer:
 * prices in points (price × 10^digits), volumes in volume units (lots × 10^volumeDigits),
 * money in minor units of its currency. Decimals exist only at the faces, where they are
 * parsed with `parseDecimal` and printed with `formatDecimal` / `toDecimalNumber`.
 *
 * Arithmetic that can exceed 2^53 (price × volume × contract size …) goes through
 * `multiplyDivide`, which is exact: a Number fast path when the product is provably
 * safe, BigInt otherwise, and one explicit named rounding at the end.
 */

/** The named rounding rules. Every division of money or price in Bourse names one. */
export const Rounding = {
  /** Toward zero (truncate). */
  DOWN: "DOWN",
  /** Away from zero. */
  UP: "UP",
  /** Toward negative infinity. */
  FLOOR: "FLOOR",
  /** Toward positive infinity. */
  CEILING: "CEILING",
  /** Nearest; ties away from zero ("commercial rounding"). */
  HALF_UP: "HALF_UP",
  /** Nearest; ties to the even neighbour ("banker's rounding"). */
  HALF_EVEN: "HALF_EVEN",
} as const;
export type Rounding = (typeof Rounding)[keyof typeof Rounding];

/** A value outside the integer domain reached a checked constructor. This is a bug, not a user error. */
export class FixedPointError extends Error {
  override readonly name = "FixedPointError";
}

/** Checked constructor: any integer quantity (points, volume units, minor units) must be a safe integer. */
export function checkedInteger(value: number, what: string): number {
  if (!Number.isSafeInteger(value)) throw new FixedPointError(`${what} must be a safe integer, got ${value}`);
  return value;
}

const POWERS_OF_TEN: number[] = [];
for (let exponent = 0, power = 1; exponent <= 15; exponent++, power *= 10) POWERS_OF_TEN.push(power);
const BIG_POWERS_OF_TEN: bigint[] = POWERS_OF_TEN.map((power) => BigInt(power));

/** 10^exponent as an exact integer (exponent 0..15). */
export function powerOfTen(exponent: number): number {
  const power = POWERS_OF_TEN[exponent];
  if (power === undefined) throw new FixedPointError(`10^${exponent} is out of range`);
  return power;
}

function bigPowerOfTen(exponent: number): bigint {
  const power = BIG_POWERS_OF_TEN[exponent];
  if (power === undefined) throw new FixedPointError(`10^${exponent} is out of range`);
  return power;
}

/**
 * The one rounding decision, shared by the BigInt and Number paths: given an inexact quotient,
 * whether to move it one step away from zero. `half` compares twice the remainder with the
 * denominator (−1 below half, 0 exactly half, 1 above).
 */
function roundsAwayFromZero(rounding: Rounding, negative: boolean, half: -1 | 0 | 1, quotientIsEven: boolean): boolean {
  switch (rounding) {
    case Rounding.DOWN:
      return false;
    case Rounding.UP:
      return true;
    case Rounding.FLOOR:
      return negative;
    case Rounding.CEILING:
      return !negative;
    case Rounding.HALF_UP:
      return half >= 0;
    case Rounding.HALF_EVEN:
      return half > 0 || (half === 0 && !quotientIsEven);
  }
}

/** Rounds the exact quotient numerator/denominator (denominator > 0) with the named rule. */
function roundQuotientBig(numerator: bigint, denominator: bigint, rounding: Rounding): bigint {
  const quotient = numerator / denominator; // truncates toward zero
  const remainder = numerator - quotient * denominator;
  if (remainder === 0n) return quotient;
  const negative = numerator < 0n;
  const twiceRemainder = (remainder < 0n ? -remainder : remainder) * 2n;
  const half = twiceRemainder > denominator ? 1 : twiceRemainder < denominator ? -1 : 0;
  if (!roundsAwayFromZero(rounding, negative, half, quotient % 2n === 0n)) return quotient;
  return negative ? quotient - 1n : quotient + 1n;
}

/** Same rule as `roundQuotientBig` for safe integers (|numerator|, denominator < 2^53), without BigInt. */
function roundQuotientNumber(numerator: number, denominator: number, rounding: Rounding): number {
  let quotient = Math.trunc(numerator / denominator);
  let remainder = numerator - quotient * denominator;
  if (!Number.isSafeInteger(remainder))
    return Number(roundQuotientBig(BigInt(numerator), BigInt(denominator), rounding));
  // The float quotient can be one off near an integer; the exact remainder corrects it.
  let correction = 0;
  if (numerator >= 0) {
    if (remainder < 0) correction = -1;
    else if (remainder >= denominator) correction = 1;
  } else {
    if (remainder > 0) correction = 1;
    else if (-remainder >= denominator) correction = -1;
  }
  quotient += correction;
  remainder -= correction * denominator;
  if (remainder === 0) return quotient === 0 ? 0 : quotient;
  const negative = numerator < 0;
  const twiceRemainder = Math.abs(remainder) * 2;
  const half = twiceRemainder > denominator ? 1 : twiceRemainder < denominator ? -1 : 0;
  if (!roundsAwayFromZero(rounding, negative, half, quotient % 2 === 0)) return quotient;
  return negative ? quotient - 1 : quotient + 1;
}

/**
 * Exact (a1 × a2 × … ) / (d1 × d2 × …) rounded once with `rounding`.
 * All inputs are integers; denominators are positive.
 */
export function multiplyDivide(factors: readonly number[], divisors: readonly number[], rounding: Rounding): number {
  const quotient = exactQuotient(factors, divisors, rounding);
  return typeof quotient === "number" ? quotient : checkedInteger(Number(quotient), "result");
}

/**
 * `multiplyDivide`, but a quotient above `limit` is `limit` (it saturates): for a ratio only
 * shown, never used in a rule, whose huge values all mean the same (a margin level with a tiny margin).
 */
export function multiplyDivideAtMost(
  factors: readonly number[],
  divisors: readonly number[],
  rounding: Rounding,
  limit: number,
): number {
  checkedInteger(limit, "limit");
  const quotient = exactQuotient(factors, divisors, rounding);
  if (typeof quotient === "number") return Math.min(quotient, limit);
  return quotient > BigInt(limit) ? limit : checkedInteger(Number(quotient), "result");
}

/** The rounded quotient: a number when every product stays a safe integer, else a bigint (not yet checked). */
function exactQuotient(factors: readonly number[], divisors: readonly number[], rounding: Rounding): number | bigint {
  let numerator = 1;
  let safe = true;
  for (const factor of factors) {
    numerator *= factor;
    if (!Number.isSafeInteger(numerator)) {
      safe = false;
      break;
    }
  }
  let denominator = 1;
  if (safe) {
    for (const divisor of divisors) {
      denominator *= divisor;
      if (!Number.isSafeInteger(denominator)) {
        safe = false;
        break;
      }
    }
  }
  if (safe) {
    if (denominator <= 0) throw new FixedPointError("division by a non-positive integer");
    // `+ 0` folds a negative zero into zero so results compare and serialise alike.
    return roundQuotientNumber(numerator, denominator, rounding) + 0;
  }
  let bigNumerator = 1n;
  for (const factor of factors) bigNumerator *= BigInt(factor);
  let bigDenominator = 1n;
  for (const divisor of divisors) bigDenominator *= BigInt(divisor);
  if (bigDenominator <= 0n) throw new FixedPointError("division by a non-positive integer");
  return roundQuotientBig(bigNumerator, bigDenominator, rounding);
}

/** Exact integer division with a named rounding. */
export function divideRounded(numerator: number, denominator: number, rounding: Rounding): number {
  return multiplyDivide([numerator], [denominator], rounding);
}

/** Changes the scale of an integer from `fromDigits` to `toDigits` decimal places. */
export function rescale(value: number, fromDigits: number, toDigits: number, rounding: Rounding): number {
  if (toDigits >= fromDigits) return checkedInteger(value * powerOfTen(toDigits - fromDigits), "rescaled value");
  return divideRounded(value, powerOfTen(fromDigits - toDigits), rounding);
}

const DECIMAL_PATTERN = /^([+-])?(\d+)(?:\.(\d+))?$/;

/** Why a decimal could not be read; the faces map it to their own validation error. */
export type DecimalParseFailure = "NOT_A_NUMBER" | "TOO_MANY_DECIMALS" | "OUT_OF_RANGE";

export type DecimalParseResult = { ok: true; value: number } | { ok: false; reason: DecimalParseFailure };

/**
 * Parses a decimal (string or JSON number) into an integer scaled by 10^digits.
 * Without `rounding` the value must be exact at that scale (strict: `1.084405` with 5 digits fails);
 * with `rounding` extra decimals are rounded by that rule. JSON numbers are read through their
 * shortest round-trip string (`String(1.0844)` is "1.0844"), so no binary float arithmetic touches the value.
 */
export function parseDecimal(input: string | number, digits: number, rounding?: Rounding): DecimalParseResult {
  let text: string;
  if (typeof input === "number") {
    if (!Number.isFinite(input)) return { ok: false, reason: "NOT_A_NUMBER" };
    text = numberToPlainString(input);
  } else {
    text = input.trim();
  }
  const match = DECIMAL_PATTERN.exec(text);
  if (!match) return { ok: false, reason: "NOT_A_NUMBER" };
  const sign = match[1] === "-" ? -1n : 1n;
  const integerPart = match[2] ?? "0";
  let fraction = match[3] ?? "";
  if (integerPart.length > 16) return { ok: false, reason: "OUT_OF_RANGE" };
  let scaled: bigint;
  if (fraction.length <= digits) {
    fraction = fraction.padEnd(digits, "0");
    scaled = BigInt(integerPart + fraction);
  } else {
    const excess = fraction.slice(digits);
    if (rounding === undefined) {
      if (/[1-9]/.test(excess)) return { ok: false, reason: "TOO_MANY_DECIMALS" };
      scaled = BigInt(integerPart + fraction.slice(0, digits));
    } else {
      const exact = BigInt(integerPart + fraction);
      scaled = roundQuotientBig(sign * exact, bigPowerOfTen(fraction.length - digits), rounding) * sign;
    }
  }
  const value = Number(sign * scaled);
  if (!Number.isSafeInteger(value)) return { ok: false, reason: "OUT_OF_RANGE" };
  return { ok: true, value: value === 0 ? 0 : value };
}

/** Like `parseDecimal` but throws: for trusted inputs such as the built-in instrument table and tests. */
export function decimalToInteger(input: string | number, digits: number, rounding?: Rounding): number {
  const result = parseDecimal(input, digits, rounding);
  if (!result.ok) throw new FixedPointError(`cannot read ${String(input)} at ${digits} digits: ${result.reason}`);
  return result.value;
}

function numberToPlainString(value: number): string {
  const text = String(value);
  if (!/e/i.test(text)) return text;
  // Exponent notation (1e-7, 1.5e21): expand it exactly from the digits JavaScript printed.
  const [mantissa = "", exponentText = "0"] = text.toLowerCase().split("e");
  const exponent = Number(exponentText);
  const negative = mantissa.startsWith("-");
  const unsigned = negative ? mantissa.slice(1) : mantissa;
  const [whole = "", fraction = ""] = unsigned.split(".");
  const allDigits = whole + fraction;
  const pointPosition = whole.length + exponent;
  let plain: string;
  if (pointPosition <= 0) plain = "0." + "0".repeat(-pointPosition) + allDigits;
  else if (pointPosition >= allDigits.length) plain = allDigits + "0".repeat(pointPosition - allDigits.length);
  else plain = allDigits.slice(0, pointPosition) + "." + allDigits.slice(pointPosition);
  return (negative ? "-" : "") + plain;
}

/** Prints a scaled integer as an exact decimal string with exactly `digits` decimals. */
export function formatDecimal(value: number, digits: number): string {
  checkedInteger(value, "value");
  const negative = value < 0;
  const text = String(Math.abs(value)).padStart(digits + 1, "0");
  const whole = text.slice(0, text.length - digits);
  const fraction = text.slice(text.length - digits);
  return (negative ? "-" : "") + (digits > 0 ? `${whole}.${fraction}` : whole);
}

/**
 * A scaled integer as the nearest JSON number, for the wire (API.md: decimals travel as JSON numbers).
 * Rule "wire decimal": the double nearest to the exact decimal value / 10^digits, i.e. what
 * `Number(formatDecimal(value, digits))` parses. A division does it without the string: the integer and
 * 10^digits (digits ≤ 15) are exact doubles and IEEE 754 division rounds the exact quotient to the nearest
 * double, as parsing the decimal text does (a property test pins the two together). Display only: nothing
 * computes with the result.
 */
export function toDecimalNumber(value: number, digits: number): number {
  // + 0 turns -0 into 0, as the text "0.00" parses.
  return checkedInteger(value, "value") / powerOfTen(digits) + 0;
}
