/**
 * Scenario tests with hand-computed expectations to the cent (issue: trading core).
 * Every amount in a comment is worked out by hand from the contract specification.
 */
import { describe, expect, it } from "vitest";
import {
  BALANCE_REFERENCES_PER_ACCOUNT,
  IllegalOrderTransitionError,
  assertOrderTransition,
  defaultEngineConfig,
} from "../src/index.ts";
import { Scenario, TUESDAY_NOON, lots, money, points } from "./helpers.ts";

describe("profit and margin", () => {
  it("EURUSD 1 lot bought at ask 1.08440 and closed at bid 1.08540 gives +100.00 USD", () => {
    const s = new Scenario();
    const account = s.account("USD", "10000");
    s.quote("EURUSD", "1.08430", "1.08440");
    const opened = s.buy(account, "EURUSD", "1");
    expect(s.deals()[0]).toMatchObject({ price: points("EURUSD", "1.08440"), volume: 100, entry: "IN", side: "BUY" });
    // Margin: 1 lot × 100,000 EUR / 100 = 1,000 EUR, at the EURUSD bid 1.08430 = 1,084.30 USD.
    expect(s.engine.accountMetrics(account).margin).toBe(money("1084.30"));
    s.quote("EURUSD", "1.08540", "1.08550");
    expect(s.engine.accountMetrics(account).profit).toBe(money("100.00"));
    s.ok({ kind: "closePosition", accountId: account, positionId: opened.positionId as number });
    expect(s.deals()[1]).toMatchObject({
      price: points("EURUSD", "1.08540"),
      entry: "OUT",
      side: "SELL",
      profit: money("100.00"),
    });
    expect(s.get(account).balance).toBe(money("10100.00"));
    expect(s.engine.accountMetrics(account).margin).toBe(0);
    expect(s.ledgerHolds(account)).toBe(true);
    expect(s.replayMatches()).toBe(true);
  });

  it("the same trade in a EUR account is converted into EUR at the close", () => {
    const s = new Scenario();
    const account = s.account("EUR", "10000");
    s.quote("EURUSD", "1.08430", "1.08440");
    const opened = s.buy(account, "EURUSD", "1");
    // Margin is in the base currency EUR, the account currency: 100,000 / 100 = 1,000.00 EUR.
    expect(s.engine.accountMetrics(account).margin).toBe(money("1000.00"));
    s.quote("EURUSD", "1.08540", "1.08550");
    s.ok({ kind: "closePosition", accountId: account, positionId: opened.positionId as number });
    // 100.00 USD → EUR through EURUSD, buying EUR at the ask: 100 / 1.08550 = 92.1234… → 92.12 EUR.
    expect(s.deals()[1]?.profit).toBe(money("92.12"));
    expect(s.get(account).balance).toBe(money("10092.12"));
    expect(s.ledgerHolds(account)).toBe(true);
  });

  it("USDJPY profit is in JPY and converts to USD at the close; margin is in USD", () => {
    const s = new Scenario();
    const account = s.account("USD", "10000");
    s.quote("USDJPY", "150.230", "150.250");
    const opened = s.buy(account, "USDJPY", "1");
    // Margin: 100,000 USD / 100 = 1,000.00 USD (the base currency is the account currency).
    expect(s.engine.accountMetrics(account).margin).toBe(money("1000.00"));
    s.quote("USDJPY", "150.750", "150.770");
    s.ok({ kind: "closePosition", accountId: account, positionId: opened.positionId as number });
    // (150.750 − 150.250) × 100,000 = 50,000 JPY; / 150.770 (USDJPY ask) = 331.6309… → 331.63 USD.
    expect(s.deals()[1]?.profit).toBe(money("331.63"));
    expect(s.ledgerHolds(account)).toBe(true);
  });

  it("USDJPY in a JPY account: profit 50,000 JPY exactly, margin converted at the bid", () => {
    const s = new Scenario();
    const account = s.account("JPY", "10000000");
    s.quote("USDJPY", "150.230", "150.250");
    const opened = s.buy(account, "USDJPY", "1");
    // 1,000 USD × 150.230 = 150,230 JPY (JPY has no minor unit).
    expect(s.engine.accountMetrics(account).margin).toBe(150_230);
    s.quote("USDJPY", "150.750", "150.770");
    s.ok({ kind: "closePosition", accountId: account, positionId: opened.positionId as number });
    expect(s.deals()[1]?.profit).toBe(50_000);
    expect(s.get(account).balance).toBe(10_050_000);
  });

  it("USDJPY profit in a EUR account converts through EURJPY", () => {
    const s = new Scenario();
    const account = s.account("EUR", "10000");
    s.quote("EURUSD", "1.08430", "1.08440");
    s.quote("USDJPY", "150.230", "150.250");
    s.quote("EURJPY", "162.900", "162.950");
    const opened = s.buy(account, "USDJPY", "1");
    // Margin: 1,000 USD → EUR dividing by the EURUSD ask 1.08440 = 922.168… → up to 922.17 EUR.
    expect(s.engine.accountMetrics(account).margin).toBe(money("922.17"));
    s.quote("USDJPY", "150.750", "150.770");
    s.ok({ kind: "closePosition", accountId: account, positionId: opened.positionId as number });
    // 50,000 JPY / 162.950 (EURJPY ask) = 306.843… → 306.84 EUR.
    expect(s.deals()[1]?.profit).toBe(money("306.84"));
  });

  it("a GBP account margins EURUSD through EURGBP and converts its USD profit through GBPUSD", () => {
    const s = new Scenario();
    const account = s.account("GBP", "10000");
    s.quote("EURUSD", "1.08430", "1.08440");
    s.quote("GBPUSD", "1.27000", "1.27010");
    // Without a EURGBP quote the margin cannot be converted: refused, nothing changes.
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
    s.quote("EURGBP", "0.85370", "0.85380");
    const opened = s.buy(account, "EURUSD", "1");
    // 1,000 EUR × 0.85370 = 853.70 GBP.
    expect(s.engine.accountMetrics(account).margin).toBe(money("853.70"));
    s.quote("EURUSD", "1.08540", "1.08550");
    s.ok({ kind: "closePosition", accountId: account, positionId: opened.positionId as number });
    // 100.00 USD / 1.27010 (GBPUSD ask) = 78.7339… → 78.73 GBP.
    expect(s.deals()[1]?.profit).toBe(money("78.73"));
    expect(s.ledgerHolds(account)).toBe(true);
  });

  it("XAUUSD profit and margin", () => {
    const s = new Scenario();
    const account = s.account("USD", "10000");
    s.quote("XAUUSD", "2350.20", "2350.50");
    const opened = s.buy(account, "XAUUSD", "0.10");
    // 0.1 lot × 100 oz / 100 = 0.1 oz of gold at 2,350.20 = 235.02 USD.
    expect(s.engine.accountMetrics(account).margin).toBe(money("235.02"));
    s.quote("XAUUSD", "2360.00", "2360.30");
    s.ok({ kind: "closePosition", accountId: account, positionId: opened.positionId as number });
    // (2,360.00 − 2,350.50) × 100 oz × 0.1 = 95.00 USD.
    expect(s.deals()[1]?.profit).toBe(money("95.00"));
  });

  it("CFD margin ignores leverage and commissions are charged per side (BTCUSD)", () => {
    const s = new Scenario();
    const account = s.account("USD", "50000");
    s.quote("BTCUSD", "60000.00", "60010.00");
    const opened = s.buy(account, "BTCUSD", "0.5");
    // 0.5 × 1 × 60,010.00 × 50 % = 15,002.50 USD; commission 5.00 × 0.5 = 2.50 USD.
    expect(s.engine.accountMetrics(account).margin).toBe(money("15002.50"));
    expect(s.deals()[0]?.commission).toBe(money("2.50"));
    expect(s.get(account).balance).toBe(money("49997.50"));
    s.quote("BTCUSD", "61000.00", "61010.00");
    s.ok({ kind: "closePosition", accountId: account, positionId: opened.positionId as number });
    // (61,000 − 60,010) × 0.5 = 495.00 profit, 2.50 commission again.
    expect(s.deals()[1]).toMatchObject({ profit: money("495.00"), commission: money("2.50") });
    expect(s.get(account).balance).toBe(money("50490.00"));
    expect(s.get(account).ledger.commissions).toBe(money("5.00"));
    expect(s.ledgerHolds(account)).toBe(true);
  });

  it("a partial close realises its share and keeps the rest with its margin", () => {
    const s = new Scenario();
    const account = s.account("USD", "10000");
    s.quote("EURUSD", "1.08430", "1.08440");
    const opened = s.buy(account, "EURUSD", "1");
    const positionId = opened.positionId as number;
    s.quote("EURUSD", "1.08540", "1.08550");
    s.ok({ kind: "closePosition", accountId: account, positionId, volume: lots("EURUSD", "0.4") });
    expect(s.deals()[1]).toMatchObject({ volume: 40, profit: money("40.00") });
    const [position] = s.positions(account);
    expect(position).toMatchObject({ id: positionId, volume: 60, openCost: points("EURUSD", "1.08440") * 60 });
    // 40 % of 1,084.30 = 433.72 released; 650.58 held.
    expect(position?.margin).toBe(money("650.58"));
    expect(s.engine.accountMetrics(account).profit).toBe(money("60.00"));
    expect(s.rejected({ kind: "closePosition", accountId: account, positionId, volume: lots("EURUSD", "0.7") })).toBe(
      "INVALID_VOLUME",
    );
  });
});

