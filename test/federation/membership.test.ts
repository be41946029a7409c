// Membership across servers, end to end: two real Myelins over TLS on loopback (A hosts the
// rooms, B's users join, are invited, reject, leave and rejoin them), and hostile requests to the
// resident server's make_join / send_join / invite made by the other server's signed client.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { finaliseEvent } from '../../src/core/event-format.js';
import type { JsonObject } from '../../src/core/json.js';
import { getRoomVersion } from '../../src/core/room-versions.js';
import { FederationHttpError } from '../../src/federation/errors.js';
import { httpsCall, startFederatingServer, type FederatingServer, type HttpsAnswer } from '../helpers/federation.js';
import { forEachBackend } from '../helpers/backends.js';
import type { TestUser } from '../helpers/homeserver.js';
import { eventually } from '../helpers/wait.js';

function clientCall(fed: FederatingServer, user: TestUser, method: string, path: string, body?: unknown): Promise<HttpsAnswer> {
  return httpsCall(fed.baseUrl, method, path, {
    headers: { Authorization: `Bearer ${user.accessToken}` },
    ...(body === undefined ? {} : { body }),
  });
}

async function createRoom(fed: FederatingServer, user: TestUser, body: JsonObject): Promise<string> {
  const res = await clientCall(fed, user, 'POST', '/_matrix/client/v3/createRoom', body);
  assert.equal(res.status, 200, res.text);
  return res.json.room_id as string;
}

const room = (roomId: string) => encodeURIComponent(roomId);

async function membershipOf(fed: FederatingServer, user: TestUser, roomId: string, target: string): Promise<string | undefined> {
  const res = await clientCall(
    fed,
    user,
    'GET',
    `/_matrix/client/v3/rooms/${room(roomId)}/state/m.room.member/${encodeURIComponent(target)}`,
  );
  return res.status === 200 ? (res.json.membership as string) : undefined;
}

async function sync(fed: FederatingServer, user: TestUser): Promise<any> {
  const res = await clientCall(fed, user, 'GET', '/_matrix/client/v3/sync?timeout=0');
  assert.equal(res.status, 200, res.text);
  return res.json;
}

/** A signed request from one server to the other; the error answer as `{status, errcode}`. */
async function signed(from: FederatingServer, to: FederatingServer, method: 'GET' | 'PUT', path: string, body?: JsonObject) {
  try {
    return { status: 200, json: (await from.federation.client.request(to.serverName, { method, path, ...(body ? { body } : {}) })) as any };
  } catch (err) {
    if (err instanceof FederationHttpError) return { status: err.status, errcode: err.errcode, json: err.body as any };
    throw err;
  }
}

