// Creating rooms, membership, sending messages and state, redactions — over real HTTP.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TestHomeserver, TestUser } from '../helpers/homeserver.js';
import { forEachBackend } from '../helpers/backends.js';
import { ok } from '../helpers/http.js';
import { createRoomsConcurrently } from '../helpers/rooms.js';

/**
 * 100 creations by one user, 8 at a time, all with the same (empty) creation content: each gets
 * a room of its own, with its own create event, and the user is joined to every one.
 */
async function createsManyRoomsAtOnce(hs: TestHomeserver, user: TestUser): Promise<void> {
  const roomIds = await createRoomsConcurrently((i) =>
    hs.call('POST', '/_matrix/client/v3/createRoom', { token: user.accessToken, body: { name: `bulk ${i}` } }),
  );
  const joined = new Set<string>((await ok(hs.call('GET', '/_matrix/client/v3/joined_rooms', { token: user.accessToken }))).joined_rooms);
  for (const [i, roomId] of roomIds.entries()) {
    assert.ok(joined.has(roomId), `${user.userId} is joined to ${roomId}`);
    const create = await hs.homeserver.services.roomState.currentStateEvent(roomId, 'm.room.create', '');
    assert.equal(create?.event.eventId, `$${roomId.slice(1)}`, 'the room id is its create event id');
    const name = await hs.homeserver.services.roomState.currentStateEvent(roomId, 'm.room.name', '');
    assert.equal(name?.event.content.name, `bulk ${i}`, 'each room has the state of its own request');
  }
}

