// Profiles over real HTTP: reading, setting and deleting the display name and avatar, the checks
// on who may change what, and the change reaching the user's member event in every joined room.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TestHomeserver, TestUser } from '../helpers/homeserver.js';
import { forEachBackend } from '../helpers/backends.js';
import { fails, ok } from '../helpers/http.js';

const profile = (userId: string, field?: string) => `/_matrix/client/v3/profile/${encodeURIComponent(userId)}${field ? `/${field}` : ''}`;

forEachBackend('profiles', (backend) => {
  let hs: TestHomeserver;
  let alice: TestUser;
  let bob: TestUser;
  let admin: TestUser;

  before(async () => {
    hs = await backend.startHomeserver();
    alice = await hs.createUser('alice', { displayname: 'Alice' });
    bob = await hs.createUser('bob', { displayname: 'Bob' });
    admin = await hs.createUser('admin', { admin: true });
  });
  after(() => hs.stop());

  test('reading a profile needs no token; fields that are not set are absent', async () => {
    assert.deepEqual(await ok(hs.call('GET', profile(alice.userId))), { displayname: 'Alice' });
    assert.deepEqual(await ok(hs.call('GET', profile(alice.userId, 'displayname'))), { displayname: 'Alice' });
    await fails(hs.call('GET', profile(alice.userId, 'avatar_url')), 404, 'M_NOT_FOUND');
    await fails(hs.call('GET', profile(alice.userId, 'm.tz')), 404, 'M_NOT_FOUND');
  });

  test('unknown users, remote users and bad ids', async () => {
    await fails(hs.call('GET', profile('@nobody:test.local')), 404, 'M_NOT_FOUND');
    await fails(hs.call('GET', profile('@nobody:test.local', 'displayname')), 404, 'M_NOT_FOUND');
    // Asked of their server (test/federation/client-reads.test.ts); localhost is in the default IP blacklist.
    await fails(hs.call('GET', profile('@someone:localhost:1')), 502, 'M_UNKNOWN');
    await fails(hs.call('GET', profile('not-a-user-id')), 400, 'M_INVALID_PARAM');
    await fails(hs.call('GET', profile(alice.userId, 'Bad-Key')), 400, 'M_INVALID_PARAM');
    await fails(hs.call('GET', profile(alice.userId, `a.${'b'.repeat(300)}`)), 400, 'M_KEY_TOO_LARGE');
  });

  test('a user with nothing in their profile has no profile (as Synapse)', async () => {
    const empty = await hs.createUser('empty');
    await ok(hs.call('DELETE', profile(empty.userId, 'displayname'), { token: empty.accessToken }));
    await fails(hs.call('GET', profile(empty.userId)), 404, 'M_NOT_FOUND');
  });

  test('setting: only yourself (or a server admin), strings only, within the length limits', async () => {
    await fails(
      hs.call('PUT', profile(alice.userId, 'displayname'), { token: bob.accessToken, body: { displayname: 'Mallory' } }),
      403,
      'M_FORBIDDEN',
    );
    await fails(hs.call('PUT', profile(alice.userId, 'displayname'), { body: { displayname: 'Mallory' } }), 401, 'M_MISSING_TOKEN');
    await fails(
      hs.call('PUT', profile(alice.userId, 'displayname'), { token: 'nope', body: { displayname: 'Mallory' } }),
      401,
      'M_UNKNOWN_TOKEN',
    );
    await fails(hs.call('PUT', profile(alice.userId, 'displayname'), { token: alice.accessToken, body: {} }), 400, 'M_MISSING_PARAM');
    await fails(
      hs.call('PUT', profile(alice.userId, 'displayname'), { token: alice.accessToken, body: { displayname: 42 } }),
      400,
      'M_BAD_JSON',
    );
    await fails(
      hs.call('PUT', profile(alice.userId, 'displayname'), { token: alice.accessToken, body: { displayname: null } }),
      400,
      'M_BAD_JSON',
    );
    await fails(
      hs.call('PUT', profile(alice.userId, 'displayname'), { token: alice.accessToken, body: { displayname: 'x'.repeat(257) } }),
      400,
      'M_INVALID_PARAM',
    );
    await fails(
      hs.call('PUT', profile(alice.userId, 'avatar_url'), {
        token: alice.accessToken,
        body: { avatar_url: `mxc://test.local/${'x'.repeat(1000)}` },
      }),
      400,
      'M_INVALID_PARAM',
    );
    await fails(
      hs.call('PUT', profile(alice.userId, 'm.tz'), { token: alice.accessToken, body: { 'm.tz': 'Europe/Paris' } }),
      403,
      'M_FORBIDDEN',
    );
    await fails(
      hs.call('PUT', profile('@x:elsewhere.example', 'displayname'), { token: admin.accessToken, body: { displayname: 'X' } }),
      400,
      'M_INVALID_PARAM',
    );
    await ok(hs.call('PUT', profile(alice.userId, 'displayname'), { token: alice.accessToken, body: { displayname: '  Alice L.  ' } }));
    assert.deepEqual(await ok(hs.call('GET', profile(alice.userId, 'displayname'))), { displayname: 'Alice L.' }, 'trimmed');
    await ok(hs.call('PUT', profile(bob.userId, 'displayname'), { token: admin.accessToken, body: { displayname: 'Robert' } }));
    assert.deepEqual(await ok(hs.call('GET', profile(bob.userId))), { displayname: 'Robert' });
  });

  test('an empty string or DELETE unsets a field', async () => {
    await ok(
      hs.call('PUT', profile(alice.userId, 'avatar_url'), { token: alice.accessToken, body: { avatar_url: 'mxc://test.local/alice' } }),
    );
    assert.deepEqual(await ok(hs.call('GET', profile(alice.userId))), { displayname: 'Alice L.', avatar_url: 'mxc://test.local/alice' });
    await ok(hs.call('PUT', profile(alice.userId, 'avatar_url'), { token: alice.accessToken, body: { avatar_url: '' } }));
    await fails(hs.call('GET', profile(alice.userId, 'avatar_url')), 404, 'M_NOT_FOUND');
    await ok(
      hs.call('PUT', profile(alice.userId, 'avatar_url'), { token: alice.accessToken, body: { avatar_url: 'mxc://test.local/alice' } }),
    );
    await ok(hs.call('DELETE', profile(alice.userId, 'avatar_url'), { token: alice.accessToken }));
    assert.deepEqual(await ok(hs.call('GET', profile(alice.userId))), { displayname: 'Alice L.' });
    await fails(hs.call('DELETE', profile(alice.userId, 'avatar_url'), { token: bob.accessToken }), 403, 'M_FORBIDDEN');
  });

  test('a change updates the member event in every joined room, and nowhere else', async () => {
    const carol = await hs.createUser('carol', { displayname: 'Carol' });
    const rooms: string[] = [];
    for (let i = 0; i < 3; i++) {
      rooms.push(
        (await ok(hs.call('POST', '/_matrix/client/v3/createRoom', { token: carol.accessToken, body: { preset: 'public_chat' } }))).room_id,
      );
    }
    const left = (await ok(hs.call('POST', '/_matrix/client/v3/createRoom', { token: bob.accessToken, body: { preset: 'public_chat' } })))
      .room_id;
    await ok(hs.call('POST', `/_matrix/client/v3/join/${encodeURIComponent(left)}`, { token: carol.accessToken, body: {} }));
    await ok(hs.call('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(left)}/leave`, { token: carol.accessToken, body: {} }));
    // A member event carrying keys of its own keeps them (but not a restricted join's authoriser).
    await ok(
      hs.call('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(rooms[0]!)}/state/m.room.member/${encodeURIComponent(carol.userId)}`, {
        token: carol.accessToken,
        body: { membership: 'join', displayname: 'Carol', 'org.example.flair': 'teapot' },
      }),
    );

    await ok(hs.call('PUT', profile(carol.userId, 'displayname'), { token: carol.accessToken, body: { displayname: 'Caroline' } }));
    await ok(
      hs.call('PUT', profile(carol.userId, 'avatar_url'), { token: carol.accessToken, body: { avatar_url: 'mxc://test.local/caroline' } }),
    );

    for (const roomId of rooms) {
      const member = await ok(
        hs.call('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.member/${encodeURIComponent(carol.userId)}`, {
          token: carol.accessToken,
        }),
      );
      assert.equal(member.membership, 'join');
      assert.equal(member.displayname, 'Caroline');
      assert.equal(member.avatar_url, 'mxc://test.local/caroline');
      assert.equal(member.join_authorised_via_users_server, undefined);
    }
    const withFlair = await ok(
      hs.call('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(rooms[0]!)}/state/m.room.member/${encodeURIComponent(carol.userId)}`, {
        token: carol.accessToken,
      }),
    );
    assert.equal(withFlair['org.example.flair'], 'teapot');
    const inLeftRoom = await ok(
      hs.call('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(left)}/state/m.room.member/${encodeURIComponent(carol.userId)}`, {
        token: bob.accessToken,
      }),
    );
    assert.deepEqual([inLeftRoom.membership, inLeftRoom.displayname], ['leave', undefined], 'rooms the user left are untouched');

    // The change is an ordinary state change others see in the timeline, with prev_content.
    const timeline = await ok(
      hs.call('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(rooms[1]!)}/messages?dir=b&limit=2`, { token: carol.accessToken }),
    );
    const [avatarChange, nameChange] = timeline.chunk;
    assert.equal(nameChange.type, 'm.room.member');
    assert.equal(nameChange.content.displayname, 'Caroline');
    assert.equal(nameChange.unsigned.prev_content.displayname, 'Carol');
    assert.equal(avatarChange.content.avatar_url, 'mxc://test.local/caroline');

    // Setting the same value again changes nothing in the rooms.
    await ok(hs.call('PUT', profile(carol.userId, 'displayname'), { token: carol.accessToken, body: { displayname: 'Caroline' } }));
    const after = await ok(
      hs.call('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(rooms[1]!)}/messages?dir=b&limit=1`, { token: carol.accessToken }),
    );
    assert.equal(after.chunk[0].event_id, avatarChange.event_id);
  });

  test('a room that refuses the member event does not stop the others', async () => {
    const dan = await hs.createUser('dan', { displayname: 'Dan' });
    const crowded = (
      await ok(hs.call('POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: { preset: 'public_chat' } }))
    ).room_id;
    const roomy = (
      await ok(hs.call('POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: { preset: 'public_chat' } }))
    ).room_id;
    for (const roomId of [crowded, roomy])
      await ok(hs.call('POST', `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, { token: dan.accessToken, body: {} }));
    // In one room, dan's member event carries a custom key that leaves it just under the 64 KiB
    // event limit, so a long display name cannot fit there (413 M_TOO_LARGE from the writer).
    const memberPath = `/_matrix/client/v3/rooms/${encodeURIComponent(crowded)}/state/m.room.member/${encodeURIComponent(dan.userId)}`;
    let filler = 65_000;
    for (;;) {
      const res = await hs.call('PUT', memberPath, {
        token: dan.accessToken,
        body: { membership: 'join', displayname: 'Dan', 'org.example.notes': 'x'.repeat(filler) },
      });
      if (res.status === 200) break;
      assert.equal(res.json.errcode, 'M_TOO_LARGE', res.text);
      filler -= 50;
    }
    const longName = 'Daniel '.repeat(36);
    await ok(hs.call('PUT', profile(dan.userId, 'displayname'), { token: dan.accessToken, body: { displayname: longName } }));
    const member = (roomId: string) =>
      ok(
        hs.call('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.member/${encodeURIComponent(dan.userId)}`, {
          token: dan.accessToken,
        }),
      );
    assert.equal((await member(crowded)).displayname, 'Dan');
    assert.equal((await member(roomy)).displayname, longName.trim());
    assert.deepEqual(await ok(hs.call('GET', profile(dan.userId))), { displayname: longName.trim() });
  });
});
