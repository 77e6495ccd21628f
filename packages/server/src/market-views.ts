/**
 * Market views both faces show (the Client API's market routes, routes/market.ts, and the Automation API,
 * automation-views.ts): a symbol's trading status, its contract specification, candles and the lookup of
 * a path symbol. Each face keeps its own spelling at the edge (the Automation API's lower-case status, the
 * Client API's `timezone` and `swapMode`), composed around the fields computed here once.
 */
import {
  TIME_ZONES,
  currencyDigits,
  isSessionOpen,
  nextSessionChange,
  swapDaysAt,
  toDecimalNumber,
  type InstrumentSpec,
} from "@bourse/core";
import type { Candle } from "@bourse/store";
import { Type, type Static, type TSchema } from "@sinclair/typebox";
import { CANDLE_TIMEFRAMES, weekSessionsView, type CandleTimeframe } from "./market-data.ts";
import type { Platform } from "./platform.ts";
import { lotsToWire, optionalTimeToWire, priceToWire, timeToWire } from "./wire.ts";

/** OPEN (session open, trading allowed), CLOSE_ONLY (session open, closing only), CLOSED (outside the session), DISABLED. */
export type MarketStatus = "OPEN" | "CLOSE_ONLY" | "CLOSED" | "DISABLED";

export function marketStatus(instrument: InstrumentSpec, now: number): MarketStatus {
  if (instrument.tradeMode === "DISABLED") return "DISABLED";
  if (!isSessionOpen(instrument, now)) return "CLOSED";
  return instrument.tradeMode === "CLOSE_ONLY" ? "CLOSE_ONLY" : "OPEN";
}

/** The instrument of a path symbol: as written, else upper-cased (eurusd); 404 UNKNOWN_SYMBOL otherwise. */
export function instrumentOf(platform: Platform, symbol: string): InstrumentSpec {
  return platform.instrument(tradedSymbol(platform, symbol));
}

/**
 * A symbol as the platform trades it, whatever the case the client wrote it in ("eurusd" is EURUSD); one no instrument
 * has, as written (the watchlist may still hold a symbol no longer traded, to remove it).
 */
export function tradedSymbol(platform: Platform, text: string): string {
  if (platform.instruments.has(text)) return text;
  const upper = text.toUpperCase();
  return platform.instruments.has(upper) ? upper : text;
}

/** The zone whose clock an instrument's sessions are read on (both faces, and the market table's column). */
export const SessionTimeZoneSchema = Type.Union(
  TIME_ZONES.map((zone) => Type.Literal(zone)),
  {
    description:
      "The time zone (IANA name) whose local clock the sessions are in, daylight saving time included: UTC, or a " +
      "market's own (forex America/New_York, CME America/Chicago, Xetra Europe/Berlin)",
  },
);

/**
 * The contract specification's fields both faces show, in their order; `status` is the face's own
 * spelling of the status.
 */
export function specificationProperties<Status extends TSchema>(status: Status) {
  return {
    symbol: Type.String(),
    description: Type.String(),
    assetClass: Type.String(),
    digits: Type.Integer({ description: "Price decimals" }),
    point: Type.Number({ description: "The smallest price change, 10^-digits" }),
    contractSize: Type.Number({ description: "Units of the base asset in one lot" }),
    volumeMin: Type.Number({ description: "Lots" }),
    volumeMax: Type.Number({ description: "Lots" }),
    volumeStep: Type.Number({ description: "Lots" }),
    baseCurrency: Type.String(),
    quoteCurrency: Type.String(),
    marginCurrency: Type.String(),
    profitCurrency: Type.String(),
    marginMode: Type.String({ description: "FOREX, CFD or CFD_LEVERAGE (MetaTrader 5's calculation modes)" }),
    marginRate: Type.Number({ description: "Initial margin rate in percent" }),
    tradeMode: Type.String({ description: "FULL, CLOSE_ONLY or DISABLED" }),
    status,
    nextChange: Type.Union([Type.String({ format: "date-time" }), Type.Null()], {
      description: "When the session next opens or closes; null: never",
    }),
    sessions: Type.Array(Type.Object({ day: Type.String(), intervals: Type.Array(Type.String()) }), {
      description: "Sunday first; intervals HH:MM-HH:MM on the clock of sessionTimeZone (24:00 ends a day)",
    }),
    sessionTimeZone: SessionTimeZoneSchema,
    stopsLevel: Type.Integer({
      description: "Points: the minimal distance of pending prices, SL and TP from the market",
    }),
    swapLong: Type.Number({ description: "Points per lot per day (negative: charged)" }),
    swapShort: Type.Number({ description: "Points per lot per day (negative: charged)" }),
    swapDays: Type.Array(Type.Integer({ minimum: 0, maximum: 7 }), {
      minItems: 7,
      maxItems: 7,
      description:
        "Days of swap charged at the rollover that ends each trading day, Sunday first " +
        "(forex [0,1,1,3,1,1,0]: the weekend on Wednesday; index CFDs on Friday; crypto every day)",
    }),
    commission: Type.Number({ description: "Per lot per deal side, in commissionCurrency" }),
    commissionCurrency: Type.String(),
  };
}

