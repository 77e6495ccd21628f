/**
 * Minimal reproductions of engine bugs found by the property tests (engine.properties.test.ts).
 *
 * The first three failed on af66621 and are fixed by fce4fd8 (time-driven events fall due before every
 * command); they pin the paths the property tests found, beside the scenario tests that commit added.
 * The next two failed on d80e2d7: a restored or replayed engine evaluated margin with positions it had no
 * quote for yet, valued at zero profit, and stopped out a healthy account. Fixed: an account is
 * risk-checked only once every position it holds can be priced.
 * The last one: a hedging order filled over two ticks opened a second position, and a TP the quote had
 * already passed was left for the next tick.
 */
import { describe, expect, it } from "vitest";
import {
  ALWAYS_OPEN,
  DEFAULT_INSTRUMENTS,
  TradingEngine,
  defaultEngineConfig,
  defineInstrument,
  type StateSnapshot,
} from "../src/index.ts";
import { Scenario, TUESDAY_NOON, lots, money, points } from "./helpers.ts";

const TUESDAY_23H = Date.UTC(2026, 5, 2, 23, 0);

describe("regressions found by the property tests", () => {
  // Property 1 (ledger: Σ rollover charges = realised swaps + swaps still open). On af66621 the order was
  // planned before the 22:00 rollover was charged, so the closing deal realised no swap and the 7.20 USD
  // charged to the position vanished with it: the ledger kept swaps 0 while the journal charged −7.20.
  it("a netting position closed by an opposite market order realises the swap of a rollover that falls due with it", () => {
    const s = new Scenario();
    const account = s.account("USD", "10000", { mode: "NETTING" });
    s.quote("EURUSD", "1.08430", "1.08440");
    s.buy(account, "EURUSD", "1");
    // No command between noon and 23:00: the rollover falls due with the closing order.
    const closed = s.ok(
      { kind: "placeOrder", accountId: account, symbol: "EURUSD", side: "SELL", type: "MARKET", volume: 100 },
      TUESDAY_23H,
    );
    const rollover = closed.events.find((event) => event.type === "Rollover");
    const deal = closed.events.find((event) => event.type === "DealExecuted");
    expect(rollover?.type === "Rollover" && rollover.charges).toEqual([
      { accountId: account, positionId: 1, amount: money("-7.20") },
    ]);
    expect(deal?.type === "DealExecuted" && deal.deal.swap).toBe(money("-7.20"));
    expect(s.get(account).ledger.swaps).toBe(money("-7.20"));
    expect(s.engine.state.positions.size).toBe(0);
    expect(s.ledgerHolds(account)).toBe(true);
    expect(s.replayMatches()).toBe(true);
  });

  // Property 5 (a rejection emits nothing of its own and changes nothing). On af66621 balance operations
  // ran the rollovers due by their time before validating, so a rejected withdrawal after 22:00 threw
  // "engine bug: withdraw rejected after emitting events", with the Rollover already folded into the state
  // but returned to nobody (the journal then no longer replayed to the live state).
  it("a withdrawal rejected after a rollover fell due is a clean rejection that reports the rollover", () => {
    const s = new Scenario();
    const account = s.account("USD", "100");
    const result = s.run({ kind: "withdraw", time: TUESDAY_23H, accountId: account, amount: money("500") });
    expect(result.ok).toBe(false);
    expect(!result.ok && result.code).toBe("NO_MONEY");
    expect(result.events.map((event) => event.type)).toEqual(["Rollover"]);
    expect(s.get(account).balance).toBe(money("100"));
    expect(s.replayMatches()).toBe(true);
  });

  // Property 5 again: on af66621 cancelling a GTD order after its expiration (with no command between)
  // expired it inside the cancel, then rejected ORDER_NOT_MODIFIABLE and threw the same engine-bug error.
  it("cancelling an order after its expiration is a clean rejection that reports the expiration", () => {
    const s = new Scenario();
    const account = s.account("USD", "10000");
    s.quote("EURUSD", "1.08430", "1.08440");
    const placed = s.ok({
      kind: "placeOrder",
      accountId: account,
      symbol: "EURUSD",
      side: "BUY",
      type: "LIMIT",
      volume: 100,
      price: 108000,
      timeInForce: "GTD",
      expiration: TUESDAY_NOON + 60_000,
    });
    const result = s.run({
      kind: "cancelOrder",
      time: TUESDAY_NOON + 120_000,
      accountId: account,
      orderId: placed.orderId as number,
    });
    expect(result.ok).toBe(false);
    expect(result.events).toMatchObject([{ type: "OrderStatusChanged", status: "EXPIRED", reason: "EXPIRED" }]);
    expect(s.engine.state.orders.size).toBe(0);
    expect(s.replayMatches()).toBe(true);
  });
});

/**
 * A healthy hedging account whose equity rests on a profitable gold position: 1,000.00 USD deposited at
 * 1:500, long 1 lot XAUUSD from 2350.20 (margin 100 oz / 500 × 2350.00 = 470.00), gold up to a 2367.20 bid
 * (+1,700.00), then long 9 lots EURUSD at 1.08440 (margin 9 × 100,000 EUR / 500 × 1.08430 = 1,951.74,
 * floating −90.00 at the 1.08430 bid). Equity 2,610.00, margin 2,421.74: level 107.77 %, no margin call.
 */
function goldCarriedAccount(): { s: Scenario; account: number } {
  const s = new Scenario();
  const account = s.account("USD", "1000", { leverage: 500 });
  s.quote("XAUUSD", "2350.00", "2350.20");
  s.buy(account, "XAUUSD", "1");
  s.quote("XAUUSD", "2367.20", "2367.40");
  s.quote("EURUSD", "1.08430", "1.08440");
  s.buy(account, "EURUSD", "9");
  expect(s.engine.accountMetrics(account)).toMatchObject({ equity: money("2610"), margin: money("2421.74") });
  expect(s.get(account).marginCall).toBe(false);
  return { s, account };
}

