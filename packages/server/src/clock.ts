/**
 * The server's clock, injected like the core's time (tests pin it: forex sessions close at weekends,
 * and an end-to-end test must not depend on the day it runs).
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock that moves only when told: tests and deterministic replays. */
export class ManualClock implements Clock {
  constructor(private milliseconds: number) {}
  now(): number {
    return this.milliseconds;
  }
  set(milliseconds: number): void {
    this.milliseconds = milliseconds;
  }
  advance(milliseconds: number): void {
    this.milliseconds += milliseconds;
  }
}
