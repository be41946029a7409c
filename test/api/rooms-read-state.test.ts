// Reading a room over real HTTP: /state, /state/{type}/{key}, /members, /joined_members,
// /joined_rooms, /event, /context and /timestamp_to_event, with their errors.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TestHomeserver, TestUser } from '../helpers/homeserver.js';
import { forEachBackend } from '../helpers/backends.js';
import { fails, ok } from '../helpers/http.js';

const room = (roomId: string) => `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}`;

forEachBackend('reading a room', (backend) => {
  let hs: TestHomeserver;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let roomId: string;
  let otherRoomId: string;
  const messages: string[] = [];

  const send = async (body: string, user: TestUser = alice) =>
    (
      await ok(
        hs.call('PUT', `${room(roomId)}/send/m.room.message/${Math.random()}`, {
          token: user.accessToken,
          body: { msgtype: 'm.text', body },
        }),
      )
    ).event_id as string;

  before(async () => {
    hs = await backend.startHomeserver();
    alice = await hs.createUser('alice', { displayname: 'Alice' });
    bob = await hs.createUser('bob', { displayname: 'Bob' });
    carol = await hs.createUser('carol');
    roomId = (
      await ok(
        hs.call('POST', '/_matrix/client/v3/createRoom', {
          token: alice.accessToken,
          body: { preset: 'private_chat', name: 'Reading room' },
        }),
      )
    ).room_id;
    otherRoomId = (await ok(hs.call('POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: {} }))).room_id;
    await ok(hs.call('POST', `${room(roomId)}/invite`, { token: alice.accessToken, body: { user_id: bob.userId } }));
    await ok(hs.call('POST', `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, { token: bob.accessToken, body: {} }));
    await ok(hs.call('POST', `${room(roomId)}/invite`, { token: alice.accessToken, body: { user_id: carol.userId } }));
    for (let i = 0; i < 12; i++) messages.push(await send(`m${i}`, i % 2 === 0 ? alice : bob));
  });
  after(() => hs.stop());

  test('GET /state: the current state as client events', async () => {
    const state = await ok(hs.call('GET', `${room(roomId)}/state`, { token: bob.accessToken }));
    const keys = state.map((e: any) => `${e.type}|${e.state_key}`).sort();
    assert.ok(keys.includes('m.room.create|'));
    assert.ok(keys.includes('m.room.name|'));
    assert.ok(keys.includes(`m.room.member|${carol.userId}`));
    const name = state.find((e: any) => e.type === 'm.room.name');
    assert.equal(name.room_id, roomId);
    assert.equal(name.sender, alice.userId);
    assert.equal(typeof name.event_id, 'string');
    assert.equal(typeof name.unsigned.age, 'number');
  });

  test('GET /state/{type}/{key}: content by default, the event with format=event; the empty key with or without a slash', async () => {
    assert.deepEqual(await ok(hs.call('GET', `${room(roomId)}/state/m.room.name`, { token: bob.accessToken })), { name: 'Reading room' });
    assert.deepEqual(await ok(hs.call('GET', `${room(roomId)}/state/m.room.name/`, { token: bob.accessToken })), { name: 'Reading room' });
    const event = await ok(hs.call('GET', `${room(roomId)}/state/m.room.name/?format=event`, { token: bob.accessToken }));
    assert.deepEqual([event.type, event.state_key, event.content.name, event.room_id], ['m.room.name', '', 'Reading room', roomId]);
    const member = await ok(
      hs.call('GET', `${room(roomId)}/state/m.room.member/${encodeURIComponent(bob.userId)}`, { token: bob.accessToken }),
    );
    assert.equal(member.membership, 'join');
    assert.equal(member.displayname, 'Bob');
    await fails(hs.call('GET', `${room(roomId)}/state/m.room.topic`, { token: bob.accessToken }), 404, 'M_NOT_FOUND');
    await fails(hs.call('GET', `${room(roomId)}/state/m.room.name?format=xml`, { token: bob.accessToken }), 400, 'M_INVALID_PARAM');
  });

  test('state reads: 403 for non-members and invitees, 401 without a valid token', async () => {
    const dave = await hs.createUser('dave');
    await fails(hs.call('GET', `${room(roomId)}/state`, { token: dave.accessToken }), 403, 'M_FORBIDDEN');
    await fails(hs.call('GET', `${room(roomId)}/state/m.room.name`, { token: carol.accessToken }), 403, 'M_FORBIDDEN');
    await fails(hs.call('GET', `${room('!nowhere:test.local')}/state`, { token: alice.accessToken }), 403, 'M_FORBIDDEN');
    await fails(hs.call('GET', `${room(roomId)}/state`), 401, 'M_MISSING_TOKEN');
    await fails(hs.call('GET', `${room(roomId)}/state`, { token: 'bogus' }), 401, 'M_UNKNOWN_TOKEN');
    await fails(hs.call('GET', `/_matrix/client/v3/rooms/not-a-room/state`, { token: alice.accessToken }), 400, 'M_INVALID_PARAM');
  });

  test('GET /members with membership and not_membership ("or" when both are given)', async () => {
    const all = await ok(hs.call('GET', `${room(roomId)}/members`, { token: alice.accessToken }));
    const byUser = Object.fromEntries(all.chunk.map((e: any) => [e.state_key, e.content.membership]));
    assert.deepEqual(byUser, { [alice.userId]: 'join', [bob.userId]: 'join', [carol.userId]: 'invite' });
    assert.ok(all.chunk.every((e: any) => e.type === 'm.room.member' && e.room_id === roomId));
    const joined = await ok(hs.call('GET', `${room(roomId)}/members?membership=join`, { token: alice.accessToken }));
    assert.deepEqual(joined.chunk.map((e: any) => e.state_key).sort(), [alice.userId, bob.userId].sort());
    const notJoined = await ok(hs.call('GET', `${room(roomId)}/members?not_membership=join`, { token: alice.accessToken }));
    assert.deepEqual(
      notJoined.chunk.map((e: any) => e.state_key),
      [carol.userId],
    );
    const either = await ok(hs.call('GET', `${room(roomId)}/members?membership=invite&not_membership=join`, { token: alice.accessToken }));
    assert.deepEqual(
      either.chunk.map((e: any) => e.state_key),
      [carol.userId],
    );
    const both = await ok(hs.call('GET', `${room(roomId)}/members?membership=join&not_membership=leave`, { token: alice.accessToken }));
    assert.equal(both.chunk.length, 3, 'join, or anything but leave');
    await fails(hs.call('GET', `${room(roomId)}/members?membership=joined`, { token: alice.accessToken }), 400, 'M_INVALID_PARAM');
    await fails(hs.call('GET', `${room(roomId)}/members?at=garbage`, { token: alice.accessToken }), 400, 'M_INVALID_PARAM');
    await fails(hs.call('GET', `${room(roomId)}/members`, { token: carol.accessToken }), 403, 'M_FORBIDDEN');
  });

  test('GET /members?at= takes a sync token and a pagination token', async () => {
    const page = await ok(hs.call('GET', `${room(roomId)}/messages?dir=b&limit=1`, { token: alice.accessToken }));
    const position = String(page.start).slice(1);
    for (const at of [page.start, `s${position}_0_0_0_0_0_0_0`]) {
      const res = await ok(hs.call('GET', `${room(roomId)}/members?at=${at}&not_membership=leave`, { token: alice.accessToken }));
      assert.equal(res.chunk.length, 3);
    }
    await fails(hs.call('GET', `${room(roomId)}/members?at=s0`, { token: alice.accessToken }), 404, 'M_NOT_FOUND');
  });

  test('GET /joined_members: joined users with their room display names', async () => {
    const res = await ok(hs.call('GET', `${room(roomId)}/joined_members`, { token: bob.accessToken }));
    assert.deepEqual(res, { joined: { [alice.userId]: { display_name: 'Alice' }, [bob.userId]: { display_name: 'Bob' } } });
    await fails(hs.call('GET', `${room(roomId)}/joined_members`, { token: carol.accessToken }), 403, 'M_FORBIDDEN');
    await fails(hs.call('GET', `${room(roomId)}/joined_members`), 401, 'M_MISSING_TOKEN');
  });

  test('GET /joined_rooms', async () => {
    const aliceRooms = await ok(hs.call('GET', '/_matrix/client/v3/joined_rooms', { token: alice.accessToken }));
    assert.deepEqual(aliceRooms.joined_rooms.sort(), [roomId, otherRoomId].sort());
    assert.deepEqual((await ok(hs.call('GET', '/_matrix/client/v3/joined_rooms', { token: carol.accessToken }))).joined_rooms, []);
    await fails(hs.call('GET', '/_matrix/client/v3/joined_rooms'), 401, 'M_MISSING_TOKEN');
  });

  test('GET /event/{eventId}: the event; 404 when unknown, in another room, or hidden', async () => {
    const event = await ok(hs.call('GET', `${room(roomId)}/event/${encodeURIComponent(messages[3]!)}`, { token: alice.accessToken }));
    assert.deepEqual([event.event_id, event.content.body, event.sender, event.room_id], [messages[3], 'm3', bob.userId, roomId]);
    await fails(hs.call('GET', `${room(roomId)}/event/${encodeURIComponent('$nope')}`, { token: alice.accessToken }), 404, 'M_NOT_FOUND');
    await fails(
      hs.call('GET', `${room(otherRoomId)}/event/${encodeURIComponent(messages[3]!)}`, { token: alice.accessToken }),
      404,
      'M_NOT_FOUND',
    );
    await fails(
      hs.call('GET', `${room(roomId)}/event/${encodeURIComponent(messages[3]!)}`, { token: carol.accessToken }),
      404,
      'M_NOT_FOUND',
    );
  });

  test('GET /context: floor(limit/2) before, the rest after, state at the last event, tokens that continue in /messages', async () => {
    const target = messages[6]!;
    const res = await ok(hs.call('GET', `${room(roomId)}/context/${encodeURIComponent(target)}?limit=5`, { token: alice.accessToken }));
    assert.equal(res.event.event_id, target);
    assert.deepEqual(
      res.events_before.map((e: any) => e.content.body),
      ['m5', 'm4'],
    );
    assert.deepEqual(
      res.events_after.map((e: any) => e.content.body),
      ['m7', 'm8', 'm9'],
    );
    assert.ok(res.state.some((e: any) => e.type === 'm.room.create'));
    assert.ok(res.state.some((e: any) => e.type === 'm.room.member' && e.state_key === carol.userId));
    const back = await ok(hs.call('GET', `${room(roomId)}/messages?dir=b&limit=2&from=${res.start}`, { token: alice.accessToken }));
    assert.deepEqual(
      back.chunk.map((e: any) => e.content.body),
      ['m3', 'm2'],
    );
    const forward = await ok(hs.call('GET', `${room(roomId)}/messages?dir=f&limit=2&from=${res.end}`, { token: alice.accessToken }));
    assert.deepEqual(
      forward.chunk.map((e: any) => e.content.body),
      ['m10', 'm11'],
    );
  });

  test('GET /context: the filter applies to the surroundings and state, not the event; lazy loading keeps the senders', async () => {
    const target = messages[6]!; // sent by alice
    const onlyBob = encodeURIComponent(JSON.stringify({ senders: [bob.userId], lazy_load_members: true }));
    const res = await ok(
      hs.call('GET', `${room(roomId)}/context/${encodeURIComponent(target)}?limit=4&filter=${onlyBob}`, { token: alice.accessToken }),
    );
    assert.equal(res.event.event_id, target);
    assert.deepEqual(
      res.events_before.map((e: any) => e.content.body),
      ['m5', 'm3'],
    );
    assert.deepEqual(
      res.events_after.map((e: any) => e.content.body),
      ['m7', 'm9'],
    );
    // The state filter keeps bob's events only; lazy loading keeps the senders' member events.
    assert.ok(res.state.every((e: any) => e.sender === bob.userId));
    assert.deepEqual(
      res.state.filter((e: any) => e.type === 'm.room.member').map((e: any) => e.state_key),
      [bob.userId],
    );
    const lazy = encodeURIComponent(JSON.stringify({ lazy_load_members: true }));
    const lazyRes = await ok(
      hs.call('GET', `${room(roomId)}/context/${encodeURIComponent(target)}?limit=0&filter=${lazy}`, { token: alice.accessToken }),
    );
    assert.deepEqual(
      lazyRes.state.filter((e: any) => e.type === 'm.room.member').map((e: any) => e.state_key),
      [alice.userId],
    );
    assert.ok(
      lazyRes.state.some((e: any) => e.type === 'm.room.name'),
      'other state is kept',
    );
  });

  test('GET /context errors: 404 unknown event, 403 hidden event, 400 bad limit or filter', async () => {
    await fails(hs.call('GET', `${room(roomId)}/context/${encodeURIComponent('$nope')}`, { token: alice.accessToken }), 404, 'M_NOT_FOUND');
    await fails(
      hs.call('GET', `${room(roomId)}/context/${encodeURIComponent(messages[0]!)}`, { token: carol.accessToken }),
      403,
      'M_FORBIDDEN',
    );
    await fails(
      hs.call('GET', `${room(roomId)}/context/${encodeURIComponent(messages[0]!)}?limit=-2`, { token: alice.accessToken }),
      400,
      'M_INVALID_PARAM',
    );
    await fails(
      hs.call('GET', `${room(roomId)}/context/${encodeURIComponent(messages[0]!)}?filter=%7B`, { token: alice.accessToken }),
      400,
      'M_NOT_JSON',
    );
    await fails(hs.call('GET', `${room(roomId)}/context/${encodeURIComponent(messages[0]!)}`), 401, 'M_MISSING_TOKEN');
  });

  test('GET /timestamp_to_event in both directions, 404 when there is none', async () => {
    const path = (ts: number, dir: string) =>
      `/_matrix/client/v1/rooms/${encodeURIComponent(roomId)}/timestamp_to_event?ts=${ts}&dir=${dir}`;
    const fifth = await ok(hs.call('GET', `${room(roomId)}/event/${encodeURIComponent(messages[5]!)}`, { token: alice.accessToken }));
    const forward = await ok(hs.call('GET', path(fifth.origin_server_ts, 'f'), { token: alice.accessToken }));
    assert.equal(typeof forward.event_id, 'string');
    assert.ok(forward.origin_server_ts >= fifth.origin_server_ts);
    const backward = await ok(hs.call('GET', path(fifth.origin_server_ts, 'b'), { token: alice.accessToken }));
    assert.ok(backward.origin_server_ts <= fifth.origin_server_ts);
    const latest = await ok(hs.call('GET', path(Date.now() + 60_000, 'b'), { token: alice.accessToken }));
    assert.equal(latest.event_id, messages.at(-1));
    await fails(hs.call('GET', path(Date.now() + 60_000, 'f'), { token: alice.accessToken }), 404, 'M_NOT_FOUND');
    await fails(hs.call('GET', path(0, 'b'), { token: alice.accessToken }), 404, 'M_NOT_FOUND');
    await fails(hs.call('GET', path(0, 'sideways'), { token: alice.accessToken }), 400, 'M_INVALID_PARAM');
    await fails(
      hs.call('GET', `/_matrix/client/v1/rooms/${encodeURIComponent(roomId)}/timestamp_to_event?dir=f`, { token: alice.accessToken }),
      400,
      'M_MISSING_PARAM',
    );
    await fails(
      hs.call('GET', `/_matrix/client/v1/rooms/${encodeURIComponent(roomId)}/timestamp_to_event?ts=soon&dir=f`, {
        token: alice.accessToken,
      }),
      400,
      'M_INVALID_PARAM',
    );
    await fails(hs.call('GET', path(0, 'f'), { token: carol.accessToken }), 403, 'M_FORBIDDEN');
  });
});
