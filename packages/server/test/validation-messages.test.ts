/**
 * A request that does not match its schema is answered with one sentence that names the field and what it takes, on
 * every face. Found by the audit of the Automation API of 7 December (sixth session): the seed's errors read
 * "Insufficient margin", ours "body/action must be equal to constant, body/action must be equal to constant,
 * body/action must match a schema in anyOf"; a timeframe's nine constants were not named, nor an unknown field.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeSchema, fieldName } from "../src/validation-messages.ts";
import {
  admin,
  automation,
  call,
  createApiKey,
  pushQuote,
  signUp,
  startTestServer,
  type TestServer,
} from "./helpers.ts";
import { listenStream, StreamClient } from "./ws-helpers.ts";

let server: TestServer;
let url: string;
beforeAll(async () => {
  server = await startTestServer();
  await pushQuote(server, "EURUSD", "1.08430", "1.08440");
  url = await listenStream(server);
});
afterAll(async () => {
  await server.close();
});

describe("the Automation API's refusals of a request's shape", () => {
  it("name the field and the values it takes, the unknown field, the missing one", async () => {
    const user = await signUp(server);
    const { key } = await createApiKey(server, user, "full");
    const refusal = async (method: string, path: string, body?: unknown) => {
      const answer = await automation(server, method, path, key, body);
      expect(answer.status, path).toBe(400);
      expect(answer.body.code).toBe("INVALID_DATA");
      return answer.body.error as string;
    };
    expect(await refusal("POST", "/v1/api/trade", { symbol: "EURUSD", action: "BUY", volume: 0.1 })).toBe(
      "action must be one of: buy, sell",
    );
    expect(await refusal("POST", "/v1/api/trade", { symbol: "EURUSD", action: "buy", volume: 0.1, type: 0 })).toBe(
      'the body has an unknown field "type"',
    );
    expect(await refusal("POST", "/v1/api/trade", { symbol: "EURUSD", action: "buy", volume: " 0.10" })).toBe(
      'volume must be a number or a decimal string such as "0.10"',
    );
    expect(await refusal("POST", "/v1/api/trade", { action: "buy", volume: 0.1 })).toBe(
      'the body lacks the required field "symbol"',
    );
    expect(await refusal("GET", "/v1/api/candles/EURUSD?timeframe=1h")).toBe(
      "timeframe must be one of: M1, M5, M15, M30, H1, H4, D1, W1, MN1",
    );
    expect(await refusal("GET", "/v1/api/candles/EURUSD?count=0")).toBe("count must be an integer from 1 to 5000");
    expect(await refusal("GET", "/v1/api/candles/EURUSD?bogus=1")).toBe('unknown query parameter "bogus"');
    // Nothing was traded by any of them.
    expect((await automation(server, "GET", "/v1/api/positions", key)).body.data).toEqual([]);
  });
});

describe("the Client API's and the admin API's", () => {
  it("say the same in the `message` of seed 001's error", async () => {
    const user = await signUp(server);
    const refusal = async (method: string, path: string, body?: unknown) => {
      const answer = await call(server, method, path, { token: user.token, body });
      expect(answer.status, path).toBe(400);
      expect(answer.body.error).toBe("INVALID_DATA");
      return answer.body.message as string;
    };
    const orders = `/api/v1/accounts/${user.login}/orders`;
    expect(await refusal("POST", orders, { symbol: "EURUSD", side: "buy", type: "MARKET", volume: 0.1 })).toBe(
      "side must be one of: BUY, SELL",
    );
    expect(await refusal("POST", orders, [])).toBe("the body must be an object");
    expect(
      await refusal("PUT", "/api/v1/alerts", { symbol: "EURUSD", side: "bid", condition: 0, targetPrice: 1.1 }),
    ).toBe("side must be one of: BID, ASK, 0, 1");
    expect(
      await refusal("PUT", "/api/v1/alerts", { symbol: "EURUSD", side: "BID", condition: 15, targetPrice: 1.1 }),
    ).toMatch(/^condition must be one of: CROSSING_UP, .*, CROSSING_EITHER, or an integer from 0 to 12$/);
    expect(await refusal("GET", "/api/v1/accounts/abc")).toBe("accountId must be up to 15 digits");
    expect(await refusal("GET", `/api/v1/accounts/${user.login}/history/deals?limit=x`)).toBe(
      "limit must be an integer from 1 to 1000",
    );
    const quote = await admin(server, "POST", "/admin/v1/quotes", { symbol: "EURUSD", bid: "x", ask: 1 });
    expect(quote.body).toEqual({
      error: "INVALID_DATA",
      message: 'bid must be a number or a decimal string such as "0.10"',
    });
    // An object that fits no member of a union of objects: each member's complaint (the review of 7 December, sixth
    // session: "the body must be an object").
    const noIdentifier = await call(server, "POST", "/api/v1/login", { body: { password: "x" } });
    expect(noIdentifier.body.message).toBe(
      'the body lacks the required field "email", or lacks the required field "login"',
    );
    const both = await call(server, "POST", "/api/v1/login", { body: { email: "a@b.cd", login: 1, password: "x" } });
    expect(both.body.message).toBe('the body has an unknown field "login", or has an unknown field "email"');
    const signup = await call(server, "POST", "/api/v1/signup", { body: { email: "nope", password: "x", name: "y" } });
    expect(signup.body).toEqual({ error: "INVALID_DATA", message: "email must be an email address" });
  });
});

describe("the native stream's", () => {
  it("say the same of a payload", async () => {
    const user = await signUp(server);
    const client = await StreamClient.connect(url, user.token);
    try {
      const side = await client.request("createOrder", { symbol: "EURUSD", side: "buy", type: "MARKET", volume: 0.1 });
      expect(side.payload).toEqual({ code: "INVALID_DATA", message: "side must be one of: BUY, SELL" });
      const extra = await client.request("createOrder", {
        symbol: "EURUSD",
        side: "BUY",
        type: "MARKET",
        volume: 0.1,
        balance: 1,
      });
      expect(extra.payload).toEqual({ code: "INVALID_DATA", message: 'the payload has an unknown field "balance"' });
      const events = await client.request("subscribe", { symbols: ["EURUSD"], events: ["tradeEvent"] });
      expect(events.payload.message).toMatch(/^events\[0\] must be one of: quoteEvent, executionEvent, /);
      const missing = await client.request("depthSubscribe", {});
      expect(missing.payload).toEqual({
        code: "INVALID_DATA",
        message: 'the payload lacks the required field "symbol"',
      });
    } finally {
      await client.close();
    }
  });
});

describe("the words", () => {
  it("name nested fields and list items, and describe each kind of schema", () => {
    expect(fieldName("body", "/legs/0/price")).toBe("legs[0].price");
    expect(fieldName("body", "/a~1b")).toBe("a/b");
    expect(fieldName("querystring", "")).toBe("the query string");
    expect(describeSchema({ type: "integer", minimum: 1 })).toBe("an integer of at least 1");
    expect(describeSchema({ type: "number", exclusiveMinimum: 0 })).toBe("a number greater than 0");
    expect(describeSchema({ type: "string", maxLength: 32 })).toBe("a string of at most 32 characters");
    expect(describeSchema({ anyOf: [{ type: "string" }, { type: "null" }] })).toBe("a string or null");
    expect(describeSchema({ const: "OK" })).toBe("OK");
  });
});
