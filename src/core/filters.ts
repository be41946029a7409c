// Client-server filters (S:content/client-server-api/_index.md §Filtering; the schemas
// S:data/api/client-server/definitions/{sync_filter,room_event_filter,event_filter}.yaml).
//
// `parseFilter` validates a sync filter (the body of `POST /user/{userId}/filter`, or the inline
// JSON of `/sync?filter={...}`) and returns a frozen, normalised `Filter` with every default
// filled in. `parseRoomEventFilter` does the same for the `filter` parameter of `/messages` and
// `/context`. The matching helpers below run once per event, so they allocate nothing.
//
// Validation follows Synapse's schema (`Syn:synapse/api/filtering.py`): known keys must have the
// right JSON type, `rooms`/`senders` lists must hold valid room/user ids, and unknown keys are
// ignored for forward compatibility. Failures are `InvalidFilterError`s, which the API answers
// 400 `M_BAD_JSON` (Synapse answers `M_UNKNOWN`, which tells a client less; the spec's
// `M_BAD_JSON` is "valid JSON with invalid values").
//
// Limits — decisions where the spec is vague:
//   - `limit` must be a JSON integer ≥ 0. The spec says "greater than 0", but Synapse accepts 0
//     (its own filter tests use `ephemeral: {limit: 0}`), and many bots and bridges send
//     `{"room":{"timeline":{"limit":0}}}` to fetch only a `next_batch`; rejecting it would break
//     them. Negative and fractional limits are rejected (Synapse would take them as "number").
//   - Default 10 for every filter, as Synapse: the spec leaves the default to the server
//     (EventFilter `limit`: "Servers should apply a default value").
//   - Only the timeline limit is capped: at 100 by default, like Synapse's
//     `filter_timeline_limit`; pass `maxTimelineLimit` (negative or `Infinity` for none) to change
//     it. Synapse caps at upload time too, so a stored filter reads back capped. Other limits are
//     not capped here; endpoints that honour them apply their own ceilings.
//
// Type patterns: the spec lets `*` match any sequence of characters anywhere in the pattern.
// Synapse only honours a trailing `*`; we implement the spec, which is a superset.

import { isValidRoomId, isValidUserId } from './identifiers.js';
import { isJsonObject, JsonInputError, parseJsonInput, type JsonObject, type JsonValue } from './json.js';

/** The default `limit` of every filter (Synapse's; the spec leaves it to the server). */
export const DEFAULT_FILTER_LIMIT = 10;
/** The default cap on `room.timeline.limit` (Synapse's `filter_timeline_limit` default). */
export const DEFAULT_MAX_TIMELINE_LIMIT = 100;

export type EventFormat = 'client' | 'federation';

/** `EventFilter`: presence and global account data. */
export interface EventFilter {
  /** ≥ 0; `DEFAULT_FILTER_LIMIT` when absent. */
  readonly limit: number;
  /** `undefined`: every type. Entries may contain `*` wildcards. */
  readonly types: readonly string[] | undefined;
  readonly notTypes: readonly string[];
  /** `undefined`: every sender. */
  readonly senders: readonly string[] | undefined;
  readonly notSenders: readonly string[];
}

/** `RoomEventFilter`: timeline, state, ephemeral and room account data; `/messages`, `/context`. */
export interface RoomEventFilter extends EventFilter {
  /** `undefined`: every room. */
  readonly rooms: readonly string[] | undefined;
  readonly notRooms: readonly string[];
  /** `true`: only events whose `content.url` is a string; `false`: only others; `undefined`: all. */
  readonly containsUrl: boolean | undefined;
  readonly lazyLoadMembers: boolean;
  readonly includeRedundantMembers: boolean;
  /** `unread_thread_notifications`, or its MSC3773 unstable name. */
  readonly unreadThreadNotifications: boolean;
}

