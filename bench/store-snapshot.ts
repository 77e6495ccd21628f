/**
 * store.snapshot: what a snapshot of a large book costs the engine's thread. `DurableEngine` takes one every
 * 100,000 events (or 5 minutes): it copies the durable state (`TradingEngine.snapshot`), hashes it and encodes
 * the journal's row (`encodeSnapshot`: exactness check, JSON, checksum), synchronously, between two batches,
 * so no command runs meanwhile. Restoring one (`TradingEngine.fromSnapshot`) is what recovery and the
 * durable engine's read follower pay at start. Baseline: `JSON.stringify` of the same snapshot, the floor of
 * writing it down at all. The book: bench/engine.ts's loaded book (2,000 accounts, 100,000 working orders,
 * 20,000 positions with SL/TP).
 */
import { TradingEngine } from "@bourse/core";
import { encodeSnapshot } from "../packages/store/src/records.ts";
import { buildLoadedBook } from "./engine.ts";
import { measureTogether, row, type BenchContext, type BenchGroup, type Row } from "./harness.ts";

function snapshotBenchmarks(context: BenchContext): Row[] {
  context.log("store: building the loaded book (2,000 accounts, 100,000 working orders, 20,000 positions)...");
  const book = buildLoadedBook();
  const snapshot = book.engine.snapshot();
  let sequence = 0;
  const [floor, take, restore] = measureTogether(
    [
      { name: "JSON.stringify of the snapshot (the floor)", fn: () => (JSON.stringify(snapshot).length > 0 ? 1 : 0) },
      {
        name: "take a snapshot on the engine's thread (copy, state hash, encode the row)",
        fn: () => {
          const state = book.engine.snapshot();
          const row = encodeSnapshot({ sequence: ++sequence, stateHash: book.engine.stateHash(), state, createdAt: 0 });
          return row.payload.length > 0 ? 1 : 0;
        },
      },
      {
        name: "restore a snapshot (TradingEngine.fromSnapshot)",
        fn: () => (TradingEngine.fromSnapshot(book.engine.config, snapshot).state.orders.size > 0 ? 1 : 0),
      },
    ],
    { warmupRuns: 1, runs: 5 },
  );
  const milliseconds = (perSecond: number) => `${(1000 / perSecond).toFixed(0)} ms each`;
  const bookSize = `${book.pendingOrders} working orders, ${book.positions} positions`;
  return [
    row("store.snapshot", "snapshots/s", take!, floor!, {
      note: `${milliseconds(take!.perSecond)}: the engine's thread runs no command meanwhile; ${bookSize}; the floor ${milliseconds(floor!.perSecond)}`,
    }),
    row("store.snapshot", "snapshots/s", restore!, floor!, {
      note: `${milliseconds(restore!.perSecond)}: recovery from a snapshot, and the durable engine's read follower at start and after a rebuild`,
    }),
  ];
}

export const storeSnapshotGroup: BenchGroup = {
  name: "store.snapshot",
  description: "a snapshot of a large book: taken on the engine's thread, and restored",
  run: (context) => Promise.resolve(snapshotBenchmarks(context)),
};
