// Query parameters of the timeline reads (/messages and /context), read with src/http/query.ts.

import { InvalidFilterError, parseRoomEventFilter, type RoomEventFilter } from '../../core/filters.js';
import { Errors } from '../../errors.js';
import { integerParam, jsonParam } from '../../http/query.js';

/** `limit` of /messages and /context: ≥ 0, default `fallback`, at most `max`. */
export function limitParam(query: URLSearchParams, fallback: number, max: number): number {
  return Math.min(integerParam(query, 'limit', { min: 0 }) ?? fallback, max);
}

/** The `filter` query parameter of /messages and /context: a JSON RoomEventFilter. */
export function roomEventFilterParam(query: URLSearchParams): RoomEventFilter | undefined {
  const json = jsonParam(query, 'filter');
  if (json === undefined) return undefined;
  try {
    return parseRoomEventFilter(json);
  } catch (err) {
    throw err instanceof InvalidFilterError ? Errors.fromCore(err) : err;
  }
}
