import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  MAX_EDUS_PER_TRANSACTION,
  MAX_PDUS_PER_TRANSACTION,
  groupPdusByRoom,
  orderForProcessing,
  transactionResponse,
  validateTransaction,
} from '../../src/core/transactions.js';
import { makeEvent } from './helpers/events.js';

test("the spec's example transaction", () => {
  const body = { origin: 'matrix.org', origin_server_ts: 1234567890, pdus: [{ room_id: '!abc:matrix.org', type: 'm.room.message' }] };
  const result = validateTransaction('S0meTransacti0nId', body, 'matrix.org');
  assert.ok(result.ok);
  assert.deepEqual(result.transaction, {
    txnId: 'S0meTransacti0nId',
    origin: 'matrix.org',
    originServerTs: 1234567890,
    pdus: body.pdus,
    edus: [],
    bodyOriginMismatch: false,
  });
});

test('limits: 50 PDUs and 100 EDUs pass, one more is a 400', () => {
  const pdus = (n: number) => new Array(n).fill({});
  assert.equal(MAX_PDUS_PER_TRANSACTION, 50);
  assert.equal(MAX_EDUS_PER_TRANSACTION, 100);
  assert.ok(validateTransaction('t', { origin: 'a', pdus: pdus(50), edus: pdus(100) }, 'a').ok);
  const tooManyPdus = validateTransaction('t', { origin: 'a', pdus: pdus(51) }, 'a');
  assert.deepEqual(tooManyPdus, {
    ok: false,
    error: { status: 400, errcode: 'M_BAD_JSON', message: 'a transaction may hold at most 50 PDUs, not 51' },
  });
  const tooManyEdus = validateTransaction('t', { origin: 'a', pdus: [], edus: pdus(101) }, 'a');
  assert.equal(!tooManyEdus.ok && tooManyEdus.error.status, 400);
});

test('envelope types; missing pdus and edus are empty; the authenticated origin wins', () => {
  const bad = (txnId: string, body: unknown) => {
    const r = validateTransaction(txnId, body, 'a');
    return r.ok ? 'ok' : r.error.errcode;
  };
  assert.equal(bad('t', null), 'M_NOT_JSON');
  assert.equal(bad('t', []), 'M_NOT_JSON');
  assert.equal(bad('t', { pdus: {} }), 'M_BAD_JSON');
  assert.equal(bad('t', { pdus: [], edus: 'x' }), 'M_BAD_JSON');
  assert.equal(bad('t', { pdus: null }), 'M_BAD_JSON');
  assert.equal(bad('', { pdus: [] }), 'M_INVALID_PARAM');
  assert.equal(bad('t', {}), 'ok');
  const lying = validateTransaction('t', { origin: 'evil.example', origin_server_ts: 1.5, pdus: [] }, 'a.example');
  assert.ok(lying.ok);
  assert.equal(lying.transaction.origin, 'a.example');
  assert.equal(lying.transaction.bodyOriginMismatch, true);
  assert.equal(lying.transaction.originServerTs, undefined);
});

test('PDUs grouped by room in first-appearance order; unplaceable ones listed with their index', () => {
  const p = (room: string | undefined, n: number, extra: object = {}) => ({
    ...(room ? { room_id: room } : {}),
    type: 'm.room.message',
    n,
    ...extra,
  });
  const pdus = [
    p('!b:x', 1),
    p('!a:x', 2),
    'junk',
    p('!b:x', 3),
    p(undefined, 4),
    { type: 'm.room.create', state_key: '' },
    p('no-sigil', 6),
    null,
    p('!a:x', 8),
    { room_id: 5 },
  ];
  const grouped = groupPdusByRoom(pdus);
  assert.deepEqual(
    grouped.rooms.map((r) => [r.roomId, r.pdus.map((x) => x.n)]),
    [
      ['!b:x', [1, 3]],
      ['!a:x', [2, 8]],
    ],
  );
  assert.deepEqual(grouped.unplaced, [
    { index: 2, reason: 'not a JSON object' },
    { index: 4, reason: 'no valid room_id' },
    { index: 5, reason: 'a create event without room_id' },
    { index: 6, reason: 'no valid room_id' },
    { index: 7, reason: 'not a JSON object' },
    { index: 9, reason: 'no valid room_id' },
  ]);
  // Room ids that look like Object.prototype keys stay ordinary entries.
  assert.deepEqual(
    groupPdusByRoom([{ room_id: '!__proto__' }]).rooms.map((r) => r.roomId),
    ['!__proto__'],
  );
});

test('processing order: parents first when both are in the batch, else transaction order; duplicates once', () => {
  const e = (id: string, prev: string[] = []) => makeEvent({ id, type: 'm.room.message', sender: '@u:x', prevEvents: prev });
  const a = e('$a', ['$outside']);
  const b = e('$b', ['$a']);
  const c = e('$c', ['$b', '$a']);
  const d = e('$d', ['$outside']);
  const ids = (list: ReturnType<typeof e>[]) => orderForProcessing(list).map((x) => x.eventId);
  assert.deepEqual(ids([a, b, c, d]), ['$a', '$b', '$c', '$d']);
  assert.deepEqual(ids([c, b, d, a]), ['$d', '$a', '$b', '$c']);
  assert.deepEqual(ids([b, a, b, a]), ['$a', '$b']);
  // A cycle among forged ids: kept, in transaction order after the rest.
  const x = e('$x', ['$y']);
  const y = e('$y', ['$x']);
  assert.deepEqual(ids([x, d, y]), ['$d', '$x', '$y']);
  // Self-reference is ignored.
  assert.deepEqual(ids([e('$s', ['$s'])]), ['$s']);
});

test('the 200 answer lists each processed PDU, with an error where it failed', () => {
  assert.deepEqual(
    transactionResponse([
      ['$ok:example.org', undefined],
      ['$bad:example.org', 'You are not allowed to send a message to this room.'],
    ]),
    {
      pdus: { '$ok:example.org': {}, '$bad:example.org': { error: 'You are not allowed to send a message to this room.' } },
    },
  );
  assert.equal(JSON.stringify(transactionResponse([])), '{"pdus":{}}');
  const proto = transactionResponse([['__proto__', 'x']]);
  assert.deepEqual(Object.keys(proto.pdus), ['__proto__']);
  assert.equal(Object.getPrototypeOf(proto.pdus), Object.prototype);
});
