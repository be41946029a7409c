// The redaction algorithm (spec room versions: fragments v1, v6, v9, v11 and the v8 text inline).
// Redaction decides what signatures and event ids cover, so a single wrong key here changes every
// event id of a room version. Expected outputs are pinned in test/core/redaction.test.ts.
//
// `redactEvent` gives the federation form: `unsigned` is dropped entirely. What clients see of a
// redacted event (`unsigned.redacted_because` and so on) is the API layer's business.

import { InvalidEventError } from './events.js';
import type { Pdu } from './events.js';
import type { JsonObject, JsonValue } from './json.js';
import { isJsonObject } from './json.js';
import type { RedactionRules, RoomVersion } from './room-versions.js';

const TOP_LEVEL_V1: ReadonlySet<string> = new Set([
  'event_id',
  'type',
  'room_id',
  'sender',
  'state_key',
  'content',
  'hashes',
  'signatures',
  'depth',
  'prev_events',
  'prev_state',
  'auth_events',
  'origin',
  'origin_server_ts',
  'membership',
]);

/** v11 (MSC2176) stops keeping `origin`, `membership` and `prev_state`. */
const TOP_LEVEL_V11: ReadonlySet<string> = new Set(
  [...TOP_LEVEL_V1].filter((k) => k !== 'origin' && k !== 'membership' && k !== 'prev_state'),
);

type ContentRule = readonly string[] | 'all';
type ContentRules = Readonly<Record<string, ContentRule>>;

const POWER_LEVELS_V1 = ['ban', 'events', 'events_default', 'kick', 'redact', 'state_default', 'users', 'users_default'] as const;

const CONTENT_V6: ContentRules = {
  'm.room.member': ['membership'],
  'm.room.create': ['creator'],
  'm.room.join_rules': ['join_rule'],
  'm.room.power_levels': POWER_LEVELS_V1,
  'm.room.history_visibility': ['history_visibility'],
};
const CONTENT_V1: ContentRules = { ...CONTENT_V6, 'm.room.aliases': ['aliases'] };
const CONTENT_V8: ContentRules = { ...CONTENT_V6, 'm.room.join_rules': ['join_rule', 'allow'] };
const CONTENT_V9: ContentRules = {
  ...CONTENT_V8,
  'm.room.member': ['membership', 'join_authorised_via_users_server'],
};
const CONTENT_V11: ContentRules = {
  ...CONTENT_V9,
  // `third_party_invite.signed` is kept too: see redactContent.
  'm.room.create': 'all',
  'm.room.power_levels': [...POWER_LEVELS_V1, 'invite'],
  'm.room.redaction': ['redacts'],
};

const RULES: Readonly<Record<RedactionRules, { topLevel: ReadonlySet<string>; content: ContentRules }>> = {
  v1: { topLevel: TOP_LEVEL_V1, content: CONTENT_V1 },
  v6: { topLevel: TOP_LEVEL_V1, content: CONTENT_V6 },
  v8: { topLevel: TOP_LEVEL_V1, content: CONTENT_V8 },
  v9: { topLevel: TOP_LEVEL_V1, content: CONTENT_V9 },
  v11: { topLevel: TOP_LEVEL_V11, content: CONTENT_V11 },
};

/**
 * The redacted copy of `pdu` under `roomVersion`'s rules. Nested values are shared with `pdu`, not
 * copied. Throws `InvalidEventError` if `type` is not a string or `content` is missing; a
 * `content` that is not an object redacts to `{}`.
 */
export function redactEvent(pdu: JsonObject, roomVersion: RoomVersion): Pdu {
  const type = pdu.type;
  if (typeof type !== 'string') throw new InvalidEventError('event has no string "type"');
  if (!('content' in pdu)) throw new InvalidEventError('event has no "content"');
  const rules = RULES[roomVersion.redaction];
  const redacted: Pdu = {};
  for (const key of Object.keys(pdu)) {
    if (rules.topLevel.has(key)) redacted[key] = pdu[key]!;
  }
  // v12 (MSC4291): a create event has no room_id; never let one into the signed form.
  if (roomVersion.roomIdFromCreateEvent && type === 'm.room.create') delete redacted.room_id;
  redacted.content = redactContent(type, pdu.content, rules.content, roomVersion.redaction);
  return redacted;
}

function redactContent(type: string, content: JsonValue | undefined, rules: ContentRules, version: RedactionRules): JsonObject {
  if (!isJsonObject(content)) return {};
  const rule = rules[type];
  if (rule === undefined) return {};
  if (rule === 'all') return { ...content };
  const kept: JsonObject = {};
  for (const key of rule) {
    if (key in content) kept[key] = content[key]!;
  }
  if (version === 'v11' && type === 'm.room.member') {
    // v11 keeps `third_party_invite.signed` (and nothing else of `third_party_invite`). When
    // `third_party_invite` is an object without `signed`, Synapse keeps an empty object; we do
    // the same because the redacted form feeds event ids and signatures.
    const invite = content.third_party_invite;
    if (isJsonObject(invite)) {
      kept.third_party_invite = 'signed' in invite ? { signed: invite.signed! } : {};
    }
  }
  return kept;
}