describe("position modes", () => {
  it("netting: buy 1 then sell 0.4 leaves one 0.6 position; sell 1.5 reverses it", () => {
    const s = new Scenario();
    const account = s.account("USD", "10000", { mode: "NETTING" });
    s.quote("EURUSD", "1.08430", "1.08440");
    s.buy(account, "EURUSD", "1");
    s.sell(account, "EURUSD", "0.4");
    expect(s.positions(account)).toHaveLength(1);
    expect(s.positions(account)[0]).toMatchObject({ side: "BUY", volume: 60 });
    // Sold 0.4 at the bid 1.08430 against a buy at 1.08440: −0.00010 × 40,000 = −4.00.
    expect(s.deals()[1]).toMatchObject({ entry: "OUT", profit: money("-4.00") });
    s.sell(account, "EURUSD", "1.5");
    const positions = s.positions(account);
    expect(positions).toHaveLength(1);
    expect(positions[0]).toMatchObject({ side: "SELL", volume: 90, openCost: points("EURUSD", "1.08430") * 90 });
    const [closing, opening] = s.deals().slice(2);
    expect(closing).toMatchObject({ entry: "OUT", volume: 60, profit: money("-6.00") });
    expect(opening).toMatchObject({ entry: "IN", volume: 90 });
    expect(s.ledgerHolds(account)).toBe(true);
    expect(s.replayMatches()).toBe(true);
  });

  it("hedging: opposite positions coexist, margin is the larger leg", () => {
    const s = new Scenario();
    const account = s.account("USD", "10000");
    s.quote("EURUSD", "1.08430", "1.08440");
    s.buy(account, "EURUSD", "1");
    s.sell(account, "EURUSD", "0.5");
    const positions = s.positions(account);
    expect(positions.map((position) => [position.side, position.volume])).toEqual([
      ["BUY", 100],
      ["SELL", 50],
    ]);
    expect(s.engine.accountMetrics(account).margin).toBe(money("1084.30"));
  });
});

describe("pending orders trigger exactly on their side of the quote", () => {
  const cases = [
    {
      type: "LIMIT",
      side: "BUY",
      price: "1.08300",
      near: ["1.08291", "1.08301"],
      hit: ["1.08290", "1.08300"],
      fill: "1.08300",
    },
    {
      type: "LIMIT",
      side: "SELL",
      price: "1.08600",
      near: ["1.08599", "1.08609"],
      hit: ["1.08600", "1.08610"],
      fill: "1.08600",
    },
    {
      type: "STOP",
      side: "BUY",
      price: "1.08600",
      near: ["1.08589", "1.08599"],
      hit: ["1.08590", "1.08600"],
      fill: "1.08600",
    },
    {
      type: "STOP",
      side: "SELL",
      price: "1.08300",
      near: ["1.08301", "1.08311"],
      hit: ["1.08300", "1.08310"],
      fill: "1.08300",
    },
  ] as const;
  for (const { type, side, price, near, hit, fill } of cases) {
    it(`${side} ${type} at ${price} waits one point away and fills at ${fill}`, () => {
      const s = new Scenario();
      const account = s.account();
      s.quote("EURUSD", "1.08430", "1.08440");
      const placed = s.ok({
        kind: "placeOrder",
        accountId: account,
        symbol: "EURUSD",
        side,
        type,
        volume: 100,
        price: points("EURUSD", price),
      });
      s.quote("EURUSD", near[0], near[1]);
      expect(s.positions(account)).toHaveLength(0);
      expect(s.engine.state.orders.get(placed.orderId as number)?.status).toBe("PLACED");
      s.quote("EURUSD", hit[0], hit[1]);
      expect(s.positions(account)).toHaveLength(1);
      expect(s.deals()[0]).toMatchObject({ orderId: placed.orderId, side, price: points("EURUSD", fill) });
      expect(s.engine.state.orders.has(placed.orderId as number)).toBe(false);
      expect(s.replayMatches()).toBe(true);
    });
  }

  it("a buy stop fills at the ask after a gap, never at a price the quote did not offer", () => {
    const s = new Scenario();
    const account = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    s.ok({
      kind: "placeOrder",
      accountId: account,
      symbol: "EURUSD",
      side: "BUY",
      type: "STOP",
      volume: 100,
      price: points("EURUSD", "1.08600"),
    });
    s.quote("EURUSD", "1.08700", "1.08710");
    expect(s.deals()[0]?.price).toBe(points("EURUSD", "1.08710"));
  });

  it("a buy stop-limit becomes a limit at the stop and fills only at or below its limit", () => {
    const s = new Scenario();
    const account = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    const placed = s.ok({
      kind: "placeOrder",
      accountId: account,
      symbol: "EURUSD",
      side: "BUY",
      type: "STOP_LIMIT",
      volume: 100,
      price: points("EURUSD", "1.08600"),
      stopLimitPrice: points("EURUSD", "1.08550"),
    });
    s.quote("EURUSD", "1.08610", "1.08620");
    expect(s.engine.state.orders.get(placed.orderId as number)).toMatchObject({ triggered: true, status: "PLACED" });
    expect(s.positions(account)).toHaveLength(0);
    s.quote("EURUSD", "1.08541", "1.08551");
    expect(s.positions(account)).toHaveLength(0);
    s.quote("EURUSD", "1.08540", "1.08550");
    expect(s.deals()[0]?.price).toBe(points("EURUSD", "1.08550"));
    expect(s.replayMatches()).toBe(true);
  });

  it("rejects pending prices on the wrong side of the market", () => {
    const s = new Scenario();
    const account = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    const base = { kind: "placeOrder", accountId: account, symbol: "EURUSD", volume: 100 } as const;
    expect(s.rejected({ ...base, side: "BUY", type: "LIMIT", price: points("EURUSD", "1.08440") })).toBe(
      "INVALID_PRICE",
    );
    expect(s.rejected({ ...base, side: "BUY", type: "STOP", price: points("EURUSD", "1.08440") })).toBe(
      "INVALID_PRICE",
    );
    expect(s.rejected({ ...base, side: "SELL", type: "LIMIT", price: points("EURUSD", "1.08430") })).toBe(
      "INVALID_PRICE",
    );
    expect(s.rejected({ ...base, side: "SELL", type: "STOP", price: points("EURUSD", "1.08430") })).toBe(
      "INVALID_PRICE",
    );
    expect(s.events.filter((event) => event.type === "OrderAccepted")).toHaveLength(0);
  });
});

