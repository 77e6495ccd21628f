/**
 * The engine's input bounds, each refused as a value, never thrown (found by audits of the faces and the engine,
 * not by the property tests, whose generators stay inside them). Account money: on 655e7b2 a deposit of
 * 90,071,992,547,409.91 USD was accepted by the rules, folded into a balance past Number.MAX_SAFE_INTEGER, and the
 * account's margin level then threw "result must be a safe integer" inside the command: the durable engine
 * refused the batch and rebuilt its state from the journal, answering 503 for a bad request. The same audit found
 * prices near 2^53 points taken for orders, stops and quotes: the first fill at one threw inside a tick.
 */
import { describe, expect, it } from "vitest";
import {
  MAX_ACCOUNT_MONEY,
  MAX_MARGIN_LEVEL_BASIS_POINTS,
  MAX_ORDER_COST,
  MAX_TIME_MILLISECONDS,
  Rounding,
  isPortableText,
  maxPricePoints,
  multiplyDivide,
  multiplyDivideAtMost,
} from "../src/index.ts";
import { Scenario, instrumentOf, lots, money, points } from "./helpers.ts";

describe("account money stays inside its bound", () => {
  it("a deposit that would take the balance past MAX_ACCOUNT_MONEY is refused as INVALID_AMOUNT and changes nothing", () => {
    const s = new Scenario();
    const account = s.account("USD", "10000");
    s.quote("EURUSD", "1.08430", "1.08440");
    s.buy(account, "EURUSD", "0.01");
    const before = s.engine.accountMetrics(account);
    const result = s.run({ kind: "deposit", time: s.time + 1000, accountId: account, amount: 9_007_199_254_740_991 });
    expect(result.ok).toBe(false);
    expect(!result.ok && result.code).toBe("INVALID_AMOUNT");
    expect(result.events).toEqual([]);
    expect(s.engine.accountMetrics(account)).toEqual(before);
    // Up to the bound exactly is allowed, and every figure of the account is still a safe integer.
    s.ok({ kind: "deposit", accountId: account, amount: MAX_ACCOUNT_MONEY - s.get(account).balance });
    expect(s.get(account).balance).toBe(MAX_ACCOUNT_MONEY);
    const metrics = s.engine.accountMetrics(account);
    for (const figure of [metrics.equity, metrics.freeMargin, metrics.marginLevelBasisPoints])
      expect(Number.isSafeInteger(figure)).toBe(true);
    expect(s.rejected({ kind: "deposit", accountId: account, amount: 1 })).toBe("INVALID_AMOUNT");
    expect(s.ledgerHolds(account)).toBe(true);
    expect(s.replayMatches()).toBe(true);
  });

  it("credit past MAX_ACCOUNT_MONEY is refused as INVALID_AMOUNT", () => {
    const s = new Scenario();
    const account = s.account("USD", "100");
    s.ok({ kind: "credit", accountId: account, amount: MAX_ACCOUNT_MONEY });
    expect(s.rejected({ kind: "credit", accountId: account, amount: 1 })).toBe("INVALID_AMOUNT");
    expect(s.get(account).credit).toBe(MAX_ACCOUNT_MONEY);
  });

  it("the margin level of a large equity over a margin of a few minor units saturates instead of throwing", () => {
    // 10^13 × 10^4 / 7 is past any safe integer: multiplyDivide throws, the margin level must not.
    expect(() => multiplyDivide([MAX_ACCOUNT_MONEY, 10_000], [7], Rounding.FLOOR)).toThrow(/safe integer/);
    expect(multiplyDivideAtMost([MAX_ACCOUNT_MONEY, 10_000], [7], Rounding.FLOOR, MAX_MARGIN_LEVEL_BASIS_POINTS)).toBe(
      MAX_MARGIN_LEVEL_BASIS_POINTS,
    );
  });
});

describe("multiplyDivideAtMost", () => {
  it("is multiplyDivide under the limit, on the number and the bigint paths, and the limit above it", () => {
    for (const rounding of Object.values(Rounding)) {
      expect(multiplyDivideAtMost([7, 3], [2], rounding, 100)).toBe(multiplyDivide([7, 3], [2], rounding));
      expect(multiplyDivideAtMost([-7, 3], [2], rounding, 100)).toBe(multiplyDivide([-7, 3], [2], rounding));
      // Products past 2^53 take the bigint path; the quotient is small again.
      const big = [9_007_199_254_740_991, 1_000];
      expect(multiplyDivideAtMost(big, [3_000], rounding, Number.MAX_SAFE_INTEGER)).toBe(
        multiplyDivide(big, [3_000], rounding),
      );
      expect(multiplyDivideAtMost(big, [3], rounding, 5)).toBe(5);
      expect(multiplyDivideAtMost([11], [2], rounding, 5)).toBe(5);
    }
    expect(multiplyDivideAtMost([money("10.00")], [3], Rounding.HALF_EVEN, 1_000_000)).toBe(333);
  });

  it("refuses a limit that is not a safe integer, and a non-positive divisor, like multiplyDivide", () => {
    expect(() => multiplyDivideAtMost([1], [1], Rounding.FLOOR, 1.5)).toThrow(/limit must be a safe integer/);
    expect(() => multiplyDivideAtMost([1], [0], Rounding.FLOOR, 10)).toThrow(/non-positive/);
  });
});

