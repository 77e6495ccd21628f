/**
 * `npm run bench`: runs every benchmark group and prints one table. Each figure sits beside a
 * baseline measured in the same process, so ratios can be compared across machines.
 *
 *   npm run bench                      all groups
 *   npm run bench -- engine.ticks      only the groups named (a prefix: `engine` runs engine.*)
 *   npm run bench -- --json out.json   also write the rows as JSON
 *   npm run bench -- --verbose         print every timed run's rate (stderr)
 *   npm run bench -- --profile DIR     write a CPU profile of each measurement's timed runs to DIR
 *                                      (summarise: node --import tsx bench/profile-summary.ts DIR/*.cpuprofile)
 *
 * To add a group (durable storage, HTTP, websockets...): write bench/<name>.ts exporting a
 * `BenchGroup` (see harness.ts) and list it in GROUPS below.
 */
import { writeFileSync } from "node:fs";
import { engineConversionGroup, engineOrdersGroup, engineStopOutGroup, engineTicksGroup } from "./engine.ts";
import { httpSerializerGroup } from "./http-serializer.ts";
import { httpOrdersGroup } from "./http.ts";
import { storeBreakdownGroup } from "./store-breakdown.ts";
import { storeLatencyGroup } from "./store-latency.ts";
import { storeSnapshotGroup } from "./store-snapshot.ts";
import { storeOrdersGroup, storeRecoveryGroup } from "./store.ts";
import { wsFanoutGroup } from "./ws.ts";
import {
  formatRate,
  machineDescription,
  profileMeasurementsTo,
  resultsTable,
  stealMeter,
  type BenchGroup,
  type Row,
} from "./harness.ts";

const GROUPS: readonly BenchGroup[] = [
  engineTicksGroup,
  engineOrdersGroup,
  engineConversionGroup,
  engineStopOutGroup,
  storeOrdersGroup,
  storeBreakdownGroup,
  storeRecoveryGroup,
  storeSnapshotGroup,
  storeLatencyGroup,
  httpOrdersGroup,
  httpSerializerGroup,
  wsFanoutGroup,
];

interface Options {
  readonly filters: readonly string[];
  readonly jsonPath: string | null;
  readonly verbose: boolean;
  readonly profileDirectory: string | null;
}

function parseArguments(args: readonly string[]): Options {
  const filters: string[] = [];
  let jsonPath: string | null = null;
  let verbose = false;
  let profileDirectory: string | null = null;
  for (let index = 0; index < args.length; index++) {
    const arg = args[index] as string;
    if (arg === "--json") {
      const path = args[++index];
      if (path === undefined) throw new Error("--json needs a file path");
      jsonPath = path;
    } else if (arg === "--profile") {
      const directory = args[++index];
      if (directory === undefined) throw new Error("--profile needs a directory");
      profileDirectory = directory;
    } else if (arg === "--verbose") {
      verbose = true;
    } else if (arg === "--help" || arg === "-h") {
      process.stdout.write(
        `groups: ${GROUPS.map((group) => group.name).join(", ")}\nusage: npm run bench -- [group...] [--json file] [--verbose] [--profile dir]\n`,
      );
      process.exit(0);
    } else filters.push(arg);
  }
  return { filters, jsonPath, verbose, profileDirectory };
}

function selected(group: BenchGroup, filters: readonly string[]): boolean {
  return filters.length === 0 || filters.some((filter) => group.name === filter || group.name.startsWith(`${filter}.`));
}

async function main(): Promise<void> {
  const options = parseArguments(process.argv.slice(2));
  if (options.profileDirectory !== null) profileMeasurementsTo(options.profileDirectory);
  const groups = GROUPS.filter((group) => selected(group, options.filters));
  if (groups.length === 0)
    throw new Error(
      `no benchmark group matches ${options.filters.join(", ")}; groups: ${GROUPS.map((group) => group.name).join(", ")}`,
    );
  const context = { log: (message: string) => process.stderr.write(`${message}\n`) };
  const started = performance.now();
  const steal = stealMeter();
  const rows: Row[] = [];
  for (const group of groups) {
    context.log(`== ${group.name}: ${group.description}`);
    const groupRows = await group.run(context);
    if (options.verbose) {
      const shown = new Set<string>();
      for (const result of groupRows) {
        if (shown.has(result.name)) continue;
        shown.add(result.name);
        context.log(`  ${result.name}: ${result.samples.map((rate) => formatRate(rate)).join(", ")} ${result.unit}`);
      }
    }
    rows.push(...groupRows);
  }
  const seconds = (performance.now() - started) / 1000;
  const stealShare = steal();

  const lines = [
    "",
    `Machine: ${machineDescription()}`,
    "Rate: median over the timed runs (wall clock) after warm-up. Per CPU s: the same work per second of process CPU time",
    "(all threads), steadier when other processes compete for the cores. Runs ±: (max − min) / median of the runs.",
    "Ratio: rate / baseline rate, the median of per-round ratios (a figure and its baseline run interleaved).",
    "",
    resultsTable(rows),
    "",
    ...rows
      .filter((result) => result.note !== undefined)
      .map((result) => `- ${result.name} (${formatRate(result.perSecond)} ${result.unit}): ${result.note}`),
    "",
    `Total time ${seconds.toFixed(1)} s.` +
      (Number.isNaN(stealShare)
        ? ""
        : ` The hypervisor gave ${(stealShare * 100).toFixed(0)} % of the machine's CPU time to other guests meanwhile (steal).`),
    "",
  ];
  process.stdout.write(lines.join("\n"));
  if (options.jsonPath !== null) {
    writeFileSync(
      options.jsonPath,
      `${JSON.stringify({ machine: machineDescription(), date: new Date().toISOString(), rows }, null, 2)}\n`,
    );
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