describe("restart: margin is not judged on positions without a quote (open on d80e2d7)", () => {
  // Property 8 (snapshot restore trades like the live engine). After a restart the feed sends the current
  // quotes again (snapshot.test.ts); when EURUSD comes first, the restored engine values the unquoted gold
  // position at 0: equity 1,000.00 − 90.00 = 910.00 on 2,421.74 margin, 37.6 % ≤ 50 %, and it stops the
  // account out, closing the 9 lots at a 90.00 loss. The live engine, at the same quotes, does nothing.
  it("an engine restored from a snapshot does not stop out an account before all its positions are quoted", () => {
    const { s, account } = goldCarriedAccount();
    const snapshot = JSON.parse(JSON.stringify(s.engine.snapshot())) as StateSnapshot;
    const restored = TradingEngine.fromSnapshot(s.engine.config, snapshot);
    for (const symbol of ["EURUSD", "XAUUSD"]) {
      const quote = s.engine.quote(symbol)!;
      const prime = { kind: "tick", time: s.time, symbol, bid: quote.bid, ask: quote.ask } as const;
      expect(restored.execute(prime)).toEqual(s.engine.execute(prime));
    }
    expect(restored.state.positions.size).toBe(2);
    expect(restored.state.accounts.get(account)?.balance).toBe(money("1000"));
    expect(restored.stateHash()).toBe(s.engine.stateHash());
  });

  // The same through journal recovery: the fold leaves every touched account due for a risk check, and
  // the first quote after it runs that check with the gold position unquoted.
  it("an engine rebuilt from the journal does not stop out an account before all its positions are quoted", () => {
    const { s } = goldCarriedAccount();
    const replayed = TradingEngine.replay(s.engine.config, s.events);
    const quote = s.engine.quote("EURUSD")!;
    const prime = { kind: "tick", time: s.time, symbol: "EURUSD", bid: quote.bid, ask: quote.ask } as const;
    expect(replayed.execute(prime).events).toEqual([]);
    expect(replayed.state.positions.size).toBe(2);
  });
});

describe("a working order filled over several ticks", () => {
  it("adds its later fills to the position its first fill opened (hedging)", () => {
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
      price: points("EURUSD", "1.08500"),
      tp: points("EURUSD", "1.08600"),
    });
    // The stop triggers on a thin book: 0.3 lot fills, 0.7 keeps working as a triggered stop.
    s.ok({ kind: "tick", symbol: "EURUSD", bid: 108500, ask: 108510, asks: [{ price: 108510, volume: 30 }] });
    expect(s.positions(account)).toEqual([expect.objectContaining({ volume: 30, tp: 108600 })]);
    s.ok({ kind: "tick", symbol: "EURUSD", bid: 108550, ask: 108560 });
    expect(s.deals().map((deal) => [deal.entry, deal.positionId, deal.volume])).toEqual([
      ["IN", 1, 30],
      ["IN", 1, 70],
    ]);
    expect(s.positions(account)).toEqual([
      expect.objectContaining({ id: 1, volume: 100, openCost: 108510 * 30 + 108560 * 70 }),
    ]);
    expect(s.replayMatches()).toBe(true);
  });

  // Found by the audits of 6 December. First: SL/TP changed on a partly filled hedging order never reached the
  // position its first fill opened (netting's later fills set them). Then, with later fills setting the order's
  // stops (d861343), a later fill undid the position's trailed SL and the SL the client had set on it. Now the
  // order's changes reach its position when they are made, and a later fill of the same order sets nothing.
  it("SL/TP changed on a partly filled order reach its position at once, in both modes, and its new TP closes it", () => {
    for (const mode of ["HEDGING", "NETTING"] as const) {
      const s = new Scenario();
      const account = s.account("USD", "10000", { mode });
      s.quote("EURUSD", "1.08430", "1.08440");
      const placed = s.ok({
        kind: "placeOrder",
        accountId: account,
        symbol: "EURUSD",
        side: "BUY",
        type: "STOP",
        volume: 100,
        price: points("EURUSD", "1.08500"),
        sl: points("EURUSD", "1.08000"),
        tp: points("EURUSD", "1.08600"),
      });
      s.ok({ kind: "tick", symbol: "EURUSD", bid: 108500, ask: 108510, asks: [{ price: 108510, volume: 30 }] });
      expect(s.positions(account)).toEqual([expect.objectContaining({ volume: 30, sl: 108000, tp: 108600 })]);
      const modified = s.ok({
        kind: "modifyOrder",
        accountId: account,
        orderId: placed.orderId as number,
        sl: points("EURUSD", "1.08100"),
        tp: points("EURUSD", "1.08900"),
      });
      expect(modified.events.map((event) => event.type)).toEqual(["OrderChanged", "PositionChanged"]);
      expect(s.positions(account), mode).toEqual([expect.objectContaining({ volume: 30, sl: 108100, tp: 108900 })]);
      s.ok({ kind: "tick", symbol: "EURUSD", bid: 108550, ask: 108560 });
      expect(s.positions(account), mode).toEqual([
        expect.objectContaining({ id: 1, volume: 100, sl: 108100, tp: 108900 }),
      ]);
      s.ok({ kind: "tick", symbol: "EURUSD", bid: 108900, ask: 108910 });
      expect(s.positions(account), mode).toEqual([]);
      expect(s.deals().at(-1), mode).toEqual(
        expect.objectContaining({ entry: "OUT", volume: 100, reason: "TAKE_PROFIT" }),
      );
      expect(s.ledgerHolds(account)).toBe(true);
      expect(s.replayMatches()).toBe(true);
    }
  });

  it("a later fill of the same order keeps the position's trailed SL and the SL the client set on it", () => {
    for (const mode of ["HEDGING", "NETTING"] as const) {
      const trailing = new Scenario();
      const account = trailing.account("USD", "10000", { mode });
      trailing.quote("EURUSD", "1.08430", "1.08440");
      trailing.ok({
        kind: "placeOrder",
        accountId: account,
        symbol: "EURUSD",
        side: "BUY",
        type: "STOP",
        volume: 100,
        price: points("EURUSD", "1.08500"),
        sl: points("EURUSD", "1.08000"),
        trailingDistance: 200,
      });
      trailing.ok({ kind: "tick", symbol: "EURUSD", bid: 108500, ask: 108510, asks: [{ price: 108510, volume: 30 }] });
      // The SL trails to 1.08700 on this tick, then 10 more units fill.
      trailing.ok({ kind: "tick", symbol: "EURUSD", bid: 108900, ask: 108910, asks: [{ price: 108910, volume: 10 }] });
      expect(trailing.positions(account), mode).toEqual([expect.objectContaining({ volume: 40, sl: 108700 })]);
      expect(trailing.replayMatches()).toBe(true);

      const client = new Scenario();
      const own = client.account("USD", "10000", { mode });
      client.quote("EURUSD", "1.08430", "1.08440");
      client.ok({
        kind: "placeOrder",
        accountId: own,
        symbol: "EURUSD",
        side: "BUY",
        type: "STOP",
        volume: 100,
        price: points("EURUSD", "1.08500"),
        sl: points("EURUSD", "1.08000"),
      });
      client.ok({ kind: "tick", symbol: "EURUSD", bid: 108500, ask: 108510, asks: [{ price: 108510, volume: 30 }] });
      const [position] = client.positions(own);
      client.ok({ kind: "modifyPosition", accountId: own, positionId: position!.id, sl: 108400 });
      client.ok({ kind: "tick", symbol: "EURUSD", bid: 108600, ask: 108610 });
      expect(client.positions(own), mode).toEqual([expect.objectContaining({ volume: 100, sl: 108400 })]);
      expect(client.replayMatches()).toBe(true);
    }
  });

  it("closes a position on the quote that opened it when that quote is already past its TP", () => {
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
      price: points("EURUSD", "1.08500"),
      tp: points("EURUSD", "1.08600"),
    });
    s.ok({ kind: "tick", symbol: "EURUSD", bid: 108650, ask: 108660 });
    expect(s.deals().map((deal) => [deal.entry, deal.price, deal.reason])).toEqual([
      ["IN", 108660, "CLIENT"],
      ["OUT", 108650, "TAKE_PROFIT"],
    ]);
    expect(s.positions(account)).toHaveLength(0);
  });
});

