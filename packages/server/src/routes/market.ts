/**
 * Market (seed 000 "Market", API.md): market info, the short list, asset info (the contract
 * specification), candles and the depth snapshot. Public market data, but behind the user's JWT like
 * the rest of the Client API; nothing here is account-scoped and nothing of any user is shown.
 * (The watchlist routes live in their own module.)
 *
 * Choices where the seeds are silent:
 * - Times are ISO 8601 UTC; sessions are intervals "HH:MM-HH:MM" (24:00 = end of day) on the clock of the
 *   instrument's `sessionTimeZone` (UTC, or a market's own zone, daylight saving time included).
 * - `status`: OPEN (session open, trading allowed), CLOSE_ONLY (session open, closing only), CLOSED
 *   (outside the session), DISABLED (trading disabled); `nextChange` is when the session next opens or
 *   closes (null: it never closes).
 * - Daily statistics are by bid over the chart day of the last quote (BOURSE_CANDLE_DAY_START, 00:00 UTC by
 *   default): `change` = (bid − open) / open in
 *   percent with 2 decimals. Symbols without a quote yet answer nulls.
 * - Candles are by bid. Without `from`, the latest `limit` bars up to `to` (default now), looking back at
 *   most 5,000 bars; with `from`, the first `limit` bars from `from` (page forward with the last time + 1).
 * - Depth volumes are in lots and are what is left at each level after fills on the current quote;
 *   null means the level has no volume limit (a quote pushed without book levels).
 */
import {
  MAX_BOOK_LEVELS,
  localTimeOf,
  nextSessionChange,
  toDecimalNumber,
  weekdayOf,
  type BookLevel,
  type InstrumentSpec,
} from "@bourse/core";
import { Type, type Static } from "@sinclair/typebox";
import type { RouteModule } from "../app.ts";
import { ApiError } from "../errors.ts";
import {
  MAX_CANDLES_PER_QUERY,
  daySessionsText,
  levelsToWire,
  marketDataOf,
  type CandleTimeframe,
} from "../market-data.ts";
import {
  CandleTimeframeSchema,
  CandleViewSchema,
  DEFAULT_CANDLE_TIMEFRAME,
  candleView,
  instrumentOf,
  marketStatus,
  specificationFields,
  specificationProperties,
} from "../market-views.ts";
import {
  Closed,
  DataResponse,
  Nullable,
  TableOf,
  authenticatedErrors,
  columnsDescription,
  toTable,
} from "../schemas.ts";
import { lotsToWire, optionalTimeToWire, priceToWire, queryTimeFromWire, timeToWire } from "../wire.ts";

export const MAX_CANDLES = MAX_CANDLES_PER_QUERY;
export const DEFAULT_CANDLES = 500;

const SymbolParams = Closed({
  symbol: Type.String({ minLength: 1, maxLength: 32, pattern: "^[A-Za-z0-9._#-]+$", description: "e.g. EURUSD" }),
});

const TimeQuery = Type.String({
  minLength: 1,
  maxLength: 40,
  description: "ISO 8601 with a zone (2026-06-01T12:00:00Z) or epoch milliseconds",
});

