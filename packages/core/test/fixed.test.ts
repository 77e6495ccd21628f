import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  FixedPointError,
  MoneyRounding,
  Rounding,
  checkedInteger,
  formatDecimal,
  toDecimalNumber,
  multiplyDivide,
  parseDecimal,
  proRata,
  rescale,
  rescaledMargin,
} from "../src/index.ts";

describe("rounding rules", () => {
  const table: [number, number, Rounding, number][] = [
    // numerator, denominator, rule, expected
    [25, 10, Rounding.HALF_UP, 3],
    [-25, 10, Rounding.HALF_UP, -3],
    [25, 10, Rounding.HALF_EVEN, 2],
    [35, 10, Rounding.HALF_EVEN, 4],
    [-25, 10, Rounding.HALF_EVEN, -2],
    [24, 10, Rounding.HALF_UP, 2],
    [26, 10, Rounding.HALF_EVEN, 3],
    [21, 10, Rounding.UP, 3],
    [-21, 10, Rounding.UP, -3],
    [29, 10, Rounding.DOWN, 2],
    [-29, 10, Rounding.DOWN, -2],
    [-21, 10, Rounding.FLOOR, -3],
    [21, 10, Rounding.FLOOR, 2],
    [-29, 10, Rounding.CEILING, -2],
    [21, 10, Rounding.CEILING, 3],
    [20, 10, Rounding.UP, 2],
  ];
  for (const [numerator, denominator, rule, expected] of table) {
    it(`${numerator}/${denominator} ${rule} = ${expected}`, () => {
      expect(multiplyDivide([numerator], [denominator], rule)).toBe(expected);
    });
  }

  it("names one rule per money purpose", () => {
    expect(MoneyRounding).toEqual({
      PROFIT: "HALF_UP",
      MARGIN: "CEILING",
      COMMISSION: "CEILING",
      SWAP: "HALF_UP",
      PRO_RATA: "HALF_EVEN",
      CONVERSION: "HALF_UP",
      MARGIN_RESCALE: "CEILING",
    });
  });

  it("rescales a margin to a new leverage exactly when it can, else up (MARGIN_RESCALE)", () => {
    expect(rescaledMargin(108_430, 100, 10)).toBe(1_084_300);
    expect(rescaledMargin(1_084_300, 10, 100)).toBe(108_430);
    // 108,430 × 100 / 300 = 36,143.33…: up to 36,144, the broker never holding less than the leverage requires.
    expect(rescaledMargin(108_430, 100, 300)).toBe(36_144);
  });

  it("agrees with exact BigInt arithmetic beyond 2^53 intermediates", () => {
    const rules = Object.values(Rounding);
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: -1e9, max: 1e9 }), { minLength: 1, maxLength: 4 }),
        fc.array(fc.integer({ min: 1, max: 1e6 }), { minLength: 1, maxLength: 3 }),
        fc.constantFrom(...rules),
        (factors, divisors, rule) => {
          const numerator = factors.reduce((product, factor) => product * BigInt(factor), 1n);
          const denominator = divisors.reduce((product, divisor) => product * BigInt(divisor), 1n);
          const quotient = numerator / denominator;
          if (quotient > BigInt(Number.MAX_SAFE_INTEGER) || quotient < -BigInt(Number.MAX_SAFE_INTEGER)) return;
          const result = multiplyDivide(factors, divisors, rule);
          const lower = Number(numerator < 0n && numerator % denominator !== 0n ? quotient - 1n : quotient);
          // The result is the floor or the floor + 1, and exact when the division is exact.
          expect(result === lower || result === lower + 1).toBe(true);
          if (numerator % denominator === 0n) expect(result).toBe(Number(quotient));
          if (rule === Rounding.FLOOR) expect(result).toBe(lower);
        },
      ),
    );
  });

  it("never returns negative zero", () => {
    expect(Object.is(multiplyDivide([-1], [10], Rounding.DOWN), 0)).toBe(true);
  });
});

