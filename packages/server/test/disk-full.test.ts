/**
 * Disk full, seen from the faces (issue 3): the SQLite journal capped at its size (max_page_count)
 * refuses the batch; the Client API and the admin API answer 503 ENGINE_UNAVAILABLE, never a success;
 * nothing that was refused appears anywhere; when space returns the server takes commands again.
 */
import type { SqliteJournal } from "@bourse/store";
import type Database from "better-sqlite3";
import { afterAll, beforeAll, expect, it } from "vitest";
import { admin, call, pushQuote, signUp, startTestServer, type TestServer } from "./helpers.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server.close();
});

function journalOf(testServer: TestServer): SqliteJournal {
  // The platform keeps its journal private: the test reaches in to cap the file, as a full disk would.
  return (testServer.platform as unknown as { journal: SqliteJournal }).journal;
}

async function waitUntilReady(): Promise<void> {
  for (let attempt = 0; attempt < 200 && !server.platform.ready; attempt += 1)
    await new Promise((resolve) => setTimeout(resolve, 10));
  expect(server.platform.ready).toBe(true);
}

it("answers 503 while the journal cannot grow, changes nothing, and works again when space returns", async () => {
  const user = await signUp(server);
  await pushQuote(server, "EURUSD", "1.08430", "1.08440");
  const before = await call(server, "GET", `/api/v1/accounts/${user.login}`, { token: user.token });
  expect(before.body.data.balance).toBe(10000);

  const journal = journalOf(server);
  journal.setMaxPageCount(journal.pageCount());
  const padding = "x".repeat(50);
  // Enough orders to outgrow the free pages the file keeps (the journal's rows are compact: ~200 bytes an order).
  const answers = await Promise.all(
    Array.from({ length: 200 }, (_, index) =>
      call(server, "POST", `/api/v1/accounts/${user.login}/orders`, {
        token: user.token,
        body: { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.01, comment: `lost-${index}-${padding}` },
      }),
    ),
  );
  const refusals = answers.filter((answer) => answer.status !== 200);
  expect(refusals.length).toBeGreaterThan(0);
  for (const answer of refusals) {
    expect(answer.status, JSON.stringify(answer.body)).toBe(503);
    expect(answer.body.error).toBe("ENGINE_UNAVAILABLE");
  }
  // The back office is refused the same way (capped again: the rebuilt engine may find room for a small batch).
  await waitUntilReady();
  journal.setMaxPageCount(journal.pageCount());
  const deposits = await Promise.all(
    Array.from({ length: 300 }, (_, index) =>
      admin(server, "POST", `/admin/v1/accounts/${user.login}/deposit`, {
        amount: 5,
        comment: `lost-${index}-${padding}`,
      }),
    ),
  );
  const refusedDeposits = deposits.filter((answer) => answer.status !== 200);
  expect(refusedDeposits.length).toBeGreaterThan(0);
  for (const answer of refusedDeposits)
    expect(answer.body.error, JSON.stringify(answer.body)).toBe("ENGINE_UNAVAILABLE");
  const acceptedDeposits = deposits.length - refusedDeposits.length;

  // The engine rebuilt itself from the journal: what was refused is nowhere.
  await waitUntilReady();
  const accepted = answers.length - refusals.length;
  const positions = await call(server, "GET", `/api/v1/accounts/${user.login}/positions`, { token: user.token });
  expect(positions.body.rows).toHaveLength(accepted);
  const history = await call(server, "GET", `/api/v1/accounts/${user.login}/history/orders`, { token: user.token });
  expect(history.body.rows).toHaveLength(accepted);
  const ledger = await call(server, "GET", `/api/v1/accounts/${user.login}/ledger`, { token: user.token });
  expect(ledger.body.rows).toHaveLength(1 + acceptedDeposits);

  // Space returns: quotes first (they are not journaled, a rebuilt engine waits for the next tick), then orders.
  journal.setMaxPageCount(1_000_000);
  await pushQuote(server, "EURUSD", "1.08431", "1.08441");
  const order = await call(server, "POST", `/api/v1/accounts/${user.login}/orders`, {
    token: user.token,
    body: { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.01 },
  });
  expect(order.status).toBe(200);
  expect((await admin(server, "POST", `/admin/v1/accounts/${user.login}/deposit`, { amount: 5 })).status).toBe(200);
  const after = await call(server, "GET", `/api/v1/accounts/${user.login}`, { token: user.token });
  expect(after.body.data.balance).toBe(10000 + 5 * (acceptedDeposits + 1));
  expect((await call(server, "GET", "/readyz")).status).toBe(200);
});

/** The better-sqlite3 connection of the platform store (users, sessions, watchlists, scripts…), reached as above. */
function platformDatabaseOf(testServer: TestServer): Database.Database {
  const platform = testServer.platform as unknown as { platformStore: { database: { database: Database.Database } } };
  return platform.platformStore.database.database;
}

// Found on 7 December (third session): the platform store's own SQLite file, full, answered every write of user data
// 500 INTERNAL_ERROR (the journal's refusals were 503 already).
it("answers 503 when the platform store's disk is full, changes nothing, and takes writes again when space returns", async () => {
  const user = await signUp(server);
  const database = platformDatabaseOf(server);
  const pages = Number(database.pragma("page_count", { simple: true }));
  database.pragma(`max_page_count = ${pages}`);
  try {
    const source = "x".repeat(60_000);
    const scripts = await Promise.all(
      Array.from({ length: 4 }, (_, index) =>
        call(server, "PUT", "/api/v1/scripts", {
          token: user.token,
          body: { name: `full-${index}`, language: "javascript", source },
        }),
      ),
    );
    const refused = scripts.filter((answer) => answer.status !== 200);
    expect(refused.length).toBeGreaterThan(0);
    for (const answer of refused) {
      expect(answer.status, JSON.stringify(answer.body)).toBe(503);
      expect(answer.body).toEqual({ error: "ENGINE_UNAVAILABLE", message: expect.stringContaining("full") });
    }
    const listed = await call(server, "GET", "/api/v1/scripts", { token: user.token });
    expect(listed.status).toBe(200);
    expect(listed.body.rows).toHaveLength(scripts.length - refused.length);
  } finally {
    database.pragma("max_page_count = 1073741823");
  }
  const after = await call(server, "PUT", "/api/v1/scripts", {
    token: user.token,
    body: { name: "after", language: "javascript", source: "x".repeat(60_000) },
  });
  expect(after.status, JSON.stringify(after.body)).toBe(200);
});
