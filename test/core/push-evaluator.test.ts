import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RoomEvent } from '../../src/core/events.js';
import type { JsonObject } from '../../src/core/json.js';
import { PowerLevels } from '../../src/core/power-levels.js';
import { getRoomVersion } from '../../src/core/room-versions.js';
import { defaultRules } from '../../src/core/push/default-rules.js';
import {
  actionsHighlight,
  actionsNotify,
  actionsTweaks,
  compileRuleSet,
  evaluatePushRules,
  lookupPath,
  parseDotPath,
  type PushContext,
} from '../../src/core/push/evaluator.js';
import { mergeRuleSet, type StoredUserRules } from '../../src/core/push/ruleset.js';
import type { PushCondition, PushRuleSet } from '../../src/core/push/rules.js';
import { makeEvent } from './helpers/events.js';

const ALICE = '@alice:example.org';
const BOB = '@bob:example.org';
const ROOM = '!room:example.org';
const V10 = getRoomVersion('10')!;

/** Bob has 50 (enough for @room by default), Carol 0. */
const POWER = new PowerLevels({ users: { [BOB]: 50 } }, undefined, V10);

function ctx(overrides: Partial<PushContext> = {}): PushContext {
  return {
    userId: ALICE,
    userDisplayName: 'Alice Liddell',
    roomMemberCount: 5,
    powerLevels: POWER,
    ...overrides,
  };
}

function message(content: JsonObject, sender = BOB, type = 'm.room.message'): RoomEvent {
  return makeEvent({ type, sender, roomId: ROOM, content });
}

function state(type: string, stateKey: string, content: JsonObject, sender = BOB): RoomEvent {
  return makeEvent({ type, sender, roomId: ROOM, stateKey, content });
}

const rules = (stored: StoredUserRules = {}, userId = ALICE) => compileRuleSet(mergeRuleSet(userId, stored));
const DEFAULTS = rules();

/** The id of the rule that matches, or undefined. */
function matched(event: RoomEvent, c: PushContext = ctx(), set = DEFAULTS): string | undefined {
  return set.match(event, c)?.ruleId;
}

const SOUND = { set_tweak: 'sound', value: 'default' };
const HIGHLIGHT = { set_tweak: 'highlight' };

