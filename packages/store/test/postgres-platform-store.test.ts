/**
 * The PlatformStore contract against a real PostgreSQL (BOURSE_TEST_PG_URL; `.ci/run` sets it to the local
 * server), each test in a schema of its own that is dropped afterwards.
 */
import { describe, expect, it } from "vitest";
import { PostgresJournal, PostgresPlatformStore } from "../src/index.ts";
import { platformStoreContract, type PlatformStorage } from "./platform-store.contract.ts";
import { dropSchema, freshSchemaName, withClient } from "./postgres-test.ts";

const connectionString = process.env.BOURSE_TEST_PG_URL;
if (!connectionString)
  console.warn(
    "PostgresPlatformStore tests skipped: BOURSE_TEST_PG_URL is unset (e.g. postgres://postgres@127.0.0.1:5432/test)",
  );

interface PlanNode {
  readonly "Node Type": string;
  readonly "Relation Name"?: string;
  readonly "Index Name"?: string;
  readonly "Index Cond"?: string;
  readonly Plans?: readonly PlanNode[];
}

/** A plan's reads of tables, in the words of SQLite's EXPLAIN QUERY PLAN (PlatformStorage.plan). */
function planLines(node: PlanNode, lines: string[] = []): string[] {
  const table = node["Relation Name"];
  const index =
    node["Index Name"] ?? node.Plans?.find((child) => child["Node Type"] === "Bitmap Index Scan")?.["Index Name"];
  if (node["Node Type"] === "Seq Scan") lines.push(`SCAN ${table}`);
  else if (table !== undefined && index !== undefined) {
    const cond = node["Index Cond"] ?? node.Plans?.find((child) => child["Index Name"] === index)?.["Index Cond"];
    lines.push(
      cond === undefined ? `SCAN ${table} USING INDEX ${index}` : `SEARCH ${table} USING INDEX ${index} ${cond}`,
    );
  }
  for (const child of node.Plans ?? []) if (child["Node Type"] !== "Bitmap Index Scan") planLines(child, lines);
  return lines;
}

/**
 * The plan of `sql` with sequential scans disabled: a test's tables hold a few rows, where one is cheapest whatever
 * the indexes, so a plan with one left means no index could serve.
 */
async function postgresPlan(sql: string, params: readonly unknown[]): Promise<string[]> {
  let n = 0;
  const text = sql.replace(/\?/g, () => `$${++n}`);
  return withClient(connectionString, async (client) => {
    await client.query("SET enable_seqscan = off");
    const { rows } = await client.query<{ "QUERY PLAN": { Plan: PlanNode }[] }>(
      `EXPLAIN (FORMAT JSON) ${text}`,
      params as unknown[],
    );
    return planLines(rows[0]!["QUERY PLAN"][0]!.Plan);
  });
}

async function postgresStorage(): Promise<PlatformStorage> {
  const schema = freshSchemaName("bourse_platform_test");
  return {
    store: () => new PostgresPlatformStore({ connectionString: connectionString!, schema, poolSize: 4 }),
    plan: postgresPlan,
    execute: async (sql) => {
      await withClient(connectionString, (client) => client.query(sql.replaceAll("{s}", `"${schema}".`)));
    },
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

    // Found by the review of 7 December (sixth session): the prune's SHARE lock waited, unbounded, behind a lock it
    // conflicts with (a VACUUM's), and every insert of a notification queued behind it.
    it("a prune whose lock cannot be had within 2 s leaves that table for the next run", async () => {
      const schema = freshSchemaName("bourse_platform_test");
      const store = new PostgresPlatformStore({ connectionString: connectionString!, schema, poolSize: 4 });
      try {
        await store.open();
        await store.createUser({ id: "u", email: "u@example.com", name: "U", passwordHash: "h", createdAt: 1 });
        const note = (title: string) => ({
          userId: "u",
          kind: "ORDER_FILLED" as const,
          level: "info" as const,
          title,
          createdAt: 1,
        });
        await store.addNotifications(["n1", "n2", "n3"].map(note));
        await withClient(connectionString, async (holder) => {
          await holder.query("BEGIN");
          await holder.query(`LOCK TABLE "${schema}".notifications IN SHARE UPDATE EXCLUSIVE MODE`);
          try {
            const started = performance.now();
            // The alert logs are pruned (none to delete); the notifications are left.
            expect(await store.pruneUserHistories(1)).toBe(0);
            expect(performance.now() - started).toBeLessThan(10_000);
          } finally {
            await holder.query("ROLLBACK");
          }
        });
        expect((await store.listNotifications("u", { limit: 10 })).rows).toHaveLength(3);
        expect(await store.pruneUserHistories(1)).toBe(2);
      } finally {
        await store.close();
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
