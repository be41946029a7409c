// Room versions 1–12 as data. Every behaviour that differs between versions reads a flag from
// this table, so no code elsewhere compares version numbers.

export type EventIdFormat =
  /** `$<opaque>:<server>`, chosen by the origin server (v1, v2). */
  | 'v1'
  /** `$` + standard unpadded base64 of the reference hash (v3). */
  | 'v3'
  /** `$` + URL-safe unpadded base64 of the reference hash (v4+). */
  | 'v4';

export type StateResolutionAlgorithm = 'v1' | 'v2' | 'v2.1';

/** Which redaction algorithm keeps which keys: the spec's fragments v1, v6, v8 (inline), v9, v11. */
export type RedactionRules = 'v1' | 'v6' | 'v8' | 'v9' | 'v11';

export interface RoomVersion {
  readonly id: string;
  readonly stable: boolean;
  readonly eventIdFormat: EventIdFormat;
  readonly stateResolution: StateResolutionAlgorithm;
  readonly redaction: RedactionRules;
  /** v5+: a signing key's `valid_until_ts` must cover the event's `origin_server_ts`. */
  readonly enforceKeyValidity: boolean;
  /**
   * v1–2: auth rule 11 checks `m.room.redaction` events (redact level, or the same `event_id`
   * domain). v3+ drop that rule; the redaction is checked when it is applied instead
   * (`v3-handling-redactions`).
   */
  readonly redactionsInAuthRules: boolean;
  /** v1–5: `m.room.aliases` has its own auth rule (and redaction keeps `aliases`). */
  readonly specialCaseAliasesAuth: boolean;
  /** v6+: events must be canonical JSON: integers in ±(2^53−1), no floats, no NaN/Infinity. */
  readonly strictCanonicalJson: boolean;
  /** v6+: `notifications` is checked by the power-levels auth rule. */
  readonly limitNotificationsPowerLevels: boolean;
  /** v7+: the `knock` join rule and membership. */
  readonly knocking: boolean;
  /** v8+: the `restricted` join rule with `join_authorised_via_users_server`. */
  readonly restrictedJoins: boolean;
  /** v10+: the `knock_restricted` join rule. */
  readonly knockRestrictedJoins: boolean;
  /** v10+: power-level values must be JSON integers (no strings, no floats). */
  readonly integerPowerLevels: boolean;
  /** v11+: the creator is the create event's `sender`; `content.creator` is not used. */
  readonly creatorIsCreateSender: boolean;
  /** v11+: `redacts` lives in `content` (top-level is still served to clients). */
  readonly redactsInContent: boolean;
  /** v11+: strict byte limits on `type`, `state_key`, `sender`, `room_id`, `event_id`. */
  readonly strictEventByteLimits: boolean;
  /** v12 (MSC4289): creators (sender + `additional_creators`) have infinite power. */
  readonly privilegedCreators: boolean;
  /**
   * v12 (MSC4291): the room id is `!` + the create event's reference hash; the create event has
   * no `room_id` and never appears in `auth_events` (it is an implicit auth event).
   */
  readonly roomIdFromCreateEvent: boolean;
}

const V1: RoomVersion = {
  id: '1',
  stable: true,
  eventIdFormat: 'v1',
  stateResolution: 'v1',
  redaction: 'v1',
  enforceKeyValidity: false,
  redactionsInAuthRules: true,
  specialCaseAliasesAuth: true,
  strictCanonicalJson: false,
  limitNotificationsPowerLevels: false,
  knocking: false,
  restrictedJoins: false,
  knockRestrictedJoins: false,
  integerPowerLevels: false,
  creatorIsCreateSender: false,
  redactsInContent: false,
  strictEventByteLimits: false,
  privilegedCreators: false,
  roomIdFromCreateEvent: false,
};
const V2: RoomVersion = { ...V1, id: '2', stateResolution: 'v2' };
const V3: RoomVersion = { ...V2, id: '3', eventIdFormat: 'v3', redactionsInAuthRules: false };
const V4: RoomVersion = { ...V3, id: '4', eventIdFormat: 'v4' };
const V5: RoomVersion = { ...V4, id: '5', enforceKeyValidity: true };
const V6: RoomVersion = {
  ...V5,
  id: '6',
  redaction: 'v6',
  specialCaseAliasesAuth: false,
  strictCanonicalJson: true,
  limitNotificationsPowerLevels: true,
};
const V7: RoomVersion = { ...V6, id: '7', knocking: true };
const V8: RoomVersion = { ...V7, id: '8', redaction: 'v8', restrictedJoins: true };
const V9: RoomVersion = { ...V8, id: '9', redaction: 'v9' };
const V10: RoomVersion = { ...V9, id: '10', knockRestrictedJoins: true, integerPowerLevels: true };
const V11: RoomVersion = {
  ...V10,
  id: '11',
  redaction: 'v11',
  creatorIsCreateSender: true,
  redactsInContent: true,
  strictEventByteLimits: true,
};
const V12: RoomVersion = {
  ...V11,
  id: '12',
  stateResolution: 'v2.1',
  privilegedCreators: true,
  roomIdFromCreateEvent: true,
};

export const ROOM_VERSIONS: ReadonlyMap<string, RoomVersion> = new Map(
  [V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11, V12].map((v) => [v.id, v]),
);

/** The spec recommends v12 for new rooms as of v1.16. */
export const DEFAULT_ROOM_VERSION: RoomVersion = V12;

export function getRoomVersion(id: string): RoomVersion | undefined {
  return ROOM_VERSIONS.get(id);
}