describe("stop loss, take profit and trailing stop", () => {
  it("SL closes a buy at the bid when the bid reaches it, not one point before", () => {
    const s = new Scenario();
    const account = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    s.buy(account, "EURUSD", "1", { sl: points("EURUSD", "1.08300"), tp: points("EURUSD", "1.08600") });
    s.quote("EURUSD", "1.08301", "1.08311");
    expect(s.positions(account)).toHaveLength(1);
    s.quote("EURUSD", "1.08300", "1.08310");
    expect(s.positions(account)).toHaveLength(0);
    // (1.08300 − 1.08440) × 100,000 = −140.00.
    expect(s.deals()[1]).toMatchObject({
      reason: "STOP_LOSS",
      price: points("EURUSD", "1.08300"),
      profit: money("-140.00"),
    });
  });

  it("TP closes a sell at the ask", () => {
    const s = new Scenario();
    const account = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    s.sell(account, "EURUSD", "1", { tp: points("EURUSD", "1.08200") });
    s.quote("EURUSD", "1.08191", "1.08201");
    expect(s.positions(account)).toHaveLength(1);
    s.quote("EURUSD", "1.08190", "1.08200");
    // (1.08430 − 1.08200) × 100,000 = 230.00.
    expect(s.deals()[1]).toMatchObject({
      reason: "TAKE_PROFIT",
      price: points("EURUSD", "1.08200"),
      profit: money("230.00"),
    });
  });

  it("rejects SL/TP on the wrong side", () => {
    const s = new Scenario();
    const account = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    expect(
      s.rejected({
        kind: "placeOrder",
        accountId: account,
        symbol: "EURUSD",
        side: "BUY",
        type: "MARKET",
        volume: 100,
        sl: points("EURUSD", "1.08500"),
      }),
    ).toBe("INVALID_STOPS");
    expect(
      s.rejected({
        kind: "placeOrder",
        accountId: account,
        symbol: "EURUSD",
        side: "SELL",
        type: "MARKET",
        volume: 100,
        tp: points("EURUSD", "1.08500"),
      }),
    ).toBe("INVALID_STOPS");
  });

  it("a trailing stop starts once in profit by its distance, only tightens, then closes", () => {
    const s = new Scenario();
    const account = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    const opened = s.buy(account, "EURUSD", "1", { trailingDistance: 100 });
    const positionId = opened.positionId as number;
    s.quote("EURUSD", "1.08500", "1.08510");
    expect(s.engine.state.positions.get(positionId)?.sl).toBeNull();
    s.quote("EURUSD", "1.08540", "1.08550");
    expect(s.engine.state.positions.get(positionId)?.sl).toBe(points("EURUSD", "1.08440"));
    s.quote("EURUSD", "1.08600", "1.08610");
    expect(s.engine.state.positions.get(positionId)?.sl).toBe(points("EURUSD", "1.08500"));
    s.quote("EURUSD", "1.08550", "1.08560");
    expect(s.engine.state.positions.get(positionId)?.sl).toBe(points("EURUSD", "1.08500"));
    s.quote("EURUSD", "1.08500", "1.08510");
    expect(s.positions(account)).toHaveLength(0);
    expect(s.deals()[1]).toMatchObject({ reason: "STOP_LOSS", profit: money("60.00") });
    expect(s.replayMatches()).toBe(true);
  });
});

describe("depth, IOC and FOK", () => {
  const thinBook = (s: Scenario) =>
    s.ok({
      kind: "tick",
      symbol: "EURUSD",
      bid: points("EURUSD", "1.08430"),
      ask: points("EURUSD", "1.08440"),
      bids: [{ price: points("EURUSD", "1.08430"), volume: 50 }],
      asks: [
        { price: points("EURUSD", "1.08440"), volume: 30 },
        { price: points("EURUSD", "1.08450"), volume: 20 },
      ],
    });

  it("IOC fills what the book offers, level by level, and cancels the rest", () => {
    const s = new Scenario();
    const account = s.account();
    thinBook(s);
    const result = s.buy(account, "EURUSD", "1", { timeInForce: "IOC" });
    expect(s.deals().map((deal) => [deal.price, deal.volume])).toEqual([
      [points("EURUSD", "1.08440"), 30],
      [points("EURUSD", "1.08450"), 20],
    ]);
    expect(result.order).toMatchObject({ status: "CANCELLED", statusReason: "IOC_REMAINDER", filledVolume: 50 });
    expect(s.positions(account)).toEqual([
      expect.objectContaining({ volume: 50, openCost: 108440 * 30 + 108450 * 20 }),
    ]);
    // The book is consumed until the next tick.
    expect(
      s.rejected({ kind: "placeOrder", accountId: account, symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 10 }),
    ).toBe("NO_LIQUIDITY");
  });

  it("FOK rejects on thin depth and changes nothing", () => {
    const s = new Scenario();
    const account = s.account();
    thinBook(s);
    const hash = s.engine.stateHash();
    expect(
      s.rejected({
        kind: "placeOrder",
        accountId: account,
        symbol: "EURUSD",
        side: "BUY",
        type: "MARKET",
        volume: 100,
        timeInForce: "FOK",
      }),
    ).toBe("NO_LIQUIDITY");
    expect(s.engine.stateHash()).toBe(hash);
  });

  it("a requested price with a deviation bounds slippage", () => {
    const s = new Scenario();
    const account = s.account();
    thinBook(s);
    expect(
      s.rejected({
        kind: "placeOrder",
        accountId: account,
        symbol: "EURUSD",
        side: "BUY",
        type: "MARKET",
        volume: 10,
        price: points("EURUSD", "1.08420"),
        deviation: 10,
      }),
    ).toBe("PRICE_OFF");
    s.buy(account, "EURUSD", "0.4", { price: points("EURUSD", "1.08440"), deviation: 10 });
    expect(s.deals().map((deal) => deal.price)).toEqual([points("EURUSD", "1.08440"), points("EURUSD", "1.08450")]);
  });

  // Found by the audit of 7 December (second session): without a price the deviation bounded nothing, and the order
  // walked the whole book.
  it("a deviation without a price bounds slippage from the price quoted when the order arrives", () => {
    const s = new Scenario();
    const account = s.account();
    thinBook(s);
    expect(
      s.rejected({
        kind: "placeOrder",
        accountId: account,
        symbol: "EURUSD",
        side: "BUY",
        type: "MARKET",
        volume: lots("EURUSD", "0.4"),
        deviation: 5,
        timeInForce: "FOK",
      }),
    ).toBe("PRICE_OFF");
    s.buy(account, "EURUSD", "0.4", { deviation: 5, timeInForce: "IOC" });
    // Within 1.08440 + 5 points: the top level's 0.3 lot, not the next level at 1.08450.
    expect(s.deals().map((deal) => [deal.price, deal.volume])).toEqual([[points("EURUSD", "1.08440"), 30]]);
    expect(s.replayMatches()).toBe(true);
  });
});

describe("take profit and the book walk", () => {
  // Found by the audit of 7 December (second session): the TP was checked against the quote before the walk, so a
  // deep walk opened a position whose TP lay below its own price, and the next tick closed it as TAKE_PROFIT at a loss.
  it("refuses an order that would fill beyond its own take profit, and changes nothing", () => {
    const s = new Scenario();
    const account = s.account();
    s.ok({
      kind: "tick",
      symbol: "EURUSD",
      bid: points("EURUSD", "1.08430"),
      ask: points("EURUSD", "1.08440"),
      bids: [
        { price: points("EURUSD", "1.08430"), volume: 30 },
        { price: points("EURUSD", "1.08420"), volume: 20 },
      ],
      asks: [
        { price: points("EURUSD", "1.08440"), volume: 30 },
        { price: points("EURUSD", "1.08450"), volume: 20 },
      ],
    });
    const hash = s.engine.stateHash();
    const order = (side: "BUY" | "SELL", tp: string) =>
      s.rejected({
        kind: "placeOrder",
        accountId: account,
        symbol: "EURUSD",
        side,
        type: "MARKET",
        volume: lots("EURUSD", "0.5"),
        tp: points("EURUSD", tp),
      });
    // The second level's 0.2 lot would fill at 1.08450, past a TP of 1.08445 (a sell at 1.08420, past 1.08425).
    expect(order("BUY", "1.08445")).toBe("INVALID_STOPS");
    expect(order("SELL", "1.08425")).toBe("INVALID_STOPS");
    expect(s.engine.stateHash()).toBe(hash);
    // A TP at the last level's price or beyond it is taken: no fill is past it.
    s.buy(account, "EURUSD", "0.5", { tp: points("EURUSD", "1.08450") });
    s.sell(account, "EURUSD", "0.5", { tp: points("EURUSD", "1.08420") });
    expect(s.positions(account).map((position) => position.tp)).toEqual([
      points("EURUSD", "1.08450"),
      points("EURUSD", "1.08420"),
    ]);
    expect(s.replayMatches()).toBe(true);
  });
});

