/**
 * The projection (read-models.ts) beside the drivers' upserts: a row that exists is only ever changed in
 * the columns the upserts update (ORDER_CHANGING_COLUMNS and the others), or the drivers would lose a change.
 */
import { describe, expect, it } from "vitest";
import {
  BALANCE_CHANGING_COLUMNS,
  ORDER_CHANGING_COLUMNS,
  POSITION_CHANGING_COLUMNS,
  projectBatch,
  projectionKeys,
  type LedgerBalanceRow,
  type OrderHistoryRow,
  type PositionHistoryRow,
} from "../src/index.ts";
import { tradingScenario } from "./read-models.contract.ts";
import { toRecords } from "./trading-session.ts";

function changedColumns(before: object, after: object): string[] {
  const old = before as Record<string, unknown>;
  return Object.entries(after)
    .filter(([column, value]) => old[column] !== value)
    .map(([column]) => column);
}

describe("projectBatch", () => {
  it("changes an existing row only in the columns the drivers' upserts update", () => {
    const orders = new Map<number, OrderHistoryRow>();
    const positions = new Map<number, PositionHistoryRow>();
    const balances = new Map<number, LedgerBalanceRow>();
    const changed = { orders: new Set<string>(), positions: new Set<string>(), balances: new Set<string>() };
    // One event per batch: every row an event touches was written by an earlier batch, as in the worst case.
    for (const record of toRecords(tradingScenario().events)) {
      const keys = projectionKeys([record]);
      const output = projectBatch([record], {
        orders: keys.orderIds.flatMap((id) => orders.get(id) ?? []),
        positions: keys.positionIds.flatMap((id) => positions.get(id) ?? []),
        balances: keys.accountIds.flatMap((id) => balances.get(id) ?? []),
      });
      for (const row of output.orders) {
        const before = orders.get(row.id);
        if (before) for (const column of changedColumns(before, row)) changed.orders.add(column);
        orders.set(row.id, row);
      }
      for (const row of output.positions) {
        const before = positions.get(row.id);
        if (before) for (const column of changedColumns(before, row)) changed.positions.add(column);
        positions.set(row.id, row);
      }
      for (const row of output.balances) {
        const before = balances.get(row.accountId);
        if (before) for (const column of changedColumns(before, row)) changed.balances.add(column);
        balances.set(row.accountId, row);
      }
    }
    expect(
      [...changed.orders].filter((column) => !(ORDER_CHANGING_COLUMNS as readonly string[]).includes(column)),
    ).toEqual([]);
    expect(
      [...changed.positions].filter((column) => !(POSITION_CHANGING_COLUMNS as readonly string[]).includes(column)),
    ).toEqual([]);
    expect(
      [...changed.balances].filter((column) => !(BALANCE_CHANGING_COLUMNS as readonly string[]).includes(column)),
    ).toEqual([]);
    // The scenario exercises the updates at all (not an empty check).
    expect(changed.orders.size).toBeGreaterThan(2);
    expect(changed.positions.size).toBeGreaterThan(5);
  });
});

describe("projectionKeys", () => {
  it("lists the rows a batch refers to that existed before it, not those it creates first", () => {
    const records = toRecords(tradingScenario().events);
    // All at once: everything the scenario refers to, it created itself.
    expect(projectionKeys(records)).toEqual({ orderIds: [], positionIds: [], accountIds: [] });
    // One event at a time: what an event changes without creating it comes from an earlier batch.
    const referred = { orders: 0, positions: 0, accounts: 0 };
    for (const record of records) {
      const keys = projectionKeys([record]);
      referred.orders += keys.orderIds.length;
      referred.positions += keys.positionIds.length;
      referred.accounts += keys.accountIds.length;
    }
    expect(referred.orders).toBeGreaterThan(5);
    expect(referred.positions).toBeGreaterThan(5);
    expect(referred.accounts).toBeGreaterThan(5);
  });
});