describe("risk thresholds", () => {
  it("the risk-threshold heaps stay bounded while accounts trade over and over", () => {
    const s = new Scenario();
    const holder = s.account();
    const trader = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    s.buy(holder, "EURUSD", "0.01");
    for (let round = 0; round < 20_000; round++) {
      const opened = s.engine.execute({
        kind: "placeOrder",
        time: s.time,
        accountId: trader,
        symbol: "EURUSD",
        side: "BUY",
        type: "MARKET",
        volume: 1,
      });
      if (!opened.ok) throw new Error(opened.code);
      s.engine.execute({
        kind: "closePosition",
        time: s.time,
        accountId: trader,
        positionId: opened.positionId as number,
      });
      if (round % 100 === 0)
        s.engine.execute({ kind: "tick", time: s.time, symbol: "EURUSD", bid: 108430, ask: 108440 });
    }
    const index = s.engine.state.symbolIndex("EURUSD");
    // Before the fix every evaluation left its entries behind: about 40,000 here.
    expect(index.riskBidFloors.size + index.riskAskCeilings.size).toBeLessThan(1_000);
  });
});

describe("restoreQuote: a quote kept from before a restart", () => {
  it("is taken for a symbol without a quote, runs nothing at it, and is checked as a tick is", () => {
    const s = new Scenario();
    const account = s.account("USD", "10000");
    s.quote("EURUSD", "1.08430", "1.08440");
    s.buy(account, "EURUSD", "1", { sl: points("EURUSD", "1.08000") });
    s.restart();
    expect(s.engine.quote("EURUSD")).toBeUndefined();
    const hash = s.engine.stateHash();
    // Below the stop loss: a tick would close the position; a restored quote closes nothing.
    const kept = { symbol: "EURUSD", bid: points("EURUSD", "1.07900"), ask: points("EURUSD", "1.07910"), time: s.time };
    expect(s.engine.restoreQuote(kept)).toBeNull();
    expect(s.engine.quote("EURUSD")).toMatchObject({ bid: kept.bid, ask: kept.ask, time: kept.time });
    expect(s.positions(account)).toHaveLength(1);
    expect(s.engine.stateHash()).toBe(hash);
    // A symbol that has a quote keeps it.
    expect(s.engine.restoreQuote({ ...kept, bid: kept.bid - 10 })).toBeNull();
    expect(s.engine.quote("EURUSD")!.bid).toBe(kept.bid);
    // Refused as a tick would be, and nothing set.
    expect(s.engine.restoreQuote({ ...kept, symbol: "NOPE" })?.code).toBe("UNKNOWN_SYMBOL");
    for (const bad of [
      { ...kept, symbol: "GBPUSD", ask: kept.bid - 1 },
      { ...kept, symbol: "GBPUSD", bids: [{ price: kept.bid + 1, volume: 1 }] },
      { ...kept, symbol: "GBPUSD", time: -1 },
    ])
      expect(s.engine.restoreQuote(bad)?.code, JSON.stringify(bad)).toMatch(/INVALID_PRICE|INVALID_DATA/);
    expect(s.engine.quote("GBPUSD")).toBeUndefined();
    // The next tick runs the stop loss as ever.
    s.quote("EURUSD", "1.07900", "1.07910", s.time + 1000);
    expect(s.positions(account)).toHaveLength(0);
  });
});

