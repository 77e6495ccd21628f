/**
 * The one SQLite migration runner: applies each numbered migration once, in order, recording it in
 * `table`, and refuses a database whose schema is newer than this build knows.
 */
import type Database from "better-sqlite3";

export interface SqliteMigration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export function runSqliteMigrations(
  database: Database.Database,
  table: "schema_migrations" | "platform_migrations",
  migrations: readonly SqliteMigration[],
  what: string,
): void {
  database.exec(`
    CREATE TABLE IF NOT EXISTS ${table} (
      version INTEGER PRIMARY KEY,
      name TEXT NOT NULL,
      applied_at INTEGER NOT NULL
    )
  `);
  const run = database.transaction(() => {
    const applied = new Set(
      database
        .prepare<[], { version: number }>(`SELECT version FROM ${table}`)
        .all()
        .map((row) => row.version),
    );
    const newest = Math.max(0, ...applied);
    const known = migrations[migrations.length - 1]!.version;
    if (newest > known)
      throw new Error(`${what} has schema version ${newest}, newer than this build knows (${known}): upgrade it`);
    const record = database.prepare(`INSERT INTO ${table} (version, name, applied_at) VALUES (?, ?, ?)`);
    for (const migration of migrations) {
      if (applied.has(migration.version)) continue;
      database.exec(migration.sql);
      record.run(migration.version, migration.name, Date.now());
    }
  });
  // IMMEDIATE: two processes opening the same new file must not both try to create the tables.
  run.immediate();
}
