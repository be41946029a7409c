// Reading the fields of account requests. The values may come from the request body or from the
// body a user-interactive auth session stored earlier, so they are checked here, in the handlers,
// rather than only at the HTTP layer. Wrong types are 400 `M_BAD_JSON`; absent values and `null`
// both read as "not given", as Synapse does.

import { isJsonObject, type JsonObject } from '../../core/json.js';
import { Errors, MatrixError } from '../../errors.js';

export function optionalString(body: JsonObject, key: string, options: { maxLength?: number; tooLong?: MatrixError } = {}): string | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw Errors.badJson(`"${key}" must be a string`);
  if (options.maxLength !== undefined && value.length > options.maxLength) {
    throw options.tooLong ?? Errors.badJson(`"${key}" must be at most ${options.maxLength} characters`);
  }
  return value;
}

export function optionalBoolean(body: JsonObject, key: string): boolean | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw Errors.badJson(`"${key}" must be true or false`);
  return value;
}

export function optionalObject(body: JsonObject, key: string): JsonObject | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (!isJsonObject(value)) throw Errors.badJson(`"${key}" must be a JSON object`);
  return value;
}

/** A required list of strings (e.g. device ids). */
export function stringList(body: JsonObject, key: string): string[] {
  const value = body[key];
  if (value === undefined || value === null) throw Errors.missingParam(`Missing "${key}"`);
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
    throw Errors.badJson(`"${key}" must be a list of strings`);
  }
  return value as string[];
}

/** Synapse's limits on what a client may name a device (`Syn:synapse/handlers/device.py`). */
export const MAX_DEVICE_ID_LENGTH = 512;
export const MAX_DEVICE_DISPLAY_NAME_LENGTH = 100;

export function deviceIdField(body: JsonObject): string | undefined {
  return optionalString(body, 'device_id', {
    maxLength: MAX_DEVICE_ID_LENGTH,
    tooLong: Errors.invalidParam(`device_id cannot be longer than ${MAX_DEVICE_ID_LENGTH} characters.`),
  });
}

export function deviceDisplayNameField(body: JsonObject, key: string): string | undefined {
  return optionalString(body, key, {
    maxLength: MAX_DEVICE_DISPLAY_NAME_LENGTH,
    tooLong: new MatrixError(400, 'M_INVALID_PARAM', `Device display name is too long (max ${MAX_DEVICE_DISPLAY_NAME_LENGTH})`),
  });
}
