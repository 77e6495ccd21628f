/**
 * `mkdir -p` for the data directory and the database files' folders. Node 20's `mkdirSync(path, { recursive: true })`
 * never returns for a path it cannot create under a folder that refuses new entries with ENOENT (any path under
 * `/proc`): BOURSE_DATA_DIR=/proc/x hung the start. This creates each missing folder in turn, so such a path fails
 * at once with the system's error.
 */
import { existsSync, mkdirSync } from "node:fs";
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
