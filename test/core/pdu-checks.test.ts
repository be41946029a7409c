import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Pdu, RoomEvent } from '../../src/core/events.js';
import { MAX_PDU_BYTES, finaliseEvent, hashAndSign } from '../../src/core/event-format.js';
import { generateLegacyEventId } from '../../src/core/hashes.js';
import type { JsonObject } from '../../src/core/json.js';
import {
  POLICY_SERVER_KEY_ID,
  checkParsedPdu,
  checkPduContentHash,
  checkPduSignatures,
  checkReceivedPdu,
  keyRequestsFor,
  parseReceivedPdu,
  policyServerFromContent,
  policyServerVerdict,
  requiredSignatures,
  trimReceivedPdu,
  type KeyLookup,
} from '../../src/core/pdu-checks.js';
import { redactEvent } from '../../src/core/redaction.js';
import { getRoomVersion, type RoomVersion } from '../../src/core/room-versions.js';
import type { ServerVerifyKey } from '../../src/core/server-keys.js';
import { encodePublicKey, generateSigningKey, signJson, type SigningKey } from '../../src/core/signing.js';

const v = (id: string) => getRoomVersion(id)!;
const TS = Date.UTC(2026, 0, 1);
const DAY = 86_400_000;
/** A room id of the v12 shape (its create event is not needed by these checks). */
const V12_ROOM = `!${'A'.repeat(43)}`;

const keys: Record<string, SigningKey> = {
  'a.test': generateSigningKey('a1'),
  'b.test': generateSigningKey('b1'),
  'c.test': generateSigningKey('c1'),
};

/** A key store holding every test server's key, valid for a day after TS. */
function keyStore(overrides: Record<string, Partial<ServerVerifyKey>> = {}): KeyLookup {
  return (serverName, keyId) => {
    const key = keys[serverName];
    if (!key || key.keyId !== keyId) return undefined;
    return { serverName, keyId, publicKey: encodePublicKey(key), validUntilTs: TS + DAY, old: false, ...overrides[serverName] };
  };
}

/** A finalised PDU signed by the sender's server (`signer` to override). */
function build(roomVersion: RoomVersion, fields: JsonObject, signer?: string): { pdu: Pdu; event: RoomEvent } {
  const sender = fields.sender as string;
  const server = signer ?? sender.slice(sender.indexOf(':') + 1);
  const base: JsonObject = {
    room_id: roomVersion.roomIdFromCreateEvent ? V12_ROOM : '!room:a.test',
    type: 'm.room.message',
    content: { body: 'hello', msgtype: 'm.text' },
    origin_server_ts: TS,
    depth: 5,
    prev_events: [],
    auth_events: [],
    ...fields,
  };
  if (roomVersion.eventIdFormat === 'v1' && !('event_id' in base)) base.event_id = generateLegacyEventId(server);
  return finaliseEvent(base, roomVersion, server, keys[server]!);
}

/** Adds `server`'s signature (over the redacted event, as event signatures are). */
function cosign(pdu: Pdu, roomVersion: RoomVersion, server: string, key: SigningKey = keys[server]!): Pdu {
  const signed = signJson(redactEvent(pdu, roomVersion), server, key);
  return { ...pdu, signatures: signed.signatures! };
}

const parsed = (pdu: unknown, roomVersion: RoomVersion) => {
  const result = parseReceivedPdu(pdu, roomVersion);
  assert.ok(result.ok, JSON.stringify(result));
  return result.event;
};

test('a correctly signed event passes steps 1-3', () => {
  const { pdu, event } = build(v('10'), { sender: '@alice:a.test' });
  const outcome = checkReceivedPdu(JSON.parse(JSON.stringify(pdu)), v('10'), keyStore());
  assert.equal(outcome.outcome, 'ok');
  assert.equal(outcome.outcome === 'ok' && outcome.event.eventId, event.eventId);
});

