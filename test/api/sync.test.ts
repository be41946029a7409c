// /sync semantics (SPEC-NOTES §3.4), over real HTTP.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TestHomeserver, TestUser } from '../helpers/homeserver.js';
import { forEachBackend } from '../helpers/backends.js';

const enc = encodeURIComponent;

forEachBackend('/sync', (backend) => {
  let hs: TestHomeserver;
  let alice: TestUser;
  let bob: TestUser;
  before(async () => {
    hs = await backend.startHomeserver();
    alice = await hs.createUser('alice');
    bob = await hs.createUser('bob');
  });
  after(() => hs.stop());

  const sync = async (user: TestUser, query = '') => {
    const res = await hs.call('GET', `/_matrix/client/v3/sync${query ? `?${query}` : ''}`, { token: user.accessToken });
    assert.equal(res.status, 200, res.text);
    return res.json;
  };
  const createRoom = async (user: TestUser, body: Record<string, unknown> = {}) =>
    (await hs.call('POST', '/_matrix/client/v3/createRoom', { token: user.accessToken, body })).json.room_id as string;
  const send = async (user: TestUser, roomId: string, body: string, txn = `${Math.random()}`) =>
    (
      await hs.call('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${txn}`, {
        token: user.accessToken,
        body: { msgtype: 'm.text', body },
      })
    ).json.event_id as string;
  const join = (user: TestUser, roomId: string) => hs.call('POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: user.accessToken });

  test('initial sync: joined room with full state, timeline without room_id, summary, unread counts, next_batch', async () => {
    const roomId = await createRoom(alice, { name: 'Initial' });
    await send(alice, roomId, 'hello');
    const res = await sync(alice);
    assert.match(res.next_batch, /^s\d+(_\d+){7}$/);
    const room = res.rooms.join[roomId];
    assert.ok(room, 'room in join section');
    const types = room.state.events.map((e: { type: string }) => e.type);
    for (const t of [
      'm.room.create',
      'm.room.member',
      'm.room.power_levels',
      'm.room.join_rules',
      'm.room.history_visibility',
      'm.room.name',
    ]) {
      assert.ok(types.includes(t) || room.timeline.events.some((e: { type: string }) => e.type === t), `${t} in state or timeline`);
    }
    const message = room.timeline.events.at(-1);
    assert.equal(message.content.body, 'hello');
    assert.equal(message.room_id, undefined, 'sync events omit room_id');
    assert.equal(typeof message.unsigned.age, 'number');
    assert.ok(room.timeline.prev_batch);
    assert.deepEqual(room.unread_notifications, { notification_count: 0, highlight_count: 0 });
    assert.equal(room.summary['m.joined_member_count'], 1);
    // As Synapse: signed_curve25519 is always counted, so clients know to upload keys.
    assert.deepEqual(res.device_one_time_keys_count, { signed_curve25519: 0 });
  });

  test('incremental sync returns only new events; an empty one has no rooms', async () => {
    const roomId = await createRoom(alice);
    const first = await sync(alice);
    const empty = await sync(alice, `since=${first.next_batch}`);
    assert.equal(empty.rooms, undefined);
    await send(alice, roomId, 'one');
    await send(alice, roomId, 'two');
    const next = await sync(alice, `since=${first.next_batch}`);
    const room = next.rooms.join[roomId];
    assert.deepEqual(
      room.timeline.events.map((e: { content: { body: string } }) => e.content.body),
      ['one', 'two'],
    );
    assert.equal(room.timeline.limited, false);
    assert.deepEqual(room.state.events, []);
  });

  test('a long-poll wakes when a message arrives', async () => {
    const roomId = await createRoom(alice);
    const { next_batch } = await sync(alice);
    const started = Date.now();
    const pending = sync(alice, `since=${next_batch}&timeout=10000`);
    await new Promise((r) => setTimeout(r, 200));
    await send(alice, roomId, 'wake up');
    const res = await pending;
    assert.ok(Date.now() - started < 5000, 'woke before the timeout');
    assert.equal(res.rooms.join[roomId].timeline.events.at(-1).content.body, 'wake up');
  });

  test('a long-poll with nothing new times out with an empty response', async () => {
    const { next_batch } = await sync(bob);
    const started = Date.now();
    const res = await sync(bob, `since=${next_batch}&timeout=500`);
    assert.ok(Date.now() - started >= 450);
    assert.equal(res.rooms, undefined);
    assert.ok(res.next_batch);
  });

  test('limited timeline: state changes in the gap arrive in state, prev_batch paginates', async () => {
    const roomId = await createRoom(alice);
    const { next_batch } = await sync(alice);
    await hs.call('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.topic`, {
      token: alice.accessToken,
      body: { topic: 'gap topic' },
    });
    for (let i = 0; i < 15; i++) await send(alice, roomId, `m${i}`);
    const res = await sync(alice, `since=${next_batch}&filter=${enc(JSON.stringify({ room: { timeline: { limit: 5 } } }))}`);
    const room = res.rooms.join[roomId];
    assert.equal(room.timeline.limited, true);
    assert.deepEqual(
      room.timeline.events.map((e: { content: { body: string } }) => e.content.body),
      ['m10', 'm11', 'm12', 'm13', 'm14'],
    );
    assert.ok(
      room.state.events.some(
        (e: { type: string; content: { topic: string } }) => e.type === 'm.room.topic' && e.content.topic === 'gap topic',
      ),
    );
  });

  test('invites appear with stripped state; a join moves the room to join with full state; leaving moves it to leave', async () => {
    const roomId = await createRoom(alice, { name: 'Invite me' });
    const { next_batch } = await sync(bob);
    await hs.call('POST', `/_matrix/client/v3/rooms/${enc(roomId)}/invite`, { token: alice.accessToken, body: { user_id: bob.userId } });
    const invited = await sync(bob, `since=${next_batch}`);
    const inviteState = invited.rooms.invite[roomId].invite_state.events;
    assert.ok(
      inviteState.some((e: { type: string }) => e.type === 'm.room.create'),
      'create event in stripped state',
    );
    assert.ok(
      inviteState.some((e: { type: string; content: { name: string } }) => e.type === 'm.room.name' && e.content.name === 'Invite me'),
    );
    const own = inviteState.find((e: { type: string; state_key: string }) => e.type === 'm.room.member' && e.state_key === bob.userId);
    assert.equal(own.sender, alice.userId);
    await join(bob, roomId);
    const joined = await sync(bob, `since=${invited.next_batch}`);
    const room = joined.rooms.join[roomId];
    assert.equal(room.timeline.limited, true, 'a newly joined room is limited');
    const seen = [...room.state.events, ...room.timeline.events].map((e: { type: string }) => e.type);
    for (const type of ['m.room.create', 'm.room.power_levels', 'm.room.join_rules', 'm.room.name'])
      assert.ok(seen.includes(type), `${type} on join`);
    await hs.call('POST', `/_matrix/client/v3/rooms/${enc(roomId)}/leave`, { token: bob.accessToken });
    const left = await sync(bob, `since=${joined.next_batch}`);
    const leftRoom = left.rooms.leave[roomId];
    assert.equal(leftRoom.timeline.events.at(-1).content.membership, 'leave');
    const later = await sync(bob, `since=${left.next_batch}`);
    assert.equal(later.rooms?.leave?.[roomId], undefined, 'left rooms do not reappear');
  });

  test('the sender sees unsigned.transaction_id on its own device only', async () => {
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    await join(bob, roomId);
    await send(alice, roomId, 'with txn', 'my-txn-1');
    const mine = (await sync(alice)).rooms.join[roomId].timeline.events.at(-1);
    assert.equal(mine.unsigned.transaction_id, 'my-txn-1');
    const theirs = (await sync(bob)).rooms.join[roomId].timeline.events.at(-1);
    assert.equal(theirs.unsigned.transaction_id, undefined);
  });

  test('lazy loading: only the members of timeline senders', async () => {
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    const carol = await hs.createUser('carol-ll');
    await join(bob, roomId);
    await join(carol, roomId);
    await send(bob, roomId, 'from bob');
    const filter = enc(JSON.stringify({ room: { timeline: { limit: 1 }, state: { lazy_load_members: true } } }));
    const res = await sync(alice, `filter=${filter}`);
    const members = res.rooms.join[roomId].state.events
      .filter((e: { type: string }) => e.type === 'm.room.member')
      .map((e: { state_key: string }) => e.state_key);
    assert.ok(members.includes(bob.userId));
    assert.ok(members.includes(alice.userId), 'own member event on initial sync');
    assert.ok(!members.includes(carol.userId));
    assert.equal(res.rooms.join[roomId].summary['m.joined_member_count'], 3);
  });

  test('MSC4222 state_after under the unstable name js-sdk uses', async () => {
    const roomId = await createRoom(alice);
    const res = await sync(alice, 'org.matrix.msc4222.use_state_after=true');
    const room = res.rooms.join[roomId];
    assert.equal(room.state, undefined);
    assert.ok(room['org.matrix.msc4222.state_after'].events.some((e: { type: string }) => e.type === 'm.room.create'));
  });

  test('bad tokens and parameters are 400s, unknown filter ids 404', async () => {
    for (const query of ['since=garbage', 'timeout=-5', 'full_state=maybe', 'filter=%7Bnot%20json', 'set_presence=asleep']) {
      const res = await hs.call('GET', `/_matrix/client/v3/sync?${query}`, { token: alice.accessToken });
      assert.equal(res.status, 400, query);
    }
    const missing = await hs.call('GET', '/_matrix/client/v3/sync?filter=12345', { token: alice.accessToken });
    assert.equal(missing.status, 404);
    const future = await hs.call('GET', '/_matrix/client/v3/sync?since=s999999999_9_9_9_9_9_9_9', { token: alice.accessToken });
    assert.equal(future.status, 200, 'a token from the future is clamped, not refused');
  });
});