export interface RoomFilter {
  /** Applied before the per-section filters. `undefined`: every room. */
  readonly rooms: readonly string[] | undefined;
  readonly notRooms: readonly string[];
  readonly includeLeave: boolean;
  readonly timeline: RoomEventFilter;
  readonly state: RoomEventFilter;
  readonly ephemeral: RoomEventFilter;
  readonly accountData: RoomEventFilter;
}

export interface Filter {
  /** `undefined` (or empty, as Synapse treats it): every field. */
  readonly eventFields: readonly string[] | undefined;
  readonly eventFormat: EventFormat;
  readonly presence: EventFilter;
  readonly accountData: EventFilter;
  readonly room: RoomFilter;
}

export interface ParseFilterOptions {
  /** Cap on `room.timeline.limit`; default 100. Negative or `Infinity`: no cap. */
  readonly maxTimelineLimit?: number;
}

// ---- parsing ----

/**
 * A filter that is not one: 400 with `errcode` — `M_BAD_JSON`, or `M_NOT_JSON` for an inline
 * filter that is not JSON at all. The API answers it as a Matrix error (`Errors.fromCore`).
 */
export class InvalidFilterError extends Error {
  readonly status = 400;

  constructor(
    message: string,
    readonly errcode: 'M_BAD_JSON' | 'M_NOT_JSON' = 'M_BAD_JSON',
  ) {
    super(message);
    this.name = 'InvalidFilterError';
  }
}

function bad(path: string, what: string): InvalidFilterError {
  return new InvalidFilterError(`Invalid filter: ${path} ${what}`);
}

function objectAt(value: JsonValue | undefined, path: string): JsonObject {
  if (value === undefined) return EMPTY;
  if (!isJsonObject(value)) throw bad(path, 'must be an object');
  return value;
}

function booleanAt(value: JsonValue | undefined, path: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') throw bad(path, 'must be a boolean');
  return value;
}

function limitAt(value: JsonValue | undefined, path: string): number {
  if (value === undefined) return DEFAULT_FILTER_LIMIT;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw bad(path, 'must be a non-negative integer');
  }
  return value;
}

function stringsAt(
  value: JsonValue | undefined,
  path: string,
  check?: { readonly valid: (s: string) => boolean; readonly what: string },
): readonly string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) throw bad(path, 'must be an array');
  for (const item of value) {
    if (typeof item !== 'string') throw bad(path, 'must hold only strings');
    if (check && !check.valid(item)) throw bad(path, `holds an invalid ${check.what}: ${JSON.stringify(item)}`);
  }
  return Object.freeze([...(value as string[])]);
}

const USER_IDS = { valid: (s: string) => isValidUserId(s), what: 'user id' } as const;
const ROOM_IDS = { valid: (s: string) => isValidRoomId(s), what: 'room id' } as const;
const EMPTY: JsonObject = Object.freeze({});
const NONE: readonly string[] = Object.freeze([]);

function parseEventFilterAt(value: JsonValue | undefined, path: string): EventFilter {
  const json = objectAt(value, path);
  return Object.freeze({
    limit: limitAt(json.limit, `${path}.limit`),
    types: stringsAt(json.types, `${path}.types`),
    notTypes: stringsAt(json.not_types, `${path}.not_types`) ?? NONE,
    senders: stringsAt(json.senders, `${path}.senders`, USER_IDS),
    notSenders: stringsAt(json.not_senders, `${path}.not_senders`, USER_IDS) ?? NONE,
  });
}

