import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseEdu, type EduParseResult } from '../../src/core/edus.js';

const ctx = { origin: 'matrix.org', localServerName: 'example.org' };
const edu = (edu_type: string, content: unknown) => parseEdu({ edu_type, content }, ctx);
const ok = (result: EduParseResult) => {
  assert.ok(result.ok, JSON.stringify(result));
  return result;
};
const errorCode = (result: EduParseResult) => (result.ok ? 'ok' : result.error.code);

test('the envelope: edu_type string and content object; unknown types pass through to be ignored', () => {
  assert.equal(errorCode(parseEdu(null, ctx)), 'malformed-envelope');
  assert.equal(errorCode(parseEdu({ content: {} }, ctx)), 'malformed-envelope');
  assert.equal(errorCode(parseEdu({ edu_type: 1, content: {} }, ctx)), 'malformed-envelope');
  assert.equal(errorCode(parseEdu({ edu_type: 'm.typing' }, ctx)), 'malformed-envelope');
  assert.equal(errorCode(parseEdu({ edu_type: 'm.typing', content: [] }, ctx)), 'malformed-envelope');
  const unknown = ok(edu('org.example.custom', { anything: [1, 2] }));
  assert.deepEqual(unknown.edu, { type: 'unknown', eduType: 'org.example.custom', content: { anything: [1, 2] } });
});

test("m.typing: the spec's example, and its rules", () => {
  const example = ok(edu('m.typing', { room_id: '!somewhere:matrix.org', user_id: '@john:matrix.org', typing: true }));
  assert.deepEqual(example.edu, { type: 'm.typing', roomId: '!somewhere:matrix.org', userId: '@john:matrix.org', typing: true });
  // v12 room ids too
  assert.ok(edu('m.typing', { room_id: `!${'a'.repeat(43)}`, user_id: '@john:matrix.org', typing: false }).ok);
  assert.equal(errorCode(edu('m.typing', { room_id: '!somewhere:matrix.org', user_id: '@john:evil.org', typing: true })), 'foreign-user');
  for (const content of [
    { user_id: '@john:matrix.org', typing: true },
    { room_id: 'somewhere', user_id: '@john:matrix.org', typing: true },
    { room_id: '!r:matrix.org', user_id: 'john', typing: true },
    { room_id: '!r:matrix.org', user_id: '@john:matrix.org', typing: 'yes' },
    { room_id: '!r:matrix.org', user_id: { nested: true }, typing: true },
  ]) {
    assert.equal(errorCode(edu('m.typing', content)), 'malformed-content', JSON.stringify(content));
  }
});

test("m.receipt: the spec's example, flattened; foreign users, other receipt types and bad entries skipped", () => {
  const example = ok(
    edu('m.receipt', {
      '!some_room:example.org': {
        'm.read': { '@john:matrix.org': { event_ids: ['$read_this_event:matrix.org'], data: { ts: 1533358089009 } } },
      },
    }),
  );
  assert.deepEqual(example.edu, {
    type: 'm.receipt',
    receipts: [
      {
        roomId: '!some_room:example.org',
        receiptType: 'm.read',
        userId: '@john:matrix.org',
        eventIds: ['$read_this_event:matrix.org'],
        data: { ts: 1533358089009 },
        ts: 1533358089009,
        threadId: undefined,
      },
    ],
  });
  const mixed = ok(
    edu('m.receipt', {
      '!a:example.org': {
        'm.read': {
          '@john:matrix.org': { event_ids: ['$e1'.padEnd(44, 'x')], data: { ts: 5, thread_id: '$root' } },
          '@mallory:evil.org': { event_ids: ['$e:x'], data: { ts: 1 } },
          '@jane:matrix.org': { event_ids: [], data: { ts: 1 } },
          '@jim:matrix.org': { event_ids: ['not an id'] },
          '@joe:matrix.org': { event_ids: ['$e:x'] },
          '@jen:matrix.org': { event_ids: ['$e:x'], data: { thread_id: 7 } },
          notauser: { event_ids: ['$e:x'] },
        },
        'm.read.private': { '@john:matrix.org': { event_ids: ['$e:x'], data: { ts: 1 } } },
      },
      'not a room': { 'm.read': {} },
      '!b:example.org': 'junk',
      '!c:example.org': { 'm.read': [] },
    }),
  );
  assert.ok(mixed.edu.type === 'm.receipt');
  assert.deepEqual(
    mixed.edu.receipts.map((r) => [r.userId, r.threadId, r.ts]),
    [
      ['@john:matrix.org', '$root', 5],
      ['@joe:matrix.org', undefined, undefined],
      ['@jen:matrix.org', undefined, undefined],
    ],
  );
  assert.deepEqual(
    mixed.skipped.map((s) => s.what),
    [
      '!a:example.org m.read @mallory:evil.org',
      '!a:example.org m.read @jane:matrix.org',
      '!a:example.org m.read @jim:matrix.org',
      '!a:example.org m.read notauser',
      '!a:example.org m.read.private',
      'room not a room',
      'room !b:example.org',
      '!c:example.org m.read',
    ],
  );
});

