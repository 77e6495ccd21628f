/**
 * Summarises a V8 CPU profile (.cpuprofile) as the functions with the most self time.
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/run.ts engine.ticks
 *   node --import tsx bench/profile-summary.ts /tmp/prof/<file>.cpuprofile [--top 25]
 */
import { readFileSync } from "node:fs";
import { relative } from "node:path";
import { renderTable } from "./harness.ts";

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
}

interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface HotSpot {
  readonly name: string;
  readonly location: string;
  readonly selfMs: number;
  readonly share: number;
}

/**
 * Samples left out of the shares: the idle thread, and `dispatch` (no script), the in-process
 * inspector call that stops the profiler and serialises the profile (bench --profile).
 */
function excluded(name: string, location: string): boolean {
  return name === "(idle)" || (name === "dispatch" && location === "");
}

/** Self time per function (all call sites of one function together), most first. */
export function hotSpots(profile: Profile, root = process.cwd()): HotSpot[] {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfMicros = new Map<string, { name: string; location: string; micros: number }>();
  let total = 0;
  for (let index = 0; index < profile.samples.length; index++) {
    const node = nodes.get(profile.samples[index] as number);
    const delta = profile.timeDeltas[index] ?? 0;
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url.startsWith("file://") ? relative(root, new URL(url).pathname) : url;
    const location = file === "" ? "" : lineNumber > 0 ? `${file}:${lineNumber + 1}` : file;
    const name = functionName === "" ? "(anonymous)" : functionName;
    if (excluded(name, location)) continue;
    total += delta;
    const key = `${name} ${location}`;
    const entry = selfMicros.get(key) ?? { name, location, micros: 0 };
    entry.micros += delta;
    selfMicros.set(key, entry);
  }
  return [...selfMicros.values()]
    .sort((a, b) => b.micros - a.micros)
    .map((entry) => ({
      name: entry.name,
      location: entry.location,
      selfMs: entry.micros / 1000,
      share: total === 0 ? 0 : entry.micros / total,
    }));
}

function main(): void {
  const args = process.argv.slice(2);
  const topIndex = args.indexOf("--top");
  const top = topIndex >= 0 ? Number(args[topIndex + 1]) : 25;
  const paths = args.filter((_arg, index) => topIndex < 0 || (index !== topIndex && index !== topIndex + 1));
  if (paths.length === 0) throw new Error("usage: profile-summary.ts <file.cpuprofile>... [--top N]");
  for (const path of paths) {
    const spots = hotSpots(JSON.parse(readFileSync(path, "utf8")) as Profile);
    const busy = spots.reduce((sum, spot) => sum + spot.selfMs, 0);
    const body = spots
      .slice(0, top)
      .map((spot) => [`${(spot.share * 100).toFixed(1)} %`, spot.selfMs.toFixed(0), spot.name, spot.location]);
    process.stdout.write(`\n${path}: ${(busy / 1000).toFixed(1)} s busy\n`);
    process.stdout.write(`${renderTable(["Self", "ms", "Function", "Location"], body, [true, true, false, false])}\n`);
  }
}

main();
