// Filters (S:data/api/client-server/filter.yaml): uploaded once, then named by their per-user id
// in /sync. Validation is `parseFilter` (src/core/filters.ts). Any process may serve these: ids are
// allocated by the database, and a stored filter never changes, so parsed filters are cached.

import { DEFAULT_MAX_TIMELINE_LIMIT, InvalidFilterError, parseFilter, type Filter } from '../../core/filters.js';
import { isJsonObject, type JsonObject } from '../../core/json.js';
import { Errors } from '../../errors.js';
import type { FiltersStore } from '../../storage/filters-store.js';
import { KeyedQueue } from '../../streams/stream-writer.js';
import { LruCache } from '../../util/lru.js';
import type { Requester } from '../kernel/requester.js';
import { requireSelf } from './checks.js';

const FILTER_ID = /^(0|[1-9][0-9]{0,14})$/;

export class FiltersHandler {
  private readonly parsed = new LruCache<string, Filter>(10_000);
  /**
   * One upload per user at a time in this process: uploads racing for a user's next id make each
   * other retry, and a burst of them ran out of retries (a 500). Other processes still race, rarely.
   */
  private readonly uploads = new KeyedQueue();

  constructor(private readonly store: FiltersStore) {}

  /** `POST /user/{userId}/filter`: validates and stores; returns the new id. */
  async create(requester: Requester, userId: string, body: JsonObject): Promise<string> {
    requireSelf(requester, userId, 'Cannot create filters for other users');
    let filter: Filter;
    try {
      filter = parseFilter(body);
    } catch (err) {
      throw err instanceof InvalidFilterError ? Errors.fromCore(err) : err;
    }
    // Stored as uploaded, but with the timeline limit capped as it will be applied (Synapse), so
    // reading the filter back shows what the server does with it.
    const id = await this.uploads.run(userId, () => this.store.add(userId, JSON.stringify(withCappedTimelineLimit(body))));
    this.parsed.set(cacheKey(userId, String(id)), filter);
    return String(id);
  }

  /** `GET /user/{userId}/filter/{filterId}`: the filter as stored. */
  async getJson(requester: Requester, userId: string, filterId: string): Promise<JsonObject> {
    requireSelf(requester, userId, 'Cannot get filters for other users');
    const json = FILTER_ID.test(filterId) ? await this.store.get(userId, Number(filterId)) : undefined;
    if (json === undefined) throw Errors.notFound('No such filter');
    return JSON.parse(json) as JsonObject;
  }

  /** The user's filter with this id, parsed, for /sync; undefined if there is none. */
  async getFilter(userId: string, filterId: string): Promise<Filter | undefined> {
    const key = cacheKey(userId, filterId);
    const cached = this.parsed.get(key);
    if (cached) return cached;
    if (!FILTER_ID.test(filterId)) return undefined;
    const json = await this.store.get(userId, Number(filterId));
    if (json === undefined) return undefined;
    const filter = parseFilter(JSON.parse(json));
    this.parsed.set(key, filter);
    return filter;
  }
}

function cacheKey(userId: string, filterId: string): string {
  return `${userId}\u0000${filterId}`;
}

function withCappedTimelineLimit(body: JsonObject): JsonObject {
  const room = body.room;
  const timeline = isJsonObject(room) ? room.timeline : undefined;
  if (!isJsonObject(room) || !isJsonObject(timeline) || typeof timeline.limit !== 'number' || timeline.limit <= DEFAULT_MAX_TIMELINE_LIMIT)
    return body;
  return { ...body, room: { ...room, timeline: { ...timeline, limit: DEFAULT_MAX_TIMELINE_LIMIT } } };
}
