/**
 * The read models' contract (DESIGN.md section 2: order, deal and position history and the balance
 * ledger, written in the append's transaction), run against each driver by its own test file. The rows
 * are checked against a real TradingEngine: its events, and its state after the scenario.
 */
import {
  TradingEngine,
  defaultEngineConfig,
  type Command,
  type CommandSuccess,
  type Deal,
  type EngineEvent,
  type Order,
} from "@bourse/core";
import { afterEach, describe, expect, it } from "vitest";
import {
  MAX_HISTORY_LIMIT,
  type EventJournal,
  type HistoryPage,
  type HistoryQuery,
  type ReadModels,
} from "../src/index.ts";
import type { JournalStorage, JournalStorageFactory } from "./journal.contract.ts";
import { TUESDAY_NOON, runner, toRecords, type TradingSession } from "./trading-session.ts";

type ReadModelJournal = EventJournal & ReadModels;

const HOUR = 3_600_000;

interface Scenario {
  readonly engine: TradingEngine;
  readonly events: EngineEvent[];
  readonly hedging: number;
  readonly netting: number;
}

/**
 * Market orders, a partial close, a hedge, TP and SL triggered by ticks, a netting reversal, a rollover
 * with swap, then closes, a cancelled limit order, a withdrawal and a credit.
 */
export function tradingScenario(): Scenario {
  const config = defaultEngineConfig();
  let engine = new TradingEngine(config);
  const events: EngineEvent[] = [];
  let time = TUESDAY_NOON;
  const run = (command: Record<string, unknown>, at?: number): CommandSuccess => {
    time = at ?? time + 1000;
    const result = engine.execute({ ...command, time } as Command);
    events.push(...result.events);
    if (!result.ok) throw new Error(`${String(command.kind)} rejected: ${result.code} ${result.message}`);
    return result;
  };
  const quotes = () => {
    run({ kind: "tick", symbol: "EURUSD", bid: 108430, ask: 108440 });
    run({ kind: "tick", symbol: "USDJPY", bid: 150230, ask: 150250 });
    run({ kind: "tick", symbol: "EURJPY", bid: 162900, ask: 162950 });
  };
  const market = (accountId: number, symbol: string, side: string, volume: number, extra = {}) =>
    run({ kind: "placeOrder", accountId, symbol, side, type: "MARKET", volume, ...extra });

  const hedging = run({
    kind: "openAccount",
    userId: "alice",
    currency: "USD",
    leverage: 100,
    mode: "HEDGING",
  }).accountId!;
  run({ kind: "deposit", accountId: hedging, amount: 1_000_000, comment: "first" });
  quotes();
  const first = market(hedging, "EURUSD", "BUY", 100, { sl: 108000, tp: 109000 }).positionId!;
  const second = market(hedging, "EURUSD", "BUY", 50).positionId!;
  const hedge = market(hedging, "EURUSD", "SELL", 30).positionId!;
  run({ kind: "closePosition", accountId: hedging, positionId: first, volume: 40 });
  // The take profit of `first` (bid ≥ 109000).
  run({ kind: "tick", symbol: "EURUSD", bid: 109010, ask: 109020 });
  run({ kind: "modifyPosition", accountId: hedging, positionId: hedge, sl: 109500 });
  // The stop loss of `hedge` (ask ≥ 109500).
  run({ kind: "tick", symbol: "EURUSD", bid: 109600, ask: 109610 });
  const limit = run({
    kind: "placeOrder",
    accountId: hedging,
    symbol: "EURUSD",
    side: "BUY",
    type: "LIMIT",
    volume: 10,
    price: 108000,
  }).orderId!;
  run({ kind: "modifyOrder", accountId: hedging, orderId: limit, price: 107900 });
  run({ kind: "cancelOrder", accountId: hedging, orderId: limit });

  const netting = run({
    kind: "openAccount",
    userId: "bob",
    currency: "EUR",
    leverage: 30,
    mode: "NETTING",
  }).accountId!;
  run({ kind: "deposit", accountId: netting, amount: 500_000 });
  market(netting, "USDJPY", "BUY", 30);
  // Reverses the netting position: 30 closed, 20 opened short.
  market(netting, "USDJPY", "SELL", 50);

  // A restart (no quotes until the feed sends them again), then past the next rollover (22:00 UTC): swap
  // accrues on what is open. The EUR account's USDJPY position converts its yen with EURJPY, which has not
  // ticked yet: its swap is deferred, and charged on the EURJPY tick.
  engine = TradingEngine.fromSnapshot(config, engine.snapshot());
  run({ kind: "advanceTime" }, TUESDAY_NOON + 36 * HOUR);
  quotes();
  run({ kind: "closePosition", accountId: hedging, positionId: second });
  run({ kind: "closeAllPositions", accountId: netting });
  run({ kind: "withdraw", accountId: hedging, amount: 10_000 });
  run({ kind: "credit", accountId: hedging, amount: 5_000 });
  market(hedging, "EURUSD", "SELL", 10);
  return { engine, events, hedging, netting };
}

