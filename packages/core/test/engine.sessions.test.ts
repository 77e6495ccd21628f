/**
 * Prices that jump across a market's closed hours (a weekend, a daily break), found by an audit of gaps and sessions.
 *
 * On the code before this file, with EURUSD closed from Friday 22:00 to Sunday 22:00 UTC:
 * - a stop-out on Saturday (a BTCUSD tick) closed the EURUSD position at Friday's last bid, a price no market
 *   offered on Saturday, in a market the client could not trade;
 * - a EURUSD tick on Saturday (a CSV replay or an external feed stamps quotes with the server's clock) filled the
 *   pending orders and closed the SL/TP it reached, while every client command on EURUSD answered MARKET_CLOSED;
 *   once it no longer triggered anything, it still valued positions, and that valuation could stop out the
 *   positions of markets that were open (a Saturday EURUSD tick closed BTCUSD). Such a tick is now not taken
 *   (MARKET_CLOSED), as MetaTrader 5 takes no quote outside a symbol's sessions;
 * - at Sunday's open, before EURUSD's first tick of the session, a market order and a close filled at Friday's
 *   quote: the client traded the weekend gap at a price two days old.
 * The rule now: a price is one to trade at only while the market is open and has stayed open since the price came
 * (MetaTrader 5 triggers pending orders, SL and TP only inside the trade session; a kept price from before a
 * restart was already refused for the same reason, `MarketQuote.restored`).
 */
import { describe, expect, it } from "vitest";
import { ALWAYS_OPEN, isSessionOpenThroughout } from "../src/index.ts";
import { Scenario, instrumentOf, lots, money, points } from "./helpers.ts";

/** Friday 5 June 2026, 20:30 UTC: forex trades until 17:00 New York (21:00 UTC in summer), crypto all week. */
const FRIDAY_2030 = Date.UTC(2026, 5, 5, 20, 30);
const FRIDAY_2050 = Date.UTC(2026, 5, 5, 20, 50);
const SATURDAY_NOON = Date.UTC(2026, 5, 6, 12, 0);
/** Forex reopens on Sunday at 17:00 New York, 21:00 UTC. */
const SUNDAY_2100 = Date.UTC(2026, 5, 7, 21, 0);

/**
 * Friday 20:30 UTC, half an hour before forex closes: a 1,500 USD account buys 0.5 lot of EURUSD at 1.08440 and 0.02 lot
 * of BTCUSD (always open) at 60,010.00.
 */
function fridayBook(): { s: Scenario; account: number; eur: number; btc: number } {
  const s = new Scenario(undefined, FRIDAY_2030);
  const account = s.account("USD", "1500");
  s.quote("EURUSD", "1.08430", "1.08440");
  s.quote("BTCUSD", "60000.00", "60010.00");
  const eur = s.buy(account, "EURUSD", "0.5").positionId as number;
  const btc = s.buy(account, "BTCUSD", "0.02").positionId as number;
  return { s, account, eur, btc };
}

describe("stop-out while a market is closed", () => {
  it("a weekend stop-out closes the losing position it can trade, never a closed market's at Friday's price; that one closes at the first tick after the open", () => {
    const { s, account, eur, btc } = fridayBook();
    // Margin: EURUSD 50,000 EUR / 100 × 1.08430 = 542.15; BTCUSD 0.02 × 60,010.00 × 50 % = 600.10. Commission 0.10.
    expect(s.engine.accountMetrics(account)).toMatchObject({ balance: money("1499.90"), margin: money("1142.25") });
    s.quote("EURUSD", "1.07440", "1.07450", FRIDAY_2050);
    // Saturday: BTCUSD falls. Friday's 22:00 rollover charged EURUSD −3.60 (−7.2 points × 0.5 lot) and BTCUSD −0.40.
    // Equity 1,499.90 − 500.00 − 440.20 − 3.60 − 0.40 = 555.70 ≤ 50 % of 1,142.25: stop-out. EURUSD loses most
    // (−503.60) but its market is closed: the stop-out closes BTCUSD at the bid 38,000.00 (−440.20, swap −0.40,
    // commission 0.10), which restores the level (555.60 / 542.15 = 102 %).
    s.quote("BTCUSD", "38000.00", "38010.00", SATURDAY_NOON);
    expect(s.deals().slice(2)).toEqual([
      expect.objectContaining({
        positionId: btc,
        symbol: "BTCUSD",
        reason: "STOP_OUT",
        price: points("BTCUSD", "38000.00"),
        profit: money("-440.20"),
        swap: money("-0.40"),
        commission: money("0.10"),
      }),
    ]);
    expect(s.events.filter((event) => event.type === "StopOut")).toEqual([
      expect.objectContaining({ positionId: btc, equity: money("555.70"), margin: money("1142.25") }),
    ]);
    expect(s.positions(account).map((position) => position.id)).toEqual([eur]);
    expect(s.get(account).balance).toBe(money("1059.20"));
    // Sunday's first EURUSD tick gaps down: equity 1,059.20 − 1,020.00 − 3.60 = 35.60, closed at that tick's bid.
    s.quote("EURUSD", "1.06400", "1.06410", SUNDAY_2100 + 1000);
    expect(s.deals().slice(3)).toEqual([
      expect.objectContaining({
        positionId: eur,
        reason: "STOP_OUT",
        price: points("EURUSD", "1.06400"),
        profit: money("-1020.00"),
        swap: money("-3.60"),
        time: SUNDAY_2100 + 1000,
      }),
    ]);
    expect(s.get(account).balance).toBe(money("35.60"));
    expect(s.ledgerHolds(account)).toBe(true);
    expect(s.replayMatches()).toBe(true);
  });
});

