// Reading query parameters, with Synapse's answers to bad ones (`parse_integer`, `parse_boolean`,
// `parse_string` with `allowed_values`): a required parameter that is absent is 400
// `M_MISSING_PARAM`, a malformed one 400 `M_INVALID_PARAM`. A parameter given twice counts once
// (the first). The dispatcher has already refused U+0000 in any of them.

import { JsonInputError, parseJsonInput } from '../core/json.js';
import { Errors } from '../errors.js';

function missing(name: string): never {
  throw Errors.missingParam(`Missing query parameter "${name}"`);
}

/** A string parameter; absent gives undefined. */
export function stringParam(query: URLSearchParams, name: string): string | undefined {
  return query.get(name) ?? undefined;
}

export function requiredStringParam(query: URLSearchParams, name: string): string {
  return query.get(name) ?? missing(name);
}

/** An integer parameter (a JSON-safe one), at least `min` when given; absent gives undefined. */
export function integerParam(query: URLSearchParams, name: string, options: { min?: number } = {}): number | undefined {
  const raw = query.get(name);
  if (raw === null) return undefined;
  if (!/^-?\d{1,16}$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
    throw Errors.invalidParam(`Query parameter "${name}": expected an integer`);
  }
  const value = Number(raw);
  if (options.min !== undefined && value < options.min)
    throw Errors.invalidParam(`Query parameter "${name}": must be ${options.min} or above`);
  return value;
}

export function requiredIntegerParam(query: URLSearchParams, name: string, options: { min?: number } = {}): number {
  return integerParam(query, name, options) ?? missing(name);
}

/** A number of any kind (e.g. milliseconds), at least `min` when given; absent gives undefined. */
export function numberParam(query: URLSearchParams, name: string, options: { min?: number } = {}): number | undefined {
  const raw = query.get(name);
  if (raw === null || raw === '') return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || (options.min !== undefined && value < options.min)) {
    throw Errors.invalidParam(
      `Query parameter "${name}": expected a number${options.min === undefined ? '' : ` of ${options.min} or above`}`,
    );
  }
  return value;
}

/** `true` or `false`; absent gives undefined. */
export function booleanParam(query: URLSearchParams, name: string): boolean | undefined {
  const raw = query.get(name);
  if (raw === null) return undefined;
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  throw Errors.invalidParam(`Query parameter "${name}": expected true or false`);
}

/** One of `allowed`; absent gives undefined. */
export function enumParam<const T extends string>(query: URLSearchParams, name: string, allowed: readonly T[]): T | undefined {
  const raw = query.get(name);
  if (raw === null) return undefined;
  if (!(allowed as readonly string[]).includes(raw)) {
    throw Errors.invalidParam(`Query parameter "${name}": expected ${allowed.map((a) => JSON.stringify(a)).join(' or ')}`);
  }
  return raw as T;
}

export function requiredEnumParam<const T extends string>(query: URLSearchParams, name: string, allowed: readonly T[]): T {
  return enumParam(query, name, allowed) ?? missing(name);
}

/**
 * A parameter holding JSON (a filter), parsed with the same limits as bodies: 400 `M_NOT_JSON`
 * for text that is not JSON, `M_BAD_JSON` for JSON we do not take. Absent or empty gives
 * undefined.
 */
export function jsonParam(query: URLSearchParams, name: string): unknown {
  const raw = query.get(name);
  if (raw === null || raw === '') return undefined;
  try {
    return parseJsonInput(raw);
  } catch (err) {
    if (err instanceof JsonInputError && err.problem === 'syntax') throw Errors.notJson(`Query parameter "${name}" is not valid JSON`);
    if (err instanceof JsonInputError) throw Errors.jsonInput(err);
    throw err;
  }
}
