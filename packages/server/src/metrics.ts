/**
 * Prometheus text exposition (format 0.0.4) of the server's counters and gauges at `/metrics`.
 * Counters are integers kept here; gauges are read when scraped.
 */
export class Metrics {
  private readonly counters = new Map<string, { help: string; values: Map<string, number> }>();
  private readonly gauges = new Map<string, { help: string; read: () => number }>();

  /** Adds `by` to the counter for this label set (labels are rendered in the given order). */
  increment(name: string, help: string, labels: Readonly<Record<string, string>> = {}, by = 1): void {
    let counter = this.counters.get(name);
    if (!counter) this.counters.set(name, (counter = { help, values: new Map() }));
    const key = Object.entries(labels)
      .map(([label, value]) => `${label}="${value.replace(/["\\\n]/g, "_")}"`)
      .join(",");
    counter.values.set(key, (counter.values.get(key) ?? 0) + by);
  }

  gauge(name: string, help: string, read: () => number): void {
    this.gauges.set(name, { help, read });
  }

  render(): string {
    const lines: string[] = [];
    for (const [name, counter] of this.counters) {
      lines.push(`# HELP ${name} ${counter.help}`, `# TYPE ${name} counter`);
      for (const [labels, value] of counter.values) lines.push(`${name}${labels ? `{${labels}}` : ""} ${value}`);
    }
    for (const [name, gauge] of this.gauges) {
      lines.push(`# HELP ${name} ${gauge.help}`, `# TYPE ${name} gauge`, `${name} ${gauge.read()}`);
    }
    return lines.join("\n") + "\n";
  }
}
