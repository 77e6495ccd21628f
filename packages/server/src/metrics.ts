/**
 * Prometheus text exposition (format 0.0.4) of the server's counters, gauges and histograms at `/metrics`.
 * Counters are integers kept here; gauges are read when scraped; histograms of durations (`DurationHistogram`,
 * kept in milliseconds) are rendered in seconds, Prometheus's base unit.
 */
import { DurationHistogram, type DurationHistogramSnapshot } from "@bourse/store";

export class Metrics {
  private readonly counters = new Map<string, { help: string; values: Map<string, number> }>();
  private readonly gauges = new Map<string, { help: string; read: () => number }>();
  private readonly observedCounters = new Map<
    string,
    { help: string; labelName: string; read: () => Readonly<Record<string, number>> }
  >();
  private readonly observedGauges = new Map<
    string,
    { help: string; labelName: string; read: () => Readonly<Record<string, number>> }
  >();
  private readonly histograms = new Map<
    string,
    { help: string; read: () => Iterable<[string, DurationHistogramSnapshot]> }
  >();

  /**
   * A counter with fixed label names (rendered in that order). Each distinct tuple of label values is
   * escaped and rendered once: the request counter runs on every answer, so its hot path is one Map look-up.
   */
  counter(name: string, help: string, labelNames: readonly string[]): LabelledCounter {
    let counter = this.counters.get(name);
    if (!counter) this.counters.set(name, (counter = { help, values: new Map() }));
    return new LabelledCounter(counter.values, labelNames);
  }

  gauge(name: string, help: string, read: () => number): void {
    this.gauges.set(name, { help, read });
  }

  /**
   * A counter another component keeps (a total that only grows while the process runs), read when scraped:
   * one line per key of what `read` returns, that key the value of the label `labelName`.
   */
  observedCounter(name: string, help: string, labelName: string, read: () => Readonly<Record<string, number>>): void {
    this.observedCounters.set(name, { help, labelName, read });
  }

  /** Gauges read when scraped, one line per key of what `read` returns, that key the value of the label `labelName`. */
  observedGauge(name: string, help: string, labelName: string, read: () => Readonly<Record<string, number>>): void {
    this.observedGauges.set(name, { help, labelName, read });
  }

  /** A histogram of durations another component keeps, read when scraped. */
  observedHistogram(name: string, help: string, read: () => DurationHistogramSnapshot): void {
    this.histograms.set(name, { help, read: () => [["", read()]] });
  }

  /** A histogram of durations per tuple of label values (as `counter`), kept here. */
  histogram(name: string, help: string, labelNames: readonly string[]): LabelledHistogram {
    const histogram = new LabelledHistogram(labelNames);
    this.histograms.set(name, { help, read: () => histogram.snapshots() });
    return histogram;
  }

  render(): string {
    const lines: string[] = [];
    for (const [name, counter] of this.counters) {
      lines.push(`# HELP ${name} ${counter.help}`, `# TYPE ${name} counter`);
      for (const [labels, value] of counter.values) lines.push(`${name}${labels ? `{${labels}}` : ""} ${value}`);
    }
    for (const [name, { help, labelName, read }] of this.observedCounters) {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
      for (const [labelValue, value] of Object.entries(read()))
        lines.push(`${name}{${labelName}="${escapeLabelValue(labelValue)}"} ${value}`);
    }
    // A gauge that cannot be read now (the process's memory with no file descriptor left) is left out of this scrape,
    // not the scrape failed: found by the review of 7 December (sixth session).
    for (const [name, gauge] of this.gauges) {
      const value = readOrNull(gauge.read);
      if (value !== null) lines.push(`# HELP ${name} ${gauge.help}`, `# TYPE ${name} gauge`, `${name} ${value}`);
    }
    for (const [name, { help, labelName, read }] of this.observedGauges) {
      const values = readOrNull(read);
      if (values === null) continue;
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
      for (const [labelValue, value] of Object.entries(values))
        lines.push(`${name}{${labelName}="${escapeLabelValue(labelValue)}"} ${value}`);
    }
    for (const [name, { help, read }] of this.histograms) {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
      for (const [labels, histogram] of read()) renderHistogram(lines, name, labels, histogram);
    }
    return lines.join("\n") + "\n";
  }
}

