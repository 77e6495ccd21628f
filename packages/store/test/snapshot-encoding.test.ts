/**
 * A snapshot encoded in slices (records.ts `encodeSnapshotInSlices`, what the durable engine stores) is the
 * row `encodeSnapshot` makes of the same state with its hash, byte for byte, and is refused for the same faults.
 */
import { TradingEngine, defaultEngineConfig, type Command, type StateSnapshot } from "@bourse/core";
import { describe, expect, it } from "vitest";
import { JournalRecordError, encodeSnapshot, encodeSnapshotInSlices } from "../src/index.ts";
import { TUESDAY_NOON } from "./trading-session.ts";

/** 200 accounts, each with a deposit, two resting orders (one under a client order id) and an open position. */
function busyEngine(): TradingEngine {
  const engine = new TradingEngine(defaultEngineConfig());
  let time = TUESDAY_NOON;
  const run = (command: Record<string, unknown>) => {
    const result = engine.execute({ ...command, time: (time += 1000) } as unknown as Command);
    if (!result.ok) throw new Error(`${String(command.kind)}: ${result.code}`);
    return result;
  };
  run({ kind: "tick", symbol: "EURUSD", bid: 108430, ask: 108440 });
  for (let index = 0; index < 200; index++) {
    const { accountId } = run({
      kind: "openAccount",
      userId: `user-${index}`,
      currency: "USD",
      leverage: 100,
      mode: "HEDGING",
    });
    run({ kind: "deposit", accountId, amount: 1_000_000 + index });
    const order = { kind: "placeOrder", accountId, symbol: "EURUSD", side: "BUY", volume: 1 };
    run({ ...order, type: "LIMIT", price: 100_000 + index, clientOrderId: `rest-${index}` });
    run({ ...order, type: "LIMIT", price: 99_000 + index, comment: `ünïcode ${index} 🙂` });
    run({ ...order, type: "MARKET" });
  }
  return engine;
}

describe("encodeSnapshotInSlices", () => {
  it("makes encodeSnapshot's row of the same state, yielding between slices", async () => {
    const engine = busyEngine();
    const state = engine.snapshot();
    let pauses = 0;
    const sliced = await encodeSnapshotInSlices(
      { sequence: 1234, state, createdAt: 1_780_000_000_000 },
      { sliceMilliseconds: 0, pause: async () => void pauses++ },
    );
    const whole = encodeSnapshot({
      sequence: 1234,
      stateHash: engine.stateHash(),
      state,
      createdAt: 1_780_000_000_000,
    });
    expect(sliced).toEqual(whole);
    expect(pauses).toBeGreaterThan(5);
  });

  it("refuses a value JSON cannot keep exactly, as encodeSnapshot does", async () => {
    const state = busyEngine().snapshot();
    const orders = state.orders.map((order, index) => (index === 7 ? { ...order, price: 1.5 } : order));
    const damaged = { ...state, orders } as StateSnapshot;
    const sliced = await encodeSnapshotInSlices({ sequence: 9, state: damaged, createdAt: 0 }).catch((error) => error);
    expect(sliced).toBeInstanceOf(JournalRecordError);
    expect(() => encodeSnapshot({ sequence: 9, stateHash: "x", state: damaged, createdAt: 0 })).toThrow(
      (sliced as Error).message,
    );
    expect((sliced as Error).message).toContain("snapshot.state.orders[7].price is 1.5");
  });

  it("refuses an inexact value outside the records too (a counter), as encodeSnapshot does", async () => {
    const state = busyEngine().snapshot();
    const damaged = { ...state, counters: { ...state.counters, nextOrderId: Number.NaN } } as StateSnapshot;
    const sliced = await encodeSnapshotInSlices({ sequence: 9, state: damaged, createdAt: 0 }).catch((error) => error);
    expect(sliced).toBeInstanceOf(JournalRecordError);
    expect(() => encodeSnapshot({ sequence: 9, stateHash: "x", state: damaged, createdAt: 0 })).toThrow(
      (sliced as Error).message,
    );
    expect((sliced as Error).message).toContain("snapshot.state.counters.nextOrderId is NaN");
  });
});