test('step 1: malformed events are dropped at the format stage', () => {
  const { pdu } = build(v('10'), { sender: '@alice:a.test' });
  const drop = (json: unknown, version = v('10'), room?: string) => {
    const outcome = checkReceivedPdu(json, version, keyStore(), room);
    assert.equal(outcome.outcome, 'drop');
    return outcome.outcome === 'drop' ? outcome.stage : undefined;
  };
  assert.equal(drop(null), 'format');
  assert.equal(drop('event'), 'format');
  assert.equal(drop({ ...pdu, sender: 'alice' }), 'format');
  assert.equal(drop({ ...pdu, depth: -1 }), 'format');
  assert.equal(drop({ ...pdu, content: { body: 1.5 } }), 'format', 'floats are not canonical JSON in v6+');
  assert.equal(drop({ ...pdu, content: { body: 'x'.repeat(MAX_PDU_BYTES) } }), 'format');
  assert.equal(drop({ ...pdu, event_id: '$x:a.test' }), 'format', 'v3+ PDUs carry no event_id');
  assert.equal(drop(pdu, v('10'), '!other:a.test'), 'format', 'an event of another room than the one asked for');
  // A v12 event that lists the create event in auth_events
  const v12 = v('12');
  const { event: create } = finaliseEvent(
    {
      type: 'm.room.create',
      state_key: '',
      sender: '@alice:a.test',
      content: { room_version: '12' },
      origin_server_ts: TS,
      depth: 1,
      prev_events: [],
      auth_events: [],
    },
    v12,
    'a.test',
    keys['a.test']!,
  );
  // finaliseEvent refuses to build it; hashAndSign does not check the format.
  const { pdu: bad } = hashAndSign(
    {
      type: 'm.room.message',
      sender: '@alice:a.test',
      room_id: create.roomId,
      content: {},
      origin_server_ts: TS,
      depth: 2,
      prev_events: [create.eventId],
      auth_events: [create.eventId],
    },
    v12,
    'a.test',
    keys['a.test']!,
  );
  assert.equal(drop(bad, v12), 'format');
  // Hostile nesting never throws.
  let deep: unknown = {};
  for (let i = 0; i < 5000; i++) deep = { a: deep };
  assert.equal(drop({ ...pdu, content: deep }), 'format');
});

test('step 2: the sender server must sign; unknown or expired keys are skipped', () => {
  const version = v('10');
  const { pdu } = build(version, { sender: '@alice:a.test' });
  const event = parsed(pdu, version);

  const unsigned = parsed({ ...pdu, signatures: {} }, version);
  assert.deepEqual(checkPduSignatures(unsigned, version, keyStore()), {
    ok: false,
    serverName: 'a.test',
    problem: 'no-signature',
    reason: 'not signed by a.test (sender)',
  });
  // Signed by another server only.
  const byOther = parsed({ ...cosign({ ...pdu, signatures: {} }, version, 'b.test') }, version);
  assert.equal((checkPduSignatures(byOther, version, keyStore()) as { problem: string }).problem, 'no-signature');
  // A key we do not know.
  assert.equal((checkPduSignatures(event, version, () => undefined) as { problem: string }).problem, 'no-usable-key');
  // A key that expired before the event (v5+).
  const expired = keyStore({ 'a.test': { validUntilTs: TS - 1 } });
  assert.equal((checkPduSignatures(event, version, expired) as { problem: string }).problem, 'no-usable-key');
  // An old key that expired after the event still counts.
  assert.ok(checkPduSignatures(event, version, keyStore({ 'a.test': { validUntilTs: TS, old: true } })).ok);
  // A lookup that returns a key of another server or id is not trusted.
  const confused: KeyLookup = (s, id) => ({
    serverName: 'b.test',
    keyId: id,
    publicKey: encodePublicKey(keys['a.test']!),
    validUntilTs: TS + DAY,
    old: false,
  });
  assert.equal((checkPduSignatures(event, version, confused) as { problem: string }).problem, 'no-usable-key');
  // A wrong signature by a known key.
  const forged = parsed(cosign({ ...pdu, signatures: {} }, version, 'a.test', generateSigningKey('a1')), version);
  assert.equal((checkPduSignatures(forged, version, keyStore()) as { problem: string }).problem, 'bad-signature');
  // An extra signature by an unknown key of the sender beside a good one is skipped.
  const extra = parsed(cosign(pdu, version, 'a.test', generateSigningKey('rotated')), version);
  assert.ok(checkPduSignatures(extra, version, keyStore()).ok);
  // The drop outcome says which stage.
  assert.deepEqual(
    { ...checkParsedPdu(unsigned, version, keyStore()), reason: undefined },
    { outcome: 'drop', stage: 'signatures', reason: undefined },
  );
});