describe("ticks while a market is closed", () => {
  it("a tick while the market is closed is refused (MARKET_CLOSED) and changes nothing: no quote, no fill, no SL; the first tick of the session runs them, at its own prices", () => {
    const s = new Scenario(undefined, FRIDAY_2030);
    const account = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    const position = s.buy(account, "EURUSD", "1", { sl: points("EURUSD", "1.08300") }).positionId as number;
    const limit = s.pending(account, "EURUSD", "BUY", "LIMIT", "1", "1.08200").orderId as number;
    const eventsBefore = s.events.length;
    // Saturday: a quote below both the SL and the limit. The market is closed: the quote is not taken.
    s.time = SATURDAY_NOON;
    expect(s.refusedQuote("EURUSD", "1.08000", "1.08010")).toBe("MARKET_CLOSED");
    expect(s.engine.quote("EURUSD")).toMatchObject({ bid: points("EURUSD", "1.08430") });
    expect(s.engine.quote("EURUSD")!.time).toBeLessThan(FRIDAY_2050);
    // Friday's 22:00 rollover (the clock passed it) is the only change: its swap event.
    expect(s.events.slice(eventsBefore).map((event) => event.type)).not.toContain("DealExecuted");
    expect(s.deals()).toHaveLength(1);
    expect(s.engine.state.positions.get(position)).toMatchObject({ sl: points("EURUSD", "1.08300") });
    expect(s.engine.state.orders.get(limit)).toMatchObject({ status: "PLACED", triggered: false });
    // Sunday's first tick: the SL is reached (bid 1.08250 ≤ 1.08300) and closes at that bid; the limit is not
    // (ask 1.08260 > 1.08200). (1.08250 − 1.08440) × 100,000 = −190.00, swap −7.20 from Friday's rollover.
    s.quote("EURUSD", "1.08250", "1.08260", SUNDAY_2100 + 5000);
    expect(s.deals().slice(1)).toEqual([
      expect.objectContaining({
        positionId: position,
        reason: "STOP_LOSS",
        price: points("EURUSD", "1.08250"),
        profit: money("-190.00"),
        swap: money("-7.20"),
      }),
    ]);
    expect(s.engine.state.orders.get(limit)).toMatchObject({ status: "PLACED" });
    expect(s.get(account).balance).toBe(money("10000") - money("190.00") - money("7.20"));
    expect(s.ledgerHolds(account)).toBe(true);
    expect(s.replayMatches()).toBe(true);
  });

  it("a closed market's tick cannot value an account into a stop-out that closes an open market's position", () => {
    const { s, account, btc } = fridayBook();
    // Margin 1,142.25 (as above). Saturday, a feed stamps a EURUSD quote of 1.05000: valued at it, EURUSD would lose
    // (1.05000 − 1.08440) × 50,000 = −1,720.00 and equity would be below zero, a stop-out that (EURUSD being closed)
    // would close BTCUSD, an open market, at its bid. The quote is not taken, so nothing is valued at it.
    s.time = SATURDAY_NOON;
    expect(s.refusedQuote("EURUSD", "1.05000", "1.05010")).toBe("MARKET_CLOSED");
    expect(s.events.filter((event) => event.type === "StopOut")).toEqual([]);
    expect(s.positions(account).map((position) => position.id)).toContain(btc);
    expect(s.engine.quote("EURUSD")).toMatchObject({ bid: points("EURUSD", "1.08430") });
    // An open market's tick values the account at EURUSD's last price of its session: no stop-out either.
    s.quote("BTCUSD", "60000.00", "60010.00", SATURDAY_NOON + 1000);
    expect(s.events.filter((event) => event.type === "StopOut")).toEqual([]);
    expect(s.ledgerHolds(account)).toBe(true);
    expect(s.replayMatches()).toBe(true);
  });
});

