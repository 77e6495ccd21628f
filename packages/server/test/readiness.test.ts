/**
 * Readiness (issue 4): the listener answers before the engine has recovered; until then `/readyz` is 503,
 * `/healthz` 200, and any route that needs the engine answers 503 ENGINE_UNAVAILABLE, never data or a 500.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, expect, it } from "vitest";
import { ManualClock } from "../src/clock.ts";
import { loadServerConfig } from "../src/config.ts";
import { createServer, type BourseServer } from "../src/server.ts";
import { ADMIN_TOKEN, TUESDAY_NOON, admin, call } from "./helpers.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function unstartedServer(): Promise<BourseServer> {
  const dataDirectory = mkdtempSync(path.join(tmpdir(), "bourse-readiness-"));
  cleanups.push(() => rmSync(dataDirectory, { recursive: true, force: true }));
  const config = loadServerConfig({
    BOURSE_DATA_DIR: dataDirectory,
    BOURSE_FEED: "push",
    BOURSE_ADMIN_TOKEN: ADMIN_TOKEN,
    BOURSE_JWT_SECRET: "readiness-test-secret-readiness-test",
  });
  const server = await createServer({
    config,
    clock: new ManualClock(TUESDAY_NOON),
    log: { info: () => undefined, warn: () => undefined, error: () => undefined },
  });
  cleanups.push(() => server.close());
  return server;
}

it("sign-up before the stores were open answered 500: now live, not ready, 503 ENGINE_UNAVAILABLE until recovered", async () => {
  const server = await unstartedServer();
  expect((await call(server, "GET", "/healthz")).status).toBe(200);
  const before = await call(server, "GET", "/readyz");
  expect(before).toMatchObject({ status: 503, body: { status: "starting" } });
  const signup = await call(server, "POST", "/api/v1/signup", {
    body: { email: "early@example.com", password: "early bird password", name: "Early" },
  });
  expect(signup).toMatchObject({ status: 503, body: { error: "ENGINE_UNAVAILABLE" } });
  const quote = await admin(server, "POST", "/admin/v1/quotes", { symbol: "EURUSD", bid: "1.08430", ask: "1.08440" });
  expect(quote).toMatchObject({ status: 503, body: { error: "ENGINE_UNAVAILABLE" } });

  const starting = server.start();
  const during = await call(server, "GET", "/readyz");
  expect(during.status).toBe(503);
  expect(["starting", "recovering"]).toContain(during.body.status);
  await starting;
  expect((await call(server, "GET", "/readyz")).body).toMatchObject({ status: "ready" });
  expect(
    (await admin(server, "POST", "/admin/v1/quotes", { symbol: "EURUSD", bid: "1.08430", ask: "1.08440" })).status,
  ).toBe(200);
});