describe('default rules firing', () => {
  test('a 1:1 message notifies with sound', () => {
    const event = message({ msgtype: 'm.text', body: 'hello' });
    assert.equal(matched(event, ctx({ roomMemberCount: 2 })), '.m.rule.room_one_to_one');
    const actions = DEFAULTS.evaluate(event, ctx({ roomMemberCount: 2 }));
    assert.deepEqual(actions, ['notify', SOUND]);
    assert.equal(actionsNotify(actions), true);
    assert.equal(actionsHighlight(actions), false);
  });

  test('a group message notifies silently', () => {
    const event = message({ msgtype: 'm.text', body: 'hello all' });
    assert.equal(matched(event), '.m.rule.message');
    assert.deepEqual(DEFAULTS.evaluate(event, ctx()), ['notify']);
  });

  test('an encrypted message: 1:1 with sound, group without', () => {
    const event = message({ algorithm: 'm.megolm.v1.aes-sha2', ciphertext: 'xyz' }, BOB, 'm.room.encrypted');
    assert.equal(matched(event, ctx({ roomMemberCount: 2 })), '.m.rule.encrypted_room_one_to_one');
    assert.deepEqual(DEFAULTS.evaluate(event, ctx({ roomMemberCount: 2 })), ['notify', SOUND]);
    assert.equal(matched(event, ctx({ roomMemberCount: 3 })), '.m.rule.encrypted');
    assert.deepEqual(DEFAULTS.evaluate(event, ctx({ roomMemberCount: 3 })), ['notify']);
  });

  test('a notice is suppressed, even in a 1:1 room', () => {
    const event = message({ msgtype: 'm.notice', body: 'bot says hi' });
    assert.equal(matched(event, ctx({ roomMemberCount: 2 })), '.m.rule.suppress_notices');
    assert.deepEqual(DEFAULTS.evaluate(event, ctx()), []);
    assert.equal(actionsNotify(DEFAULTS.evaluate(event, ctx())), false);
  });

  test('an invite for me notifies; other membership events do not', () => {
    const invite = state('m.room.member', ALICE, { membership: 'invite' });
    assert.equal(matched(invite), '.m.rule.invite_for_me');
    assert.deepEqual(DEFAULTS.evaluate(invite, ctx()), ['notify', SOUND]);

    const otherInvite = state('m.room.member', '@carol:example.org', { membership: 'invite' });
    assert.equal(matched(otherInvite), '.m.rule.member_event');
    const join = state('m.room.member', BOB, { membership: 'join', displayname: 'Bob' }, BOB);
    assert.equal(matched(join), '.m.rule.member_event');
    assert.deepEqual(DEFAULTS.evaluate(join, ctx()), []);
  });

  test('an invite naming me by display name is still just an invite (override order)', () => {
    const invite = state('m.room.member', ALICE, { membership: 'invite', displayname: 'Alice Liddell' });
    assert.equal(matched(invite, ctx({ userDisplayName: undefined })), '.m.rule.invite_for_me');
  });

  test('a user mention via m.mentions.user_ids highlights', () => {
    const event = message({ msgtype: 'm.text', body: 'hey', 'm.mentions': { user_ids: [ALICE] } });
    assert.equal(matched(event), '.m.rule.is_user_mention');
    const actions = DEFAULTS.evaluate(event, ctx());
    assert.deepEqual(actions, ['notify', SOUND, HIGHLIGHT]);
    assert.equal(actionsHighlight(actions), true);

    const other = message({ msgtype: 'm.text', body: 'hey', 'm.mentions': { user_ids: ['@carol:example.org'] } });
    assert.equal(matched(other), '.m.rule.message');
  });

  test('an edit is suppressed unless it mentions me', () => {
    const edit = message({
      msgtype: 'm.text',
      body: '* fixed',
      'm.new_content': { msgtype: 'm.text', body: 'fixed' },
      'm.relates_to': { rel_type: 'm.replace', event_id: '$orig' },
      'm.mentions': {},
    });
    assert.equal(matched(edit), '.m.rule.suppress_edits');
    assert.deepEqual(DEFAULTS.evaluate(edit, ctx()), []);

    const mentioning = message({
      msgtype: 'm.text',
      body: '* hi Alice',
      'm.relates_to': { rel_type: 'm.replace', event_id: '$orig' },
      'm.mentions': { user_ids: [ALICE] },
    });
    assert.equal(matched(mentioning), '.m.rule.is_user_mention');
  });

  test('a room mention needs the room notification level (50 by default)', () => {
    const event = (sender: string) => message({ msgtype: 'm.text', body: 'all', 'm.mentions': { room: true } }, sender);
    assert.equal(matched(event(BOB)), '.m.rule.is_room_mention');
    assert.deepEqual(DEFAULTS.evaluate(event(BOB), ctx()), ['notify', HIGHLIGHT]);
    assert.equal(matched(event('@carol:example.org')), '.m.rule.message');

    // The level comes from notifications.room when set…
    const strict = new PowerLevels({ users: { [BOB]: 50 }, notifications: { room: 75 } }, undefined, V10);
    assert.equal(matched(event(BOB), ctx({ powerLevels: strict })), '.m.rule.message');
    // …the sender's level may be given explicitly, and null (unknown) never passes.
    assert.equal(matched(event(BOB), ctx({ powerLevels: strict, senderPowerLevel: 100 })), '.m.rule.is_room_mention');
    assert.equal(matched(event(BOB), ctx({ senderPowerLevel: null })), '.m.rule.message');
    // `room: "true"` (a string) is not `true`.
    const stringy = message({ msgtype: 'm.text', body: 'all', 'm.mentions': { room: 'true' } });
    assert.equal(matched(stringy), '.m.rule.message');
  });

  test('legacy @room (roomnotif) only without m.mentions, and only with power', () => {
    const legacy = message({ msgtype: 'm.text', body: 'Hey @room, lunch?' });
    assert.equal(matched(legacy), '.m.rule.roomnotif');
    assert.deepEqual(DEFAULTS.evaluate(legacy, ctx()), ['notify', HIGHLIGHT]);
    assert.equal(matched(message({ msgtype: 'm.text', body: 'Hey @room' }, '@carol:example.org')), '.m.rule.message');

    const withMentions = message({ msgtype: 'm.text', body: 'Hey @room, lunch?', 'm.mentions': {} });
    assert.equal(matched(withMentions), '.m.rule.message');
  });

  test('legacy display-name mention only without m.mentions', () => {
    const legacy = message({ msgtype: 'm.text', body: 'thanks alice liddell!' });
    assert.equal(matched(legacy), '.m.rule.contains_display_name');
    assert.deepEqual(DEFAULTS.evaluate(legacy, ctx()), ['notify', SOUND, HIGHLIGHT]);

    const withMentions = message({ msgtype: 'm.text', body: 'thanks Alice Liddell!', 'm.mentions': { user_ids: [] } });
    assert.equal(matched(withMentions), '.m.rule.message');

    // Word boundaries, and an empty or missing name never matches.
    assert.equal(matched(message({ msgtype: 'm.text', body: 'xAlice Liddell' })), '.m.rule.message');
    const noName = message({ msgtype: 'm.text', body: 'anything' });
    assert.equal(matched(noName, ctx({ userDisplayName: '' })), '.m.rule.message');
    assert.equal(matched(noName, ctx({ userDisplayName: null })), '.m.rule.message');
  });

  test('legacy user-name (localpart) content rule only without m.mentions', () => {
    const legacy = message({ msgtype: 'm.text', body: 'ping ALICE please' });
    // `alice` is the localpart; the display name rule does not match ("Alice Liddell").
    assert.equal(matched(legacy), '.m.rule.contains_user_name');
    assert.deepEqual(DEFAULTS.evaluate(legacy, ctx()), ['notify', SOUND, HIGHLIGHT]);
    assert.equal(matched(message({ msgtype: 'm.text', body: 'no malice meant' })), '.m.rule.message');
    assert.equal(matched(message({ msgtype: 'm.text', body: 'ping alice', 'm.mentions': { user_ids: [] } })), '.m.rule.message');
  });

  test('a reaction is silent', () => {
    const reaction = message({ 'm.relates_to': { rel_type: 'm.annotation', event_id: '$x', key: '👍' } }, BOB, 'm.reaction');
    assert.equal(matched(reaction), '.m.rule.reaction');
    assert.deepEqual(DEFAULTS.evaluate(reaction, ctx()), []);
  });

  test('a tombstone highlights; a tombstone-typed message event does not match the rule', () => {
    const tombstone = state('m.room.tombstone', '', { body: 'moved', replacement_room: '!new:example.org' });
    assert.equal(matched(tombstone), '.m.rule.tombstone');
    assert.deepEqual(DEFAULTS.evaluate(tombstone, ctx()), ['notify', HIGHLIGHT]);
    const notState = message({ body: 'moved' }, BOB, 'm.room.tombstone');
    assert.equal(matched(notState), undefined);
  });

  test('server ACL changes are silent; calls ring', () => {
    assert.equal(matched(state('m.room.server_acl', '', { allow: ['*'] })), '.m.rule.room.server_acl');
    const call = message({ call_id: 'c1', version: '1', offer: { type: 'offer', sdp: '' } }, BOB, 'm.call.invite');
    assert.equal(matched(call), '.m.rule.call');
    assert.deepEqual(DEFAULTS.evaluate(call, ctx()), ['notify', { set_tweak: 'sound', value: 'ring' }]);
  });

  test('events nothing matches give undefined', () => {
    assert.equal(DEFAULTS.evaluate(state('m.room.topic', '', { topic: 'x' }), ctx()), undefined);
    assert.equal(DEFAULTS.evaluate(message({}, BOB, 'org.example.custom'), ctx()), undefined);
  });

  test('the sender is never notified of their own event', () => {
    const event = message({ msgtype: 'm.text', body: 'hi', 'm.mentions': { user_ids: [ALICE] } }, ALICE);
    assert.equal(DEFAULTS.evaluate(event, ctx()), undefined);
    assert.equal(evaluatePushRules(mergeRuleSet(ALICE), event, ctx()), undefined);
  });

  test('the display name falls back to my own membership event', () => {
    const onlyDisplayName = compileRuleSet({
      global: {
        override: [{ rule_id: 'dn', default: false, enabled: true, conditions: [{ kind: 'contains_display_name' }], actions: ['notify'] }],
        content: [],
        room: [],
        sender: [],
        underride: [],
      },
    });
    const mine = state('m.room.member', ALICE, { membership: 'join', displayname: 'Queen', body: 'the queen' });
    const theirs = state('m.room.member', BOB, { membership: 'join', displayname: 'Queen', body: 'the queen' });
    const noName = ctx({ userDisplayName: undefined });
    assert.equal(onlyDisplayName.match(mine, noName)?.ruleId, 'dn');
    assert.equal(onlyDisplayName.match(theirs, noName), undefined);
    // A display name given in the context wins.
    assert.equal(onlyDisplayName.match(mine, ctx({ userDisplayName: 'King' })), undefined);
  });
});

