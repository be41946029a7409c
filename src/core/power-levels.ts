// Power levels as the auth rules, state resolution, redaction handling and push rules see them.
//
// The content of `m.room.power_levels` is parsed once into a `PowerLevels`, which applies the
// defaults of `S:data/event-schemas/schema/m.room.power_levels.yaml` and the room version's rules
// for how a level may be written:
//   - v1–5: integers, strings holding an integer (`"50"`, `" +050 "`), or floats truncated
//     toward zero (`50.57` → 50) — fragments `v1-stringy-power-levels` and `v1-floaty-power-levels`;
//   - v6–9: integers or such strings (strict canonical JSON already keeps floats out);
//   - v10+: integers only.
// A value that is not a level under those rules counts as absent, so its default applies. The auth
// rules reject new power-levels events holding such values; this leniency only matters for events
// already in a room's state.
//
// Creators: with no power-levels event the creator has 100 (v1–11). In v12 (`privilegedCreators`)
// the creators — the create event's sender plus `content.additional_creators` — have infinite
// power, whatever the power-levels event says; `Infinity` compares correctly with every level.

import { stateKey, type RoomEvent, type StateMap } from './events.js';
import { isJsonObject, type JsonObject, type JsonValue } from './json.js';
import type { RoomVersion } from './room-versions.js';

export const DEFAULT_USERS_LEVEL = 0;
export const DEFAULT_EVENTS_LEVEL = 0;
/** 50 even with no power-levels event at all (the schema and Synapse agree; old texts said 0). */
export const DEFAULT_STATE_LEVEL = 50;
export const DEFAULT_BAN_LEVEL = 50;
export const DEFAULT_KICK_LEVEL = 50;
export const DEFAULT_REDACT_LEVEL = 50;
export const DEFAULT_INVITE_LEVEL = 0;
/** `notifications.room`; other notification keys default to the same. */
export const DEFAULT_NOTIFICATION_LEVEL = 50;
/** What the creator has while the room has no power-levels event (v1–11). */
export const CREATOR_LEVEL_WITHOUT_POWER_LEVELS = 100;

/** The seven top-level integer properties of a power-levels content. */
export const POWER_LEVEL_PROPERTIES = ['users_default', 'events_default', 'state_default', 'ban', 'redact', 'kick', 'invite'] as const;
export type PowerLevelProperty = (typeof POWER_LEVEL_PROPERTIES)[number];

const PROPERTY_DEFAULTS: Readonly<Record<PowerLevelProperty, number>> = {
  users_default: DEFAULT_USERS_LEVEL,
  events_default: DEFAULT_EVENTS_LEVEL,
  state_default: DEFAULT_STATE_LEVEL,
  ban: DEFAULT_BAN_LEVEL,
  redact: DEFAULT_REDACT_LEVEL,
  kick: DEFAULT_KICK_LEVEL,
  invite: DEFAULT_INVITE_LEVEL,
};

/** A power level as the room version reads it, or `undefined` if the value is not a level. */
export function parsePowerLevelValue(value: JsonValue | undefined, version: RoomVersion): number | undefined {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return undefined;
    if (Number.isInteger(value)) return value === 0 ? 0 : value; // fold -0 into 0
    // Floats only occur where canonical JSON is not enforced (v1–5), and are truncated there.
    if (version.strictCanonicalJson || version.integerPowerLevels) return undefined;
    const truncated = Math.trunc(value);
    return truncated === 0 ? 0 : truncated;
  }
  if (typeof value === 'string' && !version.integerPowerLevels) {
    // One optional sign, decimal digits (leading zeroes allowed), whitespace either side.
    const match = /^\s*([+-]?[0-9]+)\s*$/.exec(value);
    if (!match) return undefined;
    const parsed = Number(match[1]);
    if (!Number.isFinite(parsed)) return undefined;
    return parsed === 0 ? 0 : parsed;
  }
  return undefined;
}

/** The user ids the spec calls the room's creators (one before v12). */
export function creatorsOf(createEvent: RoomEvent, version: RoomVersion): Set<string> {
  const creators = new Set<string>();
  if (version.creatorIsCreateSender) {
    creators.add(createEvent.sender);
  } else {
    const creator = createEvent.content['creator'];
    if (typeof creator === 'string') creators.add(creator);
  }
  if (version.privilegedCreators) {
    const additional = createEvent.content['additional_creators'];
    if (Array.isArray(additional)) {
      for (const user of additional) if (typeof user === 'string') creators.add(user);
    }
  }
  return creators;
}

/** A parsed power-levels content with every default filled in. Parse once, ask many times. */
export class PowerLevels {
  readonly usersDefault: number;
  readonly eventsDefault: number;
  readonly stateDefault: number;
  readonly ban: number;
  readonly kick: number;
  readonly redact: number;
  readonly invite: number;
  readonly users: ReadonlyMap<string, number>;
  readonly events: ReadonlyMap<string, number>;
  readonly notifications: ReadonlyMap<string, number>;
  /** Users whose power is infinite (v12 creators); empty in earlier versions. */
  readonly privilegedCreators: ReadonlySet<string>;
  /** False when no power-levels event exists and only defaults apply. */
  readonly fromEvent: boolean;

