// Matrix errors: every client-facing failure is `{errcode, error}` with an HTTP status (spec:
// client-server API, §Standard error response). Handlers throw these; the HTTP layer turns them
// into responses. Anything else that escapes a handler is a bug and is answered with 500
// M_UNKNOWN.
//
// The vocabulary is closed: `Errcode` lists every code this server answers, and `Errors` has a
// factory for each of them (the status is fixed where the spec fixes it, a parameter where one
// code is answered with several). A MatrixError is only ever built here.

import { z } from 'zod';
import { isJsonObject, type JsonObject } from './core/json.js';

/** Every errcode this server answers with (spec: client-server API, §Common error codes and §Other error codes). */
export type Errcode =
  | 'M_BAD_ALIAS'
  | 'M_BAD_JSON'
  | 'M_FORBIDDEN'
  | 'M_GUEST_ACCESS_FORBIDDEN'
  | 'M_INCOMPATIBLE_ROOM_VERSION'
  | 'M_INVALID_PARAM'
  | 'M_INVALID_SIGNATURE'
  | 'M_INVALID_USERNAME'
  | 'M_KEY_TOO_LARGE'
  | 'M_LIMIT_EXCEEDED'
  | 'M_MISSING_PARAM'
  | 'M_MISSING_TOKEN'
  | 'M_NOT_FOUND'
  | 'M_NOT_JSON'
  | 'M_ROOM_IN_USE'
  | 'M_TOO_LARGE'
  | 'M_UNAUTHORIZED'
  | 'M_UNKNOWN'
  | 'M_UNKNOWN_TOKEN'
  | 'M_UNRECOGNIZED'
  | 'M_UNSUPPORTED_ROOM_VERSION'
  | 'M_USER_DEACTIVATED'
  | 'M_USER_IN_USE'
  | 'M_WRONG_ROOM_KEYS_VERSION';

export class MatrixError extends Error {
  constructor(
    readonly status: number,
    readonly errcode: Errcode,
    message: string,
    /** Extra top-level fields of the error body, e.g. `retry_after_ms`. */
    readonly extra: Readonly<Record<string, unknown>> = {},
    /** Extra response headers, e.g. `Retry-After`. */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = 'MatrixError';
  }

  toJSON(): Record<string, unknown> {
    return { ...this.extra, errcode: this.errcode, error: this.message };
  }
}

/** Statuses M_UNKNOWN is answered with: the spec's catch-all, for failures it names no code for. */
type UnknownStatus = 400 | 403 | 408 | 409 | 500 | 502 | 503;

