/**
 * Decimals at the faces (API.md: prices, lots and money travel as JSON numbers rounded to the
 * instrument's or currency's digits; inside they are integers, DESIGN.md section 3). Reading is strict:
 * a price with more decimals than the instrument has is refused, never rounded, so what a client sends
 * is exactly what the engine gets. Times travel as ISO 8601 UTC strings; inputs also take epoch ms.
 */
import {
  currencyDigits,
  MAX_TIME_MILLISECONDS,
  isEngineTime,
  parseDecimal,
  toDecimalNumber,
  type DecimalParseFailure,
  type InstrumentSpec,
} from "@bourse/core";
import { ApiError, type ApiErrorCode } from "./errors.ts";

const PARSE_FAILURE_TEXT: Record<DecimalParseFailure, string> = {
  NOT_A_NUMBER: "must be a decimal number",
  TOO_MANY_DECIMALS: "has more decimals than allowed",
  OUT_OF_RANGE: "is out of range",
};

function readDecimal(
  value: number | string,
  digits: number,
  field: string,
  code: ApiErrorCode,
  allowedDecimals = digits,
): number {
  const result = parseDecimal(value, digits);
  if (!result.ok) {
    const detail =
      result.reason === "TOO_MANY_DECIMALS"
        ? `has more than ${allowedDecimals} decimals`
        : PARSE_FAILURE_TEXT[result.reason];
    throw new ApiError(code, `${field} ${detail}`);
  }
  return result.value;
}

export function priceToWire(points: number, instrument: InstrumentSpec): number {
  return toDecimalNumber(points, instrument.digits);
}

export function optionalPriceToWire(points: number | null, instrument: InstrumentSpec): number | null {
  return points === null ? null : priceToWire(points, instrument);
}

/** A price (or a price distance: deviation, trailing distance) in the instrument's points. */
export function priceFromWire(value: number | string, instrument: InstrumentSpec, field: string): number {
  const points = readDecimal(value, instrument.digits, field, "INVALID_PRICE");
  if (points < 0) throw new ApiError("INVALID_PRICE", `${field} must not be negative`);
  return points;
}

/** A price or price distance that may be left out (undefined: not given). */
export function optionalPriceFromWire(
  value: number | string | undefined,
  instrument: InstrumentSpec,
  field: string,
): number | undefined {
  return value === undefined ? undefined : priceFromWire(value, instrument, field);
}

/** A stop level or price distance where null or 0 means none (undefined: not given). */
export function stopFromWire(
  value: number | string | null | undefined,
  instrument: InstrumentSpec,
  field: string,
): number | null | undefined {
  if (value === undefined) return undefined;
  if (value === null) return null;
  const points = priceFromWire(value, instrument, field);
  return points === 0 ? null : points;
}

export function lotsToWire(volumeUnits: number, instrument: InstrumentSpec): number {
  return toDecimalNumber(volumeUnits, instrument.volumeDigits);
}

export function lotsFromWire(value: number | string, instrument: InstrumentSpec, field = "volume"): number {
  const units = readDecimal(value, instrument.volumeDigits, field, "INVALID_VOLUME");
  if (units <= 0) throw new ApiError("INVALID_VOLUME", `${field} must be positive`);
  return units;
}

/**
 * A quantity in units of the base asset (seed 002's `quantity`) as volume units:
 * quantity × 10^volumeDigits / contractSize, which must come out whole.
 */
export function quantityFromWire(value: number | string, instrument: InstrumentSpec, field = "quantity"): number {
  // Units of the base asset may themselves be fractional (0.5 BTC): read them at the volume's precision.
  const scale = instrument.volumeDigits;
  const scaledQuantity = readDecimal(value, scale, field, "INVALID_VOLUME");
  if (scaledQuantity <= 0) throw new ApiError("INVALID_VOLUME", `${field} must be positive`);
  if (scaledQuantity % instrument.contractSize !== 0)
    throw new ApiError(
      "INVALID_VOLUME",
      `${field} must be a multiple of ${toDecimalNumber(instrument.contractSize, scale)} (one volume step of ${instrument.symbol})`,
    );
  return scaledQuantity / instrument.contractSize;
}

export function quantityToWire(volumeUnits: number, instrument: InstrumentSpec): number {
  return toDecimalNumber(volumeUnits * instrument.contractSize, instrument.volumeDigits);
}

export function moneyToWire(minorUnits: number, currency: string): number {
  return toDecimalNumber(minorUnits, currencyDigits(currency));
}

export function moneyFromWire(value: number | string, currency: string, field = "amount"): number {
  const digits = currencyDigits(currency);
  const minor = readDecimal(value, digits, field, "INVALID_AMOUNT");
  if (minor <= 0) throw new ApiError("INVALID_AMOUNT", `${field} must be positive`);
  return minor;
}