describe('rule order and enablement', () => {
  test('user rules come before defaults within a kind', () => {
    const stored: StoredUserRules = {
      rules: {
        underride: [
          {
            rule_id: 'quiet-messages',
            enabled: true,
            conditions: [{ kind: 'event_match', key: 'type', pattern: 'm.room.message' }],
            actions: ['dont_notify'],
          },
        ],
      },
    };
    const event = message({ msgtype: 'm.text', body: 'hi' });
    assert.equal(matched(event, ctx(), rules(stored)), 'quiet-messages');
    assert.deepEqual(rules(stored).evaluate(event, ctx()), []); // dont_notify is stripped
    // Overrides still beat user underrides.
    const notice = message({ msgtype: 'm.notice', body: 'hi' });
    assert.equal(matched(notice, ctx(), rules(stored)), '.m.rule.suppress_notices');
  });

  test('kinds run override, content, room, sender, underride', () => {
    const stored: StoredUserRules = {
      rules: {
        content: [{ rule_id: 'cake', enabled: true, pattern: 'cake', actions: ['notify', { set_tweak: 'sound', value: 'cake.wav' }] }],
        room: [{ rule_id: ROOM, enabled: true, actions: [] }],
        sender: [{ rule_id: BOB, enabled: true, actions: ['notify', { set_tweak: 'highlight' }] }],
      },
    };
    const set = rules(stored);
    assert.equal(matched(message({ msgtype: 'm.text', body: 'cake time' }), ctx(), set), 'cake');
    assert.equal(matched(message({ msgtype: 'm.text', body: 'pie time' }), ctx(), set), ROOM);
    const elsewhere = makeEvent({ type: 'm.room.message', sender: BOB, roomId: '!other:example.org', content: { body: 'x' } });
    assert.equal(matched(elsewhere, ctx(), set), BOB);
    const fromCarol = makeEvent({ type: 'm.room.message', sender: '@carol:x', roomId: '!other:example.org', content: { body: 'x' } });
    assert.equal(matched(fromCarol, ctx(), set), '.m.rule.message');
  });

  test('disabled rules are skipped, user and default alike', () => {
    const stored: StoredUserRules = {
      rules: { sender: [{ rule_id: BOB, enabled: false, actions: [] }] },
      defaults: { '.m.rule.message': { enabled: false } },
    };
    const set = rules(stored);
    assert.equal(matched(message({ msgtype: 'm.text', body: 'hi' }), ctx(), set), undefined);
    assert.ok(!set.ruleIds.includes(BOB));
  });

  test('changed default actions are used', () => {
    const set = rules({ defaults: { '.m.rule.message': { actions: ['notify', { set_tweak: 'sound', value: 'ping' }] } } });
    assert.deepEqual(set.evaluate(message({ msgtype: 'm.text', body: 'hi' }), ctx()), ['notify', { set_tweak: 'sound', value: 'ping' }]);
  });

  test('the master rule, when enabled, silences everything, user overrides included', () => {
    const stored: StoredUserRules = {
      rules: { override: [{ rule_id: 'all', enabled: true, conditions: [], actions: ['notify'] }] },
      defaults: { '.m.rule.master': { enabled: true } },
    };
    const set = rules(stored);
    for (const event of [
      message({ msgtype: 'm.text', body: 'hi', 'm.mentions': { user_ids: [ALICE] } }),
      state('m.room.member', ALICE, { membership: 'invite' }),
      state('m.room.tombstone', '', { body: 'x' }),
    ]) {
      assert.equal(matched(event, ctx(), set), '.m.rule.master');
      assert.deepEqual(set.evaluate(event, ctx()), []);
    }
  });

  test('an override rule without conditions matches everything', () => {
    const set = rules({ rules: { override: [{ rule_id: 'everything', enabled: true, actions: ['notify'] }] } });
    assert.equal(matched(state('m.room.topic', '', { topic: 'x' }), ctx(), set), 'everything');
  });
});

