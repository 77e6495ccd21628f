/**
 * A histogram of durations with fixed bucket bounds, as Prometheus keeps them: a count per bucket (each
 * duration counts in the first bucket whose bound it does not exceed, and in none above: `counts` are per
 * bucket, the exposition sums them into `le` totals), the number of durations and their sum. Fixed size:
 * observing never allocates, so it can sit on every command's path.
 */

/**
 * Bounds for waits on storage and requests, in milliseconds: from a quarter of a millisecond (an append on a
 * fast disk) to 10 s (a stalled database), roughly ×2-2.5 apart.
 */
export const DURATION_BUCKET_BOUNDS_MILLISECONDS: readonly number[] = Object.freeze([
  0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000,
]);

export interface DurationHistogramSnapshot {
  /** The buckets' upper bounds, in milliseconds, ascending. */
  readonly boundsMilliseconds: readonly number[];
  /** Durations per bucket (not cumulative); one more than the bounds: the last counts those above every bound. */
  readonly counts: readonly number[];
  readonly count: number;
  readonly sumMilliseconds: number;
}

export class DurationHistogram {
  private readonly counts: number[];
  private total = 0;
  private sum = 0;

  constructor(private readonly boundsMilliseconds: readonly number[] = DURATION_BUCKET_BOUNDS_MILLISECONDS) {
    for (let index = 0; index < boundsMilliseconds.length; index++) {
      const bound = boundsMilliseconds[index]!;
      if (!(bound > 0) || !Number.isFinite(bound) || (index > 0 && bound <= boundsMilliseconds[index - 1]!))
        throw new RangeError(
          `bucket bounds must be finite, positive and ascending, got ${boundsMilliseconds.join(", ")}`,
        );
    }
    this.counts = new Array<number>(boundsMilliseconds.length + 1).fill(0);
  }

  /** Counts one duration; a negative or non-finite one (a clock that went wrong) is counted as 0. */
  observe(milliseconds: number): void {
    const duration = Number.isFinite(milliseconds) && milliseconds > 0 ? milliseconds : 0;
    const bounds = this.boundsMilliseconds;
    let bucket = 0;
    while (bucket < bounds.length && duration > bounds[bucket]!) bucket++;
    this.counts[bucket]! += 1;
    this.total += 1;
    this.sum += duration;
  }

  snapshot(): DurationHistogramSnapshot {
    return {
      boundsMilliseconds: this.boundsMilliseconds,
      counts: [...this.counts],
      count: this.total,
      sumMilliseconds: this.sum,
    };
  }
}