describe("decimal parsing and formatting", () => {
  it("parses strings and JSON numbers exactly", () => {
    expect(parseDecimal("1.0844", 5)).toEqual({ ok: true, value: 108440 });
    expect(parseDecimal(1.0844, 5)).toEqual({ ok: true, value: 108440 });
    expect(parseDecimal(0.1 + 0.2, 2)).toEqual({ ok: false, reason: "TOO_MANY_DECIMALS" });
    expect(parseDecimal("-12.5", 2)).toEqual({ ok: true, value: -1250 });
    expect(parseDecimal(1e-7, 8)).toEqual({ ok: true, value: 10 });
    expect(parseDecimal(1e21, 0)).toEqual({ ok: false, reason: "OUT_OF_RANGE" });
  });

  it("refuses excess precision unless a rounding rule is named", () => {
    expect(parseDecimal("1.084405", 5)).toEqual({ ok: false, reason: "TOO_MANY_DECIMALS" });
    expect(parseDecimal("1.084405", 5, Rounding.HALF_EVEN)).toEqual({ ok: true, value: 108440 });
    expect(parseDecimal("1.084405", 5, Rounding.HALF_UP)).toEqual({ ok: true, value: 108441 });
    expect(parseDecimal("-1.084405", 5, Rounding.HALF_UP)).toEqual({ ok: true, value: -108441 });
    expect(parseDecimal("1.0844000", 5)).toEqual({ ok: true, value: 108440 });
  });

  it("rejects what is not a decimal", () => {
    for (const input of ["", "abc", "1e5", "1.2.3", " ", "0x10", Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(parseDecimal(input as string | number, 2).ok).toBe(false);
    }
  });

  it("formats and parses back to the same integer", () => {
    fc.assert(
      fc.property(fc.integer({ min: -1e15, max: 1e15 }), fc.integer({ min: 0, max: 8 }), (value, digits) => {
        expect(parseDecimal(formatDecimal(value, digits), digits)).toEqual({
          ok: true,
          value: value === 0 ? 0 : value,
        });
      }),
    );
    expect(formatDecimal(-5, 2)).toBe("-0.05");
    expect(formatDecimal(108440, 5)).toBe("1.08440");
    expect(formatDecimal(150230, 0)).toBe("150230");
  });

  it("puts a scaled integer on the wire as the number its decimal text parses to (rule: wire decimal)", () => {
    fc.assert(
      fc.property(fc.maxSafeInteger(), fc.integer({ min: 0, max: 15 }), (value, digits) => {
        expect(Object.is(toDecimalNumber(value, digits), Number(formatDecimal(value, digits)) + 0)).toBe(true);
      }),
      { numRuns: 20_000 },
    );
    expect(toDecimalNumber(108440, 5)).toBe(1.0844);
    expect(toDecimalNumber(-5, 2)).toBe(-0.05);
    expect(Object.is(toDecimalNumber(-0, 2), 0)).toBe(true);
    expect(toDecimalNumber(Number.MAX_SAFE_INTEGER, 15)).toBe(Number("9.007199254740991"));
    expect(() => toDecimalNumber(1.5, 2)).toThrow(FixedPointError);
  });

  it("rescales between digit counts with a named rule", () => {
    expect(rescale(108445, 5, 4, Rounding.HALF_EVEN)).toBe(10844);
    expect(rescale(108445, 5, 4, Rounding.HALF_UP)).toBe(10845);
    expect(rescale(1234, 2, 4, Rounding.DOWN)).toBe(123400);
  });

  it("checked constructors refuse non-integers", () => {
    expect(() => checkedInteger(1.5, "price")).toThrow(FixedPointError);
    expect(() => checkedInteger(2 ** 53, "price")).toThrow(FixedPointError);
  });
});

describe("pro-rata split", () => {
  it("the parts of successive partial closes add up to the whole", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -1e12, max: 1e12 }),
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 10 }),
        (total, parts) => {
          let remainingTotal = total;
          let remainingVolume = parts.reduce((sum, part) => sum + part, 0);
          let taken = 0;
          for (const part of parts) {
            const share = proRata(remainingTotal, part, remainingVolume);
            taken += share;
            remainingTotal -= share;
            remainingVolume -= part;
          }
          expect(taken).toBe(total);
          expect(remainingTotal).toBe(0);
        },
      ),
    );
  });
});
