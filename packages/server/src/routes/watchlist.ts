/**
 * Market watch (seed 000 "market watch management", API.md): the user's list of symbols, in their order.
 * GET lists (with the live quote), PUT adds a symbol at the end, POST reorders, DELETE removes.
 */
import { PLATFORM_LIMITS } from "@bourse/store";
import { Type, type Static } from "@sinclair/typebox";
import type { RouteModule } from "../app.ts";
import type { Platform } from "../platform.ts";
import { ApiError } from "../errors.ts";
import {
  Closed,
  ErrorResponse,
  Nullable,
  OkResponse,
  TableOf,
  authenticatedErrors,
  columnsDescription,
  toTable,
} from "../schemas.ts";
import { instrumentOf, tradedSymbol } from "../market-views.ts";
import { optionalPriceToWire, optionalTimeToWire } from "../wire.ts";

const SymbolName = Type.String({
  minLength: 1,
  maxLength: 32,
  pattern: "^[A-Za-z0-9._#+-]{1,32}$",
  description: "A symbol, e.g. EURUSD (any case: eurusd is EURUSD)",
});

/** A symbol of the watchlist; the instrument's fields are null for a symbol no longer traded. */
const WatchRowSchema = Type.Object({
  symbol: Type.String(),
  description: Nullable(Type.String()),
  digits: Nullable(Type.Integer()),
  bid: Nullable(Type.Number(), "The last quote; null before the first one"),
  ask: Nullable(Type.Number(), "The last quote; null before the first one"),
  time: Nullable(Type.String({ format: "date-time" }), "The last quote's time; null before the first one"),
});
type WatchRow = Static<typeof WatchRowSchema>;

const WatchlistTable = TableOf(["symbol", "description", "digits", "bid", "ask", "time"], WatchRowSchema);

function watchRows(platform: Platform, symbols: readonly string[]): WatchRow[] {
  let engine: Platform["engine"] | null = null;
  try {
    engine = platform.engine;
  } catch {
    // Before recovery the list is still served, without quotes.
  }
  return symbols.map((symbol) => {
    const instrument = platform.instruments.get(symbol);
    const quote = instrument && engine ? engine.quote(symbol) : undefined;
    return {
      symbol,
      description: instrument?.description ?? null,
      digits: instrument?.digits ?? null,
      bid: instrument && quote ? optionalPriceToWire(quote.bid, instrument) : null,
      ask: instrument && quote ? optionalPriceToWire(quote.ask, instrument) : null,
      time: quote ? optionalTimeToWire(quote.time) : null,
    };
  });
}

const tableDescription = columnsDescription(
  WatchlistTable,
  "bid, ask and time are the last quote's, null before the first one.",
);

export const watchlistRoutes: RouteModule = (app, { platform }) => {
  const table = (symbols: readonly string[]) => toTable(WatchlistTable, watchRows(platform, symbols));

  app.get(
    "/api/v1/watchlist",
    {
      schema: {
        tags: ["Market"],
        summary: "The market watch: the user's symbols in their order, with the last quote (table)",
        description: tableDescription,
        response: { 200: WatchlistTable, ...authenticatedErrors },
      },
    },
    async (request) => table(await platform.store.getWatchlist(request.principal!.userId)),
  );

  app.put(
    "/api/v1/watchlist",
    {
      schema: {
        tags: ["Market"],
        summary: "Add a symbol at the end of the market watch; answers the whole list",
        description: `${tableDescription} UNKNOWN_SYMBOL for a symbol the server does not trade, CONFLICT when it is already listed, LIMIT_REACHED past ${PLATFORM_LIMITS.watchlistSymbols} symbols.`,
        body: Closed({ symbol: SymbolName }),
        response: { 200: WatchlistTable, ...authenticatedErrors, 409: ErrorResponse },
      },
    },
    async (request) => {
      const userId = request.principal!.userId;
      const symbol = instrumentOf(platform, request.body.symbol).symbol;
      const current = await platform.store.getWatchlist(userId);
      if (current.includes(symbol)) throw new ApiError("CONFLICT", `${symbol} is already in the watchlist`);
      if (current.length >= PLATFORM_LIMITS.watchlistSymbols)
        throw new ApiError("LIMIT_REACHED", `A watchlist holds at most ${PLATFORM_LIMITS.watchlistSymbols} symbols`);
      return table(await platform.store.addToWatchlist(userId, symbol));
    },
  );

  app.post(
    "/api/v1/watchlist",
    {
      schema: {
        tags: ["Market"],
        summary: "Reorder the market watch: `symbols` must list exactly the current symbols, in the new order",
        description: tableDescription,
        body: Closed({ symbols: Type.Array(SymbolName, { maxItems: PLATFORM_LIMITS.watchlistSymbols }) }),
        response: { 200: WatchlistTable, ...authenticatedErrors },
      },
    },
    async (request) =>
      table(
        await platform.store.reorderWatchlist(
          request.principal!.userId,
          request.body.symbols.map((symbol) => tradedSymbol(platform, symbol)),
        ),
      ),
  );

  app.delete(
    "/api/v1/watchlist/:symbol",
    {
      schema: {
        tags: ["Market"],
        summary: "Remove a symbol from the market watch",
        params: Closed({ symbol: SymbolName }),
        response: { 200: OkResponse, ...authenticatedErrors },
      },
    },
    async (request) => {
      const removed = await platform.store.removeFromWatchlist(
        request.principal!.userId,
        tradedSymbol(platform, request.params.symbol),
      );
      if (!removed) throw new ApiError("NOT_FOUND", `${request.params.symbol} is not in the watchlist`);
      return { data: "OK" as const };
    },
  );
};
