/**
 * Every table route of the OpenAPI document names its columns, and they are the columns the live route answers.
 * Found by a read of the README against the server: the trading tables (accounts, ledger, orders, positions, the
 * three histories, scripts) documented `rows` as arrays of anything, so a client could not tell what a row held.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { admin, call, createApiKey, pushQuote, signUp, startTestServer, type TestServer } from "./helpers.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server.close();
});

interface Operation {
  readonly description?: string;
  readonly responses: Record<string, { content?: { "application/json"?: { schema?: { properties?: object } } } }>;
}

/** The columns a description lists: "Columns: a, b (x, y), c." (or without the stop) gives a, b, c. */
function listedColumns(description: string): string[] {
  const list = /^Columns: ([^.]*)(?:\.|$)/.exec(description.replace(/\([^)]*\)/g, ""))?.[1] ?? "";
  return list
    .split(",")
    .map((column) => column.trim())
    .filter((column) => column !== "");
}

describe("the OpenAPI document's tables", () => {
  it("names the columns of every table route, as the live route answers them", async () => {
    const user = await signUp(server);
    await createApiKey(server, user, "read");
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const placed = await call(server, "POST", `/api/v1/accounts/${user.login}/orders`, {
      token: user.token,
      body: { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.1 },
    });
    expect(placed.status).toBe(200);
    const document = (await call(server, "GET", "/docs/json")).body as {
      paths: Record<string, Record<string, Operation>>;
    };
    const tables: string[] = [];
    for (const [route, operations] of Object.entries(document.paths)) {
      const operation = operations.get;
      const schema = operation?.responses["200"]?.content?.["application/json"]?.schema;
      if (!operation || !schema?.properties || !("structure" in schema.properties)) continue;
      tables.push(route);
      expect(operation.description ?? "", route).toMatch(/^Columns: /);
      const url =
        route.replace("{accountId}", String(user.login)).replace("{symbol}", "EURUSD") +
        (route.endsWith("/candles") ? "?timeframe=M1" : "");
      const live = route.startsWith("/admin/")
        ? await admin(server, "GET", url)
        : await call(server, "GET", url, { token: user.token });
      expect(live.status, `${route}: ${JSON.stringify(live.body)}`).toBe(200);
      expect(listedColumns(operation.description!), route).toEqual(live.body.structure);
    }
    for (const route of [
      "/api/v1/accounts",
      "/api/v1/accounts/{accountId}/ledger",
      "/api/v1/accounts/{accountId}/orders",
      "/api/v1/accounts/{accountId}/positions",
      "/api/v1/accounts/{accountId}/history/orders",
      "/api/v1/accounts/{accountId}/history/deals",
      "/api/v1/accounts/{accountId}/history/positions",
      "/api/v1/scripts",
      "/admin/v1/accounts",
      "/admin/v1/users",
    ])
      expect(tables).toContain(route);
  });
});
