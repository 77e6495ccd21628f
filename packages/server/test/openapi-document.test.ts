/**
 * The OpenAPI document describes how to call each route: the credential it takes, a stable operation id, the
 * encodings its body may use, and the refusals it may answer. Found by the audit of the API contract of 7 December
 * (third session): no JWT route declared its credential (the /docs page's "Authorize" sent none, and generated
 * clients called them without one), no operation had an id, the Pusher channel auth route hid the form encoding
 * pusher-js uses, and a `text/plain` body was parsed as a string where the registry promises 415.
 */
import { TIME_ZONES } from "@bourse/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuthMode } from "../src/app.ts";
import { ApiErrorCodes } from "../src/errors.ts";
import { sharedSchemas } from "../src/openapi-document.ts";
import { ADMIN_TOKEN, automation, call, createApiKey, signUp, startTestServer, type TestServer } from "./helpers.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server.close();
});

interface Schema {
  readonly anyOf?: Schema[];
  readonly enum?: unknown[];
  readonly [word: string]: unknown;
}

interface Operation {
  readonly operationId?: string;
  readonly security?: Record<string, string[]>[];
  readonly requestBody?: { required?: boolean; content: Record<string, unknown> };
  readonly responses: Record<string, unknown>;
}

async function documentOperations(): Promise<Map<string, Operation>> {
  const document = (await call(server, "GET", "/docs/json")).body as {
    paths: Record<string, Record<string, Operation>>;
  };
  const operations = new Map<string, Operation>();
  for (const [path, methods] of Object.entries(document.paths))
    for (const [method, operation] of Object.entries(methods))
      operations.set(`${method.toUpperCase()} ${path}`, operation);
  return operations;
}

/** The path as the document writes it: `:accountId` becomes `{accountId}`. */
function documentPath(url: string): string {
  return url.replace(/:([A-Za-z0-9_]+)/g, "{$1}");
}

const SECURITY_OF: Record<AuthMode, Record<string, string[]>[]> = {
  public: [],
  user: [{ jwt: [] }],
  userOrApiKey: [{ jwt: [] }, { apiKey: [] }],
  userOrRefreshToken: [{ jwt: [] }, {}],
  admin: [{ admin: [] }],
  apiKey: [{ apiKey: [] }],
};