/** A histogram's `_bucket` lines (cumulative, `le` in seconds, then `+Inf`), `_sum` (seconds) and `_count`. */
function renderHistogram(lines: string[], name: string, labels: string, histogram: DurationHistogramSnapshot): void {
  const prefix = labels === "" ? "" : `${labels},`;
  let cumulative = 0;
  histogram.boundsMilliseconds.forEach((bound, index) => {
    cumulative += histogram.counts[index]!;
    lines.push(`${name}_bucket{${prefix}le="${bound / 1000}"} ${cumulative}`);
  });
  lines.push(`${name}_bucket{${prefix}le="+Inf"} ${histogram.count}`);
  const braces = labels === "" ? "" : `{${labels}}`;
  lines.push(`${name}_sum${braces} ${histogram.sumMilliseconds / 1000}`, `${name}_count${braces} ${histogram.count}`);
}

function readOrNull<T>(read: () => T): T | null {
  try {
    return read();
  } catch {
    return null;
  }
}

/** A label value with what would break the exposition format (quote, backslash, newline) replaced. */
function escapeLabelValue(value: string): string {
  return value.replace(/["\\\n]/g, "_");
}

/** At most this many label-value tuples per counter or histogram: label values come from requests, so they are bounded here too. */
const MAX_LABEL_SETS = 10_000;

/**
 * What a counter or histogram keeps per tuple of label values, made once with the tuple's rendered label set
 * (`name="value",...`, escaped): at most MAX_LABEL_SETS tuples, after which new ones are not counted.
 */
class LabelSets<Entry> {
  /** Label values joined by NUL (no method, route pattern or status code holds one) → the tuple's entry. */
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly labelNames: readonly string[],
    private readonly create: (labels: string) => Entry,
  ) {}

  /** The tuple's entry; undefined for a new tuple once the bound is reached. */
  entryFor(labelValues: readonly string[]): Entry | undefined {
    const key = labelValues.join("\u0000");
    let entry = this.entries.get(key);
    if (entry === undefined) {
      if (this.entries.size >= MAX_LABEL_SETS) return undefined;
      const labels = this.labelNames
        .map((label, index) => `${label}="${escapeLabelValue(labelValues[index] ?? "")}"`)
        .join(",");
      entry = this.create(labels);
      this.entries.set(key, entry);
    }
    return entry;
  }

  entriesMade(): Iterable<Entry> {
    return this.entries.values();
  }
}

export class LabelledCounter {
  /** The rendered label set of each tuple: the key of its count in `values`. */
  private readonly labelSets: LabelSets<string>;

  constructor(
    private readonly values: Map<string, number>,
    labelNames: readonly string[],
  ) {
    this.labelSets = new LabelSets(labelNames, (labels) => labels);
  }

  increment(labelValues: readonly string[], by = 1): void {
    const labels = this.labelSets.entryFor(labelValues);
    if (labels !== undefined) this.values.set(labels, (this.values.get(labels) ?? 0) + by);
  }
}

export class LabelledHistogram {
  private readonly labelSets: LabelSets<{ labels: string; histogram: DurationHistogram }>;

  constructor(labelNames: readonly string[]) {
    this.labelSets = new LabelSets(labelNames, (labels) => ({ labels, histogram: new DurationHistogram() }));
  }

  observe(labelValues: readonly string[], milliseconds: number): void {
    this.labelSets.entryFor(labelValues)?.histogram.observe(milliseconds);
  }

  *snapshots(): Iterable<[string, DurationHistogramSnapshot]> {
    for (const { labels, histogram } of this.labelSets.entriesMade()) yield [labels, histogram.snapshot()];
  }
}