export const Errors = {
  // ---- one factory per errcode ----

  badAlias: (message: string) => new MatrixError(400, 'M_BAD_ALIAS', message),
  /** Valid JSON that is not what the endpoint takes (a wrong type, a wrong shape). */
  badJson: (message = 'Content must be a JSON object', status: 400 | 405 = 400) => new MatrixError(status, 'M_BAD_JSON', message),
  /** `extra`: e.g. the auth rule that refused an event (`{rule}`). */
  forbidden: (message: string, extra: Readonly<Record<string, unknown>> = {}) => new MatrixError(403, 'M_FORBIDDEN', message, extra),
  guestAccessForbidden: (message = 'Guest access not allowed') => new MatrixError(403, 'M_GUEST_ACCESS_FORBIDDEN', message),
  /** Federation: the room's version is not one the other server supports (spec: server-server API, make_join, invite). */
  incompatibleRoomVersion: (roomVersion: string, message = `Room version ${roomVersion} is not supported`) =>
    new MatrixError(400, 'M_INCOMPATIBLE_ROOM_VERSION', message, { room_version: roomVersion }),
  invalidParam: (message: string) => new MatrixError(400, 'M_INVALID_PARAM', message),
  invalidSignature: (message = 'Invalid signature') => new MatrixError(400, 'M_INVALID_SIGNATURE', message),
  invalidUsername: (message: string) => new MatrixError(400, 'M_INVALID_USERNAME', message),
  keyTooLarge: (message: string) => new MatrixError(400, 'M_KEY_TOO_LARGE', message),
  /**
   * 429 with `retry_after_ms` and `Retry-After` (whole seconds, rounded up). A negative wait (a
   * limiter that never refills) announces none.
   */
  limitExceeded: (retryAfterMs = -1, message = 'Too Many Requests') =>
    retryAfterMs < 0
      ? new MatrixError(429, 'M_LIMIT_EXCEEDED', message)
      : new MatrixError(
          429,
          'M_LIMIT_EXCEEDED',
          message,
          { retry_after_ms: retryAfterMs },
          { 'Retry-After': String(Math.ceil(retryAfterMs / 1000)) },
        ),
  missingParam: (message: string) => new MatrixError(400, 'M_MISSING_PARAM', message),
  missingToken: (message = 'Missing access token') => new MatrixError(401, 'M_MISSING_TOKEN', message),
  notFound: (message = 'Not found') => new MatrixError(404, 'M_NOT_FOUND', message),
  notJson: (message = 'Content not JSON') => new MatrixError(400, 'M_NOT_JSON', message),
  /** 400 for a room alias that is taken; 409 for a room id (see `roomIdTaken`). */
  roomInUse: (message: string, status: 400 | 409 = 400) => new MatrixError(status, 'M_ROOM_IN_USE', message),
  /** 413 for a body; 414 for a request URI, 431 for headers. */
  tooLarge: (message = 'Request too large', status: 413 | 414 | 431 = 413) => new MatrixError(status, 'M_TOO_LARGE', message),
  /** A federation request without a valid `X-Matrix` signature (spec: server-server API §Request Authentication). */
  unauthorized: (message: string) => new MatrixError(401, 'M_UNAUTHORIZED', message),
  unknown: (message = 'Internal server error', status: UnknownStatus = 500, headers: Readonly<Record<string, string>> = {}) =>
    new MatrixError(status, 'M_UNKNOWN', message, {}, headers),
  unknownToken: (message = 'Unrecognised access token') => new MatrixError(401, 'M_UNKNOWN_TOKEN', message, { soft_logout: false }),
  unrecognized: (status: 404 | 405 | 400, message = 'Unrecognized request') => new MatrixError(status, 'M_UNRECOGNIZED', message),
  unsupportedRoomVersion: (message: string) => new MatrixError(400, 'M_UNSUPPORTED_ROOM_VERSION', message),
  userDeactivated: (message = 'This account has been deactivated') => new MatrixError(403, 'M_USER_DEACTIVATED', message),
  userInUse: (message = 'User ID already taken.') => new MatrixError(400, 'M_USER_IN_USE', message),
  /** A key upload to a backup version that is not the current one (key_backup.yaml). */
  wrongRoomKeysVersion: (currentVersion: string | null) =>
    new MatrixError(403, 'M_WRONG_ROOM_KEYS_VERSION', 'Wrong backup version.', { current_version: currentVersion }),

  // ---- named cases of the codes above ----

  /** JSON from a request that `parseJsonInput` refused: not JSON at all, or JSON we do not take. */
  jsonInput: (err: { readonly problem: string; readonly message: string }) =>
    err.problem === 'syntax' ? Errors.notJson() : Errors.badJson(err.message),
  /** A request the HTTP parser could not read (the spec has no errcode for it). */
  malformedRequest: (message = 'Malformed HTTP request') => Errors.unknown(message, 400),
  requestTimeout: () => Errors.unknown('The request took too long to arrive', 408),
  /** Every connection slot of a listener is taken by a request in flight. */
  serverBusy: () => Errors.unknown('The server has too many open connections; try again shortly', 503, { 'Retry-After': '1' }),
  /**
   * A new room's id is already a room's: in v12 two identical create events (same creator,
   * content and timestamp) give one room id; before v12 a random id can repeat. Room creation
   * builds another create event and tries again (see RoomCreationHandler); clients never see it.
   */
  roomIdTaken: (roomId: string) => Errors.roomInUse(`Room id ${roomId} is already in use`, 409),
  /**
   * A dependency (the database) cannot serve for a while: 503 with `Retry-After` (RFC 9110
   * §15.6.4), so clients repeat the request later instead of taking it as failed for good. The
   * errcode is M_UNKNOWN, the spec's catch-all (client-server API, §Standard error response).
   */
  unavailable: (message = 'Service temporarily unavailable', retryAfterSeconds = 1) =>
    Errors.unknown(message, 503, { 'Retry-After': String(retryAfterSeconds) }),
  /** Another process of this deployment could not be reached, or answered what it should not. */
  badGateway: (message: string) => Errors.unknown(message, 502),
  /**
   * An error another process of this deployment answered (replication HTTP), given back as it
   * came. It runs this code, so its errcode is one of ours; it is kept verbatim all the same.
   */
  relayed: (
    status: number,
    errcode: string,
    message: string,
    extra: Readonly<Record<string, unknown>>,
    headers: Readonly<Record<string, string>>,
  ) => new MatrixError(status, errcode as Errcode, message, extra, headers),
  /** A typed failure from `core/` (event checks, push rules): its code and status, our error. */
  fromCore: (err: { readonly status: number; readonly errcode: Errcode; readonly message: string }) =>
    new MatrixError(err.status, err.errcode, err.message),
} as const;

// ---- input validated by zod schemas ----------------------------------------------------------

/**
 * A JSON object taken as it is (event content, account data, a body its handler reads itself).
 * Not copied: the handler gets the parsed object, every key kept.
 */
export const jsonObject = z.custom<JsonObject>((value) => isJsonObject(value), {
  message: 'expected an object',
  params: { errcode: 'M_BAD_JSON' } satisfies IssueParams,
});

/**
 * `schema`, with `null` read as absent, as Synapse reads most optional fields (an optional field
 * then accepts `null`; a required one answers `null` as missing).
 */
