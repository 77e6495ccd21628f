/**
 * The SQLite journal's checkpoint thread (started by sqlite-checkpointer.ts): its own connection to the
 * journal's file, on which it runs the PASSIVE checkpoints the journal asks for. A PASSIVE checkpoint never
 * takes the write lock, so the writer goes on appending meanwhile.
 */
import { parentPort, workerData } from "node:worker_threads";
import type { CheckpointerReply, CheckpointerRequest } from "./sqlite-checkpointer.ts";
import { checkpointPassively, openConnection, type SqliteJournalOptions } from "./sqlite-journal.ts";

const port = parentPort;
if (!port) throw new Error("sqlite-checkpointer-worker.ts runs in a worker thread started by SqliteCheckpointer");
const { options } = workerData as { options: SqliteJournalOptions };

const database = openConnection(options);
// This connection never commits; were it to, the commit must not checkpoint on its own either.
database.pragma("wal_autocheckpoint = 0");

function reply(message: CheckpointerReply): void {
  port!.postMessage(message);
}

port.on("message", (request: CheckpointerRequest) => {
  switch (request.kind) {
    case "checkpoint":
      try {
        reply({ kind: "checkpointed", ...checkpointPassively(database) });
      } catch (error) {
        reply({ kind: "failed", message: error instanceof Error ? error.message : String(error) });
      }
      return;
    case "close":
      database.close();
      port!.close();
      return;
  }
});

reply({ kind: "ready" });
