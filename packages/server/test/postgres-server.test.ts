/**
 * The server on PostgreSQL (BOURSE_DATABASE_URL), in a database of its own made for the run: what differs from
 * SQLite. PostgreSQL's text holds no NUL and no unpaired surrogate, where SQLite keeps the first and changes the
 * second. An order comment of "x\u0000y" made PostgreSQL refuse the whole group-committed batch it was in: every
 * order of the batch, other users' included, answered 503, and the engine rebuilt itself from the journal
 * (found by the audit of 6 December). A NUL in a script, an alert message, an API key's name or a user's name
 * answered 500. Each is now 400 INVALID_DATA for its sender only, on both drivers.
 */
import pg from "pg";
import { describe, expect, it } from "vitest";
import { call, postgresTestServer, pushQuote, signUp } from "./helpers.ts";

const connectionString = process.env.BOURSE_TEST_PG_URL;
if (!connectionString) console.warn("postgres-server.test.ts: skipped, BOURSE_TEST_PG_URL is not set");

const database = `bourse_server_test_${process.pid}_${Date.now()}`;

describe.skipIf(!connectionString)("the server on PostgreSQL", () => {
  const postgres = postgresTestServer(connectionString, database);

  it("an order whose comment PostgreSQL cannot hold is refused 400, and the order beside it in the batch fills", async () => {
    const mallory = await signUp(postgres.server);
    const alice = await signUp(postgres.server);
    await pushQuote(postgres.server, "EURUSD", "1.08430", "1.08440");
    const order = (user: { login: number; token: string }, comment: string) =>
      call(postgres.server, "POST", `/api/v1/accounts/${user.login}/orders`, {
        token: user.token,
        body: { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.01, comment },
      });
    for (const bad of ["x\u0000y", "x\ud800y"]) {
      const [refused, filled] = await Promise.all([order(mallory, bad), order(alice, "fine")]);
      expect(refused.status).toBe(400);
      expect(refused.body.error).toBe("INVALID_DATA");
      expect(filled.status).toBe(200);
    }
    const badClientId = await call(postgres.server, "POST", `/api/v1/accounts/${mallory.login}/orders`, {
      token: mallory.token,
      body: { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.01, clientOrderId: "a\u0000" },
    });
    expect(badClientId.status).toBe(400);
    expect(postgres.server.platform.ready).toBe(true);
  });

  // Found by the audit of an operator's journey of 7 December (sixth session): after PostgreSQL dropped the connection
  // holding the journal's writer lock, a second server took the lock and both answered ready.
  it("is not ready while another session holds its journal's writer lock, and ready again once it has it back", async () => {
    const readiness = async () => (await call(postgres.server, "GET", "/readyz")).body;
    expect(await readiness()).toMatchObject({ status: "ready" });
    const other = new pg.Client({ connectionString: postgres.databaseUrl });
    await other.connect();
    try {
      await other.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'bourse-journal writer lock'`,
      );
      await other.query("SELECT pg_advisory_lock($1, hashtext('bourse'))", [0x426f7572]);
      const eventually = async (status: string, reason?: RegExp) => {
        const reached = (body: { status: string; reason?: string }) =>
          body.status === status && (reason === undefined || reason.test(body.reason ?? ""));
        for (let attempt = 0; attempt < 200 && !reached(await readiness()); attempt++)
          await new Promise((resolve) => setTimeout(resolve, 25));
        return readiness();
      };
      // First the lock's connection lost, then, once this server tried to take the lock again, held by another.
      const notWriter = await eventually("not-writer", /another server holds/);
      expect(notWriter).toMatchObject({
        status: "not-writer",
        reason: "another server holds the journal's writer lock",
      });
      expect((await call(postgres.server, "GET", "/readyz")).status).toBe(503);
      await other.query("SELECT pg_advisory_unlock($1, hashtext('bourse'))", [0x426f7572]);
      expect(await eventually("ready")).toMatchObject({ status: "ready" });
      await pushQuote(postgres.server, "EURUSD", "1.08430", "1.08440");
    } finally {
      await other.end();
    }
  });

  it("platform text PostgreSQL cannot hold is refused 400, not 500", async () => {
    const user = await signUp(postgres.server);
    const script = await call(postgres.server, "PUT", "/api/v1/scripts", {
      token: user.token,
      body: { name: "a\u0000b", language: "javascript", source: "x" },
    });
    expect(script.status).toBe(400);
    const alert = await call(postgres.server, "PUT", "/api/v1/alerts", {
      token: user.token,
      body: { symbol: "EURUSD", side: "BID", condition: "GREATER_THAN", targetPrice: 1.2, message: "a\u0000b" },
    });
    expect(alert.status).toBe(400);
    const signup = await call(postgres.server, "POST", "/api/v1/signup", {
      body: { email: `nul-${Date.now()}@example.com`, password: "correct horse battery", name: "a\u0000b" },
    });
    expect(signup.status).toBe(400);
  });

  // The PostgreSQL soak audit of 7 December (ninth session): nothing showed how busy the pools were.
  it("publishes its pools' connections and waiting calls in /metrics, of the size BOURSE_DATABASE_POOL_SIZE sets", async () => {
    await signUp(postgres.server);
    const metrics = (await call(postgres.server, "GET", "/metrics")).body as string;
    for (const pool of ["journal", "platform"]) {
      const open = Number(new RegExp(`bourse_postgres_pool_connections\\{pool="${pool}"\\} (\\d+)`).exec(metrics)?.[1]);
      expect(open, pool).toBeGreaterThanOrEqual(1);
      expect(open, pool).toBeLessThanOrEqual(4);
      expect(metrics).toMatch(new RegExp(`bourse_postgres_pool_idle_connections\\{pool="${pool}"\\} \\d+`));
      expect(metrics).toContain(`bourse_postgres_pool_waiting_calls{pool="${pool}"} 0`);
    }
    expect(postgres.server.config.storage.databasePoolSize).toBe(4);
  });
});
