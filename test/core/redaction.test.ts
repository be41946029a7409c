import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidEventError } from '../../src/core/events.js';
import type { JsonObject } from '../../src/core/json.js';
import { redactEvent } from '../../src/core/redaction.js';
import { ROOM_VERSIONS, getRoomVersion } from '../../src/core/room-versions.js';
import type { RedactionRules } from '../../src/core/room-versions.js';

// Expected outputs are written out by hand from the spec's redaction fragments (v1, v6, v9, v11)
// and the v8 text, not derived from the code under test.

const RULE_VERSIONS: Record<RedactionRules, string> = { v1: '1', v6: '6', v8: '8', v9: '9', v11: '11' };

/** Every top-level key any rule set keeps, plus ones none keeps. */
function envelope(type: string, content: JsonObject, stateKey?: string): JsonObject {
  return {
    event_id: '$ev:myelin.test',
    type,
    room_id: '!room:myelin.test',
    sender: '@kim:myelin.test',
    ...(stateKey === undefined ? {} : { state_key: stateKey }),
    content,
    hashes: { sha256: 'aGFzaA' },
    signatures: { 'myelin.test': { 'ed25519:a': 'c2ln' } },
    depth: 12,
    prev_events: ['$prev'],
    prev_state: ['$prevstate'],
    auth_events: ['$auth'],
    origin: 'myelin.test',
    origin_server_ts: 1700000000000,
    membership: 'join',
    // Never kept:
    unsigned: { age_ts: 1, redacted_because: {} },
    redacts: '$target',
    age_ts: 1,
    outlier: false,
    extra_top_level: 'x',
  };
}

/** The top level that survives, for the given rules, around `content`. */
function expectedEnvelope(rules: RedactionRules, type: string, content: JsonObject, stateKey?: string): JsonObject {
  const kept: JsonObject = {
    event_id: '$ev:myelin.test',
    type,
    room_id: '!room:myelin.test',
    sender: '@kim:myelin.test',
    ...(stateKey === undefined ? {} : { state_key: stateKey }),
    content,
    hashes: { sha256: 'aGFzaA' },
    signatures: { 'myelin.test': { 'ed25519:a': 'c2ln' } },
    depth: 12,
    prev_events: ['$prev'],
    auth_events: ['$auth'],
    origin_server_ts: 1700000000000,
  };
  if (rules !== 'v11') {
    kept.prev_state = ['$prevstate'];
    kept.origin = 'myelin.test';
    kept.membership = 'join';
  }
  return kept;
}

interface Case {
  readonly type: string;
  readonly stateKey?: string;
  readonly content: JsonObject;
  readonly expected: Record<RedactionRules, JsonObject>;
}

const thirdPartySigned = { mxid: '@kim:myelin.test', token: 'tok', signatures: { 'id.test': { 'ed25519:0': 'c2ln' } } };

const CASES: Case[] = [
  {
    type: 'm.room.create',
    stateKey: '',
    content: { creator: '@kim:myelin.test', room_version: '11', 'm.federate': false, predecessor: { room_id: '!old:x' }, junk: 1 },
    expected: {
      v1: { creator: '@kim:myelin.test' },
      v6: { creator: '@kim:myelin.test' },
      v8: { creator: '@kim:myelin.test' },
      v9: { creator: '@kim:myelin.test' },
      v11: { creator: '@kim:myelin.test', room_version: '11', 'm.federate': false, predecessor: { room_id: '!old:x' }, junk: 1 },
    },
  },
  {
    type: 'm.room.member',
    stateKey: '@kim:myelin.test',
    content: {
      membership: 'invite',
      displayname: 'Kim',
      avatar_url: 'mxc://myelin.test/a',
      reason: 'hi',
      join_authorised_via_users_server: '@admin:myelin.test',
      third_party_invite: { display_name: 'k***@example.org', signed: thirdPartySigned },
    },
    expected: {
      v1: { membership: 'invite' },
      v6: { membership: 'invite' },
      v8: { membership: 'invite' },
      v9: { membership: 'invite', join_authorised_via_users_server: '@admin:myelin.test' },
      v11: {
        membership: 'invite',
        join_authorised_via_users_server: '@admin:myelin.test',
        third_party_invite: { signed: thirdPartySigned },
      },
    },
  },
  {
    type: 'm.room.join_rules',
    stateKey: '',
    content: { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: '!space:x' }], junk: true },
    expected: {
      v1: { join_rule: 'restricted' },
      v6: { join_rule: 'restricted' },
      v8: { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: '!space:x' }] },
      v9: { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: '!space:x' }] },
      v11: { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: '!space:x' }] },
    },
  },
  {
    type: 'm.room.power_levels',
    stateKey: '',
    content: {
      ban: 50,
      events: { 'm.room.name': 50 },
      events_default: 0,
      invite: 25,
      kick: 50,
      notifications: { room: 50 },
      redact: 50,
      state_default: 50,
      users: { '@kim:myelin.test': 100 },
      users_default: 0,
      historical: 100,
    },
    expected: {
      v1: pl(false),
      v6: pl(false),
      v8: pl(false),
      v9: pl(false),
      v11: pl(true),
    },
  },
  {
    type: 'm.room.history_visibility',
    stateKey: '',
    content: { history_visibility: 'shared', junk: 'x' },
    expected: {
      v1: { history_visibility: 'shared' },
      v6: { history_visibility: 'shared' },
      v8: { history_visibility: 'shared' },
      v9: { history_visibility: 'shared' },
      v11: { history_visibility: 'shared' },
    },
  },
  {
    type: 'm.room.aliases',
    stateKey: 'myelin.test',
    content: { aliases: ['#a:myelin.test'], junk: 'x' },
    expected: { v1: { aliases: ['#a:myelin.test'] }, v6: {}, v8: {}, v9: {}, v11: {} },
  },
  {
    type: 'm.room.redaction',
    content: { redacts: '$target', reason: 'spam' },
    expected: { v1: {}, v6: {}, v8: {}, v9: {}, v11: { redacts: '$target' } },
  },
  {
    type: 'm.room.message',
    content: { msgtype: 'm.text', body: 'hello', 'm.relates_to': { rel_type: 'm.thread', event_id: '$root' } },
    expected: { v1: {}, v6: {}, v8: {}, v9: {}, v11: {} },
  },
  {
    // A state event of a type with no allow-list loses its content but keeps its state key.
    type: 'm.room.topic',
    stateKey: '',
    content: { topic: 'secret' },
    expected: { v1: {}, v6: {}, v8: {}, v9: {}, v11: {} },
  },
];

