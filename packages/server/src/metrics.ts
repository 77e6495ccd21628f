/**
 * Prometheus text exposition (format 0.0.4) of the server's counters and gauges at `/metrics`.
 * Counters are integers kept here; gauges are read when scraped.
 */
export class Metrics {
  private readonly counters = new Map<string, { help: string; values: Map<string, number> }>();
  private readonly gauges = new Map<string, { help: string; read: () => number }>();
  private readonly observedCounters = new Map<
    string,
    { help: string; labelName: string; read: () => Readonly<Record<string, number>> }
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
    for (const [name, gauge] of this.gauges) {
      lines.push(`# HELP ${name} ${gauge.help}`, `# TYPE ${name} gauge`, `${name} ${gauge.read()}`);
    }
    return lines.join("\n") + "\n";
  }
}

/** A label value with what would break the exposition format (quote, backslash, newline) replaced. */
function escapeLabelValue(value: string): string {
  return value.replace(/["\\\n]/g, "_");
}

/** At most this many label-value tuples per counter: label values come from requests, so they are bounded here too. */
const MAX_LABEL_SETS = 10_000;

export class LabelledCounter {
  /** Label values joined by NUL (no method, route pattern or status code holds one) → the rendered label set. */
  private readonly rendered = new Map<string, string>();

  constructor(
    private readonly values: Map<string, number>,
    private readonly labelNames: readonly string[],
  ) {}

  increment(labelValues: readonly string[], by = 1): void {
    const key = labelValues.join("\u0000");
    let labels = this.rendered.get(key);
    if (labels === undefined) {
      if (this.rendered.size >= MAX_LABEL_SETS) return;
      labels = this.labelNames
        .map((label, index) => `${label}="${escapeLabelValue(labelValues[index] ?? "")}"`)
        .join(",");
      this.rendered.set(key, labels);
    }
    this.values.set(labels, (this.values.get(labels) ?? 0) + by);
  }
}
