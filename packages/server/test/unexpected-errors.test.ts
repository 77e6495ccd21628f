/**
 * An error the server did not expect answers 500 INTERNAL_ERROR and is written to the server's log, with the route
 * and the stack and without the request's headers. Found by the audit of security and operations of 7 December
 * (third session): `bourse start` runs without Fastify's request log, and the error handler wrote only there, so a
 * server answering every sign-in 500 printed nothing at all.
 */
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { call, signUp, startTestServer, type TestServer } from "./helpers.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server.close();
});

it("answers 500 INTERNAL_ERROR and logs the route and the stack, never the token", async () => {
  const user = await signUp(server);
  const logged = vi.spyOn(server.platform.log, "error").mockImplementation(() => undefined);
  const failing = vi.spyOn(server.platform.store, "getWatchlist").mockImplementation(() => {
    throw new TypeError("a bug: cannot read properties of undefined");
  });
  try {
    const answer = await call(server, "GET", "/api/v1/watchlist", { token: user.token });
    expect(answer.status).toBe(500);
    expect(answer.body).toEqual({ error: "INTERNAL_ERROR", message: expect.any(String) });
    expect(logged).toHaveBeenCalledTimes(1);
    const line = String(logged.mock.calls[0]![0]);
    expect(line).toContain("GET /api/v1/watchlist");
    expect(line).toContain("TypeError: a bug: cannot read properties of undefined");
    expect(line).toContain("unexpected-errors.test.ts");
    expect(line).not.toContain(user.token);
  } finally {
    failing.mockRestore();
    logged.mockRestore();
  }
});
