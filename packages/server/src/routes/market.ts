/**
 * Market (seed 000 "Market", API.md): market info, the short list, asset info (the contract
 * specification), candles and the depth snapshot. Public market data, but behind the user's JWT like
 * the rest of the Client API; nothing here is account-scoped and nothing of any user is shown.
 * (The watchlist routes live in their own module.)
 *
 * Choices where the seeds are silent:
 * - Times are ISO 8601 UTC; sessions are UTC intervals "HH:MM-HH:MM" (24:00 = end of day).
 * - `status`: OPEN (session open, trading allowed), CLOSE_ONLY (session open, closing only), CLOSED
 *   (outside the session), DISABLED (trading disabled); `nextChange` is when the session next opens or
 *   closes (null: it never closes).
 * - Daily statistics are by bid over the UTC day of the last quote: `change` = (bid − open) / open in
 *   percent with 2 decimals. Symbols without a quote yet answer nulls.
 * - Candles are by bid. Without `from`, the latest `limit` bars up to `to` (default now), looking back at
 *   most 5,000 bars; with `from`, the first `limit` bars from `from` (page forward with the last time + 1).
 * - Depth volumes are in lots and are what is left at each level after fills on the current quote;
 *   null means the level has no volume limit (a quote pushed without book levels).
 */
import {
  MAX_BOOK_LEVELS,
  currencyDigits,
  isSessionOpen,
  toDecimalNumber,
  weekdayOf,
  type BookLevel,
  type InstrumentSpec,
} from "@bourse/core";
import { Type, type Static } from "@sinclair/typebox";
import type { RouteModule } from "../app.ts";
import { ApiError } from "../errors.ts";
import {
  CANDLE_TIMEFRAMES,
  MAX_CANDLES_PER_QUERY,
  daySessionsText,
  levelsToWire,
  marketDataOf,
  nextSessionChange,
  weekSessionsView,
  type CandleTimeframe,
} from "../market-data.ts";
import type { Platform } from "../platform.ts";
import { Closed, DataResponse, TableResponse, authenticatedErrors, toTable } from "../schemas.ts";
import { lotsToWire, optionalTimeToWire, priceToWire, timeFromWire, timeToWire } from "../wire.ts";

export const MAX_CANDLES = MAX_CANDLES_PER_QUERY;
export const DEFAULT_CANDLES = 500;
export const DEFAULT_TIMEFRAME: CandleTimeframe = "H1";

const SymbolParams = Closed({
  symbol: Type.String({ minLength: 1, maxLength: 32, pattern: "^[A-Za-z0-9._#-]+$", description: "e.g. EURUSD" }),
});

const TimeQuery = Type.String({
  minLength: 1,
  maxLength: 40,
  description: "ISO 8601 with a zone (2026-06-01T12:00:00Z) or epoch milliseconds",
});

const CandlesQuery = Closed({
  timeframe: Type.Optional(
    Type.Union(
      CANDLE_TIMEFRAMES.map((timeframe) => Type.Literal(timeframe)),
      { description: "M1 M5 M15 M30 H1 H4 D1 W1 MN1 (default H1)" },
    ),
  ),
  from: Type.Optional(TimeQuery),
  to: Type.Optional(TimeQuery),
  limit: Type.Optional(
    Type.Integer({ minimum: 1, maximum: MAX_CANDLES, default: DEFAULT_CANDLES, description: "At most 5,000" }),
  ),
});

const DepthQuery = Closed({
  depth: Type.Optional(
    Type.Integer({ minimum: 1, maximum: MAX_BOOK_LEVELS, description: "Levels per side (default all)" }),
  ),
});

const Level = Type.Object({
  price: Type.Number(),
  volume: Type.Union([Type.Number(), Type.Null()], { description: "Lots left at this price; null: unlimited" }),
});

const DepthView = Type.Object({
  symbol: Type.String(),
  bid: Type.Union([Type.Number(), Type.Null()]),
  ask: Type.Union([Type.Number(), Type.Null()]),
  time: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  bids: Type.Array(Level, { description: "Best (highest) first" }),
  asks: Type.Array(Level, { description: "Best (lowest) first" }),
});

const Status = Type.Union([
  Type.Literal("OPEN"),
  Type.Literal("CLOSE_ONLY"),
  Type.Literal("CLOSED"),
  Type.Literal("DISABLED"),
]);

