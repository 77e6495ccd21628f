/**
 * The quote feed the server runs (`BOURSE_FEED`): the simulator (default, `BOURSE_FEED_SEED`), a CSV
 * replay (`csv:PATH`), or `push` (nothing runs: quotes come through the admin API from the broker's
 * bridge). Every feed pushes through `platform.pushQuote`, the one way quotes enter.
 *
 * Tuning (read by the configuration, checked here beside the feed they tune):
 * - `BOURSE_FEED_RATE`: multiplies the simulator's tick rates (default 1; 0.01 to 100);
 * - `BOURSE_FEED_REPLAY_SPEED`: the CSV replay's speed, `1` as recorded (default), `10` ten times faster,
 *   `max` as fast as the engine takes the quotes.
 */
import type { FeedSettings } from "../config.ts";
import type { Platform } from "../platform.ts";
import { startCsvReplay } from "./csv-replay.ts";
import { startSimulator } from "./simulator.ts";

export interface FeedTuning {
  readonly rate: number;
  readonly replaySpeed: number;
}

function positiveNumber(name: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value < min || value > max)
    throw new Error(`${name} must be a number from ${min} to ${max}, got ${JSON.stringify(text)}`);
  return value;
}

export function feedTuning(environment: NodeJS.ProcessEnv): FeedTuning {
  const rate = environment.BOURSE_FEED_RATE;
  const speed = environment.BOURSE_FEED_REPLAY_SPEED;
  return {
    rate: rate ? positiveNumber("BOURSE_FEED_RATE", rate, 0.01, 100) : 1,
    replaySpeed:
      speed === "max" ? Infinity : speed ? positiveNumber("BOURSE_FEED_REPLAY_SPEED", speed, 0.001, 1_000_000) : 1,
  };
}

/**
 * Starts the configured feed; returns its stop function (stops timers, waits for the pushes in flight).
 * The caller registers it with `platform.onClose`.
 */
export function startFeed(platform: Platform, settings: FeedSettings, tuning: FeedTuning): () => Promise<void> {
  switch (settings.kind) {
    case "push":
      return async () => undefined;
    case "simulator": {
      const feed = startSimulator(platform, { seed: settings.seed, rate: tuning.rate });
      platform.log.info(`feed: simulator (seed ${settings.seed}, rate ×${tuning.rate})`);
      return () => feed.stop();
    }
    case "csv": {
      const feed = startCsvReplay(platform, settings.path, { speed: tuning.replaySpeed });
      platform.log.info(`feed: replaying ${settings.path} (speed ${tuning.replaySpeed})`);
      void feed.done.then(
        (summary) =>
          platform.log.info(
            `feed: ${settings.path} replayed: ${summary.pushed} quotes pushed, ${summary.badLines} bad lines skipped`,
          ),
        () => undefined,
      );
      return () => feed.stop();
    }
  }
}
