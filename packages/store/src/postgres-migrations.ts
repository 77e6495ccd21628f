/**
 * The one PostgreSQL migration runner: in one transaction on `client`, takes an advisory lock (servers
 * starting at once on the same schema: one migrates, the others then find it done), creates the schema
 * when missing, and applies each numbered migration once, in order, recording it in `table`. Refuses a
 * schema newer than this build knows. Answers the migrations it applied, in order (none for an inspection, or when the
 * schema was this build's already).
 */
import pg from "pg";
import { assertInspectable, schemaAhead, type AppliedMigration } from "./migrations.ts";
import { KEEPALIVE_INITIAL_DELAY_MILLISECONDS } from "./postgres-timeouts.ts";

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
  /** What the migrations are of, for messages ("the journal", "the platform tables"). */
  readonly what: string;
  /** False for an inspection: it changes nothing and refuses a schema that is not this build's (`assertInspectable`). */
  readonly apply?: boolean;
}

/** Where the migrations' own connection goes. */
export interface PostgresMigrationConnection {
  readonly connectionString: string;
  readonly connectTimeoutMilliseconds: number;
  readonly applicationName: string;
}

function ignoreClientError(): void {
  // The failed query reports the error.
}

/**
 * Runs the migrations on a connection of their own, opened for them and closed after (a failure rolls back with
 * it). Not a pooled one: the pools' connections carry a statement timeout (postgres-timeouts.ts), and a migration may
 * rewrite a large table, or wait on the advisory lock while another server migrates, for longer than that.
 */
export async function runPostgresMigrationsOnOwnConnection(
  connection: PostgresMigrationConnection,
  run: PostgresMigrationRun,
): Promise<readonly AppliedMigration[]> {
  const client = new pg.Client({
    connectionString: connection.connectionString,
    connectionTimeoutMillis: connection.connectTimeoutMilliseconds,
    application_name: connection.applicationName,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_INITIAL_DELAY_MILLISECONDS,
  });
  // A connection that dies mid-migration fails its query; this copy of the error would be thrown uncaught.
  client.on("error", ignoreClientError);
  try {
    await client.connect();
    return await runPostgresMigrations(client, run);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function runPostgresMigrations(
  client: pg.ClientBase,
  run: PostgresMigrationRun,
): Promise<readonly AppliedMigration[]> {
  const quoted = `"${run.schema}"`;
  if (run.apply === false) {
    await checkPostgresSchema(client, run);
    return [];
  }
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
  if (newest > known) throw schemaAhead(`${run.what} of schema ${run.schema}`, newest, known);
  const appliedNow: AppliedMigration[] = [];
  for (const migration of run.migrations) {
    if (applied.has(migration.version)) continue;
    await client.query(run.render(migration.sql));
    await client.query(`INSERT INTO ${quoted}.${run.table} (version, name, applied_at) VALUES ($1, $2, $3)`, [
      migration.version,
      migration.name,
      Date.now(),
    ]);
    appliedNow.push({ version: migration.version, name: migration.name });
  }
  await client.query("COMMIT");
  return appliedNow;
}

/**
 * An inspection's check (`apply: false`): reads the recorded versions, runs no DDL (PostgreSQL checks the CREATE
 * privilege even for CREATE TABLE IF NOT EXISTS, which a read-only role lacks: found by the review of 7 December), and
 * refuses a schema that is missing or not this build's.
 */
async function checkPostgresSchema(client: pg.ClientBase, run: PostgresMigrationRun): Promise<void> {
  const subject = `${run.what} of schema ${run.schema}`;
  const table = `"${run.schema}".${run.table}`;
  const { rows } = await client.query<{ found: string | null }>("SELECT to_regclass($1) AS found", [table]);
  if (rows[0]?.found === null || rows[0]?.found === undefined)
    throw new Error(`${subject}: no such tables in this database, nothing to inspect (is the schema's name right?)`);
  const { rows: versions } = await client.query<{ newest: number | null }>(
    `SELECT max(version) AS newest FROM ${table}`,
  );
  const newest = versions[0]?.newest ?? 0;
  assertInspectable(subject, newest, run.migrations[run.migrations.length - 1]!.version);
}
