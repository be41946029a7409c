// Reading path parameters and bodies of client requests, with Synapse's errors for bad input.

import { isJsonObject, type JsonObject } from '../../core/json.js';
import { Errors } from '../../errors.js';
import type { RouteRequest } from '../../http/route.js';

/** The request body, which the dispatcher has already required to be a JSON object. */
export function jsonBody(req: RouteRequest): JsonObject {
  return isJsonObject(req.body) ? req.body : {};
}

/** A path parameter that must be a room id (`!…`). */
export function roomIdParam(req: RouteRequest, name = 'roomId'): string {
  const value = req.params[name] ?? '';
  if (!value.startsWith('!')) throw Errors.invalidParam(`"${value}" is not a room id`);
  return value;
}

export function stringField(body: JsonObject, key: string, options: { required: true }): string;
export function stringField(body: JsonObject, key: string, options?: { required?: false }): string | undefined;
export function stringField(body: JsonObject, key: string, options: { required?: boolean } = {}): string | undefined {
  const value = body[key];
  if (value === undefined || value === null) {
    if (options.required) throw Errors.missingParam(`Missing "${key}"`);
    return undefined;
  }
  if (typeof value !== 'string') throw Errors.badJson(`"${key}" must be a string`);
  return value;
}
