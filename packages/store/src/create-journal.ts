import type { EventJournal } from "./journal.ts";
import type { ReadModels } from "./read-models.ts";
import { PostgresJournal } from "./postgres-journal.ts";
import { SqliteJournal } from "./sqlite-journal.ts";

export interface CreateJournalOptions {
  /** PostgreSQL only: the schema the tables live in (default "bourse"). */
  readonly postgresSchema?: string;
}

/** Whether a storage URL names PostgreSQL (`postgres://…`, `postgresql://…`); anything else is a SQLite path. */
export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//i.test(url);
}

/**
 * The journal a URL names: `postgres://…` or `postgresql://…` is PostgreSQL, anything else is the path
 * of a SQLite file (or ':memory:'). Call `open()` on the result before using it.
 * Either driver serves the read models it writes in its transactions.
 */
export function createJournal(url: string, options: CreateJournalOptions = {}): EventJournal & ReadModels {
  if (isPostgresUrl(url)) return new PostgresJournal({ connectionString: url, schema: options.postgresSchema });
  return new SqliteJournal({ path: url });
}