/** The three instants of the equal-times history: every row of a group has its group's time. */
export const EQUAL_TIME_GROUPS = [TUESDAY_NOON + 60_000, TUESDAY_NOON + 120_000, TUESDAY_NOON + 180_000] as const;
const ORDERS_PER_GROUP = 80;

/**
 * Hundreds of rows of every history in three instants (a close-all, a stop-out or an order walking the book makes
 * many rows in one millisecond), another account's rows between them: only ids can order them, in both directions.
 * Each order of `accountId` makes an order, a deal and a position; each deposit a ledger row; one order in four is
 * USDJPY, the others EURUSD.
 */
export function equalTimesScenario(): { events: EngineEvent[]; accountId: number; other: number } {
  const config = defaultEngineConfig();
  const session: TradingSession = { config, engine: new TradingEngine(config), events: [] };
  const run = runner(session);
  const openAccount = (userId: string) =>
    run({ kind: "openAccount", userId, currency: "USD", leverage: 100, mode: "HEDGING" }).accountId!;
  const accountId = openAccount("carol");
  const other = openAccount("dave");
  for (const account of [accountId, other]) run({ kind: "deposit", accountId: account, amount: 10_000_000 });
  run({ kind: "tick", symbol: "EURUSD", bid: 108430, ask: 108440 });
  run({ kind: "tick", symbol: "USDJPY", bid: 150230, ask: 150250 });
  for (const time of EQUAL_TIME_GROUPS)
    for (let index = 0; index < ORDERS_PER_GROUP; index++) {
      const symbol = index % 4 === 0 ? "USDJPY" : "EURUSD";
      run({ kind: "placeOrder", accountId, symbol, side: "BUY", type: "MARKET", volume: 1 }, time);
      run({ kind: "deposit", accountId, amount: 100 + index }, time);
      if (index % 3 === 0)
        run({ kind: "placeOrder", accountId: other, symbol, side: "SELL", type: "MARKET", volume: 1 }, time);
    }
  return { events: session.events, accountId, other };
}

/** Every page of a history, following cursors. */
async function allPages<Row extends { readonly id: number }>(
  fetch: (query: HistoryQuery) => Promise<HistoryPage<Row>>,
  query: HistoryQuery,
): Promise<{ rows: Row[]; pages: number }> {
  const rows: Row[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const page: HistoryPage<Row> = await fetch({ ...query, cursor });
    rows.push(...page.rows);
    cursor = page.nextCursor;
    pages++;
    if (pages > 10_000) throw new Error("pagination does not end");
  } while (cursor !== null);
  return { rows, pages };
}

function dealsOf(events: readonly EngineEvent[], accountId: number): Deal[] {
  return events.flatMap((event) =>
    event.type === "DealExecuted" && event.deal.accountId === accountId ? [event.deal] : [],
  );
}