describe('conditions', () => {
  const match = (condition: PushCondition, event: RoomEvent, c: PushContext = ctx()) => {
    const set: PushRuleSet = {
      global: {
        override: [{ rule_id: 'r', default: false, enabled: true, conditions: [condition], actions: ['notify'] }],
        content: [],
        room: [],
        sender: [],
        underride: [],
      },
    };
    return compileRuleSet(set).evaluate(event, c) !== undefined;
  };

  test('event_match: globs on the whole value, case-insensitively', () => {
    const topic = state('m.room.topic', '', { topic: 'Lunch plans' });
    assert.equal(match({ kind: 'event_match', key: 'content.topic', pattern: 'lunc?*' }, topic), true);
    assert.equal(match({ kind: 'event_match', key: 'content.topic', pattern: 'lunch' }, topic), false);
    assert.equal(match({ kind: 'event_match', key: 'type', pattern: 'm.room.*' }, topic), true);
    assert.equal(match({ kind: 'event_match', key: 'sender', pattern: '@bob:*' }, topic), true);
    assert.equal(match({ kind: 'event_match', key: 'room_id', pattern: ROOM }, topic), true);
    assert.equal(match({ kind: 'event_match', key: 'state_key', pattern: '' }, topic), true);
  });

  test('event_match: missing or non-string values never match, even *', () => {
    const event = message({ msgtype: 'm.text', body: 'x', n: 5, b: true, nul: null, o: { a: 'b' }, arr: ['x'] });
    for (const key of ['content.missing', 'content.n', 'content.b', 'content.nul', 'content.o', 'content.arr', 'state_key']) {
      assert.equal(match({ kind: 'event_match', key, pattern: '*' }, event), false, key);
    }
  });

  test('event_match on content.body matches at word boundaries', () => {
    const hi = message({ msgtype: 'm.text', body: 'hi alice!' });
    const malice = message({ msgtype: 'm.text', body: 'malice' });
    assert.equal(match({ kind: 'event_match', key: 'content.body', pattern: 'alice' }, hi), true);
    assert.equal(match({ kind: 'event_match', key: 'content.body', pattern: 'alice' }, malice), false);
    // Only content.body is matched by words; other keys need the whole value.
    const topic = state('m.room.topic', '', { topic: 'hi alice!' });
    assert.equal(match({ kind: 'event_match', key: 'content.topic', pattern: 'alice' }, topic), false);
  });

  test('dot paths with escapes', () => {
    assert.deepEqual(parseDotPath('content.m\\.relates_to.rel_type'), ['content', 'm.relates_to', 'rel_type']);
    assert.deepEqual(parseDotPath('content.m\\\\foo'), ['content', 'm\\foo']);
    assert.deepEqual(parseDotPath('content.m\\xfoo'), ['content', 'm\\xfoo']);
    assert.deepEqual(parseDotPath('type'), ['type']);
    assert.deepEqual(parseDotPath('content..x'), ['content', '', 'x']);

    const event = message({ 'm.relates_to': { rel_type: 'm.thread' }, m: { relates_to: { rel_type: 'other' } }, 'm\\foo': 'bar' });
    assert.equal(lookupPath(event, parseDotPath('content.m\\.relates_to.rel_type')), 'm.thread');
    assert.equal(lookupPath(event, parseDotPath('content.m.relates_to.rel_type')), 'other');
    assert.equal(match({ kind: 'event_match', key: 'content.m\\\\foo', pattern: 'bar' }, event), true);
    assert.equal(match({ kind: 'event_property_is', key: 'content.m\\.relates_to.rel_type', value: 'm.thread' }, event), true);
    assert.equal(match({ kind: 'event_property_is', key: 'content.m.relates_to.rel_type', value: 'm.thread' }, event), false);
  });

  test('paths do not reach inherited properties or into arrays', () => {
    const event = message({ list: [{ a: 'b' }] });
    assert.equal(lookupPath(event, ['content', 'constructor']), undefined);
    assert.equal(lookupPath(event, ['content', '__proto__']), undefined);
    assert.equal(lookupPath(event, ['content', 'list', '0', 'a']), undefined);
    assert.equal(match({ kind: 'event_match', key: 'content.toString', pattern: '*' }, event), false);
  });

  test('event_property_is: exact scalar match, no casts', () => {
    const create = state('m.room.create', '', { 'm.federate': true, n: 1, s: 'true', z: null });
    const is = (key: string, value: PushCondition['value']) => match({ kind: 'event_property_is', key, value: value ?? null }, create);
    assert.equal(is('content.m\\.federate', true), true);
    assert.equal(is('content.m\\.federate', 'true'), false);
    assert.equal(is('content.m\\.federate', 1), false);
    assert.equal(is('content.n', 1), true);
    assert.equal(is('content.n', '1'), false);
    assert.equal(is('content.s', 'true'), true);
    assert.equal(is('content.s', 'TRUE'), false); // exact, not case-insensitive
    assert.equal(is('content.z', null), true);
    assert.equal(is('content.absent', null), false);
    // A compound value is not a valid condition.
    assert.equal(match({ kind: 'event_property_is', key: 'content', value: {} }, create), false);
  });

  test('event_property_contains: array membership of a scalar', () => {
    const aliases = state('m.room.canonical_alias', '', { alt_aliases: ['#somewhere:example.org', '#myroom:example.com', 3, { x: 1 }] });
    const has = (value: string | number) => match({ kind: 'event_property_contains', key: 'content.alt_aliases', value }, aliases);
    assert.equal(has('#myroom:example.com'), true);
    assert.equal(has(':example.com'), false);
    assert.equal(has('#MYROOM:example.com'), false);
    assert.equal(has(3), true);
    assert.equal(has('3'), false);
    const notArray = state('m.room.canonical_alias', '', { alt_aliases: '#myroom:example.com' });
    assert.equal(match({ kind: 'event_property_contains', key: 'content.alt_aliases', value: '#myroom:example.com' }, notArray), false);
  });

  test('room_member_count with every operator', () => {
    const event = message({ body: 'x' });
    const count = (is: unknown, n: number) => match({ kind: 'room_member_count', is } as PushCondition, event, ctx({ roomMemberCount: n }));
    assert.equal(count('2', 2), true);
    assert.equal(count('2', 3), false);
    assert.equal(count('==2', 2), true);
    assert.equal(count('<10', 9), true);
    assert.equal(count('<10', 10), false);
    assert.equal(count('<=10', 10), true);
    assert.equal(count('<=10', 11), false);
    assert.equal(count('>10', 11), true);
    assert.equal(count('>10', 10), false);
    assert.equal(count('>=10', 10), true);
    assert.equal(count('>=10', 9), false);
    // Malformed `is` never matches.
    for (const bad of ['', '=<2', '!=2', '2.0', ' 2', '-1', 'two', 2, null]) assert.equal(count(bad, 2), false, String(bad));
  });

  test('sender_notification_permission with another key', () => {
    const levels = new PowerLevels({ users: { [BOB]: 20 }, notifications: { custom: 10 } }, undefined, V10);
    const event = message({ body: 'x' });
    assert.equal(match({ kind: 'sender_notification_permission', key: 'custom' }, event, ctx({ powerLevels: levels })), true);
    assert.equal(match({ kind: 'sender_notification_permission', key: 'room' }, event, ctx({ powerLevels: levels })), false);
    assert.equal(match({ kind: 'sender_notification_permission' }, event), false);
  });

  test('unknown and malformed conditions never match', () => {
    const event = message({ msgtype: 'm.text', body: 'hello' });
    assert.equal(match({ kind: 'org.example.always' }, event), false);
    assert.equal(match({ kind: 'event_match', key: 'type' }, event), false);
    assert.equal(match({ kind: 'event_match', pattern: '*' }, event), false);
    assert.equal(match({ kind: 'event_match', key: 'type', pattern: 5 }, event), false);
    assert.equal(match({ kind: 'room_version_supports', feature: 'x' }, event), false);
    assert.equal(match({ kind: 'room_version_supports', feature: 'x' }, event, ctx({ roomVersionFeatures: ['x'] })), true);
  });
});