// A kept quote may be hours or days old. It used to count as live: the first tick of another symbol judged the
// account at it (a stop-out at the kept bid), and clients traded at the kept book until the feed re-quoted the
// symbol (a free option on the gap). It is now for display and valuation only until a live tick replaces it.
describe("restoreQuote: a kept quote is not a live price", () => {
  const kept = (s: Scenario, symbol: string, bid: string, ask: string) => {
    expect(
      s.engine.restoreQuote({ symbol, bid: points(symbol, bid), ask: points(symbol, ask), time: s.time }),
    ).toBeNull();
  };

  it("runs no stop-out at a kept quote when another symbol ticks; the account is judged at live prices", () => {
    const s = new Scenario();
    const account = s.account("USD", "2000");
    s.quote("EURUSD", "1.08430", "1.08440");
    s.quote("GBPUSD", "1.27000", "1.27010");
    s.buy(account, "EURUSD", "1");
    s.buy(account, "GBPUSD", "0.01");
    s.restart();
    // Kept EURUSD 154 points below the open: equity about 460 on a margin of about 1,097, under the 50% stop-out.
    kept(s, "EURUSD", "1.06900", "1.06910");
    expect(s.engine.accountMetrics(account).profit).toBeLessThan(money("-1500"));
    s.quote("GBPUSD", "1.27000", "1.27010");
    s.ok({ kind: "deposit", accountId: account, amount: 1 });
    expect(s.events.filter((event) => event.type === "StopOut" || event.type === "MarginCallEntered")).toEqual([]);
    expect(s.positions(account)).toHaveLength(2);
    // The live EURUSD price is far from the kept one: nothing to do at it.
    s.quote("EURUSD", "1.08500", "1.08510");
    expect(s.events.filter((event) => event.type === "StopOut" || event.type === "MarginCallEntered")).toEqual([]);
    expect(s.positions(account)).toHaveLength(2);
    // And a live price that low does stop the account out, as ever.
    s.quote("EURUSD", "1.06900", "1.06910");
    expect(s.events.filter((event) => event.type === "StopOut").length).toBeGreaterThan(0);
    expect(s.ledgerHolds(account)).toBe(true);
  });

  it("refuses market orders, IOC/FOK, pending orders and closes at a kept quote, and takes them after a live tick", () => {
    const s = new Scenario();
    const account = s.account("USD", "10000");
    s.quote("EURUSD", "1.08430", "1.08440");
    const positionId = s.buy(account, "EURUSD", "1").positionId as number;
    s.restart();
    kept(s, "EURUSD", "1.09430", "1.09440");
    const refusals: unknown[] = [];
    const refused = (command: Record<string, unknown>) => {
      s.time += 1000;
      const result = s.run({ ...command, time: s.time } as never);
      refusals.push(result.ok ? "filled" : [result.code, result.message]);
    };
    const order = { kind: "placeOrder", accountId: account, symbol: "EURUSD", volume: lots("EURUSD", "1") } as const;
    refused({ ...order, side: "BUY", type: "MARKET" });
    refused({ ...order, side: "SELL", type: "MARKET", timeInForce: "IOC" });
    refused({ ...order, side: "SELL", type: "LIMIT", price: points("EURUSD", "1.09000"), timeInForce: "FOK" });
    refused({ ...order, side: "BUY", type: "LIMIT", price: points("EURUSD", "1.09000") });
    refused({ kind: "closePosition", accountId: account, positionId });
    refused({ kind: "closeAllPositions", accountId: account });
    refused({ kind: "modifyPosition", accountId: account, positionId, sl: points("EURUSD", "1.08000") });
    const noLivePrice = ["NO_QUOTES", "No live price of EURUSD since the restart yet"];
    expect(refusals).toEqual([
      ...Array(5).fill(noLivePrice),
      [noLivePrice[0], `${noLivePrice[1]}: position ${positionId} (EURUSD) cannot be closed now, so none was closed`],
      noLivePrice,
    ]);
    expect(s.positions(account)).toHaveLength(1);
    s.quote("EURUSD", "1.08530", "1.08540");
    expect(s.buy(account, "EURUSD", "1").dealIds).toHaveLength(1);
    s.ok({ kind: "closePosition", accountId: account, positionId });
    expect(s.deals().at(-1)).toMatchObject({ positionId, price: points("EURUSD", "1.08530") });
    expect(s.ledgerHolds(account)).toBe(true);
  });

  it("refuses a deal converted at a kept quote (a cross converted through it), and takes it after a live tick", () => {
    const s = new Scenario();
    const account = s.account("USD", "10000");
    s.quote("USDJPY", "150.230", "150.250");
    s.quote("EURUSD", "1.08430", "1.08440");
    s.quote("EURJPY", "162.000", "162.020");
    const positionId = s.buy(account, "EURJPY", "0.1").positionId as number;
    s.restart();
    kept(s, "USDJPY", "150.230", "150.250");
    s.quote("EURUSD", "1.08430", "1.08440");
    s.quote("EURJPY", "162.100", "162.120");
    // Shown at the kept conversion, traded only at a live one.
    expect(s.engine.accountMetrics(account).profit).not.toBe(0);
    const close = s.run({ kind: "closePosition", accountId: account, positionId, time: (s.time += 1000) });
    expect(close.ok ? "closed" : [close.code, close.message]).toEqual([
      "NO_QUOTES",
      "No live price of USDJPY since the restart yet",
    ]);
    s.quote("USDJPY", "150.230", "150.250");
    s.ok({ kind: "closePosition", accountId: account, positionId });
    expect(s.positions(account)).toHaveLength(0);
  });

  it("changes neither the state hash nor the snapshot, and stays kept through a follower and a rebuild", () => {
    const s = new Scenario();
    const account = s.account("USD", "10000");
    s.quote("EURUSD", "1.08430", "1.08440");
    s.restart();
    const hash = s.engine.stateHash();
    const snapshot = JSON.stringify(s.engine.snapshot());
    kept(s, "EURUSD", "1.08430", "1.08440");
    expect(s.engine.stateHash()).toBe(hash);
    expect(JSON.stringify(s.engine.snapshot())).toBe(snapshot);
    // A durable engine reads from a follower and rebuilds from its quotes (adoptQuotes): still not live.
    const rebuilt = TradingEngine.fromSnapshot(s.engine.config, s.engine.snapshot());
    rebuilt.adoptQuotes(TradingEngine.follower(s.engine));
    const buy = { kind: "placeOrder", accountId: account, symbol: "EURUSD", side: "BUY", type: "MARKET" } as const;
    const result = rebuilt.execute({ ...buy, volume: lots("EURUSD", "1"), time: s.time + 1000 });
    expect(result.ok ? "filled" : result.code).toBe("NO_QUOTES");
    expect(rebuilt.quote("EURUSD")).toMatchObject({ bid: points("EURUSD", "1.08430") });
  });
});

