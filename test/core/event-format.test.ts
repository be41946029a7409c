import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeBase64 } from '../../src/core/base64.js';
import { MAX_PDU_BYTES, finaliseEvent, hashAndSign, parsePdu, verifyEventSignature } from '../../src/core/event-format.js';
import { InvalidEventError } from '../../src/core/events.js';
import type { Pdu } from '../../src/core/events.js';
import { checkContentHash, computeEventId, generateLegacyEventId } from '../../src/core/hashes.js';
import type { JsonObject, JsonValue } from '../../src/core/json.js';
import { redactEvent } from '../../src/core/redaction.js';
import { getRoomVersion } from '../../src/core/room-versions.js';
import type { RoomVersion } from '../../src/core/room-versions.js';
import { signingKeyFromSeed, verifyJsonSignature } from '../../src/core/signing.js';

const v = (id: string): RoomVersion => getRoomVersion(id)!;
const SERVER = 'myelin.test';
const key = signingKeyFromSeed('test', new Uint8Array(32).fill(1));
const vectorKey = signingKeyFromSeed('1', decodeBase64('YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1'));

const PREV = '$4FbpZrgPQTwoLD9H5y7jcikucCypUOn78mXhQX7WliY';
const AUTH = '$hy1eZFYcgNxMFNNBgCD5fyOzyWRcBkxfNcrUI5ZpZlE';

