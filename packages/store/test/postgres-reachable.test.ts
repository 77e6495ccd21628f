/**
 * Waiting for PostgreSQL at start (postgres-reachable.ts) against the real server (BOURSE_TEST_PG_URL): a server that
 * is there and takes the URL answers at once; one that cannot take the URL's connection settings is refused at once,
 * not waited for (found by the review of 7 December, seventh session: `sslmode=require` against a server without TLS
 * was retried for the whole wait, then blamed on the host and port); a port nothing listens on is waited for.
 */
import { createServer, type AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { PostgresRefusedError, PostgresUnreachableError, waitForPostgres } from "../src/index.ts";

const connectionString = process.env.BOURSE_TEST_PG_URL;

if (!connectionString)
  console.warn(
    "waitForPostgres tests skipped: BOURSE_TEST_PG_URL is unset (e.g. postgres://postgres@127.0.0.1:5432/test)",
  );

describe.skipIf(!connectionString)("waitForPostgres", () => {
  it("connects at once to a server that is there", async () => {
    const retries: string[] = [];
    await waitForPostgres(connectionString!, { timeoutMs: 5_000, onRetry: (line) => retries.push(line) });
    expect(retries).toEqual([]);
  });

  it("refuses at once connection settings the server cannot take (TLS it does not speak), without waiting", async () => {
    const url = new URL(connectionString!);
    url.searchParams.set("sslmode", "require");
    const retries: string[] = [];
    const started = performance.now();
    const failure = await waitForPostgres(url.toString(), {
      timeoutMs: 10_000,
      onRetry: (line) => retries.push(line),
    }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(PostgresRefusedError);
    expect((failure as Error).message).toMatch(/not retried: correct the URL's connection settings/);
    expect(retries).toEqual([]);
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it("waits for a port nothing listens on, telling of each attempt, then gives up", async () => {
    const retries: string[] = [];
    const failure = await waitForPostgres("postgres://postgres:secret@127.0.0.1:1/test", {
      timeoutMs: 1_500,
      onRetry: (line) => retries.push(line),
    }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(PostgresUnreachableError);
    expect(retries.length).toBeGreaterThan(0);
    expect(retries[0]).toMatch(/^PostgreSQL at 127\.0\.0\.1:1 is not reachable \(ECONNREFUSED\), retrying in /);
    expect(JSON.stringify([retries, (failure as Error).message])).not.toContain("secret");
  });
});

describe("waitForPostgres against a server that accepts and never answers", () => {
  it("takes a connect timeout for a server not there yet and waits, as for a refused connection", async () => {
    const silent = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as AddressInfo;
    try {
      const retries: string[] = [];
      const failure = await waitForPostgres(`postgres://postgres@127.0.0.1:${port}/test`, {
        timeoutMs: 2_500,
        onRetry: (line) => retries.push(line),
      }).catch((error: unknown) => error);
      // Unreachable (exit 5, start it), not refused (exit 2, the URL's settings): the attempt took all the time there was.
      expect(failure).toBeInstanceOf(PostgresUnreachableError);
      expect((failure as Error).message).toMatch(/was not reachable within 2\.5 s \(timeout expired; 1 attempt\)/);
      expect(retries).toEqual([]);
    } finally {
      silent.close();
    }
  });
});
