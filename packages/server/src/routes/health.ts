/**
 * Liveness, readiness and metrics for the broker's orchestration: `/healthz` answers while the
 * process runs, `/readyz` only once the engine has recovered and takes commands, `/metrics` in
 * Prometheus text format.
 */
import { Type } from "@sinclair/typebox";
import type { RouteModule } from "../app.ts";

export const healthRoutes: RouteModule = (app, { platform, metrics }) => {
  const systemConfig = { auth: "public", face: "system", rateLimit: false } as const;
  const requestsAnswered = metrics.counter(
    "bourse_http_requests_total",
    "HTTP requests answered, by route and status",
    ["method", "route", "status"],
  );
  app.addHook("onResponse", (request, reply, done) => {
    requestsAnswered.increment([request.method, request.routeOptions.url ?? "unmatched", String(reply.statusCode)]);
    done();
  });
  metrics.gauge("bourse_engine_ready", "1 when the engine takes commands", () => (platform.ready ? 1 : 0));
  metrics.gauge(
    "bourse_journal_last_sequence",
    "Sequence of the last durable event",
    () => platform.durableEngine?.lastSequence ?? 0,
  );
  metrics.observedCounter(
    "bourse_journal_wal_copies_total",
    "Copies of the SQLite journal's write-ahead log into its database file: by the checkpoint thread, small rests by the writer, and failed ones (the writer's own checkpoint at 256 MiB is the backstop); none on PostgreSQL",
    "result",
    (): Record<string, number> => {
      const report = platform.journalCheckpoints();
      return report
        ? { copied_by_thread: report.byThread, copied_by_writer: report.byWriter, failed: report.failed }
        : {};
    },
  );
  metrics.gauge("bourse_bus_topics", "Bus topics with at least one subscriber", () => platform.bus.topicCount);
  metrics.gauge("bourse_accounts", "Trading accounts", () =>
    platform.ready ? platform.engine.state.accounts.size : 0,
  );

  app.get(
    "/healthz",
    {
      config: systemConfig,
      schema: { tags: ["System"], summary: "Liveness", response: { 200: Type.Object({ status: Type.Literal("ok") }) } },
    },
    async () => ({ status: "ok" as const }),
  );
  app.get(
    "/readyz",
    {
      config: systemConfig,
      schema: {
        tags: ["System"],
        summary: "Readiness: 200 once the engine has recovered and takes commands, 503 before",
        response: {
          200: Type.Object({ status: Type.String(), lastSequence: Type.Integer() }),
          503: Type.Object({ status: Type.String(), lastSequence: Type.Integer() }),
        },
      },
    },
    async (_request, reply) => {
      const lastSequence = platform.durableEngine?.lastSequence ?? 0;
      if (platform.ready) return { status: "ready", lastSequence };
      const status = platform.durableEngine?.state === "rebuilding" ? "rebuilding" : platform.state;
      return reply.status(503).send({ status, lastSequence });
    },
  );
  app.get(
    "/metrics",
    { config: systemConfig, schema: { tags: ["System"], summary: "Prometheus metrics", produces: ["text/plain"] } },
    async (_request, reply) => reply.type("text/plain; version=0.0.4").send(metrics.render()),
  );
};
