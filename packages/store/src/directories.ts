/**
 * `mkdir -p` for the data directory and the database files' folders. Node 20's `mkdirSync(path, { recursive: true })`
 * never returns for a path it cannot create under a folder that refuses new entries with ENOENT (any path under
 * `/proc`): BOURSE_DATA_DIR=/proc/x hung the start. This creates each missing folder in turn, so such a path fails
 * at once with the system's error.
 */
import { closeSync, existsSync, mkdirSync, openSync } from "node:fs";
import path from "node:path";

/** `mode`: the directory's own, when this makes it (the folders above it get the default). */
export function makeDirectories(directory: string, mode?: number): void {
  const missing: string[] = [];
  for (let current = path.resolve(directory); !existsSync(current); current = path.dirname(current)) {
    missing.push(current);
    if (path.dirname(current) === current) break;
  }
  const target = path.resolve(directory);
  for (const folder of missing.reverse()) {
    try {
      mkdirSync(folder, folder === target && mode !== undefined ? { mode } : {});
    } catch (error) {
      // Made meanwhile by another process (two commands starting at once): what was asked for is there.
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
  }
}

/**
 * A SQLite database file's folder (private, 0700, when this makes it) and the file itself, private (0600) when it is
 * new: it holds emails, password hashes, sessions and balances, and SQLite gives its -wal and -shm files the database
 * file's permissions. Found by the audit of an operator's journey of 7 December (sixth session): a database named by
 * BOURSE_DATABASE_URL outside the data directory was created 0644, in folders of 0755, readable by every local user.
 */
export function makeDatabaseFile(file: string): void {
  makeDirectories(path.dirname(file), 0o700);
  if (!existsSync(file)) closeSync(openSync(file, "a", 0o600));
}
