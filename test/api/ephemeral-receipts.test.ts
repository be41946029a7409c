// POST /rooms/{roomId}/receipt/{receiptType}/{eventId} and POST /rooms/{roomId}/read_markers, and
// the receipts and fully-read markers /sync gets.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TestHomeserver, TestUser } from '../helpers/homeserver.js';
import { forEachBackend } from '../helpers/backends.js';
import { createRoomWith, recordBus, sendText } from '../helpers/rooms.js';

forEachBackend('receipts and read markers', (backend) => {
  let hs: TestHomeserver;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let roomId: string;
  const receiptPath = (room: string, type: string, eventId: string) =>
    `/_matrix/client/v3/rooms/${encodeURIComponent(room)}/receipt/${type}/${encodeURIComponent(eventId)}`;
  const markersPath = (room: string) => `/_matrix/client/v3/rooms/${encodeURIComponent(room)}/read_markers`;
  const position = () => hs.homeserver.services.notifier.currentPositions();

  before(async () => {
    hs = await backend.startHomeserver();
    alice = await hs.createUser('alice');
    bob = await hs.createUser('bob');
    carol = await hs.createUser('carol');
    roomId = await createRoomWith(hs, alice, [bob]);
  });
  after(() => hs.stop());

  test('an m.read receipt is stored, published, and appears in the room for others', async () => {
    const first = await sendText(hs, roomId, alice, 'one');
    const since = position().receipts;
    const bus = recordBus(hs);
    const res = await hs.call('POST', receiptPath(roomId, 'm.read', first.eventId), { token: bob.accessToken, body: {} });
    bus.stop();
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, {});
    const update = bus.updates.find((u) => u.stream === 'receipts');
    assert.deepEqual(update && { position: update.position, rows: update.rows }, {
      position: since + 1,
      rows: [{ stream: 'receipts', roomId, userId: bob.userId }],
    });

    const forAlice = await hs.homeserver.services.syncSources.receipts(alice.userId, [roomId], since, position().receipts);
    const content = forAlice.get(roomId) as any;
    assert.deepEqual(Object.keys(content), [first.eventId]);
    assert.equal(typeof content[first.eventId]['m.read'][bob.userId].ts, 'number');
    assert.equal(content[first.eventId]['m.read'][bob.userId].thread_id, undefined);
    const initial = await hs.homeserver.services.syncSources.receipts(alice.userId, [roomId], 0, position().receipts);
    assert.ok((initial.get(roomId) as any)[first.eventId], 'an initial sync has the latest receipts');
  });

  test('receipts only move forward', async () => {
    const older = await sendText(hs, roomId, alice, 'older');
    const newer = await sendText(hs, roomId, alice, 'newer');
    await hs.call('POST', receiptPath(roomId, 'm.read', newer.eventId), { token: bob.accessToken, body: {} });
    const at = position().receipts;
    const back = await hs.call('POST', receiptPath(roomId, 'm.read', older.eventId), { token: bob.accessToken, body: {} });
    assert.equal(back.status, 200);
    assert.equal(position().receipts, at, 'a receipt for an older event changes nothing');
    const all = (await hs.homeserver.services.syncSources.receipts(alice.userId, [roomId], 0, position().receipts)).get(roomId) as any;
    assert.ok(all[newer.eventId]?.['m.read']?.[bob.userId]);
    assert.equal(all[older.eventId]?.['m.read']?.[bob.userId], undefined);
  });

  test('private receipts are only given to their owner', async () => {
    const event = await sendText(hs, roomId, alice, 'private');
    const since = position().receipts;
    const res = await hs.call('POST', receiptPath(roomId, 'm.read.private', event.eventId), { token: bob.accessToken, body: {} });
    assert.equal(res.status, 200);
    const sources = hs.homeserver.services.syncSources;
    const forBob = (await sources.receipts(bob.userId, [roomId], since, position().receipts)).get(roomId) as any;
    assert.ok(forBob[event.eventId]['m.read.private'][bob.userId]);
    const forAlice = await sources.receipts(alice.userId, [roomId], since, position().receipts);
    assert.equal(forAlice.get(roomId), undefined);
  });

  test('threaded receipts: main, a thread root, and thread_id errors', async () => {
    const root = await sendText(hs, roomId, alice, 'root');
    const reply = await sendText(hs, roomId, alice, 'in thread', { 'm.relates_to': { rel_type: 'm.thread', event_id: root.eventId } });
    const since = position().receipts;
    assert.equal(
      (await hs.call('POST', receiptPath(roomId, 'm.read', root.eventId), { token: bob.accessToken, body: { thread_id: 'main' } })).status,
      200,
    );
    assert.equal(
      (await hs.call('POST', receiptPath(roomId, 'm.read', reply.eventId), { token: bob.accessToken, body: { thread_id: root.eventId } }))
        .status,
      200,
    );
    const content = (await hs.homeserver.services.syncSources.receipts(alice.userId, [roomId], since, position().receipts)).get(
      roomId,
    ) as any;
    assert.equal(content[root.eventId]['m.read'][bob.userId].thread_id, 'main');
    assert.equal(content[reply.eventId]['m.read'][bob.userId].thread_id, root.eventId);

    const cases: Array<[string, string, unknown]> = [
      ['m.read', reply.eventId, { thread_id: 'main' }],
      ['m.read', root.eventId, { thread_id: '' }],
      ['m.read', root.eventId, { thread_id: 5 }],
      ['m.read', reply.eventId, { thread_id: '$elsewhere' }],
      ['m.fully_read', root.eventId, { thread_id: 'main' }],
    ];
    for (const [type, eventId, body] of cases) {
      const res = await hs.call('POST', receiptPath(roomId, type, eventId), { token: bob.accessToken, body });
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.json.errcode, 'M_INVALID_PARAM');
    }
  });

  test('m.fully_read through the receipt API sets room account data, forwards only', async () => {
    const older = await sendText(hs, roomId, alice, 'a');
    const newer = await sendText(hs, roomId, alice, 'b');
    const since = position();
    assert.equal(
      (await hs.call('POST', receiptPath(roomId, 'm.fully_read', newer.eventId), { token: bob.accessToken, body: {} })).status,
      200,
    );
    assert.equal(position().receipts, since.receipts, 'no receipt is written');
    assert.equal(position().account_data, since.account_data + 1);
    assert.equal(
      (await hs.call('POST', receiptPath(roomId, 'm.fully_read', older.eventId), { token: bob.accessToken, body: {} })).status,
      200,
    );
    const changes = await hs.homeserver.services.syncSources.accountData(
      bob.userId,
      since.account_data,
      position().account_data,
      since.push_rules,
      position().push_rules,
    );
    assert.deepEqual(changes.rooms.get(roomId), [{ type: 'm.fully_read', content: { event_id: newer.eventId } }]);
    const got = await hs.call(
      'GET',
      `/_matrix/client/v3/user/${encodeURIComponent(bob.userId)}/rooms/${encodeURIComponent(roomId)}/account_data/m.fully_read`,
      { token: bob.accessToken },
    );
    assert.deepEqual(got.json, { event_id: newer.eventId });
  });

  test('read_markers sets the fully-read marker and both receipts at once', async () => {
    const a = await sendText(hs, roomId, alice, 'x');
    const b = await sendText(hs, roomId, alice, 'y');
    const since = position();
    const res = await hs.call('POST', markersPath(roomId), {
      token: bob.accessToken,
      body: { 'm.fully_read': b.eventId, 'm.read': a.eventId, 'm.read.private': b.eventId, 'm.unknown': 'ignored' },
    });
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, {});
    const receipts = (await hs.homeserver.services.syncSources.receipts(bob.userId, [roomId], since.receipts, position().receipts)).get(
      roomId,
    ) as any;
    assert.ok(receipts[a.eventId]['m.read'][bob.userId]);
    assert.ok(receipts[b.eventId]['m.read.private'][bob.userId]);
    const data = await hs.homeserver.services.syncSources.accountData(
      bob.userId,
      since.account_data,
      position().account_data,
      since.push_rules,
      position().push_rules,
    );
    assert.deepEqual(data.rooms.get(roomId), [{ type: 'm.fully_read', content: { event_id: b.eventId } }]);
  });

  test('errors', async () => {
    const event = await sendText(hs, roomId, alice, 'e');
    const other = await createRoomWith(hs, carol);
    const elsewhere = await sendText(hs, other, carol, 'elsewhere');
    const cases: Array<[string, Awaited<ReturnType<TestHomeserver['call']>>, number, string]> = [
      ['no token', await hs.call('POST', receiptPath(roomId, 'm.read', event.eventId), { body: {} }), 401, 'M_MISSING_TOKEN'],
      ['bad token', await hs.call('POST', receiptPath(roomId, 'm.read', event.eventId), { token: 'x', body: {} }), 401, 'M_UNKNOWN_TOKEN'],
      [
        'not in room',
        await hs.call('POST', receiptPath(roomId, 'm.read', event.eventId), { token: carol.accessToken, body: {} }),
        403,
        'M_FORBIDDEN',
      ],
      [
        'unknown room',
        await hs.call('POST', receiptPath('!nowhere:test.local', 'm.read', event.eventId), { token: bob.accessToken, body: {} }),
        403,
        'M_FORBIDDEN',
      ],
      [
        'unknown event',
        await hs.call('POST', receiptPath(roomId, 'm.read', '$missing'), { token: bob.accessToken, body: {} }),
        404,
        'M_NOT_FOUND',
      ],
      [
        'event in another room',
        await hs.call('POST', receiptPath(roomId, 'm.read', elsewhere.eventId), { token: bob.accessToken, body: {} }),
        404,
        'M_NOT_FOUND',
      ],
      [
        'unknown receipt type',
        await hs.call('POST', receiptPath(roomId, 'm.seen', event.eventId), { token: bob.accessToken, body: {} }),
        400,
        'M_INVALID_PARAM',
      ],
      [
        'not an event id',
        await hs.call('POST', receiptPath(roomId, 'm.read', 'abc'), { token: bob.accessToken, body: {} }),
        400,
        'M_INVALID_PARAM',
      ],
      [
        'marker not a string',
        await hs.call('POST', markersPath(roomId), { token: bob.accessToken, body: { 'm.read': 5 } }),
        400,
        'M_BAD_JSON',
      ],
      [
        'marker unknown event',
        await hs.call('POST', markersPath(roomId), { token: bob.accessToken, body: { 'm.fully_read': '$missing' } }),
        404,
        'M_NOT_FOUND',
      ],
      [
        'markers not in room',
        await hs.call('POST', markersPath(roomId), { token: carol.accessToken, body: { 'm.read': event.eventId } }),
        403,
        'M_FORBIDDEN',
      ],
    ];
    for (const [what, res, status, errcode] of cases) {
      assert.equal(res.status, status, `${what}: ${JSON.stringify(res.json)}`);
      assert.equal(res.json.errcode, errcode, what);
    }
  });
});
