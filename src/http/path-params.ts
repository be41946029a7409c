// What the dispatcher checks in a request's URL before a handler sees it, the same for every
// route: ids named in the path (`{roomId}`, `{userId}`, `{eventId}`, `{roomAlias}`,
// `{roomIdOrAlias}`) follow the spec's grammar (spec: appendices §Identifier Grammar), no path
// parameter is longer than any Matrix name it stands for, and no path or query parameter holds
// U+0000, which no id or Matrix name contains and PostgreSQL text columns cannot store. A bad
// parameter is 400 `M_INVALID_PARAM`, as Synapse answers an id that does not parse.

import { isValidRoomAlias, isValidRoomId, isValidUserId, MAX_IDENTIFIER_BYTES, utf8Length } from '../core/identifiers.js';
import { Errors } from '../errors.js';
import { MAX_DEVICE_ID_LENGTH } from '../handlers/accounts/fields.js';

interface IdParam {
  readonly what: string;
  readonly valid: (value: string) => boolean;
}

/** Path parameters that are ids, by the name routes give them in their templates. */
const ID_PARAMS: Readonly<Record<string, IdParam>> = {
  roomId: { what: 'room ID', valid: (v) => isValidRoomId(v) },
  userId: { what: 'user ID', valid: (v) => isValidUserId(v) },
  // An event id's grammar depends on its room's version; one of the wrong shape for every version
  // is simply not found (404, as Synapse answers), so only the sigil and length are checked here.
  eventId: { what: 'event ID', valid: (v) => v.startsWith('$') && utf8Length(v) <= MAX_IDENTIFIER_BYTES },
  roomAlias: { what: 'room alias', valid: (v) => isValidRoomAlias(v) },
  roomIdOrAlias: { what: 'room ID or alias', valid: (v) => isValidRoomId(v) || isValidRoomAlias(v) },
};

/**
 * The longest path parameter, in UTF-8 bytes. Ids, event types and state keys are at most 255
 * bytes, namespaced identifiers (account data types, tags) 255 characters; twice that leaves room
 * for any transaction id or rule id a client makes, and keeps database keys built from several
 * parameters (a transaction id with its room, user and device) within PostgreSQL's limit for an
 * index entry (about 2.7 KB). Device ids are as long as login accepts them (512 characters).
 */
export const MAX_PATH_PARAM_BYTES = 512;

/** Whether a path parameter of this name is checked as an id (the fuzz test uses this too). */
export function isIdParam(name: string): boolean {
  return Object.hasOwn(ID_PARAMS, name);
}

/** Throws 400 `M_INVALID_PARAM` for the first bad path parameter. */
export function checkPathParams(params: Readonly<Record<string, string | undefined>>): void {
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined) continue;
    if (value.includes('\u0000')) throw Errors.invalidParam(`The path parameter ${name} must not contain U+0000`);
    if (name === 'deviceId' ? value.length > MAX_DEVICE_ID_LENGTH : utf8Length(value) > MAX_PATH_PARAM_BYTES) {
      throw Errors.invalidParam(`The path parameter ${name} is too long`);
    }
    const id = Object.hasOwn(ID_PARAMS, name) ? ID_PARAMS[name] : undefined;
    if (id && !id.valid(value)) throw Errors.invalidParam(`The path parameter ${name} is not a valid ${id.what}`);
  }
}

/** Throws 400 `M_INVALID_PARAM` when a query parameter's name or value holds U+0000. */
export function checkQueryParams(query: URLSearchParams): void {
  for (const [name, value] of query) {
    if (name.includes('\u0000') || value.includes('\u0000')) {
      throw Errors.invalidParam('Query parameters must not contain U+0000');
    }
  }
}
