/**
 * A request that offers an upgrade other than to WebSocket, or a WebSocket upgrade for a path no stream serves, is
 * answered by the HTTP app as any request. Found by the audit of bad input of 7 December (sixth session): Node hands
 * every request that offers an upgrade to the upgrade listener, which answered all but the stream paths a bare 404;
 * `curl --http2 http://…` offers h2c on each request, so a valid GET /api/v1/market was refused with no error code.
 */
import net from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import { rawExchange, signUp, startTestServer, type TestServer } from "./helpers.ts";
import { listenHttp } from "./pusher-helpers.ts";

let server: TestServer;
let port: number;
beforeAll(async () => {
  server = await startTestServer();
  port = Number(new URL(await listenHttp(server)).port);
});
afterAll(async () => server.close());

it("answers a GET that offers h2c (curl --http2) as it answers the GET, and closes the connection", async () => {
  const user = await signUp(server);
  const answer = await rawExchange(
    port,
    "GET /api/v1/market HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n" +
      `HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nAuthorization: ${user.token}\r\n\r\n`,
  );
  expect(answer.status).toBe(200);
  expect(answer.headers).toContain("connection: close");
  expect(answer.headers).toContain("x-content-type-options: nosniff");
  expect(JSON.parse(answer.body).structure).toContain("symbol");
});

it("answers a WebSocket upgrade for a path no stream serves with the face's 404", async () => {
  const answer = await rawExchange(
    port,
    "GET /api/v1/nowhere HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
  );
  expect(answer.status).toBe(404);
  expect(JSON.parse(answer.body)).toEqual({ error: "ROUTE_NOT_FOUND", message: expect.any(String) });
});

it("refuses an upgrade offer with a body, saying what to do", async () => {
  const answer = await rawExchange(
    port,
    "POST /api/v1/login HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n" +
      "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
  );
  expect(answer.status).toBe(400);
  expect(answer.body).toMatch(/cannot offer an upgrade other than to WebSocket/);
});

// Found by the review of 7 December (sixth session): Node takes its error listener off a socket it hands over for an
// upgrade, so a client's reset before the answer was an uncaught exception, which ended the process.
it("a client's reset while an upgrade offer is answered is no uncaught error: the server goes on", async () => {
  const uncaught: unknown[] = [];
  const listener = (error: unknown) => uncaught.push(error);
  const original = process.listeners("uncaughtException");
  process.removeAllListeners("uncaughtException");
  process.on("uncaughtException", listener);
  try {
    for (let attempt = 0; attempt < 20 && uncaught.length === 0; attempt++) {
      await new Promise<void>((resolve) => {
        const socket = net.connect(port, "127.0.0.1", () => {
          socket.write(
            "GET /api/v1/nowhere HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n" +
              "HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n",
          );
          setTimeout(() => {
            socket.resetAndDestroy();
            resolve();
          }, attempt % 3);
        });
        socket.on("error", () => undefined);
      });
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    process.removeListener("uncaughtException", listener);
    for (const each of original) process.on("uncaughtException", each as never);
  }
  expect(uncaught.map(String)).toEqual([]);
  expect((await rawExchange(port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).status).toBe(200);
});
