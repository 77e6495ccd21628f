export * from "./journal.ts";
export * from "./checksum.ts";
export {
  MAX_ROW_RECORDS,
  eventAccountId,
  encodeSnapshot,
  encodeSnapshotInSlices,
  type SnapshotRow,
} from "./records.ts";
// Not the connection helpers it shares with its writer thread.
export {
  SqliteJournal,
  type SqliteCheckpoints,
  type SqliteJournalOptions,
  type SqliteWriter,
} from "./sqlite-journal.ts";
export type { CheckpointReport } from "./sqlite-checkpointer.ts";
export * from "./postgres-journal.ts";
export * from "./create-journal.ts";
export * from "./recovery.ts";
export * from "./durable-engine.ts";
export * from "./duration-histogram.ts";
export * from "./verify.ts";
export * from "./read-models.ts";
export * from "./platform-store.ts";
export * from "./sqlite-platform-store.ts";
export * from "./postgres-platform-store.ts";
export * from "./create-platform-store.ts";
export * from "./directories.ts";
export type { AppliedMigration } from "./migrations.ts";
export * from "./postgres-reachable.ts";