/** The values of specificationProperties (status spelled as MarketStatus); the engine's calendar from its configuration. */
export function specificationFields(instrument: InstrumentSpec, now: number, tripleSwapWeekday: number) {
  return {
    symbol: instrument.symbol,
    description: instrument.description,
    assetClass: instrument.assetClass,
    digits: instrument.digits,
    point: toDecimalNumber(1, instrument.digits),
    contractSize: instrument.contractSize,
    volumeMin: lotsToWire(instrument.volumeMin, instrument),
    volumeMax: lotsToWire(instrument.volumeMax, instrument),
    volumeStep: lotsToWire(instrument.volumeStep, instrument),
    baseCurrency: instrument.baseCurrency,
    quoteCurrency: instrument.quoteCurrency,
    marginCurrency: instrument.marginCurrency,
    profitCurrency: instrument.profitCurrency,
    marginMode: instrument.marginMode,
    marginRate: toDecimalNumber(instrument.marginRatePpm, 4),
    tradeMode: instrument.tradeMode,
    status: marketStatus(instrument, now),
    nextChange: optionalTimeToWire(nextSessionChange(instrument, now)),
    sessions: weekSessionsView(instrument.sessions),
    sessionTimeZone: instrument.sessionTimeZone,
    stopsLevel: instrument.stopsLevelPoints,
    swapLong: toDecimalNumber(instrument.swapLongMilliPoints, 3),
    swapShort: toDecimalNumber(instrument.swapShortMilliPoints, 3),
    swapDays: WEEKDAYS.map((weekday) => swapDaysAt(instrument, weekday, tripleSwapWeekday)),
    commission: toDecimalNumber(instrument.commissionPerLot, currencyDigits(instrument.commissionCurrency)),
    commissionCurrency: instrument.commissionCurrency,
  };
}

const WEEKDAYS = [0, 1, 2, 3, 4, 5, 6] as const;

/** The bar size of a candle query that names none (both faces). */
export const DEFAULT_CANDLE_TIMEFRAME: CandleTimeframe = "H1";

/** A candle query's bar size (both faces). */
export const CandleTimeframeSchema = Type.Union(
  CANDLE_TIMEFRAMES.map((timeframe) => Type.Literal(timeframe)),
  {
    default: DEFAULT_CANDLE_TIMEFRAME,
    description: `${CANDLE_TIMEFRAMES.join(" ")} (default ${DEFAULT_CANDLE_TIMEFRAME})`,
  },
);

/** A bar on the wire (both faces): open time, OHLC by bid in the instrument's digits, ticks. */
export const CandleViewSchema = Type.Object({
  time: Type.String({
    format: "date-time",
    description: "The bar's open time (an instant, written in UTC; bars start on the server's chart clock)",
  }),
  open: Type.Number(),
  high: Type.Number(),
  low: Type.Number(),
  close: Type.Number(),
  tickVolume: Type.Integer({ description: "Ticks in the bar" }),
});

export function candleView(candle: Candle, instrument: InstrumentSpec): Static<typeof CandleViewSchema> {
  return {
    time: timeToWire(candle.openTime),
    open: priceToWire(candle.open, instrument),
    high: priceToWire(candle.high, instrument),
    low: priceToWire(candle.low, instrument),
    close: priceToWire(candle.close, instrument),
    tickVolume: candle.tickVolume,
  };
}