describe("a restart while a market is closed", () => {
  /** Restarts `s` with its quotes kept (as the server restores them from the platform store). */
  function restartKeepingQuotes(s: Scenario, symbols: readonly string[]): void {
    const kept = symbols.map((symbol) => {
      const { bid, ask, time } = s.engine.quote(symbol)!;
      return { symbol, bid, ask, time };
    });
    s.restart();
    for (const quote of kept) expect(s.engine.restoreQuote(quote)).toBeNull();
  }

  // Found by the review of 7 December: after a weekend restart every kept quote waited for a live tick before an
  // account holding it was judged, and a closed market's tick never comes before Sunday's open (such ticks are
  // refused now), so BTCUSD fell to a negative equity with no stop-out and no margin call all weekend.
  it("an account holding a closed market is still judged: its kept last quote of the session values it, and a stop-out closes what is open", () => {
    const { s, account, btc } = fridayBook();
    s.quote("EURUSD", "1.07440", "1.07450", FRIDAY_2050);
    s.time = SATURDAY_NOON - 60_000;
    restartKeepingQuotes(s, ["EURUSD", "BTCUSD"]);
    s.quote("BTCUSD", "60000.00", "60010.00", SATURDAY_NOON);
    // As on the live engine (the first test of this file): BTCUSD falls, equity 555.70 ≤ 50 % of 1,142.25, and the
    // stop-out closes BTCUSD (EURUSD is closed) at its bid.
    s.quote("BTCUSD", "38000.00", "38010.00");
    expect(s.events.filter((event) => event.type === "StopOut")).toEqual([
      expect.objectContaining({ positionId: btc, equity: money("555.70"), margin: money("1142.25") }),
    ]);
    expect(s.ledgerHolds(account)).toBe(true);
  });

  it("names the symbol still waiting for a live price, not the closed market whose kept quote is its last", () => {
    const { s, account } = fridayBook();
    s.time = SATURDAY_NOON - 60_000;
    restartKeepingQuotes(s, ["EURUSD", "BTCUSD"]);
    s.time = SATURDAY_NOON;
    const answer = s.run({ kind: "withdraw", accountId: account, amount: money("1"), time: (s.time += 1000) });
    expect(answer).toMatchObject({
      ok: false,
      code: "NO_QUOTES",
      message: "No live price of BTCUSD since the restart yet",
    });
  });

  it("a kept quote is not its market's last price when a session began after it: the account waits for a live one", () => {
    // Gold breaks daily (16:00–17:00 Chicago): Wednesday's quote is followed by Thursday's and Friday's sessions, missed.
    // EURUSD's quote of the Friday before: the whole week's session came after it.
    for (const [symbol, bid, ask, start] of [
      ["XAUUSD", "2350.00", "2350.30", Date.UTC(2026, 5, 3, 12, 0)],
      ["EURUSD", "1.08430", "1.08440", Date.UTC(2026, 4, 29, 20, 30)],
    ] as const) {
      const s = new Scenario(undefined, start);
      const account = s.account("USD", "5000");
      s.quote(symbol, bid, ask);
      s.quote("BTCUSD", "60000.00", "60010.00");
      s.buy(account, symbol, "0.01");
      s.buy(account, "BTCUSD", "0.01");
      s.time = SATURDAY_NOON - 60_000;
      restartKeepingQuotes(s, [symbol, "BTCUSD"]);
      s.quote("BTCUSD", "61000.00", "61010.00", SATURDAY_NOON);
      // The account cannot be valued at live prices: nothing leaves it.
      expect(s.rejected({ kind: "withdraw", accountId: account, amount: money("1") }), symbol).toBe("NO_QUOTES");
    }
  });
});

