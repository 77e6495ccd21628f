/**
 * Puts the server together: the platform (engine, stores, bus), its services, the HTTP app with every
 * route module, and the quote feed. `listen` lives here, apart from the app factory (app.ts).
 *
 * Start order: the listener comes up first (`/healthz` answers, `/readyz` says 503), then the engine
 * recovers from the journal, then the feed starts.
 */
import type { FastifyServerOptions } from "fastify";
import type { EngineConfig } from "@bourse/core";
import type { PoolStatistics } from "@bourse/store";
import { buildApp, type App, type RouteModule, type ServerContext } from "./app.ts";
import { AuthService } from "./auth.ts";
import type { Clock } from "./clock.ts";
import type { ServerConfig } from "./config.ts";
import { startFeed } from "./feed/index.ts";
import { marketDataOf } from "./market-data.ts";
import { Metrics } from "./metrics.ts";
import { Platform, type PlatformLog } from "./platform.ts";
import { accountRoutes } from "./routes/accounts.ts";
import { adminRoutes } from "./routes/admin.ts";
import { authRoutes } from "./routes/auth.ts";
import { healthRoutes } from "./routes/health.ts";
import { marketRoutes } from "./routes/market.ts";
import { tradeRoutes } from "./routes/trade.ts";
import { AlertEngine } from "./alert-engine.ts";
import { EngineClock } from "./engine-clock.ts";
import { NotificationService } from "./notifications.ts";
import { alertRoutes } from "./routes/alerts.ts";
import { apiKeyRoutes } from "./routes/api-keys.ts";
import { AUTOMATION_ROUTE_MODULES, automationRoutes } from "./routes/automation.ts";
import { notificationRoutes } from "./routes/notifications.ts";
import { scriptRoutes } from "./routes/scripts.ts";
import { settingsRoutes } from "./routes/settings.ts";
import { watchlistRoutes } from "./routes/watchlist.ts";
import { AccountEvents } from "./account-events.ts";
import { MetricsPublisher } from "./account-metrics.ts";
import { streamRoutes } from "./routes/stream.ts";
import { UpgradeRouter } from "./upgrade-router.ts";
import { NATIVE_STREAM_PATH, NativeStream, type NativeStreamLimits } from "./ws-stream.ts";
import { PusherStream, type PusherStreamLimits } from "./pusher-stream.ts";
import { pusherRoutes } from "./routes/pusher.ts";

/** Every route module of the server, in registration order. */
export const ROUTE_MODULES: readonly RouteModule[] = [
  healthRoutes,
  authRoutes,
  adminRoutes,
  accountRoutes,
  tradeRoutes,
  marketRoutes,
  watchlistRoutes,
  scriptRoutes,
  settingsRoutes,
  alertRoutes,
  notificationRoutes,
  apiKeyRoutes,
  automationRoutes,
  streamRoutes,
  pusherRoutes,
];

export interface CreateServerOptions {
  readonly config: ServerConfig;
  readonly engineConfig?: EngineConfig;
  readonly clock?: Clock;
  readonly log?: PlatformLog;
  /** Fastify's request log (pino); off by default, its options (server-log.ts `requests`) turn it on. */
  readonly httpLog?: FastifyServerOptions["logger"];
  /** The native stream's limits (tests, benchmarks); the defaults otherwise. */
  readonly stream?: Partial<NativeStreamLimits>;
  /** The Pusher endpoint's limits and timings (tests); the defaults otherwise. */
  readonly pusher?: Partial<PusherStreamLimits>;
  /** How long a close waits for connections with a request under way before it ends them (SHUTDOWN_GRACE_MS). */
  readonly shutdownGraceMs?: number;
}

/**
 * A close answers the requests under way, then ends the connections still open after this long: one that never
 * finishes its request (a half-sent body) kept the process from exiting after SIGTERM for as long as its client liked.
 */
export const SHUTDOWN_GRACE_MS = 10_000;

export interface BourseServer {
  readonly app: App;
  /** The dedicated Automation API listener's app (`automation.port`), or null when not configured. */
  readonly automationApp: App | null;
  readonly platform: Platform;
  readonly context: ServerContext;
  /** WebSocket upgrades by path: stream adapters register here (the native stream at /api/v1/ws). */
  readonly upgrades: UpgradeRouter;
  readonly nativeStream: NativeStream;
  /** The Pusher endpoint at /app/{appKey} (seed 004). */
  readonly pusherStream: PusherStream;
  /** Recovers the engine and starts the feed (without listening: tests use `app.inject`). */
  start(): Promise<void>;
  /**
   * Listens (and on `automation.port` too, when set), then starts; resolves with the main address once the
   * engine is ready.
   */
  listen(): Promise<string>;
  close(): Promise<void>;
}

