/**
 * PostgreSQL refusing new sessions with an answer of its own rather than a socket error: a connection limit reached
 * (53300), a database not accepting connections. Found by the PostgreSQL soak audit of 7 December (ninth session):
 * history pages, the ledger and the account answered 500 while commands answered 503. Runs against
 * BOURSE_TEST_PG_URL with a role of its own whose connection limit the test sets to 0, in schemas of its own.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresJournal, PostgresPlatformStore, StorageUnavailableError } from "../src/index.ts";
import { dropSchema, freshSchemaName, withClient } from "./postgres-test.ts";

const connectionString = process.env.BOURSE_TEST_PG_URL;
if (!connectionString)
  console.warn(
    "postgres-refused-sessions.test.ts: skipped, BOURSE_TEST_PG_URL is unset (e.g. postgres://postgres@127.0.0.1:5432/test)",
  );

const ROLE = `bourse_refused_${process.pid}`;
const platformSchema = freshSchemaName("bourse_refused_platform");
const journalSchema = freshSchemaName("bourse_refused_journal");

/** The test's connection string, signed in as its own role. */
function asRole(): string {
  const url = new URL(connectionString!);
  url.username = ROLE;
  url.password = "";
  return url.toString();
}

const superuser = (sql: string) => withClient(connectionString, (client) => client.query(sql));

/** Ends every session of the role, and waits until the server has let them go. */
async function endRoleSessions(): Promise<void> {
  await superuser(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '${ROLE}'`);
  for (let attempt = 0; attempt < 100; attempt++) {
    const { rows } = await superuser(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = '${ROLE}'`);
    if (rows[0]!.n === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error("the role's sessions did not end");
}

describe.skipIf(!connectionString)("PostgreSQL refusing new sessions (a connection limit reached)", () => {
  let store: PostgresPlatformStore;
  let journal: PostgresJournal;

  beforeAll(async () => {
    const database = new URL(connectionString!).pathname.slice(1);
    await superuser(`CREATE ROLE ${ROLE} LOGIN CONNECTION LIMIT 20`);
    await superuser(`GRANT CONNECT, CREATE ON DATABASE "${database}" TO ${ROLE}`);
    store = new PostgresPlatformStore({ connectionString: asRole(), schema: platformSchema, poolSize: 2 });
    await store.open();
    journal = new PostgresJournal({ connectionString: asRole(), schema: journalSchema, poolSize: 2 });
    await journal.open();
  });

  afterAll(async () => {
    await superuser(`ALTER ROLE ${ROLE} CONNECTION LIMIT 20`);
    await store?.close().catch(() => undefined);
    await journal?.close().catch(() => undefined);
    await endRoleSessions();
    await dropSchema(connectionString, platformSchema);
    await dropSchema(connectionString, journalSchema);
    const database = new URL(connectionString!).pathname.slice(1);
    await superuser(`REVOKE ALL ON DATABASE "${database}" FROM ${ROLE}`);
    await superuser(`DROP OWNED BY ${ROLE}`);
    await superuser(`DROP ROLE ${ROLE}`);
  });

  it("answers StorageUnavailableError, nothing changed, on every path (a faces' 503), and works again after", async () => {
    await superuser(`ALTER ROLE ${ROLE} CONNECTION LIMIT 0`);
    await endRoleSessions();
    const refused = (call: Promise<unknown>) =>
      expect(call).rejects.toSatisfy(
        (error) =>
          error instanceof StorageUnavailableError &&
          !error.outcomeUnknown &&
          /too many connections/.test(error.message) &&
          /nothing was changed/.test(error.message),
      );
    // A statement on the pool, a transaction, and the journal's reads.
    await refused(store.findUserById("nobody"));
    await refused(store.createUser({ id: "u1", email: "u1@example.com", name: "U", passwordHash: "h", createdAt: 1 }));
    await refused(journal.read(0, 10));
    await superuser(`ALTER ROLE ${ROLE} CONNECTION LIMIT 20`);
    expect(await store.findUserById("nobody")).toBeNull();
    expect(await journal.read(0, 10)).toEqual([]);
  });
});
