// Every room creation gets a room id of its own. In v12 the room id is the create event's hash,
// so two creations by one user in the same millisecond would build the same create event; before
// v12 a random id can repeat. The clock (and, before v12, the random localpart) is injected here
// to make those collisions certain instead of rare.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { JsonObject } from '../../src/core/json.js';
import type { CoreDeps } from '../../src/handlers/kernel/core.js';
import { RoomCreationHandler, type RoomCreationOptions } from '../../src/handlers/rooms/room-creation.js';
import { MatrixError } from '../../src/errors.js';
import type { TestHomeserver, TestUser } from '../helpers/homeserver.js';
import { forEachBackend } from '../helpers/backends.js';

/** Moments in the past, so that no real clock reading is confused with them; one per test. */
const FROZEN_MS = 1_700_000_000_000;
const OTHER_FROZEN_MS = 1_700_000_100_000;

forEachBackend('room creation: a room id of its own for every creation', (backend) => {
  let hs: TestHomeserver;
  let alice: TestUser;
  before(async () => {
    hs = await backend.startHomeserver();
    alice = await hs.createUser('alice');
  });
  after(() => hs.stop());

  /** A creation handler as a process builds it, on this server's writer, with a stopped clock. */
  function handler(options: RoomCreationOptions = {}, nowMs = FROZEN_MS): RoomCreationHandler {
    const { services } = hs.homeserver;
    const core: CoreDeps = { ...services, now: () => nowMs };
    return new RoomCreationHandler(core, services.membership, options);
  }

  async function createEventOf(roomId: string): Promise<{ event_id: string; origin_server_ts: number; content: JsonObject }> {
    const stored = await hs.homeserver.services.roomState.currentStateEvent(roomId, 'm.room.create', '');
    assert.ok(stored, `${roomId} has a create event`);
    return { event_id: stored.event.eventId, origin_server_ts: stored.event.originServerTs, content: stored.event.content };
  }

  async function assertJoined(roomId: string, userId: string): Promise<void> {
    const member = await hs.homeserver.services.roomState.currentStateEvent(roomId, 'm.room.member', userId);
    assert.equal(member?.event.content.membership, 'join', `${userId} is joined to ${roomId}`);
  }

  test('v12: creations by one user in the same millisecond, at once and one after the other, get rooms of their own', async () => {
    const creation = handler();
    const together = await Promise.all([creation.createRoom(alice.userId, {}), creation.createRoom(alice.userId, {})]);
    const later = await creation.createRoom(alice.userId, {});
    const roomIds = [...together, later].map((r) => r.room_id);
    assert.equal(new Set(roomIds).size, 3, `three rooms: ${roomIds.join(', ')}`);
    const timestamps = [];
    for (const roomId of roomIds) {
      const create = await createEventOf(roomId);
      assert.equal(create.event_id, `$${roomId.slice(1)}`, 'the room id is the create event id');
      timestamps.push(create.origin_server_ts);
      await assertJoined(roomId, alice.userId);
    }
    assert.equal(new Set(timestamps).size, 3, `three create event timestamps: ${timestamps.join(', ')}`);
  });

  test('v12: two processes building the same create event at once: the second room id is refused and the creation retried', async () => {
    // Two handlers stand for two workers: each keeps its own record of timestamps, and both
    // build alice's create event at the same instant with the same content.
    const both = [handler({}, OTHER_FROZEN_MS), handler({}, OTHER_FROZEN_MS)];
    const [first, second] = await Promise.all([
      both[0]!.createRoom(alice.userId, { name: 'one' }),
      both[1]!.createRoom(alice.userId, { name: 'two' }),
    ]);
    assert.notEqual(first.room_id, second.room_id);
    const timestamps = [
      (await createEventOf(first.room_id)).origin_server_ts,
      (await createEventOf(second.room_id)).origin_server_ts,
    ].sort();
    assert.equal(timestamps[0], OTHER_FROZEN_MS, 'one creation got the instant it asked for');
    assert.ok(timestamps[1]! > OTHER_FROZEN_MS, 'the other was built again with a later timestamp');
    const names = [];
    for (const roomId of [first.room_id, second.room_id]) {
      await assertJoined(roomId, alice.userId);
      names.push((await hs.homeserver.services.roomState.currentStateEvent(roomId, 'm.room.name', ''))?.event.content.name);
    }
    assert.deepEqual(names, ['one', 'two'], 'each room has the state of its own request');
  });

  test('before v12: a random room id that repeats is replaced by another; one taken every time is refused with 429, not 5xx', async () => {
    const localparts = ['RepeatedRoomIdOnce', 'RepeatedRoomIdOnce', 'AFreshRoomIdAtLast'];
    const repeating = handler({ roomLocalpart: () => localparts.shift() ?? 'NeverReachedHere' });
    const first = await repeating.createRoom(alice.userId, { room_version: '10' });
    assert.equal(first.room_id, `!RepeatedRoomIdOnce:${hs.serverName}`);
    const second = await repeating.createRoom(alice.userId, { room_version: '10' });
    assert.equal(second.room_id, `!AFreshRoomIdAtLast:${hs.serverName}`);
    await assertJoined(second.room_id, alice.userId);

    const eventsBefore = await hs.homeserver.database.all('SELECT event_id FROM events WHERE room_id = ?', [first.room_id]);
    const stuck = handler({ roomLocalpart: () => 'RepeatedRoomIdOnce' });
    await assert.rejects(stuck.createRoom(alice.userId, { room_version: '10', name: 'never' }), (err: unknown) => {
      assert.ok(err instanceof MatrixError, String(err));
      assert.equal(err.status, 429);
      assert.equal(err.errcode, 'M_LIMIT_EXCEEDED');
      assert.equal(typeof err.extra.retry_after_ms, 'number');
      return true;
    });
    const eventsAfter = await hs.homeserver.database.all('SELECT event_id FROM events WHERE room_id = ?', [first.room_id]);
    assert.deepEqual(eventsAfter, eventsBefore, 'the room that has the id is untouched');
    const create = await createEventOf(first.room_id);
    assert.equal(create.content.room_version, '10');
  });
});
