// The server-default push rules (`S:content/client-server-api/modules/push.md` §Predefined Rules),
// as the client sees them in `GET /pushrules/`: every rule has `default: true`, and the rules that
// refer to the user carry the user's id or localpart.
//
// Besides the rules of the current spec, three legacy rules are kept that spec v1.17 dropped but
// Synapse and matrix-js-sdk still ship: `.m.rule.contains_display_name`, `.m.rule.roomnotif` and
// the content rule `.m.rule.contains_user_name`. Their definitions are those of spec v1.16; the
// evaluator skips them for events whose content has `m.mentions` (as spec v1.7–1.16 required).
//
// Actions follow the spec's definitions. (Synapse's copies differ cosmetically: they add
// `{"set_tweak": "highlight", "value": false}` to some rules and order tweaks differently; neither
// changes what a client or pusher does.)

import type { PushAction, PushRule, PushRuleKind, PushRuleSet } from './rules.js';

export const MASTER_RULE_ID = '.m.rule.master';

/** Rule ids of the legacy body-matching mention rules, skipped when the event has `m.mentions`. */
export const LEGACY_MENTION_RULE_IDS: ReadonlySet<string> = new Set([
  '.m.rule.contains_display_name',
  '.m.rule.roomnotif',
  '.m.rule.contains_user_name',
]);

const NOTIFY = 'notify';
// Fresh objects per rule set, so a caller editing one rule's actions cannot affect another's.
const soundDefault = (): PushAction => ({ set_tweak: 'sound', value: 'default' });
const soundRing = (): PushAction => ({ set_tweak: 'sound', value: 'ring' });
const highlight = (): PushAction => ({ set_tweak: 'highlight' });

function rule(ruleId: string, enabled: boolean, body: Omit<PushRule, 'rule_id' | 'default' | 'enabled'>): PushRule {
  return { rule_id: ruleId, default: true, enabled, ...body };
}

/** The localpart of a user id (`@alice:example.org` → `alice`). */
export function localpartOf(userId: string): string {
  const colon = userId.indexOf(':');
  const start = userId.startsWith('@') ? 1 : 0;
  return colon === -1 ? userId.slice(start) : userId.slice(start, colon);
}

// The three default rules that mention the user.

const inviteForMe = (userId: string): PushRule =>
  rule('.m.rule.invite_for_me', true, {
    conditions: [
      { kind: 'event_match', key: 'type', pattern: 'm.room.member' },
      { kind: 'event_match', key: 'content.membership', pattern: 'invite' },
      { kind: 'event_match', key: 'state_key', pattern: userId },
    ],
    actions: [NOTIFY, soundDefault()],
  });

const isUserMention = (userId: string): PushRule =>
  rule('.m.rule.is_user_mention', true, {
    conditions: [{ kind: 'event_property_contains', key: 'content.m\\.mentions.user_ids', value: userId }],
    actions: [NOTIFY, soundDefault(), highlight()],
  });

const containsUserName = (userId: string): PushRule =>
  rule('.m.rule.contains_user_name', true, {
    pattern: localpartOf(userId),
    actions: [NOTIFY, soundDefault(), highlight()],
  });

const USER_SPECIFIC_RULES: ReadonlyMap<string, (userId: string) => PushRule> = new Map([
  ['.m.rule.invite_for_me', inviteForMe],
  ['.m.rule.is_user_mention', isUserMention],
  ['.m.rule.contains_user_name', containsUserName],
]);

/**
 * The server-default rules for `userId`, each kind in priority order. Returns fresh objects, which
 * callers may modify.
 */