describe('actions', () => {
  test('highlight: absent value is true, first tweak decides', () => {
    assert.equal(actionsHighlight([{ set_tweak: 'highlight' }]), true);
    assert.equal(actionsHighlight([{ set_tweak: 'highlight', value: true }]), true);
    assert.equal(actionsHighlight([{ set_tweak: 'highlight', value: false }]), false);
    assert.equal(actionsHighlight(['notify']), false);
    assert.equal(actionsHighlight(undefined), false);
  });

  test('notify, and historical actions', () => {
    assert.equal(actionsNotify(['notify']), true);
    assert.equal(actionsNotify(['dont_notify']), false);
    assert.equal(actionsNotify([]), false);
    assert.equal(actionsNotify(undefined), false);
  });

  test('tweaks for a push gateway', () => {
    assert.deepEqual(actionsTweaks(['notify', { set_tweak: 'sound', value: 'default' }, { set_tweak: 'highlight' }]), {
      sound: 'default',
      highlight: true,
    });
  });
});

describe('performance', () => {
  test('default rules for 1,000 users on one message', (t) => {
    const users = Array.from({ length: 1000 }, (_, i) => `@user${i}:example.org`);
    const body = 'Morning all, has anyone seen the release notes for the next version? ' + 'lorem ipsum '.repeat(40);
    const event = message({ msgtype: 'm.text', body }, '@sender:example.org');
    const c = (userId: string, i: number): PushContext => ({
      userId,
      userDisplayName: `User Number ${i}`,
      roomMemberCount: 1001,
      powerLevels: POWER,
    });

    // Cold: build and compile every user's rule set, then evaluate.
    const start = performance.now();
    const compiled = users.map((u) => compileRuleSet(mergeRuleSet(u)));
    const compileMs = performance.now() - start;

    // Warm: compiled rule sets kept, a fresh event each round (no per-event cache carried over);
    // the median of the rounds after a few warm-up rounds.
    const rounds = 40;
    const times: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const e = message({ msgtype: 'm.text', body: body + r }, '@sender:example.org');
      let notified = 0;
      const roundStart = performance.now();
      for (let i = 0; i < users.length; i++) if (actionsNotify(compiled[i]!.evaluate(e, c(users[i]!, i)))) notified++;
      if (r >= 10) times.push(performance.now() - roundStart);
      assert.equal(notified, users.length);
    }
    times.sort((a, b) => a - b);
    const warmMs = times[times.length >> 1]!;
    assert.deepEqual(compiled[0]!.evaluate(event, c(users[0]!, 0)), ['notify']);

    t.diagnostic(`compile 1,000 default rule sets: ${compileMs.toFixed(1)} ms`);
    t.diagnostic(`evaluate 1,000 users on one message (warm, median): ${warmMs.toFixed(2)} ms`);
    assert.ok(warmMs < 200, `evaluation took ${warmMs} ms`);
  });

  test('the display name of a member fires for that member only', () => {
    const users = Array.from({ length: 50 }, (_, i) => `@user${i}:example.org`);
    const event = message({ msgtype: 'm.text', body: 'ping User Number 7 please' }, '@sender:example.org');
    const hits = users.filter((u, i) => {
      const set = rules({}, u);
      return actionsHighlight(
        set.evaluate(event, { userId: u, userDisplayName: `User Number ${i}`, roomMemberCount: 50, powerLevels: POWER }),
      );
    });
    assert.deepEqual(hits, ['@user7:example.org']);
  });
});

test('defaultRules is fresh per call', () => {
  const a = defaultRules(ALICE);
  a.global.override[0]!.actions.push('notify');
  assert.deepEqual(defaultRules(ALICE).global.override[0]!.actions, []);
});