// Found by a review of the kept quotes: money judged at an hours-old price.
describe("kept quotes: nothing takes money or margin at them", () => {
  const keep = (s: Scenario, symbol: string, bid: string, ask: string) =>
    expect(
      s.engine.restoreQuote({ symbol, bid: points(symbol, bid), ask: points(symbol, ask), time: s.time }),
    ).toBeNull();

  it("refuses a withdrawal and a credit removal until every position has a live price", () => {
    const s = new Scenario();
    const account = s.account("USD", "10000");
    s.ok({ kind: "credit", accountId: account, amount: money("100") });
    s.quote("EURUSD", "1.08430", "1.08440");
    s.buy(account, "EURUSD", "1");
    s.restart();
    // Far above the live price: equity at it would let 9,500 out, and the first live tick would stop the account out.
    keep(s, "EURUSD", "1.17000", "1.17010");
    const withdraw = { kind: "withdraw", accountId: account, amount: money("9500") } as const;
    expect(s.rejected(withdraw)).toBe("NO_QUOTES");
    expect(s.rejected({ kind: "credit", accountId: account, amount: -money("50") })).toBe("NO_QUOTES");
    expect(s.get(account).balance).toBe(money("10000"));
    s.quote("EURUSD", "1.08430", "1.08440");
    expect(s.rejected(withdraw)).toBe("NO_MONEY");
    s.ok({ kind: "withdraw", accountId: account, amount: money("1000") });
    expect(s.ledgerHolds(account)).toBe(true);
  });

  it("refuses a margin-increasing order while another position is priced only by a kept quote", () => {
    const s = new Scenario();
    const account = s.account("USD", "2000");
    s.quote("EURUSD", "1.08430", "1.08440");
    s.quote("GBPUSD", "1.27000", "1.27010");
    s.buy(account, "EURUSD", "1");
    s.restart();
    keep(s, "EURUSD", "1.17000", "1.17010");
    s.quote("GBPUSD", "1.27000", "1.27010");
    const order = {
      kind: "placeOrder",
      accountId: account,
      symbol: "GBPUSD",
      side: "BUY",
      type: "MARKET",
      volume: lots("GBPUSD", "5"),
    } as const;
    expect(s.rejected(order)).toBe("NO_QUOTES");
    s.quote("EURUSD", "1.08430", "1.08440");
    // At live prices the same order does not fit the margin.
    expect(s.rejected(order)).toBe("NO_MONEY");
  });

  it("runs no stop-out while a conversion its close needs is only kept, then closes at the first live one", () => {
    const s = new Scenario();
    const account = s.account("USD", "2000");
    s.quote("USDJPY", "150.230", "150.250");
    s.quote("EURUSD", "1.08430", "1.08440");
    s.quote("EURJPY", "162.000", "162.020");
    s.buy(account, "EURJPY", "1");
    s.restart();
    // EURJPY's margin currency is EUR: its close converts through EURUSD, which is only kept.
    keep(s, "EURUSD", "1.08430", "1.08440");
    s.quote("USDJPY", "150.230", "150.250");
    const before = s.events.length;
    s.quote("EURJPY", "159.500", "159.520");
    s.quote("EURJPY", "159.490", "159.510");
    expect(s.events.slice(before).map((event) => event.type)).toEqual([]);
    expect(s.positions(account)).toHaveLength(1);
    s.quote("EURUSD", "1.08430", "1.08440");
    s.quote("EURJPY", "159.480", "159.500");
    expect(s.events.slice(before).map((event) => event.type)).toContain("StopOut");
    expect(s.positions(account)).toHaveLength(0);
    expect(s.ledgerHolds(account)).toBe(true);
  });
});

/** A EURUSD tick whose ask offers `askVolume` volume units only. */
function thinAsk(s: Scenario, bid: string, ask: string, askVolume: number) {
  return s.ok({
    kind: "tick",
    symbol: "EURUSD",
    bid: points("EURUSD", bid),
    ask: points("EURUSD", ask),
    asks: [{ price: points("EURUSD", ask), volume: askVolume }],
  });
}

/**
 * A buy stop of 1 lot at 1.08600 with its stop loss at 1.08400, filled 0.1 lot by a thin book: the scenario, its
 * account and order, and a tick whose ask offers only so much.
 */
function partlyFilledStop() {
  const s = new Scenario();
  const account = s.account();
  s.quote("EURUSD", "1.08430", "1.08440");
  const tick = (bid: string, ask: string, askVolume: number) => thinAsk(s, bid, ask, askVolume);
  const stop = s.pending(account, "EURUSD", "BUY", "STOP", "1", "1.08600", { sl: points("EURUSD", "1.08400") })
    .orderId as number;
  tick("1.08600", "1.08610", 10);
  return { s, account, stop, tick };
}

/** The default configuration with one instrument's trade mode changed, as a broker's instruments file sets it. */
function withTradeMode(symbol: string, tradeMode: "FULL" | "CLOSE_ONLY" | "DISABLED") {
  const config = defaultEngineConfig();
  return {
    ...config,
    instruments: config.instruments.map((instrument) =>
      instrument.symbol === symbol ? { ...instrument, tradeMode } : instrument,
    ),
  };
}

