// The events writer under concurrency: a room's events form a line (each follows the previous
// one), every accepted send is persisted exactly once, and a failed write does not corrupt the
// events built on top of it while it was committing.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { getRoomVersion } from '../../src/core/room-versions.js';
import { MatrixError } from '../../src/errors.js';
import { buildCreateEvent, type CreateRoomPlan } from '../../src/handlers/kernel/events-writer.js';
import type { TestHomeserver, TestUser } from '../helpers/homeserver.js';
import { forEachBackend } from '../helpers/backends.js';

forEachBackend('events writer', (backend) => {
  let hs: TestHomeserver;
  let alice: TestUser;
  before(async () => {
    hs = await backend.startHomeserver();
    alice = await hs.createUser('alice');
  });
  after(() => hs.stop());

  async function chainOf(roomId: string) {
    const rows = await hs.homeserver.database.all<{ event_id: string; json: string; stream_ordering: number }>(
      'SELECT event_id, json, stream_ordering FROM events WHERE room_id = ? ORDER BY stream_ordering',
      [roomId],
    );
    return rows.map((r) => ({
      id: r.event_id,
      position: Number(r.stream_ordering),
      pdu: JSON.parse(r.json) as { prev_events: string[]; depth: number; content: { body?: string } },
    }));
  }

  test('concurrent sends with repeated transaction ids: each once, in one line', async () => {
    const { services } = hs.homeserver;
    const { json } = await hs.call('POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: {} });
    const roomId: string = json.room_id;
    const requester = { userId: alice.userId, deviceId: alice.deviceId, isGuest: false, tokenHash: '' };
    // 60 sends, every third one repeating an earlier transaction id while it may still be committing.
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) => {
        const txn = i % 3 === 2 ? `t${i - 1}` : `t${i}`;
        return services.roomMessages.send(roomId, requester, 'm.room.message', { body: `m ${txn}` }, txn);
      }),
    );
    const byTxn = new Map<string, string>();
    results.forEach((r, i) => {
      const txn = i % 3 === 2 ? `t${i - 1}` : `t${i}`;
      if (byTxn.has(txn)) assert.equal(r.eventId, byTxn.get(txn), `retry of ${txn} returns the original event`);
      byTxn.set(txn, r.eventId);
    });
    const chain = await chainOf(roomId);
    const messages = chain.filter((e) => e.pdu.content.body?.startsWith('m '));
    assert.equal(messages.length, 40, 'each distinct transaction persisted once');
    for (let i = 1; i < chain.length; i++) {
      assert.deepEqual(chain[i]!.pdu.prev_events, [chain[i - 1]!.id], `event ${i} follows event ${i - 1}`);
      assert.equal(chain[i]!.pdu.depth, chain[i - 1]!.pdu.depth + 1);
    }
  });

  test('identical state sent many times at once: one event, every send answered with it', async () => {
    const { services } = hs.homeserver;
    const { json } = await hs.call('POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: {} });
    const roomId: string = json.room_id;
    const requester = { userId: alice.userId, deviceId: alice.deviceId, isGuest: false, tokenHash: '' };
    // The later ones find the first in the room's state while it may still be committing.
    const results = await Promise.all(
      Array.from({ length: 8 }, () => services.roomMessages.setState(roomId, requester, 'org.example.same', '', { same: true })),
    );
    assert.equal(new Set(results.map((r) => r.eventId)).size, 1);
    assert.equal((await chainOf(roomId)).filter((e) => (e.pdu as { type?: string }).type === 'org.example.same').length, 1);
  });

  test('sends to many rooms at once keep each room a line and every position used once', async () => {
    const { services } = hs.homeserver;
    const requester = { userId: alice.userId, deviceId: alice.deviceId, isGuest: false, tokenHash: '' };
    const rooms: string[] = [];
    for (let r = 0; r < 5; r++)
      rooms.push((await hs.call('POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: {} })).json.room_id);
    await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        services.roomMessages.send(rooms[i % 5]!, requester, 'm.room.message', { body: `x${i}` }, `many-${i}`),
      ),
    );
    const positions = new Set<number>();
    for (const roomId of rooms) {
      const chain = await chainOf(roomId);
      for (let i = 1; i < chain.length; i++) assert.deepEqual(chain[i]!.pdu.prev_events, [chain[i - 1]!.id]);
      for (const e of chain) {
        assert.ok(!positions.has(e.position));
        positions.add(e.position);
      }
    }
  });

  test('a create event whose room id is taken (committing or committed) is refused with 409, and the room is untouched', async () => {
    const { services } = hs.homeserver;
    const refusedAsTaken = (err: unknown) => {
      assert.ok(err instanceof MatrixError, String(err));
      assert.equal(err.status, 409);
      assert.equal(err.errcode, 'M_ROOM_IN_USE');
      return true;
    };
    for (const [versionId, roomId] of [
      ['12', undefined],
      ['10', `!TakenRoomIdForTest:${hs.serverName}`],
    ] as const) {
      const version = getRoomVersion(versionId)!;
      // Identical create events, as two creations by one user in one millisecond build in v12.
      const plan = (name: string): CreateRoomPlan => ({
        roomVersion: versionId,
        creator: alice.userId,
        createEvent: buildCreateEvent(
          { version, creator: alice.userId, content: {}, roomId, now: 1_700_000_000_000 },
          services.serverName,
          services.signingKey,
        ).pdu,
        initialEvents: [
          { type: 'm.room.member', stateKey: alice.userId, sender: alice.userId, content: { membership: 'join' } },
          { type: 'm.room.name', stateKey: '', sender: alice.userId, content: { name } },
        ],
        isPublic: false,
        aliases: [],
      });
      const [first, second] = await Promise.allSettled([
        services.eventsWriter.createRoom(plan('first')),
        services.eventsWriter.createRoom(plan('second')),
      ]);
      assert.equal(first.status, 'fulfilled', `v${versionId}: ${first.status === 'rejected' ? String(first.reason) : ''}`);
      assert.equal(second.status, 'rejected', `v${versionId}: the second creation of one room id is refused`);
      refusedAsTaken(second.reason);
      const created = first.value.roomId;
      await assert.rejects(
        services.eventsWriter.createRoom(plan('third')),
        refusedAsTaken,
        `v${versionId}: also once the room is committed`,
      );

      const chain = await chainOf(created);
      assert.equal(chain.length, 3, `v${versionId}: the first creation's events, no others`);
      assert.equal((await services.roomState.currentStateEvent(created, 'm.room.name', ''))?.event.content.name, 'first');
      // The room's writer state was not replaced by the refused creations: sends follow its events.
      const requester = { userId: alice.userId, deviceId: alice.deviceId, isGuest: false, tokenHash: '' };
      const sent = await services.roomMessages.send(created, requester, 'm.room.message', { body: 'still mine' }, `taken-${versionId}`);
      const after = await chainOf(created);
      assert.equal(after.at(-1)!.id, sent.eventId);
      assert.deepEqual(after.at(-1)!.pdu.prev_events, [chain.at(-1)!.id]);
    }
  });

  test('a write that fails to commit fails alone: events built on it meanwhile are rebuilt and land', async () => {
    const { services } = hs.homeserver;
    const writer = (hs.homeserver as unknown as { services: { eventsWriter: { addSideEffect(f: unknown): void } } }).services.eventsWriter;
    writer.addSideEffect(async (_tx: unknown, stored: { event: { content: { body?: string } } }) => {
      if (stored.event.content.body === 'boom') throw new Error('disk on fire');
    });
    const { json } = await hs.call('POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: {} });
    const roomId: string = json.room_id;
    const requester = { userId: alice.userId, deviceId: alice.deviceId, isGuest: false, tokenHash: '' };
    const bodies = ['a', 'b', 'boom', 'c', 'd', 'e'];
    const results = await Promise.allSettled(
      bodies.map((body, i) => services.roomMessages.send(roomId, requester, 'm.room.message', { body }, `fail-${i}`)),
    );
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled'],
    );
    const chain = await chainOf(roomId);
    assert.deepEqual(chain.map((e) => e.pdu.content.body).filter(Boolean), ['a', 'b', 'c', 'd', 'e']);
    for (let i = 1; i < chain.length; i++) assert.deepEqual(chain[i]!.pdu.prev_events, [chain[i - 1]!.id]);
    // The room keeps working afterwards.
    const after = await services.roomMessages.send(roomId, requester, 'm.room.message', { body: 'f' }, 'fail-after');
    assert.equal((await chainOf(roomId)).at(-1)!.id, after.eventId);
  });
});
