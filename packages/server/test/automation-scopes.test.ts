/**
 * The Automation API's scope matrix (issue 5): every endpoint × {read, trade, full, revoked,
 * rotated-away, no key, malformed key} (and a Client API JWT, which is not a key), with the expected
 * status and envelope, and no state change on any refusal: the account, its positions, its orders and its
 * deals are compared (through the Client API) before and after each refused request, whose target exists
 * and would have been changed had the request passed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { automation, call, createApiKey, pushQuote, signUp, startTestServer, type TestServer } from "./helpers.ts";

type User = Awaited<ReturnType<typeof signUp>>;

interface Endpoint {
  readonly method: string;
  readonly path: string;
  readonly scope: "read" | "trade";
  /** Makes the endpoint's target (a position, an order) and answers the concrete URL and body. */
  readonly prepare: () => Promise<{ url: string; body?: unknown }>;
}

let server: TestServer;
let owner: User;
let setupKey: string;
const credentials: Record<string, string | null> = {};

async function openPosition(): Promise<number> {
  const response = await automation(server, "POST", "/v1/api/trade", setupKey, {
    symbol: "EURUSD",
    action: "buy",
    volume: 0.01,
  });
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return response.body.data.ticket as number;
}

async function placeOrder(): Promise<number> {
  const response = await automation(server, "POST", "/v1/api/order", setupKey, {
    symbol: "EURUSD",
    type: 2,
    volume: 0.01,
    price: 1.08,
  });
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return response.body.data.ticket as number;
}

const plain = (url: string) => async () => ({ url });

const ENDPOINTS: readonly Endpoint[] = [
  { method: "GET", path: "/v1/api/account", scope: "read", prepare: plain("/v1/api/account") },
  { method: "GET", path: "/v1/api/account/history", scope: "read", prepare: plain("/v1/api/account/history") },
  { method: "GET", path: "/v1/api/positions", scope: "read", prepare: plain("/v1/api/positions") },
  {
    method: "GET",
    path: "/v1/api/positions/{ticket}",
    scope: "read",
    prepare: async () => ({ url: `/v1/api/positions/${await openPosition()}` }),
  },
  {
    method: "POST",
    path: "/v1/api/positions/{ticket}/close",
    scope: "trade",
    prepare: async () => ({ url: `/v1/api/positions/${await openPosition()}/close`, body: {} }),
  },
  {
    method: "POST",
    path: "/v1/api/positions/{ticket}/modify",
    scope: "trade",
    prepare: async () => ({ url: `/v1/api/positions/${await openPosition()}/modify`, body: { sl: 1.07, tp: 1.1 } }),
  },
  { method: "GET", path: "/v1/api/orders", scope: "read", prepare: plain("/v1/api/orders") },
  {
    method: "GET",
    path: "/v1/api/orders/{ticket}",
    scope: "read",
    prepare: async () => ({ url: `/v1/api/orders/${await placeOrder()}` }),
  },
  {
    method: "POST",
    path: "/v1/api/orders/{ticket}/modify",
    scope: "trade",
    prepare: async () => ({ url: `/v1/api/orders/${await placeOrder()}/modify`, body: { price: 1.079 } }),
  },
  {
    method: "DELETE",
    path: "/v1/api/orders/{ticket}",
    scope: "trade",
    prepare: async () => ({ url: `/v1/api/orders/${await placeOrder()}` }),
  },
  {
    method: "POST",
    path: "/v1/api/trade",
    scope: "trade",
    prepare: async () => ({
      url: "/v1/api/trade",
      body: { symbol: "EURUSD", action: "sell", volume: 0.01, sl: 1.09, tp: 1.07 },
    }),
  },
  {
    method: "POST",
    path: "/v1/api/order",
    scope: "trade",
    prepare: async () => ({ url: "/v1/api/order", body: { symbol: "EURUSD", type: 5, volume: 0.01, price: 1.08 } }),
  },
  {
    method: "POST",
    path: "/v1/api/close-all",
    scope: "trade",
    prepare: async () => {
      await openPosition();
      return { url: "/v1/api/close-all", body: {} };
    },
  },
  { method: "GET", path: "/v1/api/symbols", scope: "read", prepare: plain("/v1/api/symbols") },
  { method: "GET", path: "/v1/api/symbols/{symbol}", scope: "read", prepare: plain("/v1/api/symbols/EURUSD") },
  { method: "GET", path: "/v1/api/quote/{symbol}", scope: "read", prepare: plain("/v1/api/quote/EURUSD") },
  { method: "GET", path: "/v1/api/candles/{symbol}", scope: "read", prepare: plain("/v1/api/candles/EURUSD") },
];

/** What each credential gets: [status, code] for a read endpoint and for a trading endpoint. */
const EXPECTED: Record<string, { read: [number, string | null]; trade: [number, string | null] }> = {
  read: { read: [200, null], trade: [403, "INSUFFICIENT_SCOPE"] },
  trade: { read: [200, null], trade: [200, null] },
  full: { read: [200, null], trade: [200, null] },
  revoked: { read: [403, "INVALID_API_KEY"], trade: [403, "INVALID_API_KEY"] },
  "rotated-away": { read: [403, "INVALID_API_KEY"], trade: [403, "INVALID_API_KEY"] },
  "no key": { read: [401, "UNAUTHORIZED"], trade: [401, "UNAUTHORIZED"] },
  malformed: { read: [403, "INVALID_API_KEY"], trade: [403, "INVALID_API_KEY"] },
  "client JWT": { read: [403, "INVALID_API_KEY"], trade: [403, "INVALID_API_KEY"] },
};

