/**
 * What Node's HTTP parser refuses before any route is answered in the faces' error shape, with a code of the registry
 * and the security headers. Found by the audit of bad input of 7 December (sixth session): Fastify answered
 * `{"error":"Bad Request","message":"Client Error","statusCode":400}`, whose "error" is no code of the registry. The
 * 408 of a request not all sent within 30 s: shutdown.test.ts.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { rawExchange, startTestServer, type TestServer } from "./helpers.ts";
import { listenHttp } from "./pusher-helpers.ts";

let server: TestServer;
let port: number;
beforeAll(async () => {
  server = await startTestServer();
  port = Number(new URL(await listenHttp(server)).port);
});
afterAll(async () => server.close());

it.each([
  [
    "a header name with a space",
    "GET /api/v1/market HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
    400,
    "MALFORMED_REQUEST",
  ],
  ["a NUL in the path", "GET /api/v1/market/EUR\x00USD HTTP/1.1\r\nHost: x\r\n\r\n", 400, "MALFORMED_REQUEST"],
  [
    "headers past 16 KiB",
    `GET /api/v1/market HTTP/1.1\r\nHost: x\r\nAuthorization: ${"a".repeat(20_000)}\r\n\r\n`,
    431,
    "HEADERS_TOO_LARGE",
  ],
  [
    "a body longer than its Content-Length",
    "POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}garbage",
    400,
    "MALFORMED_REQUEST",
  ],
])("answers %s in the Client API's shape", async (_name, request, status, code) => {
  const answer = await rawExchange(port, request);
  expect(answer.status).toBe(status);
  expect(JSON.parse(answer.body)).toEqual({ error: code, message: expect.any(String) });
  expect(answer.headers).toContain("x-content-type-options: nosniff");
  expect(answer.headers).toContain("connection: close");
});

it("answers a malformed request to the Automation API in its shape, with its statuses", async () => {
  const malformed = await rawExchange(port, "GET /v1/api/account HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n");
  expect(malformed.status).toBe(400);
  expect(JSON.parse(malformed.body)).toEqual({ success: false, error: expect.any(String), code: "MALFORMED_REQUEST" });
  // 431 is no status of seed 003: 400, with the code.
  const large = await rawExchange(
    port,
    `GET /v1/api/account HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`,
  );
  expect(large.status).toBe(400);
  expect(JSON.parse(large.body)).toMatchObject({ success: false, code: "HEADERS_TOO_LARGE" });
});
