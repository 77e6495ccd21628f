/**
 * The journal's binary event form (src/event-codec.ts): exact round trips of what the engine emits and of
 * anything else JSON would keep, the JSON fallback for events its shapes do not fit, refusals, damage, and the
 * bytes of format 1 pinned (its shapes and names are append-only).
 */
import { TradingEngine, defaultEngineConfig, type EngineEvent } from "@bourse/core";
import fc from "fast-check";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  EventDecodingError,
  FORMAT_BINARY,
  decodeEvents,
  encodeEvents,
  eventsFittingShapes,
} from "../src/event-codec.ts";
import { JournalCorruptionError, JournalRecordError } from "../src/index.ts";
import { encodeBatch, readRecords, type StoredBatch } from "../src/records.ts";
import {
  AWKWARD_COMMENT,
  TUESDAY_NOON,
  depositSession,
  runner,
  toRecords,
  tradingSession,
  type TradingSession,
} from "./trading-session.ts";

const EVERY_EVENT_TYPE = [
  "AccountOpened",
  "AccountChanged",
  "BalanceOperation",
  "OrderAccepted",
  "OrderChanged",
  "OrderStatusChanged",
  "DealExecuted",
  "PositionChanged",
  "PositionMarginChanged",
  "Rollover",
  "SwapsDeferred",
  "DeferredSwapsCharged",
  "MarginCallEntered",
  "MarginCallCleared",
  "StopOut",
];

function noCheck(): void {}

function roundTrip(events: readonly EngineEvent[]): EngineEvent[] {
  return decodeEvents(encodeEvents(events, noCheck), events.length);
}

/** The same events, key order included (the state hash is over JSON text), and nothing lost or added. */
function expectExactly(decoded: readonly unknown[], events: readonly unknown[]): void {
  expect(decoded.map((event) => JSON.stringify(event))).toEqual(events.map((event) => JSON.stringify(event)));
  expect(decoded).toStrictEqual(events);
}

/**
 * Every kind of event and deal effect the engine emits, from its own commands: accounts opened and changed,
 * every balance operation, orders placed, modified, triggered, cancelled and filled, positions opened,
 * increased, decreased, modified, trailed and margined anew at a new leverage, a rollover that charges swap, a
 * margin call entered and cleared,
 * and a stop-out with its negative-balance correction.
 */