describe("the OpenAPI document", () => {
  it("declares on every route the credential the route takes, from the route's own auth mode", async () => {
    const operations = await documentOperations();
    let checked = 0;
    for (const route of server.app.routeRegistry) {
      const operation = operations.get(`${route.method} ${documentPath(route.url)}`);
      if (!operation) continue;
      expect(operation.security, `${route.method} ${route.url} (${route.auth})`).toEqual(SECURITY_OF[route.auth]);
      checked += 1;
    }
    // Every face: the Client API, the Automation API, the admin API, the Pusher routes and the public ones.
    expect(checked).toBeGreaterThan(80);
    expect(operations.get("GET /api/v1/accounts")?.security).toEqual([{ jwt: [] }]);
    expect(operations.get("POST /api/v2/ws/session")?.security).toEqual([{ jwt: [] }, { apiKey: [] }]);
  });

  it("gives every operation an id of its own", async () => {
    const operations = await documentOperations();
    const ids = [...operations.values()].map((operation) => operation.operationId);
    for (const id of ids) expect(id).toMatch(/^[a-z][A-Za-z0-9]+$/);
    expect(new Set(ids).size).toBe(ids.length);
    expect(operations.get("POST /api/v1/accounts/{accountId}/orders")?.operationId).toBe(
      "postApiV1AccountsByAccountIdOrders",
    );
  });

  // A code generator (openapi-generator, openapi-typescript) makes an enum of `enum`, but a wrapper type of each
  // `anyOf` member: TypeBox writes a choice of literals as `anyOf` of one-value enums, which made the order's side a
  // class with two variants in a generated client.
  it("writes a choice of literals as one enum, the schema's other words kept", async () => {
    const document = (await call(server, "GET", "/docs/json")).body as {
      paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: Schema }> } }>>;
    };
    const order = document.paths["/api/v1/accounts/{accountId}/orders"]!.post!.requestBody!.content["application/json"]!
      .schema as { properties: Record<string, Schema> };
    expect(order.properties.side).toEqual({ type: "string", enum: ["BUY", "SELL"] });
    expect(order.properties.type).toEqual({ type: "string", enum: ["MARKET", "LIMIT", "STOP", "STOP_LIMIT"] });
    // A choice of names or codes: one enum of each type, the description kept.
    const alert = document.paths["/api/v1/alerts"]!.put!.requestBody!.content["application/json"]!.schema as {
      properties: Record<string, Schema>;
    };
    expect(alert.properties.side).toEqual({
      description: expect.stringContaining("BID (0) or ASK (1)"),
      anyOf: [
        { type: "string", enum: ["BID", "ASK"] },
        { type: "number", enum: [0, 1] },
      ],
    });
    // Nowhere in the document is there still an anyOf with two one-value enums of one type.
    const literalUnions: string[] = [];
    const visit = (value: unknown, where: string): void => {
      if (Array.isArray(value)) return value.forEach((item, index) => visit(item, `${where}/${index}`));
      if (value === null || typeof value !== "object") return;
      const anyOf = (value as Schema).anyOf;
      const literalTypes = (anyOf ?? [])
        .filter((member) => Array.isArray(member.enum) && member.enum.length === 1)
        .map((member) => member.type);
      if (new Set(literalTypes).size < literalTypes.length || (anyOf?.length === 1 && literalTypes.length === 1))
        literalUnions.push(where);
      for (const [key, item] of Object.entries(value)) visit(item, `${where}/${key}`);
    };
    visit(document, "");
    expect(literalUnions).toEqual([]);
  });

  // Found by the audit of a terminal's journey: the histories paged oldest first only. Every history route takes the
  // same `direction`, documented as the enum a generated client makes a type of.
  it("offers direction, asc or desc, on every history route and ledger", async () => {
    const document = (await call(server, "GET", "/docs/json")).body as {
      paths: Record<string, { get?: { parameters?: { name: string; in: string; schema: Schema }[] } }>;
    };
    const histories = Object.keys(document.paths).filter((path) => /\/(history|ledger)\b/.test(path));
    expect(histories.sort()).toEqual([
      "/admin/v1/accounts/{accountId}/history/deals",
      "/admin/v1/accounts/{accountId}/history/orders",
      "/admin/v1/accounts/{accountId}/history/positions",
      "/admin/v1/accounts/{accountId}/ledger",
      "/api/v1/accounts/{accountId}/history/deals",
      "/api/v1/accounts/{accountId}/history/orders",
      "/api/v1/accounts/{accountId}/history/positions",
      "/api/v1/accounts/{accountId}/ledger",
      "/v1/api/account/history",
    ]);
    for (const path of histories)
      expect(document.paths[path]!.get!.parameters, path).toContainEqual({
        name: "direction",
        in: "query",
        required: false,
        description: expect.stringContaining("newest first"),
        schema: { type: "string", enum: ["asc", "desc"], default: "asc" },
      });
  });

  // Found by the audit of the OpenAPI document of 7 December: `error` (and the Automation API's `code`) were plain
  // strings, so a generated client could not switch on them.
  it("gives every error's code as the enum of the error registry, every code of it, defined once", async () => {
    const document = (await call(server, "GET", "/docs/json")).body as {
      paths: Record<string, Record<string, Operation>>;
      components: { schemas: Record<string, Schema & { properties: Record<string, Schema> }> };
    };
    const { ErrorCode, ErrorResponse, AutomationError } = document.components.schemas;
    expect(ErrorCode).toMatchObject({ type: "string", title: "ErrorCode" });
    expect([...(ErrorCode!.enum as string[])].sort()).toEqual(Object.keys(ApiErrorCodes).sort());
    const code = { $ref: "#/components/schemas/ErrorCode" };
    expect(ErrorResponse!.properties.error).toEqual(code);
    expect(AutomationError!.properties.code).toEqual(code);
    // One enum in the document: every error response refers to its face's error body.
    expect(JSON.stringify(document).split('"ROUTE_NOT_FOUND"')).toHaveLength(2);
    const operations = await documentOperations();
    const body = (path: string, method: string, status: string) =>
      (operations.get(`${method} ${path}`)?.responses[status] as { content: Record<string, { schema: unknown }> })
        .content["application/json"]!.schema;
    expect(body("/api/v1/accounts", "GET", "401")).toEqual({ $ref: "#/components/schemas/ErrorResponse" });
    expect(body("/v1/api/account", "GET", "401")).toEqual({ $ref: "#/components/schemas/AutomationError" });
    // What the server answers is in it.
    const codes = ErrorCode!.enum as string[];
    expect(codes).toContain((await call(server, "GET", "/api/v1/accounts")).body.error);
    expect(codes).toContain((await automation(server, "GET", "/v1/api/account", "tk_live_nope")).body.code);
  });

  // Found by the audit of the OpenAPI document of 7 December: @fastify/swagger wrote every body required, so a generated
  // client had to send `{}` to close a whole position.
  it("marks a request body optional exactly where the route takes no body, from the route's own declaration", async () => {
    const user = await signUp(server);
    const key = await createApiKey(server, user, "full");
    const credential = { admin: `Bearer ${ADMIN_TOKEN}`, apiKey: `Bearer ${key.key}`, public: null } as const;
    const operations = await documentOperations();
    const optional: string[] = [];
    for (const route of server.app.routeRegistry) {
      const name = `${route.method} ${documentPath(route.url)}`;
      const requestBody = operations.get(name)?.requestBody;
      if (!requestBody) continue;
      expect(requestBody.required, name).toBe(!route.optionalBody);
      if (!requestBody.required) optional.push(name);
      // No body at all: a body the document requires is refused, an optional one is taken as `{}`.
      const url = route.url.replace(":accountId", String(user.login)).replace(/:[A-Za-z]+/g, "1");
      // A sign-out ends the session it is sent with: its own.
      const token =
        route.auth in credential
          ? credential[route.auth as keyof typeof credential]
          : route.url === "/api/v1/logout"
            ? (await signUp(server)).token
            : user.token;
      const answer = await call(server, route.method, url, { token });
      const refused = answer.status === 400 && JSON.stringify(answer.body).includes("the body must be an object");
      expect(refused, `${name} answered ${answer.status} ${JSON.stringify(answer.body)}`).toBe(requestBody.required);
    }
    expect(optional.sort()).toEqual([
      "POST /admin/v1/accounts/{accountId}/positions/{positionId}/close",
      "POST /api/v1/accounts/{accountId}/positions/{positionId}/close",
      "POST /api/v1/logout",
      "POST /api/v1/session/refresh",
      "POST /v1/api/close-all",
      "POST /v1/api/positions/{ticket}/close",
      "PUT /api/v1/accounts",
    ]);
  });

  // Found by the audit of the OpenAPI document of 7 December: no `servers`, parameters without a word, defaults only
  // in prose, and sections (tags) without a description.
  it("names its server, describes every parameter, gives the stated defaults, and describes every section", async () => {
    const document = (await call(server, "GET", "/docs/json")).body as {
      servers: { url: string }[];
      tags: { name: string; description: string }[];
      paths: Record<
        string,
        Record<
          string,
          { tags?: string[]; parameters?: { name: string; in: string; description?: string; schema: Schema }[] }
        >
      >;
    };
    expect(document.servers).toEqual([{ url: "/", description: expect.any(String) }]);
    expect(Object.keys(document.paths)).toContain("/api/v1/accounts");
    const used = new Set<string>();
    const undescribed: string[] = [];
    for (const [path, operations] of Object.entries(document.paths))
      for (const [method, operation] of Object.entries(operations)) {
        for (const tag of operation.tags ?? []) used.add(tag);
        for (const parameter of operation.parameters ?? [])
          if (!parameter.description) undescribed.push(`${method.toUpperCase()} ${path} ${parameter.name}`);
      }
    expect(undescribed).toEqual([]);
    expect(document.tags.map((tag) => tag.name).sort()).toEqual([...used].sort());
    for (const tag of document.tags) expect(tag.description, tag.name).not.toBe("");
    const parameter = (path: string, name: string) =>
      document.paths[path]!.get!.parameters!.find((candidate) => candidate.name === name)!.schema;
    for (const path of Object.keys(document.paths).filter((path) =>
      /\/v1\/accounts\/\{accountId\}\/(history|ledger)/.test(path),
    ))
      expect(parameter(path, "limit").default, path).toBe(100);
    for (const path of ["/api/v1/market/{symbol}/candles", "/v1/api/candles/{symbol}"])
      expect(parameter(path, "timeframe").default, path).toBe("H1");
  });

  it("documents the form encoding of the Pusher channel auth and the 429 of the stream's plain GET", async () => {
    const operations = await documentOperations();
    expect(Object.keys(operations.get("POST /api/v2/ws/auth")?.requestBody?.content ?? {}).sort()).toEqual([
      "application/json",
      "application/x-www-form-urlencoded",
    ]);
    expect(Object.keys(operations.get("GET /api/v1/ws")?.responses ?? {})).toContain("429");
  });

  it("publishes the time zone of a contract's sessions beside them on both faces, and as the market table's last column", async () => {
    const document = (await call(server, "GET", "/docs/json")).body as {
      paths: Record<string, { get: { responses: Record<string, { content: Record<string, { schema: Schema }> }> } }>;
    };
    const answer = (path: string) => document.paths[path]!.get.responses["200"]!.content["application/json"]!.schema;
    const zone = { type: "string", enum: [...TIME_ZONES], description: expect.stringContaining("daylight saving") };
    for (const path of ["/api/v1/market/{symbol}", "/v1/api/symbols/{symbol}"]) {
      const data = (answer(path).properties as Record<string, Schema>).data as { properties: Record<string, Schema> };
      expect(data.properties.sessionTimeZone, path).toEqual(zone);
      expect(data.properties.sessions?.description, path).toMatch(/on the clock of sessionTimeZone/);
    }
    const table = answer("/api/v1/market").properties as Record<string, Schema>;
    const columns = (table.structure as { prefixItems: Schema[] }).prefixItems.map((column) => column.enum?.[0]);
    expect(columns.at(-1)).toBe("sessionTimeZone");
    expect((table.rows as { items: { prefixItems: Schema[] } }).items.prefixItems.at(-1)).toMatchObject(zone);
  });
});