test('step 2: room versions 1-4 ignore key validity; 5 and later enforce it', () => {
  const old = keyStore({ 'a.test': { validUntilTs: TS - 365 * DAY } });
  for (const id of ['1', '3', '4']) {
    const { pdu } = build(v(id), { sender: '@alice:a.test' });
    assert.ok(checkPduSignatures(parsed(pdu, v(id)), v(id), old).ok, id);
  }
  for (const id of ['5', '11', '12']) {
    const { pdu } = build(v(id), { sender: '@alice:a.test' });
    assert.equal(checkPduSignatures(parsed(pdu, v(id)), v(id), old).ok, false, id);
  }
});

test('step 2: rooms v1/v2 also need the event id server when it is not the sender server', () => {
  const version = v('1');
  // A join by @bob:b.test whose event id was made by a.test (the resident in a v1 join).
  const { pdu } = build(
    version,
    { sender: '@bob:b.test', type: 'm.room.member', state_key: '@bob:b.test', content: { membership: 'join' }, event_id: '$join:a.test' },
    'b.test',
  );
  const event = parsed(pdu, version);
  assert.deepEqual(requiredSignatures(event, version), {
    ok: true,
    required: [
      { serverName: 'b.test', reason: 'sender' },
      { serverName: 'a.test', reason: 'event-id' },
    ],
  });
  assert.deepEqual(
    { ...(checkPduSignatures(event, version, keyStore()) as object), reason: undefined },
    { ok: false, serverName: 'a.test', problem: 'no-signature', reason: undefined },
  );
  assert.ok(checkPduSignatures(parsed(cosign(pdu, version, 'a.test'), version), version, keyStore()).ok);
  // v3+ ids are hashes: only the sender.
  const { pdu: v3pdu } = build(v('3'), { sender: '@bob:b.test' });
  assert.deepEqual(requiredSignatures(parsed(v3pdu, v('3')), v('3')), { ok: true, required: [{ serverName: 'b.test', reason: 'sender' }] });
});

test('step 2: restricted joins (v8+) need the authorising server signature', () => {
  const member = (version: RoomVersion) =>
    build(version, {
      sender: '@bob:b.test',
      type: 'm.room.member',
      state_key: '@bob:b.test',
      content: { membership: 'join', join_authorised_via_users_server: '@admin:c.test' },
    });
  for (const id of ['8', '9', '10', '11', '12']) {
    const version = v(id);
    const { pdu } = member(version);
    const event = parsed(pdu, version);
    assert.deepEqual(
      requiredSignatures(event, version),
      {
        ok: true,
        required: [
          { serverName: 'b.test', reason: 'sender' },
          { serverName: 'c.test', reason: 'authorising-server' },
        ],
      },
      id,
    );
    assert.equal((checkPduSignatures(event, version, keyStore()) as { serverName: string }).serverName, 'c.test', id);
    assert.ok(checkPduSignatures(parsed(cosign(pdu, version, 'c.test'), version), version, keyStore()).ok, id);
  }
  // v7 has no restricted joins: the key means nothing there.
  const { pdu } = member(v('7'));
  assert.ok(checkPduSignatures(parsed(pdu, v('7')), v('7'), keyStore()).ok);
  // An authoriser that is not a user id cannot be checked.
  const { pdu: bad } = build(v('10'), {
    sender: '@bob:b.test',
    type: 'm.room.member',
    state_key: '@bob:b.test',
    content: { membership: 'join', join_authorised_via_users_server: 'admin' },
  });
  assert.equal((checkPduSignatures(parsed(bad, v('10')), v('10'), keyStore()) as { problem: string }).problem, 'unreadable-requirement');
});

test('step 2: an invite from a third-party invite needs no signature of the inviter server', () => {
  const version = v('10');
  const thirdParty = {
    membership: 'invite',
    third_party_invite: { display_name: 'b…', signed: { mxid: '@bob:b.test', token: 't', signatures: {} } },
  };
  // Built and signed by the invitee's server b.test on behalf of @alice:a.test.
  const { pdu } = build(
    version,
    { sender: '@alice:a.test', type: 'm.room.member', state_key: '@bob:b.test', content: thirdParty },
    'b.test',
  );
  const event = parsed(pdu, version);
  assert.deepEqual(requiredSignatures(event, version), { ok: true, required: [] });
  assert.ok(checkPduSignatures(event, version, keyStore()).ok);
  // A plain invite does need it.
  const { pdu: plain } = build(
    version,
    { sender: '@alice:a.test', type: 'm.room.member', state_key: '@bob:b.test', content: { membership: 'invite' } },
    'b.test',
  );
  assert.equal(checkPduSignatures(parsed(plain, version), version, keyStore()).ok, false);
});

