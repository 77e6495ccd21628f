/**
 * Every table route of the OpenAPI document names its columns, and they are the columns the live route answers.
 * Found by a read of the README against the server: the trading tables (accounts, ledger, orders, positions, the
 * three histories, scripts) documented `rows` as arrays of anything, so a client could not tell what a row held.
 * Then by the audit of the OpenAPI document of 7 December: a generated client still had `unknown[][]` for every
 * table; the document now publishes each table's `structure` as its exact column list, and each row as a tuple of
 * the columns' schemas (`prefixItems`), which the live rows must validate against.
 */
import AjvCompiler from "@fastify/ajv-compiler";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { admin, call, createApiKey, pushQuote, settle, signUp, startTestServer, type TestServer } from "./helpers.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server.close();
});

interface Schema {
  readonly [keyword: string]: unknown;
}

interface TupleSchema {
  readonly prefixItems?: Schema[];
  readonly items?: unknown;
  readonly minItems?: number;
}

interface TableSchema {
  readonly properties: { structure: TupleSchema; rows: { items: TupleSchema } };
}

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

/** Validators of the document's cell schemas, as the server compiles its own (values as sent: no coercion). */
const compileValidator = AjvCompiler()(
  {},
  { customOptions: { coerceTypes: false, useDefaults: false, removeAdditional: false, allErrors: true } },
);

/** What is wrong with `row` by the published tuple schema: its length, then each cell against its column's schema. */
function rowProblems(row: unknown[], tuple: TupleSchema): string[] {
  const cells = tuple.prefixItems ?? [];
  if (row.length !== cells.length) return [`${row.length} cells, ${cells.length} columns`];
  return cells.flatMap((cell, index) => {
    const validate = compileValidator({ schema: cell, method: "GET", url: "/", httpPart: "body" }) as ((
      value: unknown,
    ) => boolean) & { errors?: { message?: string }[] | null };
    return validate(row[index])
      ? []
      : [`${String(cell.title)} = ${JSON.stringify(row[index])}: ${validate.errors?.map((error) => error.message)}`];
  });
}

/** The bodies of the table routes that change the table (the watchlist's); every other table route is a GET. */
const TABLE_CHANGES: Record<string, unknown> = {
  "PUT /api/v1/watchlist": { symbol: "GBPUSD" },
  "POST /api/v1/watchlist": { symbols: ["GBPUSD", "EURUSD"] },
};