describe("sharedSchemas", () => {
  it("defines a titled schema once and refers to it, inner ones from the outer, and refuses two under one title", () => {
    const code = { title: "Code", type: "string", enum: ["A"] };
    const body = { title: "Body", type: "object", properties: { code } };
    const document = { paths: { "/a": { get: { responses: { 400: body, 401: body } } } } };
    expect(sharedSchemas(document, ["Code", "Body"])).toEqual({
      paths: {
        "/a": {
          get: {
            responses: { 400: { $ref: "#/components/schemas/Body" }, 401: { $ref: "#/components/schemas/Body" } },
          },
        },
      },
      components: {
        schemas: { Code: code, Body: { ...body, properties: { code: { $ref: "#/components/schemas/Code" } } } },
      },
    });
    const other = { ...document, other: { ...code, enum: ["B"] } };
    expect(() => sharedSchemas(other, ["Code"])).toThrow("defines schemas Code two ways");
  });
});

describe("a text/plain body", () => {
  it("is refused 415 on the Client API, and changes nothing", async () => {
    const user = await signUp(server);
    const headers = { authorization: user.token, "content-type": "text/plain" };
    const order = await server.app.inject({
      method: "POST",
      url: `/api/v1/accounts/${user.login}/orders`,
      headers,
      payload: "symbol=EURUSD",
    });
    expect(order.statusCode).toBe(415);
    expect(order.json()).toEqual({ error: "UNSUPPORTED_MEDIA_TYPE", message: expect.any(String) });
    const logout = await server.app.inject({ method: "POST", url: "/api/v1/logout", headers, payload: "hello" });
    expect(logout.statusCode).toBe(415);
    // The session was not ended by the refused logout.
    expect((await call(server, "GET", "/api/v1/session", { token: user.token })).status).toBe(200);
  });
});

describe("the document of a server with its own demo settings", () => {
  // Found by the audit of the README of 7 December: PUT /api/v1/accounts said its defaults were USD and 1:100 whatever
  // BOURSE_DEMO_CURRENCY and BOURSE_DEMO_LEVERAGE said.
  it("names them as the defaults of a new account", async () => {
    const own = await startTestServer({ environment: { BOURSE_DEMO_CURRENCY: "EUR", BOURSE_DEMO_LEVERAGE: "50" } });
    try {
      const document = (await call(own, "GET", "/docs/json")).body as {
        paths: Record<string, Record<string, { description?: string }>>;
      };
      expect(document.paths["/api/v1/accounts"]!.put!.description).toContain(
        "default to the server's demo settings (EUR, 1:50, HEDGING)",
      );
    } finally {
      await own.close();
    }
  });
});