describe("risk", () => {
  it("rejects an order the free margin cannot carry", () => {
    const s = new Scenario();
    const account = s.account("USD", "1000");
    s.quote("EURUSD", "1.08430", "1.08440");
    const hash = s.engine.stateHash();
    expect(
      s.rejected({
        kind: "placeOrder",
        accountId: account,
        symbol: "EURUSD",
        side: "BUY",
        type: "MARKET",
        volume: 100,
      }),
    ).toBe("NO_MONEY");
    expect(s.engine.stateHash()).toBe(hash);
    s.buy(account, "EURUSD", "0.5");
  });

  it("withdrawal never goes below used margin", () => {
    const s = new Scenario();
    const account = s.account("USD", "2000");
    s.quote("EURUSD", "1.08430", "1.08440");
    s.buy(account, "EURUSD", "1");
    // Equity 1,990.00 (spread) − margin 1,084.30 = 905.70 free.
    expect(s.rejected({ kind: "withdraw", accountId: account, amount: money("905.71") })).toBe("NO_MONEY");
    s.ok({ kind: "withdraw", accountId: account, amount: money("905.70") });
    expect(s.engine.accountMetrics(account).freeMargin).toBe(0);
    expect(s.ledgerHolds(account)).toBe(true);
  });

  it("stop-out closes the most losing position first, repeatedly, until the level is restored", () => {
    const s = new Scenario();
    const account = s.account("USD", "1000");
    s.quote("EURUSD", "1.08430", "1.08440");
    s.quote("GBPUSD", "1.27000", "1.27010");
    s.quote("AUDUSD", "0.66000", "0.66010");
    const a = s.buy(account, "EURUSD", "0.3").positionId;
    const b = s.buy(account, "GBPUSD", "0.3").positionId;
    const c = s.sell(account, "AUDUSD", "0.2").positionId;
    // Margins 325.29 + 381.00 + 132.00 = 838.29.
    expect(s.engine.accountMetrics(account).margin).toBe(money("838.29"));
    s.quote("GBPUSD", "1.25700", "1.25710");
    // Equity 1,000 − 3 − 393 − 2 = 602.00: margin call (≤ 100 %), no stop-out.
    expect(s.get(account).marginCall).toBe(true);
    expect(s.positions(account)).toHaveLength(3);
    s.quote("EURUSD", "1.06840", "1.06850");
    // Equity 125.00 against 838.29 (14.9 %): close A (−480), level 125/513 = 24 %: close B (−393), level 125/132 = 94.7 %: stop.
    const stopOuts = s.events
      .filter((event) => event.type === "StopOut")
      .map((event) => (event.type === "StopOut" ? event.positionId : 0));
    expect(stopOuts).toEqual([a, b]);
    expect(s.positions(account).map((position) => position.id)).toEqual([c]);
    expect(
      s
        .deals()
        .filter((deal) => deal.reason === "STOP_OUT")
        .map((deal) => deal.profit),
    ).toEqual([money("-480.00"), money("-393.00")]);
    expect(s.get(account).balance).toBe(money("127.00"));
    expect(s.get(account).marginCall).toBe(true);
    expect(s.ledgerHolds(account)).toBe(true);
    expect(s.replayMatches()).toBe(true);
  });

  it("enters margin call at the group's level and clears it when equity recovers", () => {
    const s = new Scenario();
    const account = s.account("USD", "1500");
    s.quote("EURUSD", "1.08430", "1.08440");
    s.buy(account, "EURUSD", "1");
    // Margin 1,084.30: the 100 % call comes when equity falls to 1,084.30 or below.
    s.quote("EURUSD", "1.08025", "1.08035");
    // Equity 1,500 + (1.08025 − 1.08440) × 100,000 = 1,085.00 > 1,084.30: not yet.
    expect(s.get(account).marginCall).toBe(false);
    s.quote("EURUSD", "1.08024", "1.08034");
    // 1,084.00 ≤ 1,084.30: margin call.
    expect(s.get(account).marginCall).toBe(true);
    s.quote("EURUSD", "1.08200", "1.08210");
    expect(s.get(account).marginCall).toBe(false);
    expect(s.events.filter((event) => event.type.startsWith("MarginCall")).map((event) => event.type)).toEqual([
      "MarginCallEntered",
      "MarginCallCleared",
    ]);
  });

  it("credit counts towards equity and margin but cannot be withdrawn", () => {
    const s = new Scenario();
    const account = s.account("USD", "500");
    s.ok({ kind: "credit", accountId: account, amount: money("1000") });
    s.quote("EURUSD", "1.08430", "1.08440");
    s.buy(account, "EURUSD", "1");
    expect(s.engine.accountMetrics(account)).toMatchObject({
      balance: money("500"),
      credit: money("1000"),
      equity: money("1490.00"),
    });
    expect(s.rejected({ kind: "withdraw", accountId: account, amount: money("500.01") })).toBe("NO_MONEY");
    expect(s.rejected({ kind: "credit", accountId: account, amount: money("-1000") })).toBe("NO_MONEY");
    expect(s.rejected({ kind: "credit", accountId: account, amount: money("-1000.01") })).toBe("INVALID_AMOUNT");
    expect(s.ledgerHolds(account)).toBe(true);
  });

  // On 2defd5c a withdrawal was checked against the free margin with the credit in it: 500.00 of own money left
  // while the credit carried a 401.00 loss and the margin.
  it("a withdrawal takes only own money no position needs: the credit never carries what leaves", () => {
    const s = new Scenario();
    const account = s.account("USD", "500");
    s.ok({ kind: "credit", accountId: account, amount: money("1000") });
    s.quote("EURUSD", "1.08430", "1.08440");
    s.buy(account, "EURUSD", "0.1"); // margin 108.44
    s.quote("EURUSD", "1.04430", "1.04440"); // floating (1.04430 − 1.08440) × 10,000 = −401.00
    // Own equity 500.00 − 401.00 = 99.00, under the margin: nothing may leave.
    expect(s.rejected({ kind: "withdraw", accountId: account, amount: money("0.01") })).toBe("NO_MONEY");
    s.quote("EURUSD", "1.10430", "1.10440"); // floating +199.00: own equity 699.00, margin 108.44
    expect(s.rejected({ kind: "withdraw", accountId: account, amount: money("500.01") })).toBe("NO_MONEY");
    s.ok({ kind: "withdraw", accountId: account, amount: money("500") });
    expect(s.get(account).balance).toBe(0);
    expect(s.ledgerHolds(account)).toBe(true);
  });

  it("a negative balance after stop-out is corrected to zero with a recorded correction", () => {
    const s = new Scenario();
    const account = s.account("USD", "1000", { leverage: 200 });
    s.quote("EURUSD", "1.08430", "1.08440");
    s.buy(account, "EURUSD", "1");
    s.quote("EURUSD", "1.06000", "1.06010");
    // Loss (1.06000 − 1.08440) × 100,000 = −2,440.00 → balance −1,440.00 → correction +1,440.00.
    expect(s.positions(account)).toHaveLength(0);
    expect(s.get(account).balance).toBe(0);
    expect(s.get(account).ledger.corrections).toBe(money("1440.00"));
    const correction = s.events.find((event) => event.type === "BalanceOperation" && event.kind === "CORRECTION");
    expect(correction).toMatchObject({ amount: money("1440.00") });
    expect(s.ledgerHolds(account)).toBe(true);
  });

  // On 32210bd the correction looked at the balance alone: a stop-out that restored the level with a profitable
  // position still open, or credit that covered the loss, got the negative balance paid out by the broker.
  it("no correction while a stopped-out account still holds a profitable position: its equity covers the balance", () => {
    const s = new Scenario();
    const account = s.account("USD", "1000", { leverage: 500 });
    s.quote("EURUSD", "1.08430", "1.08440");
    s.quote("GBPUSD", "1.27000", "1.27010");
    s.buy(account, "EURUSD", "1");
    s.buy(account, "GBPUSD", "0.1");
    s.quote("GBPUSD", "2.50000", "2.50010"); // GBPUSD floats +12,299.00
    s.quote("EURUSD", "0.95191", "0.95201"); // EURUSD floats −13,249.00: equity 50.00 against 242.26 of margin
    // EURUSD is stopped out (−13,249.00); GBPUSD stays open, equity 50.00 against 25.40 of margin.
    expect(s.positions(account).map((position) => position.symbol)).toEqual(["GBPUSD"]);
    expect(s.get(account).balance).toBe(money("-12249.00"));
    expect(s.get(account).ledger.corrections).toBe(0);
    expect(s.engine.accountMetrics(account).equity).toBe(money("50.00"));
    expect(s.ledgerHolds(account)).toBe(true);
  });

  // Found by the audit of 7 December: the balance stayed negative beside the credit that covered it (−1,940.00 and
  // 2,000.00), so the client's next deposit silently repaid the broker's credit and could not be withdrawn.
  it("credit that covers a stop-out's loss is taken back before any correction, and the balance ends at zero", () => {
    const s = new Scenario();
    const account = s.account("USD", "1000", { leverage: 200 });
    s.ok({ kind: "credit", accountId: account, amount: money("2000") });
    s.quote("EURUSD", "1.08430", "1.08440");
    s.buy(account, "EURUSD", "1");
    s.quote("EURUSD", "1.05500", "1.05510");
    // Loss (1.05500 − 1.08440) × 100,000 = −2,940.00: balance −1,940.00, credit 2,000.00, equity 60.00 (stopped out
    // at 60.00 against 542.20 of margin: 11 %). The credit covers the −1,940.00: 1,940.00 of it is taken back and the
    // balance corrected to 0; 60.00 of credit is left, and equity is 60.00 as before.
    expect(s.positions(account)).toHaveLength(0);
    expect(s.events.filter((event) => event.type === "BalanceOperation").slice(-2)).toEqual([
      expect.objectContaining({ kind: "CREDIT", amount: money("-1940.00") }),
      expect.objectContaining({ kind: "CORRECTION", amount: money("1940.00") }),
    ]);
    expect(s.get(account)).toMatchObject({ balance: 0, credit: money("60.00") });
    expect(s.engine.accountMetrics(account).equity).toBe(money("60.00"));
    // The client's next deposit is the client's: all of it can be withdrawn.
    s.ok({ kind: "deposit", accountId: account, amount: money("1000") });
    s.ok({ kind: "withdraw", accountId: account, amount: money("1000") });
    expect(s.ledgerHolds(account)).toBe(true);
    expect(s.replayMatches()).toBe(true);
    // Past the credit, the credit is taken back whole and the balance corrected to zero: equity exactly 0.
    const deeper = new Scenario();
    const other = deeper.account("USD", "1000", { leverage: 200 });
    deeper.ok({ kind: "credit", accountId: other, amount: money("500") });
    deeper.quote("EURUSD", "1.08430", "1.08440");
    deeper.buy(other, "EURUSD", "1");
    deeper.quote("EURUSD", "1.05500", "1.05510");
    expect(deeper.positions(other)).toHaveLength(0);
    expect(deeper.get(other)).toMatchObject({ balance: 0, credit: 0 });
    expect(deeper.get(other).ledger.corrections).toBe(money("1940.00"));
    expect(deeper.engine.accountMetrics(other).equity).toBe(0);
    expect(deeper.ledgerHolds(other)).toBe(true);
    expect(deeper.replayMatches()).toBe(true);
  });
});

