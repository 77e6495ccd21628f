/**
 * CORS: a web terminal or personal cabinet served from another origin than the API (the broker's own domain) calls
 * the Client API from a browser. Without CORS headers the browser refused every answer; BOURSE_CORS_ORIGINS names
 * the origins allowed (none by default).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadServerConfig, ConfigError } from "../src/config.ts";
import { signUp, startTestServer, type TestServer } from "./helpers.ts";

const TERMINAL = "https://terminal.broker.example";

let server: TestServer;
let closed: TestServer;
beforeAll(async () => {
  server = await startTestServer({ environment: { BOURSE_CORS_ORIGINS: `${TERMINAL}, http://localhost:5173` } });
  closed = await startTestServer();
});
afterAll(async () => {
  await server.close();
  await closed.close();
});

const inject = (target: TestServer, method: "GET" | "OPTIONS", url: string, headers: Record<string, string>) =>
  target.app.inject({ method, url, headers });

describe("CORS", () => {
  it("lets an allowed origin read answers, refusals included, and the rate-limit headers", async () => {
    const user = await signUp(server);
    for (const answer of [
      await inject(server, "GET", `/api/v1/accounts/${user.login}`, { origin: TERMINAL, authorization: user.token }),
      await inject(server, "GET", `/api/v1/accounts/${user.login}`, { origin: TERMINAL }),
      await inject(server, "GET", "/api/v1/nowhere", { origin: TERMINAL }),
    ]) {
      expect(answer.headers["access-control-allow-origin"]).toBe(TERMINAL);
      expect(answer.headers.vary).toContain("Origin");
      expect(answer.headers["access-control-expose-headers"]).toContain("RateLimit-Remaining");
    }
    const other = await inject(server, "GET", `/api/v1/accounts/${user.login}`, {
      origin: "https://phishing.example",
      authorization: user.token,
    });
    expect(other.statusCode).toBe(200);
    expect(other.headers["access-control-allow-origin"]).toBeUndefined();
  });

  it("answers an allowed origin's preflight with what it may send, and refuses others as no route", async () => {
    const preflight = { "access-control-request-method": "POST", "access-control-request-headers": "authorization" };
    const allowed = await inject(server, "OPTIONS", "/api/v1/accounts/100001/orders", {
      origin: "http://localhost:5173",
      ...preflight,
    });
    expect(allowed.statusCode).toBe(204);
    expect(allowed.headers).toMatchObject({
      "access-control-allow-origin": "http://localhost:5173",
      "access-control-allow-methods": "GET, POST, PUT, DELETE",
      "access-control-allow-headers": "Authorization, Content-Type",
      "access-control-max-age": "600",
    });
    expect(allowed.body).toBe("");
    const stranger = await inject(server, "OPTIONS", "/api/v1/accounts/100001/orders", {
      origin: "https://phishing.example",
      ...preflight,
    });
    expect(stranger.statusCode).toBe(404);
    expect(stranger.headers["access-control-allow-origin"]).toBeUndefined();
    // By default no origin is allowed: same-origin pages only, as before.
    const byDefault = await inject(closed, "OPTIONS", "/api/v1/login", { origin: TERMINAL, ...preflight });
    expect(byDefault.statusCode).toBe(404);
    expect((await inject(closed, "GET", "/healthz", { origin: TERMINAL })).headers).not.toHaveProperty(
      "access-control-allow-origin",
    );
  });

  // The review of 7 December: a preflight spent the address's request budget, and a 429 to it is a CORS failure the
  // page cannot read (each URL such as /orders/{id} needs its own preflight).
  it("answers preflights without spending the request budget", async () => {
    const tight = await startTestServer({
      environment: { BOURSE_CORS_ORIGINS: TERMINAL, BOURSE_RATE_LIMIT_PER_SECOND: "2" },
    });
    try {
      const preflight = { origin: TERMINAL, "access-control-request-method": "GET" };
      for (let index = 0; index < 5; index += 1)
        expect((await inject(tight, "OPTIONS", `/api/v1/accounts/100001/orders/${index}`, preflight)).statusCode).toBe(
          204,
        );
      // Other requests still spend it.
      const statuses = [];
      for (let index = 0; index < 3; index += 1)
        statuses.push((await inject(tight, "GET", "/api/v1/nowhere", { origin: TERMINAL })).statusCode);
      expect(statuses).toEqual([404, 404, 429]);
    } finally {
      await tight.close();
    }
  });

  it("takes origins as a browser sends them, or * alone, and refuses anything else at start", () => {
    const load = (value: string) =>
      loadServerConfig({
        BOURSE_DATA_DIR: "/tmp/bourse-cors-config",
        BOURSE_JWT_SECRET: "x".repeat(32),
        BOURSE_ADMIN_TOKEN: "an-admin-token-long-enough",
        BOURSE_CORS_ORIGINS: value,
      });
    expect(load("*").corsOrigins).toEqual(["*"]);
    expect(load(" https://a.example ,https://b.example:8443").corsOrigins).toEqual([
      "https://a.example",
      "https://b.example:8443",
    ]);
    // A configuration file may give them as a list, as it may BOURSE_TRUST_PROXY.
    const directory = mkdtempSync(path.join(tmpdir(), "bourse-cors-file-"));
    const file = path.join(directory, "bourse.config.json");
    writeFileSync(file, JSON.stringify({ corsOrigins: ["https://a.example", "https://b.example"] }));
    try {
      expect(
        loadServerConfig({
          BOURSE_CONFIG: file,
          BOURSE_DATA_DIR: path.join(directory, "data"),
          BOURSE_JWT_SECRET: "x".repeat(32),
          BOURSE_ADMIN_TOKEN: "an-admin-token-long-enough",
        }).corsOrigins,
      ).toEqual(["https://a.example", "https://b.example"]);
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
    for (const bad of [
      "https://a.example/",
      "https://a.example/terminal",
      "a.example",
      "ftp://a.example",
      "*,https://a.example",
    ])
      expect(() => load(bad), bad).toThrow(ConfigError);
  });
});