test("m.presence: the spec's shape; entries of other servers' users or bad values skipped", () => {
  const result = ok(
    edu('m.presence', {
      push: [
        { user_id: '@john:matrix.org', presence: 'online', last_active_ago: 5000, currently_active: true, status_msg: 'Making cupcakes' },
        { user_id: '@jane:matrix.org', presence: 'offline' },
        { user_id: '@mallory:evil.org', presence: 'online', last_active_ago: 1 },
        { user_id: '@jim:matrix.org', presence: 'busy', last_active_ago: 1 },
        { user_id: '@joe:matrix.org', presence: 'online', last_active_ago: -5 },
        { user_id: '@jen:matrix.org', presence: 'online', status_msg: 5 },
        'junk',
      ],
    }),
  );
  assert.ok(result.edu.type === 'm.presence');
  assert.deepEqual(result.edu.updates, [
    { userId: '@john:matrix.org', presence: 'online', lastActiveAgo: 5000, currentlyActive: true, statusMsg: 'Making cupcakes' },
    { userId: '@jane:matrix.org', presence: 'offline', lastActiveAgo: undefined, currentlyActive: undefined, statusMsg: undefined },
  ]);
  assert.deepEqual(
    result.skipped.map((s) => s.what),
    ['push[2]', 'push[3]', 'push[4]', 'push[5]', 'push[6]'],
  );
  assert.equal(errorCode(edu('m.presence', {})), 'malformed-content');
  assert.equal(errorCode(edu('m.presence', { push: {} })), 'malformed-content');
});

test('m.device_list_update: required fields, prev_id chain, keys of this device only', () => {
  const keys = { user_id: '@john:matrix.org', device_id: 'QBUAZIFURK', algorithms: [], keys: {}, signatures: {} };
  const result = ok(
    edu('m.device_list_update', {
      user_id: '@john:matrix.org',
      device_id: 'QBUAZIFURK',
      device_display_name: 'Mobile',
      stream_id: 6,
      prev_id: [5],
      deleted: false,
      keys,
    }),
  );
  assert.deepEqual(result.edu, {
    type: 'm.device_list_update',
    userId: '@john:matrix.org',
    deviceId: 'QBUAZIFURK',
    deviceDisplayName: 'Mobile',
    streamId: 6,
    prevIds: [5],
    deleted: false,
    keys,
  });
  const minimal = ok(edu('m.device_list_update', { user_id: '@john:matrix.org', device_id: 'D', stream_id: '7' }));
  assert.ok(minimal.edu.type === 'm.device_list_update');
  assert.deepEqual([minimal.edu.streamId, minimal.edu.prevIds, minimal.edu.deleted, minimal.edu.keys], [7, [], false, undefined]);
  assert.equal(errorCode(edu('m.device_list_update', { user_id: '@john:evil.org', device_id: 'D', stream_id: 1 })), 'foreign-user');
  for (const content of [
    { user_id: '@john:matrix.org', stream_id: 1 },
    { user_id: '@john:matrix.org', device_id: '', stream_id: 1 },
    { user_id: '@john:matrix.org', device_id: 'D' },
    { user_id: '@john:matrix.org', device_id: 'D', stream_id: -1 },
    { user_id: '@john:matrix.org', device_id: 'D', stream_id: 1.5 },
    { user_id: '@john:matrix.org', device_id: 'D', stream_id: 1, prev_id: 5 },
    { user_id: '@john:matrix.org', device_id: 'D', stream_id: 1, prev_id: ['x'] },
    { user_id: '@john:matrix.org', device_id: 'D', stream_id: 1, deleted: 'true' },
    { user_id: '@john:matrix.org', device_id: 'D', stream_id: 1, keys: [] },
    { user_id: '@john:matrix.org', device_id: 'D', stream_id: 1, keys: { ...keys, device_id: 'OTHER' } },
    { user_id: '@john:matrix.org', device_id: 'QBUAZIFURK', stream_id: 1, keys: { ...keys, user_id: '@jane:matrix.org' } },
  ]) {
    assert.equal(errorCode(edu('m.device_list_update', content)), 'malformed-content', JSON.stringify(content));
  }
});