/** The orders as the events leave them, folded here independently of the projection. */
function ordersOf(events: readonly EngineEvent[], accountId: number): Order[] {
  const orders = new Map<number, Order>();
  for (const event of events) {
    if (event.type === "OrderAccepted" && event.order.accountId === accountId)
      orders.set(event.order.id, { ...event.order });
    const order =
      event.type === "OrderChanged" || event.type === "OrderStatusChanged" ? orders.get(event.orderId) : undefined;
    if (!order) continue;
    if (event.type === "OrderChanged") Object.assign(order, { price: event.price, sl: event.sl, tp: event.tp });
    if (event.type === "OrderStatusChanged")
      Object.assign(order, { status: event.status, filledVolume: event.filledVolume, statusReason: event.reason });
    order.updatedAt = event.time;
  }
  return [...orders.values()].sort((left, right) => left.id - right.id);
}

/** Registers the read models' describe block for one driver. */
export function readModelsContract(factory: JournalStorageFactory): void {
  let storage: JournalStorage | null = null;
  const opened: EventJournal[] = [];

  afterEach(async () => {
    for (const journal of opened.splice(0)) await journal.close();
    await storage?.dispose();
    storage = null;
  });

  async function openJournal(over: JournalStorage): Promise<ReadModelJournal> {
    const journal = over.journal() as ReadModelJournal;
    await journal.open();
    opened.push(journal);
    return journal;
  }

  /** The scenario's events appended in batches of uneven sizes, as group commits would make them. */
  async function journalWithScenario(): Promise<{ journal: ReadModelJournal; scenario: Scenario }> {
    storage = await factory();
    const journal = await openJournal(storage);
    const scenario = tradingScenario();
    const records = toRecords(scenario.events);
    for (let start = 0, size = 1; start < records.length; start += size, size = (size % 7) + 1)
      await journal.append(records.slice(start, start + size));
    return { journal, scenario };
  }

  async function expectMatchesEngine(journal: ReadModelJournal, scenario: Scenario): Promise<void> {
    const snapshot = scenario.engine.snapshot();
    for (const accountId of [scenario.hedging, scenario.netting]) {
      const query = { accountId, limit: 3 };
      const deals = (await allPages((q) => journal.dealHistory(q), query)).rows;
      expect(deals).toEqual(dealsOf(scenario.events, accountId));

      const orders = (await allPages((q) => journal.orderHistory(q), query)).rows;
      expect(orders).toEqual(
        ordersOf(scenario.events, accountId).map((order) => ({
          id: order.id,
          accountId: order.accountId,
          symbol: order.symbol,
          side: order.side,
          type: order.type,
          volume: order.volume,
          filledVolume: order.filledVolume,
          price: order.price,
          stopLimitPrice: order.stopLimitPrice,
          sl: order.sl,
          tp: order.tp,
          timeInForce: order.timeInForce,
          expiration: order.expiration,
          status: order.status,
          statusReason: order.statusReason,
          reason: order.reason,
          clientOrderId: order.clientOrderId,
          comment: order.comment,
          magic: order.magic,
          closePositionId: order.closePositionId,
          createdAt: order.createdAt,
          updatedAt: order.updatedAt,
        })),
      );

      const account = snapshot.accounts.find((candidate) => candidate.id === accountId)!;
      const ledger = (await allPages((q) => journal.ledger(q), query)).rows;
      const sum = (kinds: string[]) =>
        ledger.filter((row) => kinds.includes(row.kind)).reduce((total, row) => total + row.amount, 0);
      expect(sum(["DEPOSIT", "WITHDRAWAL", "CORRECTION", "PROFIT", "COMMISSION", "SWAP"])).toBe(account.balance);
      expect(ledger.at(-1)!.balanceAfter).toBe(account.balance);
      expect(ledger.at(-1)!.creditAfter).toBe(account.credit);
      expect(sum(["CREDIT"])).toBe(account.credit);
      expect(sum(["DEPOSIT"])).toBe(account.ledger.deposits);
      expect(0 - sum(["WITHDRAWAL"])).toBe(account.ledger.withdrawals);
      expect(sum(["PROFIT"])).toBe(account.ledger.realisedProfit);
      expect(0 - sum(["COMMISSION"])).toBe(account.ledger.commissions);
      expect(sum(["SWAP"])).toBe(account.ledger.swaps);
      // Each row's balance follows from the one before it.
      let balance = 0;
      for (const row of ledger) {
        if (row.kind !== "CREDIT") balance += row.amount;
        expect(row.balanceAfter).toBe(balance);
      }

      const positions = (await allPages((q) => journal.positionHistory(q), query)).rows;
      const open = snapshot.positions.filter((position) => position.accountId === accountId);
      expect(positions.filter((row) => row.closeTime === null).map((row) => row.id)).toEqual(
        open.map((position) => position.id).sort((left, right) => left - right),
      );
      for (const row of positions) {
        const outDeals = deals.filter((deal) => deal.positionId === row.id && deal.entry === "OUT");
        const inDeals = deals.filter((deal) => deal.positionId === row.id && deal.entry === "IN");
        expect(row.realisedProfit).toBe(outDeals.reduce((total, deal) => total + deal.profit, 0));
        expect(row.realisedSwap).toBe(outDeals.reduce((total, deal) => total + deal.swap, 0));
        expect(row.commission).toBe([...inDeals, ...outDeals].reduce((total, deal) => total + deal.commission, 0));
        expect(row.openedVolume).toBe(inDeals.reduce((total, deal) => total + deal.volume, 0));
        expect(row.closedVolume).toBe(outDeals.reduce((total, deal) => total + deal.volume, 0));
        const live = open.find((position) => position.id === row.id);
        if (live) {
          expect(row).toMatchObject({
            volume: live.volume,
            openCost: live.openCost,
            margin: live.margin,
            swap: live.swap,
            commission: live.commission,
            sl: live.sl,
            tp: live.tp,
            openTime: live.openTime,
          });
        } else {
          expect(row).toMatchObject({ volume: 0, openCost: 0, margin: 0, swap: 0 });
          expect(row.closedVolume).toBe(row.openedVolume);
          expect(row.closeTime).toBe(outDeals.at(-1)!.time);
        }
      }
    }
  }

  describe("read models", () => {
    it("the scenario covers what the read models must handle", () => {
      const { events } = tradingScenario();
      const deals = events.flatMap((event) => (event.type === "DealExecuted" ? [event.deal] : []));
      expect(deals.some((deal) => deal.reason === "TAKE_PROFIT")).toBe(true);
      expect(deals.some((deal) => deal.reason === "STOP_LOSS")).toBe(true);
      expect(deals.some((deal) => deal.entry === "OUT" && deal.swap !== 0)).toBe(true);
      expect(
        events.some((event) => event.type === "Rollover" && event.charges.some((charge) => charge.amount !== 0)),
      ).toBe(true);
      expect(
        events.some(
          (event) => event.type === "DeferredSwapsCharged" && event.charges.some((charge) => charge.amount !== 0),
        ),
      ).toBe(true);
      expect(events.some((event) => event.type === "OrderChanged")).toBe(true);
    });

    it("orders, deals, positions and the ledger agree with the engine's events and state", async () => {
      const { journal, scenario } = await journalWithScenario();
      await expectMatchesEngine(journal, scenario);
    });

    it("pagination returns every row exactly once, in id order, whatever the page size", async () => {
      const { journal, scenario } = await journalWithScenario();
      const every = (await journal.dealHistory({ accountId: scenario.hedging, limit: MAX_HISTORY_LIMIT })).rows;
      expect(every.length).toBeGreaterThan(5);
      for (const limit of [1, 2, 5, every.length, every.length + 1]) {
        const { rows, pages } = await allPages((q) => journal.dealHistory(q), { accountId: scenario.hedging, limit });
        expect(rows).toEqual(every);
        expect(pages).toBe(Math.max(1, Math.ceil(every.length / limit)));
      }
      const ids = every.map((row) => row.id);
      expect(ids).toEqual([...ids].sort((left, right) => left - right));
    });

    it("filters by time, symbol and account", async () => {
      const { journal, scenario } = await journalWithScenario();
      const all = (await journal.dealHistory({ accountId: scenario.hedging, limit: MAX_HISTORY_LIMIT })).rows;
      const middle = all[Math.floor(all.length / 2)]!.time;
      const before = (await journal.dealHistory({ accountId: scenario.hedging, to: middle, limit: 1000 })).rows;
      const after = (await journal.dealHistory({ accountId: scenario.hedging, from: middle, limit: 1000 })).rows;
      expect([...before, ...after]).toEqual(all);
      expect(before.every((row) => row.time < middle)).toBe(true);
      const jpy = await journal.positionHistory({ accountId: scenario.netting, symbol: "USDJPY" });
      expect(jpy.rows.length).toBe(2);
      expect((await journal.positionHistory({ accountId: scenario.netting, symbol: "EURUSD" })).rows).toEqual([]);
      expect((await journal.orderHistory({ accountId: 999_999 })).rows).toEqual([]);
      const ledger = await journal.ledger({ accountId: scenario.netting, from: 0, to: TUESDAY_NOON });
      expect(ledger).toEqual({ rows: [], nextCursor: null });
    });

    it("a time range in the middle of every history, paged, gives exactly the rows inside it", async () => {
      const { journal, scenario } = await journalWithScenario();
      const histories = [
        [(query: HistoryQuery) => journal.orderHistory(query), (row: { createdAt: number }) => row.createdAt],
        [(query: HistoryQuery) => journal.dealHistory(query), (row: { time: number }) => row.time],
        [(query: HistoryQuery) => journal.positionHistory(query), (row: { openTime: number }) => row.openTime],
        [(query: HistoryQuery) => journal.ledger(query), (row: { time: number }) => row.time],
      ] as const;
      for (const [fetch, timeOf] of histories) {
        for (const accountId of [scenario.hedging, scenario.netting]) {
          const every = (await allPages(fetch as never, { accountId, limit: MAX_HISTORY_LIMIT })).rows;
          const times = [...new Set(every.map((row) => timeOf(row as never)))].sort((left, right) => left - right);
          // Bounds on row times and between them, so both the inclusive and the exclusive end are exercised.
          for (const from of [times[1] ?? 0, (times[1] ?? 0) + 1])
            for (const to of [times.at(-2) ?? 0, (times.at(-2) ?? 0) + 1]) {
              const inside = every.filter((row) => timeOf(row as never) >= from && timeOf(row as never) < to);
              const paged = await allPages(fetch as never, { accountId, from, to, limit: 2 });
              expect(paged.rows).toEqual(inside);
              const newestFirst = await allPages(fetch as never, { accountId, from, to, limit: 2, direction: "desc" });
              expect(newestFirst.rows).toEqual([...inside].reverse());
            }
        }
      }
    });

    // A symbol's pages read an index of their own (found by the audit of complexity of 7 December, sixth session): they
    // must hold what the whole history holds of that symbol, paged, from and to any time. The ledger has no symbol.
    it("a symbol's history, paged and bounded in time, is the whole history's rows of that symbol", async () => {
      const { journal, scenario } = await journalWithScenario();
      const histories = [
        [(query: HistoryQuery) => journal.orderHistory(query), (row: { createdAt: number }) => row.createdAt],
        [(query: HistoryQuery) => journal.dealHistory(query), (row: { time: number }) => row.time],
        [(query: HistoryQuery) => journal.positionHistory(query), (row: { openTime: number }) => row.openTime],
      ] as const;
      let compared = 0;
      for (const [fetch, timeOf] of histories)
        for (const accountId of [scenario.hedging, scenario.netting]) {
          const every = (await allPages(fetch as never, { accountId, limit: MAX_HISTORY_LIMIT })).rows as unknown as {
            symbol: string;
          }[];
          const times = [...new Set(every.map((row) => timeOf(row as never)))].sort((left, right) => left - right);
          for (const symbol of ["EURUSD", "USDJPY", "EURJPY", "XAUUSD"])
            for (const from of [undefined, times[1] ?? 0])
              for (const to of [undefined, (times.at(-2) ?? 0) + 1]) {
                const inside = every.filter(
                  (row) =>
                    row.symbol === symbol &&
                    timeOf(row as never) >= (from ?? 0) &&
                    timeOf(row as never) < (to ?? Number.MAX_SAFE_INTEGER),
                );
                const paged = await allPages(fetch as never, { accountId, symbol, from, to, limit: 2 });
                expect(paged.rows).toEqual(inside);
                const newestFirst = await allPages(fetch as never, {
                  accountId,
                  symbol,
                  from,
                  to,
                  limit: 2,
                  direction: "desc",
                });
                expect(newestFirst.rows).toEqual([...inside].reverse());
                compared += inside.length;
              }
        }
      expect(compared).toBeGreaterThan(20);
      const ledger = await allPages((query) => journal.ledger(query), { accountId: scenario.hedging, limit: 3 });
      expect(
        (await allPages((query) => journal.ledger(query), { accountId: scenario.hedging, symbol: "USDJPY", limit: 3 }))
          .rows,
      ).toEqual(ledger.rows);
    });

    it("pages hundreds of rows of equal times both ways, with and without filters: each row once, newest first the oldest-first rows reversed", async () => {
      storage = await factory();
      const journal = await openJournal(storage);
      const scenario = equalTimesScenario();
      const records = toRecords(scenario.events);
      for (let start = 0, size = 1; start < records.length; start += size, size = (size % 97) + 1)
        await journal.append(records.slice(start, start + size));
      const [first, second, third] = EQUAL_TIME_GROUPS;
      const ranges = [
        {},
        { from: second },
        { to: third },
        { from: second, to: third },
        { from: first + 1, to: third + 1 },
      ];
      const histories = [
        [(query: HistoryQuery) => journal.orderHistory(query), (row: { createdAt: number }) => row.createdAt, true],
        [(query: HistoryQuery) => journal.dealHistory(query), (row: { time: number }) => row.time, true],
        [(query: HistoryQuery) => journal.positionHistory(query), (row: { openTime: number }) => row.openTime, true],
        [(query: HistoryQuery) => journal.ledger(query), (row: { time: number }) => row.time, false],
      ] as const;
      for (const [fetch, timeOf, hasSymbol] of histories) {
        const fetchRows = fetch as (query: HistoryQuery) => Promise<HistoryPage<{ id: number; symbol?: string }>>;
        const whole = (await fetchRows({ accountId: scenario.accountId, limit: MAX_HISTORY_LIMIT })).rows;
        expect(whole.length).toBeGreaterThanOrEqual(EQUAL_TIME_GROUPS.length * ORDERS_PER_GROUP);
        const ids = whole.map((row) => row.id);
        expect(ids).toEqual([...ids].sort((left, right) => left - right));
        for (const range of ranges)
          for (const symbol of hasSymbol ? [undefined, "USDJPY"] : [undefined]) {
            const query = { accountId: scenario.accountId, ...range, ...(symbol === undefined ? {} : { symbol }) };
            const expected = whole.filter(
              (row) =>
                timeOf(row as never) >= (query.from ?? 0) &&
                timeOf(row as never) < (query.to ?? Number.MAX_SAFE_INTEGER) &&
                (symbol === undefined || row.symbol === symbol),
            );
            expect(expected.length, JSON.stringify(query)).toBeGreaterThan(ORDERS_PER_GROUP / 8);
            for (const limit of [5, 64]) {
              const oldestFirst = await allPages(fetchRows, { ...query, limit });
              expect(oldestFirst.rows, JSON.stringify(query)).toEqual(expected);
              const newestFirst = await allPages(fetchRows, { ...query, limit, direction: "desc" });
              expect(newestFirst.rows, JSON.stringify(query)).toEqual([...expected].reverse());
              expect(newestFirst.pages).toBe(Math.max(1, Math.ceil(expected.length / limit)));
            }
          }
      }
      // The other account's rows, between this one's, are its own.
      const others = await allPages((query) => journal.dealHistory(query), {
        accountId: scenario.other,
        limit: 7,
        direction: "desc",
      });
      expect(others.rows.length).toBe(EQUAL_TIME_GROUPS.length * Math.ceil(ORDERS_PER_GROUP / 3));
      expect(others.rows.every((row) => row.accountId === scenario.other)).toBe(true);
    });

    it("a cursor pages on only in the direction of the page that gave it", async () => {
      const { journal, scenario } = await journalWithScenario();
      const accountId = scenario.hedging;
      const oldestFirst = await journal.dealHistory({ accountId, limit: 2 });
      const newestFirst = await journal.dealHistory({ accountId, limit: 2, direction: "desc" });
      await expect(journal.dealHistory({ accountId, cursor: newestFirst.nextCursor })).rejects.toThrow(
        /direction=desc/,
      );
      await expect(
        journal.dealHistory({ accountId, cursor: oldestFirst.nextCursor, direction: "desc" }),
      ).rejects.toThrow(/direction=asc/);
      await expect(journal.dealHistory({ accountId, direction: "sideways" as never })).rejects.toThrow(RangeError);
      // A cursor issued before descending reads existed ("id:" and the page's last id) still pages oldest first.
      const issuedBefore = Buffer.from(`id:${oldestFirst.rows[1]!.id}`, "utf8").toString("base64url");
      expect(await journal.dealHistory({ accountId, limit: 2, cursor: issuedBefore })).toEqual(
        await journal.dealHistory({ accountId, limit: 2, cursor: oldestFirst.nextCursor }),
      );
    });

    it("refuses a limit out of bounds and a cursor it did not issue", async () => {
      const { journal, scenario } = await journalWithScenario();
      const accountId = scenario.hedging;
      await expect(journal.dealHistory({ accountId, limit: 0 })).rejects.toThrow(RangeError);
      await expect(journal.dealHistory({ accountId, limit: MAX_HISTORY_LIMIT + 1 })).rejects.toThrow(RangeError);
      await expect(journal.dealHistory({ accountId, limit: 1.5 })).rejects.toThrow(RangeError);
      await expect(journal.dealHistory({ accountId, cursor: "not a cursor" })).rejects.toThrow(RangeError);
      await expect(journal.dealHistory({ accountId, from: Number.NaN })).rejects.toThrow(RangeError);
    });

    it("a batch the journal refuses leaves the read models untouched", async () => {
      storage = await factory();
      const journal = await openJournal(storage);
      const scenario = tradingScenario();
      const records = toRecords(scenario.events);
      // Up to the first deposit; then a batch with a gap, which the journal refuses whole.
      const deposit = scenario.events.findIndex((event) => event.type === "BalanceOperation");
      await journal.append(records.slice(0, deposit + 1));
      await expect(journal.append(records.slice(deposit + 2))).rejects.toThrow();
      expect((await journal.ledger({ accountId: scenario.hedging })).rows.length).toBe(1);
      expect((await journal.dealHistory({ accountId: scenario.hedging })).rows).toEqual([]);
    });

    it("open() rebuilds read models that lag the journal or reflect a dropped torn tail", async () => {
      const { journal, scenario } = await journalWithScenario();
      await journal.close();
      // As after migration 2 on a journal written before it: empty read models.
      for (const table of ["order_history", "deal_history", "position_history", "balance_ledger", "ledger_balances"])
        await storage!.query(`DELETE FROM ${table}`);
      await storage!.query("UPDATE read_model_progress SET sequence = 0");
      const rebuilt = await openJournal(storage!);
      await expectMatchesEngine(rebuilt, scenario);
      await rebuilt.close();

      // A torn last append (the final deposit's deal, say) is dropped: the read models must forget it too.
      const [lastRow] = await storage!.query("SELECT first_sequence FROM journal ORDER BY first_sequence DESC LIMIT 1");
      const kept = Number(lastRow!.first_sequence) - 1;
      await storage!.query(`UPDATE journal SET checksum = checksum + 1 WHERE first_sequence = ${kept + 1}`);
      const afterTear = await openJournal(storage!);
      expect(await afterTear.lastSequence()).toBe(kept);
      const replayed = TradingEngine.replay(defaultEngineConfig(), scenario.events.slice(0, kept));
      await expectMatchesEngine(afterTear, {
        ...scenario,
        engine: replayed,
        events: scenario.events.slice(0, kept),
      });
    });
  });
}
