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
});
