/**
 * Closing the server is bounded. Found by the audit of security and operations of 7 December (third session): one
 * client holding a connection with a request under way (headers or a body never finished) kept `bourse start` from
 * exiting after SIGTERM for as long as it liked (over 130 s seen; a supervisor then kills it), because a close waited
 * for every connection to end and nothing bounded how long receiving a request may take.
 */
import { connect, type Socket } from "node:net";
import { WebSocket } from "ws";
import { describe, expect, it } from "vitest";
import { startTestServer } from "./helpers.ts";

/** A raw connection to `port` that has written `text` and no more. */
async function stalledClient(port: number, text: string): Promise<Socket> {
  const socket = connect(port, "127.0.0.1");
  socket.on("error", () => undefined);
  // Read whatever comes (a 503 while closing), so that the end of the connection is seen.
  socket.resume();
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  socket.write(text);
  return socket;
}

describe("closing the server", () => {
  it("ends within the grace period while clients hold half-sent requests open", async () => {
    const server = await startTestServer({ shutdownGraceMs: 300 });
    await server.app.listen({ port: 0, host: "127.0.0.1" });
    const port = (server.app.server.address() as { port: number }).port;
    const clients = [
      await stalledClient(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n"),
      await stalledClient(
        port,
        'POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"',
      ),
    ];
    const closed = new Promise<void>((resolve) => clients[1]!.once("close", () => resolve()));
    const startedAt = performance.now();
    await server.close();
    const tookMs = performance.now() - startedAt;
    await closed;
    expect(tookMs).toBeLessThan(10_000);
    for (const client of clients) client.destroy();
  });

  it("refuses a WebSocket upgrade that comes while the server stops with 503", async () => {
    const server = await startTestServer();
    await server.app.listen({ port: 0, host: "127.0.0.1" });
    const port = (server.app.server.address() as { port: number }).port;
    server.platform.beginStopping();
    const socket = new WebSocket(`ws://127.0.0.1:${port}/api/v1/ws`);
    const status = await new Promise<number>((resolve) => {
      socket.once("unexpected-response", (_request, response) => resolve(response.statusCode ?? 0));
      socket.once("open", () => resolve(101));
      socket.once("error", () => undefined);
    });
    expect(status).toBe(503);
    socket.terminate();
    await server.close();
  });

  it("bounds the time a request may take to arrive (Node answers 408 and closes the connection)", async () => {
    const server = await startTestServer();
    try {
      expect(server.app.server.requestTimeout).toBeGreaterThan(0);
      expect(server.app.server.requestTimeout).toBeLessThanOrEqual(60_000);
    } finally {
      await server.close();
    }
  });
});
