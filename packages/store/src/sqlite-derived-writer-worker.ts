/**
 * The SQLite platform store's derived-data writer thread (started by sqlite-derived-writer.ts): its own
 * connection to the platform file, synchronous=NORMAL, running each request's statements in one transaction.
 */
import Database from "better-sqlite3";
import { parentPort, workerData } from "node:worker_threads";
import type { DerivedWriteReply, DerivedWriteRequest, DerivedWriterOptions } from "./sqlite-derived-writer.ts";
import { constraintKind, runStatements } from "./sqlite-platform-store.ts";

const port = parentPort;
if (!port) throw new Error("sqlite-derived-writer-worker.ts runs in a worker thread started by SqliteDerivedWriter");
const { options } = workerData as { options: DerivedWriterOptions };

const database = new Database(options.path, { timeout: options.busyTimeoutMilliseconds });
// The calling thread's connection set WAL and migrated the file before this thread started.
database.pragma("synchronous = NORMAL");
database.pragma("foreign_keys = ON");
const begin = database.prepare("BEGIN IMMEDIATE");
const commit = database.prepare("COMMIT");
const rollback = database.prepare("ROLLBACK");
/** Prepared statements by SQL text; the texts are the store's own (a few shapes), so this stays small. */
const statements = new Map<string, Database.Statement>();

function statement(sql: string): Database.Statement {
  let prepared = statements.get(sql);
  if (!prepared) statements.set(sql, (prepared = database.prepare(sql)));
  return prepared;
}

function reply(message: DerivedWriteReply): void {
  port!.postMessage(message);
}

port.on("message", (request: DerivedWriteRequest) => {
  if (request.kind === "close") {
    database.close();
    port!.close();
    return;
  }
  try {
    begin.run();
    const rows = runStatements(statement, request.statements);
    commit.run();
    reply({ kind: "written", rows });
  } catch (error) {
    if (database.inTransaction) rollback.run();
    reply({ kind: "refused", constraint: constraintKind(error), message: String((error as Error)?.message ?? error) });
  }
});

reply({ kind: "ready" });
