/**
 * The one PostgreSQL migration runner: in one transaction on `client`, takes an advisory lock (servers
 * starting at once on the same schema: one migrates, the others then find it done), creates the schema
 * when missing, and applies each numbered migration once, in order, recording it in `table`. Refuses a
 * schema newer than this build knows.
 */
import type pg from "pg";

export interface PostgresMigration {
  readonly version: number;
  readonly name: string;
  /** SQL with a placeholder for the schema, filled in by `render`. */
  readonly sql: string;
}

export interface PostgresMigrationRun {
  readonly schema: string;
  readonly table: "schema_migrations" | "platform_migrations";
  /** Names the advisory lock, so the journal's and the platform's migrations do not wait on each other. */
  readonly lockName: string;
  readonly migrations: readonly PostgresMigration[];
  readonly render: (sql: string) => string;
  /** What the version numbers are of, for the error message ("version", "platform version"). */
  readonly what: string;
}

export async function runPostgresMigrations(client: pg.PoolClient, run: PostgresMigrationRun): Promise<void> {
  const quoted = `"${run.schema}"`;
  await client.query("BEGIN");
  await client.query("SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))", [run.lockName, run.schema]);
  // Created only when missing: CREATE SCHEMA IF NOT EXISTS would still demand the CREATE privilege on the
  // database, which a production role given a ready schema need not have.
  const existing = await client.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [run.schema]);
  if (existing.rowCount === 0) await client.query(`CREATE SCHEMA ${quoted}`);
  await client.query(`
    CREATE TABLE IF NOT EXISTS ${quoted}.${run.table} (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at bigint NOT NULL
    )`);
  const applied = new Set(
    (await client.query<{ version: number }>(`SELECT version FROM ${quoted}.${run.table}`)).rows.map(
      (row) => row.version,
    ),
  );
  const newest = Math.max(0, ...applied);
  const known = run.migrations[run.migrations.length - 1]!.version;
  if (newest > known)
    throw new Error(
      `schema ${run.schema} has ${run.what} ${newest}, newer than this build knows (${known}): upgrade it`,
    );
  for (const migration of run.migrations) {
    if (applied.has(migration.version)) continue;
    await client.query(run.render(migration.sql));
    await client.query(`INSERT INTO ${quoted}.${run.table} (version, name, applied_at) VALUES ($1, $2, $3)`, [
      migration.version,
      migration.name,
      Date.now(),
    ]);
  }
  await client.query("COMMIT");
}
