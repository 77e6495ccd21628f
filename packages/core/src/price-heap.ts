/**
 * A binary heap of (price, id) entries, the price index behind pending orders, SL/TP and
 * alerts: a tick looks only at the top, never scans every resting order. Ties break by id,
 * so equal prices trigger in arrival order and every replay triggers in the same order.
 *
 * Removal is lazy: an entry carries the version of its owner at insertion, and entries whose
 * version is stale are discarded when they surface (`isLive`). The heap compacts itself when
 * stale entries outnumber live ones, so it never grows without bound.
 */
export type HeapDirection = "MIN" | "MAX";

export class PriceHeap {
  private prices: number[] = [];
  private ids: number[] = [];
  private versions: number[] = [];
  private staleCount = 0;

  constructor(
    readonly direction: HeapDirection,
    private readonly isLive: (id: number, version: number) => boolean,
  ) {}

  get size(): number {
    return this.prices.length;
  }

  push(price: number, id: number, version: number): void {
    this.prices.push(price);
    this.ids.push(id);
    this.versions.push(version);
    this.siftUp(this.prices.length - 1);
  }

  /** Marks one entry as dead so compaction can be scheduled; the entry itself is dropped lazily. */
  noteStale(): void {
    this.staleCount++;
    if (this.staleCount > 64 && this.staleCount * 2 > this.prices.length) this.compact();
  }

  /**
   * Removes every entry whose price has been reached by `limit` and appends the live ones' ids to
   * `into`, best first: a MAX heap pops prices ≥ limit, a MIN heap prices ≤ limit. The price is
   * compared before liveness is looked up, so a tick that reaches nothing costs one comparison.
   */
  popReached(limit: number, into: number[]): void {
    const max = this.direction === "MAX";
    while (this.prices.length > 0) {
      const price = this.prices[0] as number;
      if (max ? price < limit : price > limit) return;
      const id = this.ids[0] as number;
      const live = this.isLive(id, this.versions[0] as number);
      this.removeTop();
      if (live) into.push(id);
      else if (this.staleCount > 0) this.staleCount--;
    }
  }

  /** The best live price, or null. */
  peekPrice(): number | null {
    while (this.prices.length > 0) {
      if (this.isLive(this.ids[0] as number, this.versions[0] as number)) return this.prices[0] as number;
      this.removeTop();
      if (this.staleCount > 0) this.staleCount--;
    }
    return null;
  }

  private compact(): void {
    const prices: number[] = [];
    const ids: number[] = [];
    const versions: number[] = [];
    for (let index = 0; index < this.prices.length; index++) {
      const id = this.ids[index] as number;
      const version = this.versions[index] as number;
      if (!this.isLive(id, version)) continue;
      prices.push(this.prices[index] as number);
      ids.push(id);
      versions.push(version);
    }
    this.prices = prices;
    this.ids = ids;
    this.versions = versions;
    this.staleCount = 0;
    for (let index = (this.prices.length >> 1) - 1; index >= 0; index--) this.siftDown(index);
  }

  /** True when entry a must come out before entry b. */
  private before(a: number, b: number): boolean {
    const priceA = this.prices[a] as number;
    const priceB = this.prices[b] as number;
    if (priceA !== priceB) return this.direction === "MIN" ? priceA < priceB : priceA > priceB;
    return (this.ids[a] as number) < (this.ids[b] as number);
  }

  private swap(a: number, b: number): void {
    const price = this.prices[a] as number;
    this.prices[a] = this.prices[b] as number;
    this.prices[b] = price;
    const id = this.ids[a] as number;
    this.ids[a] = this.ids[b] as number;
    this.ids[b] = id;
    const version = this.versions[a] as number;
    this.versions[a] = this.versions[b] as number;
    this.versions[b] = version;
  }

  private removeTop(): void {
    const last = this.prices.length - 1;
    if (last > 0) this.swap(0, last);
    this.prices.pop();
    this.ids.pop();
    this.versions.pop();
    if (this.prices.length > 1) this.siftDown(0);
  }

  private siftUp(index: number): void {
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!this.before(index, parent)) return;
      this.swap(index, parent);
      index = parent;
    }
  }

  private siftDown(index: number): void {
    const length = this.prices.length;
    for (;;) {
      const left = index * 2 + 1;
      if (left >= length) return;
      const right = left + 1;
      const best = right < length && this.before(right, left) ? right : left;
      if (!this.before(best, index)) return;
      this.swap(index, best);
      index = best;
    }
  }
}