  constructor(
    content: JsonObject | undefined,
    createEvent: RoomEvent | undefined,
    readonly version: RoomVersion,
  ) {
    const c = content ?? {};
    const level = (name: PowerLevelProperty): number => parsePowerLevelValue(c[name], version) ?? PROPERTY_DEFAULTS[name];
    this.usersDefault = level('users_default');
    this.eventsDefault = level('events_default');
    this.stateDefault = level('state_default');
    this.ban = level('ban');
    this.kick = level('kick');
    this.redact = level('redact');
    this.invite = level('invite');
    this.users = parseLevelMap(c['users'], version);
    this.events = parseLevelMap(c['events'], version);
    this.notifications = parseLevelMap(c['notifications'], version);
    this.fromEvent = content !== undefined;

    const creators = createEvent ? creatorsOf(createEvent, version) : new Set<string>();
    this.privilegedCreators = version.privilegedCreators ? creators : new Set();
    if (!this.fromEvent && !version.privilegedCreators) {
      const users = new Map(this.users);
      for (const creator of creators) users.set(creator, CREATOR_LEVEL_WITHOUT_POWER_LEVELS);
      this.users = users;
    }
  }

  userLevel(userId: string): number {
    if (this.privilegedCreators.has(userId)) return Infinity;
    return this.users.get(userId) ?? this.usersDefault;
  }

  /** The spec's *required power level* for sending an event of `type`. */
  eventLevel(type: string, isState: boolean): number {
    return this.events.get(type) ?? (isState ? this.stateDefault : this.eventsDefault);
  }

  /** The level needed to trigger a notification of kind `key` (e.g. `room` for @room). */
  notificationLevel(key: string): number {
    return this.notifications.get(key) ?? DEFAULT_NOTIFICATION_LEVEL;
  }

  /** One of the seven top-level properties, defaults applied. */
  property(name: PowerLevelProperty): number {
    switch (name) {
      case 'users_default':
        return this.usersDefault;
      case 'events_default':
        return this.eventsDefault;
      case 'state_default':
        return this.stateDefault;
      case 'ban':
        return this.ban;
      case 'kick':
        return this.kick;
      case 'redact':
        return this.redact;
      case 'invite':
        return this.invite;
    }
  }
}

function parseLevelMap(value: JsonValue | undefined, version: RoomVersion): Map<string, number> {
  const map = new Map<string, number>();
  if (!isJsonObject(value)) return map;
  for (const [key, raw] of Object.entries(value)) {
    const level = parsePowerLevelValue(raw, version);
    if (level !== undefined) map.set(key, level);
  }
  return map;
}

const CREATE_KEY = stateKey('m.room.create', '');
const POWER_LEVELS_KEY = stateKey('m.room.power_levels', '');

/** Parses a power-levels content (or none) against the room's create event. */
export function parsePowerLevels(content: JsonObject | undefined, createEvent: RoomEvent | undefined, version: RoomVersion): PowerLevels {
  return new PowerLevels(content, createEvent, version);
}

/**
 * Parsed power levels, remembered per power-levels event (or per create event when the room has
 * none): auth checks and state resolution ask for them once per event they check, and parsing a
 * `users` map of a big room each time dominated state resolution.
 */
const parsedLevels = new WeakMap<RoomEvent, { createEvent: RoomEvent | undefined; version: RoomVersion; levels: PowerLevels }>();

/** The power levels in force in `state` (which should hold the create event). */
export function powerLevelsFromState(state: StateMap, version: RoomVersion): PowerLevels {
  const powerLevelsEvent = state.get(POWER_LEVELS_KEY);
  const createEvent = state.get(CREATE_KEY);
  const anchor = powerLevelsEvent ?? createEvent;
  if (anchor === undefined) return new PowerLevels(undefined, undefined, version);
  const cached = parsedLevels.get(anchor);
  if (cached && cached.createEvent === createEvent && cached.version === version) return cached.levels;
  const levels = new PowerLevels(powerLevelsEvent?.content, createEvent, version);
  parsedLevels.set(anchor, { createEvent, version, levels });
  return levels;
}

export function userPowerLevel(userId: string, state: StateMap, version: RoomVersion): number {
  return powerLevelsFromState(state, version).userLevel(userId);
}

export function requiredPowerLevelForEvent(type: string, isState: boolean, state: StateMap, version: RoomVersion): number {
  return powerLevelsFromState(state, version).eventLevel(type, isState);
}

export function banLevel(state: StateMap, version: RoomVersion): number {
  return powerLevelsFromState(state, version).ban;
}

export function kickLevel(state: StateMap, version: RoomVersion): number {
  return powerLevelsFromState(state, version).kick;
}

export function redactLevel(state: StateMap, version: RoomVersion): number {
  return powerLevelsFromState(state, version).redact;
}

export function inviteLevel(state: StateMap, version: RoomVersion): number {
  return powerLevelsFromState(state, version).invite;
}

export function notificationLevel(key: string, state: StateMap, version: RoomVersion): number {
  return powerLevelsFromState(state, version).notificationLevel(key);
}
