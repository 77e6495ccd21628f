/**
 * Found by the audit of security and operations of 7 December (third session): answers carried no security header,
 * and a request that came while the server was stopping was refused in Fastify's own shape
 * (`{"error":"Service Unavailable","message":"Service Unavailable","statusCode":503}`), in no face's envelope.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { automation, call, createApiKey, signUp, startTestServer, type TestServer } from "./helpers.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server.close();
});

const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "cache-control": "no-store",
};

describe("every answer", () => {
  it("carries the security headers: success, refusal and no route alike", async () => {
    const user = await signUp(server);
    for (const answer of [
      await call(server, "GET", "/healthz"),
      await call(server, "GET", `/api/v1/accounts/${user.login}`, { token: user.token }),
      await call(server, "GET", `/api/v1/accounts/${user.login}`),
      await call(server, "GET", "/api/v1/nowhere"),
      // Refused by the router itself (a malformed percent-encoding), before any hook.
      await call(server, "GET", "/api/v1/market/%zz"),
    ])
      expect(answer.headers).toMatchObject(SECURITY_HEADERS);
  });
});

describe("a request while the server stops", () => {
  it("is refused 503 in its face's envelope, and the connection is not kept", async () => {
    const user = await signUp(server);
    const { key } = await createApiKey(server, user, "read");
    server.platform.beginStopping();
    const client = await call(server, "GET", `/api/v1/accounts/${user.login}`, { token: user.token });
    expect(client.status).toBe(503);
    expect(client.body).toEqual({ error: "ENGINE_UNAVAILABLE", message: "The server is stopping: try again shortly" });
    expect(client.headers.connection).toBe("close");
    const bot = await automation(server, "GET", "/v1/api/account", key);
    expect(bot.status).toBe(503);
    expect(bot.body).toEqual({
      success: false,
      error: "The server is stopping: try again shortly",
      code: "ENGINE_UNAVAILABLE",
    });
  });

  // Found by the audit of an integrator's journey of 7 December (seventh session): /readyz answered 500 in Fastify's
  // shape ("Failed to serialize an error"), just as a load balancer polls it through the close's grace period.
  it("leaves the system routes answering: /readyz says stopping, /healthz, /metrics and /docs answer", async () => {
    server.platform.beginStopping();
    const ready = await call(server, "GET", "/readyz");
    expect(ready.status).toBe(503);
    expect(ready.body).toEqual({ status: "stopping", lastSequence: expect.any(Number) });
    expect((await call(server, "GET", "/healthz")).body).toEqual({ status: "ok" });
    expect((await call(server, "GET", "/metrics")).status).toBe(200);
    expect((await call(server, "GET", "/docs/json")).status).toBe(200);
  });
});
