/**
 * Test helpers for the server: a server on a fresh SQLite data directory with the push feed and a
 * pinned clock (Tuesday noon UTC: every market open), driven with `app.inject`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import type { EngineConfig } from "@bourse/core";
import pg from "pg";
import { afterAll, beforeAll } from "vitest";
import { ManualClock } from "../src/clock.ts";
import { loadServerConfig, type ServerConfig } from "../src/config.ts";
import { NotificationService } from "../src/notifications.ts";
import { createServer, type BourseServer } from "../src/server.ts";

/** Tuesday 2 June 2026, 12:00 UTC. */
export const TUESDAY_NOON = Date.UTC(2026, 5, 2, 12, 0);
export const ADMIN_TOKEN = "test-admin-token";

export interface TestServer extends BourseServer {
  readonly clock: ManualClock;
  readonly config: ServerConfig;
  readonly dataDirectory: string;
}

const quietLog = { info: () => undefined, warn: () => undefined, error: (line: string) => console.error(line) };

export async function startTestServer(
  options: {
    environment?: NodeJS.ProcessEnv;
    engineConfig?: EngineConfig;
    dataDirectory?: string;
    clock?: ManualClock;
    /** How long a close waits for connections with a request under way (the server's default otherwise). */
    shutdownGraceMs?: number;
  } = {},
): Promise<TestServer> {
  const dataDirectory = options.dataDirectory ?? mkdtempSync(path.join(tmpdir(), "bourse-server-"));
  const config = loadServerConfig({
    BOURSE_DATA_DIR: dataDirectory,
    BOURSE_FEED: "push",
    BOURSE_ADMIN_TOKEN: ADMIN_TOKEN,
    BOURSE_JWT_SECRET: "test-jwt-secret-of-enough-length-000000",
    BOURSE_RATE_LIMIT_PER_SECOND: "100000",
    // Every test signs its users up from one address.
    BOURSE_SIGNUPS_PER_ADDRESS_PER_HOUR: "100000",
    // The authorization matrix and the fuzz tests present thousands of refused keys from one address.
    BOURSE_API_KEY_REFUSALS_PER_SECOND: "100000",
    ...options.environment,
  });
  const clock = options.clock ?? new ManualClock(TUESDAY_NOON);
  const server = await createServer({
    config,
    clock,
    log: quietLog,
    engineConfig: options.engineConfig,
    shutdownGraceMs: options.shutdownGraceMs,
  });
  await server.start();
  return {
    ...server,
    clock,
    config,
    dataDirectory,
    async close() {
      await server.close();
      if (!options.dataDirectory) rmSync(dataDirectory, { recursive: true, force: true });
    },
  };
}

export interface CallOptions {
  token?: string | null;
  body?: unknown;
  headers?: Record<string, string>;
}

export async function call(server: BourseServer, method: string, url: string, options: CallOptions = {}) {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = options.token;
  const response = await server.app.inject({
    method: method as "GET",
    url,
    headers,
    ...(options.body === undefined ? {} : { payload: options.body as object }),
  });
  let body: unknown = response.body;
  try {
    body = JSON.parse(response.body);
  } catch {
    // Not JSON (metrics, docs): keep the text.
  }
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return { status: response.statusCode, body: body as any, headers: response.headers };
}

export function admin(server: BourseServer, method: string, url: string, body?: unknown) {
  return call(server, method, url, { token: `Bearer ${ADMIN_TOKEN}`, body });
}

let userCounter = 0;

/** Signs up a new user; returns the token and the login of their demo account. */
export async function signUp(
  server: BourseServer,
  overrides: { email?: string; password?: string; keepSignedIn?: boolean } = {},
) {
  userCounter += 1;
  const email = overrides.email ?? `trader${userCounter}-${Math.floor(performance.now())}@example.com`;
  const password = overrides.password ?? "correct horse battery";
  const response = await call(server, "POST", "/api/v1/signup", {
    body: {
      email,
      password,
      name: `Trader ${userCounter}`,
      ...(overrides.keepSignedIn === undefined ? {} : { keepSignedIn: overrides.keepSignedIn }),
    },
  });
  if (response.status !== 200) throw new Error(`signup failed: ${response.status} ${JSON.stringify(response.body)}`);
  return {
    email,
    password,
    token: response.body.data.token as string,
    /** With `keepSignedIn` only. */
    refreshToken: response.body.data.refreshToken as string,
    login: response.body.data.account.login as number,
    userId: response.body.data.user.id as string,
  };
}

/** Pushes one quote through the admin API (prices as decimals). */
export async function pushQuote(server: BourseServer, symbol: string, bid: number | string, ask: number | string) {
  const response = await admin(server, "POST", "/admin/v1/quotes", { symbol, bid, ask });
  // A quote of a closed market answers 200 without being taken: a test pushing one would go on at the old price.
  if (response.status !== 200 || response.body.data.accepted !== 1)
    throw new Error(`quote push failed: ${response.status} ${JSON.stringify(response.body)}`);
}

/**
 * Quotes EURUSD with two thin levels a side: 0.1 lot at the best price, 0.1 lot 10 points (0.00010) worse, so an order
 * or a close of 0.2 lot walks the book in two deals.
 */
