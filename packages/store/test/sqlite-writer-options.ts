import type { SqliteJournalOptions, SqliteWriter } from "../src/index.ts";

/**
 * The options of a SQLite journal written by `writer`. The writer thread runs as the server runs it, with
 * the checkpoints on their own thread, and with a threshold of a few pages so the tests run with copies
 * under way (the server's is 32 MiB, which no test writes).
 */
export function sqliteWriterOptions(
  writer: SqliteWriter,
): Pick<SqliteJournalOptions, "writer" | "checkpoints" | "backgroundCheckpointPages"> {
  return writer === "worker"
    ? { writer, checkpoints: "thread", backgroundCheckpointPages: TEST_CHECKPOINT_PAGES }
    : { writer };
}

export const TEST_CHECKPOINT_PAGES = 8;
