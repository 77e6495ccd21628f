/**
 * The SQLite journal's writer lock: an exclusive lock on a file of its own beside the journal
 * (`<journal>.writer-lock`), held by an open transaction on a connection kept for it. The journal's own file
 * cannot carry it (the writer, checkpointer and derived-data threads have connections of their own to it).
 * SQLite takes the lock with the operating system's advisory locks, which also fence connections within one
 * process, and which the system releases when the process ends however it ends (kill -9 included), so a
 * crashed server never leaves a stale lock behind.
 */
import Database from "better-sqlite3";
import { JournalLockedError } from "./journal.ts";

/** How long `acquire` waits for a process that is still closing the journal to let it go. */
export const WRITER_LOCK_WAIT_MILLISECONDS = 2000;

export class SqliteWriterLock {
  private constructor(private readonly database: Database.Database) {}

  static acquire(journalPath: string, waitMilliseconds = WRITER_LOCK_WAIT_MILLISECONDS): SqliteWriterLock {
    const lockPath = `${journalPath}.writer-lock`;
    const database = new Database(lockPath, { timeout: waitMilliseconds });
    try {
      database.pragma("locking_mode = EXCLUSIVE");
      database.exec("BEGIN EXCLUSIVE");
    } catch (error) {
      database.close();
      if (error instanceof Database.SqliteError && error.code.startsWith("SQLITE_BUSY"))
        throw new JournalLockedError(`${journalPath} (it holds ${lockPath})`);
      throw error;
    }
    return new SqliteWriterLock(database);
  }

  release(): void {
    this.database.close();
  }
}