/** Margin level as a percent with two decimals (engine: basis points of a percent ×100, rounded down). */
export function marginLevelToWire(basisPoints: number | null): number | null {
  return basisPoints === null ? null : toDecimalNumber(basisPoints, 2);
}

/** The last time formatted: an answer's times, and a batch's, are mostly the same millisecond. */
let lastWireTime = { milliseconds: Number.NaN, text: "" };

/**
 * Epoch milliseconds as ISO 8601 (UTC, milliseconds). A time past the end of year 9999 is written as its last
 * millisecond: journals written before times were bounded (MAX_TIME_MILLISECONDS) may hold a GTD expiration of
 * 9 × 10^15 ms, which no date holds, and every view of that order answered 500. As an expiration it means the
 * same: not before the end of 9999.
 */
export function timeToWire(milliseconds: number): string {
  if (milliseconds !== lastWireTime.milliseconds)
    lastWireTime = { milliseconds, text: new Date(Math.min(milliseconds, MAX_TIME_MILLISECONDS)).toISOString() };
  return lastWireTime.text;
}

export function optionalTimeToWire(milliseconds: number | null): string | null {
  return milliseconds === null ? null : timeToWire(milliseconds);
}

/**
 * ISO 8601 with a zone, or epoch milliseconds. Up to nine decimals of a second, as RFC 3339 writers give them
 * (Python's isoformat six, Go's RFC3339Nano and Java's Instant nine): three only refused them (found by the audit of
 * time of 7 December). Engine time is in milliseconds: the digits past the third are dropped (the instant is truncated).
 */
const ISO_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:Z|([+-])(\d{2}):(\d{2}))$/;

/**
 * An ISO 8601 time with a zone (`2026-06-01T12:00:00Z`, `…+02:00`, seconds and milliseconds optional) as epoch
 * milliseconds; null when it is not one, or names no real instant: `Date.parse` rolled 2026-06-31 over to
 * July 1 and took hour 24. The API's times and the CSV replay's share it.
 */
export function parseIsoTime(text: string): number | null {
  const match = ISO_TIME.exec(text);
  if (!match) return null;
  const [year, month, day, hour, minute] = match.slice(1, 6).map(Number) as [number, number, number, number, number];
  const second = Number(match[6] ?? 0);
  const millisecond = Number((match[7] ?? "0").slice(0, 3).padEnd(3, "0"));
  const offsetHours = Number(match[9] ?? 0);
  const offsetMinutes = Number(match[10] ?? 0);
  if (hour > 23 || minute > 59 || second > 59 || offsetHours > 23 || offsetMinutes > 59) return null;
  const local = Date.UTC(year, month - 1, day, hour, minute, second, millisecond);
  const date = new Date(local);
  if (date.getUTCFullYear() !== year || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return null;
  const time = local - (match[8] === "-" ? -1 : 1) * (offsetHours * 60 + offsetMinutes) * 60_000;
  return isEngineTime(time) ? time : null;
}

/**
 * Epoch times from 1 to below this are refused: read as milliseconds they fall before 3 March 1973, and times in
 * epoch seconds (a common export, a common client mistake) would otherwise be taken for 1970 without a word: a CSV
 * file replayed a thousand times faster than recorded, a history `to` in seconds answered an empty page (found by the
 * audits of market data and of time of 7 December). 0, the start of time, is taken.
 */
export const EARLIEST_EPOCH_MILLISECONDS = 100_000_000_000;

export function timeFromWire(value: number | string, field: string): number {
  if (typeof value === "number") {
    if (!isEngineTime(value))
      throw new ApiError(
        "INVALID_DATA",
        `${field} must be epoch milliseconds from 1970 to the end of year 9999, or an ISO 8601 time`,
      );
    if (value > 0 && value < EARLIEST_EPOCH_MILLISECONDS)
      throw new ApiError(
        "INVALID_DATA",
        `${field} looks like epoch seconds: times are epoch milliseconds (from 1973 on, or 0) or ISO 8601`,
      );
    return value;
  }
  const milliseconds = parseIsoTime(value);
  if (milliseconds === null)
    throw new ApiError(
      "INVALID_DATA",
      `${field} must be a real ISO 8601 time with a zone from 1970 on, e.g. 2026-06-01T12:00:00Z`,
    );
  return milliseconds;
}

/** A time that may be null (none) or undefined (not given). */
export function optionalTimeFromWire(
  value: number | string | null | undefined,
  field: string,
): number | null | undefined {
  if (value === undefined || value === null) return value;
  return timeFromWire(value, field);
}

/**
 * A time in a query string: epoch milliseconds (digits only; too many digits is refused as out of range),
 * or ISO 8601 with a zone. A number (a query coerced by its schema) is taken as epoch milliseconds.
 */
export function queryTimeFromWire(value: number | string, field: string): number {
  return timeFromWire(typeof value === "string" && /^[0-9]+$/.test(value) ? Number(value) : value, field);
}
