/**
 * Seed 003's Python quick start, run unchanged (but for its API_KEY and BASE_URL) with python3 and
 * `requests` against a listening server: it prints the balance and equity, the open positions with their
 * P&L, and the ticket and price of a market buy with SL/TP. Then the test closes and modifies positions
 * through the API over the same socket, as seed 003's fourth example line says.
 */
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { automation, createApiKey, pushQuote, signUp, startTestServer, type TestServer } from "./helpers.ts";

const EXAMPLE = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures", "seed-003-example.py");
const SEED_KEY_LINE = 'API_KEY = "tk_live_a1b2c3d4e5f6"';
const SEED_URL_LINE = 'BASE_URL = "http://127.0.0.1:8080/v1"';

const probe = spawnSync("python3", ["-c", "import requests"], { encoding: "utf8" });
const pythonReady = probe.status === 0;
if (!pythonReady)
  console.warn(
    `automation-python.test.ts skipped: python3 with the requests package is needed (${probe.error?.message ?? probe.stderr.trim()})`,
  );

/** Runs a Python program from stdin without blocking the event loop (the server answers in this process). */
function runPython(source: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("python3", ["-"], { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, NO_PROXY: "*" } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(source);
  });
}

let server: TestServer;
let baseUrl: string;

beforeAll(async () => {
  if (!pythonReady) return;
  server = await startTestServer({
    environment: { BOURSE_PORT: "0", BOURSE_HOST: "127.0.0.1", BOURSE_AUTOMATION_RATE_LIMIT_PER_SECOND: "100000" },
  });
  baseUrl = `${await server.listen()}/v1`;
});

afterAll(async () => {
  await server?.close();
});

describe("seed 003's Python example", () => {
  it.skipIf(!pythonReady)("runs unchanged against the server and prints what the seed promises", async () => {
    expect(baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
    const user = await signUp(server);
    const { key } = await createApiKey(server, user, "trade");
    // Seed 003's buy has volume 0.10, sl 1.0800, tp 1.0950 on EURUSD: a market around 1.0843 makes them valid.
    await pushQuote(server, "EURUSD", "1.08430", "1.08440");
    const existing = await automation(server, "POST", "/v1/api/trade", key, {
      symbol: "EURUSD",
      action: "sell",
      volume: 0.05,
    });
    expect(existing.status).toBe(200);

    const seed = readFileSync(EXAMPLE, "utf8");
    expect(seed.split("\n").filter((line) => line === SEED_KEY_LINE || line === SEED_URL_LINE)).toHaveLength(2);
    const program = seed.replace(SEED_KEY_LINE, `API_KEY = "${key}"`).replace(SEED_URL_LINE, `BASE_URL = "${baseUrl}"`);
    // Only those two lines differ.
    const changed = program.split("\n").filter((line, index) => line !== seed.split("\n")[index]);
    expect(changed).toEqual([`API_KEY = "${key}"`, `BASE_URL = "${baseUrl}"`]);

    const run = await runPython(program);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const printed = run.stdout.trimEnd().split("\n");
    expect(printed).toHaveLength(4);
    expect(printed[0]).toBe("Balance: 10000");
    // The sell of 0.05 lot at the bid 1.08430 is valued at the ask 1.08440: −0.50 USD.
    expect(printed[1]).toBe("Equity: 9999.5");
    expect(printed[2]).toBe(" EURUSD sell 0.05 lots P&L: -0.5");
    const filled = /^Filled ticket #(\d+) @ (.+)$/.exec(printed[3]!);
    expect(filled, printed[3]).not.toBeNull();
    expect(filled![2]).toBe("1.0844");
    const ticket = Number(filled![1]);

    // The buy is there with seed 003's SL and TP.
    const headers = { authorization: `Bearer ${key}`, "content-type": "application/json" };
    const position = await fetch(`${baseUrl}/api/positions/${ticket}`, { headers });
    expect(position.status).toBe(200);
    expect(((await position.json()) as { data: unknown }).data).toMatchObject({
      ticket,
      symbol: "EURUSD",
      type: "buy",
      volume: 0.1,
      openPrice: 1.0844,
      sl: 1.08,
      tp: 1.095,
    });

    // Modify it, then close the sell, then half the buy, then the rest, over the socket.
    const modified = await fetch(`${baseUrl}/api/positions/${ticket}/modify`, {
      method: "POST",
      headers,
      body: JSON.stringify({ sl: 1.081, tp: 1.096 }),
    });
    expect(modified.status).toBe(200);
    expect(((await modified.json()) as { data: unknown }).data).toMatchObject({ ticket, sl: 1.081, tp: 1.096 });

    await pushQuote(server, "EURUSD", "1.08630", "1.08640");
    const closedSell = await fetch(`${baseUrl}/api/positions/${existing.body.data.ticket}/close`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}` },
    });
    expect(closedSell.status).toBe(200);
    // Sold at 1.08430, bought back at the ask 1.08640: −10.50 USD on 0.05 lot.
    expect(((await closedSell.json()) as { data: unknown }).data).toMatchObject({
      volume: 0.05,
      price: 1.0864,
      profit: -10.5,
      remainingVolume: 0,
    });
    const half = await fetch(`${baseUrl}/api/positions/${ticket}/close`, {
      method: "POST",
      headers,
      body: JSON.stringify({ volume: 0.05 }),
    });
    // Bought at 1.08440, sold at the bid 1.08630: +9.50 USD on 0.05 lot.
    expect(((await half.json()) as { data: unknown }).data).toMatchObject({
      ticket,
      volume: 0.05,
      price: 1.0863,
      profit: 9.5,
      remainingVolume: 0.05,
    });
    const rest = await fetch(`${baseUrl}/api/positions/${ticket}/close`, { method: "POST", headers, body: "{}" });
    expect(((await rest.json()) as { data: unknown }).data).toMatchObject({ profit: 9.5, remainingVolume: 0 });

    // And the example, run again, sees the result: no positions, 10,000 − 10.50 + 19.00.
    const again = await runPython(program);
    expect(again.stdout.split("\n").slice(0, 2)).toEqual(["Balance: 10008.5", "Equity: 10008.5"]);
  });

  it.skipIf(!pythonReady)("prints seed 003's error envelope for a key without the trade scope", async () => {
    const user = await signUp(server);
    const { key } = await createApiKey(server, user, "read");
    const program = [
      "import requests",
      `response = requests.post("${baseUrl}/api/trade", headers={"Authorization": "Bearer ${key}"}, json={"symbol": "EURUSD", "action": "buy", "volume": 0.10})`,
      "body = response.json()",
      'print(response.status_code, body["success"], body["code"])',
    ].join("\n");
    const run = await runPython(program);
    expect(run.stderr).toBe("");
    expect(run.stdout.trim()).toBe("403 False INSUFFICIENT_SCOPE");
  });
});