function pl(withInvite: boolean): JsonObject {
  return {
    ban: 50,
    events: { 'm.room.name': 50 },
    events_default: 0,
    ...(withInvite ? { invite: 25 } : {}),
    kick: 50,
    redact: 50,
    state_default: 50,
    users: { '@kim:myelin.test': 100 },
    users_default: 0,
  };
}

for (const rules of Object.keys(RULE_VERSIONS) as RedactionRules[]) {
  test(`redaction rules ${rules}`, () => {
    const version = getRoomVersion(RULE_VERSIONS[rules])!;
    assert.equal(version.redaction, rules);
    for (const c of CASES) {
      const input = envelope(c.type, c.content, c.stateKey);
      const before = structuredClone(input);
      const redacted = redactEvent(input, version);
      assert.deepEqual(redacted, expectedEnvelope(rules, c.type, c.expected[rules], c.stateKey), `${rules} ${c.type}`);
      assert.deepEqual(input, before, 'input is not mutated');
    }
  });
}

test('every room version uses the rules the spec assigns it', () => {
  const expected: Record<string, RedactionRules> = {
    '1': 'v1',
    '2': 'v1',
    '3': 'v1',
    '4': 'v1',
    '5': 'v1',
    '6': 'v6',
    '7': 'v6',
    '8': 'v8',
    '9': 'v9',
    '10': 'v9',
    '11': 'v11',
    '12': 'v11',
  };
  for (const [id, version] of ROOM_VERSIONS) assert.equal(version.redaction, expected[id], id);
});

test('v12: a create event never keeps a room_id', () => {
  const input = envelope('m.room.create', { room_version: '12' }, '');
  const redacted = redactEvent(input, getRoomVersion('12')!);
  assert.equal('room_id' in redacted, false);
  assert.deepEqual(redacted.content, { room_version: '12' });
  assert.equal(redactEvent(input, getRoomVersion('11')!).room_id, '!room:myelin.test');
});

test('v11: third_party_invite keeps only signed, and only when it is an object', () => {
  const v11 = getRoomVersion('11')!;
  const member = (tpi: unknown) =>
    redactEvent({ type: 'm.room.member', content: { membership: 'invite', third_party_invite: tpi as JsonObject } }, v11).content;
  assert.deepEqual(member({ display_name: 'x' }), { membership: 'invite', third_party_invite: {} });
  assert.deepEqual(member({ signed: 'odd' }), { membership: 'invite', third_party_invite: { signed: 'odd' } });
  assert.deepEqual(member('not an object'), { membership: 'invite' });
  assert.deepEqual(member(['signed']), { membership: 'invite' });
});

test('malformed input', () => {
  const v1 = getRoomVersion('1')!;
  assert.throws(() => redactEvent({ content: {} }, v1), InvalidEventError);
  assert.throws(() => redactEvent({ type: 5, content: {} }, v1), InvalidEventError);
  assert.throws(() => redactEvent({ type: 'm.room.message' }, v1), InvalidEventError);
  // Content that is not an object redacts to {} (as Synapse does).
  assert.deepEqual(redactEvent({ type: 'm.room.member', content: 'x' }, v1), { type: 'm.room.member', content: {} });
  // Allow-listed keys are only copied when present.
  assert.deepEqual(redactEvent({ type: 'm.room.power_levels', content: { ban: 1 } }, v1).content, { ban: 1 });
  // Keys like __proto__ in content cannot leak through the allow-list.
  const hostile = JSON.parse('{"type":"m.room.create","content":{"__proto__":{"x":1},"creator":"@a:b"}}') as JsonObject;
  assert.deepEqual(redactEvent(hostile, v1).content, { creator: '@a:b' });
});
