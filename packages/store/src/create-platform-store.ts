import { isPostgresUrl } from "./create-journal.ts";
import type { PlatformStore } from "./platform-store.ts";
import { PostgresPlatformStore } from "./postgres-platform-store.ts";
import { SqlitePlatformStore } from "./sqlite-platform-store.ts";

export interface CreatePlatformStoreOptions {
  /** PostgreSQL only: the schema the tables live in (default "bourse"). */
  readonly postgresSchema?: string;
  /** PostgreSQL only: the pool's connections (default 4). */
  readonly postgresPoolSize?: number;
  /** SQLite only: who writes notifications and candles (SqlitePlatformStoreOptions.derivedWrites). */
  readonly sqliteDerivedWrites?: "inline" | "worker";
}

/**
 * The platform store a URL names: `postgres://…` or `postgresql://…` is PostgreSQL, anything else is the
 * path of a SQLite file (or ':memory:'). Call `open()` on the result before using it.
 */
export function createPlatformStore(url: string, options: CreatePlatformStoreOptions = {}): PlatformStore {
  if (isPostgresUrl(url))
    return new PostgresPlatformStore({
      connectionString: url,
      schema: options.postgresSchema,
      poolSize: options.postgresPoolSize,
    });
  return new SqlitePlatformStore({ path: url, derivedWrites: options.sqliteDerivedWrites });
}
