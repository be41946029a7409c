// Lazy-loaded members in /sync (spec: client-server API §Lazy-loading room members, and the /sync
// description in sync.yaml), over raw HTTP on SQLite and PostgreSQL. Above all: a client that
// reloads and resumes from a sync token it saved earlier (a web client restoring its store) must
// get every member event it needs again, including its own join, even though the server sent
// them to the same device before.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type TestHomeserver } from '../helpers/homeserver.js';
import { forEachBackend } from '../helpers/backends.js';

const enc = encodeURIComponent;

interface Account {
  userId: string;
  accessToken: string;
}

interface ClientEventJson {
  type: string;
  state_key?: string;
  sender: string;
  content: Record<string, unknown>;
}

forEachBackend('/sync lazy-loaded members', (backend) => {
  let hs: TestHomeserver;
  before(async () => {
    hs = await backend.startHomeserver();
  });
  after(() => hs.stop());

  let registered = 0;
  /** A new account and device through /register, as a client makes one. */
  const register = async (name: string): Promise<Account> => {
    const res = await hs.call('POST', '/_matrix/client/v3/register', {
      body: { username: `${name}-${++registered}`, password: `password-of-${name}`, auth: { type: 'm.login.dummy' } },
    });
    assert.equal(res.status, 200, res.text);
    return { userId: res.json.user_id, accessToken: res.json.access_token };
  };
  /** Uploads a filter (as a client does once) and returns its id. */
  const uploadFilter = async (user: Account, filter: Record<string, unknown>): Promise<string> => {
    const res = await hs.call('POST', `/_matrix/client/v3/user/${enc(user.userId)}/filter`, { token: user.accessToken, body: filter });
    assert.equal(res.status, 200, res.text);
    return res.json.filter_id;
  };
  const lazyFilter = (user: Account) => uploadFilter(user, { room: { state: { lazy_load_members: true } } });
  const sync = async (user: Account, filterId: string, since?: string, extra = '') => {
    const query = `filter=${enc(filterId)}&timeout=0${since ? `&since=${enc(since)}` : ''}${extra}`;
    const res = await hs.call('GET', `/_matrix/client/v3/sync?${query}`, { token: user.accessToken });
    assert.equal(res.status, 200, res.text);
    return res.json;
  };
  const createRoom = async (user: Account, body: Record<string, unknown> = {}) => {
    const res = await hs.call('POST', '/_matrix/client/v3/createRoom', { token: user.accessToken, body });
    assert.equal(res.status, 200, res.text);
    return res.json.room_id as string;
  };
  const join = async (user: Account, roomId: string) => {
    const res = await hs.call('POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: user.accessToken, body: {} });
    assert.equal(res.status, 200, res.text);
  };
  let txn = 0;
  const send = async (user: Account, roomId: string, body: string) => {
    const res = await hs.call('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/t${++txn}`, {
      token: user.accessToken,
      body: { msgtype: 'm.text', body },
    });
    assert.equal(res.status, 200, res.text);
  };
  const sendMany = async (user: Account, roomId: string, count: number, prefix: string) => {
    for (let i = 0; i < count; i++) await send(user, roomId, `${prefix} ${i}`);
  };
  type RoomJson = { state: { events: ClientEventJson[] }; timeline: { events: ClientEventJson[]; limited: boolean } };
  /** The user ids whose member events are in the room's `state` block. */
  const membersInState = (room: RoomJson) => room.state.events.filter((e) => e.type === 'm.room.member').map((e) => e.state_key!);
  /** The membership of `userId` that a client learns from the room's `state` and `timeline`. */
  const membershipSeen = (room: RoomJson, userId: string) =>
    [...room.state.events, ...room.timeline.events].filter((e) => e.type === 'm.room.member' && e.state_key === userId).at(-1)?.content
      .membership;

  test('a client resuming from a token saved before it joined gets its own join again (the web-client reload)', async () => {
    const alice = await register('alice');
    const filterId = await lazyFilter(alice);
    const t0 = (await sync(alice, filterId)).next_batch as string;
    const roomId = await createRoom(alice, { name: 'Reload' });
    // The client syncs on from T0 and sees the room...
    const first = await sync(alice, filterId, t0);
    assert.equal(membershipSeen(first.rooms.join[roomId], alice.userId), 'join');
    await sendMany(alice, roomId, 12, 'after the join');
    // ...then reloads, restores the store it saved at T0 and syncs from there again.
    const reloaded = await sync(alice, filterId, t0);
    const room = reloaded.rooms.join[roomId];
    assert.ok(room, 'the room is in the join section');
    assert.equal(room.timeline.limited, true);
    assert.ok(!room.timeline.events.some((e: ClientEventJson) => e.type === 'm.room.member'), 'the join is before the timeline');
    assert.equal(membershipSeen(room, alice.userId), 'join', 'the own join is in state or timeline');
    assert.ok(membersInState(room).includes(alice.userId));
  });

  test('a client resuming from an old token gets the member events of the senders in its limited timeline', async () => {
    const alice = await register('alice');
    const bob = await register('bob');
    const filterId = await lazyFilter(alice);
    const t0 = (await sync(alice, filterId)).next_batch as string;
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    await join(bob, roomId);
    await send(bob, roomId, 'hello from bob');
    const first = await sync(alice, filterId, t0);
    assert.equal(membershipSeen(first.rooms.join[roomId], bob.userId), 'join', "bob's join reached the device once");
    await sendMany(bob, roomId, 12, 'bob');
    const reloaded = await sync(alice, filterId, t0);
    const room = reloaded.rooms.join[roomId];
    assert.equal(room.timeline.limited, true);
    assert.ok(room.timeline.events.every((e: ClientEventJson) => e.sender === bob.userId && e.type === 'm.room.message'));
    const members = membersInState(room);
    assert.ok(members.includes(bob.userId), "the sender's member event is in state");
    assert.ok(members.includes(alice.userId), 'so is the own join');
  });

  test('the same reload with MSC4222 state_after (as matrix-js-sdk 37 asks) carries the own join and the senders', async () => {
    const alice = await register('alice');
    const bob = await register('bob');
    const filterId = await lazyFilter(alice);
    const stateAfter = '&org.matrix.msc4222.use_state_after=true';
    const t0 = (await sync(alice, filterId, undefined, stateAfter)).next_batch as string;
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    await join(bob, roomId);
    await sendMany(bob, roomId, 2, 'early bob');
    await sync(alice, filterId, t0, stateAfter);
    await sendMany(bob, roomId, 12, 'bob');
    const reloaded = await sync(alice, filterId, t0, stateAfter);
    const room = reloaded.rooms.join[roomId];
    assert.equal(room.timeline.limited, true);
    const members = (room['org.matrix.msc4222.state_after'].events as ClientEventJson[]).filter((e) => e.type === 'm.room.member');
    assert.equal(members.find((e) => e.state_key === alice.userId)?.content.membership, 'join');
    assert.equal(members.find((e) => e.state_key === bob.userId)?.content.membership, 'join');
  });

  test('a limited incremental sync carries the member events of timeline senders whose membership did not change in the gap', async () => {
    const alice = await register('alice');
    const bob = await register('bob');
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    await join(bob, roomId);
    // Bob's join falls outside alice's first timeline and bob has not spoken: no member event for him.
    await sendMany(alice, roomId, 11, 'alice');
    const filterId = await lazyFilter(alice);
    const initial = await sync(alice, filterId);
    assert.deepEqual(membersInState(initial.rooms.join[roomId]), [alice.userId]);
    await sendMany(bob, roomId, 12, 'bob');
    const next = await sync(alice, filterId, initial.next_batch);
    const room = next.rooms.join[roomId];
    assert.equal(room.timeline.limited, true);
    assert.ok(membersInState(room).includes(bob.userId), "bob's member event is in state");
  });

  test('a non-limited incremental sync from a restored token sends again the members sent after that token', async () => {
    const alice = await register('alice');
    const bob = await register('bob');
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    await join(bob, roomId);
    await sendMany(alice, roomId, 11, 'alice');
    const filterId = await lazyFilter(alice);
    const t0 = (await sync(alice, filterId)).next_batch as string;
    await send(bob, roomId, 'bob speaks');
    const first = await sync(alice, filterId, t0);
    assert.equal(first.rooms.join[roomId].timeline.limited, false);
    assert.deepEqual(membersInState(first.rooms.join[roomId]), [bob.userId]);
    // The client never kept that response (a reload to its store saved at T0): bob's member again.
    const again = await sync(alice, filterId, t0);
    assert.deepEqual(membersInState(again.rooms.join[roomId]), [bob.userId]);
  });

  test('members already sent along a chain of syncs are redundant unless include_redundant_members; full_state sends them', async () => {
    const alice = await register('alice');
    const bob = await register('bob');
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    await join(bob, roomId);
    await sendMany(alice, roomId, 11, 'alice');
    const filterId = await lazyFilter(alice);
    const redundantFilterId = await uploadFilter(alice, { room: { state: { lazy_load_members: true, include_redundant_members: true } } });
    const initial = await sync(alice, filterId);
    await send(bob, roomId, 'one');
    const first = await sync(alice, filterId, initial.next_batch);
    assert.deepEqual(membersInState(first.rooms.join[roomId]), [bob.userId]);
    await send(bob, roomId, 'two');
    const second = await sync(alice, filterId, first.next_batch);
    assert.deepEqual(membersInState(second.rooms.join[roomId]), [], 'the device has bob already');
    const redundant = await sync(alice, redundantFilterId, first.next_batch);
    assert.deepEqual(membersInState(redundant.rooms.join[roomId]), [bob.userId], 'include_redundant_members');
    const full = await sync(alice, filterId, second.next_batch, '&full_state=true');
    assert.deepEqual(
      membersInState(full.rooms.join[roomId]).sort(),
      [alice.userId, bob.userId].sort(),
      'full state: own and timeline senders',
    );
    assert.equal(
      full.rooms.join[roomId].state.events.some((e: ClientEventJson) => e.type === 'm.room.create'),
      true,
    );
  });

  test('a member event that changed since it was sent is not redundant, even when the timeline filter hides the change', async () => {
    const alice = await register('alice');
    const bob = await register('bob');
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    await join(bob, roomId);
    await sendMany(alice, roomId, 11, 'alice');
    const filterId = await uploadFilter(alice, { room: { state: { lazy_load_members: true }, timeline: { types: ['m.room.message'] } } });
    const initial = await sync(alice, filterId);
    await send(bob, roomId, 'one');
    const first = await sync(alice, filterId, initial.next_batch);
    assert.deepEqual(membersInState(first.rooms.join[roomId]), [bob.userId]);
    const renamed = await hs.call('PUT', `/_matrix/client/v3/profile/${enc(bob.userId)}/displayname`, {
      token: bob.accessToken,
      body: { displayname: 'Robert' },
    });
    assert.equal(renamed.status, 200, renamed.text);
    await send(bob, roomId, 'two');
    const second = await sync(alice, filterId, first.next_batch);
    const room = second.rooms.join[roomId];
    assert.equal(room.timeline.limited, false);
    const member = room.state.events.find((e: ClientEventJson) => e.type === 'm.room.member' && e.state_key === bob.userId);
    assert.equal(member?.content.displayname, 'Robert');
  });

  test('an initial sync sends the own member event and those of timeline senders only', async () => {
    const alice = await register('alice');
    const bob = await register('bob');
    const carol = await register('carol');
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    await join(bob, roomId);
    await join(carol, roomId);
    await sendMany(alice, roomId, 11, 'alice');
    await send(bob, roomId, 'bob');
    const filterId = await lazyFilter(alice);
    // Twice: an initial sync starts a new sequence, so the second one is not made redundant by the first.
    for (let i = 0; i < 2; i++) {
      const initial = await sync(alice, filterId);
      assert.deepEqual(membersInState(initial.rooms.join[roomId]).sort(), [alice.userId, bob.userId].sort());
    }
  });
});