function parseRoomEventFilterAt(value: JsonValue | undefined, path: string): RoomEventFilter {
  const json = objectAt(value, path);
  const base = parseEventFilterAt(json, path);
  const unreadStable = booleanAt(json.unread_thread_notifications, `${path}.unread_thread_notifications`);
  const unreadUnstable = booleanAt(
    json['org.matrix.msc3773.unread_thread_notifications'],
    `${path}.org.matrix.msc3773.unread_thread_notifications`,
  );
  return Object.freeze({
    ...base,
    rooms: stringsAt(json.rooms, `${path}.rooms`, ROOM_IDS),
    notRooms: stringsAt(json.not_rooms, `${path}.not_rooms`, ROOM_IDS) ?? NONE,
    containsUrl: booleanAt(json.contains_url, `${path}.contains_url`),
    lazyLoadMembers: booleanAt(json.lazy_load_members, `${path}.lazy_load_members`) ?? false,
    includeRedundantMembers: booleanAt(json.include_redundant_members, `${path}.include_redundant_members`) ?? false,
    unreadThreadNotifications: unreadStable ?? unreadUnstable ?? false,
  });
}

/**
 * Validates a sync filter and returns it normalised and frozen. Throws `InvalidFilterError`
 * (`M_BAD_JSON`) naming the offending key. Unknown keys are ignored.
 */
export function parseFilter(json: unknown, options: ParseFilterOptions = {}): Filter {
  if (!isJsonObject(json)) throw new InvalidFilterError('Invalid filter: must be a JSON object');
  const top = json;

  const eventFormat = top.event_format;
  if (eventFormat !== undefined && eventFormat !== 'client' && eventFormat !== 'federation') {
    throw bad('event_format', 'must be "client" or "federation"');
  }
  const eventFields = stringsAt(top.event_fields, 'event_fields');

  const room = objectAt(top.room, 'room');
  let timeline = parseRoomEventFilterAt(room.timeline, 'room.timeline');
  const cap = options.maxTimelineLimit ?? DEFAULT_MAX_TIMELINE_LIMIT;
  if (cap >= 0 && timeline.limit > cap) timeline = Object.freeze({ ...timeline, limit: cap });

  return Object.freeze({
    eventFields: eventFields !== undefined && eventFields.length > 0 ? eventFields : undefined,
    eventFormat: eventFormat ?? 'client',
    presence: parseEventFilterAt(top.presence, 'presence'),
    accountData: parseEventFilterAt(top.account_data, 'account_data'),
    room: Object.freeze({
      rooms: stringsAt(room.rooms, 'room.rooms', ROOM_IDS),
      notRooms: stringsAt(room.not_rooms, 'room.not_rooms', ROOM_IDS) ?? NONE,
      includeLeave: booleanAt(room.include_leave, 'room.include_leave') ?? false,
      timeline,
      state: parseRoomEventFilterAt(room.state, 'room.state'),
      ephemeral: parseRoomEventFilterAt(room.ephemeral, 'room.ephemeral'),
      accountData: parseRoomEventFilterAt(room.account_data, 'room.account_data'),
    }),
  });
}

/**
 * Validates a `RoomEventFilter` on its own: the `filter` query parameter of `/messages` and
 * `/context`. (Synapse does not validate these at all; we apply the same checks as for sync.)
 */
export function parseRoomEventFilter(json: unknown): RoomEventFilter {
  if (!isJsonObject(json)) throw new InvalidFilterError('Invalid filter: must be a JSON object');
  return parseRoomEventFilterAt(json, 'filter');
}

/** The filter every endpoint uses when the client gives none. */
export const DEFAULT_FILTER: Filter = parseFilter({});

/**
 * The `/sync` `filter` query parameter: a filter id, or inline JSON when it starts with `{`
 * (S:data/api/client-server/sync.yaml). Inline JSON that does not parse is 400 `M_NOT_JSON`
 * (as Synapse); an invalid inline filter is 400 `M_BAD_JSON`. Looking the id up is the caller's
 * job (Synapse answers an unknown id with 400 `M_INVALID_PARAM` on /sync).
 */
