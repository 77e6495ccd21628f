/**
 * The SQLite journal's writer thread (started by sqlite-writer-thread.ts): owns the write connection and
 * does the work of an append that blocks, off the caller's thread: parsing the batch's events back for the
 * read models, their projection, the insert and the COMMIT with its fsync. The same functions as an
 * inline append (`writeBatch`, `writeSnapshot`), so both write alike.
 */
import { parentPort, workerData } from "node:worker_threads";
import { batchRowRecords } from "./records.ts";
import {
  checkpointPassively,
  openConnection,
  prepareStatements,
  writeBatch,
  writeSnapshot,
  type SqliteJournalOptions,
  type SqliteWriteConnection,
} from "./sqlite-journal.ts";
import { SqliteReadModelStatements } from "./sqlite-read-models.ts";
import { describeFailure, type WriterReply, type WriterRequest } from "./sqlite-writer-thread.ts";

const port = parentPort;
if (!port) throw new Error("sqlite-writer-worker.ts runs in a worker thread started by SqliteWriterThread");
const { options } = workerData as { options: SqliteJournalOptions };

const database = openConnection(options);
const connection: SqliteWriteConnection = {
  database,
  statements: prepareStatements(database),
  readModels: new SqliteReadModelStatements(database),
};

function reply(message: WriterReply): void {
  port!.postMessage(message);
}

port.on("message", (request: WriterRequest) => {
  switch (request.kind) {
    case "append": {
      try {
        // A Buffer arrives as a plain Uint8Array (structured clone), which SQLite would not bind: seen as a Buffer again.
        const rows = request.rows.map((row) => {
          const payload: Uint8Array | string = row.payload;
          return typeof payload === "string" || Buffer.isBuffer(payload)
            ? row
            : { ...row, payload: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength) };
        });
        // The rows' payloads are the batch's events as `encodeBatch` wrote them, decoded back for the read models.
        writeBatch(connection, rows, rows.flatMap(batchRowRecords));
        reply({ kind: "written" });
      } catch (error) {
        reply(describeFailure(error));
      }
      return;
    }
    case "saveSnapshot":
      try {
        writeSnapshot(connection.statements, request.row);
        reply({ kind: "written" });
      } catch (error) {
        reply(describeFailure(error));
      }
      return;
    case "checkpoint":
      try {
        checkpointPassively(database);
        reply({ kind: "written" });
      } catch (error) {
        reply(describeFailure(error));
      }
      return;
    case "setMaxPageCount":
      database.pragma(`max_page_count = ${request.pages}`);
      return;
    case "close":
      database.close();
      port!.close();
      return;
  }
});

reply({ kind: "ready" });