export function defaultRules(userId: string): PushRuleSet {
  const override: PushRule[] = [
    rule(MASTER_RULE_ID, false, { conditions: [], actions: [] }),
    rule('.m.rule.suppress_notices', true, {
      conditions: [{ kind: 'event_match', key: 'content.msgtype', pattern: 'm.notice' }],
      actions: [],
    }),
    inviteForMe(userId),
    rule('.m.rule.member_event', true, {
      conditions: [{ kind: 'event_match', key: 'type', pattern: 'm.room.member' }],
      actions: [],
    }),
    isUserMention(userId),
    rule('.m.rule.contains_display_name', true, {
      conditions: [{ kind: 'contains_display_name' }],
      actions: [NOTIFY, soundDefault(), highlight()],
    }),
    rule('.m.rule.is_room_mention', true, {
      conditions: [
        { kind: 'event_property_is', key: 'content.m\\.mentions.room', value: true },
        { kind: 'sender_notification_permission', key: 'room' },
      ],
      actions: [NOTIFY, highlight()],
    }),
    rule('.m.rule.roomnotif', true, {
      conditions: [
        { kind: 'event_match', key: 'content.body', pattern: '@room' },
        { kind: 'sender_notification_permission', key: 'room' },
      ],
      actions: [NOTIFY, highlight()],
    }),
    rule('.m.rule.tombstone', true, {
      conditions: [
        { kind: 'event_match', key: 'type', pattern: 'm.room.tombstone' },
        { kind: 'event_match', key: 'state_key', pattern: '' },
      ],
      actions: [NOTIFY, highlight()],
    }),
    rule('.m.rule.reaction', true, {
      conditions: [{ kind: 'event_match', key: 'type', pattern: 'm.reaction' }],
      actions: [],
    }),
    rule('.m.rule.room.server_acl', true, {
      conditions: [
        { kind: 'event_match', key: 'type', pattern: 'm.room.server_acl' },
        { kind: 'event_match', key: 'state_key', pattern: '' },
      ],
      actions: [],
    }),
    rule('.m.rule.suppress_edits', true, {
      conditions: [{ kind: 'event_property_is', key: 'content.m\\.relates_to.rel_type', value: 'm.replace' }],
      actions: [],
    }),
  ];

  const content: PushRule[] = [containsUserName(userId)];

  const underride: PushRule[] = [
    rule('.m.rule.call', true, {
      conditions: [{ kind: 'event_match', key: 'type', pattern: 'm.call.invite' }],
      actions: [NOTIFY, soundRing()],
    }),
    rule('.m.rule.encrypted_room_one_to_one', true, {
      conditions: [
        { kind: 'room_member_count', is: '2' },
        { kind: 'event_match', key: 'type', pattern: 'm.room.encrypted' },
      ],
      actions: [NOTIFY, soundDefault()],
    }),
    rule('.m.rule.room_one_to_one', true, {
      conditions: [
        { kind: 'room_member_count', is: '2' },
        { kind: 'event_match', key: 'type', pattern: 'm.room.message' },
      ],
      actions: [NOTIFY, soundDefault()],
    }),
    rule('.m.rule.message', true, {
      conditions: [{ kind: 'event_match', key: 'type', pattern: 'm.room.message' }],
      actions: [NOTIFY],
    }),
    rule('.m.rule.encrypted', true, {
      conditions: [{ kind: 'event_match', key: 'type', pattern: 'm.room.encrypted' }],
      actions: [NOTIFY],
    }),
  ];

  return { global: { override, content, room: [], sender: [], underride } };
}

/** The kind of the server-default rule `ruleId`, or `undefined` if there is no such default. */
export function defaultRuleKind(ruleId: string): PushRuleKind | undefined {
  return DEFAULT_RULE_KINDS.get(ruleId);
}

const DEFAULT_RULE_KINDS: ReadonlyMap<string, PushRuleKind> = (() => {
  const map = new Map<string, PushRuleKind>();
  const set = defaultRules('@user:example.org');
  for (const [kind, rules] of Object.entries(set.global) as [PushRuleKind, PushRule[]][]) {
    for (const r of rules) map.set(r.rule_id, kind);
  }
  return map;
})();

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/** The default rules with placeholders for the user-specific ones, built once and deep-frozen. */
const SHARED_TEMPLATE: PushRuleSet = deepFreeze(defaultRules('@template:invalid'));

/**
 * Like `defaultRules`, but the rules that do not depend on the user are shared, deep-frozen
 * objects, the same for every user; only the user's three own rules are fresh. This lets the
 * evaluator compile the shared rules once for all users. Do not modify the shared rules.
 */
export function sharedDefaultRules(userId: string): PushRuleSet {
  const pick = (kind: PushRuleKind): PushRule[] =>
    SHARED_TEMPLATE.global[kind].map((shared) => USER_SPECIFIC_RULES.get(shared.rule_id)?.(userId) ?? shared);
  return {
    global: { override: pick('override'), content: pick('content'), room: [], sender: [], underride: pick('underride') },
  };
}