describe("found by the audit of the order lifecycle of 7 December", () => {
  // The README documents CLOSE_ONLY and the market view shows it, but the engine only refused DISABLED: a client of
  // a close-only instrument opened new positions, and working orders kept filling.
  it("a CLOSE_ONLY instrument takes no order and fills no working one; positions close and their stops change", () => {
    const s = new Scenario();
    const hedging = s.account();
    const netting = s.account("USD", "10000", { mode: "NETTING" });
    s.quote("EURUSD", "1.08430", "1.08440");
    const held = s.buy(hedging, "EURUSD", "1").positionId as number;
    s.buy(netting, "EURUSD", "1");
    const limit = s.pending(hedging, "EURUSD", "BUY", "LIMIT", "1", "1.08300").orderId as number;
    s.restart(withTradeMode("EURUSD", "CLOSE_ONLY"));
    s.quote("EURUSD", "1.08430", "1.08440");
    const market = { kind: "placeOrder", symbol: "EURUSD", type: "MARKET", volume: 100 } as const;
    expect(s.rejected({ ...market, accountId: hedging, side: "BUY" })).toBe("TRADE_DISABLED");
    expect(s.rejected({ ...market, accountId: netting, side: "BUY" })).toBe("TRADE_DISABLED");
    // A netting account's order that only reduces its position is a close (see the back office's audit below).
    s.ok({ ...market, accountId: netting, side: "SELL" });
    expect(s.positions(netting)).toEqual([]);
    expect(
      s.rejected({ ...market, accountId: hedging, side: "SELL", type: "LIMIT", price: points("EURUSD", "1.09") }),
    ).toBe("TRADE_DISABLED");
    // The working limit is reached and waits, untriggered.
    s.quote("EURUSD", "1.08290", "1.08300");
    expect(s.engine.state.orders.get(limit)?.status).toBe("PLACED");
    expect(s.positions(hedging)).toHaveLength(1);
    s.ok({ kind: "modifyPosition", accountId: hedging, positionId: held, sl: points("EURUSD", "1.08000") });
    s.ok({ kind: "closePosition", accountId: hedging, positionId: held });
    s.ok({ kind: "cancelOrder", accountId: hedging, orderId: limit });
    expect(s.positions(hedging)).toHaveLength(0);
    expect(s.ledgerHolds(hedging)).toBe(true);
  });

  // A withdrawn instrument's reached orders filled into positions the client could then neither close nor protect.
  it("a DISABLED instrument's reached orders wait, and fill once it trades again", () => {
    const s = new Scenario();
    const account = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    const limit = s.pending(account, "EURUSD", "BUY", "LIMIT", "1", "1.08300").orderId as number;
    s.restart(withTradeMode("EURUSD", "DISABLED"));
    s.quote("EURUSD", "1.08290", "1.08300");
    expect(s.deals()).toHaveLength(0);
    expect(s.engine.state.orders.get(limit)?.status).toBe("PLACED");
    s.restart(defaultEngineConfig());
    s.quote("EURUSD", "1.08280", "1.08290");
    expect(s.engine.state.orders.has(limit)).toBe(false);
    expect(s.deals().map((deal) => [deal.orderId, deal.price])).toEqual([[limit, points("EURUSD", "1.08290")]]);
  });

  // After the position a partly filled stop had opened closed at the order's stop loss, every tick filled the rest
  // into a new position that its stop loss closed at once, at a loss, over and over.
  it("the rest of a partly filled order does not enter where its own stop loss would close it at once", () => {
    const { s, account, stop, tick } = partlyFilledStop();
    expect(s.engine.state.orders.get(stop)).toMatchObject({ status: "PARTIALLY_FILLED", filledVolume: 10 });
    // The market falls through the stop loss: the position closes, and the rest of the order stays out.
    tick("1.08300", "1.08320", 10);
    tick("1.08300", "1.08320", 10);
    const deals = () => s.deals().map((deal) => [deal.entry, deal.reason, deal.volume]);
    expect(deals()).toEqual([
      ["IN", "CLIENT", 10],
      ["OUT", "STOP_LOSS", 10],
    ]);
    expect(s.engine.state.orders.get(stop)).toMatchObject({ status: "PARTIALLY_FILLED", filledVolume: 10 });
    // Back between its stops, the rest fills.
    tick("1.08500", "1.08510", 90);
    expect(deals()).toEqual([
      ["IN", "CLIENT", 10],
      ["OUT", "STOP_LOSS", 10],
      ["IN", "CLIENT", 90],
    ]);
    expect(s.engine.state.orders.has(stop)).toBe(false);
    expect(s.ledgerHolds(account)).toBe(true);
  });

  // The review of 7 December: the first version read the order's stops even where the rest only adds to the position
  // the order opened, whose own stops rule (here removed by the client).
  it("the rest of a partly filled order fills into its open position whose stops were changed, past the order's", () => {
    const { s, account, stop, tick } = partlyFilledStop();
    const positionId = s.positions(account)[0]!.id;
    s.ok({ kind: "modifyPosition", accountId: account, positionId, sl: null });
    tick("1.08390", "1.08400", 90);
    expect(s.engine.state.orders.has(stop)).toBe(false);
    expect(s.positions(account)).toMatchObject([{ id: positionId, volume: 100, sl: null }]);
  });

  it("a LIMIT or STOP order takes no stop-limit price on modify, as on placing", () => {
    const s = new Scenario();
    const account = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    for (const [type, price] of [
      ["LIMIT", "1.08300"],
      ["STOP", "1.08600"],
    ] as const) {
      const orderId = s.ok({
        kind: "placeOrder",
        accountId: account,
        symbol: "EURUSD",
        side: "BUY",
        type,
        volume: 100,
        price: points("EURUSD", price),
      }).orderId as number;
      expect(
        s.rejected({ kind: "modifyOrder", accountId: account, orderId, stopLimitPrice: points("EURUSD", "1.08") }),
      ).toBe("INVALID_PRICE");
      expect(s.engine.state.orders.get(orderId)?.stopLimitPrice).toBeNull();
    }
  });
});

