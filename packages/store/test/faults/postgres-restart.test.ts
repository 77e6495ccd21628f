/**
 * PostgreSQL stopped mid-load and restarted (issue 3). The real server on this machine is stopped with
 * `pg_ctlcluster … stop -m immediate` (a crash as far as the clients can tell) while deposits stream
 * in, then started again. Checked: while it is down commands fail or report an unknown outcome, never
 * a false success; the engine rebuilds and carries on by itself once the server is back; every
 * acknowledged deposit is in the journal exactly once, no refused one is, and `verify` finds nothing.
 *
 * It stops a shared server, so it runs on its own before the main suite (vitest.faults.config.ts), and
 * only where it can: BOURSE_TEST_PG_URL set, pg_ctlcluster present, running as root.
 */
import { defaultEngineConfig } from "@bourse/core";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import pg from "pg";
import { describe, expect, it } from "vitest";
import {
  DurableEngine,
  EngineOverloadedError,
  EngineUnavailableError,
  PostgresJournal,
  verify,
} from "../../src/index.ts";
import { TUESDAY_NOON } from "../trading-session.ts";

const url = process.env.BOURSE_TEST_PG_URL;
const clusterVersion = existsSync("/etc/postgresql") ? readdirSync("/etc/postgresql")[0] : undefined;
const canRestart =
  Boolean(url) && existsSync("/usr/bin/pg_ctlcluster") && clusterVersion !== undefined && process.getuid?.() === 0;
if (!canRestart)
  console.warn("postgres-restart: skipped (needs BOURSE_TEST_PG_URL, pg_ctlcluster and root; .ci/run provides them)");

function cluster(action: "stop" | "start"): void {
  const extra = action === "stop" ? ["-m", "immediate"] : [];
  execFileSync("pg_ctlcluster", ["--skip-systemctl-redirect", clusterVersion as string, "main", action, ...extra], {
    stdio: "ignore",
  });
}

const sleep = (milliseconds: number) => new Promise((resolve) => setTimeout(resolve, milliseconds));

describe.skipIf(!canRestart)("PostgreSQL stopped mid-load and restarted", () => {
  it(
    "never reports a false success, recovers by itself and loses no acknowledged deposit",
    { timeout: 120_000 },
    async () => {
      const schema = `fault_restart_${process.pid}_${Date.now()}`;
      const config = defaultEngineConfig();
      const engine = await DurableEngine.open({
        journal: new PostgresJournal({ connectionString: url as string, schema, connectTimeoutMilliseconds: 1_000 }),
        config,
        log: () => {},
        rebuildRetryMilliseconds: 200,
      });
      let time = TUESDAY_NOON;
      const opened = await engine.submit({
        kind: "openAccount",
        time,
        userId: "fault",
        currency: "USD",
        leverage: 100,
        mode: "HEDGING",
      });
      expect(opened.ok).toBe(true);
      const accountId = (opened as { accountId: number }).accountId;

      const acknowledged = new Set<string>();
      const refused = new Set<string>();
      const unknown = new Set<string>();
      let serverDown = false;
      let successesWhileDown = 0;
      let stop = false;
      let counter = 0;
      const worker = async () => {
        while (!stop) {
          const comment = `deposit-${counter++}`;
          time += 10;
          const submittedWhileDown = serverDown;
          try {
            const result = await engine.submit({ kind: "deposit", time, accountId, amount: 100, comment });
            if (!result.ok) throw new Error(`deposit rejected: ${result.code}`);
            acknowledged.add(comment);
            if (submittedWhileDown && serverDown) successesWhileDown++;
          } catch (error) {
            if (error instanceof EngineUnavailableError) (error.outcomeUnknown ? unknown : refused).add(comment);
            else if (error instanceof EngineOverloadedError) refused.add(comment);
            else throw error;
            await sleep(20);
          }
        }
      };
      const workers = Array.from({ length: 20 }, worker);
      try {
        await sleep(500);
        const before = acknowledged.size;
        serverDown = true;
        cluster("stop");
        await sleep(1_500);
        serverDown = false;
        cluster("start");
        // The engine rebuilds from the journal by itself once the server answers again.
        const deadline = Date.now() + 60_000;
        const afterRestart = () => [...acknowledged].length;
        const atRestart = afterRestart();
        while (afterRestart() < atRestart + 50 && Date.now() < deadline) await sleep(100);
        expect(before).toBeGreaterThan(0);
        expect(refused.size + unknown.size).toBeGreaterThan(0);
        expect(afterRestart()).toBeGreaterThanOrEqual(atRestart + 50);
      } finally {
        stop = true;
        await Promise.allSettled(workers);
        if (serverDown) cluster("start");
      }
      expect(successesWhileDown).toBe(0);
      console.info(
        `postgres-restart: ${acknowledged.size} acknowledged, ${refused.size} refused, ${unknown.size} unknown outcome`,
      );
      await engine.close();

      const journal = new PostgresJournal({ connectionString: url as string, schema });
      try {
        await journal.open();
        const counts = new Map<string, number>();
        let balance = 0;
        for (let after = 0; ;) {
          const records = await journal.read(after, 10_000);
          if (records.length === 0) break;
          for (const { event } of records) {
            if (event.type === "BalanceOperation" && event.kind === "DEPOSIT") {
              counts.set(event.comment, (counts.get(event.comment) ?? 0) + 1);
              balance += event.amount;
            }
          }
          after = records[records.length - 1]!.sequence;
        }
        for (const comment of acknowledged) expect(counts.get(comment), comment).toBe(1);
        for (const comment of refused) expect(counts.get(comment), comment).toBeUndefined();
        for (const comment of unknown) expect([undefined, 1]).toContain(counts.get(comment));
        const report = await verify(journal, config);
        expect(report.differences).toEqual([]);
        expect(balance).toBe([...counts.values()].reduce((sum, count) => sum + count, 0) * 100);
      } finally {
        await journal.close();
        const client = new pg.Client({ connectionString: url });
        await client.connect();
        await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        await client.end();
      }
    },
  );
});