describe("a group whose stop-out level is above its margin-call level", () => {
  // Found by the audit of 7 December: risk thresholds were registered at the margin-call level only, so with
  // margin call 50 % and stop-out 80 % the stop-out waited until the level fell to 50 %.
  it("is stopped out on the first tick at or below its stop-out level", () => {
    const config = defaultEngineConfig({
      groups: [
        ...defaultEngineConfig().groups,
        { name: "strict", marginCallLevelPercent: 50, stopOutLevelPercent: 80 },
      ],
    });
    const s = new Scenario(config);
    const account = s.account("USD", "1000", { group: "strict" });
    s.quote("EURUSD", "1.08430", "1.08440");
    s.buy(account, "EURUSD", "0.5");
    for (let bid = 108_420; bid > 100_000 && s.positions(account).length > 0; bid -= 10) {
      s.ok({ kind: "tick", symbol: "EURUSD", bid, ask: bid + 10 });
      const { equity, margin } = s.engine.accountMetrics(account);
      if (s.positions(account).length > 0) expect(equity * 100, `at bid ${bid}`).toBeGreaterThan(80 * margin);
    }
    expect(s.events.filter((event) => event.type === "StopOut")).toHaveLength(1);
    expect(s.ledgerHolds(account)).toBe(true);
  });
});

describe("time: swaps, expirations, sessions", () => {
  it("charges daily swap at rollover, triple on Wednesday, and realises it at the close", () => {
    const s = new Scenario();
    expect(new Date(TUESDAY_NOON).getUTCDay()).toBe(2);
    const account = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    const positionId = s.buy(account, "EURUSD", "1").positionId as number;
    // Rollovers at Tuesday 22:00 (×1) and Wednesday 22:00 (×3): −7.2 points × 100,000 × 0.00001 = −7.20 per day.
    s.ok({ kind: "advanceTime" }, Date.UTC(2026, 5, 3, 23, 0));
    expect(s.engine.state.positions.get(positionId)?.swap).toBe(money("-28.80"));
    expect(s.engine.accountMetrics(account).profit).toBe(money("-10.00") + money("-28.80"));
    s.ok({ kind: "closePosition", accountId: account, positionId });
    expect(s.get(account).ledger.swaps).toBe(money("-28.80"));
    expect(s.ledgerHolds(account)).toBe(true);
    expect(s.replayMatches()).toBe(true);
  });

  it("a rollover that falls due with a closing command is charged before the close and realised by it", () => {
    const s = new Scenario();
    const account = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    const positionId = s.buy(account, "EURUSD", "1").positionId as number;
    // No command between noon and 23:00: the 22:00 rollover falls due with the close itself.
    const closed = s.ok({ kind: "closePosition", accountId: account, positionId }, Date.UTC(2026, 5, 2, 23, 0));
    expect(closed.events.map((event) => event.type)).toEqual([
      "Rollover",
      "OrderAccepted",
      "DealExecuted",
      "OrderStatusChanged",
    ]);
    expect(s.get(account).ledger.swaps).toBe(money("-7.20"));
    expect(s.get(account).balance).toBe(money("10000") - money("10.00") - money("7.20"));
    expect(s.ledgerHolds(account)).toBe(true);
  });

  it("a rejected command still reports the expirations that fell due before it", () => {
    const s = new Scenario();
    const account = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    s.ok({
      kind: "placeOrder",
      accountId: account,
      symbol: "EURUSD",
      side: "BUY",
      type: "LIMIT",
      volume: 100,
      price: 108000,
      timeInForce: "GTD",
      expiration: s.time + 5000,
    });
    s.time += 10_000;
    const result = s.run({
      kind: "placeOrder",
      time: s.time,
      accountId: account,
      symbol: "EURUSD",
      side: "BUY",
      type: "MARKET",
      volume: 0,
    });
    expect(result.ok).toBe(false);
    expect(result.events.map((event) => event.type)).toEqual(["OrderStatusChanged"]);
    expect(s.engine.state.orders.size).toBe(0);
    expect(s.replayMatches()).toBe(true);
  });

  // The server sends advanceTime at this time (found by the audit of 7 December, second session: nothing sent it, so
  // an order past its expiration stayed working until the next quote or request).
  it("says when the next expiration or rollover is due (nextDueTime): the earlier of the two", () => {
    const s = new Scenario();
    expect(s.engine.nextDueTime()).toBeNull();
    const account = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    const rollover = Date.UTC(2026, 5, 2, 22, 0);
    expect(s.engine.nextDueTime()).toBe(rollover);
    const gtd = (expiration: number) =>
      s.pending(account, "EURUSD", "BUY", "LIMIT", "1", "1.08000", { timeInForce: "GTD", expiration });
    const cancelled = gtd(TUESDAY_NOON + 3_600_000);
    expect(s.engine.nextDueTime()).toBe(TUESDAY_NOON + 3_600_000);
    s.ok({ kind: "cancelOrder", accountId: account, orderId: cancelled.orderId as number });
    expect(s.engine.nextDueTime()).toBe(rollover);
    gtd(TUESDAY_NOON + 7_200_000);
    gtd(rollover + 60_000);
    expect(s.engine.nextDueTime()).toBe(TUESDAY_NOON + 7_200_000);
    s.ok({ kind: "advanceTime" }, TUESDAY_NOON + 7_200_000);
    expect(s.engine.nextDueTime()).toBe(rollover);
    s.ok({ kind: "advanceTime" }, rollover);
    expect(s.engine.nextDueTime()).toBe(rollover + 60_000);
    s.ok({ kind: "advanceTime" }, rollover + 60_000);
    expect(s.engine.nextDueTime()).toBe(rollover + 86_400_000);
    expect(s.engine.state.orders.size).toBe(0);
  });

  it("DAY orders expire at the rollover, GTD orders at their time", () => {
    const s = new Scenario();
    const account = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    const day = s.ok({
      kind: "placeOrder",
      accountId: account,
      symbol: "EURUSD",
      side: "BUY",
      type: "LIMIT",
      volume: 100,
      price: 108000,
      timeInForce: "DAY",
    });
    const gtd = s.ok({
      kind: "placeOrder",
      accountId: account,
      symbol: "EURUSD",
      side: "BUY",
      type: "LIMIT",
      volume: 100,
      price: 108000,
      timeInForce: "GTD",
      expiration: TUESDAY_NOON + 3_600_000,
    });
    s.ok({ kind: "advanceTime" }, TUESDAY_NOON + 3_600_000);
    expect(s.engine.state.orders.has(gtd.orderId as number)).toBe(false);
    expect(s.engine.state.orders.has(day.orderId as number)).toBe(true);
    s.ok({ kind: "advanceTime" }, Date.UTC(2026, 5, 2, 22, 0));
    expect(s.engine.state.orders.has(day.orderId as number)).toBe(false);
    const expired = s.events.filter((event) => event.type === "OrderStatusChanged" && event.status === "EXPIRED");
    expect(expired.map((event) => (event.type === "OrderStatusChanged" ? event.orderId : 0))).toEqual([
      gtd.orderId,
      day.orderId,
    ]);
    expect(
      s.rejected({
        kind: "placeOrder",
        accountId: account,
        symbol: "EURUSD",
        side: "BUY",
        type: "LIMIT",
        volume: 100,
        price: 108000,
        timeInForce: "GTD",
        expiration: s.time,
      }),
    ).toBe("INVALID_EXPIRATION");
  });

  it("rejects trading when the market is closed", () => {
    const s = new Scenario();
    const account = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    s.time = Date.UTC(2026, 5, 6, 12, 0); // Saturday
    expect(
      s.rejected({
        kind: "placeOrder",
        accountId: account,
        symbol: "EURUSD",
        side: "BUY",
        type: "MARKET",
        volume: 100,
      }),
    ).toBe("MARKET_CLOSED");
    // Crypto trades all week.
    s.quote("BTCUSD", "60000.00", "60010.00", s.time + 1000);
    s.buy(account, "BTCUSD", "0.01");
  });
});