export async function createServer(options: CreateServerOptions): Promise<BourseServer> {
  const platform = new Platform(options.config, {
    config: options.config,
    engineConfig: options.engineConfig,
    clock: options.clock,
    log: options.log,
  });
  const context: ServerContext = { platform, auth: new AuthService(platform), metrics: new Metrics() };
  const app = await buildApp({ routes: ROUTE_MODULES, context, logger: options.httpLog });
  // Seed 003's custom port: the Automation API alone, on the same platform.
  const automationApp =
    options.config.automationPort === null
      ? null
      : await buildApp({
          routes: AUTOMATION_ROUTE_MODULES,
          context,
          logger: options.httpLog,
          docs: false,
          notFoundFace: "automation",
        });
  // The stream adapters, on the main listener's upgrades by path.
  // Refused 503 until the engine is ready too: a phone reconnecting during a deploy's recovery was authorised with no
  // accounts, and told to sign in again when its token could not be checked (the audit of a mobile client's journey of
  // 7 December, seventh session). Clients reconnect after a backoff.
  const upgrades = new UpgradeRouter(() => platform.stopping || !platform.ready);
  const nativeStream = new NativeStream(platform, context.auth, {
    maxSocketsPerAddress: options.config.streamSocketsPerAddress,
    maxUnauthorizedSocketsPerAddress: options.config.streamUnauthorizedSocketsPerAddress,
    replayWindowEvents: options.config.streamReplayWindowEvents,
    ...options.stream,
  });
  upgrades.register(NATIVE_STREAM_PATH, nativeStream);
  const pusherStream = new PusherStream(
    platform,
    { appKey: options.config.pusherAppKey, appSecret: options.config.pusherAppSecret },
    { maxSocketsPerAddress: options.config.streamSocketsPerAddress, ...options.pusher },
  );
  upgrades.register(PusherStream.matches, pusherStream);
  upgrades.attach(app.server);
  // PostgreSQL's pools (BOURSE_DATABASE_POOL_SIZE each): calls waiting for a connection mean the pool is too small or
  // the database too slow (the PostgreSQL soak audit of 7 December, ninth session: nothing showed it).
  if (platform.databasePools() !== null) {
    const pools = (stat: keyof PoolStatistics) => () =>
      Object.fromEntries(Object.entries(platform.databasePools() ?? {}).map(([name, pool]) => [name, pool[stat]]));
    context.metrics.observedGauge(
      "bourse_postgres_pool_connections",
      "PostgreSQL connections open, by pool (the journal's writer lock holds one more)",
      "pool",
      pools("connections"),
    );
    context.metrics.observedGauge(
      "bourse_postgres_pool_idle_connections",
      "PostgreSQL connections open and idle, by pool",
      "pool",
      pools("idle"),
    );
    context.metrics.observedGauge(
      "bourse_postgres_pool_waiting_calls",
      "Calls waiting for a PostgreSQL connection, by pool",
      "pool",
      pools("waiting"),
    );
  }
  context.metrics.observedGauge("bourse_stream_connections", "Open stream sockets, by face", "face", () => ({
    native: nativeStream.connectionCount,
    pusher: pusherStream.connectionCount,
  }));
  let started = false;
  const start = async (): Promise<void> => {
    if (started) return;
    started = true;
    await platform.start();
    context.auth.startSessionPurge();
    // Account events and metrics on the bus (the streams' topics) from the first event on.
    AccountEvents.for(platform).start();
    MetricsPublisher.for(platform).start();
    // Notifications and price alerts follow the engine from its first event and quote on.
    NotificationService.for(platform).start();
    await AlertEngine.for(platform).start();
    // The day's bars survive a restart; then the feed (stopped on close, before the last candle flush).
    await marketDataOf(platform).load();
    // Expirations and rollovers on time, quotes or not; after the kept quotes are back, which swaps convert at.
    EngineClock.for(platform).start();
    platform.onClose(startFeed(platform, options.config.feed, options.config.feedTuning));
  };
  async function close(): Promise<void> {
    platform.beginStopping();
    const listeners = automationApp ? [automationApp, app] : [app];
    const endConnections = (): void => {
      for (const listener of listeners) listener.server.closeAllConnections();
    };
    let ending: NodeJS.Timeout | null = null;
    const deadline = setTimeout(() => {
      endConnections();
      // And every second after, until the listeners are closed: one not closed yet may still take a connection.
      ending = setInterval(endConnections, 1000);
    }, options.shutdownGraceMs ?? SHUTDOWN_GRACE_MS);
    try {
      if (automationApp) await automationApp.close();
      await upgrades.close();
      await app.close();
    } finally {
      clearTimeout(deadline);
      if (ending) clearInterval(ending);
    }
    await platform.close();
  }
  return {
    app,
    automationApp,
    platform,
    context,
    upgrades,
    nativeStream,
    pusherStream,
    start,
    async listen() {
      const address = await app.listen({ port: options.config.port, host: options.config.host });
      try {
        if (automationApp)
          await automationApp.listen({ port: options.config.automationPort!, host: options.config.host });
        await start();
      } catch (error) {
        // A start that failed (a corrupt journal, PostgreSQL unreachable) closes what it opened: the listener kept
        // answering /healthz "ok" and the process never exited, so a supervisor saw a live server.
        await close().catch(() => undefined);
        throw error;
      }
      return address;
    },
    close,
  };
}
