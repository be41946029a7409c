// POST /user_directory/search over real HTTP: who can be found (users sharing a room, users in
// public rooms, oneself only through a public room), matching, ordering, limits, errors, and the
// directory following rooms that become public or private.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TestHomeserver, TestUser } from '../helpers/homeserver.js';
import { forEachBackend } from '../helpers/backends.js';
import { ok } from '../helpers/http.js';

forEachBackend('user directory search', (backend) => {
  let hs: TestHomeserver;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let dave: TestUser;
  let erin: TestUser;
  let privateRoom: string;

  const search = async (user: TestUser, body: Record<string, unknown>) =>
    ok(hs.call('POST', '/_matrix/client/v3/user_directory/search', { token: user.accessToken, body }));
  const ids = (res: any) => res.results.map((r: any) => r.user_id);
  const join = (user: TestUser, roomId: string) =>
    ok(hs.call('POST', `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, { token: user.accessToken, body: {} }));

  before(async () => {
    hs = await backend.startHomeserver();
    alice = await hs.createUser('alice', { displayname: 'Alice Liddell' });
    bob = await hs.createUser('bob', { displayname: 'Bob the Builder' });
    carol = await hs.createUser('carol', { displayname: 'Carol 100%_sure' });
    dave = await hs.createUser('dave', { displayname: 'Dave' });
    erin = await hs.createUser('erin', { displayname: 'Erin' });
    // alice and bob share a private room; carol sits in a public room; dave is in no room.
    privateRoom = (
      await ok(
        hs.call('POST', '/_matrix/client/v3/createRoom', {
          token: alice.accessToken,
          body: { preset: 'private_chat', invite: [bob.userId] },
        }),
      )
    ).room_id;
    await join(bob, privateRoom);
    const publicRoom = (
      await ok(hs.call('POST', '/_matrix/client/v3/createRoom', { token: carol.accessToken, body: { preset: 'public_chat' } }))
    ).room_id;
    assert.ok(publicRoom);
  });
  after(() => hs.stop());

  test('finds users who share a room and users in public rooms, by id or display name, case-insensitively', async () => {
    assert.deepEqual(await search(alice, { search_term: 'BUILDER' }), {
      limited: false,
      results: [{ user_id: bob.userId, display_name: 'Bob the Builder' }],
    });
    assert.deepEqual(ids(await search(alice, { search_term: '@bob' })), [bob.userId]);
    assert.deepEqual(ids(await search(alice, { search_term: 'carol' })), [carol.userId], 'carol is in a public room');
    assert.deepEqual(ids(await search(alice, { search_term: 'dave' })), [], 'dave shares no room and is in no public room');
    assert.deepEqual(ids(await search(erin, { search_term: 'bob' })), [], 'erin shares no room with bob');
  });

  test('the requester finds themself only through a public room, as Synapse', async () => {
    assert.deepEqual(ids(await search(alice, { search_term: 'alice' })), []);
    assert.deepEqual(ids(await search(carol, { search_term: 'carol' })), [carol.userId]);
  });

  test('% and _ in the term match literally', async () => {
    assert.deepEqual(ids(await search(alice, { search_term: '100%_' })), [carol.userId]);
    assert.deepEqual(ids(await search(alice, { search_term: 'b_b' })), []);
  });

  test('limit, limited, and the order: prefix matches first', async () => {
    const lounge = (
      await ok(hs.call('POST', '/_matrix/client/v3/createRoom', { token: dave.accessToken, body: { preset: 'public_chat' } }))
    ).room_id;
    const members: TestUser[] = [];
    for (const name of ['zed', 'yan', 'xia']) {
      const user = await hs.createUser(`${name}-lounger`, { displayname: `${name} lounger` });
      await join(user, lounge);
      members.push(user);
    }
    const twoOfThree = await search(erin, { search_term: 'lounger', limit: 2 });
    assert.equal(twoOfThree.limited, true);
    assert.equal(twoOfThree.results.length, 2);
    const all = await search(erin, { search_term: 'lounger' });
    assert.equal(all.limited, false);
    assert.deepEqual(ids(all).sort(), members.map((m) => m.userId).sort());
    const prefix = await search(erin, { search_term: 'xia' });
    assert.equal(prefix.results[0].user_id, members[2]!.userId);
    // Synapse clamps the limit to 0..50.
    assert.equal((await search(erin, { search_term: 'lounger', limit: -5 })).results.length, 0);
  });

  test('follows rooms made public and private again', async () => {
    assert.deepEqual(ids(await search(erin, { search_term: 'alice' })), []);
    await ok(
      hs.call('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(privateRoom)}/state/m.room.join_rules`, {
        token: alice.accessToken,
        body: { join_rule: 'public' },
      }),
    );
    assert.deepEqual(ids(await search(erin, { search_term: 'alice' })), [alice.userId]);
    await ok(
      hs.call('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(privateRoom)}/state/m.room.join_rules`, {
        token: alice.accessToken,
        body: { join_rule: 'invite' },
      }),
    );
    assert.deepEqual(ids(await search(erin, { search_term: 'alice' })), []);
    await ok(
      hs.call('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(privateRoom)}/state/m.room.history_visibility`, {
        token: alice.accessToken,
        body: { history_visibility: 'world_readable' },
      }),
    );
    assert.deepEqual(ids(await search(erin, { search_term: 'alice' })), [alice.userId], 'world-readable rooms count as public');
  });

  test('display name and avatar follow profile changes; deactivated users are not found', async () => {
    await ok(
      hs.call('PUT', `/_matrix/client/v3/profile/${encodeURIComponent(bob.userId)}/avatar_url`, {
        token: bob.accessToken,
        body: { avatar_url: 'mxc://test.local/bob' },
      }),
    );
    assert.deepEqual((await search(alice, { search_term: 'builder' })).results, [
      { user_id: bob.userId, display_name: 'Bob the Builder', avatar_url: 'mxc://test.local/bob' },
    ]);
    await hs.homeserver.services.stores.users.setDeactivated(bob.userId);
    assert.deepEqual(ids(await search(alice, { search_term: 'builder' })), []);
  });

  test('errors: missing or mistyped fields, guests, no token', async () => {
    const call = (body: unknown, token: string | null = alice.accessToken) =>
      hs.call('POST', '/_matrix/client/v3/user_directory/search', token === null ? { body } : { token, body });
    const expect = async (res: Promise<any>, status: number, errcode: string) => {
      const done = await res;
      assert.deepEqual([done.status, done.json.errcode], [status, errcode], done.text);
    };
    await expect(call({}), 400, 'M_MISSING_PARAM');
    await expect(call({ search_term: 5 }), 400, 'M_BAD_JSON');
    await expect(call({ search_term: 'a', limit: 'many' }), 400, 'M_BAD_JSON');
    await expect(call({ search_term: 'a' }, null), 401, 'M_MISSING_TOKEN');
    await expect(call({ search_term: 'a' }, 'nope'), 401, 'M_UNKNOWN_TOKEN');
    const guest = await hs.createUser('guest');
    await hs.homeserver.database.run('UPDATE users SET is_guest = 1 WHERE user_id = ?', [guest.userId]);
    await expect(call({ search_term: 'a' }, guest.accessToken), 403, 'M_GUEST_ACCESS_FORBIDDEN');
  });
});
