/**
 * The Automation API's per-key rate limit (seed 003: 100 req/s; issue 5): 150 requests in one second on
 * one key get at least 50 answers 429 with the RateLimit headers, while another key, at the same time,
 * is unaffected, and so is the user's Client API budget. The limiter itself is tested with a manual clock.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FixedWindowLimiter } from "../src/rate-window.ts";
import { automation, call, createApiKey, pushQuote, signUp, startTestServer, type TestServer } from "./helpers.ts";

let server: TestServer;

beforeAll(async () => {
  // The defaults: 100 automation requests per key per second, and the Client API's 100 per user.
  server = await startTestServer({ environment: { BOURSE_RATE_LIMIT_PER_SECOND: "100" } });
  await pushQuote(server, "EURUSD", "1.08430", "1.08440");
});

afterAll(async () => {
  await server?.close();
});

// Refused keys cost a store lookup each and counted toward nothing: a flood of made-up keys was unlimited.
describe("refused API keys per address", () => {
  it("past the limit in a second an address gets 429 with Retry-After for unknown keys until the second ends; keys accepted before still work", async () => {
    const strict = await startTestServer({ environment: { BOURSE_API_KEY_REFUSALS_PER_SECOND: "3" } });
    try {
      const user = await signUp(strict);
      const known = await createApiKey(strict, user, "read");
      const unused = await createApiKey(strict, user, "read");
      expect((await automation(strict, "GET", "/v1/api/account", known.key)).status).toBe(200);
      const madeUp = `tk_live_0123456789abcdef_${"A".repeat(43)}`;
      // Refusals are counted on the platform's clock, which the test server's ManualClock holds still.
      const refused = [];
      for (let attempt = 0; attempt < 3; attempt++)
        refused.push((await automation(strict, "GET", "/v1/api/account", madeUp)).status);
      const blocked = await automation(strict, "GET", "/v1/api/account", madeUp);
      // Behind a proxy every client has one address: a key accepted before is still looked up and works.
      const knownWhileBlocked = await automation(strict, "GET", "/v1/api/account", known.key);
      const unusedWhileBlocked = await automation(strict, "GET", "/v1/api/account", unused.key);
      // The Client API's key-or-token routes count the same refusals.
      const session = await call(strict, "POST", "/api/v2/ws/session", {
        token: `Bearer ${madeUp}`,
        body: { streams: [] },
      });
      expect(refused).toEqual([403, 403, 403]);
      expect(blocked.status).toBe(429);
      expect(blocked.body).toMatchObject({ success: false, code: "RATE_LIMITED" });
      expect(Number(blocked.headers["retry-after"])).toBe(1);
      expect(knownWhileBlocked.status).toBe(200);
      expect(unusedWhileBlocked.status).toBe(429);
      expect(session.status).toBe(429);
      strict.clock.advance(1000);
      expect((await automation(strict, "GET", "/v1/api/account", unused.key)).status).toBe(200);
    } finally {
      await strict.close();
    }
  });
});

describe("per-key rate limit", () => {
  it("defaults to 100 requests per second per key", () => {
    expect(server.config.automationRateLimitPerSecond).toBe(100);
  });

  it("answers 429 with RateLimit headers past 100 requests in a second; another key and the Client API are unaffected", async () => {
    const user = await signUp(server);
    const busy = await createApiKey(server, user, "read");
    const bystander = await signUp(server);
    const calm = await createApiKey(server, bystander, "read");
    const sameUserOtherKey = await createApiKey(server, user, "read");

    const started = performance.now();
    const [burst, others, sibling] = await Promise.all([
      Promise.all(Array.from({ length: 150 }, () => automation(server, "GET", "/v1/api/account", busy.key))),
      Promise.all(Array.from({ length: 40 }, () => automation(server, "GET", "/v1/api/account", calm.key))),
      Promise.all(
        Array.from({ length: 20 }, () => automation(server, "GET", "/v1/api/positions", sameUserOtherKey.key)),
      ),
    ]);
    const elapsed = performance.now() - started;
    expect(elapsed, "the burst must fit in one second for this test to mean anything").toBeLessThan(1000);

    const limited = burst.filter((response) => response.status === 429);
    const passed = burst.filter((response) => response.status === 200);
    expect(limited.length).toBeGreaterThanOrEqual(50);
    expect(passed.length).toBe(100);
    for (const response of limited) {
      expect(response.body).toEqual({
        success: false,
        error: "Rate limit of 100 requests per second per API key exceeded",
        code: "RATE_LIMITED",
      });
      expect(response.headers["ratelimit-limit"]).toBe("100");
      expect(response.headers["ratelimit-remaining"]).toBe("0");
      expect(Number(response.headers["ratelimit-reset"])).toBe(1);
      expect(response.headers["retry-after"]).toBe("1");
    }
    // Every answer that passed tells how much is left, counting down to 0.
    const remaining = passed.map((response) => Number(response.headers["ratelimit-remaining"])).sort((a, b) => b - a);
    expect(remaining).toEqual(Array.from({ length: 100 }, (_, index) => 99 - index));
    for (const response of passed) expect(response.headers["ratelimit-limit"]).toBe("100");

    // Another user's key, and another key of the same user, at the same time: all through.
    expect(others.map((response) => response.status)).toEqual(Array(40).fill(200));
    expect(sibling.map((response) => response.status)).toEqual(Array(20).fill(200));
    // The Client API's per-user budget was not spent by the automation requests.
    const client = await call(server, "GET", `/api/v1/accounts/${user.login}`, { token: user.token });
    expect(client.status).toBe(200);
    expect(Number(client.headers["ratelimit-remaining"])).toBeGreaterThanOrEqual(90);
  });

  it("refused requests change nothing: a limited trade is not executed", async () => {
    const user = await signUp(server);
    const { key } = await createApiKey(server, user, "trade");
    const reads = await Promise.all(
      Array.from({ length: 100 }, () => automation(server, "GET", "/v1/api/account", key)),
    );
    expect(reads.every((response) => response.status === 200)).toBe(true);
    const trade = await automation(server, "POST", "/v1/api/trade", key, {
      symbol: "EURUSD",
      action: "buy",
      volume: 0.1,
    });
    expect(trade.status).toBe(429);
    expect(trade.body.code).toBe("RATE_LIMITED");
    const positions = await call(server, "GET", `/api/v1/accounts/${user.login}/positions`, { token: user.token });
    expect(positions.body.rows).toEqual([]);
  });
});

// Found by the audit of the Automation API of 7 December (sixth session): a read key's trades were all answered 403,
// none counted against its budget, so a loop of them cost a store lookup each without end.
describe("requests refused for the key's scope", () => {
  it("spend the key's budget: RateLimit headers on each, 429 past it, and nothing is traded", async () => {
    const user = await signUp(server);
    const { key } = await createApiKey(server, user, "read");
    const trades = await Promise.all(
      Array.from({ length: 110 }, () =>
        automation(server, "POST", "/v1/api/trade", key, { symbol: "EURUSD", action: "buy", volume: 0.1 }),
      ),
    );
    const refused = trades.filter((response) => response.status === 403);
    expect(refused).toHaveLength(100);
    for (const response of refused) {
      expect(response.body.code).toBe("INSUFFICIENT_SCOPE");
      expect(response.headers["ratelimit-limit"]).toBe("100");
    }
    const limited = trades.filter((response) => response.status === 429);
    expect(limited).toHaveLength(10);
    expect(limited[0]!.body.code).toBe("RATE_LIMITED");
    expect(limited[0]!.headers["retry-after"]).toBeDefined();
    // The budget they spent is the key's: a read in the same second is limited too.
    expect((await automation(server, "GET", "/v1/api/account", key)).status).toBe(429);
    const positions = await call(server, "GET", `/api/v1/accounts/${user.login}/positions`, { token: user.token });
    expect(positions.body.rows).toEqual([]);
  });
});

describe("FixedWindowLimiter", () => {
  it("counts per key in fixed one-second windows, and starts a new window after one", () => {
    let now = 1_000_000;
    const limiter = new FixedWindowLimiter(3, 1000, () => now);
    expect([1, 2, 3, 4].map(() => limiter.hit("a"))).toEqual([
      { limit: 3, remaining: 2, resetSeconds: 1, exceeded: false },
      { limit: 3, remaining: 1, resetSeconds: 1, exceeded: false },
      { limit: 3, remaining: 0, resetSeconds: 1, exceeded: false },
      { limit: 3, remaining: 0, resetSeconds: 1, exceeded: true },
    ]);
    expect(limiter.hit("b").exceeded).toBe(false);
    now += 999;
    expect(limiter.hit("a").exceeded).toBe(true);
    now += 1;
    expect(limiter.hit("a")).toEqual({ limit: 3, remaining: 2, resetSeconds: 1, exceeded: false });
    // A clock set back starts a fresh window rather than locking the key out.
    now -= 5000;
    expect(limiter.hit("a").remaining).toBe(2);
  });

  it("stays bounded with very many keys", () => {
    let now = 0;
    const limiter = new FixedWindowLimiter(1, 1000, () => now);
    for (let index = 0; index < 25_000; index++) {
      limiter.hit(`key-${index}`);
      now += 0.01;
    }
    expect((limiter as unknown as { windows: Map<string, unknown> }).windows.size).toBeLessThanOrEqual(10_000);
  });
});

describe("the limit across listeners", () => {
  it("counts a key's requests on the main and the dedicated listener together", async () => {
    const both = await startTestServer({
      environment: { BOURSE_PORT: "0", BOURSE_AUTOMATION_PORT: "0", BOURSE_AUTOMATION_RATE_LIMIT_PER_SECOND: "10" },
    });
    try {
      const main = await both.listen();
      const dedicated = `http://127.0.0.1:${(both.automationApp!.server.address() as { port: number }).port}`;
      const user = await signUp(both);
      const { key } = await createApiKey(both, user, "read");
      const headers = { authorization: `Bearer ${key}` };
      const statuses = await Promise.all(
        Array.from({ length: 16 }, (_, index) =>
          fetch(`${index % 2 === 0 ? main : dedicated}/v1/api/account`, { headers }).then(
            (response) => response.status,
          ),
        ),
      );
      expect(statuses.filter((status) => status === 200)).toHaveLength(10);
      expect(statuses.filter((status) => status === 429)).toHaveLength(6);
    } finally {
      await both.close();
    }
  });
});