export function absentIfNull<S extends z.ZodType>(schema: S) {
  return z.preprocess((value) => (value === null ? undefined : value), schema);
}

/**
 * `schema` with one more check whose failure has its own errcode and message (the field's path
 * is put before the message).
 */
export function checked<S extends z.ZodType>(schema: S, valid: (value: z.output<S>) => boolean, errcode: Errcode, message: string): S {
  return schema.refine(valid, { message, params: { errcode } satisfies IssueParams });
}

/** An optional string; `null` reads as absent. */
export const optionalString = absentIfNull(z.string().optional());
/** A required string; `null` answers as missing. */
export const requiredString = absentIfNull(z.string());
/** An optional boolean; `null` reads as absent. */
export const optionalBoolean = absentIfNull(z.boolean().optional());
/** An optional integer (a JSON-safe one); `null` reads as absent. */
export const optionalInteger = absentIfNull(z.int().optional());
/** An optional JSON object; `null` reads as absent. */
export const optionalObject = absentIfNull(jsonObject.optional());

/** The errcode a schema check asks for, carried in a custom issue's `params` (see `checked`). */
interface IssueParams {
  readonly errcode?: Errcode;
}

/**
 * Client input read through a zod schema: the parsed value, or the Matrix error for the first
 * problem (`inputIssueError`). Used by the dispatcher for route bodies, and by handlers for
 * input that does not come straight from a request (a body a user-interactive auth session kept).
 */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  // `reportInput` puts the offending value in each issue, which tells an absent field (no value)
  // from one of the wrong type.
  const result = schema.safeParse(value, { reportInput: true });
  if (!result.success) throw inputIssueError(result.error.issues);
  return result.data;
}

/**
 * Turns the first issue of a failed zod parse into a Matrix error that names the field:
 * - a required field that is absent: 400 `M_MISSING_PARAM` (`Missing "user_id"`);
 * - a field of the wrong JSON type (`null` included): 400 `M_BAD_JSON` (`"timeout": expected a
 *   number`);
 * - a value out of its range or set (a length, a minimum, an enum): 400 `M_INVALID_PARAM`;
 * - a custom check: its own message, with the errcode it names (else `M_INVALID_PARAM`).
 */
function inputIssueError(issues: readonly z.core.$ZodIssue[]): MatrixError {
  const issue = issues[0];
  if (!issue) return Errors.badJson();
  const where = fieldPath(issue.path);
  const label = where === '' ? 'The body' : `"${where}"`;
  // Parsed with `reportInput`: an absent field has no input (nor has `null` where a schema reads
  // it as absent, see `absentIfNull`).
  if (where !== '' && issue.input === undefined && (issue.code === 'invalid_type' || issue.code === 'custom')) {
    return Errors.missingParam(`Missing ${label}`);
  }
  switch (issue.code) {
    case 'invalid_type':
      return Errors.badJson(`${label}: expected ${describeType(issue.expected)}`);
    case 'invalid_value':
      return Errors.invalidParam(`${label}: expected ${issue.values.map((v) => JSON.stringify(v)).join(' or ')}`);
    case 'too_big':
      return Errors.invalidParam(`${label}: ${issue.origin === 'string' ? 'longer than' : 'above'} ${String(issue.maximum)}`);
    case 'too_small':
      return Errors.invalidParam(`${label}: ${issue.origin === 'string' ? 'shorter than' : 'below'} ${String(issue.minimum)}`);
    case 'invalid_format':
      return Errors.invalidParam(`${label}: not a valid ${issue.format}`);
    case 'invalid_key': {
      // A record's key (the path ends with it) that its key schema refused.
      const inner = issue.issues[0];
      const errcode =
        inner?.code === 'custom' ? ((inner.params as IssueParams | undefined)?.errcode ?? 'M_INVALID_PARAM') : 'M_INVALID_PARAM';
      return new MatrixError(400, errcode, `${label}: ${inner?.code === 'custom' ? inner.message : 'not a valid key'}`);
    }
    case 'invalid_element':
      return Errors.invalidParam(`${label}: has an invalid element`);
    case 'custom': {
      const errcode = (issue.params as IssueParams | undefined)?.errcode ?? 'M_INVALID_PARAM';
      return new MatrixError(400, errcode, where === '' ? issue.message : `${label}: ${issue.message}`);
    }
    default:
      return Errors.badJson(`${label}: ${issue.message}`);
  }
}

/** `filter.types[1]`: dots between names, brackets around indices. */
function fieldPath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const part of path) {
    if (typeof part === 'number') text += `[${part}]`;
    else text += text === '' ? String(part) : `.${String(part)}`;
  }
  return text;
}

const TYPE_NAMES: Readonly<Record<string, string>> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  object: 'an object',
  record: 'an object',
  array: 'a list',
  null: 'null',
};

function describeType(expected: string): string {
  return TYPE_NAMES[expected] ?? expected;
}