describe("prices stay inside their bound", () => {
  const btc = instrumentOf("BTCUSD");
  const bound = maxPricePoints(btc);

  it("maxPricePoints keeps the largest order's cost within MAX_ORDER_COST, and far above the market", () => {
    expect(bound * btc.volumeMax).toBeLessThanOrEqual(MAX_ORDER_COST);
    expect((bound + 1) * btc.volumeMax).toBeGreaterThan(MAX_ORDER_COST);
    expect(bound).toBeGreaterThan(points("BTCUSD", "1000000000"));
  });

  // On 32210bd: a SELL LIMIT at 90,000,000,000,000 and a position's TP at it were taken; a quote at that price
  // then closed the position (the balance became 9 × 10^13) and threw filling the limit, half folded.
  it("orders, stops, trailing distances and quotes past the bound are refused, and nothing is half done", () => {
    const s = new Scenario();
    const account = s.account("USD", "10000");
    s.quote("BTCUSD", "60000", "60010");
    const place = (extra: Record<string, unknown>) =>
      s.rejected({
        kind: "placeOrder",
        accountId: account,
        symbol: "BTCUSD",
        side: "SELL",
        type: "LIMIT",
        volume: lots("BTCUSD", "20"),
        price: points("BTCUSD", "70000"),
        ...extra,
      } as never);
    expect(place({ price: bound + 1 })).toBe("INVALID_PRICE");
    expect(
      place({ type: "STOP_LIMIT", side: "BUY", price: points("BTCUSD", "70000"), stopLimitPrice: bound + 1 }),
    ).toBe("INVALID_PRICE");
    expect(place({ sl: bound + 1 })).toBe("INVALID_STOPS");
    expect(place({ type: "MARKET", side: "BUY", price: undefined, tp: bound + 1 })).toBe("INVALID_STOPS");
    expect(place({ type: "MARKET", side: "BUY", price: undefined, trailingDistance: bound + 1 })).toBe("INVALID_STOPS");
    expect(place({ type: "MARKET", side: "BUY", price: undefined, deviation: bound + 1 })).toBe("INVALID_DATA");
    const order = s.ok({
      kind: "placeOrder",
      accountId: account,
      symbol: "BTCUSD",
      side: "SELL",
      type: "LIMIT",
      volume: lots("BTCUSD", "0.01"),
      price: bound,
    });
    expect(
      s.rejected({ kind: "modifyOrder", accountId: account, orderId: order.orderId as number, price: bound + 1 }),
    ).toBe("INVALID_PRICE");
    const opened = s.buy(account, "BTCUSD", "0.01");
    expect(
      s.rejected({
        kind: "modifyPosition",
        accountId: account,
        positionId: opened.positionId as number,
        tp: bound + 1,
      }),
    ).toBe("INVALID_STOPS");
    expect(s.rejected({ kind: "tick", symbol: "BTCUSD", bid: bound + 1, ask: bound + 1 })).toBe("INVALID_PRICE");
    expect(
      s.rejected({
        kind: "tick",
        symbol: "BTCUSD",
        bid: points("BTCUSD", "60000"),
        ask: points("BTCUSD", "60010"),
        asks: [
          { price: points("BTCUSD", "60010"), volume: 100 },
          { price: bound + 1, volume: 100 },
        ],
      }),
    ).toBe("INVALID_PRICE");
    // At the bound exactly, a quote fills the limit at it: every figure is still a safe integer.
    s.ok({ kind: "tick", symbol: "BTCUSD", bid: bound, ask: bound });
    expect(s.engine.state.orders.get(order.orderId as number)).toBeUndefined();
    const metrics = s.engine.accountMetrics(account);
    for (const figure of [metrics.balance, metrics.equity, metrics.margin, metrics.freeMargin])
      expect(Number.isSafeInteger(figure)).toBe(true);
    expect(s.ledgerHolds(account)).toBe(true);
    expect(s.replayMatches()).toBe(true);
  });
});

