/**
 * A map that holds at most `capacity` entries: setting a new key when full forgets the oldest one
 * (insertion order). For caches that must not grow with the number of clients.
 */
export class BoundedMap<Key, Value> {
  private readonly entries = new Map<Key, Value>();

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1)
      throw new RangeError(`capacity must be positive, got ${capacity}`);
  }

  get(key: Key): Value | undefined {
    return this.entries.get(key);
  }

  set(key: Key, value: Value): void {
    if (!this.entries.has(key) && this.entries.size >= this.capacity) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(key, value);
  }

  delete(key: Key): boolean {
    return this.entries.delete(key);
  }

  /** Deletes every entry whose value `predicate` accepts; returns how many. */
  deleteWhere(predicate: (value: Value, key: Key) => boolean): number {
    let deleted = 0;
    for (const [key, value] of this.entries) {
      if (predicate(value, key)) {
        this.entries.delete(key);
        deleted += 1;
      }
    }
    return deleted;
  }

  get size(): number {
    return this.entries.size;
  }
}
