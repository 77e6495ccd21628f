/**
 * Server settings from the environment (a configuration file joins them with the server, issue 4).
 * Unset BOURSE_DATABASE_URL means the embedded SQLite database in the data directory.
 */
import { isPostgresUrl, waitForPostgres, type AppliedMigration } from "@bourse/store";
import path from "node:path";

export interface StorageSettings {
  readonly dataDirectory: string;
  /** A `postgres://` URL, or the path of the SQLite journal file. */
  readonly databaseUrl: string;
  /**
   * Where users, sessions, keys and the rest live: the same PostgreSQL database, or, on SQLite, a file of
   * its own beside the journal so their writes never wait on the journal's write lock.
   */
  readonly platformDatabaseUrl: string;
  /**
   * How long a start (and the storage commands) go on trying to reach PostgreSQL while it cannot be reached
   * (BOURSE_DATABASE_CONNECT_TIMEOUT_SECONDS); 0: one attempt. Unused with SQLite.
   */
  readonly databaseConnectTimeoutSeconds: number;
  /**
   * PostgreSQL: the connections of each pool, the journal's (appends, reads, history pages) and the platform data's
   * (BOURSE_DATABASE_POOL_SIZE); the server holds twice this and one for the journal's writer lock. Unused with SQLite.
   */
  readonly databasePoolSize: number;
}

/** BOURSE_DATABASE_POOL_SIZE's default. */
export const DEFAULT_DATABASE_POOL_SIZE = 4;

/**
 * BOURSE_DATABASE_CONNECT_TIMEOUT_SECONDS's default: long enough for a database started beside the server (a
 * container, a machine booting) to come up, short enough that a wrong host does not keep a supervisor waiting long.
 */
export const DEFAULT_DATABASE_CONNECT_TIMEOUT_SECONDS = 30;

export function storageSettings(
  environment: NodeJS.ProcessEnv = process.env,
  databaseConnectTimeoutSeconds = DEFAULT_DATABASE_CONNECT_TIMEOUT_SECONDS,
  databasePoolSize = DEFAULT_DATABASE_POOL_SIZE,
): StorageSettings {
  const dataDirectory = path.resolve(environment.BOURSE_DATA_DIR ?? "data");
  const databaseUrl = environment.BOURSE_DATABASE_URL ?? path.join(dataDirectory, "bourse.sqlite");
  const platformDatabaseUrl = environment.BOURSE_DATABASE_URL ?? path.join(dataDirectory, "platform.sqlite");
  return { dataDirectory, databaseUrl, platformDatabaseUrl, databaseConnectTimeoutSeconds, databasePoolSize };
}

/** A database URL fit for a log line: a PostgreSQL password is never printed. */
export function describeDatabase(databaseUrl: string): string {
  if (!isPostgresUrl(databaseUrl)) return `SQLite ${databaseUrl}`;
  const url = new URL(databaseUrl);
  if (url.password) url.password = "***";
  // pg also takes a password (and a TLS key's) from the query string, by its decoded name, the last one given.
  for (const name of ["password", "sslpassword"]) if (url.searchParams.has(name)) url.searchParams.set(name, "***");
  return `PostgreSQL ${url.toString()}`;
}

/**
 * What opening a schema did, for `bourse migrate` and the start's log: the migrations applied, by number and name, or
 * that there was nothing to apply. `schema`: "journal schema", "platform schema".
 */
export function describeMigrations(schema: string, applied: readonly AppliedMigration[]): string {
  if (applied.length === 0) return `${schema} up to date (nothing to apply)`;
  const list = applied.map(({ version, name }) => `${version} "${name}"`).join(", ");
  return `${schema} migrated: applied ${applied.length === 1 ? "migration" : "migrations"} ${list}`;
}

/**
 * Waits for the PostgreSQL the storage settings name, if any, while it cannot be reached (`waitForPostgres`), for
 * BOURSE_DATABASE_CONNECT_TIMEOUT_SECONDS, telling `onRetry` of each failed attempt, until `signal` ends it. SQLite
 * needs no wait.
 */
export async function waitForDatabases(
  storage: StorageSettings,
  onRetry: (line: string) => void,
  signal?: AbortSignal,
): Promise<void> {
  for (const url of new Set([storage.databaseUrl, storage.platformDatabaseUrl]))
    if (isPostgresUrl(url))
      await waitForPostgres(url, { timeoutMs: storage.databaseConnectTimeoutSeconds * 1000, onRetry, signal });
}
