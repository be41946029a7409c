// The room directory over real HTTP: local aliases (create, resolve, list, delete, with the
// canonical alias kept in step), a room's published flag, and /publicRooms (entries, order,
// search, room types, pagination both ways).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TestHomeserver, TestUser } from '../helpers/homeserver.js';
import { forEachBackend } from '../helpers/backends.js';
import { fails, ok } from '../helpers/http.js';

const room = (roomId: string) => `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}`;
const alias = (name: string) => `/_matrix/client/v3/directory/room/${encodeURIComponent(name)}`;
const listEntry = (roomId: string) => `/_matrix/client/v3/directory/list/room/${encodeURIComponent(roomId)}`;

forEachBackend('room aliases', (backend) => {
  let hs: TestHomeserver;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let admin: TestUser;
  let roomId: string;
  before(async () => {
    hs = await backend.startHomeserver();
    alice = await hs.createUser('alice');
    bob = await hs.createUser('bob');
    carol = await hs.createUser('carol');
    admin = await hs.createUser('admin', { admin: true });
    roomId = (await ok(hs.call('POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: { preset: 'public_chat' } })))
      .room_id;
    await ok(hs.call('POST', `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, { token: bob.accessToken, body: {} }));
  });
  after(() => hs.stop());

  test('a member creates an alias; anyone resolves it, with this server first among the servers', async () => {
    assert.deepEqual(await ok(hs.call('PUT', alias('#tea:test.local'), { token: bob.accessToken, body: { room_id: roomId } })), {});
    const resolved = await ok(hs.call('GET', alias('#tea:test.local')));
    assert.deepEqual(resolved, { room_id: roomId, servers: ['test.local'] });
    const listed = await ok(hs.call('GET', `${room(roomId)}/aliases`, { token: alice.accessToken }));
    assert.deepEqual(listed, { aliases: ['#tea:test.local'] });
  });

  test('creating: 409 when taken, 403 for non-members, 400 for bad, remote or unknown input', async () => {
    await fails(hs.call('PUT', alias('#tea:test.local'), { token: alice.accessToken, body: { room_id: roomId } }), 409, 'M_UNKNOWN');
    await fails(hs.call('PUT', alias('#coffee:test.local'), { token: carol.accessToken, body: { room_id: roomId } }), 403, 'M_FORBIDDEN');
    await fails(
      hs.call('PUT', alias('#coffee:elsewhere.example'), { token: alice.accessToken, body: { room_id: roomId } }),
      400,
      'M_INVALID_PARAM',
    );
    await fails(hs.call('PUT', alias('coffee'), { token: alice.accessToken, body: { room_id: roomId } }), 400, 'M_INVALID_PARAM');
    await fails(
      hs.call('PUT', alias('#cof fee:test.local'), { token: alice.accessToken, body: { room_id: roomId } }),
      400,
      'M_INVALID_PARAM',
    );
    await fails(hs.call('PUT', alias('#coffee:test.local'), { token: alice.accessToken, body: {} }), 400, 'M_MISSING_PARAM');
    await fails(hs.call('PUT', alias('#coffee:test.local'), { token: alice.accessToken, body: { room_id: 7 } }), 400, 'M_BAD_JSON');
    await fails(
      hs.call('PUT', alias('#coffee:test.local'), { token: alice.accessToken, body: { room_id: '!nowhere:test.local' } }),
      400,
      'M_UNKNOWN',
    );
    await fails(hs.call('PUT', alias('#coffee:test.local'), { body: { room_id: roomId } }), 401, 'M_MISSING_TOKEN');
    // A server admin need not be in the room.
    await ok(hs.call('PUT', alias('#admin-made:test.local'), { token: admin.accessToken, body: { room_id: roomId } }));
  });

  test('resolving: 404 for unknown and remote aliases, 400 for malformed ones', async () => {
    await fails(hs.call('GET', alias('#unknown:test.local')), 404, 'M_NOT_FOUND');
    await fails(hs.call('GET', alias('#far:elsewhere.example')), 404, 'M_NOT_FOUND');
    await fails(hs.call('GET', alias('no-sigil')), 400, 'M_INVALID_PARAM');
  });

  test("listing a room's aliases is for its members (or anyone if world-readable)", async () => {
    await fails(hs.call('GET', `${room(roomId)}/aliases`, { token: carol.accessToken }), 403, 'M_FORBIDDEN');
    await fails(hs.call('GET', `${room(roomId)}/aliases`), 401, 'M_MISSING_TOKEN');
    const byAdmin = await ok(hs.call('GET', `${room(roomId)}/aliases`, { token: admin.accessToken }));
    assert.deepEqual(byAdmin.aliases, ['#admin-made:test.local', '#tea:test.local']);
  });

  test('deleting: the creator may; a moderator may; another member may not; then 404', async () => {
    await ok(hs.call('PUT', alias('#by-bob:test.local'), { token: bob.accessToken, body: { room_id: roomId } }));
    await ok(hs.call('PUT', alias('#by-alice:test.local'), { token: alice.accessToken, body: { room_id: roomId } }));
    await fails(hs.call('DELETE', alias('#by-alice:test.local'), { token: bob.accessToken }), 403, 'M_FORBIDDEN');
    await fails(hs.call('DELETE', alias('#by-alice:test.local'), { token: carol.accessToken }), 403, 'M_FORBIDDEN');
    assert.deepEqual(await ok(hs.call('DELETE', alias('#by-bob:test.local'), { token: bob.accessToken })), {});
    await ok(hs.call('DELETE', alias('#by-alice:test.local'), { token: alice.accessToken }));
    await fails(hs.call('GET', alias('#by-bob:test.local')), 404, 'M_NOT_FOUND');
    await fails(hs.call('DELETE', alias('#by-bob:test.local'), { token: bob.accessToken }), 404, 'M_NOT_FOUND');
    await fails(hs.call('DELETE', alias('#x:elsewhere.example'), { token: bob.accessToken }), 400, 'M_INVALID_PARAM');
    // Alice (the room's creator) may delete the alias bob made.
    await ok(hs.call('PUT', alias('#by-bob-again:test.local'), { token: bob.accessToken, body: { room_id: roomId } }));
    await ok(hs.call('DELETE', alias('#by-bob-again:test.local'), { token: alice.accessToken }));
  });

  test('deleting an alias the canonical alias event names rewrites that event without it', async () => {
    await ok(hs.call('PUT', alias('#main:test.local'), { token: alice.accessToken, body: { room_id: roomId } }));
    await ok(hs.call('PUT', alias('#alt:test.local'), { token: alice.accessToken, body: { room_id: roomId } }));
    await ok(
      hs.call('PUT', `${room(roomId)}/state/m.room.canonical_alias`, {
        token: alice.accessToken,
        body: { alias: '#main:test.local', alt_aliases: ['#alt:test.local', '#tea:test.local'] },
      }),
    );
    await ok(hs.call('DELETE', alias('#alt:test.local'), { token: alice.accessToken }));
    assert.deepEqual(await ok(hs.call('GET', `${room(roomId)}/state/m.room.canonical_alias`, { token: alice.accessToken })), {
      alias: '#main:test.local',
      alt_aliases: ['#tea:test.local'],
    });
    await ok(hs.call('DELETE', alias('#main:test.local'), { token: alice.accessToken }));
    assert.deepEqual(await ok(hs.call('GET', `${room(roomId)}/state/m.room.canonical_alias`, { token: alice.accessToken })), {
      alt_aliases: ['#tea:test.local'],
    });
  });
});

forEachBackend('the published room directory', (backend) => {
  let hs: TestHomeserver;
  let alice: TestUser;
  let bob: TestUser;
  const users: TestUser[] = [];
  /** room id by label */
  const rooms: Record<string, string> = {};

  const create = async (label: string, body: Record<string, unknown>) => {
    rooms[label] = (await ok(hs.call('POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body }))).room_id;
  };
  const joinUsers = async (label: string, count: number) => {
    for (const user of users.slice(0, count)) {
      await ok(hs.call('POST', `/_matrix/client/v3/join/${encodeURIComponent(rooms[label]!)}`, { token: user.accessToken, body: {} }));
    }
  };

  before(async () => {
    hs = await backend.startHomeserver();
    alice = await hs.createUser('alice');
    bob = await hs.createUser('bob');
    for (let i = 0; i < 4; i++) users.push(await hs.createUser(`user${i}`));
    await create('tea', {
      preset: 'public_chat',
      visibility: 'public',
      name: 'Tea Room',
      topic: 'Oolong and others',
      room_alias_name: 'tea',
    });
    await create('coffee', { preset: 'public_chat', visibility: 'public', name: 'Coffee' });
    await create('space', { preset: 'public_chat', visibility: 'public', name: 'A space', creation_content: { type: 'm.space' } });
    await create('hidden', { preset: 'public_chat', name: 'Not published' });
    await create('private', { preset: 'private_chat', visibility: 'public', name: 'Invite only' });
    await ok(
      hs.call('PUT', `${room(rooms.coffee!)}/state/m.room.topic`, {
        token: alice.accessToken,
        body: { topic: '', 'm.topic': { 'm.text': [{ mimetype: 'text/html', body: '<b>espresso</b>' }, { body: 'espresso' }] } },
      }),
    );
    await ok(
      hs.call('PUT', `${room(rooms.coffee!)}/state/m.room.guest_access`, { token: alice.accessToken, body: { guest_access: 'can_join' } }),
    );
    await ok(
      hs.call('PUT', `${room(rooms.coffee!)}/state/m.room.avatar`, { token: alice.accessToken, body: { url: 'mxc://test.local/beans' } }),
    );
    await joinUsers('tea', 3);
    await joinUsers('coffee', 1);
  });
  after(() => hs.stop());

  test("/publicRooms lists published, joinable rooms, largest first, with the spec's fields", async () => {
    const res = await ok(hs.call('GET', '/_matrix/client/v3/publicRooms', { token: bob.accessToken }));
    assert.deepEqual(
      res.chunk.map((r: any) => r.room_id),
      [rooms.tea, rooms.coffee, rooms.space],
    );
    assert.equal(res.total_room_count_estimate, 3);
    assert.equal(res.next_batch, undefined);
    assert.equal(res.prev_batch, undefined);
    assert.deepEqual(res.chunk[0], {
      room_id: rooms.tea,
      name: 'Tea Room',
      topic: 'Oolong and others',
      canonical_alias: '#tea:test.local',
      num_joined_members: 4,
      world_readable: false,
      guest_can_join: false,
      join_rule: 'public',
    });
    assert.deepEqual(res.chunk[1], {
      room_id: rooms.coffee,
      name: 'Coffee',
      topic: 'espresso',
      num_joined_members: 2,
      world_readable: false,
      guest_can_join: true,
      join_rule: 'public',
      avatar_url: 'mxc://test.local/beans',
    });
    assert.equal(res.chunk[2].room_type, 'm.space');
  });

  test('POST /publicRooms: search term, room types, third-party lists', async () => {
    const search = async (body: unknown) =>
      (await ok(hs.call('POST', '/_matrix/client/v3/publicRooms', { token: bob.accessToken, body }))).chunk.map((r: any) => r.room_id);
    assert.deepEqual(await search({ filter: { generic_search_term: 'OOLONG' } }), [rooms.tea]);
    assert.deepEqual(await search({ filter: { generic_search_term: '#tea:' } }), [rooms.tea]);
    assert.deepEqual(await search({ filter: { generic_search_term: 'nothing like it' } }), []);
    assert.deepEqual(await search({ filter: { room_types: ['m.space'] } }), [rooms.space]);
    assert.deepEqual(await search({ filter: { room_types: [null] } }), [rooms.tea, rooms.coffee]);
    assert.deepEqual(await search({ include_all_networks: true }), [rooms.tea, rooms.coffee, rooms.space]);
    assert.deepEqual(await search({ third_party_instance_id: 'irc|libera' }), []);
    await fails(
      hs.call('POST', '/_matrix/client/v3/publicRooms', {
        token: bob.accessToken,
        body: { include_all_networks: true, third_party_instance_id: 'x' },
      }),
      400,
      'M_INVALID_PARAM',
    );
    await fails(hs.call('POST', '/_matrix/client/v3/publicRooms', { token: bob.accessToken, body: { limit: 'ten' } }), 400, 'M_BAD_JSON');
    await fails(
      hs.call('POST', '/_matrix/client/v3/publicRooms', { token: bob.accessToken, body: { filter: { room_types: 'm.space' } } }),
      400,
      'M_BAD_JSON',
    );
    await fails(hs.call('POST', '/_matrix/client/v3/publicRooms', { token: bob.accessToken, body: { filter: [] } }), 400, 'M_BAD_JSON');
  });

  test('pagination: next_batch forwards, prev_batch back, no repeats', async () => {
    const first = await ok(hs.call('GET', '/_matrix/client/v3/publicRooms?limit=1', { token: bob.accessToken }));
    assert.deepEqual(
      first.chunk.map((r: any) => r.room_id),
      [rooms.tea],
    );
    assert.equal(first.prev_batch, undefined);
    const second = await ok(hs.call('GET', `/_matrix/client/v3/publicRooms?limit=1&since=${first.next_batch}`, { token: bob.accessToken }));
    assert.deepEqual(
      second.chunk.map((r: any) => r.room_id),
      [rooms.coffee],
    );
    const third = await ok(
      hs.call('POST', '/_matrix/client/v3/publicRooms', { token: bob.accessToken, body: { limit: 1, since: second.next_batch } }),
    );
    assert.deepEqual(
      third.chunk.map((r: any) => r.room_id),
      [rooms.space],
    );
    assert.equal(third.next_batch, undefined);
    const back = await ok(hs.call('GET', `/_matrix/client/v3/publicRooms?limit=2&since=${third.prev_batch}`, { token: bob.accessToken }));
    assert.deepEqual(
      back.chunk.map((r: any) => r.room_id),
      [rooms.tea, rooms.coffee],
    );
    assert.equal(back.prev_batch, undefined);
    assert.equal(typeof back.next_batch, 'string');
    await fails(hs.call('GET', '/_matrix/client/v3/publicRooms?since=bogus', { token: bob.accessToken }), 400, 'M_INVALID_PARAM');
    await fails(hs.call('GET', '/_matrix/client/v3/publicRooms?limit=-3', { token: bob.accessToken }), 400, 'M_INVALID_PARAM');
  });

  test("/publicRooms needs a token (Synapse's default); another server's list is asked of it", async () => {
    await fails(hs.call('GET', '/_matrix/client/v3/publicRooms'), 401, 'M_MISSING_TOKEN');
    await fails(hs.call('POST', '/_matrix/client/v3/publicRooms', { body: {} }), 401, 'M_MISSING_TOKEN');
    assert.equal((await hs.call('GET', '/_matrix/client/v3/publicRooms?server=test.local', { token: bob.accessToken })).status, 200);
    // another server's list is asked of it over federation: here refused by the IP range blacklist, so 502
    await fails(hs.call('GET', '/_matrix/client/v3/publicRooms?server=127.0.0.1:1', { token: bob.accessToken }), 502, 'M_UNKNOWN');
    await fails(hs.call('GET', '/_matrix/client/v3/publicRooms?server=bad%20name', { token: bob.accessToken }), 400, 'M_INVALID_PARAM');
  });

  test("a room's visibility: read by anyone, changed by moderators, 404 for unknown rooms", async () => {
    assert.deepEqual(await ok(hs.call('GET', listEntry(rooms.hidden!))), { visibility: 'private' });
    assert.deepEqual(await ok(hs.call('GET', listEntry(rooms.tea!))), { visibility: 'public' });
    await fails(hs.call('GET', listEntry('!nowhere:test.local')), 404, 'M_NOT_FOUND');

    const member = users[0]!;
    await ok(hs.call('POST', `/_matrix/client/v3/join/${encodeURIComponent(rooms.hidden!)}`, { token: member.accessToken, body: {} }));
    await fails(
      hs.call('PUT', listEntry(rooms.hidden!), { token: member.accessToken, body: { visibility: 'public' } }),
      403,
      'M_FORBIDDEN',
    );
    await fails(hs.call('PUT', listEntry(rooms.hidden!), { token: bob.accessToken, body: { visibility: 'public' } }), 403, 'M_FORBIDDEN');
    await fails(hs.call('PUT', listEntry(rooms.hidden!), { token: alice.accessToken, body: { visibility: 'open' } }), 400, 'M_BAD_JSON');
    await fails(
      hs.call('PUT', listEntry('!nowhere:test.local'), { token: alice.accessToken, body: { visibility: 'public' } }),
      404,
      'M_NOT_FOUND',
    );
    await fails(hs.call('PUT', listEntry(rooms.hidden!), { body: { visibility: 'public' } }), 401, 'M_MISSING_TOKEN');

    // `visibility` defaults to public.
    assert.deepEqual(await ok(hs.call('PUT', listEntry(rooms.hidden!), { token: alice.accessToken, body: {} })), {});
    assert.deepEqual(await ok(hs.call('GET', listEntry(rooms.hidden!))), { visibility: 'public' });
    let listed = await ok(hs.call('GET', '/_matrix/client/v3/publicRooms', { token: bob.accessToken }));
    assert.ok(listed.chunk.some((r: any) => r.room_id === rooms.hidden));
    await ok(hs.call('PUT', listEntry(rooms.hidden!), { token: alice.accessToken, body: { visibility: 'private' } }));
    listed = await ok(hs.call('GET', '/_matrix/client/v3/publicRooms', { token: bob.accessToken }));
    assert.ok(!listed.chunk.some((r: any) => r.room_id === rooms.hidden));
  });
});
