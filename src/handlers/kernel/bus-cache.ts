// A per-key cache of a database read that the replication bus invalidates: whenever a stream row
// says a key's data changed (in this process or any other), the key is dropped and read again on
// next use. A read that raced a change is not kept, so the cache never holds data older than the
// last change it was told about.

import type { ReplicationBus, StreamRow } from '../../streams/bus.js';
import { LruCache } from '../../util/lru.js';

export class BusInvalidatedCache<V> {
  private readonly cache: LruCache<string, Promise<V>>;
  /** Bumped on every invalidation of a key. */
  private readonly versions = new Map<string, number>();

  constructor(
    bus: ReplicationBus,
    capacity: number,
    /** The keys a stream row invalidates. */
    keysOf: (row: StreamRow) => Iterable<string>,
    private readonly load: (key: string) => Promise<V>,
  ) {
    this.cache = new LruCache(capacity);
    bus.subscribe((update) => {
      for (const row of update.rows) {
        for (const key of keysOf(row)) {
          this.cache.delete(key);
          this.versions.set(key, (this.versions.get(key) ?? 0) + 1);
        }
      }
    });
  }

  get(key: string): Promise<V> {
    const cached = this.cache.get(key);
    if (cached) return cached;
    const version = this.versions.get(key);
    const loading = this.load(key);
    // Concurrent readers share the read; it is kept only if nothing changed meanwhile.
    this.cache.set(key, loading);
    loading.then(
      () => {
        if (this.versions.get(key) !== version) this.cache.delete(key);
      },
      () => this.cache.delete(key),
    );
    return loading;
  }
}
