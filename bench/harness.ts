/**
 * The benchmark harness: timing with warm-up and repeated runs (median reported), result rows that
 * always carry a baseline measured in the same process, and the table printed at the end.
 *
 * A benchmark group is a module exporting a `BenchGroup`; bench/run.ts lists the groups. Absolute
 * rates depend on the machine and its load; ratios to a baseline measured in the same run hold up.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import os from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** What one timed run did: how many operations, and any extra counts (events emitted...) to report per second. */
export interface RunCount {
  readonly operations: number;
  readonly counters?: Readonly<Record<string, number>>;
}

export interface MeasureOptions {
  /** Untimed runs first, so the JIT has compiled the hot paths (default 1). */
  readonly warmupRuns?: number;
  /** Timed runs; the median is reported (default 5). */
  readonly runs?: number;
}

export interface Sample {
  readonly operations: number;
  readonly seconds: number;
  readonly perSecond: number;
  /** Operations per second of process CPU time (all threads: the JS thread and V8's GC helpers). */
  readonly perCpuSecond: number;
  readonly counters: Readonly<Record<string, number>>;
}

export interface Measurement {
  readonly name: string;
  /** Median operations per second over the timed runs. */
  readonly perSecond: number;
  /** Median operations per CPU second of the process (less sensitive to other processes than wall time). */
  readonly perCpuSecond: number;
  /** Median of each counter per second over the timed runs. */
  readonly countersPerSecond: Readonly<Record<string, number>>;
  readonly samples: readonly Sample[];
  /** Measurements timed together (interleaved) share a series: their runs pair up round by round. */
  readonly series: number;
}

/** One line of the results table: a figure, the baseline it is compared with, and an optional goal. */
export interface Row {
  readonly group: string;
  readonly name: string;
  /** What is counted, e.g. "ticks/s". */
  readonly unit: string;
  readonly perSecond: number;
  /** Median rate per CPU second of the process. */
  readonly perCpuSecond: number;
  /** Spread of the timed runs: (max − min) / median. */
  readonly spread: number;
  /** The rate of every timed run, in run order. */
  readonly samples: readonly number[];
  readonly baseline: { readonly name: string; readonly perSecond: number };
  /**
   * Rate / baseline rate: the median of the per-round ratios when the two were timed together,
   * else the ratio of the medians.
   */
  readonly ratio: number;
  /** The rate the figure must reach, in the same unit. */
  readonly goal?: number;
  readonly note?: string;
}

export interface BenchContext {
  /** Progress lines (stderr), so stdout carries the table only. */
  log(message: string): void;
}

/** A group of related benchmarks (engine, storage, HTTP...): one module each, listed in bench/run.ts. */
export interface BenchGroup {
  readonly name: string;
  readonly description: string;
  run(context: BenchContext): Promise<readonly Row[]> | readonly Row[];
}

let gcFunction: (() => void) | null | undefined;

/** Runs a full garbage collection when the runtime allows it, so one run's garbage is not billed to the next. */
export function collectGarbage(): void {
  if (gcFunction === undefined) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (exposed) gcFunction = exposed;
    else {
      try {
        setFlagsFromString("--expose-gc");
        gcFunction = runInNewContext("gc") as () => void;
      } catch {
        gcFunction = null;
      }
    }
  }
  gcFunction?.();
}

let profileDirectory: string | null = null;
let session: Session | null = null;

/**
 * From now on, every `measure` writes a CPU profile of its timed runs only (no set-up, no warm-up) to
 * `directory/<name>.cpuprofile`, and skips the forced collections between runs so the profile shows
 * the garbage collection the measured code causes. Summarise with bench/profile-summary.ts.
 */
export function profileMeasurementsTo(directory: string): void {
  mkdirSync(directory, { recursive: true });
  profileDirectory = directory;
}

/** Runs `method` on the in-process inspector; same-thread sessions answer synchronously. */
function inspector(method: string): unknown {
  return inspectorWith(method, undefined);
}