test('step 2 for room version 12: the create event and a message, both signed by the sender server', () => {
  const v12 = v('12');
  const { pdu: createPdu, event: create } = finaliseEvent(
    {
      type: 'm.room.create',
      state_key: '',
      sender: '@alice:a.test',
      content: { room_version: '12' },
      origin_server_ts: TS,
      depth: 1,
      prev_events: [],
      auth_events: [],
    },
    v12,
    'a.test',
    keys['a.test']!,
  );
  const createOutcome = checkReceivedPdu(createPdu, v12, keyStore());
  assert.equal(createOutcome.outcome, 'ok');
  assert.equal(createOutcome.outcome === 'ok' && createOutcome.event.roomId, create.roomId);
  const { pdu } = build(v12, { sender: '@bob:b.test', room_id: create.roomId, prev_events: [create.eventId] });
  assert.equal(checkReceivedPdu(pdu, v12, keyStore(), create.roomId).outcome, 'ok');
  assert.equal(checkReceivedPdu({ ...pdu, signatures: {} }, v12, keyStore()).outcome, 'drop');
});

test('step 3: a content hash mismatch continues with our own redacted copy', () => {
  const version = v('10');
  const { pdu, event } = build(version, { sender: '@alice:a.test' });
  // Content changed in transit: the signature (over the redacted form) still holds.
  const tampered = { ...pdu, content: { body: 'evil', msgtype: 'm.text' } };
  const outcome = checkReceivedPdu(tampered, version, keyStore());
  assert.equal(outcome.outcome, 'redacted');
  assert.ok(outcome.outcome === 'redacted');
  assert.deepEqual(outcome.event.content, {});
  assert.equal(outcome.event.eventId, event.eventId);
  assert.equal('content' in outcome.event.pdu && JSON.stringify(outcome.event.pdu.content), '{}');
  // A redacted copy received from another server: same event id, verifies, redacted.
  const redactedCopy = redactEvent(pdu, version);
  const fromRedacted = checkReceivedPdu(redactedCopy, version, keyStore());
  assert.equal(fromRedacted.outcome, 'redacted');
  assert.equal(fromRedacted.outcome === 'redacted' && fromRedacted.event.eventId, event.eventId);
  // Extra top-level keys are in the content hash too.
  assert.equal(checkReceivedPdu({ ...pdu, extra: 1 }, version, keyStore()).outcome, 'redacted');
  // A matching hash keeps the full event.
  assert.equal(checkPduContentHash(parsed(pdu, version), version).outcome, 'ok');
  // Changing a field the signature covers is a signature failure, not a redaction (v1, where the
  // event id does not change with it).
  const { pdu: v1pdu } = build(v('1'), { sender: '@alice:a.test' });
  assert.equal(checkReceivedPdu({ ...v1pdu, origin_server_ts: TS + 1 }, v('1'), keyStore()).outcome, 'drop');
});