test("m.signing_key_update: the spec's example; keys must be the user's, with the right usage", () => {
  const master = {
    user_id: '@alice:matrix.org',
    usage: ['master'],
    keys: { 'ed25519:base64+master+public+key': 'base64+master+public+key' },
  };
  const selfSigning = {
    user_id: '@alice:matrix.org',
    usage: ['self_signing'],
    keys: { 'ed25519:base64+self+signing+public+key': 'base64+self+signing+master+public+key' },
    signatures: { '@alice:matrix.org': { 'ed25519:base64+master+public+key': 'signature+of+self+signing+key' } },
  };
  const result = ok(edu('m.signing_key_update', { user_id: '@alice:matrix.org', master_key: master, self_signing_key: selfSigning }));
  assert.deepEqual(result.edu, {
    type: 'm.signing_key_update',
    userId: '@alice:matrix.org',
    masterKey: master,
    selfSigningKey: selfSigning,
  });
  assert.ok(edu('m.signing_key_update', { user_id: '@alice:matrix.org' }).ok);
  assert.equal(errorCode(edu('m.signing_key_update', { user_id: '@alice:evil.org', master_key: master })), 'foreign-user');
  for (const content of [
    { user_id: '@alice:matrix.org', master_key: { ...master, user_id: '@bob:matrix.org' } },
    { user_id: '@alice:matrix.org', master_key: { ...master, usage: ['self_signing'] } },
    { user_id: '@alice:matrix.org', master_key: { ...master, keys: {} } },
    { user_id: '@alice:matrix.org', master_key: { ...master, keys: { k: 1 } } },
    { user_id: '@alice:matrix.org', self_signing_key: { ...selfSigning, usage: 'self_signing' } },
    { user_id: '@alice:matrix.org', self_signing_key: { ...selfSigning, signatures: [] } },
    { user_id: '@alice:matrix.org', master_key: 'x' },
  ]) {
    assert.equal(errorCode(edu('m.signing_key_update', content)), 'malformed-content', JSON.stringify(content));
  }
});

test("m.direct_to_device: the spec's example; only our users; message_id at most 32 code points", () => {
  const message = { algorithm: 'm.megolm.v1.aes-sha2', room_id: '!Cuyf34gef24t:localhost', session_id: 'X3lU', session_key: 'AgAA...' };
  const result = ok(
    edu('m.direct_to_device', {
      sender: '@john:matrix.org',
      type: 'm.room_key_request',
      message_id: 'hiezohf6Hoo7kaev',
      messages: { '@alice:example.org': { IWHQUZUIAH: message, '*': { all: true } } },
    }),
  );
  assert.ok(result.edu.type === 'm.direct_to_device');
  assert.equal(result.edu.sender, '@john:matrix.org');
  assert.equal(result.edu.eventType, 'm.room_key_request');
  assert.equal(result.edu.messageId, 'hiezohf6Hoo7kaev');
  assert.deepEqual(
    [...result.edu.messages.get('@alice:example.org')!],
    [
      ['IWHQUZUIAH', message],
      ['*', { all: true }],
    ],
  );

  const partial = ok(
    edu('m.direct_to_device', {
      sender: '@john:matrix.org',
      type: 't',
      message_id: '😀'.repeat(32),
      messages: {
        '@alice:example.org': { DEV: 'not an object', OK: {} },
        '@bob:elsewhere.org': { DEV: {} },
        notauser: {},
        '@carol:example.org': [],
        '@dave:example.org': { DEV: 'junk' },
        // As JSON.parse makes it: an own key named __proto__, not a prototype.
        '@__proto__:example.org': JSON.parse('{"__proto__": {"polluted": true}}') as object,
      },
    }),
  );
  assert.ok(partial.edu.type === 'm.direct_to_device');
  assert.deepEqual([...partial.edu.messages.keys()], ['@alice:example.org', '@__proto__:example.org']);
  assert.deepEqual([...partial.edu.messages.get('@alice:example.org')!.keys()], ['OK']);
  assert.deepEqual([...partial.edu.messages.get('@__proto__:example.org')!], [['__proto__', { polluted: true }]]);
  assert.deepEqual(
    partial.skipped.map((s) => s.what),
    [
      'messages.@alice:example.org.DEV',
      'messages.@bob:elsewhere.org',
      'messages.notauser',
      'messages.@carol:example.org',
      'messages.@dave:example.org.DEV',
    ],
  );
  assert.equal(({} as Record<string, unknown>).polluted, undefined);

  const base = { sender: '@john:matrix.org', type: 't', message_id: 'm', messages: {} };
  assert.equal(errorCode(edu('m.direct_to_device', { ...base, sender: '@john:evil.org' })), 'foreign-user');
  for (const content of [
    { ...base, message_id: 'x'.repeat(33) },
    { ...base, message_id: '' },
    { ...base, message_id: 5 },
    { ...base, type: '' },
    { ...base, messages: [] },
    { ...base, sender: 'john' },
  ]) {
    assert.equal(errorCode(edu('m.direct_to_device', content)), 'malformed-content', JSON.stringify(content));
  }
});

test('hostile input never throws', () => {
  let deep: unknown = 'x';
  for (let i = 0; i < 100_000; i++) deep = [deep];
  const nasty = [
    deep,
    { push: deep },
    { room_id: deep },
    { '!r:x': deep },
    { messages: { '@a:example.org': { D: deep } }, sender: '@s:matrix.org', type: 't', message_id: 'm' },
  ];
  const proxy = new Proxy(
    {},
    {
      get: () => {
        throw new Error('boom');
      },
      ownKeys: () => {
        throw new Error('boom');
      },
    },
  );
  for (const type of ['m.typing', 'm.receipt', 'm.presence', 'm.device_list_update', 'm.signing_key_update', 'm.direct_to_device', 'x']) {
    for (const content of [...nasty, proxy]) {
      assert.doesNotThrow(() => parseEdu({ edu_type: type, content }, ctx), type);
    }
  }
});