/** The owner's account, positions, orders and deals, through the Client API. */
async function ownerState(): Promise<string> {
  const parts = await Promise.all(
    [
      `/api/v1/accounts/${owner.login}`,
      `/api/v1/accounts/${owner.login}/positions`,
      `/api/v1/accounts/${owner.login}/orders`,
      `/api/v1/accounts/${owner.login}/history/deals?limit=1000`,
    ].map(async (url) => {
      const response = await call(server, "GET", url, { token: owner.token });
      expect(response.status).toBe(200);
      return response.body;
    }),
  );
  return JSON.stringify(parts);
}

beforeAll(async () => {
  server = await startTestServer({ environment: { BOURSE_AUTOMATION_RATE_LIMIT_PER_SECOND: "100000" } });
  owner = await signUp(server);
  await pushQuote(server, "EURUSD", "1.08430", "1.08440");
  setupKey = (await createApiKey(server, owner, "full")).key;
  credentials.read = (await createApiKey(server, owner, "read")).key;
  credentials.trade = (await createApiKey(server, owner, "trade")).key;
  credentials.full = (await createApiKey(server, owner, "full")).key;
  const revoked = await createApiKey(server, owner, "full");
  expect((await call(server, "DELETE", `/api/v1/api-keys/${revoked.id}`, { token: owner.token })).status).toBe(200);
  credentials.revoked = revoked.key;
  const rotated = await createApiKey(server, owner, "full");
  const rotation = await call(server, "POST", `/api/v1/api-keys/${rotated.id}/rotate`, { token: owner.token });
  expect(rotation.status).toBe(200);
  expect(rotation.body.data.key).not.toBe(rotated.key);
  credentials["rotated-away"] = rotated.key;
  credentials["no key"] = null;
  credentials.malformed = "tk_live_not-a-key";
  credentials["client JWT"] = owner.token;
});

afterAll(async () => {
  await server?.close();
});

describe("scope matrix", () => {
  it("lists the 17 endpoints of API.md, each registered with apiKey auth and the automation face", () => {
    expect(ENDPOINTS).toHaveLength(17);
    const registered = server.app.routeRegistry
      .filter((route) => route.url.startsWith("/v1/api"))
      .map((route) => `${route.method} ${route.url.replace(/:(\w+)/g, "{$1}")}`)
      .sort();
    expect(registered).toEqual(ENDPOINTS.map((endpoint) => `${endpoint.method} ${endpoint.path}`).sort());
    for (const route of server.app.routeRegistry.filter((entry) => entry.url.startsWith("/v1/api"))) {
      expect(route.auth).toBe("apiKey");
      expect(route.face).toBe("automation");
    }
  });

  for (const endpoint of ENDPOINTS) {
    it(`${endpoint.method} ${endpoint.path}`, async () => {
      const failures: string[] = [];
      for (const [who, expected] of Object.entries(EXPECTED)) {
        const { url, body } = await endpoint.prepare();
        const [status, code] = expected[endpoint.scope];
        const before = await ownerState();
        const token = credentials[who]!;
        const response = await call(server, endpoint.method, url, {
          token: token === null ? null : `Bearer ${token}`,
          body,
        });
        const label = `${who}: ${response.status} ${JSON.stringify(response.body).slice(0, 200)}`;
        if (response.status !== status) failures.push(`${label} (expected ${status})`);
        if (status === 200) {
          if (response.body.success !== true) failures.push(`${label} (no success envelope)`);
          continue;
        }
        if (JSON.stringify(response.body) !== JSON.stringify({ success: false, error: response.body.error, code }))
          failures.push(`${label} (expected the error envelope with ${code})`);
        if (typeof response.body.error !== "string" || response.body.error.length === 0)
          failures.push(`${label} (no message)`);
        if ((await ownerState()) !== before) failures.push(`${label} (changed the account's state)`);
      }
      expect(failures).toEqual([]);
    });
  }

  it("a malformed Authorization header of any other shape is refused the same way, never a 500", async () => {
    const before = await ownerState();
    for (const header of [
      "Basic dXNlcjpwYXNz",
      "Bearer",
      "Bearer tk_live_",
      `Token ${credentials.full}`,
      "x".repeat(4000),
    ]) {
      const response = await call(server, "POST", "/v1/api/trade", {
        headers: { authorization: header },
        body: { symbol: "EURUSD", action: "buy", volume: 0.01 },
      });
      expect([401, 403], header.slice(0, 40)).toContain(response.status);
      expect(response.body.success).toBe(false);
    }
    // An empty header is a missing one.
    const empty = await call(server, "GET", "/v1/api/account", { headers: { authorization: "   " } });
    expect(empty.status).toBe(401);
    expect(empty.body).toEqual({ success: false, error: "Missing authorization header", code: "UNAUTHORIZED" });
    expect(await ownerState()).toBe(before);
  });

  it("the key's own scope is checked before the request is validated: a read key gets 403 even for a bad body", async () => {
    const response = await automation(server, "POST", "/v1/api/trade", credentials.read!, { nonsense: true });
    expect(response.status).toBe(403);
    expect(response.body.code).toBe("INSUFFICIENT_SCOPE");
    expect(response.body.error).toBe("This request needs an API key with scope trade (this key: read)");
  });
});