// On a033f98 these threw from `execute` (a TypeError, "levels is not iterable", reading `.ok` of undefined), which a
// durable engine answers by rebuilding its state from the journal; a string tradingEnabled was stored as is.
describe("malformed commands are refused as values", () => {
  it("book levels that are not a list of objects, an unknown kind, a tradingEnabled that is not a boolean", () => {
    const s = new Scenario();
    const account = s.account("USD", "1000");
    s.quote("BTCUSD", "60000", "60010");
    const tick = { kind: "tick", symbol: "BTCUSD", bid: points("BTCUSD", "60000"), ask: points("BTCUSD", "60010") };
    for (const bids of [[null], {}, "levels", [1], [{ price: "x", volume: 1 }]])
      expect(s.rejected({ ...tick, bids } as never)).toBe("INVALID_PRICE");
    expect(s.rejected({ kind: "nope" } as never)).toBe("INVALID_DATA");
    expect(s.rejected({ kind: "changeAccount", accountId: account, tradingEnabled: "no" } as never)).toBe(
      "INVALID_DATA",
    );
    expect(s.get(account).tradingEnabled).toBe(true);
    expect(s.replayMatches()).toBe(true);
  });
});

// The audit of 6 December: times up to 2^53 ms were taken, past what a JavaScript date holds (8.64 × 10^15 ms):
// a GTD expiration of 9 × 10^15 was journaled and every face then failed to write the order's time.
describe("times stay inside their bound", () => {
  it("a command time or a GTD expiration past the end of year 9999 is refused, the last millisecond of it taken", () => {
    expect(new Date(MAX_TIME_MILLISECONDS).toISOString()).toBe("9999-12-31T23:59:59.999Z");
    const s = new Scenario();
    const account = s.account("USD", "10000");
    s.quote("EURUSD", "1.08430", "1.08440");
    const gtd = (expiration: number) => ({
      kind: "placeOrder" as const,
      accountId: account,
      symbol: "EURUSD",
      side: "SELL" as const,
      type: "LIMIT" as const,
      volume: 10,
      price: 109000,
      timeInForce: "GTD" as const,
      expiration,
    });
    for (const expiration of [MAX_TIME_MILLISECONDS + 1, 9_000_000_000_000_000])
      expect(s.rejected(gtd(expiration))).toBe("INVALID_EXPIRATION");
    expect(s.engine.state.orders.size).toBe(0);
    const placed = s.ok(gtd(MAX_TIME_MILLISECONDS));
    expect(
      s.rejected({
        kind: "modifyOrder",
        accountId: account,
        orderId: placed.orderId as number,
        expiration: MAX_TIME_MILLISECONDS + 1,
      }),
    ).toBe("INVALID_EXPIRATION");
    const late = s.run({ kind: "advanceTime", time: MAX_TIME_MILLISECONDS + 1 });
    expect(!late.ok && late.code).toBe("INVALID_DATA");
    expect(late.events).toEqual([]);
    expect(s.replayMatches()).toBe(true);
  });
});

// The audit of 6 December: PostgreSQL's text holds no NUL and no unpaired surrogate, and one such order comment
// made it refuse a whole group-committed batch (other users' orders answered 503, the engine rebuilt).
describe("journaled text stays portable", () => {
  it("a NUL or an unpaired surrogate in a comment, a client order id, a balance comment or a user id is refused, and nothing happens", () => {
    expect(isPortableText("plain, é € 😀", 64)).toBe(true);
    for (const bad of ["x\u0000y", "x\ud800y", "x\udc00", "\ud83d"]) expect(isPortableText(bad, 64), bad).toBe(false);
    const s = new Scenario();
    const account = s.account("USD", "10000");
    s.quote("EURUSD", "1.08430", "1.08440");
    const market = {
      kind: "placeOrder" as const,
      accountId: account,
      symbol: "EURUSD",
      side: "BUY" as const,
      type: "MARKET" as const,
      volume: 10,
    };
    const events = s.events.length;
    expect(s.rejected({ ...market, comment: "x\u0000y" })).toBe("INVALID_DATA");
    expect(s.rejected({ ...market, clientOrderId: "id\ud800" })).toBe("INVALID_DATA");
    expect(s.rejected({ kind: "deposit", accountId: account, amount: 100, comment: "\u0000" })).toBe("INVALID_DATA");
    expect(
      s.rejected({ kind: "openAccount", userId: "u\u0000", currency: "USD", leverage: 100, mode: "HEDGING" }),
    ).toBe("INVALID_DATA");
    const opened = s.ok(market);
    expect(
      s.rejected({
        kind: "closePosition",
        accountId: account,
        positionId: opened.positionId as number,
        comment: "\udfff",
      }),
    ).toBe("INVALID_DATA");
    expect(s.events.length).toBe(events + opened.events.length);
  });
});
