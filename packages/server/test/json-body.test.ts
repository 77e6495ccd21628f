/**
 * Every face reads JSON bodies with json-body.ts. Found by the audit of the Automation API of 7 December (sixth
 * session): an optional body sent as `Content-Type: application/json` with nothing (requests.Session or an HTTP
 * wrapper with a default content type) was refused 400 before the route ran, and invalid JSON was answered "Body is
 * not valid JSON" without a word of where.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { automation, call, createApiKey, pushQuote, signUp, startTestServer, type TestServer } from "./helpers.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
  await pushQuote(server, "EURUSD", "1.08430", "1.08440");
});
afterAll(async () => {
  await server.close();
});

function send(method: "POST" | "PUT", url: string, authorization: string, payload: string | Buffer) {
  return server.app.inject({
    method,
    url,
    headers: { authorization, "content-type": "application/json" },
    payload,
  });
}

describe("an empty JSON body", () => {
  it("is no body: an optional one closes the whole position on both APIs, a required one is refused by the schema", async () => {
    const user = await signUp(server);
    const { key } = await createApiKey(server, user, "full");
    const opened = await automation(server, "POST", "/v1/api/trade", key, {
      symbol: "EURUSD",
      action: "buy",
      volume: 0.1,
    });
    const ticket = opened.body.data.ticket as number;
    const closed = await send("POST", `/v1/api/positions/${ticket}/close`, `Bearer ${key}`, "");
    expect(closed.statusCode, closed.body).toBe(200);
    expect(closed.json().data).toMatchObject({ ticket, volume: 0.1 });

    const again = await automation(server, "POST", "/v1/api/trade", key, {
      symbol: "EURUSD",
      action: "buy",
      volume: 0.2,
    });
    const position = again.body.data.ticket as number;
    const client = await send("POST", `/api/v1/accounts/${user.login}/positions/${position}/close`, user.token, " \n");
    expect(client.statusCode, client.body).toBe(200);
    expect((await automation(server, "GET", "/v1/api/positions", key)).body.data).toEqual([]);

    const order = await send("POST", `/api/v1/accounts/${user.login}/orders`, user.token, "");
    expect(order.statusCode).toBe(400);
    expect(order.json()).toEqual({ error: "INVALID_DATA", message: expect.stringContaining("body") });
  });
});

describe("a body of JSON null", () => {
  // Found by the audit of bad input of 7 December (sixth session): `null` was taken for no body, so close-all closed
  // every position, a close the whole position, and PUT /api/v1/accounts opened a funded account.
  it("is a body the schema refuses, not none: nothing is closed or opened", async () => {
    const user = await signUp(server);
    const { key } = await createApiKey(server, user, "full");
    for (let index = 0; index < 2; index += 1)
      await automation(server, "POST", "/v1/api/trade", key, { symbol: "EURUSD", action: "buy", volume: 0.1 });
    const tickets = (await automation(server, "GET", "/v1/api/positions", key)).body.data.map(
      (position: { ticket: number }) => position.ticket,
    );
    for (const [method, path, authorization] of [
      ["POST", "/v1/api/close-all", `Bearer ${key}`],
      ["POST", `/v1/api/positions/${tickets[0]}/close`, `Bearer ${key}`],
      ["POST", `/api/v1/accounts/${user.login}/positions/${tickets[1]}/close`, user.token],
      ["PUT", "/api/v1/accounts", user.token],
    ] as const) {
      const answer = await send(method, path, authorization, "null");
      expect(answer.statusCode, path).toBe(400);
      expect(answer.body, path).toMatch(/the body must be an object/);
    }
    expect((await automation(server, "GET", "/v1/api/positions", key)).body.data).toHaveLength(2);
    expect((await call(server, "GET", "/api/v1/accounts", { token: user.token })).body.rows).toHaveLength(1);
  });
});

describe("a body that is not JSON", () => {
  it("is refused with where the parser stopped, and places nothing", async () => {
    const user = await signUp(server);
    const order = await send("POST", `/api/v1/accounts/${user.login}/orders`, user.token, '{"symbol":"EURUSD",');
    expect(order.statusCode).toBe(400);
    expect(order.json()).toEqual({
      error: "INVALID_DATA",
      message: expect.stringMatching(/^The body is not valid JSON: .*JSON/),
    });
    const broken = await send("PUT", "/api/v1/settings", user.token, '{"theme" "dark"}');
    expect(broken.json().message).toMatch(/^The body is not valid JSON: .*position 9/);
    const positions = await call(server, "GET", `/api/v1/accounts/${user.login}/positions`, { token: user.token });
    expect(positions.body.rows).toEqual([]);
    const { key } = await createApiKey(server, user, "full");
    const bot = await send("POST", "/v1/api/trade", `Bearer ${key}`, "{symbol: 'EURUSD'}");
    expect(bot.statusCode).toBe(400);
    expect(bot.json()).toMatchObject({ success: false, error: expect.stringMatching(/^The body is not valid JSON/) });
  });

  it("is read past a byte-order mark", async () => {
    const user = await signUp(server);
    const body = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"theme":"dark"}')]);
    expect((await send("PUT", "/api/v1/settings", user.token, body)).statusCode).toBe(200);
    expect((await call(server, "GET", "/api/v1/settings", { token: user.token })).body.data).toEqual({ theme: "dark" });
  });
});

describe("a key that names a prototype", () => {
  it("is refused by name, however it is written, and changes nothing; such words as values or plain keys are taken", async () => {
    const user = await signUp(server);
    for (const body of [
      '{"__proto__":{"isAdmin":true}}',
      '{"layout":[{"__proto__":{"x":1}}]}',
      '{"\\u005f_proto__":{"x":1}}',
    ]) {
      const answer = await send("POST", "/api/v1/settings", user.token, body);
      expect(answer.statusCode, body).toBe(400);
      expect(answer.json(), body).toEqual({ error: "INVALID_DATA", message: expect.stringContaining('"__proto__"') });
    }
    const constructor = await send("POST", "/api/v1/settings", user.token, '{"constructor":{"prototype":{"x":1}}}');
    expect(constructor.json()).toEqual({
      error: "INVALID_DATA",
      message: expect.stringContaining("constructor.prototype"),
    });
    expect((await call(server, "GET", "/api/v1/settings", { token: user.token })).body.data).toEqual({});

    const plain = await send("POST", "/api/v1/settings", user.token, '{"constructor":"x","note":"__proto__"}');
    expect(plain.statusCode, plain.body).toBe(200);
    expect((await call(server, "GET", "/api/v1/settings", { token: user.token })).body.data).toEqual({
      constructor: "x",
      note: "__proto__",
    });
  });
});