describe("balance operations with a reference", () => {
  // Found by the audit of the back office of 7 December: a payment bridge retrying a deposit after a lost answer
  // deposited it twice, and had no way to say it was the same payment.
  it("a retry with the same reference answers the first operation and moves no money; another use is refused", () => {
    const s = new Scenario();
    const account = s.account();
    const other = s.account();
    const deposit = { kind: "deposit", accountId: account, amount: money("250"), reference: "wire-123" } as const;
    const first = s.ok(deposit);
    const balance = s.get(account).balance;
    const again = s.ok(deposit);
    expect(again).toMatchObject({ duplicate: true, operationId: first.operationId, events: [] });
    expect(s.get(account).balance).toBe(balance);
    expect(s.rejected({ ...deposit, amount: money("251") })).toBe("DUPLICATE_REFERENCE");
    expect(s.rejected({ ...deposit, kind: "withdraw" })).toBe("DUPLICATE_REFERENCE");
    // References are the account's: another account's "wire-123" is its own operation.
    expect(s.ok({ ...deposit, accountId: other }).duplicate).toBeUndefined();
    const withdrawal = { kind: "withdraw", accountId: account, amount: money("50"), reference: "out-1" } as const;
    const out = s.ok(withdrawal);
    // Kept across a restart (the snapshot) and a replay of the journal.
    s.restart();
    expect(s.ok(withdrawal)).toMatchObject({ duplicate: true, operationId: out.operationId });
    expect(s.ok(deposit)).toMatchObject({ duplicate: true, operationId: first.operationId });
    expect(s.get(account).balance).toBe(balance - money("50"));
    expect(s.rejected({ ...deposit, reference: "" })).toBe("INVALID_DATA");
    expect(s.ledgerHolds(account)).toBe(true);
    expect(s.replayMatches()).toBe(true);
    const event = s.events.find(
      (candidate) => candidate.type === "BalanceOperation" && candidate.operationId === first.operationId,
    );
    expect(event).toMatchObject({ reference: "wire-123", kind: "DEPOSIT", amount: money("250") });
    // An operation without a reference has no such key: its event is what it always was.
    const unreferenced = s.events.find(
      (candidate) => candidate.type === "BalanceOperation" && candidate.comment === "",
    );
    expect(unreferenced && "reference" in unreferenced).toBe(false);
  });

  it("forgets the oldest references past the bound per account", () => {
    const s = new Scenario();
    const account = s.account();
    for (let index = 0; index <= BALANCE_REFERENCES_PER_ACCOUNT; index += 1)
      s.ok({ kind: "deposit", accountId: account, amount: 1, reference: `r${index}` });
    expect(s.engine.state.balanceReferences.get(account)?.size).toBe(BALANCE_REFERENCES_PER_ACCOUNT);
    expect(s.ok({ kind: "deposit", accountId: account, amount: 1, reference: "r0" }).duplicate).toBeUndefined();
    expect(s.ok({ kind: "deposit", accountId: account, amount: 1, reference: "r2" }).duplicate).toBe(true);
  });
});

