import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { toClientEvent, toStrippedState } from '../../src/core/client-events.js';
import { getRoomVersion } from '../../src/core/room-versions.js';
import { makeCreateEvent, makeEvent } from './helpers/events.js';

const ALICE = '@alice:a.test';
const MOD = '@mod:a.test';
const ROOM = '!room:a.test';
const V1 = getRoomVersion('1')!;
const V10 = getRoomVersion('10')!;
const V11 = getRoomVersion('11')!;
const V12 = getRoomVersion('12')!;
const NOW = 1_700_000_100_000;

const message = makeEvent({
  id: '$msg',
  type: 'm.room.message',
  sender: ALICE,
  roomId: ROOM,
  content: { msgtype: 'm.text', body: 'secret' },
  originServerTs: 1_700_000_000_000,
});

describe('toClientEvent: client format', () => {
  test('the ClientEvent fields, with room_id by default', () => {
    const out = toClientEvent(message, { roomVersion: V11, now: NOW });
    assert.deepEqual(out, {
      event_id: '$msg',
      type: 'm.room.message',
      content: { msgtype: 'm.text', body: 'secret' },
      sender: ALICE,
      origin_server_ts: 1_700_000_000_000,
      room_id: ROOM,
      unsigned: { age: 100_000 },
    });
    // No federation-only keys leak through.
    for (const key of ['hashes', 'signatures', 'depth', 'prev_events', 'auth_events', 'origin']) {
      assert.ok(!(key in out), key);
    }
  });

  test('/sync omits room_id', () => {
    const out = toClientEvent(message, { roomVersion: V11, now: NOW, includeRoomId: false });
    assert.ok(!('room_id' in out));
  });

  test('content is shared, not copied', () => {
    const out = toClientEvent(message, { roomVersion: V11, now: NOW });
    assert.equal(out.content, message.content);
  });

  test('age uses ageTs when given', () => {
    const out = toClientEvent(message, { roomVersion: V11, now: NOW, ageTs: NOW - 7 });
    assert.equal(out.unsigned.age, 7);
  });

  test('transaction_id only when given', () => {
    assert.ok(!('transaction_id' in toClientEvent(message, { roomVersion: V11, now: NOW }).unsigned));
    const out = toClientEvent(message, { roomVersion: V11, now: NOW, transactionId: 'txn1' });
    assert.equal(out.unsigned.transaction_id, 'txn1');
  });

  test('state events: state_key and prev_content / prev_sender / replaces_state / membership', () => {
    const topic = makeEvent({ id: '$topic', type: 'm.room.topic', sender: ALICE, stateKey: '', roomId: ROOM, content: { topic: 'new' } });
    const out = toClientEvent(topic, {
      roomVersion: V11,
      now: NOW,
      prevContent: { topic: 'old' },
      prevSender: MOD,
      replacesState: '$oldtopic',
      membership: 'join',
    });
    assert.equal(out.state_key, '');
    assert.deepEqual(out.unsigned, {
      age: out.unsigned.age!,
      prev_content: { topic: 'old' },
      prev_sender: MOD,
      replaces_state: '$oldtopic',
      membership: 'join',
    });
    // A message event never carries state_key or the prev_* fields.
    const msg = toClientEvent(message, { roomVersion: V11, now: NOW, prevContent: { x: 1 }, replacesState: '$x' });
    assert.ok(!('state_key' in msg));
    assert.ok(!('prev_content' in msg.unsigned) && !('replaces_state' in msg.unsigned));
  });

  test('a v12 create event gets its room_id although the PDU has none', () => {
    const create = makeCreateEvent(V12, ALICE);
    assert.ok(!('room_id' in create.pdu));
    const out = toClientEvent(create, { roomVersion: V12, now: NOW });
    assert.equal(out.room_id, create.roomId);
  });
});

describe('toClientEvent: redactions carry redacts both top-level and in content', () => {
  test('v1 (top-level redacts in the PDU)', () => {
    const redaction = makeEvent({
      id: '$red',
      type: 'm.room.redaction',
      sender: MOD,
      roomId: ROOM,
      redacts: '$msg',
      content: { reason: 'spam' },
    });
    const out = toClientEvent(redaction, { roomVersion: V1, now: NOW });
    assert.equal(out.redacts, '$msg');
    assert.deepEqual(out.content, { reason: 'spam', redacts: '$msg' });
    // The stored event is untouched.
    assert.deepEqual(redaction.content, { reason: 'spam' });
  });

  test('v11 (content.redacts in the PDU)', () => {
    const redaction = makeEvent({
      id: '$red',
      type: 'm.room.redaction',
      sender: MOD,
      roomId: ROOM,
      content: { reason: 'spam', redacts: '$msg' },
    });
    const out = toClientEvent(redaction, { roomVersion: V11, now: NOW });
    assert.equal(out.redacts, '$msg');
    assert.deepEqual(out.content, { reason: 'spam', redacts: '$msg' });
    // Already right: no copy.
    assert.equal(out.content, redaction.content);
  });

  test('v10 with a conflicting content.redacts: the top-level value wins in both places', () => {
    const redaction = makeEvent({
      id: '$red',
      type: 'm.room.redaction',
      sender: MOD,
      roomId: ROOM,
      redacts: '$msg',
      content: { redacts: '$other' },
    });
    const out = toClientEvent(redaction, { roomVersion: V10, now: NOW });
    assert.equal(out.redacts, '$msg');
    assert.equal(out.content.redacts, '$msg');
  });

  test('other event types never gain redacts', () => {
    const out = toClientEvent(message, { roomVersion: V1, now: NOW });
    assert.ok(!('redacts' in out));
  });
});

