/**
 * The running server's log (server-log.ts). Found by the audit of an operator's journey of 7 December (sixth session):
 * lines had no time and no level, and no setting logged the HTTP requests, so nothing recorded who called the back
 * office or from where.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadServerConfig } from "../src/config.ts";
import { createServerLog, redactedUrl } from "../src/server-log.ts";
import { spawnBourse } from "./helpers.ts";

const directories: string[] = [];
const dataDirectory = () => {
  const directory = mkdtempSync(path.join(tmpdir(), "bourse-log-"));
  directories.push(directory);
  return directory;
};
afterAll(() => {
  for (const directory of directories) rmSync(directory, { recursive: true, force: true });
});

function captured() {
  const out: string[] = [];
  const error: string[] = [];
  return { out, error, streams: { out: (line: string) => out.push(line), error: (line: string) => error.push(line) } };
}

describe("the server's log lines", () => {
  it("as text: the time and the level before each message, warnings and errors on standard error", () => {
    const lines = captured();
    const log = createServerLog("text", false, lines.streams, () => new Date(Date.UTC(2026, 11, 7, 16, 0, 0, 5)));
    log.info("engine: ready");
    log.warn("market data: slow");
    log.error("journal: not the writer");
    expect(lines.out).toEqual(["2026-12-07T16:00:00.005Z INFO engine: ready"]);
    expect(lines.error).toEqual([
      "2026-12-07T16:00:00.005Z WARN market data: slow",
      "2026-12-07T16:00:00.005Z ERROR journal: not the writer",
    ]);
    expect(log.requests).toBe(false);
  });

  it("as JSON: one object a line with its time, level and message", () => {
    const lines = captured();
    const log = createServerLog("json", false, lines.streams);
    log.info("engine: ready");
    log.error("journal: not the writer");
    const info = JSON.parse(lines.out[0]!) as { level: number; time: string; msg: string };
    expect(info).toMatchObject({ level: 30, msg: "engine: ready" });
    expect(new Date(info.time).toISOString()).toBe(info.time);
    expect(JSON.parse(lines.error[0]!)).toMatchObject({ level: 50, msg: "journal: not the writer" });
  });

  it("never writes a credential a query carries: only plain parameters keep their values", () => {
    expect(redactedUrl("/api/v1/ws?token=eyJ.secret&limit=1")).toBe("/api/v1/ws?token=[redacted]&limit=1");
    expect(redactedUrl("/app/key?protocol=7&Token=abc")).toBe("/app/key?protocol=7&Token=[redacted]");
    expect(redactedUrl("/api/v1/ws?access_token=HUNTER2")).toBe("/api/v1/ws?access_token=[redacted]");
    expect(redactedUrl("/x?%6Cimit=5&api_key=k")).toBe("/x?%6Cimit=5&api_key=[redacted]");
    expect(redactedUrl("/healthz")).toBe("/healthz");
    expect(redactedUrl("/x?token")).toBe("/x?token");
  });

  it("refuses a log format or request setting it does not know, naming the choices", () => {
    expect(() => loadServerConfig({ BOURSE_DATA_DIR: dataDirectory(), BOURSE_LOG_FORMAT: "xml" })).toThrow(
      'BOURSE_LOG_FORMAT must be one of text, json, got "xml"',
    );
    expect(() => loadServerConfig({ BOURSE_DATA_DIR: dataDirectory(), BOURSE_LOG_REQUESTS: "yes" })).toThrow(
      'BOURSE_LOG_REQUESTS must be one of true, false, got "yes"',
    );
  });

  it("bourse start with BOURSE_LOG_FORMAT=json and BOURSE_LOG_REQUESTS=true writes JSON lines only, requests with their status and no token", async () => {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const bourse = spawnBourse(
      {
        BOURSE_DATA_DIR: dataDirectory(),
        BOURSE_PORT: String(port),
        BOURSE_FEED: "push",
        BOURSE_LOG_FORMAT: "json",
        BOURSE_LOG_REQUESTS: "true",
      },
      { separate: true },
    );
    try {
      await bourse.waitFor("Bourse is running at");
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      await fetch(`http://127.0.0.1:${port}/api/v1/ws?token=secret-token-of-the-log-test`);
      await bourse.waitFor("/api/v1/ws?token=", 5_000);
    } finally {
      bourse.child.kill("SIGTERM");
    }
    expect(await bourse.exited).toBe(0);
    const out = bourse.printed();
    const error = bourse.errors();
    const lines = `${out}${error}`.split("\n").filter((line) => line !== "");
    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(records.every((record) => typeof record.time === "string" && typeof record.level === "number")).toBe(true);
    expect(
      records.some((record) => String(record.msg).startsWith(`Bourse is running at http://127.0.0.1:${port}`)),
    ).toBe(true);
    const healthz = records.find((record) => (record.req as { url?: string } | undefined)?.url === "/healthz");
    expect(healthz).toMatchObject({ req: { method: "GET", url: "/healthz" } });
    const answered = records.find(
      (record) => (record.res as { statusCode?: number } | undefined)?.statusCode === 200 && "responseTime" in record,
    );
    expect(answered).toBeDefined();
    expect(`${out}${error}`).toContain("/api/v1/ws?token=[redacted]");
    expect(`${out}${error}`).not.toContain("secret-token-of-the-log-test");
  });
});

// Found by the audit of an operator's journey of 7 December (sixth session): a SIGTERM closed the listener at once,
// with no moment where /readyz said 503, and a load balancer still sending clients had them reset.
describe("a stop with BOURSE_SHUTDOWN_DRAIN_SECONDS", () => {
  it("answers /readyz 503 draining and still serves requests for the drain, then exits 0", async () => {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const bourse = spawnBourse({
      BOURSE_DATA_DIR: dataDirectory(),
      BOURSE_PORT: String(port),
      BOURSE_FEED: "push",
      BOURSE_SHUTDOWN_DRAIN_SECONDS: "2",
    });
    try {
      await bourse.waitFor("Bourse is running at");
      const base = `http://127.0.0.1:${port}`;
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      bourse.child.kill("SIGTERM");
      await bourse.waitFor("draining for 2 s", 5_000);
      const readiness = await fetch(`${base}/readyz`);
      expect(readiness.status).toBe(503);
      expect(await readiness.json()).toMatchObject({ status: "draining" });
      const signUp = await fetch(`${base}/api/v1/signup`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          email: `drain-${Date.now()}@example.com`,
          password: "correct horse battery",
          name: "D",
        }),
      });
      expect(signUp.status).toBe(200);
    } finally {
      bourse.child.kill("SIGTERM");
    }
    expect(await bourse.exited).toBe(0);
  });
});