const SpecificationView = Type.Object({
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
  status: Status,
  nextChange: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  timezone: Type.Literal("UTC"),
  sessions: Type.Array(Type.Object({ day: Type.String(), intervals: Type.Array(Type.String()) }), {
    description: "Sunday first; UTC intervals HH:MM-HH:MM",
  }),
  stopsLevel: Type.Integer({
    description: "Points: the minimal distance of pending prices, SL and TP from the market",
  }),
  swapMode: Type.Literal("POINTS"),
  swapLong: Type.Number({ description: "Points per lot per day (negative: charged)" }),
  swapShort: Type.Number({ description: "Points per lot per day (negative: charged)" }),
  commission: Type.Number({ description: "Per lot per deal side, in commissionCurrency" }),
  commissionCurrency: Type.String(),
});
type SpecificationView = Static<typeof SpecificationView>;

const MARKET_COLUMNS = [
  "symbol",
  "description",
  "assetClass",
  "digits",
  "tradeMode",
  "status",
  "session",
  "nextChange",
] as const;
const SHORTLIST_COLUMNS = ["symbol", "bid", "ask", "change", "high", "low", "time"] as const;
const CANDLE_COLUMNS = ["time", "open", "high", "low", "close", "tickVolume"] as const;

function statusOf(instrument: InstrumentSpec, now: number): Static<typeof Status> {
  if (instrument.tradeMode === "DISABLED") return "DISABLED";
  if (!isSessionOpen(instrument.sessions, now)) return "CLOSED";
  return instrument.tradeMode === "CLOSE_ONLY" ? "CLOSE_ONLY" : "OPEN";
}

/** The instrument of a path symbol: as written, else upper-cased (eurusd); 404 UNKNOWN_SYMBOL otherwise. */
function instrumentOf(platform: Platform, symbol: string): InstrumentSpec {
  return platform.instruments.get(symbol) ?? platform.instrument(symbol.toUpperCase());
}

function readTime(text: string, field: string): number {
  return timeFromWire(/^\d{1,15}$/.test(text) ? Number(text) : text, field);
}

function specificationView(instrument: InstrumentSpec, now: number): SpecificationView {
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
    status: statusOf(instrument, now),
    nextChange: optionalTimeToWire(nextSessionChange(instrument.sessions, now)),
    timezone: "UTC",
    sessions: weekSessionsView(instrument.sessions),
    stopsLevel: instrument.stopsLevelPoints,
    swapMode: "POINTS",
    swapLong: toDecimalNumber(instrument.swapLongMilliPoints, 3),
    swapShort: toDecimalNumber(instrument.swapShortMilliPoints, 3),
    commission: toDecimalNumber(instrument.commissionPerLot, currencyDigits(instrument.commissionCurrency)),
    commissionCurrency: instrument.commissionCurrency,
  };
}

