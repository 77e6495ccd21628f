/**
 * The PlatformStore contract against a real PostgreSQL (BOURSE_TEST_PG_URL; `.ci/run` sets it to the local
 * server), each test in a schema of its own that is dropped afterwards.
 */
import { describe, expect, it } from "vitest";
import { PostgresJournal, PostgresPlatformStore } from "../src/index.ts";
import { platformStoreContract, type PlatformStorage } from "./platform-store.contract.ts";
import { dropSchema, freshSchemaName } from "./postgres-test.ts";

const connectionString = process.env.BOURSE_TEST_PG_URL;
if (!connectionString)
  console.warn(
    "PostgresPlatformStore tests skipped: BOURSE_TEST_PG_URL is unset (e.g. postgres://postgres@127.0.0.1:5432/test)",
  );

async function postgresStorage(): Promise<PlatformStorage> {
  const schema = freshSchemaName("bourse_platform_test");
  return {
    store: () => new PostgresPlatformStore({ connectionString: connectionString!, schema, poolSize: 4 }),
    dispose: () => dropSchema(connectionString, schema),
  };
}

describe.skipIf(!connectionString)("PostgresPlatformStore", () => {
  platformStoreContract(postgresStorage);

  describe("PostgreSQL only", () => {
    it("shares a schema with the journal without clashing", async () => {
      const schema = freshSchemaName("bourse_platform_test");
      try {
        const journal = new PostgresJournal({ connectionString: connectionString!, schema });
        await journal.open();
        const store = new PostgresPlatformStore({ connectionString: connectionString!, schema });
        await store.open();
        await store.createUser({ id: "u", email: "u@example.com", name: "U", passwordHash: "h", createdAt: 1 });
        expect((await store.findUserById("u"))?.name).toBe("U");
        expect(await journal.lastSequence()).toBe(0);
        await store.close();
        await journal.close();
      } finally {
        await dropSchema(connectionString, schema);
      }
    });

    it("two stores opening a new schema at once both succeed (migrations serialise)", async () => {
      const schema = freshSchemaName("bourse_platform_test");
      try {
        const stores = [1, 2, 3].map(() => new PostgresPlatformStore({ connectionString: connectionString!, schema }));
        await Promise.all(stores.map((store) => store.open()));
        await Promise.all(stores.map((store) => store.close()));
      } finally {
        await dropSchema(connectionString, schema);
      }
    });

    it("refuses a schema name that is not a plain identifier", () => {
      expect(
        () => new PostgresPlatformStore({ connectionString: connectionString!, schema: 'x"; DROP TABLE y; --' }),
      ).toThrow(RangeError);
    });
  });
});
