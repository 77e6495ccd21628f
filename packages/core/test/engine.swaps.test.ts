/**
 * Swaps a rollover cannot charge yet. A position's swap is converted from its profit currency into its
 * account's with a quote; after a restart the engine has no quotes until the feed sends them again, so a
 * rollover that falls due before then (a restart across 22:00 UTC, or a first command after it) cannot price
 * a USDJPY position's swap in a USD account. Until this change `rollover()` skipped such a position without a
 * record and the swap was lost for good; now the rollover records the days it owes (SwapsDeferred) and the
 * first tick that brings the rate charges them (DeferredSwapsCharged), before that tick can fill or close
 * anything.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canonicalState, isSessionOpen, swapInAccountCurrency, type EngineEvent } from "../src/index.ts";
import { Scenario, TUESDAY_NOON, instrumentOf, lots, money, points } from "./helpers.ts";

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** Tuesday 23:00 UTC: Tuesday's rollover (22:00, one day of swap) has fallen due. */
const TUESDAY_23H = TUESDAY_NOON + 11 * HOUR_MS;

function ofType<T extends EngineEvent["type"]>(events: readonly EngineEvent[], type: T) {
  return events.filter((event): event is Extract<EngineEvent, { type: T }> => event.type === type);
}

/** A USD account holding 1 lot of USDJPY bought at noon, and the position's id. */
function usdJpyPosition(s: Scenario, side: "BUY" | "SELL" = "BUY"): { account: number; positionId: number } {
  const account = s.account("USD", "10000");
  s.quote("USDJPY", "150.230", "150.250");
  const opened = side === "BUY" ? s.buy(account, "USDJPY", "1") : s.sell(account, "USDJPY", "1");
  return { account, positionId: opened.positionId as number };
}

