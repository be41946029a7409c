import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  checkContentHash,
  computeContentHash,
  computeEventId,
  computeReferenceHash,
  eventIdFromReferenceHash,
  generateLegacyEventId,
  roomIdForCreateEvent,
  roomIdFromCreateEventId,
} from '../../src/core/hashes.js';
import { isValidEventId } from '../../src/core/identifiers.js';
import type { JsonObject } from '../../src/core/json.js';
import { redactEvent } from '../../src/core/redaction.js';
import { getRoomVersion } from '../../src/core/room-versions.js';

const v = (id: string) => getRoomVersion(id)!;

// The expected hashes and ids below were computed independently, with Python's json.dumps
// (sort_keys, ensure_ascii=False, compact separators), hashlib and base64, not with this code.
function message(): JsonObject {
  return {
    type: 'm.room.message',
    room_id: '!wombat:myelin.test',
    sender: '@kim:myelin.test',
    origin: 'myelin.test',
    origin_server_ts: 1700000000000,
    depth: 7,
    prev_events: ['$prevprevprevprevprevprevprevprevprevprevpre'],
    auth_events: ['$authauthauthauthauthauthauthauthauthauthaut'],
    content: { msgtype: 'm.text', body: 'Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich 🥊' },
    unsigned: { age_ts: 1700000000000 },
    signatures: { 'myelin.test': { 'ed25519:a': 'c2lnbmF0dXJl' } },
    hashes: { sha256: 'WOy8yKrVgoFNN4StF9GAbZm39XmZqyf/YbCg3hYaKCs' },
  };
}

test('content hash: the appendix test-vector events', () => {
  const minimal = {
    room_id: '!x:domain',
    sender: '@a:domain',
    origin: 'domain',
    origin_server_ts: 1000000,
    signatures: {},
    hashes: {},
    type: 'X',
    content: {},
    prev_events: [],
    auth_events: [],
    depth: 3,
    unsigned: { age_ts: 1000000 },
  };
  assert.equal(computeContentHash(minimal), '5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos');
  const withBody = {
    content: { body: 'Here is the message content' },
    event_id: '$0:domain',
    origin: 'domain',
    origin_server_ts: 1000000,
    type: 'm.room.message',
    room_id: '!r:domain',
    sender: '@u:domain',
    signatures: {},
    unsigned: { age_ts: 1000000 },
  };
  assert.equal(computeContentHash(withBody), 'onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g');
});

test('content hash ignores unsigned, signatures, hashes and Synapse internal keys', () => {
  const base = message();
  const hash = computeContentHash(base);
  assert.equal(hash, 'WOy8yKrVgoFNN4StF9GAbZm39XmZqyf/YbCg3hYaKCs');
  const noisy = {
    ...base,
    unsigned: { other: 1 },
    signatures: {},
    hashes: { sha256: 'x', other: 'y' },
    age_ts: 5,
    outlier: true,
    destinations: { a: 1 },
  };
  assert.equal(computeContentHash(noisy), hash);
  assert.notEqual(computeContentHash({ ...base, depth: 8 }), hash);
});

test('checkContentHash', () => {
  const event = message();
  assert.ok(checkContentHash(event));
  assert.ok(!checkContentHash({ ...event, content: { body: 'changed' } }));
  assert.ok(!checkContentHash({ ...event, hashes: {} }));
  assert.ok(!checkContentHash({ ...event, hashes: 'x' }));
  assert.ok(!checkContentHash({ ...event, hashes: { sha256: '!!!' } }));
  // A float in the event: not encodable strictly, so the hash cannot match.
  assert.ok(!checkContentHash({ ...event, depth: 7.5 }));
  // Padded / URL-safe spellings of the same hash are accepted.
  assert.ok(checkContentHash({ ...event, hashes: { sha256: 'WOy8yKrVgoFNN4StF9GAbZm39XmZqyf_YbCg3hYaKCs=' } }));
});

