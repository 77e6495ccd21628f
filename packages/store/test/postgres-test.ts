/**
 * What the PostgreSQL tests share: a schema name no other run or test uses, a short-lived client of its own, and
 * dropping a test's schema.
 */
import pg from "pg";

let schemaCounter = 0;

/** A schema name no other run or test uses, starting with `prefix`. */
export function freshSchemaName(prefix: string): string {
  schemaCounter++;
  return `${prefix}_${process.pid}_${Date.now()}_${schemaCounter}`;
}

/** Runs `work` on a client of its own, connected to `connectionString` and ended afterwards. */
export async function withClient<T>(
  connectionString: string | undefined,
  work: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

export async function dropSchema(connectionString: string | undefined, schema: string): Promise<void> {
  await withClient(connectionString, (client) => client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`));
}