describe("orders", () => {
  it("a retried order with the same client order id returns the first result and does nothing again", () => {
    const s = new Scenario();
    const account = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    const first = s.buy(account, "EURUSD", "1", { clientOrderId: "abc-1" });
    const again = s.buy(account, "EURUSD", "1", { clientOrderId: "abc-1" });
    expect(again.duplicate).toBe(true);
    expect(again.events).toHaveLength(0);
    expect(again.orderId).toBe(first.orderId);
    expect(again.order).toMatchObject({ status: "FILLED", filledVolume: 100 });
    expect(again.dealIds).toEqual(first.dealIds);
    expect(s.positions(account)).toHaveLength(1);
    expect(
      s.rejected({
        kind: "placeOrder",
        accountId: account,
        symbol: "EURUSD",
        side: "SELL",
        type: "MARKET",
        volume: 100,
        clientOrderId: "abc-1",
      }),
    ).toBe("DUPLICATE_CLIENT_ORDER_ID");
  });

  it("a retried close with the same client order id answers the first close and closes nothing again", () => {
    const s = new Scenario();
    const account = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    const positionId = s.buy(account, "EURUSD", "1").positionId as number;
    const close = { kind: "closePosition", accountId: account, positionId } as const;
    const part = s.ok({ ...close, volume: lots("EURUSD", "0.4"), clientOrderId: "close-1" });
    const balance = s.get(account).balance;
    s.quote("EURUSD", "1.08500", "1.08510");
    const again = s.ok({ ...close, volume: lots("EURUSD", "0.4"), clientOrderId: "close-1" });
    expect(again).toMatchObject({ duplicate: true, orderId: part.orderId, positionId, dealIds: part.dealIds });
    expect(again.events).toHaveLength(0);
    expect(again.order).toMatchObject({ closePositionId: positionId, clientOrderId: "close-1", status: "FILLED" });
    expect(s.engine.state.positions.get(positionId)?.volume).toBe(lots("EURUSD", "0.6"));
    expect(s.get(account).balance).toBe(balance);
    // The same id for another volume, for the whole of what is left, or for another position is another close.
    expect(s.rejected({ ...close, volume: lots("EURUSD", "0.2"), clientOrderId: "close-1" })).toBe(
      "DUPLICATE_CLIENT_ORDER_ID",
    );
    expect(s.rejected({ ...close, clientOrderId: "close-1" })).toBe("DUPLICATE_CLIENT_ORDER_ID");
    // Orders and closes share the account's ids, both ways.
    expect(
      s.rejected({
        kind: "placeOrder",
        accountId: account,
        symbol: "EURUSD",
        side: "SELL",
        type: "MARKET",
        volume: lots("EURUSD", "0.4"),
        clientOrderId: "close-1",
      }),
    ).toBe("DUPLICATE_CLIENT_ORDER_ID");
    const other = s.buy(account, "EURUSD", "0.5", { clientOrderId: "open-2" });
    expect(
      s.rejected({
        ...close,
        positionId: other.positionId as number,
        volume: lots("EURUSD", "0.5"),
        clientOrderId: "open-2",
      }),
    ).toBe("DUPLICATE_CLIENT_ORDER_ID");
    // The refusal names the order that has the id, so a client that lost the first answer can look it up.
    const refusal = s.engine.execute({
      kind: "placeOrder",
      time: s.time,
      accountId: account,
      symbol: "EURUSD",
      side: "SELL",
      type: "MARKET",
      volume: lots("EURUSD", "0.3"),
      clientOrderId: "open-2",
    });
    expect(refusal.ok ? null : refusal.message).toBe(
      `The client order id was already used for a different request: order #${other.orderId} has it`,
    );
    const closeRefusal = s.engine.execute({ ...close, time: s.time, clientOrderId: "close-1" });
    expect(closeRefusal.ok ? null : closeRefusal.message).toBe(
      `The client order id was already used for a different request: order #${part.orderId}, the close of ` +
        `position #${positionId}, has it`,
    );
    expect(s.ledgerHolds(account)).toBe(true);
    expect(s.replayMatches()).toBe(true);
  });

  it("a retried whole close answers the first one after the position is gone, across a restart", () => {
    const s = new Scenario();
    const account = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    const positionId = s.buy(account, "EURUSD", "1").positionId as number;
    const first = s.ok({ kind: "closePosition", accountId: account, positionId, clientOrderId: "flat" });
    expect(s.engine.state.positions.has(positionId)).toBe(false);
    s.restart();
    const again = s.ok({ kind: "closePosition", accountId: account, positionId, clientOrderId: "flat" });
    expect(again).toMatchObject({ duplicate: true, orderId: first.orderId, dealIds: first.dealIds });
    expect(s.deals().filter((deal) => deal.positionId === positionId)).toHaveLength(2);
    // Without an id, a closed position is not found; another account cannot use the id to learn of it.
    expect(s.rejected({ kind: "closePosition", accountId: account, positionId })).toBe("POSITION_NOT_FOUND");
    const stranger = s.account();
    expect(s.rejected({ kind: "closePosition", accountId: stranger, positionId, clientOrderId: "flat" })).toBe(
      "POSITION_NOT_FOUND",
    );
    expect(s.rejected({ kind: "closePosition", accountId: account, positionId, clientOrderId: "" })).toBe(
      "INVALID_DATA",
    );
  });

  it("modify and cancel a pending order", () => {
    const s = new Scenario();
    const account = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    const placed = s.ok({
      kind: "placeOrder",
      accountId: account,
      symbol: "EURUSD",
      side: "BUY",
      type: "LIMIT",
      volume: 100,
      price: 108000,
    });
    const orderId = placed.orderId as number;
    s.ok({ kind: "modifyOrder", accountId: account, orderId, price: 108100, sl: 107900 });
    expect(s.engine.state.orders.get(orderId)).toMatchObject({ price: 108100, sl: 107900 });
    expect(s.rejected({ kind: "modifyOrder", accountId: account, orderId, price: 108100, sl: 107900 })).toBe(
      "NO_CHANGES",
    );
    // The old price no longer triggers; the new one does.
    s.quote("EURUSD", "1.08090", "1.08100");
    expect(s.positions(account)).toHaveLength(1);
    const second = s.ok({
      kind: "placeOrder",
      accountId: account,
      symbol: "EURUSD",
      side: "BUY",
      type: "LIMIT",
      volume: 100,
      price: 107000,
    });
    s.ok({ kind: "cancelOrder", accountId: account, orderId: second.orderId as number });
    expect(s.rejected({ kind: "cancelOrder", accountId: account, orderId: second.orderId as number })).toBe(
      "ORDER_NOT_FOUND",
    );
    s.quote("EURUSD", "1.06990", "1.07000");
    expect(s.deals().filter((deal) => deal.orderId === second.orderId)).toHaveLength(0);
  });

  it("another account's order or position is not found", () => {
    const s = new Scenario();
    const mine = s.account();
    const theirs = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    const position = s.buy(theirs, "EURUSD", "1").positionId as number;
    expect(s.rejected({ kind: "closePosition", accountId: mine, positionId: position })).toBe("POSITION_NOT_FOUND");
  });

  it("validates volume against min, max and step", () => {
    const s = new Scenario();
    const account = s.account();
    s.quote("US500", "5000.00", "5000.50");
    // US500 trades 0.1 to 500 lots in steps of 0.1: volume units of 0.1 lot.
    for (const volume of [0, 5001, -10, 1.5]) {
      expect(
        s.rejected({ kind: "placeOrder", accountId: account, symbol: "US500", side: "BUY", type: "MARKET", volume }),
      ).toBe("INVALID_VOLUME");
    }
    s.buy(account, "US500", "0.2");
  });

  it("the order-status table refuses illegal transitions with a typed error", () => {
    expect(() => assertOrderTransition(1, "FILLED", "CANCELLED")).toThrow(IllegalOrderTransitionError);
    expect(() => assertOrderTransition(1, "PLACED", "FILLED")).not.toThrow();
  });

  it("the working-order limit is enforced", () => {
    const s = new Scenario(defaultEngineConfig({ maxWorkingOrdersPerAccount: 2 }));
    const account = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    const order = {
      kind: "placeOrder",
      accountId: account,
      symbol: "EURUSD",
      side: "BUY",
      type: "LIMIT",
      volume: 100,
      price: 108000,
    } as const;
    s.ok(order);
    s.ok(order);
    expect(s.rejected(order)).toBe("TOO_MANY_ORDERS");
  });

  // Found by an audit: a 1:1000 account opened 3,000 positions, limited by margin alone, and every tick of their
  // symbol values each of an account's positions.
  it("a hedging account's open positions and working orders together are bounded; closing makes room", () => {
    const s = new Scenario(defaultEngineConfig({ maxPositionsAndOrdersPerAccount: 3 }));
    const account = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    s.buy(account, "EURUSD", "0.01");
    s.sell(account, "EURUSD", "0.01");
    s.ok({
      kind: "placeOrder",
      accountId: account,
      symbol: "EURUSD",
      side: "BUY",
      type: "LIMIT",
      volume: 1,
      price: 108000,
    });
    const market = {
      kind: "placeOrder",
      accountId: account,
      symbol: "EURUSD",
      side: "BUY",
      type: "MARKET",
      volume: 1,
    } as const;
    expect(s.rejected(market)).toBe("TOO_MANY_POSITIONS");
    expect(s.positions(account)).toHaveLength(2);
    const [first] = s.positions(account);
    s.ok({ kind: "closePosition", accountId: account, positionId: first!.id });
    s.ok(market);
    expect(s.positions(account)).toHaveLength(2);
    // A netting account holds one position per symbol whatever it orders.
    const netting = s.account("USD", "10000", { mode: "NETTING" });
    for (let index = 0; index < 5; index++) s.buy(netting, "EURUSD", "0.01");
    expect(s.positions(netting)).toHaveLength(1);
    expect(s.replayMatches()).toBe(true);
  });
});