export function parseSyncFilterParam(
  param: string,
  options?: ParseFilterOptions,
): { readonly kind: 'inline'; readonly filter: Filter } | { readonly kind: 'id'; readonly id: string } {
  if (!param.startsWith('{')) return { kind: 'id', id: param };
  let json: unknown;
  try {
    json = parseJsonInput(param);
  } catch (err) {
    if (err instanceof JsonInputError)
      throw new InvalidFilterError(
        err.problem === 'syntax' ? 'Invalid filter JSON' : err.message,
        err.problem === 'syntax' ? 'M_NOT_JSON' : 'M_BAD_JSON',
      );
    throw err;
  }
  return { kind: 'inline', filter: parseFilter(json, options) };
}

// ---- convenience accessors (which sub-filter each setting is read from, as Synapse) ----

/** `room.timeline.limit`, already capped by `parseFilter`. */
export function timelineLimit(filter: Filter): number {
  return filter.room.timeline.limit;
}

/** Lazy loading is read from the state filter (js-sdk's `setLazyLoadMembers` sets it there). */
export function lazyLoadMembers(filter: Filter): boolean {
  return filter.room.state.lazyLoadMembers;
}

/** Only meaningful with lazy loading (room_event_filter.yaml). */
export function includeRedundantMembers(filter: Filter): boolean {
  return filter.room.state.lazyLoadMembers && filter.room.state.includeRedundantMembers;
}

/** Per-thread notification counts are read from the timeline filter. */
export function unreadThreadNotifications(filter: Filter): boolean {
  return filter.room.timeline.unreadThreadNotifications;
}

// ---- matching ----

/** What the matcher reads of an event, presence update or account-data entry. */
export interface FilterableEvent {
  readonly type: string;
  /** Absent for account data; then a `senders` list never matches. */
  readonly sender?: string | undefined;
  /** Absent when unknown; then a `rooms` list never matches. */
  readonly roomId?: string | undefined;
  readonly content?: JsonValue | undefined;
}

/** `*` matches any run of characters (possibly empty); everything else is literal. */
export function matchesTypePattern(value: string, pattern: string): boolean {
  const star = pattern.indexOf('*');
  if (star === -1) return value === pattern;
  // Prefix before the first star, suffix after the last, and the pieces in between in order.
  const last = pattern.lastIndexOf('*');
  const prefix = pattern.slice(0, star);
  const suffix = pattern.slice(last + 1);
  if (value.length < prefix.length + suffix.length) return false;
  if (!value.startsWith(prefix) || !value.endsWith(suffix)) return false;
  let at = prefix.length;
  const end = value.length - suffix.length;
  if (star !== last) {
    for (const piece of pattern.slice(star + 1, last).split('*')) {
      if (piece === '') continue;
      const found = value.indexOf(piece, at);
      if (found === -1 || found + piece.length > end) return false;
      at = found + piece.length;
    }
  }
  return true;
}

function anyTypeMatches(type: string, patterns: readonly string[]): boolean {
  for (const pattern of patterns) if (matchesTypePattern(type, pattern)) return true;
  return false;
}

function isRoomEventFilter(filter: EventFilter): filter is RoomEventFilter {
  return 'notRooms' in filter;
}

/**
 * Whether `event` passes `filter`. A `not_*` match always excludes, even if the value is also
 * listed in the positive list; an absent positive list includes everything. For a
 * `RoomEventFilter` the room lists and `contains_url` apply too.
 */
export function eventMatchesFilter(filter: EventFilter | RoomEventFilter, event: FilterableEvent): boolean {
  if (filter.notTypes.length > 0 && anyTypeMatches(event.type, filter.notTypes)) return false;
  if (filter.types !== undefined && !anyTypeMatches(event.type, filter.types)) return false;

  const sender = event.sender;
  if (sender !== undefined && filter.notSenders.includes(sender)) return false;
  if (filter.senders !== undefined && (sender === undefined || !filter.senders.includes(sender))) return false;

  if (isRoomEventFilter(filter)) {
    if (!roomAllowed(filter, event.roomId)) return false;
    if (filter.containsUrl !== undefined) {
      const content = event.content;
      const hasUrl = isJsonObject(content) && typeof content.url === 'string';
      if (hasUrl !== filter.containsUrl) return false;
    }
  }
  return true;
}

