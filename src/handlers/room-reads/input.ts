// Checking the JSON bodies and query parameters of this area's endpoints, alongside the string
// helpers of src/api/client/params.ts. Wrong body types are 400 M_BAD_JSON; malformed query
// parameters 400 M_INVALID_PARAM (as Synapse's parse_integer / parse_string).

import { parseRoomEventFilter, type RoomEventFilter } from '../../core/filters.js';
import { JsonInputError, parseJsonInput, type JsonObject, type JsonValue } from '../../core/json.js';
import { Errors } from '../../errors.js';

export function optionalInteger(body: JsonObject, key: string): number | undefined {
  const value: JsonValue | undefined = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw Errors.badJson(`${key} must be an integer`);
  return value;
}

export function optionalBoolean(body: JsonObject, key: string): boolean | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw Errors.badJson(`${key} must be a boolean`);
  return value;
}

/** An integer query parameter; absent gives `fallback`. */
export function integerParam(query: URLSearchParams, name: string, fallback: number): number;
export function integerParam(query: URLSearchParams, name: string): number | undefined;
export function integerParam(query: URLSearchParams, name: string, fallback?: number): number | undefined {
  const raw = query.get(name);
  if (raw === null) return fallback;
  if (!/^-?\d{1,16}$/.test(raw) || !Number.isSafeInteger(Number(raw))) throw Errors.invalidParam(`Query parameter ${name} must be an integer`);
  return Number(raw);
}

/** A query parameter restricted to `allowed` values. */
export function enumParam<T extends string>(query: URLSearchParams, name: string, allowed: readonly T[]): T | undefined {
  const raw = query.get(name);
  if (raw === null) return undefined;
  if (!(allowed as readonly string[]).includes(raw)) {
    throw Errors.invalidParam(`Query parameter ${name} must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`);
  }
  return raw as T;
}

/** `limit` of /messages and /context: ≥ 0, default `fallback`, at most `max`. */
export function limitParam(query: URLSearchParams, fallback: number, max: number): number {
  const limit = integerParam(query, 'limit', fallback);
  if (limit < 0) throw Errors.invalidParam('limit must be 0 or above');
  return Math.min(limit, max);
}

/** The `filter` query parameter: a JSON RoomEventFilter (400 M_NOT_JSON if it does not parse). */
export function roomEventFilterParam(query: URLSearchParams): RoomEventFilter | undefined {
  const raw = query.get('filter');
  if (raw === null || raw === '') return undefined;
  let json: unknown;
  try {
    json = parseJsonInput(raw);
  } catch (err) {
    if (err instanceof JsonInputError && err.problem === 'syntax') throw Errors.notJson('filter is not valid JSON');
    if (err instanceof JsonInputError) throw Errors.jsonInput(err);
    throw err;
  }
  return parseRoomEventFilter(json);
}