describe("a leverage change with positions open", () => {
  // Found by the audit of 7 December: a leverage change kept the margin open positions were opened with, so lowering
  // an account's leverage before news, a broker's risk control, did nothing to them (MetaTrader 5 margins open
  // positions at the account's leverage).
  it("rescales the margin of open positions, judges the account at once, and replays to the same state", () => {
    const s = new Scenario();
    const account = s.account("USD", "10000");
    s.quote("EURUSD", "1.08430", "1.08440");
    const eur = s.buy(account, "EURUSD", "1").positionId as number;
    // 1 lot: 100,000 EUR / 100 × 1.08430 = 1,084.30.
    expect(s.engine.state.positions.get(eur)?.margin).toBe(money("1084.30"));
    const lowered = s.ok({ kind: "changeAccount", accountId: account, leverage: 10 });
    expect(lowered.events).toEqual([
      expect.objectContaining({ type: "AccountChanged", leverage: 10 }),
      expect.objectContaining({ type: "PositionMarginChanged", positionId: eur, margin: money("10843.00") }),
      expect.objectContaining({ type: "MarginCallEntered", margin: money("10843.00") }),
    ]);
    expect(s.engine.accountMetrics(account)).toMatchObject({ margin: money("10843.00") });
    // Raised again: the margin comes back and the call clears in the same command.
    const raised = s.ok({ kind: "changeAccount", accountId: account, leverage: 100 });
    expect(raised.events.map((event) => event.type)).toEqual([
      "AccountChanged",
      "PositionMarginChanged",
      "MarginCallCleared",
    ]);
    expect(s.engine.accountMetrics(account).margin).toBe(money("1084.30"));
    expect(s.ledgerHolds(account)).toBe(true);
    expect(s.replayMatches()).toBe(true);
  });

  it("can stop the account out at once at the new leverage; a hedge at the new leverage is margined like its leg", () => {
    const s = new Scenario();
    const account = s.account("USD", "10000", { leverage: 500 });
    s.quote("EURUSD", "1.08430", "1.08440");
    s.buy(account, "EURUSD", "5");
    // 5 lots at 1:500: 1,084.30 of margin. At 1:10 they need 54,215.00 against an equity of about 9,950: a stop-out.
    const changed = s.ok({ kind: "changeAccount", accountId: account, leverage: 10 });
    expect(changed.events.map((event) => event.type)).toContain("StopOut");
    expect(s.positions(account)).toHaveLength(0);
    expect(s.ledgerHolds(account)).toBe(true);
    expect(s.replayMatches()).toBe(true);
    // A hedged account lowered to 1:10 can still hedge: both legs are margined at 1:10, the larger counts once.
    const h = new Scenario();
    const hedged = h.account("USD", "20000", { leverage: 100 });
    h.quote("EURUSD", "1.08430", "1.08440");
    h.buy(hedged, "EURUSD", "1");
    h.ok({ kind: "changeAccount", accountId: hedged, leverage: 10 });
    h.sell(hedged, "EURUSD", "1");
    expect(h.engine.accountMetrics(hedged).margin).toBe(money("10843.00"));
    expect(h.replayMatches()).toBe(true);
  });
});

describe("an account whose trading is disabled", () => {
  // Found by the audit of 7 December: a pending order reached while trading was disabled was rejected
  // (ACCOUNT_DISABLED) and lost, a protective stop among them; a stop triggered then would have filled whenever
  // trading came back, at that day's price.
  it("is close-only: new orders are refused, pending orders wait unfilled and untriggered, SL and stop-outs still run; enabled again, they work", () => {
    const s = new Scenario();
    const account = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    const position = s.buy(account, "EURUSD", "0.1", { tp: points("EURUSD", "1.09000") }).positionId as number;
    const limit = s.pending(account, "EURUSD", "BUY", "LIMIT", "0.1", "1.08000").orderId as number;
    const stop = s.pending(account, "EURUSD", "SELL", "STOP", "0.1", "1.08100").orderId as number;
    s.ok({ kind: "changeAccount", accountId: account, tradingEnabled: false });
    expect(
      s.rejected({ kind: "placeOrder", accountId: account, symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 10 }),
    ).toBe("ACCOUNT_DISABLED");
    // Both pending orders are reached: they stay working, the stop not even triggered.
    s.quote("EURUSD", "1.07990", "1.08000");
    expect(s.engine.state.orders.get(limit)).toMatchObject({ status: "PLACED" });
    expect(s.engine.state.orders.get(stop)).toMatchObject({ status: "PLACED", triggered: false });
    expect(s.deals()).toHaveLength(1);
    // The TP still closes the position.
    s.quote("EURUSD", "1.09000", "1.09010");
    expect(s.deals().at(-1)).toMatchObject({ positionId: position, reason: "TAKE_PROFIT" });
    // Enabled again, the next tick that reaches them fills them at its prices.
    s.ok({ kind: "changeAccount", accountId: account, tradingEnabled: true });
    s.quote("EURUSD", "1.07950", "1.07960");
    expect(s.engine.state.orders.has(limit)).toBe(false);
    expect(s.engine.state.orders.has(stop)).toBe(false);
    expect(s.deals().slice(-2)).toEqual([
      expect.objectContaining({ orderId: limit, price: points("EURUSD", "1.07960") }),
      expect.objectContaining({ orderId: stop, price: points("EURUSD", "1.07950") }),
    ]);
    expect(s.ledgerHolds(account)).toBe(true);
    expect(s.replayMatches()).toBe(true);
  });
});

describe("an account opened with a first deposit", () => {
  // Found by the audit of races of 7 December: a demo sign-up opened and funded its account in two commands, and a
  // refused second left the account open and empty.
  it("opens funded in one command, or not at all", () => {
    const s = new Scenario();
    const opening = { kind: "openAccount", userId: "u", currency: "USD", leverage: 100, mode: "HEDGING" } as const;
    const opened = s.ok({ ...opening, deposit: { amount: money("10000"), comment: "Demo account funding" } });
    // The engine's first command brings the day's rollover first.
    expect(opened.events.map((event) => event.type)).toEqual(["Rollover", "AccountOpened", "BalanceOperation"]);
    expect(opened.events[2]).toMatchObject({
      kind: "DEPOSIT",
      amount: money("10000"),
      comment: "Demo account funding",
    });
    expect(s.get(opened.accountId!)).toMatchObject({ balance: money("10000"), credit: 0 });
    expect(s.ledgerHolds(opened.accountId!)).toBe(true);
    const accounts = s.engine.state.accounts.size;
    for (const deposit of [{ amount: 0 }, { amount: -5 }, { amount: 1.5 }, { amount: Number.MAX_SAFE_INTEGER }])
      expect(s.rejected({ ...opening, deposit })).toBe("INVALID_AMOUNT");
    expect(s.rejected({ ...opening, deposit: { amount: 100, comment: "\u0000" } })).toBe("INVALID_DATA");
    expect(s.engine.state.accounts.size).toBe(accounts);
    expect(s.ok(opening).accountId).toBe(opened.accountId! + 1);
    expect(s.replayMatches()).toBe(true);
  });
});

describe("a close by the dealing desk", () => {
  it("closes as the client's close would, its order and deal recorded as the DEALER's; any other initiator is refused", () => {
    const s = new Scenario();
    const account = s.account("USD", "10000");
    s.quote("EURUSD", "1.08430", "1.08440");
    const opened = s.buy(account, "EURUSD", "0.3");
    const positionId = opened.positionId as number;
    expect(s.rejected({ kind: "closePosition", accountId: account, positionId, initiator: "BROKER" as "DEALER" })).toBe(
      "INVALID_DATA",
    );
    const closed = s.ok({ kind: "closePosition", accountId: account, positionId, volume: 10, initiator: "DEALER" });
    const accepted = closed.events.find((event) => event.type === "OrderAccepted");
    const deal = closed.events.find((event) => event.type === "DealExecuted");
    expect(accepted?.type === "OrderAccepted" && accepted.order.reason).toBe("DEALER");
    expect(deal?.type === "DealExecuted" && [deal.deal.reason, deal.deal.entry, deal.deal.price]).toEqual([
      "DEALER",
      "OUT",
      points("EURUSD", "1.08430"),
    ]);
    // The desk's close with an id the client used for the same close is no retry of it (found by the review of 7
    // December, seventh session: it answered the client's close and closed nothing).
    s.ok({ kind: "closePosition", accountId: account, positionId, volume: 10, clientOrderId: "mine" });
    expect(
      s.rejected({
        kind: "closePosition",
        accountId: account,
        positionId,
        volume: 10,
        clientOrderId: "mine",
        initiator: "DEALER",
      }),
    ).toBe("DUPLICATE_CLIENT_ORDER_ID");
    // Without an initiator, the client's.
    const rest = s.ok({ kind: "closePosition", accountId: account, positionId });
    const clientDeal = rest.events.find((event) => event.type === "DealExecuted");
    expect(clientDeal?.type === "DealExecuted" && clientDeal.deal.reason).toBe("CLIENT");
  });
});
