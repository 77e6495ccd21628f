/**
 * The engine's clock without quotes: once an order's expiration or a day's rollover (swaps, DAY orders) is due, an
 * `advanceTime` command runs it. The engine runs what is due at every command, but nothing else sent one: with no
 * quote and no request (a quiet market, a push feed, the weekend) an order past its expiration stayed working, in
 * the lists and the histories, and its `executionEvent` waited for the next command (found by the audit of
 * 7 December, second session).
 */
import { ApiError } from "./errors.ts";
import type { Platform } from "./platform.ts";

/** How often the clock looks whether something is due: an expiration runs at most this late. */
export const ENGINE_CLOCK_INTERVAL_MS = 1000;

const clocks = new WeakMap<Platform, EngineClock>();

export class EngineClock {
  private timer: NodeJS.Timeout | null = null;
  /** The `advanceTime` being run, which `stop` waits for (its events are published before the platform closes). */
  private advancing: Promise<boolean> | null = null;

  /** The one clock of a platform. */
  static for(platform: Platform): EngineClock {
    let clock = clocks.get(platform);
    if (!clock) clocks.set(platform, (clock = new EngineClock(platform)));
    return clock;
  }

  private constructor(private readonly platform: Platform) {}

  /** Looks every ENGINE_CLOCK_INTERVAL_MS until the platform closes. Call once recovery has finished. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.advanceIfDue(), ENGINE_CLOCK_INTERVAL_MS);
    this.timer.unref();
    this.platform.onClose(() => this.stop());
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.advancing;
  }

  /** Sends `advanceTime` when an expiration or a rollover is due; answers whether it ran one. */
  advanceIfDue(): Promise<boolean> {
    if (this.advancing || !this.platform.ready) return Promise.resolve(false);
    const due = this.platform.engine.nextDueTime();
    if (due === null || this.platform.clock.now() < due) return Promise.resolve(false);
    const advancing = this.advance();
    this.advancing = advancing;
    void advancing.finally(() => {
      if (this.advancing === advancing) this.advancing = null;
    });
    return advancing;
  }

  private async advance(): Promise<boolean> {
    try {
      await this.platform.execute({ kind: "advanceTime" });
      return true;
    } catch (error) {
      // The journal refused it (the engine rebuilds, or the disk is full): the next look tries again.
      if (!(error instanceof ApiError))
        this.platform.log.error(`engine clock: advanceTime failed: ${String((error as Error)?.stack ?? error)}`);
      return false;
    }
  }
}
