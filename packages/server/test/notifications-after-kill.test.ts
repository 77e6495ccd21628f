/**
 * Notifications survive a kill -9: a real `bourse start` in a child process fills market orders, is killed
 * with SIGKILL the moment the last fill is acknowledged (its notifications still waiting for their batch
 * write), and is started again on the same data directory: every acknowledged fill has its notification,
 * exactly once, and a second kill and start adds none twice.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const ADMIN_TOKEN = "admin-token-of-the-kill-test-0000000000";
const ORDERS = 40;
const directory = mkdtempSync(path.join(tmpdir(), "bourse-notifications-kill-"));
const port = 20_000 + Math.floor(Math.random() * 20_000);
const base = `http://127.0.0.1:${port}`;

afterAll(() => rmSync(directory, { recursive: true, force: true }));

interface Running {
  readonly child: ChildProcessWithoutNullStreams;
  readonly exited: Promise<void>;
  output(): string;
}

async function startServer(): Promise<Running> {
  const child = spawn(process.execPath, [path.join(import.meta.dirname, "../bin/bourse.mjs"), "start"], {
    env: {
      ...process.env,
      BOURSE_DATA_DIR: directory,
      BOURSE_PORT: String(port),
      BOURSE_HOST: "127.0.0.1",
      BOURSE_FEED: "push",
      BOURSE_ADMIN_TOKEN: ADMIN_TOKEN,
      BOURSE_DEMO_BALANCE: "1000000",
      BOURSE_RATE_LIMIT_PER_SECOND: "100000",
    },
  });
  let printed = "";
  child.stdout.on("data", (chunk: Buffer) => (printed += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (printed += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  for (let waited = 0; !printed.includes("Bourse is running at"); waited += 50) {
    if (waited > 30_000 || child.exitCode !== null) throw new Error(`the server did not start:\n${printed}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { child, exited, output: () => printed };
}

/** The parts of the answers this test reads. */
interface AnswerBody {
  readonly data: {
    readonly token: string;
    readonly account: { readonly login: number };
    readonly order: { readonly id: number };
  };
  readonly rows: unknown[][];
}

async function request(method: string, url: string, body?: unknown, token?: string) {
  const response = await fetch(`${base}${url}`, {
    method,
    headers: {
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as AnswerBody };
}

async function kill(running: Running): Promise<void> {
  running.child.kill("SIGKILL");
  await running.exited;
}

/** The titles of the user's notifications, oldest first, once `expected` are stored or 10 s have passed. */
async function notificationTitles(token: string, expected: number): Promise<string[]> {
  let titles: string[] = [];
  for (let waited = 0; waited <= 10_000; waited += 100) {
    const response = await request("GET", "/api/v1/notifications?limit=1000", undefined, token);
    expect(response.status).toBe(200);
    titles = response.body.rows.map((row) => row[4] as string).reverse();
    if (titles.length >= expected) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return titles;
}

/** Places one BTCUSD market buy and returns its notification's title. */
async function buy(token: string, login: number): Promise<string> {
  const answer = await request(
    "POST",
    `/api/v1/accounts/${login}/orders`,
    { symbol: "BTCUSD", side: "BUY", type: "MARKET", volume: 0.01 },
    token,
  );
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  return `Order #${answer.body.data.order.id} filled`;
}

async function signIn(): Promise<string> {
  const answer = await request("POST", "/api/v1/login", { email: EMAIL, password: PASSWORD });
  expect(answer.status).toBe(200);
  return answer.body.data.token;
}

/** BTCUSD trades at every hour of the week, so the test does not depend on when it runs. */
async function pushQuote(): Promise<void> {
  const answer = await request("POST", "/admin/v1/quotes", { symbol: "BTCUSD", bid: 60000, ask: 60010 }, ADMIN_TOKEN);
  expect(answer.status).toBe(200);
}

function orderId(title: string): number {
  return Number(/#(\d+)/.exec(title)![1]);
}

const EMAIL = "killed@example.com";
const PASSWORD = "correct horse battery";

describe("notifications after kill -9", () => {
  it("stores every acknowledged fill's notification exactly once after a kill -9 and a restart", async () => {
    let running = await startServer();
    let login = 0;
    const filled: string[] = [];
    try {
      const signUp = await request("POST", "/api/v1/signup", { email: EMAIL, password: PASSWORD, name: "Killed" });
      expect(signUp.status).toBe(200);
      const token = signUp.body.data.token;
      login = signUp.body.data.account.login;
      await pushQuote();
      const answers = await Promise.all(Array.from({ length: ORDERS }, () => buy(token, login)));
      // Killed at once: the last fills' notifications wait for their batch (NOTIFICATION_BATCH_DELAY_MS).
      await kill(running);
      // Orders are filled in the order the server took them; their notifications follow the journal.
      filled.push(...answers.sort((a, b) => orderId(a) - orderId(b)));
    } catch (error) {
      await kill(running);
      throw error;
    }
    // Twice: the second start must not derive again what the first stored. A fill made after each start is
    // stored behind whatever the start derives, so once it is there the list is complete.
    for (const round of [1, 2]) {
      running = await startServer();
      try {
        await pushQuote();
        const token = await signIn();
        filled.push(await buy(token, login));
        expect(await notificationTitles(token, filled.length), `after restart ${round}`).toEqual(filled);
      } finally {
        await kill(running);
      }
    }
  }, 90_000);
});
