import { DurationHistogram } from "@bourse/store";
import { describe, expect, it } from "vitest";
import { Metrics } from "../src/metrics.ts";

describe("metrics", () => {
  it("counts each label set of a counter on its own line, labels in the declared order", () => {
    const metrics = new Metrics();
    const requests = metrics.counter("requests_total", "Requests", ["method", "route", "status"]);
    requests.increment(["GET", "/a", "200"]);
    requests.increment(["GET", "/a", "200"]);
    requests.increment(["POST", "/a", "400"], 3);
    const text = metrics.render();
    expect(text).toContain("# HELP requests_total Requests\n# TYPE requests_total counter\n");
    expect(text).toContain('requests_total{method="GET",route="/a",status="200"} 2\n');
    expect(text).toContain('requests_total{method="POST",route="/a",status="400"} 3\n');
  });

  it("escapes what would break the exposition format in a label value", () => {
    const metrics = new Metrics();
    metrics.counter("odd_total", "Odd", ["route"]).increment(['/a"b\\c\nd']);
    expect(metrics.render()).toContain('odd_total{route="/a_b_c_d"} 1\n');
  });

  it("keeps one count when the same counter is asked for twice", () => {
    const metrics = new Metrics();
    metrics.counter("twice_total", "Twice", ["route"]).increment(["/x"]);
    metrics.counter("twice_total", "Twice", ["route"]).increment(["/x"]);
    expect(metrics.render()).toContain('twice_total{route="/x"} 2\n');
  });

  it("renders a counter another component keeps, read when scraped, one line per label value", () => {
    const metrics = new Metrics();
    let copies = { thread: 2, 'odd"value': 1 };
    metrics.observedCounter("copies_total", "Copies", "by", () => copies);
    expect(metrics.render()).toContain(
      '# HELP copies_total Copies\n# TYPE copies_total counter\ncopies_total{by="thread"} 2\ncopies_total{by="odd_value"} 1\n',
    );
    copies = { thread: 5, 'odd"value': 1 };
    expect(metrics.render()).toContain('copies_total{by="thread"} 5\n');
  });

  it("renders gauges another component keeps, read when scraped, one line per label value", () => {
    const metrics = new Metrics();
    let ages: Record<string, number> = { EURUSD: 0.5, 'a"b': 2 };
    metrics.observedGauge("quote_age_seconds", "Age", "symbol", () => ages);
    expect(metrics.render()).toContain(
      '# TYPE quote_age_seconds gauge\nquote_age_seconds{symbol="EURUSD"} 0.5\nquote_age_seconds{symbol="a_b"} 2\n',
    );
    ages = {};
    expect(metrics.render()).not.toContain("quote_age_seconds{");
  });

  // Found by the review of 7 December (sixth session): with no file descriptor left, reading the process's memory threw
  // and the whole scrape answered 500.
  it("leaves out of the scrape a gauge that cannot be read, and renders the others", () => {
    const metrics = new Metrics();
    metrics.gauge("broken", "Throws", () => {
      throw new Error("EMFILE");
    });
    metrics.observedGauge("broken_by_label", "Throws", "x", () => {
      throw new Error("EMFILE");
    });
    metrics.gauge("fine", "Reads", () => 3);
    const text = metrics.render();
    expect(text).toContain("fine 3");
    expect(text).not.toContain("broken");
  });

  it("renders a histogram of durations in seconds: cumulative buckets up to +Inf, the sum and the count", () => {
    const metrics = new Metrics();
    const appends = new DurationHistogram([1, 10]);
    metrics.observedHistogram("append_seconds", "Appends", () => appends.snapshot());
    for (const milliseconds of [0.5, 1, 4, 250]) appends.observe(milliseconds);
    expect(metrics.render()).toContain(
      [
        "# HELP append_seconds Appends",
        "# TYPE append_seconds histogram",
        'append_seconds_bucket{le="0.001"} 2',
        'append_seconds_bucket{le="0.01"} 3',
        'append_seconds_bucket{le="+Inf"} 4',
        "append_seconds_sum 0.2555",
        "append_seconds_count 4",
      ].join("\n") + "\n",
    );
  });

  it("keeps a histogram per label set, its labels before le", () => {
    const metrics = new Metrics();
    const requests = metrics.histogram("request_seconds", "Requests", ["method", "route"]);
    requests.observe(["GET", "/a"], 0.2);
    requests.observe(["GET", "/a"], 30);
    requests.observe(["POST", "/b"], 3);
    const text = metrics.render();
    expect(text).toContain('request_seconds_bucket{method="GET",route="/a",le="0.00025"} 1\n');
    expect(text).toContain('request_seconds_bucket{method="GET",route="/a",le="0.05"} 2\n');
    expect(text).toContain('request_seconds_count{method="GET",route="/a"} 2\n');
    expect(text).toContain('request_seconds_bucket{method="POST",route="/b",le="0.0025"} 0\n');
    expect(text).toContain('request_seconds_bucket{method="POST",route="/b",le="0.005"} 1\n');
    expect(text).toContain('request_seconds_sum{method="POST",route="/b"} 0.003\n');
  });
});

describe("label sets", () => {
  it("keep counting the first 10,000 tuples of a counter or histogram and ignore new ones beyond", () => {
    const metrics = new Metrics();
    const requests = metrics.counter("bounded_total", "Bounded", ["route"]);
    const durations = metrics.histogram("bounded_seconds", "Bounded", ["route"]);
    for (let index = 0; index < 10_001; index++) {
      requests.increment([`/r${index}`]);
      durations.observe([`/r${index}`], 1);
    }
    requests.increment(["/r0"]);
    durations.observe(["/r0"], 1);
    const text = metrics.render();
    expect(text).toContain('bounded_total{route="/r9999"} 1\n');
    expect(text).not.toContain('route="/r10000"');
    expect(text).toContain('bounded_total{route="/r0"} 2\n');
    expect(text).toContain('bounded_seconds_count{route="/r0"} 2\n');
    expect(text).toContain('bounded_seconds_count{route="/r9999"} 1\n');
  });
});

describe("DurationHistogram", () => {
  it("counts a duration in the first bucket whose bound it does not exceed, above every bound in the last", () => {
    const histogram = new DurationHistogram([1, 2]);
    for (const milliseconds of [0, 1, 1.5, 2, 2.5, 10_000]) histogram.observe(milliseconds);
    expect(histogram.snapshot()).toEqual({
      boundsMilliseconds: [1, 2],
      counts: [2, 2, 2],
      count: 6,
      sumMilliseconds: 10_007,
    });
  });

  it("counts a negative or non-finite duration (a clock gone wrong) as 0", () => {
    const histogram = new DurationHistogram([1]);
    for (const milliseconds of [-3, Number.NaN, Number.POSITIVE_INFINITY]) histogram.observe(milliseconds);
    expect(histogram.snapshot()).toMatchObject({ counts: [3, 0], count: 3, sumMilliseconds: 0 });
  });

  it("refuses bounds that are not positive, finite and ascending", () => {
    for (const bounds of [[0], [2, 1], [1, 1], [1, Number.POSITIVE_INFINITY], [Number.NaN]])
      expect(() => new DurationHistogram(bounds)).toThrow(RangeError);
  });
});