function inspectorWith(method: string, parameters: object | undefined): unknown {
  if (!session) {
    session = new Session();
    session.connect();
  }
  let answer: unknown;
  let failure: Error | null = null;
  session.post(method, parameters, (error, result) => {
    if (error) failure = error;
    answer = result;
  });
  if (failure) throw failure;
  return answer;
}

/**
 * Runs `work` (a load phase driven from outside: HTTP, sockets) and, when profiling, writes the CPU
 * profile of this thread during it to `directory/<name>.cpuprofile`.
 */
export async function profileWhile<T>(name: string, work: () => Promise<T>): Promise<T> {
  if (profileDirectory === null) return work();
  inspector("Profiler.enable");
  // 100 µs instead of the default 1 ms: a load phase's stalls last a few milliseconds.
  inspectorWith("Profiler.setSamplingInterval", { interval: 100 });
  inspector("Profiler.start");
  try {
    return await work();
  } finally {
    const { profile } = inspector("Profiler.stop") as { profile: unknown };
    writeFileSync(join(profileDirectory, `${fileName(name)}.cpuprofile`), JSON.stringify(profile));
  }
}

function fileName(name: string): string {
  return name.replace(/[^A-Za-z0-9]+/g, "-").replace(/^-|-$/g, "");
}

/** The value at `fraction` (0.99 for p99) of `sorted` (ascending): the one at that rank, NaN when empty. */
export function percentile(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))]!;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error("median of nothing");
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** Something to time: `fn` does one batch of work and says how much it did. */
export interface Subject {
  readonly name: string;
  readonly fn: () => number | RunCount;
}

let seriesCounter = 0;

function runOnce(subject: Subject): Sample {
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  const result = subject.fn();
  const seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const count: RunCount = typeof result === "number" ? { operations: result } : result;
  if (!(seconds > 0)) throw new Error(`${subject.name}: a run took no measurable time; give it more work`);
  return {
    operations: count.operations,
    seconds,
    perSecond: count.operations / seconds,
    perCpuSecond: cpuSeconds > 0 ? count.operations / cpuSeconds : Number.POSITIVE_INFINITY,
    counters: count.counters ?? {},
  };
}

function summarise(name: string, samples: readonly Sample[], series: number): Measurement {
  const counterNames = new Set(samples.flatMap((sample) => Object.keys(sample.counters)));
  const countersPerSecond: Record<string, number> = {};
  for (const counter of counterNames)
    countersPerSecond[counter] = median(samples.map((sample) => (sample.counters[counter] ?? 0) / sample.seconds));
  return {
    name,
    perSecond: median(samples.map((sample) => sample.perSecond)),
    perCpuSecond: median(samples.map((sample) => sample.perCpuSecond)),
    countersPerSecond,
    samples,
    series,
  };
}

/**
 * Times several subjects together: `warmupRuns` untimed runs of each, then `runs` rounds in which
 * every subject runs once, each run after a garbage collection. Interleaving exposes a figure and its
 * baseline to the same machine conditions, so their per-round ratios are steady even when the
 * absolute rates are not. Reports the median rate of each.
 *
 * When profiling (see `profileMeasurementsTo`) the subjects run one after the other instead, each
 * under its own profile.
 */
export function measureTogether(subjects: readonly Subject[], options: MeasureOptions = {}): Measurement[] {
  const warmupRuns = options.warmupRuns ?? 1;
  const runs = options.runs ?? 5;
  if (runs < 1) throw new Error("measure needs at least one timed run");
  const series = ++seriesCounter;
  for (let run = 0; run < warmupRuns; run++) for (const subject of subjects) subject.fn();
  const samples: Sample[][] = subjects.map(() => []);
  if (profileDirectory !== null) {
    subjects.forEach((subject, index) => {
      collectGarbage();
      inspector("Profiler.enable");
      inspector("Profiler.start");
      for (let run = 0; run < runs; run++) samples[index]?.push(runOnce(subject));
      const { profile } = inspector("Profiler.stop") as { profile: unknown };
      writeFileSync(join(profileDirectory as string, `${fileName(subject.name)}.cpuprofile`), JSON.stringify(profile));
    });
  } else {
    for (let run = 0; run < runs; run++)
      subjects.forEach((subject, index) => {
        collectGarbage();
        samples[index]?.push(runOnce(subject));
      });
  }
  return subjects.map((subject, index) => summarise(subject.name, samples[index] ?? [], series));
}