export const marketRoutes: RouteModule = (app, { platform }) => {
  const marketData = marketDataOf(platform);
  const tags = ["Market"];

  app.get(
    "/api/v1/market",
    {
      schema: {
        tags,
        summary: "Market info: every instrument with its trading status now and today's session (table)",
        description:
          "Columns: symbol, description, assetClass, digits, tradeMode (FULL, CLOSE_ONLY, DISABLED), status (OPEN, " +
          "CLOSE_ONLY, CLOSED, DISABLED), session (today's UTC intervals HH:MM-HH:MM), nextChange (when the session " +
          "next opens or closes; null if never).",
        querystring: Closed({}),
        response: { 200: TableResponse, ...authenticatedErrors },
      },
    },
    async () => {
      const now = platform.clock.now();
      const rows = [...platform.instruments.values()].map((instrument) => ({
        symbol: instrument.symbol,
        description: instrument.description,
        assetClass: instrument.assetClass,
        digits: instrument.digits,
        tradeMode: instrument.tradeMode,
        status: statusOf(instrument, now),
        session: daySessionsText(instrument.sessions, weekdayOf(now)),
        nextChange: optionalTimeToWire(nextSessionChange(instrument.sessions, now)),
      }));
      return toTable(MARKET_COLUMNS, rows);
    },
  );

  app.get(
    "/api/v1/market/shortlist",
    {
      schema: {
        tags,
        summary: "Short list: bid, ask, daily change, high and low of every instrument (table)",
        description:
          "Columns: symbol, bid, ask, change (percent from the day's open, 2 decimals), high, low (the day's " +
          "highest and lowest bid), time (of the last quote). The day is the UTC day of the last quote; a " +
          "symbol without quotes yet has nulls.",
        querystring: Closed({}),
        response: { 200: TableResponse, ...authenticatedErrors },
      },
    },
    async () => {
      const rows = [...platform.instruments.values()].map((instrument) => {
        const quote = marketData.lastQuote(instrument.symbol);
        const stats = marketData.dailyStats(instrument.symbol);
        return {
          symbol: instrument.symbol,
          bid: quote ? priceToWire(quote.bid, instrument) : null,
          ask: quote ? priceToWire(quote.ask, instrument) : null,
          change: stats ? toDecimalNumber(stats.changeHundredths, 2) : null,
          high: stats ? priceToWire(stats.high, instrument) : null,
          low: stats ? priceToWire(stats.low, instrument) : null,
          time: quote ? timeToWire(quote.time) : null,
        };
      });
      return toTable(SHORTLIST_COLUMNS, rows);
    },
  );

  app.get(
    "/api/v1/market/:symbol",
    {
      schema: {
        tags,
        summary: "Asset info: the instrument's whole contract specification",
        params: SymbolParams,
        response: { 200: DataResponse(SpecificationView), ...authenticatedErrors },
      },
    },
    async (request) => ({
      data: specificationView(instrumentOf(platform, request.params.symbol), platform.clock.now()),
    }),
  );

  app.get(
    "/api/v1/market/:symbol/candles",
    {
      schema: {
        tags,
        summary: "OHLC candles by bid, oldest first (table: time, open, high, low, close, tickVolume)",
        description:
          "Bars start in UTC (W1 on Monday 00:00, MN1 on the 1st). Without `from`: the latest `limit` bars up to " +
          "`to` (default now), looking back at most 5,000 bars. With `from`: the first `limit` bars from `from` " +
          "(page forward from the last bar's time + 1 ms). The live bar is included as it stands.",
        params: SymbolParams,
        querystring: CandlesQuery,
        response: { 200: TableResponse, ...authenticatedErrors },
      },
    },
    async (request) => {
      const instrument = instrumentOf(platform, request.params.symbol);
      const timeframe: CandleTimeframe = request.query.timeframe ?? DEFAULT_TIMEFRAME;
      const limit = request.query.limit ?? DEFAULT_CANDLES;
      const to = request.query.to === undefined ? platform.clock.now() : readTime(request.query.to, "to");
      const symbol = instrument.symbol;
      const from = request.query.from === undefined ? null : readTime(request.query.from, "from");
      if (from !== null && from > to) throw new ApiError("INVALID_DATA", "from must not be after to");
      const selected =
        from === null
          ? await marketData.latestCandles(symbol, timeframe, to, limit)
          : await marketData.candles({ symbol, timeframe, from, to, limit });
      return toTable(
        CANDLE_COLUMNS,
        selected.map((candle) => ({
          time: timeToWire(candle.openTime),
          open: priceToWire(candle.open, instrument),
          high: priceToWire(candle.high, instrument),
          low: priceToWire(candle.low, instrument),
          close: priceToWire(candle.close, instrument),
          tickVolume: candle.tickVolume,
        })),
      );
    },
  );

  app.get(
    "/api/v1/market/:symbol/depth",
    {
      schema: {
        tags,
        summary: "Order-book depth snapshot: bid and ask levels with the volume left in lots",
        params: SymbolParams,
        querystring: DepthQuery,
        response: { 200: DataResponse(DepthView), ...authenticatedErrors },
      },
    },
    async (request) => {
      const instrument = instrumentOf(platform, request.params.symbol);
      const quote = platform.engine.quote(instrument.symbol);
      const depth = request.query.depth ?? MAX_BOOK_LEVELS;
      // Levels emptied by fills on this quote are gone until the next quote.
      const side = (levels: readonly BookLevel[]) =>
        levelsToWire(levels.filter((level) => level.volume > 0).slice(0, depth), instrument);
      return {
        data: {
          symbol: instrument.symbol,
          bid: quote ? priceToWire(quote.bid, instrument) : null,
          ask: quote ? priceToWire(quote.ask, instrument) : null,
          time: quote ? timeToWire(quote.time) : null,
          bids: quote ? side(quote.bids) : [],
          asks: quote ? side(quote.asks) : [],
        },
      };
    },
  );
};