function everyKindOfEvent(): EngineEvent[] {
  const config = defaultEngineConfig();
  const session: TradingSession = { config, engine: new TradingEngine(config), events: [] };
  const run = runner(session);
  const quote = (bid: number, spread = 10) => run({ kind: "tick", symbol: "EURUSD", bid, ask: bid + spread });
  const open = (mode: string, deposit: number, leverage = 100) => {
    const accountId = run({ kind: "openAccount", userId: `user ${mode}`, currency: "USD", leverage, mode }).accountId!;
    run({ kind: "deposit", accountId, amount: deposit, comment: AWKWARD_COMMENT });
    return accountId;
  };
  quote(108430);
  const hedging = open("HEDGING", 10_000_000);
  run({ kind: "changeAccount", accountId: hedging, leverage: 200 });
  run({ kind: "withdraw", accountId: hedging, amount: 100_00 });
  run({ kind: "credit", accountId: hedging, amount: 50_00, comment: "bonus" });
  // With the back office's reference: the second shape of BalanceOperation.
  run({ kind: "deposit", accountId: hedging, amount: 25_00, comment: "wire", reference: "wire-2026-0001" });
  const market = (accountId: number, side: string, volume: number, extra: Record<string, unknown> = {}) =>
    run({ kind: "placeOrder", accountId, symbol: "EURUSD", side, type: "MARKET", volume, ...extra });
  const opened = market(hedging, "BUY", 100, { sl: 107000, tp: 110000, trailingDistance: 200, clientOrderId: "c-1" });
  const positionId = opened.positionId!;
  run({ kind: "modifyPosition", accountId: hedging, positionId, sl: 107500, tp: 110500 });
  // The price rises far enough for the trailing stop to move.
  quote(108900);
  const limit = run({
    kind: "placeOrder",
    accountId: hedging,
    symbol: "EURUSD",
    side: "BUY",
    type: "LIMIT",
    volume: 10,
    price: 107000,
    timeInForce: "GTC",
  });
  run({ kind: "modifyOrder", accountId: hedging, orderId: limit.orderId!, price: 106900 });
  run({ kind: "cancelOrder", accountId: hedging, orderId: limit.orderId! });
  run({
    kind: "placeOrder",
    accountId: hedging,
    symbol: "EURUSD",
    side: "BUY",
    type: "STOP_LIMIT",
    volume: 10,
    price: 109000,
    stopLimitPrice: 108950,
    timeInForce: "GTC",
  });
  // The stop price is reached: the order is triggered, and works as a limit order.
  quote(109010);
  const netting = open("NETTING", 10_000_000);
  market(netting, "BUY", 100);
  market(netting, "BUY", 50);
  market(netting, "SELL", 30);
  // A leverage change with a position open rescales its margin.
  run({ kind: "changeAccount", accountId: netting, leverage: 50 });
  // A rollover with positions open charges swap.
  run({ kind: "advanceTime" }, TUESDAY_NOON + 24 * 60 * 60 * 1000);
  // A small account on a large position: a margin call as the price falls, cleared as it returns, then a stop-out.
  const small = open("HEDGING", 20_000_00, 100);
  market(small, "BUY", 1_500);
  quote(108700);
  quote(109010);
  quote(104000);
  // A restart loses the quotes: the next rollover defers the USDJPY position's swap (its profit is in yen) until
  // a USDJPY tick brings the rate back.
  const twoDaysLater = TUESDAY_NOON + 2 * 24 * 60 * 60 * 1000;
  run({ kind: "tick", symbol: "USDJPY", bid: 150230, ask: 150250 }, twoDaysLater);
  run({ kind: "placeOrder", accountId: hedging, symbol: "USDJPY", side: "BUY", type: "MARKET", volume: 10 });
  const restarted: TradingSession = {
    config,
    engine: TradingEngine.fromSnapshot(config, session.engine.snapshot()),
    events: session.events,
  };
  const runRestarted = runner(restarted);
  runRestarted({ kind: "advanceTime" }, twoDaysLater + 24 * 60 * 60 * 1000);
  runRestarted({ kind: "tick", symbol: "USDJPY", bid: 150330, ask: 150350 });
  return session.events;
}