/**
 * Whether a room passes a filter's `rooms`/`not_rooms` (a `RoomFilter` or a `RoomEventFilter`).
 * `not_rooms` wins. An unknown room (`undefined`) passes only when there is no `rooms` list.
 */
export function roomAllowed(
  filter: { readonly rooms: readonly string[] | undefined; readonly notRooms: readonly string[] },
  roomId: string | undefined,
): boolean {
  if (roomId !== undefined && filter.notRooms.includes(roomId)) return false;
  if (filter.rooms !== undefined && (roomId === undefined || !filter.rooms.includes(roomId))) return false;
  return true;
}

/**
 * True if the filter can match nothing (`types: []`, `not_types` containing `*`, `senders: []`,
 * `not_senders` containing `*`, or for room event filters `rooms: []` / `not_rooms` with `*`), so
 * a caller can skip loading the data at all.
 */
export function filterBlocksAll(filter: EventFilter | RoomEventFilter): boolean {
  if (filter.types?.length === 0 || filter.notTypes.includes('*')) return true;
  if (filter.senders?.length === 0 || filter.notSenders.includes('*')) return true;
  if (isRoomEventFilter(filter) && (filter.rooms?.length === 0 || filter.notRooms.includes('*'))) return true;
  return false;
}

// ---- event_fields ----

/**
 * Splits a dot-separated property path (S:content/appendices.md §Dot-separated property paths):
 * `\.` is a literal dot and `\\` a literal backslash; any other `\x` stays as written.
 */
export function splitPropertyPath(path: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < path.length; i++) {
    const c = path[i]!;
    if (c === '\\') {
      const next = path[i + 1];
      if (next === '.' || next === '\\') {
        current += next;
        i++;
      } else {
        current += c;
      }
    } else if (c === '.') {
      parts.push(current);
      current = '';
    } else {
      current += c;
    }
  }
  parts.push(current);
  return parts;
}

const compiledFields = new WeakMap<readonly string[], readonly (readonly string[])[]>();

function compileFields(fields: readonly string[]): readonly (readonly string[])[] {
  let compiled = compiledFields.get(fields);
  if (compiled === undefined) {
    compiled = fields.map(splitPropertyPath);
    compiledFields.set(fields, compiled);
  }
  return compiled;
}

/**
 * The `event_fields` projection: a new object holding only the listed paths of `event` (paths
 * that do not exist are skipped; intermediate objects are created as needed). Values are shared
 * with `event`, not copied. An empty or absent list returns `event` itself. Apply it last, after
 * `unsigned` is complete (as Synapse does).
 */
export function applyEventFields(event: JsonObject, fields: readonly string[] | undefined): JsonObject {
  if (fields === undefined || fields.length === 0) return event;
  const out: JsonObject = {};
  // Objects this projection made; anything else in `out` is shared with `event` and must be
  // copied before a later path writes into it (e.g. `content` followed by `content.body`).
  const own = new Set<JsonObject>([out]);
  for (const path of compileFields(fields)) {
    let source: JsonObject = event;
    let found = true;
    for (let i = 0; i < path.length - 1 && found; i++) {
      const next = source[path[i]!];
      if (isJsonObject(next)) source = next;
      else found = false;
    }
    const leaf = path[path.length - 1]!;
    if (!found || !Object.hasOwn(source, leaf)) continue;
    let target = out;
    for (let i = 0; i < path.length - 1; i++) {
      const key = path[i]!;
      const existing = target[key];
      let child: JsonObject;
      if (isJsonObject(existing) && own.has(existing)) child = existing;
      else {
        child = isJsonObject(existing) ? { ...existing } : {};
        own.add(child);
        target[key] = child;
      }
      target = child;
    }
    target[leaf] = source[leaf]!;
  }
  return out;
}