test('event ids: v3 uses standard base64, v4+ URL-safe, for the same event', () => {
  const event = message();
  const v3 = computeEventId(event, v('3'));
  const v4 = computeEventId(event, v('4'));
  assert.equal(v3, '$JC9UAaIebCF5s+/iWowtE1Jqgdyo4Tpz0u4sgzQYD6I');
  assert.equal(v4, '$JC9UAaIebCF5s-_iWowtE1Jqgdyo4Tpz0u4sgzQYD6I');
  for (const id of ['5', '6', '7', '8', '9', '10']) assert.equal(computeEventId(event, v(id)), v4);
  assert.ok(isValidEventId(v3, 'v3') && !isValidEventId(v3, 'v4'));
  assert.ok(isValidEventId(v4, 'v4') && !isValidEventId(v4, 'v3'));
  // The id depends only on the redacted form: redacting first, or changing what redaction
  // drops (body, unsigned, signatures), does not change it.
  assert.equal(computeEventId(redactEvent(event, v('4')), v('4')), v4);
  assert.equal(computeEventId({ ...event, content: {}, unsigned: {}, signatures: {} }, v('4')), v4);
  assert.equal(eventIdFromReferenceHash(computeReferenceHash(redactEvent(event, v('3'))), 'v3'), v3);
});

test('event ids: v11+ drop origin from the redacted form, so the id differs', () => {
  const event = message();
  assert.equal(computeEventId(event, v('11')), '$BNlMxZXO5vu4KVWsPzZI6vKzMoriC_TKP1zcj764GSI');
  assert.equal(computeEventId(event, v('12')), '$BNlMxZXO5vu4KVWsPzZI6vKzMoriC_TKP1zcj764GSI');
  assert.equal(computeEventId({ ...event, origin: 'elsewhere' }, v('11')), computeEventId(event, v('11')));
  assert.notEqual(computeEventId({ ...event, origin: 'elsewhere' }, v('10')), computeEventId(event, v('10')));
});

test('v1/v2 event ids are not hashes', () => {
  assert.throws(() => computeEventId(message(), v('1')), /not hashes/);
  assert.throws(() => eventIdFromReferenceHash(new Uint8Array(32), 'v1'));
  const id = generateLegacyEventId('myelin.test');
  assert.match(id, /^\$[A-Za-z0-9]{18}:myelin\.test$/);
  assert.ok(isValidEventId(id, 'v1'));
  assert.notEqual(generateLegacyEventId('myelin.test'), id);
  // With a fixed byte source the id is reproducible; bytes ≥ 248 are skipped to avoid bias
  // (each call yields 12 usable bytes here, so the source is asked twice).
  const fixed = (n: number) => new Uint8Array(n).map((_, i) => (i % 2 ? 255 : i));
  assert.equal(generateLegacyEventId('s', fixed), '$acegikmoqsuwacegik:s');
});

test('v12 room ids are the create event id with ! for $', () => {
  const create: JsonObject = {
    type: 'm.room.create',
    state_key: '',
    sender: '@kim:myelin.test',
    origin: 'myelin.test',
    origin_server_ts: 1700000000000,
    depth: 1,
    prev_events: [],
    auth_events: [],
    content: {
      room_version: '12',
      additional_creators: ['@lee:myelin.test'],
      'm.federate': true,
      custom: { ünïcode: '✓' },
    },
    signatures: {},
    unsigned: { age_ts: 1 },
    hashes: { sha256: 'YOfCmMjV9KYxPd/xrspX7GfAr4EAOY5qfhymWutXtbs' },
  };
  assert.equal(computeContentHash(create), 'YOfCmMjV9KYxPd/xrspX7GfAr4EAOY5qfhymWutXtbs');
  const roomId = roomIdForCreateEvent(create, v('12'));
  assert.equal(roomId, '!4dEAfJHDIcb1BiKLujWkE-d3e3tCe25RRYYFfhkgcD4');
  assert.equal(roomIdFromCreateEventId(computeEventId(create, v('12'))), roomId);
  assert.throws(() => roomIdForCreateEvent(create, v('11')), /not derived/);
});