describe("the first minutes after a market opens", () => {
  it("at the weekend open nothing trades at Friday's quote (NO_QUOTES) until the session's first tick, which it then fills at", () => {
    const s = new Scenario(undefined, FRIDAY_2030);
    const account = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    const position = s.buy(account, "EURUSD", "1").positionId as number;
    s.time = SUNDAY_2100 + 500;
    const sell = {
      kind: "placeOrder",
      accountId: account,
      symbol: "EURUSD",
      side: "SELL",
      type: "MARKET",
      volume: 100,
    };
    expect(s.rejected(sell as never)).toBe("NO_QUOTES");
    expect(s.rejected({ kind: "closePosition", accountId: account, positionId: position })).toBe("NO_QUOTES");
    expect(
      s.rejected({ kind: "modifyPosition", accountId: account, positionId: position, sl: points("EURUSD", "1.08000") }),
    ).toBe("NO_QUOTES");
    expect(s.deals()).toHaveLength(1);
    s.quote("EURUSD", "1.07900", "1.07910");
    s.ok({ kind: "closePosition", accountId: account, positionId: position });
    // (1.07900 − 1.08440) × 100,000 = −540.00, swap −7.20.
    expect(s.deals()[1]).toMatchObject({ price: points("EURUSD", "1.07900"), profit: money("-540.00") });
    expect(s.get(account).balance).toBe(money("10000") - money("540.00") - money("7.20"));
    expect(s.ledgerHolds(account)).toBe(true);
  });

  it("a quote from before the close is no price to trade at after the open, and one sent while closed is not taken", () => {
    const s = new Scenario(undefined, FRIDAY_2030);
    const account = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    s.time = SATURDAY_NOON;
    expect(s.refusedQuote("EURUSD", "1.08000", "1.08010")).toBe("MARKET_CLOSED");
    s.time = SUNDAY_2100 + 500;
    expect(
      s.rejected({
        kind: "placeOrder",
        accountId: account,
        symbol: "EURUSD",
        side: "BUY",
        type: "MARKET",
        volume: 100,
      }),
    ).toBe("NO_QUOTES");
    s.quote("EURUSD", "1.08100", "1.08110");
    s.buy(account, "EURUSD", "1");
    expect(s.deals()[0]?.price).toBe(points("EURUSD", "1.08110"));
  });

  it("after gold's daily break (16:00–17:00 Chicago, 21:00–22:00 UTC in June) an order waits for the first tick after it", () => {
    const s = new Scenario(undefined, Date.UTC(2026, 5, 2, 20, 58));
    const account = s.account();
    s.quote("XAUUSD", "2350.00", "2350.30");
    s.time = Date.UTC(2026, 5, 2, 22, 0, 30);
    expect(
      s.rejected({ kind: "placeOrder", accountId: account, symbol: "XAUUSD", side: "BUY", type: "MARKET", volume: 1 }),
    ).toBe("NO_QUOTES");
    s.quote("XAUUSD", "2361.00", "2361.30");
    s.buy(account, "XAUUSD", "0.01");
    expect(s.deals()[0]?.price).toBe(points("XAUUSD", "2361.30"));
  });
});

describe("isSessionOpenThroughout", () => {
  const forex = instrumentOf("EURUSD");
  it("is true only when no minute between the two times (both included) is closed", () => {
    expect(isSessionOpenThroughout(forex, FRIDAY_2030, Date.UTC(2026, 5, 5, 20, 59, 59, 999))).toBe(true);
    expect(isSessionOpenThroughout(forex, FRIDAY_2030, Date.UTC(2026, 5, 5, 21, 0))).toBe(false);
    expect(isSessionOpenThroughout(forex, FRIDAY_2030, SUNDAY_2100 + 1)).toBe(false);
    // Sunday's session runs on into Monday's across midnight.
    expect(isSessionOpenThroughout(forex, SUNDAY_2100, Date.UTC(2026, 5, 9, 12, 0))).toBe(true);
    expect(isSessionOpenThroughout(forex, SATURDAY_NOON, SATURDAY_NOON)).toBe(false);
    expect(
      isSessionOpenThroughout(
        { sessions: ALWAYS_OPEN, sessionTimeZone: "UTC" },
        FRIDAY_2030,
        FRIDAY_2030 + 30 * 86_400_000,
      ),
    ).toBe(true);
    expect(isSessionOpenThroughout(forex, SUNDAY_2100, SUNDAY_2100 + 30 * 86_400_000)).toBe(false);
  });
});

describe("forex's close at 17:00 New York, summer and winter", () => {
  // 10 July 2026 17:00 EDT is 21:00 UTC; 15 January 2027 17:00 EST is 22:00 UTC.
  it.each([
    ["July", Date.UTC(2026, 6, 10, 21, 0)],
    ["January", Date.UTC(2027, 0, 15, 22, 0)],
  ])("in %s an order is taken at 16:59 and refused MARKET_CLOSED at 17:00:00", (_, close) => {
    const s = new Scenario(undefined, close - 5 * 60_000);
    const account = s.account();
    s.quote("EURUSD", "1.08430", "1.08440", close - 2 * 60_000);
    const buy = (time: number) =>
      s.run({
        kind: "placeOrder",
        accountId: account,
        symbol: "EURUSD",
        side: "BUY",
        type: "MARKET",
        volume: lots("EURUSD", "0.01"),
        time,
      });
    expect(buy(close - 60_000)).toMatchObject({ ok: true });
    expect(buy(close)).toMatchObject({ ok: false, code: "MARKET_CLOSED" });
    expect(s.deals()).toHaveLength(1);
  });
});
