/**
 * A request that offers an upgrade other than to WebSocket, or a WebSocket upgrade for a path no stream serves, is
 * answered by the HTTP app as any request. Found by the audit of bad input of 7 December (sixth session): Node hands
 * every request that offers an upgrade to the upgrade listener, which answered all but the stream paths a bare 404;
 * `curl --http2 http://…` offers h2c on each request, so a valid GET /api/v1/market was refused with no error code.
 */
import net from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import { signUp, startTestServer, type TestServer } from "./helpers.ts";
import { listenHttp } from "./pusher-helpers.ts";

let server: TestServer;
let port: number;
beforeAll(async () => {
  server = await startTestServer();
  port = Number(new URL(await listenHttp(server)).port);
});
afterAll(async () => server.close());

/** Sends `text` on a new connection; answers the status line, the headers and the body, once the server closes. */
function exchange(text: string): Promise<{ status: string; headers: string; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    let received = "";
    socket.setTimeout(5_000, () => reject(new Error(`no close; received ${JSON.stringify(received)}`)));
    socket.on("data", (chunk) => (received += chunk.toString("utf8")));
    socket.on("close", () => {
      const [head = "", body = ""] = received.split("\r\n\r\n");
      const [status = "", ...headers] = head.split("\r\n");
      resolve({ status, headers: headers.join("\n").toLowerCase(), body });
    });
    socket.on("error", reject);
    socket.write(text);
  });
}

it("answers a GET that offers h2c (curl --http2) as it answers the GET, and closes the connection", async () => {
  const user = await signUp(server);
  const answer = await exchange(
    "GET /api/v1/market HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n" +
      `HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nAuthorization: ${user.token}\r\n\r\n`,
  );
  expect(answer.status).toBe("HTTP/1.1 200 OK");
  expect(answer.headers).toContain("connection: close");
  expect(answer.headers).toContain("x-content-type-options: nosniff");
  expect(JSON.parse(answer.body).structure).toContain("symbol");
});

it("answers a WebSocket upgrade for a path no stream serves with the face's 404", async () => {
  const answer = await exchange(
    "GET /api/v1/nowhere HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
  );
  expect(answer.status).toBe("HTTP/1.1 404 Not Found");
  expect(JSON.parse(answer.body)).toEqual({ error: "ROUTE_NOT_FOUND", message: expect.any(String) });
});

it("refuses an upgrade offer with a body, saying what to do", async () => {
  const answer = await exchange(
    "POST /api/v1/login HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n" +
      "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
  );
  expect(answer.status).toBe("HTTP/1.1 400 Bad Request");
  expect(answer.body).toMatch(/cannot offer an upgrade other than to WebSocket/);
});