describe('toClientEvent: redacted events', () => {
  for (const [version, redaction] of [
    [
      V1,
      makeEvent({
        id: '$red',
        type: 'm.room.redaction',
        sender: MOD,
        roomId: ROOM,
        redacts: '$msg',
        content: { reason: 'spam' },
        originServerTs: NOW - 10,
      }),
    ],
    [
      V11,
      makeEvent({
        id: '$red',
        type: 'm.room.redaction',
        sender: MOD,
        roomId: ROOM,
        content: { reason: 'spam', redacts: '$msg' },
        originServerTs: NOW - 10,
      }),
    ],
  ] as const) {
    test(`v${version.id}: redacted content and unsigned.redacted_because`, () => {
      const out = toClientEvent(message, {
        roomVersion: version,
        now: NOW,
        includeRoomId: false,
        redactedBecause: redaction,
        transactionId: 'txn1',
        membership: 'join',
      });
      assert.deepEqual(out.content, {});
      assert.equal(out.type, 'm.room.message');
      assert.equal(out.event_id, '$msg');
      assert.equal(out.unsigned.transaction_id, 'txn1');
      assert.equal(out.unsigned.membership, 'join');
      assert.deepEqual(out.unsigned.redacted_because, {
        event_id: '$red',
        type: 'm.room.redaction',
        content: { reason: 'spam', redacts: '$msg' },
        sender: MOD,
        origin_server_ts: NOW - 10,
        redacts: '$msg',
        unsigned: { age: 10 },
      });
      // The stored event is untouched.
      assert.deepEqual(message.content, { msgtype: 'm.text', body: 'secret' });
    });
  }

  test('redacted state keeps what the room version keeps, and drops prev_content/prev_sender', () => {
    const member = makeEvent({
      id: '$m',
      type: 'm.room.member',
      sender: ALICE,
      stateKey: ALICE,
      roomId: ROOM,
      content: { membership: 'join', displayname: 'Alice', avatar_url: 'mxc://a/b' },
    });
    const redaction = makeEvent({ id: '$red', type: 'm.room.redaction', sender: MOD, roomId: ROOM, content: { redacts: '$m' } });
    const out = toClientEvent(member, {
      roomVersion: V11,
      now: NOW,
      redactedBecause: redaction,
      prevContent: { membership: 'invite', displayname: 'Old' },
      prevSender: MOD,
      replacesState: '$inv',
    });
    assert.deepEqual(out.content, { membership: 'join' });
    assert.equal(out.state_key, ALICE);
    assert.ok(!('prev_content' in out.unsigned));
    assert.ok(!('prev_sender' in out.unsigned));
    assert.equal(out.unsigned.replaces_state, '$inv');
    assert.equal((out.unsigned.redacted_because as { room_id?: string }).room_id, ROOM);
  });

  test('a redacted redaction: v11 keeps content.redacts; v1 loses redacts altogether', () => {
    const byMod = makeEvent({ id: '$red2', type: 'm.room.redaction', sender: MOD, roomId: ROOM, content: { redacts: '$red' } });
    const v11 = makeEvent({ id: '$red', type: 'm.room.redaction', sender: MOD, roomId: ROOM, content: { reason: 'x', redacts: '$msg' } });
    const out11 = toClientEvent(v11, { roomVersion: V11, now: NOW, redactedBecause: byMod });
    assert.deepEqual(out11.content, { redacts: '$msg' });
    assert.equal(out11.redacts, '$msg');

    const v1 = makeEvent({ id: '$red', type: 'm.room.redaction', sender: MOD, roomId: ROOM, redacts: '$msg', content: { reason: 'x' } });
    const out1 = toClientEvent(v1, { roomVersion: V1, now: NOW, redactedBecause: byMod });
    assert.deepEqual(out1.content, {});
    assert.ok(!('redacts' in out1));
  });
});

describe('toClientEvent: federation format', () => {
  test('the PDU plus event_id and unsigned', () => {
    const out = toClientEvent(message, { roomVersion: V11, now: NOW, format: 'federation', includeRoomId: false, transactionId: 't' });
    assert.deepEqual(out, { ...message.pdu, event_id: '$msg', unsigned: { age: 100_000, transaction_id: 't' } });
  });

  test('redacted: the redacted PDU', () => {
    const redaction = makeEvent({ id: '$red', type: 'm.room.redaction', sender: MOD, roomId: ROOM, content: { redacts: '$msg' } });
    const out = toClientEvent(message, { roomVersion: V11, now: NOW, format: 'federation', redactedBecause: redaction });
    assert.deepEqual(out.content, {});
    assert.equal(out.room_id, ROOM);
    assert.ok('hashes' in out && 'signatures' in out);
    assert.equal((out.unsigned.redacted_because as { event_id: string }).event_id, '$red');
  });
});

describe('toStrippedState', () => {
  test('only type, state_key, sender and content', () => {
    const name = makeEvent({ id: '$name', type: 'm.room.name', sender: ALICE, stateKey: '', roomId: ROOM, content: { name: 'Room' } });
    const stripped = toStrippedState(name);
    assert.deepEqual(stripped, { type: 'm.room.name', state_key: '', sender: ALICE, content: { name: 'Room' } });
    assert.deepEqual(Object.keys(stripped).sort(), ['content', 'sender', 'state_key', 'type']);
    assert.equal(stripped.content, name.content);
  });

  test('a create event is stripped the same way', () => {
    const create = makeCreateEvent(V12, ALICE);
    assert.deepEqual(Object.keys(toStrippedState(create)).sort(), ['content', 'sender', 'state_key', 'type']);
  });

  test('a message event is refused', () => {
    assert.throws(() => toStrippedState(message), TypeError);
  });
});