const CandlesQuery = Closed({
  timeframe: Type.Optional(CandleTimeframeSchema),
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

// The shared fields, with this face's `timezone` and `swapMode` in their places.
const {
  sessions,
  sessionTimeZone,
  stopsLevel,
  swapLong,
  swapShort,
  commission,
  commissionCurrency,
  ...specificationHead
} = specificationProperties(Status);
const SpecificationView = Type.Object({
  ...specificationHead,
  timezone: Type.Literal("UTC", {
    description: "The zone of this answer's times; the sessions are in sessionTimeZone",
  }),
  sessions,
  sessionTimeZone,
  stopsLevel,
  swapMode: Type.Literal("POINTS"),
  swapLong,
  swapShort,
  commission,
  commissionCurrency,
});
type SpecificationView = Static<typeof SpecificationView>;

// The contract's terms an order ticket and a P&L column need, beside the status: a terminal made one request per
// symbol for them (found by the audit of a terminal's journey of 7 December, sixth session). Appended, so a client
// reading columns by position keeps its own.
const MarketTable = TableOf(
  [
    "symbol",
    "description",
    "assetClass",
    "digits",
    "tradeMode",
    "status",
    "session",
    "nextChange",
    "contractSize",
    "volumeMin",
    "volumeMax",
    "volumeStep",
    "stopsLevel",
    "baseCurrency",
    "profitCurrency",
    "marginCurrency",
    "sessionTimeZone",
  ],
  Type.Object({
    ...specificationProperties(Status),
    session: Type.Array(Type.String(), {
      description: "Today's sessions (today on the clock of sessionTimeZone): intervals HH:MM-HH:MM on that clock",
    }),
  }),
);

const Price = Nullable(Type.Number(), "Null before the symbol's first quote");
// `open`: the day's open, from which `change` is measured, so a watchlist keeps the change live from quotes (the same
// audit).
const ShortlistTable = TableOf(
  ["symbol", "bid", "ask", "change", "high", "low", "time", "open"],
  Type.Object({
    symbol: Type.String(),
    bid: Price,
    ask: Price,
    change: Nullable(Type.Number(), "Percent from the day's open, 2 decimals"),
    high: Nullable(Type.Number(), "The day's highest bid"),
    low: Nullable(Type.Number(), "The day's lowest bid"),
    time: Nullable(Type.String({ format: "date-time" }), "The last quote's time"),
    open: Nullable(Type.Number(), "The day's first bid, which change is measured from"),
  }),
);

const CandleTable = TableOf(["time", "open", "high", "low", "close", "tickVolume"], CandleViewSchema);

function specificationView(instrument: InstrumentSpec, now: number, tripleSwapWeekday: number): SpecificationView {
  return { ...specificationFields(instrument, now, tripleSwapWeekday), timezone: "UTC", swapMode: "POINTS" };
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
          "CLOSE_ONLY, CLOSED, DISABLED), session (today's intervals HH:MM-HH:MM on the clock of sessionTimeZone), " +
          "nextChange (when the session next opens or closes; null if never), contractSize (units of a lot), " +
          "volumeMin, volumeMax, volumeStep (lots), stopsLevel (points), baseCurrency, profitCurrency, " +
          "marginCurrency, sessionTimeZone (the time zone of the session's hours: UTC, or the market's own). The " +
          "whole specification: `GET /api/v1/market/{symbol}`.",
        querystring: Closed({}),
        response: { 200: MarketTable, ...authenticatedErrors },
      },
    },
    async () => {
      const now = platform.marketTime();
      const rows = [...platform.instruments.values()].map((instrument) => ({
        symbol: instrument.symbol,
        description: instrument.description,
        assetClass: instrument.assetClass,
        digits: instrument.digits,
        tradeMode: instrument.tradeMode,
        status: marketStatus(instrument, now),
        session: daySessionsText(instrument.sessions, weekdayOf(localTimeOf(instrument.sessionTimeZone, now))),
        nextChange: optionalTimeToWire(nextSessionChange(instrument, now)),
        contractSize: instrument.contractSize,
        volumeMin: lotsToWire(instrument.volumeMin, instrument),
        volumeMax: lotsToWire(instrument.volumeMax, instrument),
        volumeStep: lotsToWire(instrument.volumeStep, instrument),
        stopsLevel: instrument.stopsLevelPoints,
        baseCurrency: instrument.baseCurrency,
        profitCurrency: instrument.profitCurrency,
        marginCurrency: instrument.marginCurrency,
        sessionTimeZone: instrument.sessionTimeZone,
      }));
      return toTable(MarketTable, rows);
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
          "highest and lowest bid), time (of the last quote), open (the day's first bid, which change is measured " +
          "from). The day is the chart day of the last quote, the D1 candle's (the server's day start: 00:00 UTC by " +
          "default, 17:00 New York on a forex broker's); a symbol without quotes yet has nulls.",
        querystring: Closed({}),
        response: { 200: ShortlistTable, ...authenticatedErrors },
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
          open: stats ? priceToWire(stats.open, instrument) : null,
        };
      });
      return toTable(ShortlistTable, rows);
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
      data: specificationView(
        instrumentOf(platform, request.params.symbol),
        platform.marketTime(),
        platform.engineConfig.tripleSwapWeekday,
      ),
    }),
  );

  app.get(
    "/api/v1/market/:symbol/candles",
    {
      schema: {
        tags,
        summary: "OHLC candles by bid, oldest first (table: time, open, high, low, close, tickVolume)",
        description:
          `${columnsDescription(CandleTable)} ` +
          "Bars start on the server's chart clock: by default UTC days (H4 at 00:00, 04:00, …; W1 on Monday 00:00; MN1 " +
          "on the 1st); a forex broker's days start at 17:00 New York (21:00 or 22:00 UTC), its H4 bars count from " +
          "there, W1 at the Sunday open and MN1 at 17:00 the day before the 1st. Without `from`: the latest `limit` bars up to " +
          "`to` (default now; a later one counts as now), looking back at most 5,000 bars. With `from`: the first `limit` bars from `from` " +
          "(page forward from the last bar's time + 1 ms). The live bar is included as it stands.",
        params: SymbolParams,
        querystring: CandlesQuery,
        response: { 200: CandleTable, ...authenticatedErrors },
      },
    },
    async (request) => {
      const instrument = instrumentOf(platform, request.params.symbol);
      const timeframe: CandleTimeframe = request.query.timeframe ?? DEFAULT_CANDLE_TIMEFRAME;
      const limit = request.query.limit ?? DEFAULT_CANDLES;
      const symbol = instrument.symbol;
      // No bar starts after the clock or the last quote (kept from before a clock set back): the look-back counts
      // from there, so a `to` far ahead ("up to now") still finds the latest bars (it looked back 5,000 bars from
      // `to` and found none: the audit of market data, 7 December). Without `to`, up to there too: up to the clock,
      // a clock set back hid the bars since (the audit of time, 7 December).
      const latest = marketData.latestTime(symbol);
      const from = request.query.from === undefined ? null : queryTimeFromWire(request.query.from, "from");
      // Without `to`, a `from` past the latest bar (paging forward from the last bar) is an empty page, not a refusal.
      const to =
        request.query.to === undefined ? Math.max(latest, from ?? latest) : queryTimeFromWire(request.query.to, "to");
      if (from !== null && from > to) throw new ApiError("INVALID_DATA", "from must not be after to");
      const selected =
        from === null
          ? await marketData.latestCandles(symbol, timeframe, Math.min(to, latest), limit)
          : await marketData.candles({ symbol, timeframe, from, to, limit });
      return toTable(
        CandleTable,
        selected.map((candle) => candleView(candle, instrument)),
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