function expectInvalid(fn: () => unknown, errcode: string, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidEventError, `expected InvalidEventError, got ${String(err)}`);
    assert.equal(err.errcode, errcode, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

function createEvent(): JsonObject {
  return {
    type: 'm.room.create',
    state_key: '',
    sender: `@kim:${SERVER}`,
    origin_server_ts: 1700000000000,
    depth: 1,
    prev_events: [],
    auth_events: [],
    content: { room_version: '12' },
  };
}

function message(roomId: string, extra: JsonObject = {}): JsonObject {
  return {
    type: 'm.room.message',
    room_id: roomId,
    sender: `@kim:${SERVER}`,
    origin_server_ts: 1700000000001,
    depth: 2,
    prev_events: [PREV],
    auth_events: [AUTH],
    content: { msgtype: 'm.text', body: 'hello' },
    ...extra,
  };
}

test('event signing test vectors (appendices), v1 redaction rules', () => {
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
  assert.deepEqual(hashAndSign(minimal, v('1'), 'domain', vectorKey).pdu, {
    auth_events: [],
    content: {},
    depth: 3,
    hashes: { sha256: '5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos' },
    origin: 'domain',
    origin_server_ts: 1000000,
    prev_events: [],
    room_id: '!x:domain',
    sender: '@a:domain',
    signatures: {
      domain: {
        'ed25519:1': 'KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg',
      },
    },
    type: 'X',
    unsigned: { age_ts: 1000000 },
  });

  const redactable = {
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
  const signed = hashAndSign(redactable, v('1'), 'domain', vectorKey).pdu;
  assert.deepEqual(signed, {
    content: { body: 'Here is the message content' },
    event_id: '$0:domain',
    hashes: { sha256: 'onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g' },
    origin: 'domain',
    origin_server_ts: 1000000,
    type: 'm.room.message',
    room_id: '!r:domain',
    sender: '@u:domain',
    signatures: {
      domain: {
        'ed25519:1': 'Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA',
      },
    },
    unsigned: { age_ts: 1000000 },
  });
  // The signature covers the redacted form: it verifies on it, and the full event's hash matches.
  assert.ok(verifyJsonSignature(redactEvent(signed, v('1')), 'domain', 'ed25519:1', vectorKey.publicKey));
  assert.ok(checkContentHash(signed));
  // verifyEventSignature redacts for us: full and redacted copies both verify; tampering with a
  // field redaction keeps breaks it, tampering with the body only breaks the content hash.
  assert.ok(verifyEventSignature(signed, v('1'), 'domain', 'ed25519:1', vectorKey.publicKey));
  assert.ok(verifyEventSignature(redactEvent(signed, v('1')), v('1'), 'domain', 'ed25519:1', vectorKey.publicKey));
  const tamperedBody = { ...signed, content: { body: 'changed' } };
  assert.ok(verifyEventSignature(tamperedBody, v('1'), 'domain', 'ed25519:1', vectorKey.publicKey));
  assert.ok(!checkContentHash(tamperedBody));
  assert.ok(!verifyEventSignature({ ...signed, sender: '@x:domain' }, v('1'), 'domain', 'ed25519:1', vectorKey.publicKey));
  assert.ok(!verifyEventSignature({ content: {} }, v('1'), 'domain', 'ed25519:1', vectorKey.publicKey));
});

test('finaliseEvent, v12: create event, room id, then a message in that room', () => {
  const v12 = v('12');
  const input = createEvent();
  const before = structuredClone(input);
  const { pdu: createPdu, event: create } = finaliseEvent(input, v12, SERVER, key);
  assert.deepEqual(input, before, 'input untouched');
  assert.ok(checkContentHash(createPdu));
  assert.ok(verifyJsonSignature(redactEvent(createPdu, v12), SERVER, key.keyId, key.publicKey));
  assert.equal(create.eventId, computeEventId(createPdu, v12));
  assert.equal(create.roomId, `!${create.eventId.slice(1)}`);
  assert.equal('room_id' in createPdu, false);
  assert.equal(create.stateKey, '');
  assert.deepEqual(create.prevEventIds, []);

  const { pdu, event } = finaliseEvent(message(create.roomId), v12, SERVER, key);
  assert.equal(event.roomId, create.roomId);
  assert.equal(event.type, 'm.room.message');
  assert.equal(event.stateKey, undefined);
  assert.equal(event.sender, `@kim:${SERVER}`);
  assert.equal(event.depth, 2);
  assert.equal(event.originServerTs, 1700000000001);
  assert.deepEqual(event.prevEventIds, [PREV]);
  assert.deepEqual(event.authEventIds, [AUTH]);
  assert.equal(event.pdu, pdu);
  assert.match(event.eventId, /^\$[A-Za-z0-9_-]{43}$/);

  // What we send is what a receiver parses, with the same id.
  const received = parsePdu(JSON.parse(JSON.stringify(pdu)), v12);
  assert.equal(received.eventId, event.eventId);
  assert.deepEqual(received.content, event.content);
  // A trusted id skips the hash.
  assert.equal(parsePdu(pdu, v12, { eventId: '$trusted' }).eventId, '$trusted');

  // v12: listing the create event in auth_events is refused.
  expectInvalid(
    () => finaliseEvent(message(create.roomId, { auth_events: [create.eventId] }), v12, SERVER, key),
    'M_BAD_JSON',
    /create event/,
  );
  // A create event with a room_id, or a non-create event without, is refused.
  expectInvalid(() => finaliseEvent({ ...createEvent(), room_id: create.roomId }, v12, SERVER, key), 'M_BAD_JSON', /room_id/);
  const { room_id: _omit, ...noRoom } = message(create.roomId);
  expectInvalid(() => finaliseEvent(noRoom, v12, SERVER, key), 'M_BAD_JSON', /room_id/);
  // Old-style room ids are not v12 room ids.
  expectInvalid(() => finaliseEvent(message('!abc:myelin.test'), v12, SERVER, key), 'M_BAD_JSON', /room_id/);
  // An m.room.create with a non-empty state key is not "the" create event: it needs a room_id.
  expectInvalid(() => finaliseEvent({ ...createEvent(), state_key: 'x' }, v12, SERVER, key), 'M_BAD_JSON', /room_id/);
});

test('finaliseEvent keeps other signatures and other hashes', () => {
  const { pdu } = finaliseEvent(
    message('!room:myelin.test', { signatures: { other: { 'ed25519:o': 'c2ln' } }, hashes: { sha512: 'eA' } }),
    v('10'),
    SERVER,
    key,
  );
  assert.deepEqual(Object.keys(pdu.signatures as JsonObject).sort(), ['myelin.test', 'other']);
  assert.equal((pdu.hashes as JsonObject).sha512, 'eA');
  assert.ok(checkContentHash(pdu));
});

test('finaliseEvent, v1/v2: the caller supplies event_id; ids are read, not computed', () => {
  const v1 = v('1');
  const eventId = generateLegacyEventId(SERVER);
  const refs = [[PREV.replace('$', '$x') + ':myelin.test', { sha256: 'aGFzaA' }]] as JsonValue;
  const { pdu, event } = finaliseEvent(
    { ...message('!room:myelin.test'), event_id: eventId, prev_events: refs, auth_events: [] },
    v1,
    SERVER,
    key,
  );
  assert.equal(event.eventId, eventId);
  assert.deepEqual(event.prevEventIds, [PREV.replace('$', '$x') + ':myelin.test']);
  assert.equal(pdu.event_id, eventId);
  expectInvalid(
    () => finaliseEvent({ ...message('!room:myelin.test'), prev_events: refs, auth_events: [] }, v1, SERVER, key),
    'M_BAD_JSON',
    /event_id/,
  );
  // v1 needs [id, hashes] pairs; plain ids are the v3+ shape.
  expectInvalid(
    () => finaliseEvent({ ...message('!room:myelin.test'), event_id: eventId }, v1, SERVER, key),
    'M_BAD_JSON',
    /prev_events\[0\]/,
  );
  // And v3+ refuses pairs and an event_id.
  expectInvalid(() => finaliseEvent({ ...message('!room:myelin.test'), prev_events: refs }, v('3'), SERVER, key), 'M_BAD_JSON');
  expectInvalid(() => finaliseEvent({ ...message('!room:myelin.test'), event_id: eventId }, v('4'), SERVER, key), 'M_BAD_JSON', /event_id/);
});

test('event ids in prev_events/auth_events must have the room version format', () => {
  const v3ref = '$JC9UAaIebCF5s+/iWowtE1Jqgdyo4Tpz0u4sgzQYD6I';
  assert.ok(finaliseEvent(message('!r:x.org', { prev_events: [v3ref] }), v('3'), SERVER, key));
  expectInvalid(() => finaliseEvent(message('!r:x.org', { prev_events: [v3ref] }), v('4'), SERVER, key), 'M_BAD_JSON', /prev_events\[0\]/);
  expectInvalid(
    () => finaliseEvent(message('!r:x.org', { auth_events: ['$nope'] }), v('5'), SERVER, key),
    'M_BAD_JSON',
    /auth_events\[0\]/,
  );
});

test('redacts: top-level before v11, in content from v11', () => {
  const target = AUTH;
  const old = finaliseEvent({ ...message('!r:x.org'), type: 'm.room.redaction', redacts: target, content: {} }, v('10'), SERVER, key).event;
  assert.equal(old.redacts, target);
  const fresh = finaliseEvent(
    { ...message('!r:x.org'), type: 'm.room.redaction', content: { redacts: target } },
    v('11'),
    SERVER,
    key,
  ).event;
  assert.equal(fresh.redacts, target);
  // Only redaction events redact; an odd `redacts` is read as nothing rather than refused.
  const notRedaction = finaliseEvent({ ...message('!r:x.org'), redacts: target }, v('10'), SERVER, key).event;
  assert.equal(notRedaction.redacts, undefined);
  const odd = finaliseEvent({ ...message('!r:x.org'), type: 'm.room.redaction', content: { redacts: 5 } }, v('11'), SERVER, key).event;
  assert.equal(odd.redacts, undefined);
});

test('size limits: 64 KiB for the whole PDU', () => {
  const v12 = v('12');
  // Find a body length just under and just over the limit.
  const base = finaliseEvent(message('!r:x.org', { content: { body: '' } }), v('10'), SERVER, key).pdu;
  const overhead = Buffer.byteLength(JSON.stringify(base)); // compact JSON = canonical here
  const fits = 'a'.repeat(MAX_PDU_BYTES - overhead);
  const { pdu } = finaliseEvent(message('!r:x.org', { content: { body: fits } }), v('10'), SERVER, key);
  assert.equal(Buffer.byteLength(JSON.stringify(pdu)), MAX_PDU_BYTES);
  assert.ok(parsePdu(pdu, v('10')));
  expectInvalid(() => finaliseEvent(message('!r:x.org', { content: { body: `${fits}a` } }), v('10'), SERVER, key), 'M_TOO_LARGE');
  expectInvalid(() => parsePdu({ ...pdu, content: { body: `${fits}a` } }, v('10')), 'M_TOO_LARGE');
  // Multi-byte characters count as bytes; unsigned counts too.
  expectInvalid(() => finaliseEvent(message('!r:x.org', { content: { body: 'é'.repeat(33000) } }), v12, SERVER, key), 'M_TOO_LARGE');
  expectInvalid(
    () => finaliseEvent(message('!r:x.org', { unsigned: { big: 'x'.repeat(MAX_PDU_BYTES) } }), v12, SERVER, key),
    'M_TOO_LARGE',
  );
});

test('size limits: 255 for type, state_key, sender, room_id; bytes from v11, code points before', () => {
  const long = 'x'.repeat(256);
  expectInvalid(() => finaliseEvent(message('!r:x.org', { type: long }), v('10'), SERVER, key), 'M_TOO_LARGE', /"type"/);
  expectInvalid(() => finaliseEvent(message('!r:x.org', { state_key: long }), v('10'), SERVER, key), 'M_TOO_LARGE', /"state_key"/);
  expectInvalid(
    () => finaliseEvent(message('!r:x.org', { sender: `@${'a'.repeat(250)}:x.org` }), v('10'), SERVER, key),
    'M_TOO_LARGE',
    /"sender"/,
  );
  expectInvalid(() => finaliseEvent(message(`!${'r'.repeat(250)}:x.org`), v('10'), SERVER, key), 'M_TOO_LARGE', /"room_id"/);
  // 200 × 'é' is 200 code points but 400 bytes.
  const wide = 'é'.repeat(200);
  assert.equal(finaliseEvent(message('!r:x.org', { state_key: wide }), v('10'), SERVER, key).event.stateKey, wide);
  expectInvalid(() => finaliseEvent(message('!r:x.org', { state_key: wide }), v('11'), SERVER, key), 'M_TOO_LARGE', /bytes/);
  // Surrogate pairs count as one code point.
  const emoji = '🥊'.repeat(255);
  assert.ok(finaliseEvent(message('!r:x.org', { type: emoji }), v('10'), SERVER, key));
  expectInvalid(() => finaliseEvent(message('!r:x.org', { type: `${emoji}x` }), v('10'), SERVER, key), 'M_TOO_LARGE');
});

test('strict canonical JSON from v6; v1–5 accept floats and big integers', () => {
  for (const bad of [1.5, 2 ** 53, -(2 ** 53)]) {
    expectInvalid(() => finaliseEvent(message('!r:x.org', { content: { n: bad } }), v('6'), SERVER, key), 'M_BAD_JSON', /canonical/);
    const { pdu } = finaliseEvent(message('!r:x.org', { content: { n: bad } }), v('5'), SERVER, key);
    assert.equal(parsePdu(pdu, v('5')).content.n, bad);
    expectInvalid(() => parsePdu(pdu, v('6')), 'M_BAD_JSON', /content\.n/);
  }
  expectInvalid(() => parsePdu({ ...message('!r:x.org'), depth: 2 ** 53 }, v('3')), 'M_BAD_JSON', /depth/);
});

function validV10Pdu(): Pdu {
  return finaliseEvent(
    message('!r:x.org', { state_key: '', type: 'm.room.topic', content: { topic: 't', nested: { a: [1, 'b'] } } }),
    v('10'),
    SERVER,
    key,
  ).pdu;
}

test('required fields and their types', () => {
  const good = validV10Pdu();
  assert.ok(parsePdu(good, v('10')));
  const mutations: [string, JsonValue | undefined, RegExp][] = [
    ['type', undefined, /"type"/],
    ['type', 5, /"type"/],
    ['state_key', null, /"state_key"/],
    ['sender', undefined, /"sender"/],
    ['sender', 'kim', /"sender"/],
    ['sender', '@kim:bad_server', /"sender"/],
    ['content', undefined, /"content"/],
    ['content', [], /"content"/],
    ['content', 'x', /"content"/],
    ['origin_server_ts', undefined, /origin_server_ts/],
    ['origin_server_ts', '1', /origin_server_ts/],
    ['depth', undefined, /depth/],
    ['depth', -1, /depth/],
    ['depth', '2', /depth/],
    ['prev_events', undefined, /prev_events/],
    ['prev_events', {}, /prev_events/],
    ['prev_events', [5], /prev_events\[0\]/],
    ['auth_events', 'x', /auth_events/],
    ['hashes', undefined, /hashes/],
    ['hashes', {}, /hashes/],
    ['hashes', { sha256: 1 }, /hashes/],
    ['signatures', undefined, /signatures/],
    ['signatures', [], /signatures/],
    ['signatures', { 'x.org': 'sig' }, /signatures\.x\.org/],
    ['signatures', { 'x.org': { 'ed25519:a': 1 } }, /signatures\.x\.org/],
    ['room_id', undefined, /room_id/],
    ['room_id', 'r:x.org', /room_id/],
    ['event_id', '$a:x.org', /event_id/],
  ];
  for (const [field, value, message] of mutations) {
    const pdu: Pdu = { ...good };
    if (value === undefined) delete pdu[field];
    else pdu[field] = value;
    expectInvalid(() => parsePdu(pdu, v('10')), 'M_BAD_JSON', message);
  }
  for (const notObject of [null, 5, 'x', [], true, undefined]) {
    expectInvalid(() => parsePdu(notObject, v('10')), 'M_BAD_JSON');
  }
  // Historical senders are accepted.
  assert.ok(parsePdu({ ...good, sender: '@Kim Smith:x.org' }, v('10')));
});

/** A small seeded PRNG (mulberry32) so failures are reproducible. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('fuzz: any mutation of a PDU parses or throws InvalidEventError, nothing else', () => {
  const random = prng(20241128);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  let deep: JsonValue = 1;
  for (let i = 0; i < 3000; i++) deep = [deep];
  const junk: (JsonValue | undefined)[] = [
    undefined,
    null,
    true,
    0,
    -0,
    -1,
    1.5,
    2 ** 53,
    1e300,
    '',
    'x',
    '\ud800',
    '$',
    '!',
    '@:',
    '@a:b',
    'x'.repeat(70000),
    [],
    [[]],
    [['$a:b', {}]],
    [null],
    {},
    { sha256: 'x' },
    { a: { b: 'c' } },
    deep,
    JSON.parse('{"__proto__": {"polluted": true}}') as JsonValue,
  ];
  const fields = [
    'type',
    'state_key',
    'sender',
    'content',
    'origin_server_ts',
    'depth',
    'prev_events',
    'auth_events',
    'hashes',
    'signatures',
    'room_id',
    'event_id',
    'redacts',
    'unsigned',
    'origin',
    '__proto__',
    'constructor',
  ];
  const versions = ['1', '3', '4', '6', '10', '11', '12'].map(v);
  const bases = versions.map((version) => {
    if (version.roomIdFromCreateEvent) return finaliseEvent(createEvent(), version, SERVER, key).pdu;
    const extra: JsonObject =
      version.eventIdFormat === 'v1' ? { event_id: '$e:x.org', prev_events: [['$p:x.org', {}]], auth_events: [] } : {};
    const prevFormat: JsonObject =
      version.eventIdFormat === 'v3' ? { prev_events: ['$JC9UAaIebCF5s+/iWowtE1Jqgdyo4Tpz0u4sgzQYD6I'], auth_events: [] } : {};
    return finaliseEvent(message('!r:x.org', { ...extra, ...prevFormat }), version, SERVER, key).pdu;
  });
  let parsed = 0;
  let refused = 0;
  for (let round = 0; round < 3000; round++) {
    const index = Math.floor(random() * versions.length);
    const version = versions[index]!;
    const pdu = structuredClone(bases[index]!) as Record<string, JsonValue>;
    const mutations = 1 + Math.floor(random() * 3);
    for (let m = 0; m < mutations; m++) {
      const field = pick(fields);
      const value = pick(junk);
      const target: Record<string, JsonValue> =
        random() < 0.3 && typeof pdu.content === 'object' && pdu.content !== null && !Array.isArray(pdu.content) ? pdu.content : pdu;
      if (value === undefined) delete target[field];
      else Object.defineProperty(target, field, { value, enumerable: true, writable: true, configurable: true });
    }
    try {
      const event = parsePdu(pdu, version);
      assert.equal(typeof event.eventId, 'string');
      assert.equal(typeof event.roomId, 'string');
      parsed++;
    } catch (err) {
      if (!(err instanceof InvalidEventError)) {
        assert.fail(`round ${round}: ${String(err)} for ${JSON.stringify(pdu).slice(0, 300)}`);
      }
      assert.ok(err.errcode === 'M_BAD_JSON' || err.errcode === 'M_TOO_LARGE', err.errcode);
      refused++;
    }
  }
  assert.ok(parsed > 100 && refused > 100, `parsed ${parsed}, refused ${refused}`);
  // finaliseEvent keeps the same promise.
  for (const bad of [null, [], { type: 'x' }, { ...message('!r:x.org'), content: { f: 0.5 } }]) {
    expectInvalid(() => finaliseEvent(bad as JsonObject, v('12'), SERVER, key), 'M_BAD_JSON');
  }
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});