describe("found by the audit of the back office of 7 December", () => {
  // A netting account closes in part with an opposite market order; close-only refused it (ACCOUNT_DISABLED), and
  // the client's loss grew until a close of the whole position.
  it("a close-only netting account or instrument takes a market order that only reduces the position", () => {
    const s = new Scenario();
    const netting = s.account("USD", "10000", { mode: "NETTING" });
    const hedging = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    s.buy(netting, "EURUSD", "1");
    s.buy(hedging, "EURUSD", "1");
    s.ok({ kind: "changeAccount", accountId: netting, tradingEnabled: false });
    const order = { kind: "placeOrder", accountId: netting, symbol: "EURUSD", type: "MARKET" } as const;
    expect(s.rejected({ ...order, side: "BUY", volume: lots("EURUSD", "0.1") })).toBe("ACCOUNT_DISABLED");
    // More than the position would reverse it: a new position, refused.
    expect(s.rejected({ ...order, side: "SELL", volume: lots("EURUSD", "1.5") })).toBe("ACCOUNT_DISABLED");
    expect(s.rejected({ ...order, side: "SELL", type: "LIMIT", price: points("EURUSD", "1.09"), volume: 50 })).toBe(
      "ACCOUNT_DISABLED",
    );
    s.ok({ ...order, side: "SELL", volume: lots("EURUSD", "0.5") });
    expect(s.positions(netting)).toMatchObject([{ side: "BUY", volume: lots("EURUSD", "0.5") }]);
    // The same on a CLOSE_ONLY instrument, for an enabled netting account; a hedging account opens, so it is refused.
    s.ok({ kind: "changeAccount", accountId: netting, tradingEnabled: true });
    s.restart(withTradeMode("EURUSD", "CLOSE_ONLY"));
    s.quote("EURUSD", "1.08430", "1.08440");
    s.ok({ ...order, side: "SELL", volume: lots("EURUSD", "0.2") });
    expect(s.positions(netting)).toMatchObject([{ volume: lots("EURUSD", "0.3") }]);
    expect(s.rejected({ ...order, side: "BUY", volume: lots("EURUSD", "0.1") })).toBe("TRADE_DISABLED");
    expect(s.rejected({ ...order, accountId: hedging, side: "SELL", volume: lots("EURUSD", "0.1") })).toBe(
      "TRADE_DISABLED",
    );
    expect(s.ledgerHolds(netting)).toBe(true);
    expect(s.replayMatches()).toBe(true);
  });
});

describe("found by the audit of trading semantics of 7 December (sixth session)", () => {
  // The negative balance was corrected only when a stop-out closed the last position: a stop loss filled past a gap
  // left −1,440.00 where the same gap without a stop loss was stopped out and corrected to zero.
  it("a stop loss filled past a gap that leaves the balance negative is corrected to zero, as a stop-out is", () => {
    const s = new Scenario();
    const account = s.account("USD", "1000", { leverage: 200 });
    s.quote("EURUSD", "1.08430", "1.08440");
    s.buy(account, "EURUSD", "1", { sl: points("EURUSD", "1.08000") });
    s.quote("EURUSD", "1.06000", "1.06010");
    // The stop loss fills at the gap's bid: (1.06000 − 1.08440) × 100,000 = −2,440.00, the balance −1,440.00.
    expect(s.deals()[1]).toMatchObject({ reason: "STOP_LOSS", profit: money("-2440.00") });
    expect(s.positions(account)).toHaveLength(0);
    expect(s.get(account).balance).toBe(0);
    const correction = s.events.find((event) => event.type === "BalanceOperation" && event.kind === "CORRECTION");
    expect(correction).toMatchObject({
      amount: money("1440.00"),
      comment: "negative balance correction after the last position closed",
    });
    expect(s.ledgerHolds(account)).toBe(true);
    expect(s.replayMatches()).toBe(true);
  });

  it("the credit covers such a loss first, and a deposit after it can be withdrawn whole", () => {
    const s = new Scenario();
    const account = s.account("USD", "1000", { leverage: 200 });
    s.ok({ kind: "credit", accountId: account, amount: money("2000") });
    s.quote("EURUSD", "1.08430", "1.08440");
    s.buy(account, "EURUSD", "1", { sl: points("EURUSD", "1.08000") });
    s.quote("EURUSD", "1.05500", "1.05510");
    // (1.05500 − 1.08440) × 100,000 = −2,940.00: the balance −1,940.00, taken from the credit of 2,000.00.
    expect(s.get(account)).toMatchObject({ balance: 0, credit: money("60.00") });
    s.ok({ kind: "deposit", accountId: account, amount: money("1000") });
    s.ok({ kind: "withdraw", accountId: account, amount: money("1000") });
    expect(s.get(account).balance).toBe(0);
    expect(s.ledgerHolds(account)).toBe(true);
    expect(s.replayMatches()).toBe(true);
  });

  it("a balance below zero while a position is still open is left: the position's equity may cover it", () => {
    const s = new Scenario();
    const account = s.account("USD", "1000", { leverage: 500 });
    s.quote("EURUSD", "1.08430", "1.08440");
    s.quote("GBPUSD", "1.27000", "1.27010");
    s.buy(account, "EURUSD", "1", { sl: points("EURUSD", "1.08000") });
    s.buy(account, "GBPUSD", "0.1");
    s.quote("GBPUSD", "1.60000", "1.60010"); // GBPUSD floats +3,299.00
    s.quote("EURUSD", "1.06000", "1.06010"); // the stop loss fills at −2,440.00: the balance −1,440.00
    expect(s.positions(account).map((position) => position.symbol)).toEqual(["GBPUSD"]);
    expect(s.get(account).balance).toBe(money("-1440.00"));
    expect(s.get(account).ledger.corrections).toBe(0);
    // Closed at 1.60000: (1.60000 − 1.27010) × 10,000 = +3,299.00 covers the −1,440.00.
    s.ok({ kind: "closePosition", accountId: account, positionId: s.positions(account)[0]!.id });
    expect(s.get(account).balance).toBe(money("1859.00"));
    expect(s.get(account).ledger.corrections).toBe(0);
    expect(s.ledgerHolds(account)).toBe(true);
  });
});

