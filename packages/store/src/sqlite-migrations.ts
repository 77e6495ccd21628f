/**
 * The one SQLite migration runner: applies each numbered migration once, in order, recording it in
 * `table`, and refuses a database whose schema is newer than this build knows.
 */
import type Database from "better-sqlite3";
import { assertInspectable, schemaAhead, type AppliedMigration } from "./migrations.ts";

export interface SqliteMigration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

/**
 * Answers the migrations it applied, in order (none when the schema was this build's already).
 * `apply` false: an inspection, which changes no schema and refuses one that is not this build's (`assertInspectable`).
 */
export function runSqliteMigrations(
  database: Database.Database,
  table: "schema_migrations" | "platform_migrations",
  migrations: readonly SqliteMigration[],
  what: string,
  apply = true,
): readonly AppliedMigration[] {
  const known = migrations[migrations.length - 1]!.version;
  if (!apply) {
    const recorded =
      database.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table) !== undefined;
    const newest = recorded
      ? (database.prepare<[], { newest: number | null }>(`SELECT max(version) AS newest FROM ${table}`).get()?.newest ??
        0)
      : 0;
    assertInspectable(what, newest, known);
    return [];
  }
  database.exec(`
    CREATE TABLE IF NOT EXISTS ${table} (
      version INTEGER PRIMARY KEY,
      name TEXT NOT NULL,
      applied_at INTEGER NOT NULL
    )
  `);
  const run = database.transaction((): AppliedMigration[] => {
    const applied = new Set(
      database
        .prepare<[], { version: number }>(`SELECT version FROM ${table}`)
        .all()
        .map((row) => row.version),
    );
    const newest = Math.max(0, ...applied);
    if (newest > known) throw schemaAhead(what, newest, known);
    const record = database.prepare(`INSERT INTO ${table} (version, name, applied_at) VALUES (?, ?, ?)`);
    const appliedNow: AppliedMigration[] = [];
    for (const migration of migrations) {
      if (applied.has(migration.version)) continue;
      database.exec(migration.sql);
      record.run(migration.version, migration.name, Date.now());
      appliedNow.push({ version: migration.version, name: migration.name });
    }
    return appliedNow;
  });
  // IMMEDIATE: two processes opening the same new file must not both try to create the tables.
  return run.immediate();
}
