/**
 * The real server the HTTP and WebSocket benchmarks run against: a fresh SQLite data directory, the push
 * feed (only the bench moves prices), the clock pinned to a Tuesday noon (markets open) and no per-user
 * rate limit (it protects a real server; the benchmarks measure the path behind it).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ManualClock } from "../packages/server/src/clock.ts";
import { loadServerConfig } from "../packages/server/src/config.ts";
import { createServer, type BourseServer, type CreateServerOptions } from "../packages/server/src/server.ts";
import type { BenchContext } from "./harness.ts";

/** Tuesday 2 June 2026, 12:00 UTC. */
export const BENCH_TUESDAY_NOON = Date.UTC(2026, 5, 2, 12, 0);

export interface BenchServer {
  readonly server: BourseServer;
  readonly dataDirectory: string;
  /** Closes the server and removes its data directory. */
  dispose(): Promise<void>;
}

export async function createBenchServer(
  context: BenchContext,
  name: string,
  options: Pick<CreateServerOptions, "engineConfig" | "stream"> = {},
): Promise<BenchServer> {
  const dataDirectory = mkdtempSync(join(tmpdir(), `bourse-bench-${name}-`));
  const config = loadServerConfig({
    BOURSE_DATA_DIR: dataDirectory,
    BOURSE_FEED: "push",
    BOURSE_PORT: "0",
    BOURSE_ADMIN_TOKEN: "bench-admin-token",
    BOURSE_JWT_SECRET: "bench-jwt-secret-bench-jwt-secret",
    BOURSE_RATE_LIMIT_PER_SECOND: "1000000",
    // The benches sign their users up from one address.
    BOURSE_SIGNUPS_PER_ADDRESS_PER_HOUR: "1000000",
  });
  const server = await createServer({
    ...options,
    config,
    clock: new ManualClock(BENCH_TUESDAY_NOON),
    log: { info: () => undefined, warn: (line) => context.log(line), error: (line) => context.log(line) },
  });
  return {
    server,
    dataDirectory,
    async dispose() {
      await server.close();
      rmSync(dataDirectory, { recursive: true, force: true });
    },
  };
}