describe("found by the audit of the Automation API of 7 December (sixth session)", () => {
  it("a close of all positions refused names the position that blocks the rest, and closes none", () => {
    const s = new Scenario();
    const account = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    s.quote("GBPUSD", "1.27000", "1.27010");
    s.buy(account, "EURUSD", "0.1");
    const blocked = s.buy(account, "GBPUSD", "0.1");
    s.restart(withTradeMode("GBPUSD", "DISABLED"));
    s.quote("EURUSD", "1.08430", "1.08440");
    s.quote("GBPUSD", "1.27000", "1.27010");
    s.time += 1000;
    const refused = s.run({ kind: "closeAllPositions", accountId: account, time: s.time });
    expect(refused).toMatchObject({
      ok: false,
      code: "TRADE_DISABLED",
      message: `Trading is disabled for this instrument: position ${blocked.positionId} (GBPUSD) cannot be closed now, so none was closed`,
    });
    expect(s.positions(account)).toHaveLength(2);
  });
});

describe("found by the audit of trading semantics of 7 December (sixth session), the margin call", () => {
  // A level hovering at the margin-call level entered and cleared the call on every tick that crossed it by a point:
  // ten calls and ten clearings in twenty ticks, each journaled and notified.
  it("enters at the level once and clears only 5 points above it, however the quote hovers between", () => {
    const s = new Scenario();
    const account = s.account("USD", "1500");
    s.quote("EURUSD", "1.08430", "1.08440");
    s.buy(account, "EURUSD", "1");
    // Margin 1,084.30. Equity at bid 1.08025: 1,500 − 415.00 = 1,085.00 (100.06 %); at 1.08024: 1,084.00 (99.97 %).
    for (let flip = 0; flip < 10; flip++) {
      s.quote("EURUSD", "1.08024", "1.08034");
      s.quote("EURUSD", "1.08025", "1.08035");
    }
    const calls = () => s.events.filter((event) => event.type === "MarginCallEntered").length;
    const clearings = () => s.events.filter((event) => event.type === "MarginCallCleared").length;
    expect([calls(), clearings()]).toEqual([1, 0]);
    // 105 % of 1,084.30 is 1,138.52: at bid 1.08078 equity is 1,138.00 (104.95 %), still in call; at 1.08079, 1,139.00.
    s.quote("EURUSD", "1.08078", "1.08088");
    expect(s.get(account).marginCall).toBe(true);
    s.quote("EURUSD", "1.08079", "1.08089");
    expect([calls(), clearings()]).toEqual([1, 1]);
    expect(s.get(account).marginCall).toBe(false);
    // Back at the level: a call again.
    s.quote("EURUSD", "1.08024", "1.08034");
    expect([calls(), clearings()]).toEqual([2, 1]);
    expect(s.replayMatches()).toBe(true);
  });
});

describe("found by the audit of a terminal's journey of 7 December (sixth session)", () => {
  // INVALID_STOPS said only "invalid or too close to the market": a client could not tell which stop, nor where it
  // could go.
  it("a refused stop names itself and the price it may take at most or at least", () => {
    const s = new Scenario();
    const account = s.account();
    s.quote("EURUSD", "1.08430", "1.08440");
    const level = Math.max(s.engine.state.instrument("EURUSD").stopsLevelPoints, 1);
    const refusal = (extra: Record<string, unknown>, side: "BUY" | "SELL" = "BUY") => {
      s.time += 1000;
      const result = s.run({
        kind: "placeOrder",
        accountId: account,
        symbol: "EURUSD",
        side,
        type: "MARKET",
        volume: lots("EURUSD", "0.1"),
        time: s.time,
        ...extra,
      } as never);
      return result.ok ? "filled" : [result.code, result.message];
    };
    const below = (108_430 - level) / 100_000;
    const above = (108_430 + level) / 100_000;
    // A buy's stops are measured from the bid it would close at.
    expect(refusal({ sl: points("EURUSD", "1.08430") })).toEqual([
      "INVALID_STOPS",
      `The stop loss must be at most ${below.toFixed(5)}: ${level} point${level === 1 ? "" : "s"} below 1.08430, the price it is measured from`,
    ]);
    expect(refusal({ tp: points("EURUSD", "1.08430") })).toEqual([
      "INVALID_STOPS",
      `The take profit must be at least ${above.toFixed(5)}: ${level} point${level === 1 ? "" : "s"} above 1.08430, the price it is measured from`,
    ]);
    expect(refusal({ trailingDistance: 0 })).toEqual([
      "INVALID_STOPS",
      `The trailing distance must be a price distance of at least ${level} points`,
    ]);
    expect(s.positions(account)).toEqual([]);
  });
});

describe("regressions found by the review of 7 December (sixth session)", () => {
  // An instrument of 8 digits and 8 volume digits (what an instrument file may hold): the points a leg may move before
  // the account's line passed 2^53, registering the account's thresholds threw, and so did every command after it.
  it("an instrument of 8 digits and 8 volume digits: an order fills and the account is watched, nothing throws", () => {
    const config = defaultEngineConfig({
      instruments: [
        ...DEFAULT_INSTRUMENTS,
        defineInstrument({
          symbol: "ALTUSD",
          description: "A coin quoted in hundred-millionths",
          assetClass: "crypto",
          digits: 8,
          contractSize: 1,
          lots: { min: "0.00000001", max: "1", step: "0.00000001" },
          base: "BTC" as never,
          quote: "USD",
          marginMode: "CFD",
          marginRatePercent: "100",
          sessions: ALWAYS_OPEN,
          stopsLevelPoints: 0,
          swapLong: "0",
          swapShort: "0",
          commission: "0",
        }),
      ],
    });
    const s = new Scenario(config);
    const account = s.account("USD", "10000");
    s.ok({ kind: "tick", symbol: "ALTUSD", bid: 1_000_000, ask: 1_000_010 });
    const bought = s.ok({
      kind: "placeOrder",
      accountId: account,
      symbol: "ALTUSD",
      side: "BUY",
      type: "MARKET",
      volume: 1,
    });
    expect(bought.dealIds).toHaveLength(1);
    s.ok({ kind: "tick", symbol: "ALTUSD", bid: 900_000, ask: 900_010 });
    expect(s.positions(account)).toHaveLength(1);
  });
});
