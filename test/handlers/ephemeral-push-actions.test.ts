// Notifications computed as events are persisted, and the unread counts /sync reports.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TestHomeserver, TestUser } from '../helpers/homeserver.js';
import { forEachBackend } from '../helpers/backends.js';
import { createRoomWith, sendText } from '../helpers/rooms.js';

forEachBackend('push actions and unread counts', (backend) => {
  let hs: TestHomeserver;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let direct: string;
  let group: string;

  const counts = async (user: TestUser, roomId: string) =>
    (await hs.homeserver.services.syncSources.unreadCounts(user.userId, [roomId])).get(roomId);
  const receipt = (user: TestUser, roomId: string, type: string, eventId: string, body: object = {}) =>
    hs.call('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/receipt/${type}/${encodeURIComponent(eventId)}`, {
      token: user.accessToken,
      body,
    });

  before(async () => {
    hs = await backend.startHomeserver();
    alice = await hs.createUser('alice');
    bob = await hs.createUser('bob');
    carol = await hs.createUser('carol');
    direct = await createRoomWith(hs, alice, [bob]);
    group = await createRoomWith(hs, alice, [bob, carol]);
  });
  after(() => hs.stop());

  test('a plain message notifies the others, never the sender, without highlight', async () => {
    await sendText(hs, direct, alice, 'hello');
    assert.deepEqual(await counts(bob, direct), { notification_count: 1, highlight_count: 0 });
    assert.deepEqual(await counts(alice, direct), { notification_count: 0, highlight_count: 0 });
    await sendText(hs, group, alice, 'hello all');
    assert.deepEqual(await counts(bob, group), { notification_count: 1, highlight_count: 0 });
    assert.deepEqual(await counts(carol, group), { notification_count: 1, highlight_count: 0 });
  });

  test('a mention highlights only the user mentioned, in a 1:1 and in a group room', async () => {
    await sendText(hs, direct, alice, 'hey bob', { 'm.mentions': { user_ids: [bob.userId] } });
    assert.deepEqual(await counts(bob, direct), { notification_count: 2, highlight_count: 1 });
    await sendText(hs, group, alice, 'hey bob', { 'm.mentions': { user_ids: [bob.userId] } });
    assert.deepEqual(await counts(bob, group), { notification_count: 2, highlight_count: 1 });
    assert.deepEqual(await counts(carol, group), { notification_count: 2, highlight_count: 0 });
    // Without m.mentions, the legacy rule matches the display name in the body.
    await sendText(hs, group, alice, 'carol, look');
    assert.deepEqual(await counts(carol, group), { notification_count: 3, highlight_count: 1 });
  });

  test('@room highlights only when the sender has the notification power level', async () => {
    await sendText(hs, group, bob, '@room hi', { 'm.mentions': { room: true } });
    assert.equal((await counts(carol, group))!.highlight_count, 1, 'bob (power 0) cannot notify the room');
    await sendText(hs, group, alice, '@room hi', { 'm.mentions': { room: true } });
    assert.equal((await counts(carol, group))!.highlight_count, 2, 'alice (the creator) can');
  });

  test('read receipts clear counts: the later of m.read and m.read.private', async () => {
    const first = await sendText(hs, group, alice, 'one');
    const second = await sendText(hs, group, alice, 'two');
    const before = (await counts(carol, group))!.notification_count;
    assert.ok(before >= 2);
    assert.equal((await receipt(carol, group, 'm.read.private', second.eventId)).status, 200);
    assert.deepEqual(await counts(carol, group), { notification_count: 0, highlight_count: 0 });
    // A public receipt behind the private one does not bring the count back.
    assert.equal((await receipt(carol, group, 'm.read', first.eventId)).status, 200);
    assert.deepEqual(await counts(carol, group), { notification_count: 0, highlight_count: 0 });
    await sendText(hs, group, alice, 'three');
    assert.deepEqual(await counts(carol, group), { notification_count: 1, highlight_count: 0 });
  });

  test("the user's own message counts as read up to it", async () => {
    await sendText(hs, direct, alice, 'are you there?');
    assert.ok((await counts(bob, direct))!.notification_count > 0);
    await sendText(hs, direct, bob, 'yes');
    assert.deepEqual(await counts(bob, direct), { notification_count: 0, highlight_count: 0 });
  });

  test('threads: counts per thread, and a threaded receipt clears only its thread', async () => {
    const room = await createRoomWith(hs, alice, [bob, carol]);
    const root = await sendText(hs, room, alice, 'root');
    const inThread = await sendText(hs, room, alice, 'reply', { 'm.relates_to': { rel_type: 'm.thread', event_id: root.eventId } });
    await sendText(hs, room, alice, 'reply 2', { 'm.relates_to': { rel_type: 'm.thread', event_id: root.eventId } });
    const sources = hs.homeserver.services.syncSources;
    let detail = (await sources.unreadNotifications(carol.userId, [room])).get(room)!;
    assert.deepEqual(detail.total, { notification_count: 3, highlight_count: 0 });
    assert.deepEqual(detail.main, { notification_count: 1, highlight_count: 0 });
    assert.deepEqual([...detail.threads], [[root.eventId, { notification_count: 2, highlight_count: 0 }]]);

    assert.equal((await receipt(carol, room, 'm.read', inThread.eventId, { thread_id: root.eventId })).status, 200);
    detail = (await sources.unreadNotifications(carol.userId, [room])).get(room)!;
    assert.deepEqual(detail.main, { notification_count: 1, highlight_count: 0 });
    assert.deepEqual([...detail.threads], [[root.eventId, { notification_count: 1, highlight_count: 0 }]]);

    // An unthreaded receipt covers every thread.
    const last = await sendText(hs, room, alice, 'main again');
    assert.equal((await receipt(carol, room, 'm.read', last.eventId)).status, 200);
    detail = (await sources.unreadNotifications(carol.userId, [room])).get(room)!;
    assert.deepEqual(detail.total, { notification_count: 0, highlight_count: 0 });
  });

  test('an invite notifies the invitee', async () => {
    const dave = await hs.createUser('dave');
    await hs.homeserver.services.eventsWriter.sendEvent(direct, {
      type: 'm.room.member',
      stateKey: dave.userId,
      sender: alice.userId,
      content: { membership: 'invite' },
    });
    assert.deepEqual(await counts(dave, direct), { notification_count: 1, highlight_count: 0 });
  });

  test('a change of push rules applies to the next event', async () => {
    const room = await createRoomWith(hs, alice, [bob, carol]);
    await sendText(hs, room, alice, 'before');
    assert.equal((await counts(bob, room))!.notification_count, 1);
    const res = await hs.call('PUT', '/_matrix/client/v3/pushrules/global/underride/.m.rule.message/enabled', {
      token: bob.accessToken,
      body: { enabled: false },
    });
    assert.equal(res.status, 200);
    await sendText(hs, room, alice, 'after');
    assert.equal((await counts(bob, room))!.notification_count, 1, 'no notification once the rule is off');
    assert.equal((await counts(carol, room))!.notification_count, 2);
  });

  test('a big room stores one room-wide row per message, plus the members whose outcome differs', async () => {
    const room = await createRoomWith(hs, alice);
    const members = Array.from({ length: 300 }, (_, i) => `@member${i}:test.local`);
    for (const userId of [...members, '@remote:elsewhere.example']) {
      await hs.homeserver.services.eventsWriter.sendEvent(room, {
        type: 'm.room.member',
        stateKey: userId,
        sender: userId,
        content: { membership: 'join' },
      });
    }
    const sent = await sendText(hs, room, alice, 'to everyone', { 'm.mentions': { user_ids: ['@member7:test.local'] } });
    const db = hs.homeserver.database;
    const roomRows = await db.all<{ highlight: number }>('SELECT highlight FROM event_push_room_actions WHERE event_id = ?', [
      sent.eventId,
    ]);
    assert.deepEqual(
      roomRows.map((r) => Number(r.highlight)),
      [0],
    );
    const exceptions = await db.all<{ user_id: string; highlight: number }>(
      'SELECT user_id, highlight FROM event_push_actions WHERE event_id = ?',
      [sent.eventId],
    );
    assert.deepEqual(
      exceptions.map((r) => [r.user_id, Number(r.highlight)]),
      [['@member7:test.local', 1]],
    );

    const sources = hs.homeserver.services.syncSources;
    const countsOf = async (userId: string) => (await sources.unreadCounts(userId, [room])).get(room);
    assert.deepEqual(await countsOf('@member0:test.local'), { notification_count: 1, highlight_count: 0 });
    assert.deepEqual(await countsOf('@member7:test.local'), { notification_count: 1, highlight_count: 1 });
    assert.deepEqual(await countsOf(alice.userId), { notification_count: 0, highlight_count: 0 }, 'not the sender');

    // Someone joining later is not notified of what came before.
    await hs.homeserver.services.eventsWriter.sendEvent(room, {
      type: 'm.room.member',
      stateKey: '@late:test.local',
      sender: '@late:test.local',
      content: { membership: 'join' },
    });
    assert.deepEqual(await countsOf('@late:test.local'), { notification_count: 0, highlight_count: 0 });
    await sendText(hs, room, alice, 'welcome');
    assert.deepEqual(await countsOf('@late:test.local'), { notification_count: 1, highlight_count: 0 });
  });

  test('members whose rules say no notification are exceptions to the room-wide row', async () => {
    const room = await createRoomWith(hs, alice, [bob, carol]);
    // bob turned .m.rule.message off in an earlier test.
    await sendText(hs, room, alice, 'quietly');
    assert.deepEqual(await counts(bob, room), { notification_count: 0, highlight_count: 0 });
    assert.deepEqual(await counts(carol, room), { notification_count: 1, highlight_count: 0 });
  });
});