/** Something asynchronous to time (IO: a journal, a database): `fn` does one batch of work and says how much. */
export interface AsyncSubject {
  readonly name: string;
  readonly fn: () => number | RunCount | Promise<number | RunCount>;
}

async function runOnceAsync(subject: AsyncSubject): Promise<Sample> {
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  const result = await subject.fn();
  const seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const count: RunCount = typeof result === "number" ? { operations: result } : result;
  if (!(seconds > 0)) throw new Error(`${subject.name}: a run took no measurable time; give it more work`);
  return {
    operations: count.operations,
    seconds,
    perSecond: count.operations / seconds,
    perCpuSecond: cpuSeconds > 0 ? count.operations / cpuSeconds : Number.POSITIVE_INFINITY,
    counters: count.counters ?? {},
  };
}

/**
 * `measureTogether` for subjects that wait on IO: the same warm-up, interleaved rounds and forced
 * collections, each run awaited before the next starts. Not profiled (the waits would dominate).
 */
export async function measureTogetherAsync(
  subjects: readonly AsyncSubject[],
  options: MeasureOptions = {},
): Promise<Measurement[]> {
  const warmupRuns = options.warmupRuns ?? 1;
  const runs = options.runs ?? 5;
  if (runs < 1) throw new Error("measure needs at least one timed run");
  const series = ++seriesCounter;
  for (let run = 0; run < warmupRuns; run++) for (const subject of subjects) await subject.fn();
  const samples: Sample[][] = subjects.map(() => []);
  for (let run = 0; run < runs; run++)
    for (const [index, subject] of subjects.entries()) {
      collectGarbage();
      samples[index]?.push(await runOnceAsync(subject));
    }
  return subjects.map((subject, index) => summarise(subject.name, samples[index] ?? [], series));
}

/** Times one subject (see `measureTogether`). */
export function measure(name: string, fn: () => number | RunCount, options: MeasureOptions = {}): Measurement {
  return measureTogether([{ name, fn }], options)[0] as Measurement;
}

/** A measurement of one of `measurement`'s counters (events/s...), as if it were the operation counted. */
export function counterMeasurement(measurement: Measurement, counter: string, name: string): Measurement {
  const samples = measurement.samples.map((sample) => {
    const count = sample.counters[counter] ?? 0;
    return {
      ...sample,
      operations: count,
      perSecond: count / sample.seconds,
      perCpuSecond: (sample.perCpuSecond * count) / sample.operations,
    };
  });
  return summarise(name, samples, measurement.series);
}

/** The relative spread of runs' rates, (max − min) / median; 0 when they are equal (without dividing). */
export function spreadOfRates(rates: readonly number[]): number {
  const range = Math.max(...rates) - Math.min(...rates);
  return range === 0 ? 0 : range / median(rates);
}

/** The relative spread of a measurement's runs (`spreadOfRates`). */
export function spreadOf(measurement: Measurement): number {
  return spreadOfRates(measurement.samples.map((sample) => sample.perSecond));
}

/** Rate / baseline rate (see `Row.ratio`). */
export function ratioOf(measurement: Measurement, baseline: Measurement): number {
  if (measurement.series === baseline.series && measurement.samples.length === baseline.samples.length)
    return median(
      measurement.samples.map((sample, index) => sample.perSecond / (baseline.samples[index] as Sample).perSecond),
    );
  return measurement.perSecond / baseline.perSecond;
}

/** A result row for `measurement` against `baseline`. */
export function row(
  group: string,
  unit: string,
  measurement: Measurement,
  baseline: Measurement,
  extra: { goal?: number; note?: string } = {},
): Row {
  return {
    group,
    name: measurement.name,
    unit,
    perSecond: measurement.perSecond,
    perCpuSecond: measurement.perCpuSecond,
    spread: spreadOf(measurement),
    samples: measurement.samples.map((sample) => sample.perSecond),
    baseline: { name: baseline.name, perSecond: baseline.perSecond },
    ratio: ratioOf(measurement, baseline),
    ...(extra.goal === undefined ? {} : { goal: extra.goal }),
    ...(extra.note === undefined ? {} : { note: extra.note }),
  };
}

