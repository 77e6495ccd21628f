/**
 * store.snapshot: what a snapshot of a large book costs the engine's thread. `DurableEngine` takes one every
 * 100,000 events (or 5 minutes): it copies the durable state (`TradingEngine.snapshot`) between two batches,
 * then hashes the copy and encodes the journal's row (exactness check, JSON, checksum) in slices of a few
 * milliseconds (`encodeSnapshotInSlices`); in one go (`encodeSnapshot`) no command would run meanwhile. Restoring one (`TradingEngine.fromSnapshot`) is what recovery and the
 * durable engine's read follower pay at start. Baseline: `JSON.stringify` of the same snapshot, the floor of
 * writing it down at all. The book: bench/engine.ts's loaded book (2,000 accounts, 100,000 working orders,
 * 20,000 positions with SL/TP).
 */
import { TradingEngine } from "@bourse/core";
import { encodeSnapshot, encodeSnapshotInSlices } from "@bourse/store";
import { buildLoadedBook } from "./engine.ts";
import { measureTogetherAsync, row, type BenchContext, type BenchGroup, type Row } from "./harness.ts";

async function snapshotBenchmarks(context: BenchContext): Promise<Row[]> {
  context.log("store: building the loaded book (2,000 accounts, 100,000 working orders, 20,000 positions)...");
  const book = buildLoadedBook();
  const snapshot = book.engine.snapshot();
  let sequence = 0;
  /** Of each sliced run: the copy, and the longest slice after it (the engine's longest stops). */
  const copyMilliseconds: number[] = [];
  const longestSliceMilliseconds: number[] = [];
  const [floor, take, sliced, restore] = await measureTogetherAsync(
    [
      { name: "JSON.stringify of the snapshot (the floor)", fn: () => (JSON.stringify(snapshot).length > 0 ? 1 : 0) },
      {
        name: "take a snapshot in one go (copy, state hash, encode the row)",
        fn: () => {
          const state = book.engine.snapshot();
          const row = encodeSnapshot({ sequence: ++sequence, stateHash: book.engine.stateHash(), state, createdAt: 0 });
          return row.payload.length > 0 ? 1 : 0;
        },
      },
      {
        name: "take a snapshot as the durable engine does (copy, then hash and encode in slices)",
        fn: async () => {
          const copyStart = performance.now();
          const state = book.engine.snapshot();
          let sliceStart = performance.now();
          copyMilliseconds.push(sliceStart - copyStart);
          let longest = 0;
          const row = await encodeSnapshotInSlices(
            { sequence: ++sequence, state, createdAt: 0 },
            {
              pause: async () => {
                longest = Math.max(longest, performance.now() - sliceStart);
                await new Promise((resolve) => setImmediate(resolve));
                sliceStart = performance.now();
              },
            },
          );
          longestSliceMilliseconds.push(Math.max(longest, performance.now() - sliceStart));
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
  const most = (values: readonly number[]) => Math.max(...values).toFixed(1);
  return [
    row("store.snapshot", "snapshots/s", take!, floor!, {
      note: `${milliseconds(take!.perSecond)}, all of it a stop of the engine's thread; ${bookSize}; the floor ${milliseconds(floor!.perSecond)}`,
    }),
    row("store.snapshot", "snapshots/s", sliced!, floor!, {
      note: `${milliseconds(sliced!.perSecond)} in all; the engine's thread stops for the copy (up to ${most(copyMilliseconds)} ms) and then at most ${most(longestSliceMilliseconds)} ms at a time`,
    }),
    row("store.snapshot", "snapshots/s", restore!, floor!, {
      note: `${milliseconds(restore!.perSecond)}: recovery from a snapshot, and the durable engine's read follower at start and after a rebuild`,
    }),
  ];
}

export const storeSnapshotGroup: BenchGroup = {
  name: "store.snapshot",
  description: "a snapshot of a large book: taken in one go and in slices, and restored",
  run: (context) => snapshotBenchmarks(context),
};