describe("swaps a rollover could not convert", () => {
  it("a USDJPY position's swap for a rollover after a restart, before the first USDJPY tick, is charged on that tick, the same amount as without the restart", () => {
    // Without the restart: the quote is there at the rollover, which charges at once.
    const control = new Scenario();
    const { positionId: controlPosition } = usdJpyPosition(control);
    control.quote("USDJPY", "150.330", "150.350", TUESDAY_NOON + 9 * HOUR_MS);
    const charged = ofType(control.ok({ kind: "advanceTime" }, TUESDAY_23H).events, "Rollover")[0]!.charges;
    expect(charged).toEqual([{ accountId: expect.any(Number), positionId: controlPosition, amount: money("9.71") }]);

    const s = new Scenario();
    const { account, positionId } = usdJpyPosition(s);
    s.restart();
    const rollover = s.ok({ kind: "advanceTime" }, TUESDAY_23H).events;
    expect(rollover.map((event) => event.type)).toEqual(["Rollover", "SwapsDeferred"]);
    expect(ofType(rollover, "Rollover")[0]!.charges).toEqual([]);
    expect(ofType(rollover, "SwapsDeferred")[0]!.deferrals).toEqual([{ accountId: account, positionId, days: 1 }]);
    expect(s.positions(account)[0]!.swap).toBe(0);
    // A tick that does not bring the rate charges nothing.
    expect(s.quote("EURUSD", "1.08430", "1.08440").events).toEqual([]);
    const tick = s.quote("USDJPY", "150.330", "150.350").events;
    expect(tick).toEqual([
      {
        type: "DeferredSwapsCharged",
        time: s.time,
        charges: [{ accountId: account, positionId, amount: money("9.71") }],
      },
    ]);
    expect(s.positions(account)[0]!.swap).toBe(money("9.71"));
    expect(s.engine.state.deferredSwaps.size).toBe(0);
    // Charged once: later ticks charge nothing more.
    expect(s.quote("USDJPY", "150.340", "150.360").events).toEqual([]);
    expect(s.replayMatches()).toBe(true);
  });

  it("several rollovers before the rate returns add up their days, and the triple day counts three, charged in one amount", () => {
    const s = new Scenario();
    const { account, positionId } = usdJpyPosition(s, "SELL");
    s.restart();
    // Tuesday's and Wednesday's rollovers (Wednesday's charges three days), and no USDJPY tick until Wednesday 23:00.
    const events = s.ok({ kind: "advanceTime" }, TUESDAY_23H + DAY_MS).events;
    expect(ofType(events, "SwapsDeferred").map((event) => event.deferrals[0]!.days)).toEqual([1, 3]);
    expect(s.engine.state.deferredSwaps.get(positionId)?.days).toBe(4);
    const tick = s.quote("USDJPY", "150.330", "150.350").events;
    const instrument = instrumentOf("USDJPY");
    // The SELL position converts its yen at the rate the engine's converter takes from this quote.
    const rate = s.engine.state.converter.rate("JPY", "USD", (symbol) => s.engine.quote(symbol))!;
    const expected = swapInAccountCurrency(instrument, "SELL", lots("USDJPY", "1"), 4, rate, 2);
    expect(expected).toBeLessThan(0);
    expect(tick).toEqual([
      { type: "DeferredSwapsCharged", time: s.time, charges: [{ accountId: account, positionId, amount: expected }] },
    ]);
    expect(s.replayMatches()).toBe(true);
  });

  it("a position that owes swap cannot be closed before the rate returns, and its closing deal then realises the swap", () => {
    const s = new Scenario();
    const { account, positionId } = usdJpyPosition(s);
    s.restart();
    s.ok({ kind: "advanceTime" }, TUESDAY_23H);
    expect(s.rejected({ kind: "closePosition", accountId: account, positionId })).toBe("NO_QUOTES");
    expect(s.engine.state.deferredSwaps.has(positionId)).toBe(true);
    s.quote("USDJPY", "150.330", "150.350");
    const closed = s.ok({ kind: "closePosition", accountId: account, positionId });
    const deal = ofType(closed.events, "DealExecuted")[0]!.deal;
    expect(deal.swap).toBe(money("9.71"));
    expect(s.get(account).ledger.swaps).toBe(money("9.71"));
    expect(s.ledgerHolds(account)).toBe(true);
    expect(s.replayMatches()).toBe(true);
  });

  it("positions whose swap rate is zero, or whose profit is in the account's currency, owe nothing and are not deferred", () => {
    const s = new Scenario();
    const account = s.account("USD", "10000");
    s.quote("EURUSD", "1.08430", "1.08440");
    const eurusd = s.buy(account, "EURUSD", "1").positionId as number;
    s.restart();
    const events = s.ok({ kind: "advanceTime" }, TUESDAY_23H).events;
    // EURUSD's profit is in dollars: no quote needed, charged at once.
    expect(events.map((event) => event.type)).toEqual(["Rollover"]);
    expect(ofType(events, "Rollover")[0]!.charges.map((charge) => charge.positionId)).toEqual([eurusd]);
  });

  it("a deferred swap is part of the state: a snapshot keeps it and its hash differs, and a state without one hashes as before deferrals existed", () => {
    const s = new Scenario();
    const { positionId } = usdJpyPosition(s);
    expect(canonicalState(s.engine.state)).not.toContain("deferredSwaps");
    s.restart();
    const before = s.engine.stateHash();
    s.ok({ kind: "advanceTime" }, TUESDAY_23H);
    expect(canonicalState(s.engine.state)).toContain(`"deferredSwaps":[[${positionId},`);
    const snapshotted = s.engine.stateHash();
    expect(snapshotted).not.toBe(before);
    s.restart();
    expect(s.engine.stateHash()).toBe(snapshotted);
    expect(s.engine.state.deferredSwaps.get(positionId)?.days).toBe(1);
    const tick = s.quote("USDJPY", "150.330", "150.350").events;
    expect(ofType(tick, "DeferredSwapsCharged")[0]!.charges[0]!.amount).toBe(money("9.71"));
    expect(canonicalState(s.engine.state)).not.toContain("deferredSwaps");
    expect(s.replayMatches()).toBe(true);
  });
});

/** The quotes both engines of the property see, before the restart and again after it. */
const QUOTES: Readonly<Record<string, readonly [string, string]>> = {
  EURUSD: ["1.08430", "1.08440"],
  GBPUSD: ["1.27110", "1.27125"],
  USDJPY: ["150.230", "150.250"],
  EURJPY: ["162.900", "162.950"],
  XAUUSD: ["2330.10", "2330.45"],
};
const SYMBOLS = Object.keys(QUOTES);

/** Σ swap charged to each position by the events (rollovers and deferred charges). */
function swapCharged(events: readonly EngineEvent[]): Map<number, number> {
  const total = new Map<number, number>();
  for (const event of events)
    if (event.type === "Rollover" || event.type === "DeferredSwapsCharged")
      for (const charge of event.charges)
        total.set(charge.positionId, (total.get(charge.positionId) ?? 0) + charge.amount);
  return total;
}