export async function pushThinEurusdBook(server: BourseServer, bid: string, ask: string): Promise<void> {
  const point = (price: string, by: number) => (Number(price) + by / 100_000).toFixed(5);
  const response = await admin(server, "POST", "/admin/v1/quotes", {
    symbol: "EURUSD",
    bid,
    ask,
    bids: [
      { price: bid, volume: "0.1" },
      { price: point(bid, -10), volume: "0.1" },
    ],
    asks: [
      { price: ask, volume: "0.1" },
      { price: point(ask, 10), volume: "0.1" },
    ],
  });
  if (response.status !== 200 || response.body.data.accepted !== 1)
    throw new Error(`quote push failed: ${response.status} ${JSON.stringify(response.body)}`);
}

/** Waits until the queued store writes of notifications and price alerts have run (they never block a request). */
export async function settle(server: BourseServer): Promise<void> {
  await NotificationService.for(server.platform).queue.drain();
}

/** A table's rows as objects keyed by its structure. */
export function tableObjects(table: { structure: string[]; rows: unknown[][] }): Record<string, unknown>[] {
  return table.rows.map((row) => Object.fromEntries(table.structure.map((column, index) => [column, row[index]])));
}

/** Creates an API key for the user's account through the Client API; returns its id and the whole key. */
export async function createApiKey(
  server: BourseServer,
  user: { token: string; login: number },
  scope: "read" | "trade" | "full",
  accountId: number = user.login,
): Promise<{ id: string; key: string }> {
  const response = await call(server, "PUT", "/api/v1/api-keys", {
    token: user.token,
    body: { name: `${scope} bot`, accountId, scope },
  });
  if (response.status !== 200)
    throw new Error(`api key creation failed: ${response.status} ${JSON.stringify(response.body)}`);
  return { id: response.body.data.id as string, key: response.body.data.key as string };
}

/** Calls the Automation API with an API key (`Authorization: Bearer <key>`; null: no header). */
export function automation(server: BourseServer, method: string, url: string, key: string | null, body?: unknown) {
  return call(server, method, url, { token: key === null ? null : `Bearer ${key}`, body });
}

/** Runs one statement on a connection of its own to `connectionString`. */
async function runSql(connectionString: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

export interface PostgresTestServer {
  /** Set once the file's `beforeAll` has run. */
  readonly server: TestServer;
  /** The URL of the server's own database. */
  readonly databaseUrl: string;
}

/**
 * A test server on a PostgreSQL database of its own (BOURSE_DATABASE_URL), named `database`, made on the server of
 * `connectionString` in the suite's `beforeAll` and dropped with the server closed in its `afterAll`. `databaseUrl`
 * is set in the `beforeAll` too.
 */
export function postgresTestServer(connectionString: string | undefined, database: string): PostgresTestServer {
  const fixture = { server: undefined as unknown as TestServer, databaseUrl: "" };
  // In the hooks: a suite skipped for want of a connection string is still collected, and runs neither.
  beforeAll(async () => {
    const url = new URL(connectionString!);
    url.pathname = `/${database}`;
    fixture.databaseUrl = url.toString();
    await runSql(connectionString!, `CREATE DATABASE "${database}"`);
    fixture.server = await startTestServer({ environment: { BOURSE_DATABASE_URL: fixture.databaseUrl } });
  });
  afterAll(async () => {
    await fixture.server?.close();
    await runSql(connectionString!, `DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
  });
  return fixture;
}

/**
 * Sends `text` as it is on a new connection to `port` and waits for the server to close it (within 5 s): answers the
 * status, the headers (lower case, one a line) and the body as text. For what no HTTP client sends.
 */
export function rawExchange(port: number, text: string): Promise<{ status: number; headers: string; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    let received = "";
    socket.setTimeout(5_000, () => reject(new Error(`no close; received ${JSON.stringify(received)}`)));
    socket.on("data", (chunk: Buffer) => (received += chunk.toString("utf8")));
    socket.on("close", () => {
      const split = received.indexOf("\r\n\r\n");
      const [statusLine = "", ...headers] = received.slice(0, split).split("\r\n");
      resolve({
        status: Number(statusLine.split(" ")[1]),
        headers: headers.join("\n").toLowerCase(),
        body: received.slice(split + 4),
      });
    });
    socket.on("error", reject);
    socket.write(text);
  });
}

/** `bourse start` in a child process, its standard output and error as they come, and its exit code. */
export interface BourseProcess {
  readonly child: ChildProcess;
  /** Standard output so far; with standard error too when `separate` is not asked for. */
  printed(): string;
  /** Standard error so far (when started with `separate`). */
  errors(): string;
  readonly exited: Promise<number | null>;
  /** Resolves once the output holds `text` (within `timeoutMs`), or once it is clear it never will. */
  waitFor(text: string, timeoutMs?: number): Promise<void>;
}

export function spawnBourse(environment: NodeJS.ProcessEnv, options: { separate?: boolean } = {}): BourseProcess {
  const child = spawn(process.execPath, [path.join(import.meta.dirname, "../bin/bourse.mjs"), "start"], {
    env: { ...process.env, ...environment },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let error = "";
  child.stdout!.on("data", (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => {
    if (options.separate) error += chunk.toString();
    else out += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    printed: () => out,
    errors: () => error,
    exited,
    async waitFor(text, timeoutMs = 30_000) {
      for (let waited = 0; !out.includes(text) && waited < timeoutMs && child.exitCode === null; waited += 20)
        await new Promise((resolve) => setTimeout(resolve, 20));
    },
  };
}