forEachBackend('membership across two Myelins', (backend) => {
  let a: FederatingServer;
  let b: FederatingServer;
  let alice: TestUser;
  let bob: TestUser;

  before(async () => {
    a = await startFederatingServer({ database: await backend.databaseConfig() });
    b = await startFederatingServer({ database: await backend.databaseConfig() });
    alice = await a.hs.createUser('alice', { displayname: 'Alice' });
    bob = await b.hs.createUser('bob', { displayname: 'Bob' });
  });
  after(async () => {
    await b?.stop();
    await a?.stop();
  });

  test('a user of B joins a room of A by id with via: the room and its state on B, the join in A', async () => {
    const roomId = await createRoom(a, alice, { preset: 'public_chat', name: 'Federated room', topic: 'hello' });
    const joined = await clientCall(b, bob, 'POST', `/_matrix/client/v3/join/${room(roomId)}?via=${encodeURIComponent(a.serverName)}`, {});
    assert.equal(joined.status, 200, joined.text);
    assert.equal(joined.json.room_id, roomId);

    // B holds the room's state as A gave it.
    const state = await clientCall(b, bob, 'GET', `/_matrix/client/v3/rooms/${room(roomId)}/state`);
    assert.equal(state.status, 200, state.text);
    const types = new Set((state.json as JsonObject[]).map((e) => `${e.type as string}|${e.state_key as string}`));
    for (const key of ['m.room.create|', 'm.room.name|', 'm.room.topic|', `m.room.member|${alice.userId}`, `m.room.member|${bob.userId}`]) {
      assert.ok(types.has(key), `B's state has ${key}`);
    }
    // Bob's sync shows the room joined, with its name in the state and the join in the timeline.
    const body = await sync(b, bob);
    const section = body.rooms?.join?.[roomId];
    assert.ok(section, 'the room is in the join section');
    assert.ok(
      (section.state.events as JsonObject[]).some((e) => e.type === 'm.room.name' && (e.content as JsonObject).name === 'Federated room'),
      'the name is in the state',
    );
    assert.ok(
      (section.timeline.events as JsonObject[]).some((e) => e.type === 'm.room.member' && e.state_key === bob.userId),
      'the join is in the timeline',
    );
    // A took the join into the room: alice sees bob joined.
    assert.equal(await membershipOf(a, alice, roomId, bob.userId), 'join');
    // Bob can send into the room on B.
    const sent = await clientCall(b, bob, 'PUT', `/_matrix/client/v3/rooms/${room(roomId)}/send/m.room.message/t1`, {
      msgtype: 'm.text',
      body: 'hi from B',
    });
    assert.equal(sent.status, 200, sent.text);
  });

  test('invite A→B: the invitee sees the invite with the room state, and joins through A', async () => {
    const carol = await b.hs.createUser('carol');
    const roomId = await createRoom(a, alice, { preset: 'private_chat', name: 'Invite only' });
    const invited = await clientCall(a, alice, 'POST', `/_matrix/client/v3/rooms/${room(roomId)}/invite`, { user_id: carol.userId });
    assert.equal(invited.status, 200, invited.text);
    assert.equal(await membershipOf(a, alice, roomId, carol.userId), 'invite');

    const body = await sync(b, carol);
    const invite = body.rooms?.invite?.[roomId];
    assert.ok(invite, 'the invite is in the invite section');
    const stripped = invite.invite_state.events as JsonObject[];
    assert.ok(stripped.some((e) => e.type === 'm.room.name' && (e.content as JsonObject).name === 'Invite only'));
    assert.ok(stripped.some((e) => e.type === 'm.room.member' && e.state_key === carol.userId && e.sender === alice.userId));

    const joined = await clientCall(b, carol, 'POST', `/_matrix/client/v3/join/${room(roomId)}`, {});
    assert.equal(joined.status, 200, joined.text);
    assert.equal(await membershipOf(a, alice, roomId, carol.userId), 'join');
    assert.equal(await membershipOf(b, carol, roomId, carol.userId), 'join');

    // The joined room in /sync has its whole state, incremental (since the invite) and initial: the
    // out-of-band invite held before the join is not the start of its timeline (found with Synapse).
    const since = await clientCall(b, carol, 'GET', `/_matrix/client/v3/sync?timeout=0&since=${encodeURIComponent(body.next_batch)}`);
    for (const answer of [since.json, await sync(b, carol)]) {
      const joinedRoom = answer.rooms?.join?.[roomId];
      assert.ok(joinedRoom, 'the room is in the join section');
      const events = [...joinedRoom.state.events, ...joinedRoom.timeline.events] as JsonObject[];
      const types = new Set(events.map((e) => e.type));
      for (const type of ['m.room.create', 'm.room.power_levels', 'm.room.join_rules', 'm.room.name']) assert.ok(types.has(type), type);
      const own = joinedRoom.timeline.events.filter((e: JsonObject) => e.state_key === carol.userId);
      assert.deepEqual(
        own.map((e: JsonObject) => (e.content as JsonObject).membership),
        ['join'],
      );
    }
    // Nor is it in the room's history.
    const inviteId = stripped.find((e) => e.type === 'm.room.member' && e.state_key === carol.userId)!.event_id;
    assert.ok(inviteId, 'the invite is sent with its event id');
    const messages = await clientCall(b, carol, 'GET', `/_matrix/client/v3/rooms/${room(roomId)}/messages?dir=b&limit=50`);
    assert.equal(messages.status, 200, messages.text);
    const history = (messages.json.chunk as JsonObject[]).map((e) => e.event_id);
    assert.ok(history.length > 0);
    assert.ok(!history.includes(inviteId), 'the out-of-band invite is not in /messages');
  });

  test('rejecting a remote invite goes through A (make_leave, send_leave)', async () => {
    const dave = await b.hs.createUser('dave');
    const roomId = await createRoom(a, alice, { preset: 'private_chat' });
    assert.equal(
      (await clientCall(a, alice, 'POST', `/_matrix/client/v3/rooms/${room(roomId)}/invite`, { user_id: dave.userId })).status,
      200,
    );
    const invited = await eventually(async () => {
      const body = await sync(b, dave);
      return body.rooms?.invite?.[roomId] ? body : undefined;
    }, 'the invite on B');
    const left = await clientCall(b, dave, 'POST', `/_matrix/client/v3/rooms/${room(roomId)}/leave`, {});
    assert.equal(left.status, 200, left.text);
    assert.equal(await membershipOf(a, alice, roomId, dave.userId), 'leave');
    const body = await sync(b, dave);
    assert.equal(body.rooms?.invite?.[roomId], undefined, 'no longer invited');
    // The rejection is in the leave section, the leave (an out-of-band event) as its timeline.
    const since = await clientCall(b, dave, 'GET', `/_matrix/client/v3/sync?timeout=0&since=${encodeURIComponent(invited.next_batch)}`);
    const leftRoom = since.json.rooms?.leave?.[roomId];
    assert.ok(leftRoom, 'the room is in the leave section');
    assert.deepEqual(
      (leftRoom.timeline.events as JsonObject[]).map((e) => [e.type, e.state_key, (e.content as JsonObject).membership]),
      [['m.room.member', dave.userId, 'leave']],
    );
  });

  test("knocking on a room of A from B: make_knock, send_knock, the knock state in B's sync", async () => {
    const frank = await b.hs.createUser('frank');
    const roomId = await createRoom(a, alice, {
      preset: 'private_chat',
      name: 'Knock here',
      initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'knock' } }],
    });
    const knocked = await clientCall(
      b,
      frank,
      'POST',
      `/_matrix/client/v3/knock/${room(roomId)}?via=${encodeURIComponent(a.serverName)}`,
      {},
    );
    assert.equal(knocked.status, 200, knocked.text);
    assert.equal(await membershipOf(a, alice, roomId, frank.userId), 'knock');
    const body = await sync(b, frank);
    const knock = body.rooms?.knock?.[roomId];
    assert.ok(knock, 'the knock is in the knock section');
    assert.ok(
      (knock.knock_state.events as JsonObject[]).some((e) => e.type === 'm.room.name' && (e.content as JsonObject).name === 'Knock here'),
    );
  });

  test('a user banned then unbanned on A joins from B: A is asked each time', async () => {
    const erin = await b.hs.createUser('erin');
    const roomId = await createRoom(a, alice, { preset: 'public_chat' });
    const via = `?via=${encodeURIComponent(a.serverName)}`;
    const banned = await clientCall(a, alice, 'POST', `/_matrix/client/v3/rooms/${room(roomId)}/ban`, { user_id: erin.userId });
    assert.equal(banned.status, 200, banned.text);
    // Banned: A refuses the join.
    const refused = await clientCall(b, erin, 'POST', `/_matrix/client/v3/join/${room(roomId)}${via}`, {});
    assert.equal(refused.status, 403, refused.text);
    assert.equal(refused.json.errcode, 'M_FORBIDDEN');
    const unbanned = await clientCall(a, alice, 'POST', `/_matrix/client/v3/rooms/${room(roomId)}/unban`, { user_id: erin.userId });
    assert.equal(unbanned.status, 200, unbanned.text);
    const rejoined = await clientCall(b, erin, 'POST', `/_matrix/client/v3/join/${room(roomId)}${via}`, {});
    assert.equal(rejoined.status, 200, rejoined.text);
    assert.equal(await membershipOf(a, alice, roomId, erin.userId), 'join');
  });

  test('joining a room whose server cannot be reached: 502 M_UNKNOWN; a malformed room id: 400', async () => {
    const lost = await clientCall(b, bob, 'POST', `/_matrix/client/v3/join/${room('!nowhere:')}`, {});
    assert.equal(lost.status, 400); // not a room id
    const unknown = await clientCall(b, bob, 'POST', `/_matrix/client/v3/join/${room('!nowhere:localhost:1')}`, {});
    assert.equal(unknown.status, 502, unknown.text);
    assert.equal(unknown.json.errcode, 'M_UNKNOWN');
  });

  test('hostile: make_join for a user of another server is 403; an unsupported version is 400', async () => {
    const roomId = await createRoom(a, alice, { preset: 'public_chat', room_version: '10' });
    const other = await signed(
      b,
      a,
      'GET',
      `/_matrix/federation/v1/make_join/${room(roomId)}/${encodeURIComponent('@x:elsewhere.test')}?ver=10`,
    );
    assert.equal(other.status, 403);
    assert.equal(other.errcode, 'M_FORBIDDEN');
    const version = await signed(
      b,
      a,
      'GET',
      `/_matrix/federation/v1/make_join/${room(roomId)}/${encodeURIComponent(`@x:${b.serverName}`)}?ver=9`,
    );
    assert.equal(version.status, 400);
    assert.equal(version.errcode, 'M_INCOMPATIBLE_ROOM_VERSION');
    assert.equal(version.json.room_version, '10');
  });

  test('hostile: send_join under another event id is 400; a join the room refuses is 403', async () => {
    const roomId = await createRoom(a, alice, { preset: 'public_chat' });
    const mallory = `@mallory:${b.serverName}`;
    const template = await signed(
      b,
      a,
      'GET',
      `/_matrix/federation/v1/make_join/${room(roomId)}/${encodeURIComponent(mallory)}?ver=12&ver=10`,
    );
    assert.equal(template.status, 200);
    const version = getRoomVersion(template.json.room_version as string)!;
    const { signingKey, serverName } = b.hs.homeserver.services;
    const { event, pdu } = finaliseEvent({ ...template.json.event, origin_server_ts: Date.now() }, version, serverName, signingKey);

    const wrongId = await signed(b, a, 'PUT', `/_matrix/federation/v2/send_join/${room(roomId)}/${encodeURIComponent('$other')}`, pdu);
    assert.equal(wrongId.status, 400);

    // Banned after the template was made: the join fails the current state's auth rules.
    const ban = await clientCall(a, alice, 'POST', `/_matrix/client/v3/rooms/${room(roomId)}/ban`, { user_id: mallory });
    assert.equal(ban.status, 200, ban.text);
    const refused = await signed(b, a, 'PUT', `/_matrix/federation/v2/send_join/${room(roomId)}/${encodeURIComponent(event.eventId)}`, pdu);
    assert.equal(refused.status, 403);
    assert.equal(await membershipOf(a, alice, roomId, mallory), 'ban');

    // A join signed by another server than its sender's: 403.
    const forged = finaliseEvent(
      { ...template.json.event, sender: `@m:${a.serverName}`, state_key: `@m:${a.serverName}`, origin_server_ts: Date.now() },
      version,
      serverName,
      signingKey,
    );
    const notOurs = await signed(
      b,
      a,
      'PUT',
      `/_matrix/federation/v2/send_join/${room(roomId)}/${encodeURIComponent(forged.event.eventId)}`,
      forged.pdu,
    );
    assert.equal(notOurs.status, 403);
  });

  test('hostile: an invite for a room version we do not support is 400 M_INCOMPATIBLE_ROOM_VERSION', async () => {
    const answer = await signed(b, a, 'PUT', `/_matrix/federation/v2/invite/${room('!r:x.test')}/${encodeURIComponent('$e')}`, {
      room_version: '999',
      event: { type: 'm.room.member' },
      invite_room_state: [],
    });
    assert.equal(answer.status, 400);
    assert.equal(answer.errcode, 'M_INCOMPATIBLE_ROOM_VERSION');
    assert.equal(answer.json.room_version, '999');
  });
});
