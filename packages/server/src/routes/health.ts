/**
 * Liveness, readiness and metrics for the broker's orchestration: `/healthz` answers while the
 * process runs, `/readyz` only once the engine has recovered and takes commands, `/metrics` in
 * Prometheus text format.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { getHeapStatistics } from "node:v8";
import { DurationHistogram } from "@bourse/store";
import { Type } from "@sinclair/typebox";
import type { RouteModule } from "../app.ts";

/** How finely the event loop's delay is sampled (perf_hooks' histogram). */
const EVENT_LOOP_DELAY_RESOLUTION_MS = 20;

export const healthRoutes: RouteModule = (app, { platform, metrics }) => {
  const systemConfig = { auth: "public", face: "system", rateLimit: false } as const;
  const requestsAnswered = metrics.counter(
    "bourse_http_requests_total",
    "HTTP requests answered, by route and status",
    ["method", "route", "status"],
  );
  const requestDurations = metrics.histogram(
    "bourse_http_request_duration_seconds",
    "From a request's arrival until its answer was sent, by route",
    ["method", "route"],
  );
  app.addHook("onResponse", (request, reply, done) => {
    const route = request.routeOptions.url ?? "unmatched";
    requestsAnswered.increment([request.method, route, String(reply.statusCode)]);
    requestDurations.observe([request.method, route], reply.elapsedTime);
    done();
  });
  metrics.gauge("bourse_engine_ready", "1 when the engine takes commands", () => (platform.ready ? 1 : 0));
  metrics.gauge(
    "bourse_journal_last_sequence",
    "Sequence of the last durable event",
    () => platform.durableEngine?.lastSequence ?? 0,
  );
  const noAppends = new DurationHistogram().snapshot();
  metrics.observedCounter(
    "bourse_journal_appends_total",
    "The journal's appends (one per group commit) that became durable, and those it refused or could not confirm",
    "result",
    (): Record<string, number> => {
      const statistics = platform.durableEngine?.journalStatistics;
      return statistics ? { durable: statistics.appendsDurable, refused: statistics.appendsRefused } : {};
    },
  );
  metrics.observedHistogram(
    "bourse_journal_append_duration_seconds",
    "From handing a batch of commands' events to the journal until they were durable (or refused): what every command of the batch waited",
    () => platform.durableEngine?.journalStatistics.appendDurations ?? noAppends,
  );
  metrics.gauge(
    "bourse_engine_commands_waiting",
    "Commands submitted and waiting for the append ahead of them",
    () => platform.durableEngine?.journalStatistics.commandsWaiting ?? 0,
  );
  metrics.gauge(
    "bourse_journal_appends_in_flight",
    "Appends handed to the journal and not yet durable",
    () => platform.durableEngine?.journalStatistics.appendsInFlight ?? 0,
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
  // What an operator watches beside the engine (the audit of an operator's journey of 7 December, sixth session,
  // found none of it): whether this server writes the journal, how old each quote is (a silent feed), the process's
  // memory and how late its event loop runs.
  metrics.gauge("bourse_journal_writer", "1 while this server holds its journal's writer lock and can append", () =>
    platform.durableEngine !== null && platform.durableEngine.writerLockProblem() === null ? 1 : 0,
  );
  metrics.observedGauge(
    "bourse_quote_age_seconds",
    "Seconds since each symbol's last quote the engine took, by symbol (a silent feed grows it)",
    "symbol",
    (): Record<string, number> => {
      if (!platform.ready) return {};
      const now = platform.clock.now();
      const ages: Record<string, number> = {};
      for (const symbol of platform.instruments.keys()) {
        const quote = platform.engine.quote(symbol);
        if (quote) ages[symbol] = Math.max(0, now - quote.time) / 1000;
      }
      return ages;
    },
  );
  metrics.gauge("process_resident_memory_bytes", "Resident memory of the server process", () =>
    process.memoryUsage.rss(),
  );
  metrics.gauge("nodejs_heap_used_bytes", "JavaScript heap in use", () => getHeapStatistics().used_heap_size);
  const loopDelay = monitorEventLoopDelay({ resolution: EVENT_LOOP_DELAY_RESOLUTION_MS });
  loopDelay.enable();
  platform.onClose(() => {
    loopDelay.disable();
  });
  metrics.gauge(
    "nodejs_eventloop_delay_p99_seconds",
    "The 99th percentile of the event loop's delay since the previous scrape (every request and tick waits it)",
    () => {
      const p99 = loopDelay.count === 0 ? 0 : loopDelay.percentile(99) / 1e9;
      loopDelay.reset();
      return p99;
    },
  );
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
        summary:
          "Readiness: 200 once the engine has recovered and takes commands, 503 before, while it rebuilds, and while " +
          "it is not its journal's one writer (`not-writer`: a PostgreSQL journal's writer lock lost, or held by " +
          "another server; `reason` says which), and while it drains before a stop (`draining`: requests are still " +
          "served, BOURSE_SHUTDOWN_DRAIN_SECONDS), and once it is stopping (`stopping`: new requests are refused)",
        response: {
          200: Type.Object({ status: Type.String(), lastSequence: Type.Integer() }),
          503: Type.Object({
            status: Type.String(),
            lastSequence: Type.Integer(),
            reason: Type.Optional(Type.String()),
          }),
        },
      },
    },
    async (_request, reply) => {
      const durable = platform.durableEngine;
      const lastSequence = durable?.lastSequence ?? 0;
      // Draining before a stop (found by the audit of an operator's journey of 7 December, sixth session: a SIGTERM
      // closed the listener at once, and a load balancer still sending clients had them reset).
      if (platform.stopping) return reply.status(503).send({ status: "stopping", lastSequence });
      if (platform.draining) return reply.status(503).send({ status: "draining", lastSequence });
      if (platform.ready) return { status: "ready", lastSequence };
      const notWriter = durable?.ready ? durable.writerLockProblem() : null;
      if (notWriter !== null) return reply.status(503).send({ status: "not-writer", lastSequence, reason: notWriter });
      const status = durable?.state === "rebuilding" ? "rebuilding" : platform.state;
      return reply.status(503).send({ status, lastSequence });
    },
  );
  app.get(
    "/metrics",
    {
      config: systemConfig,
      schema: {
        tags: ["System"],
        summary: "Prometheus metrics",
        produces: ["text/plain"],
        response: {
          200: {
            description: "The Prometheus text exposition format, version 0.0.4",
            content: { "text/plain": { schema: Type.String() } },
          },
        },
      },
    },
    async (_request, reply) => reply.type("text/plain; version=0.0.4").send(metrics.render()),
  );
};