describe("the binary event form", () => {
  it("keeps every kind of event the engine emits exactly, all in their compact shapes", () => {
    const events = everyKindOfEvent();
    const seen = new Set(events.map((event) => event.type));
    expect([...seen].sort()).toEqual([...EVERY_EVENT_TYPE].sort());
    const effects = new Set(events.flatMap((event) => (event.type === "DealExecuted" ? [event.effect.kind] : [])));
    expect([...effects].sort()).toEqual(["DECREASE", "INCREASE", "OPEN"]);
    const rollovers = events.filter((event) => event.type === "Rollover");
    expect(rollovers.some((event) => event.type === "Rollover" && event.charges.length > 0)).toBe(true);
    // A shape table behind the engine would send these as JSON: correct, but the slow path.
    expect(eventsFittingShapes(events)).toBe(events.length);
    expectExactly(roundTrip(events), events);
    for (const session of [tradingSession(), depositSession(50)])
      expectExactly(roundTrip(session.events), session.events);
  });

  it("keeps a close by the dealing desk (reason DEALER, a name outside its table) exactly, in the compact shapes", () => {
    const session = tradingSession();
    const run = runner(session);
    const account = run({
      kind: "openAccount",
      userId: "carol",
      currency: "USD",
      leverage: 100,
      mode: "HEDGING",
    }).accountId!;
    run({ kind: "deposit", accountId: account, amount: 1_000_000 });
    const opened = run({
      kind: "placeOrder",
      accountId: account,
      symbol: "EURUSD",
      side: "SELL",
      type: "MARKET",
      volume: 10,
    });
    const before = session.events.length;
    run({ kind: "closePosition", accountId: account, positionId: opened.positionId!, initiator: "DEALER" });
    const closing = session.events.slice(before);
    const deal = closing.find((event) => event.type === "DealExecuted");
    expect(deal?.type === "DealExecuted" && deal.deal.reason).toBe("DEALER");
    expect(eventsFittingShapes(closing)).toBe(closing.length);
    expectExactly(roundTrip(closing), closing);
  });

  it("encodes batches larger than its buffer, and the batches after them, exactly", () => {
    const { events } = depositSession(60);
    const huge = events.map((event) =>
      event.type === "BalanceOperation" ? { ...event, comment: `${"€".repeat(40_000)} ${event.amount}` } : event,
    );
    expectExactly(roundTrip(huge), huge);
    expectExactly(roundTrip(events), events);
    expectExactly(roundTrip(huge.slice(0, 3)), huge.slice(0, 3));
  });

  it("is much smaller than the JSON text", () => {
    const { events } = tradingSession();
    expect(encodeEvents(events, noCheck).length).toBeLessThan(JSON.stringify(events).length / 3);
  });

  it("keeps any value JSON keeps in any field of a shape: integers of every size, text of every kind, null, booleans, undefined", () => {
    const value = fc.oneof(
      fc.constant(null),
      fc.boolean(),
      fc.constant(undefined),
      fc.integer({ min: -300, max: 300 }),
      fc.integer(),
      fc.maxSafeInteger(),
      fc.constantFrom(Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 31, -(2 ** 31) - 1, 255, 256),
      fc.string(),
      fc.string({ unit: "grapheme" }),
      // Lone surrogates, which UTF-8 cannot carry.
      fc.string({ unit: "binary" }),
      fc.constantFrom("", "BUY", "EURUSD", "FILLED", "standard", AWKWARD_COMMENT),
    );
    const { events } = tradingSession();
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat({ max: events.length - 1 }), fc.array(value, { minLength: 30, maxLength: 30 }))),
        (picks) => {
          // Real events with their values replaced, keys and nesting kept.
          const batch = picks.map(([index, values]) => {
            let next = 0;
            const replace = (record: Record<string, unknown>): Record<string, unknown> =>
              Object.fromEntries(
                Object.entries(record).map(([key, item]) => [
                  key,
                  key === "type" || key === "kind"
                    ? item
                    : Array.isArray(item)
                      ? item.map((element) => replace(element as Record<string, unknown>))
                      : typeof item === "object" && item !== null
                        ? replace(item as Record<string, unknown>)
                        : values[next++ % values.length],
                ]),
              );
            return replace(events[index] as unknown as Record<string, unknown>) as unknown as EngineEvent;
          });
          const decoded = roundTrip(batch);
          expect(decoded.map((event) => JSON.stringify(event))).toEqual(batch.map((event) => JSON.stringify(event)));
          expect(decoded).toEqual(batch);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("writes an event its shapes do not fit (unknown type, a key added or missing, keys in another order) as JSON, exactly", () => {
    const { events } = tradingSession();
    const deposit = events.find((event) => event.type === "BalanceOperation")!;
    const accepted = events.find((event) => event.type === "OrderAccepted")!;
    const { time, ...withoutTime } = deposit;
    const odd = [
      { type: "SomethingNew", time: 1, detail: { nested: [1, "two", null] } },
      { ...deposit, addedLater: 7 },
      { ...withoutTime, time },
      { ...accepted, order: { ...accepted.order, extra: true } },
      { ...deposit, kind: "DEPOSIT", amount: 5 },
    ] as unknown as EngineEvent[];
    expect(eventsFittingShapes(odd)).toBe(1);
    const batch = [events[0]!, ...odd, events[1]!];
    expectExactly(roundTrip(batch), batch);
  });

  it("refuses, naming the record and the field, a value neither form keeps exactly", () => {
    const { events } = tradingSession();
    const records = toRecords(events);
    const deal = events.findIndex((event) => event.type === "DealExecuted");
    const withFloat = records.map((record, index) =>
      index === deal && record.event.type === "DealExecuted"
        ? { ...record, event: { ...record.event, deal: { ...record.event.deal, price: 1.5 } } }
        : record,
    );
    expect(() => encodeBatch(withFloat)).toThrow(JournalRecordError);
    expect(() => encodeBatch(withFloat)).toThrow(
      `journal record ${deal + 1} refused: event.deal.price is 1.5, not a safe integer`,
    );
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, 0.1, () => 1, new Date(0), { toJSON: () => 1 }]) {
      const event = { ...events[1]!, amount: bad } as unknown as EngineEvent;
      expect(() => encodeBatch([{ sequence: 1, event }])).toThrow(JournalRecordError);
    }
  });

  it("reads damage as an error, never as other events: truncated, unknown tags and shapes, trailing bytes, a wrong count", () => {
    const { events } = tradingSession();
    const payload = encodeEvents(events, noCheck);
    const decodes =
      (bytes: Buffer, count = events.length) =>
      () =>
        decodeEvents(bytes, count);
    expect(decodes(payload.subarray(0, payload.length - 1))).toThrow(EventDecodingError);
    expect(decodes(payload.subarray(0, payload.length / 2))).toThrow(EventDecodingError);
    expect(decodes(Buffer.concat([payload, Buffer.from([1])]))).toThrow(EventDecodingError);
    expect(decodes(payload, events.length - 1)).toThrow(EventDecodingError);
    expect(decodes(payload, events.length + 1)).toThrow(EventDecodingError);
    expect(decodes(Buffer.from([FORMAT_BINARY, 99]), 1)).toThrow(EventDecodingError);
    expect(decodes(Buffer.from([FORMAT_BINARY, 10, 250]), 1)).toThrow(EventDecodingError);
    expect(decodes(Buffer.from([FORMAT_BINARY, 11, 255, 255, 255, 255]), 1)).toThrow(EventDecodingError);
    expect(decodes(Buffer.from([0x5b, 0x5d]), 0)).toThrow(EventDecodingError);
    // Every byte changed in turn: an error or some events, never a crash of another kind.
    for (let index = 1; index < Math.min(payload.length, 400); index++) {
      const damaged = Buffer.from(payload);
      damaged[index] = damaged[index]! ^ 0xff;
      try {
        decodeEvents(damaged, events.length);
      } catch (error) {
        expect(error).toBeInstanceOf(EventDecodingError);
      }
    }
  });

  it("a row whose checksum matches bytes that do not decode is corruption, named at its first sequence", async () => {
    const records = toRecords(depositSession(4).events);
    const row = encodeBatch(records);
    const cut = (row.payload as Buffer).subarray(0, row.payload.length - 3);
    const { batchChecksum } = await import("../src/checksum.ts");
    const stored: StoredBatch = { firstSequence: 1, lastSequence: 4, payload: cut, checksum: batchChecksum(1, 4, cut) };
    const source = { rowStart: async () => 1, rows: async (first: number) => (first === 1 ? [stored] : []) };
    await expect(readRecords(source, 0, 10, 10)).rejects.toThrow(JournalCorruptionError);
    await expect(readRecords(source, 0, 10, 10)).rejects.toThrow(
      /journal corrupt at sequence 1: the payload does not decode/,
    );
  });
});