forEachBackend('/sync unread counts', (backend) => {
  let hs: TestHomeserver;
  before(async () => {
    hs = await backend.startHomeserver();
  });
  after(() => hs.stop());

  test('counts per room, and per thread with unread_thread_notifications', async () => {
    const alice = await hs.createUser('alice');
    const bob = await hs.createUser('bob');
    const { json } = await hs.call('POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: { preset: 'public_chat' } });
    const roomId: string = json.room_id;
    await hs.call('POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: bob.accessToken });
    const root = (
      await hs.call('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/root`, {
        token: alice.accessToken,
        body: { msgtype: 'm.text', body: 'root' },
      })
    ).json.event_id;
    await hs.call('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/in-thread`, {
      token: alice.accessToken,
      body: { msgtype: 'm.text', body: 'reply', 'm.relates_to': { rel_type: 'm.thread', event_id: root } },
    });
    await hs.call('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/mention`, {
      token: alice.accessToken,
      body: { msgtype: 'm.text', body: 'hey bob', 'm.mentions': { user_ids: [bob.userId] } },
    });
    const plain = await hs.call('GET', '/_matrix/client/v3/sync', { token: bob.accessToken });
    assert.deepEqual(plain.json.rooms.join[roomId].unread_notifications, { notification_count: 3, highlight_count: 1 });
    const filter = enc(JSON.stringify({ room: { timeline: { unread_thread_notifications: true } } }));
    const threaded = await hs.call('GET', `/_matrix/client/v3/sync?filter=${filter}`, { token: bob.accessToken });
    const room = threaded.json.rooms.join[roomId];
    assert.deepEqual(room.unread_notifications, { notification_count: 2, highlight_count: 1 });
    assert.deepEqual(room.unread_thread_notifications, { [root]: { notification_count: 1, highlight_count: 0 } });
  });
});