describe("swaps a rollover could not convert, as a property", () => {
  it("after a restart, once every symbol has ticked again at the same prices, each position has been charged what it would have been without the restart, to a rounding per rollover, and owes nothing", () => {
    const position = fc.record({
      currency: fc.constantFrom("USD", "EUR", "JPY"),
      symbol: fc.constantFrom(...SYMBOLS),
      side: fc.constantFrom<"BUY" | "SELL">("BUY", "SELL"),
      volume: fc.integer({ min: 1, max: 200 }),
    });
    fc.assert(
      fc.property(
        fc.array(position, { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 0, max: 9 }),
        fc.shuffledSubarray(SYMBOLS, { minLength: SYMBOLS.length }),
        (positions, days, tickOrder) => {
          const engines = [new Scenario(), new Scenario()];
          for (const s of engines) {
            for (const symbol of SYMBOLS) s.quote(symbol, ...QUOTES[symbol]!);
            for (const { currency, symbol, side, volume } of positions) {
              const account = s.account(currency, currency === "JPY" ? "100000000" : "1000000");
              // Refused alike by both (NO_QUOTES) where the quotes here convert no path between the currencies.
              s.run({
                kind: "placeOrder",
                time: (s.time += 1000),
                accountId: account,
                symbol,
                side,
                type: "MARKET",
                volume,
              });
            }
          }
          const [control, restarted] = engines as [Scenario, Scenario];
          expect(restarted.engine.stateHash()).toBe(control.engine.stateHash());
          restarted.restart();
          const from = control.events.length;
          const restartedFrom = restarted.events.length;
          const until = TUESDAY_23H + days * DAY_MS;
          for (const s of engines) s.ok({ kind: "advanceTime" }, until);
          // The ticks come at the first minute every symbol's market is open (a quote outside a session is not taken).
          let tickTime = until + 60_000;
          while (!SYMBOLS.every((symbol) => isSessionOpen(instrumentOf(symbol), tickTime))) tickTime += 60_000;
          for (const symbol of tickOrder)
            for (const s of engines)
              s.ok(
                {
                  kind: "tick",
                  symbol,
                  bid: points(symbol, QUOTES[symbol]![0]),
                  ask: points(symbol, QUOTES[symbol]![1]),
                },
                tickTime,
              );
          const rollovers = ofType(control.events.slice(from), "Rollover").filter(
            (event) => event.multiplier > 0,
          ).length;
          const expected = swapCharged(control.events.slice(from));
          const charged = swapCharged(restarted.events.slice(restartedFrom));
          for (const open of control.engine.state.positions.values()) {
            const difference = Math.abs((charged.get(open.id) ?? 0) - (expected.get(open.id) ?? 0));
            expect(difference).toBeLessThanOrEqual(rollovers);
            expect(restarted.engine.state.positions.get(open.id)?.swap).toBe(charged.get(open.id) ?? 0);
          }
          expect(restarted.engine.state.deferredSwaps.size).toBe(0);
          expect(restarted.engine.state.deferredSwapsByConversion.size).toBe(0);
          expect(restarted.replayMatches()).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe("an instrument's own swap calendar (swapDays)", () => {
  // Found by the audit of money across currencies of 7 December (third session): every instrument took the forex
  // calendar, so a crypto position held over a weekend paid no swap, and one held over Wednesday paid three days.
  /** The days each rollover of a week charged a BUY of 1 lot of `symbol`, opened Tuesday noon, in order. */
  function daysChargedOverAWeek(symbol: string, bid: string, ask: string): number[] {
    const s = new Scenario();
    const account = s.account("USD", "1000000");
    s.quote(symbol, bid, ask);
    const positionId = s.buy(account, symbol, "1").positionId as number;
    const instrument = instrumentOf(symbol);
    const rate = s.engine.state.converter.rate("USD", "USD", (name) => s.engine.quote(name))!;
    const swapOfDays = (days: number) => swapInAccountCurrency(instrument, "BUY", lots(symbol, "1"), days, rate, 2);
    expect(swapOfDays(1)).toBeLessThan(0);
    const days: number[] = [];
    // Tuesday 22:00 to the next Monday 22:00: seven rollovers, one a step.
    for (let step = 0; step < 7; step += 1) {
      const rollover = ofType(s.ok({ kind: "advanceTime" }, TUESDAY_23H + step * DAY_MS).events, "Rollover");
      expect(rollover).toHaveLength(1);
      const charge = rollover[0]!.charges.find((entry) => entry.positionId === positionId);
      days.push(charge === undefined ? 0 : [1, 2, 3, 4, 5, 6, 7].find((count) => swapOfDays(count) === charge.amount)!);
    }
    expect(s.ledgerHolds(account)).toBe(true);
    expect(s.replayMatches()).toBe(true);
    return days;
  }

  it("crypto trades every day: one day of swap at each rollover, weekends included, none tripled", () => {
    // Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday, Monday.
    expect(daysChargedOverAWeek("BTCUSD", "67000.00", "67010.00")).toEqual([1, 1, 1, 1, 1, 1, 1]);
  });

  it("an index CFD charges the weekend on Friday", () => {
    expect(daysChargedOverAWeek("US500", "5300.0", "5300.5")).toEqual([1, 1, 1, 3, 0, 0, 1]);
  });

  it("forex keeps the engine's calendar: the weekend on Wednesday (spot settles two days later)", () => {
    expect(daysChargedOverAWeek("GBPUSD", "1.27000", "1.27010")).toEqual([1, 3, 1, 1, 0, 0, 1]);
  });
});