/**
 * Format 1's bytes for known batches, pinned: a row written today must read the same in every later version,
 * so the shapes and names may only grow. If this fails after a change to SHAPES or NAMES, that change edited
 * what has shipped; add a new shape or name instead. Each batch is fixed in its file so that engine changes do
 * not move it: every kind of event as the engine emitted it when format 1 shipped (events-format-1.json), then
 * the events of each shape added since, as the engine emitted them when the shape was added.
 */
describe("format 1, pinned", () => {
  const FIXTURES = [
    "events-format-1.json",
    "events-format-1-deferred-swaps.json",
    "events-format-1-position-margin.json",
    "events-format-1-balance-reference.json",
    "events-format-1-position-volume.json",
  ];
  const fixtures = FIXTURES.map(
    (name) =>
      [
        name,
        JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8")) as {
          events: EngineEvent[];
          payloadBase64: string;
        },
      ] as const,
  );

  for (const [name, fixture] of fixtures) {
    it(`encodes the batch of ${name} to the bytes it always has`, () => {
      expect(encodeEvents(fixture.events, noCheck).toString("base64")).toBe(fixture.payloadBase64);
    });

    it(`decodes the bytes of ${name} to its batch`, () => {
      expectExactly(decodeEvents(Buffer.from(fixture.payloadBase64, "base64"), fixture.events.length), fixture.events);
      expect(eventsFittingShapes(fixture.events)).toBe(fixture.events.length);
    });
  }

  it("covers every shape of format 1", () => {
    const types = new Set(fixtures.flatMap(([, fixture]) => fixture.events.map((event) => event.type)));
    expect([...types].sort()).toEqual([...EVERY_EVENT_TYPE].sort());
  });
});