test('key requests: one per (server, key), with the latest validity any event needs', () => {
  const v10 = v('10');
  const v4 = v('4');
  const e1 = parsed(build(v10, { sender: '@alice:a.test', origin_server_ts: TS }).pdu, v10);
  const e2 = parsed(build(v10, { sender: '@alice:a.test', origin_server_ts: TS + 5000 }).pdu, v10);
  const e3 = parsed(build(v4, { sender: '@bob:b.test', origin_server_ts: TS + 9000 }).pdu, v4);
  const join = build(v10, {
    sender: '@bob:b.test',
    type: 'm.room.member',
    state_key: '@bob:b.test',
    content: { membership: 'join', join_authorised_via_users_server: '@admin:c.test' },
  });
  const e4 = parsed(cosign(join.pdu, v10, 'c.test'), v10);
  // A policy server signature under the sender's own name is not a key to fetch.
  const withPolicy = parsed(
    cosign(build(v10, { sender: '@alice:a.test', origin_server_ts: TS + 1 }).pdu, v10, 'a.test', {
      ...generateSigningKey('policy_server'),
    }),
    v10,
  );
  const requests = keyRequestsFor([e1, e2, e3, e4, withPolicy].map((event, i) => ({ event, roomVersion: i === 2 ? v4 : v10 })));
  assert.deepEqual(requests, [
    { serverName: 'a.test', keyId: 'ed25519:a1', minimumValidUntilTs: TS + 5000 },
    { serverName: 'b.test', keyId: 'ed25519:b1', minimumValidUntilTs: TS },
    { serverName: 'c.test', keyId: 'ed25519:c1', minimumValidUntilTs: TS },
  ]);
  assert.ok(!requests.some((r) => r.keyId === POLICY_SERVER_KEY_ID));
  // The policy server signature is skipped by the ordinary check too.
  assert.ok(checkPduSignatures(withPolicy, v10, keyStore()).ok);
});

test('trimming unsigned: member events keep stripped state; age becomes ageTs', () => {
  const trimmed = trimReceivedPdu({ type: 'm.room.message', unsigned: { age: 1500, secret: 'x', age_ts: 1 } }, TS);
  assert.deepEqual(trimmed, { pdu: { type: 'm.room.message' }, ageTs: TS - 1500 });
  const member = trimReceivedPdu(
    { type: 'm.room.member', unsigned: { invite_room_state: [], knock_room_state: [1], other: 2, age: 1.5 } },
    TS,
  );
  assert.deepEqual(member, {
    pdu: { type: 'm.room.member', unsigned: { invite_room_state: [], knock_room_state: [1] } },
    ageTs: undefined,
  });
  assert.deepEqual(trimReceivedPdu({ type: 'x', unsigned: 'junk' }, TS), { pdu: { type: 'x' }, ageTs: undefined });
  assert.deepEqual(trimReceivedPdu({ type: 'x' }, TS), { pdu: { type: 'x' }, ageTs: undefined });
  assert.deepEqual(trimReceivedPdu(42, TS), { pdu: 42, ageTs: undefined });
  // A trimmed event still passes (unsigned is not signed).
  const { pdu } = build(v('10'), { sender: '@alice:a.test' });
  const received = trimReceivedPdu({ ...pdu, unsigned: { age: 10, junk: { deep: true } } }, TS);
  assert.equal(checkReceivedPdu(received.pdu, v('10'), keyStore()).outcome, 'ok');
});

test('policy servers: config from m.room.policy content, and the signature verdict', () => {
  const policyKey = generateSigningKey('policy_server');
  assert.deepEqual(policyServerFromContent({ via: 'policy.test', public_keys: { ed25519: encodePublicKey(policyKey) } }), {
    serverName: 'policy.test',
    publicKey: encodePublicKey(policyKey),
  });
  for (const bad of [
    null,
    {},
    { via: 'p' },
    { via: 1, public_keys: { ed25519: 'k' } },
    { via: 'p', public_keys: {} },
    { via: '', public_keys: { ed25519: 'k' } },
  ]) {
    assert.equal(policyServerFromContent(bad), undefined, JSON.stringify(bad));
  }
  const policy = policyServerFromContent({ via: 'policy.test', public_keys: { ed25519: encodePublicKey(policyKey) } })!;
  const version = v('12');
  const { pdu } = build(version, { sender: '@alice:a.test' });
  const event = parsed(pdu, version);
  assert.equal(policyServerVerdict(event, version, policy), 'not-signed');
  const signed = parsed(cosign(pdu, version, 'policy.test', policyKey), version);
  assert.equal(policyServerVerdict(signed, version, policy), 'signed');
  const wrongKey = parsed(cosign(pdu, version, 'policy.test', generateSigningKey('policy_server')), version);
  assert.equal(policyServerVerdict(wrongKey, version, policy), 'not-signed');
  const policyState = parsed(
    build(version, { sender: '@alice:a.test', type: 'm.room.policy', state_key: '', content: { via: 'policy.test' } }).pdu,
    version,
  );
  assert.equal(policyServerVerdict(policyState, version, policy), 'exempt');
  // The ordinary signature check ignores the policy server's signature.
  assert.ok(checkPduSignatures(signed, version, keyStore()).ok);
});