forEachBackend('rooms: create, membership, send, state, redact', (backend) => {
  let hs: TestHomeserver;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  before(async () => {
    hs = await backend.startHomeserver();
    alice = await hs.createUser('alice');
    bob = await hs.createUser('bob');
    carol = await hs.createUser('carol');
  });
  after(() => hs.stop());

  const state = async (roomId: string, type: string, key = '') => {
    const stored = await hs.homeserver.services.roomState.currentStateEvent(roomId, type, key);
    return stored?.event;
  };

  test('createRoom (v12 default) builds the initial state in order and derives the room id from the create event', async () => {
    const res = await hs.call('POST', '/_matrix/client/v3/createRoom', {
      token: alice.accessToken,
      body: { name: 'Tea', topic: 'all about tea', preset: 'public_chat', room_alias_name: 'tea' },
    });
    assert.equal(res.status, 200, res.text);
    const roomId: string = res.json.room_id;
    assert.match(roomId, /^![A-Za-z0-9_-]{43}$/);
    assert.equal(res.json.room_alias, '#tea:test.local');
    const create = await state(roomId, 'm.room.create');
    assert.equal(create?.content.room_version, '12');
    assert.equal(create?.eventId, `$${roomId.slice(1)}`);
    assert.equal((await state(roomId, 'm.room.join_rules'))?.content.join_rule, 'public');
    assert.equal((await state(roomId, 'm.room.name'))?.content.name, 'Tea');
    assert.equal((await state(roomId, 'm.room.topic'))?.content.topic, 'all about tea');
    assert.equal((await state(roomId, 'm.room.canonical_alias'))?.content.alias, '#tea:test.local');
    const pl = await state(roomId, 'm.room.power_levels');
    assert.deepEqual(pl?.content.users, {}, 'v12 creators are not listed in users');
    assert.equal((pl?.content.events as Record<string, number>)['m.room.tombstone'], 150);
    assert.equal((await state(roomId, 'm.room.member', alice.userId))?.content.membership, 'join');
  });

  test('createRoom with an older version, invites and trusted_private_chat', async () => {
    const res = await hs.call('POST', '/_matrix/client/v3/createRoom', {
      token: alice.accessToken,
      body: { room_version: '10', preset: 'trusted_private_chat', invite: [bob.userId], is_direct: true },
    });
    assert.equal(res.status, 200, res.text);
    const roomId: string = res.json.room_id;
    assert.match(roomId, /^![A-Za-z]{18}:test\.local$/);
    const invite = await state(roomId, 'm.room.member', bob.userId);
    assert.equal(invite?.content.membership, 'invite');
    assert.equal(invite?.content.is_direct, true);
    const pl = await state(roomId, 'm.room.power_levels');
    assert.equal((pl?.content.users as Record<string, number>)[bob.userId], 100);
    assert.equal((await state(roomId, 'm.room.create'))?.content.creator, alice.userId);
  });

  test('createRoom errors: bad version, taken alias, bad types', async () => {
    const bad = await hs.call('POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: { room_version: '99' } });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.errcode, 'M_UNSUPPORTED_ROOM_VERSION');
    await hs.call('POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: { room_alias_name: 'dup' } });
    const taken = await hs.call('POST', '/_matrix/client/v3/createRoom', { token: bob.accessToken, body: { room_alias_name: 'dup' } });
    assert.equal(taken.json.errcode, 'M_ROOM_IN_USE');
    const types = await hs.call('POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: { name: 42 } });
    assert.equal(types.status, 400);
    assert.equal(types.json.errcode, 'M_BAD_JSON');
    const noToken = await hs.call('POST', '/_matrix/client/v3/createRoom', { body: {} });
    assert.equal(noToken.status, 401);
    assert.equal(noToken.json.errcode, 'M_MISSING_TOKEN');
    const badToken = await hs.call('POST', '/_matrix/client/v3/createRoom', { token: 'nope', body: {} });
    assert.equal(badToken.json.errcode, 'M_UNKNOWN_TOKEN');
  });

  test('100 creations by one user, 8 at a time: 100 rooms of their own, no 5xx', async () => {
    await createsManyRoomsAtOnce(hs, await hs.createUser('bulk'));
  });

  test('invite, join, send, leave; non-members cannot send; bans stop rejoining', async () => {
    const { json } = await hs.call('POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: { preset: 'private_chat' } });
    const roomId: string = json.room_id;
    const denied = await hs.call('POST', `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, { token: bob.accessToken });
    assert.equal(denied.status, 403);
    assert.equal(
      (
        await hs.call('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/invite`, {
          token: alice.accessToken,
          body: { user_id: bob.userId },
        })
      ).status,
      200,
    );
    const joined = await hs.call('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/join`, { token: bob.accessToken });
    assert.equal(joined.status, 200, joined.text);
    assert.equal(joined.json.room_id, roomId);
    const sent = await hs.call('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t1`, {
      token: bob.accessToken,
      body: { msgtype: 'm.text', body: 'hello' },
    });
    assert.equal(sent.status, 200, sent.text);
    assert.match(sent.json.event_id, /^\$/);
    const stranger = await hs.call('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t1`, {
      token: carol.accessToken,
      body: { msgtype: 'm.text', body: 'let me in' },
    });
    assert.equal(stranger.status, 403);
    assert.equal(stranger.json.errcode, 'M_FORBIDDEN');
    assert.equal(
      (
        await hs.call('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/ban`, {
          token: alice.accessToken,
          body: { user_id: bob.userId, reason: 'spam' },
        })
      ).status,
      200,
    );
    const rejoin = await hs.call('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/join`, { token: bob.accessToken });
    assert.equal(rejoin.status, 403);
    const bobCannotBan = await hs.call('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/unban`, {
      token: bob.accessToken,
      body: { user_id: bob.userId },
    });
    assert.equal(bobCannotBan.status, 403);
    assert.equal(
      (
        await hs.call('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/unban`, {
          token: alice.accessToken,
          body: { user_id: bob.userId },
        })
      ).status,
      200,
    );
    assert.equal((await state(roomId, 'm.room.member', bob.userId))?.content.membership, 'leave');
  });

  test('send is idempotent per device and txnId; a different device gets a new event', async () => {
    const { json } = await hs.call('POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: {} });
    const path = `/_matrix/client/v3/rooms/${encodeURIComponent(json.room_id)}/send/m.room.message/same-txn`;
    const body = { msgtype: 'm.text', body: 'once' };
    const [a, b] = await Promise.all([
      hs.call('PUT', path, { token: alice.accessToken, body }),
      hs.call('PUT', path, { token: alice.accessToken, body }),
    ]);
    assert.equal(a.json.event_id, b.json.event_id);
    const again = await hs.call('PUT', path, { token: alice.accessToken, body });
    assert.equal(again.json.event_id, a.json.event_id);
    const otherDevice = await hs.homeserver.services.auth.createSession(alice.userId);
    const other = await hs.call('PUT', path, { token: otherDevice.accessToken, body });
    assert.notEqual(other.json.event_id, a.json.event_id);
  });

  test('state PUT: set, read back, identical content deduplicated, create refused', async () => {
    const { json } = await hs.call('POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: {} });
    const roomId = encodeURIComponent(json.room_id);
    const first = await hs.call('PUT', `/_matrix/client/v3/rooms/${roomId}/state/m.room.topic`, {
      token: alice.accessToken,
      body: { topic: 'x' },
    });
    assert.equal(first.status, 200, first.text);
    const same = await hs.call('PUT', `/_matrix/client/v3/rooms/${roomId}/state/m.room.topic/`, {
      token: alice.accessToken,
      body: { topic: 'x' },
    });
    assert.equal(same.json.event_id, first.json.event_id);
    const custom = await hs.call('PUT', `/_matrix/client/v3/rooms/${roomId}/state/org.example.thing/some%2Fkey`, {
      token: alice.accessToken,
      body: { a: 1 },
    });
    assert.equal(custom.status, 200);
    assert.deepEqual((await state(json.room_id, 'org.example.thing', 'some/key'))?.content, { a: 1 });
    const create = await hs.call('PUT', `/_matrix/client/v3/rooms/${roomId}/state/m.room.create`, { token: alice.accessToken, body: {} });
    assert.equal(create.status, 403);
    const tooBig = await hs.call('PUT', `/_matrix/client/v3/rooms/${roomId}/send/m.room.message/big`, {
      token: alice.accessToken,
      body: { body: 'x'.repeat(70_000) },
    });
    assert.equal(tooBig.status, 413);
    assert.equal(tooBig.json.errcode, 'M_TOO_LARGE');
  });

  test('redaction: own events, others need power, other rooms refused', async () => {
    const { json } = await hs.call('POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: { preset: 'public_chat' } });
    const roomId = encodeURIComponent(json.room_id);
    await hs.call('POST', `/_matrix/client/v3/join/${roomId}`, { token: bob.accessToken });
    const mine = await hs.call('PUT', `/_matrix/client/v3/rooms/${roomId}/send/m.room.message/r1`, {
      token: bob.accessToken,
      body: { body: 'oops' },
    });
    const aliceMsg = await hs.call('PUT', `/_matrix/client/v3/rooms/${roomId}/send/m.room.message/r2`, {
      token: alice.accessToken,
      body: { body: 'mine' },
    });
    const own = await hs.call('PUT', `/_matrix/client/v3/rooms/${roomId}/redact/${encodeURIComponent(mine.json.event_id)}/x1`, {
      token: bob.accessToken,
      body: { reason: 'typo' },
    });
    assert.equal(own.status, 200, own.text);
    const notMine = await hs.call('PUT', `/_matrix/client/v3/rooms/${roomId}/redact/${encodeURIComponent(aliceMsg.json.event_id)}/x2`, {
      token: bob.accessToken,
      body: {},
    });
    assert.equal(notMine.status, 403);
    const admin = await hs.call('PUT', `/_matrix/client/v3/rooms/${roomId}/redact/${encodeURIComponent(mine.json.event_id)}/x3`, {
      token: alice.accessToken,
      body: {},
    });
    assert.equal(admin.status, 200);
    const redactions = await hs.homeserver.database.all('SELECT redacts FROM redactions WHERE redacts = ?', [mine.json.event_id]);
    assert.equal(redactions.length, 2);
    const other = await hs.call('POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: {} });
    const cross = await hs.call(
      'PUT',
      `/_matrix/client/v3/rooms/${encodeURIComponent(other.json.room_id)}/redact/${encodeURIComponent(aliceMsg.json.event_id)}/x4`,
      { token: alice.accessToken, body: {} },
    );
    assert.equal(cross.status, 400);
  });

  test('unknown rooms: 404 for join, send, state', async () => {
    const unknown = encodeURIComponent('!nope:test.local');
    assert.equal((await hs.call('POST', `/_matrix/client/v3/join/${unknown}`, { token: bob.accessToken })).status, 404);
    assert.equal(
      (await hs.call('PUT', `/_matrix/client/v3/rooms/${unknown}/send/m.room.message/1`, { token: bob.accessToken, body: {} })).status,
      404,
    );
    assert.equal(
      (await hs.call('POST', `/_matrix/client/v3/join/${encodeURIComponent('#none:test.local')}`, { token: bob.accessToken })).status,
      404,
    );
  });
});

forEachBackend('rate limits on sending and joining', (backend) => {
  let hs: TestHomeserver;
  before(async () => {
    hs = await backend.startHomeserver({
      config: {
        rc_message: { per_second: 0.1, burst_count: 3 },
        rc_joins: { local: { per_second: 0.1, burst_count: 2 }, remote: { per_second: 0.1, burst_count: 2 } },
      },
    });
  });
  after(() => hs.stop());

  test('sends beyond the burst get 429 M_LIMIT_EXCEEDED with retry_after_ms and Retry-After; admins are exempt', async () => {
    const user = await hs.createUser('chatty');
    const admin = await hs.createUser('boss', { admin: true });
    const { json } = await hs.call('POST', '/_matrix/client/v3/createRoom', { token: user.accessToken, body: { preset: 'public_chat' } });
    const roomId = encodeURIComponent(json.room_id);
    const statuses: number[] = [];
    let limited;
    for (let i = 0; i < 5; i++) {
      const res = await hs.call('PUT', `/_matrix/client/v3/rooms/${roomId}/send/m.room.message/rl${i}`, {
        token: user.accessToken,
        body: { body: `${i}` },
      });
      statuses.push(res.status);
      if (res.status === 429) limited = res;
    }
    assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
    assert.ok(limited);
    assert.equal(limited.json.errcode, 'M_LIMIT_EXCEEDED');
    assert.ok(limited.json.retry_after_ms > 0);
    assert.ok(Number(limited.headers['retry-after']) >= 1);
    assert.equal((await hs.call('POST', `/_matrix/client/v3/join/${roomId}`, { token: admin.accessToken })).status, 200);
    for (let i = 0; i < 5; i++) {
      const res = await hs.call('PUT', `/_matrix/client/v3/rooms/${roomId}/send/m.room.message/admin${i}`, {
        token: admin.accessToken,
        body: { body: `${i}` },
      });
      assert.equal(res.status, 200);
    }
  });

  test('joins beyond the burst get 429', async () => {
    const owner = await hs.createUser('owner');
    const joiner = await hs.createUser('joiner');
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const { json } = await hs.call('POST', '/_matrix/client/v3/createRoom', {
        token: owner.accessToken,
        body: { preset: 'public_chat' },
      });
      statuses.push(
        (await hs.call('POST', `/_matrix/client/v3/join/${encodeURIComponent(json.room_id)}`, { token: joiner.accessToken })).status,
      );
    }
    assert.deepEqual(statuses, [200, 200, 429]);
  });
});