/** 1234567 → "1.23 M", 8421 → "8.42 k". */
export function formatRate(perSecond: number): string {
  const units: readonly [number, string][] = [
    [1e9, "G"],
    [1e6, "M"],
    [1e3, "k"],
  ];
  // Rounded first, so 999,600 prints as 1.00 M rather than 1.00e+3 k.
  const rounded = Number(perSecond.toPrecision(3));
  for (const [scale, suffix] of units) if (rounded >= scale) return `${(rounded / scale).toPrecision(3)} ${suffix}`;
  return rounded.toPrecision(3);
}

/** Engine rate / baseline rate, printed so that small ratios stay readable. */
export function formatRatio(ratio: number): string {
  if (ratio >= 1) return `${ratio.toPrecision(3)}×`;
  return `1/${(1 / ratio).toPrecision(3)}`;
}

function pad(text: string, width: number, right: boolean): string {
  return right ? text.padStart(width) : text.padEnd(width);
}

/** A plain-text table; `alignRight` marks the numeric columns. */
export function renderTable(
  header: readonly string[],
  body: readonly (readonly string[])[],
  alignRight: readonly boolean[],
): string {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...body.map((line) => (line[column] ?? "").length)),
  );
  const render = (line: readonly string[]): string =>
    line.map((cell, column) => pad(cell, widths[column] ?? 0, alignRight[column] ?? false)).join(" | ");
  const rule = widths.map((width) => "-".repeat(width)).join("-|-");
  return [render(header), rule, ...body.map(render)].join("\n");
}

/** The results table: figure, baseline, ratio, goal and whether it is met. */
export function resultsTable(rows: readonly Row[]): string {
  const header = [
    "Group",
    "Benchmark",
    "Rate",
    "Unit",
    "Per CPU s",
    "Runs ±",
    "Baseline",
    "Baseline rate",
    "Ratio",
    "Goal",
    "Met",
  ];
  const body = rows.map((result) => [
    result.group,
    result.name,
    formatRate(result.perSecond),
    result.unit,
    formatRate(result.perCpuSecond),
    `${(result.spread * 100).toFixed(1)} %`,
    result.baseline.name,
    formatRate(result.baseline.perSecond),
    formatRatio(result.ratio),
    result.goal === undefined ? "" : `≥ ${formatRate(result.goal)}`,
    result.goal === undefined
      ? ""
      : result.perSecond >= result.goal
        ? "yes"
        : `no (${(Math.floor((result.perSecond / result.goal) * 1000) / 10).toFixed(1)} % of goal)`,
  ]);
  return renderTable(header, body, [false, false, true, false, true, true, false, true, true, true, false]);
}

/** The machine's CPU time so far from /proc/stat's first line (clock ticks): stolen and in all; null off Linux. */
function machineCpuTicks(): { steal: number; total: number } | null {
  try {
    const fields = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal guest guest_nice: guest time is already counted in user.
    const STEAL_FIELD = 7;
    return {
      steal: fields[STEAL_FIELD] ?? 0,
      total: fields.slice(0, STEAL_FIELD + 1).reduce((sum, value) => sum + value, 0),
    };
  } catch {
    return null;
  }
}

/**
 * Starts measuring the hypervisor's steal: the returned function gives the share of the machine's CPU time given to
 * other guests since the start (NaN off Linux). On a shared virtual machine a run with much steal measured the
 * neighbours as much as the code.
 */
export function stealMeter(): () => number {
  const start = machineCpuTicks();
  return () => {
    const end = machineCpuTicks();
    if (!start || !end) return Number.NaN;
    return (end.steal - start.steal) / Math.max(1, end.total - start.total);
  };
}

/** One line describing the machine and runtime, printed with every table. */
export function machineDescription(): string {
  const cpus = os.cpus();
  const model = cpus[0]?.model.trim() ?? "unknown CPU";
  return `${cpus.length} cores (${model}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Node ${process.version}, ${os.platform()} ${os.arch()}`;
}