describe("the OpenAPI document's tables", () => {
  it("publishes every table route's columns and row tuple, as the live route answers them", async () => {
    // A row in every table: a position, a working order, a history of each, a deposit, a script, the watchlist, an
    // alert that triggered (its log and notification), an API key.
    const user = await signUp(server);
    await createApiKey(server, user, "read");
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const orders = `/api/v1/accounts/${user.login}/orders`;
    for (const body of [
      { symbol: "EURUSD", side: "BUY", type: "MARKET", volume: 0.1 },
      { symbol: "EURUSD", side: "BUY", type: "LIMIT", volume: 0.1, price: 1.05 },
    ])
      expect((await call(server, "POST", orders, { token: user.token, body })).status).toBe(200);
    expect((await admin(server, "POST", `/admin/v1/accounts/${user.login}/deposit`, { amount: 100 })).status).toBe(200);
    const script = { name: "table", language: "javascript", source: "// rows" };
    expect((await call(server, "PUT", "/api/v1/scripts", { token: user.token, body: script })).status).toBe(200);
    const watched = { symbol: "EURUSD" };
    expect((await call(server, "PUT", "/api/v1/watchlist", { token: user.token, body: watched })).status).toBe(200);
    const alert = { symbol: "EURUSD", side: "BID", condition: "GREATER_THAN", targetPrice: 1.085 };
    expect((await call(server, "PUT", "/api/v1/alerts", { token: user.token, body: alert })).status).toBe(200);
    await pushQuote(server, "EURUSD", "1.08600", "1.08610");
    await settle(server);

    const document = (await call(server, "GET", "/docs/json")).body as {
      paths: Record<string, Record<string, Operation>>;
    };
    const tables: string[] = [];
    for (const [route, operations] of Object.entries(document.paths))
      for (const [method, operation] of Object.entries(operations)) {
        const schema = operation.responses["200"]?.content?.["application/json"]?.schema;
        if (!schema?.properties || !("structure" in schema.properties)) continue;
        const name = `${method.toUpperCase()} ${route}`;
        tables.push(name);
        expect(operation.description ?? "", name).toMatch(/^Columns: /);
        const url =
          route
            .replace("{accountId}", String(user.login))
            .replace("{symbol}", "EURUSD")
            .replace("{userId}", user.userId) + (route.endsWith("/candles") ? "?timeframe=M1" : "");
        const body = method === "get" ? undefined : TABLE_CHANGES[name];
        expect(method === "get" || body !== undefined, `${name}: a table route that changes, with no body here`).toBe(
          true,
        );
        const live = route.startsWith("/admin/")
          ? await admin(server, method.toUpperCase(), url, body)
          : await call(server, method.toUpperCase(), url, { token: user.token, body });
        expect(live.status, `${name}: ${JSON.stringify(live.body)}`).toBe(200);
        expect(listedColumns(operation.description!), name).toEqual(live.body.structure);

        // `structure` is exactly the columns, in order; a row is a tuple of their schemas, titled with their names.
        const { structure, rows } = (schema as TableSchema).properties;
        const columns = (structure.prefixItems ?? []).map((column) => (column.enum as string[] | undefined)?.[0]);
        expect(columns, name).toEqual(live.body.structure);
        expect([structure.items, structure.minItems], name).toEqual([false, columns.length]);
        expect(
          (rows.items.prefixItems ?? []).map((cell) => cell.title),
          name,
        ).toEqual(columns);
        expect([rows.items.items, rows.items.minItems], name).toEqual([false, columns.length]);
        expect(live.body.rows.length, `${name}: a row to check`).toBeGreaterThan(0);
        for (const row of live.body.rows as unknown[][]) expect(rowProblems(row, rows.items), name).toEqual([]);
      }
    expect(tables.sort()).toEqual(
      [
        "GET /admin/v1/accounts",
        "GET /admin/v1/accounts/{accountId}/history/deals",
        "GET /admin/v1/accounts/{accountId}/history/orders",
        "GET /admin/v1/accounts/{accountId}/history/positions",
        "GET /admin/v1/accounts/{accountId}/ledger",
        "GET /admin/v1/accounts/{accountId}/orders",
        "GET /admin/v1/accounts/{accountId}/positions",
        "GET /admin/v1/groups",
        "GET /admin/v1/users",
        "GET /admin/v1/users/{userId}/api-keys",
        "GET /api/v1/accounts",
        "GET /api/v1/accounts/{accountId}/history/deals",
        "GET /api/v1/accounts/{accountId}/history/orders",
        "GET /api/v1/accounts/{accountId}/history/positions",
        "GET /api/v1/accounts/{accountId}/ledger",
        "GET /api/v1/accounts/{accountId}/orders",
        "GET /api/v1/accounts/{accountId}/positions",
        "GET /api/v1/alerts",
        "GET /api/v1/alerts/logs",
        "GET /api/v1/api-keys",
        "GET /api/v1/market",
        "GET /api/v1/market/shortlist",
        "GET /api/v1/market/{symbol}/candles",
        "GET /api/v1/notifications",
        "GET /api/v1/scripts",
        "GET /api/v1/watchlist",
        "POST /api/v1/watchlist",
        "PUT /api/v1/watchlist",
      ].sort(),
    );
  });

  it("refuses a row that breaks the published tuple (the check above can fail)", async () => {
    const document = (await call(server, "GET", "/docs/json")).body as {
      paths: Record<
        string,
        Record<string, { responses: Record<string, { content: Record<string, { schema: TableSchema }> }> }>
      >;
    };
    const ledger =
      document.paths["/api/v1/accounts/{accountId}/ledger"]!.get!.responses["200"]!.content["application/json"]!.schema
        .properties.rows.items;
    const row = [1, "DEPOSIT", 100, 100, 0, null, 1, "", "2026-06-02T12:00:00.000Z"];
    expect(rowProblems(row, ledger)).toEqual([]);
    expect(rowProblems([...row, "extra"], ledger)).toEqual(["10 cells, 9 columns"]);
    expect(rowProblems([1, "BONUS", ...row.slice(2)], ledger)).toEqual([expect.stringContaining('kind = "BONUS"')]);
    expect(rowProblems([1, "DEPOSIT", "100", ...row.slice(3)], ledger)).toEqual([
      expect.stringContaining('amount = "100"'),
    ]);
  });
});
