// The room-reading area's SQL in one room, on both backends: pagination and visibility over state
// intervals, aliases, the published list, the user directory search (LIKE with escapes) and
// profile propagation.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { forEachBackend } from '../helpers/backends.js';
import type { TestHomeserver, TestUser } from '../helpers/homeserver.js';
import { ok } from '../helpers/http.js';

forEachBackend('room reads, directory and profiles in one room', (backend) => {
  let hs: TestHomeserver;
  let alice: TestUser;
  let bob: TestUser;
  let roomId: string;
  before(async () => {
    hs = await backend.startHomeserver();
    alice = await hs.createUser('alice', { displayname: 'Alice 50%_off' });
    bob = await hs.createUser('bob', { displayname: 'Bob' });
    roomId = (
      await ok(
        hs.call('POST', '/_matrix/client/v3/createRoom', {
          token: alice.accessToken,
          body: {
            preset: 'public_chat',
            visibility: 'public',
            name: 'PG room',
            room_alias_name: 'pg',
            initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'joined' } }],
          },
        }),
      )
    ).room_id;
    for (let i = 0; i < 30; i++) {
      await ok(
        hs.call('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/early${i}`, {
          token: alice.accessToken,
          body: { msgtype: 'm.text', body: `early ${i}` },
        }),
      );
    }
    await ok(hs.call('POST', `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, { token: bob.accessToken, body: {} }));
    await ok(
      hs.call('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/late`, {
        token: alice.accessToken,
        body: { msgtype: 'm.text', body: 'late' },
      }),
    );
  });
  after(() => hs.stop());

  test('/messages pages through the room and hides what a late joiner may not see', async () => {
    const seen: string[] = [];
    let from = '';
    for (;;) {
      const res = await ok(
        hs.call('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=4${from}`, {
          token: alice.accessToken,
        }),
      );
      for (const e of res.chunk) if (e.type === 'm.room.message') seen.push(e.content.body);
      if (res.end === undefined) break;
      from = `&from=${res.end}`;
    }
    assert.equal(seen.length, 31);
    const bobs = await ok(
      hs.call('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=50`, { token: bob.accessToken }),
    );
    assert.deepEqual(
      bobs.chunk.filter((e: any) => e.type === 'm.room.message').map((e: any) => e.content.body),
      ['late'],
    );
    const context = await ok(
      hs.call(
        'GET',
        `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/context/${encodeURIComponent(bobs.chunk[0].event_id)}?limit=4`,
        { token: alice.accessToken },
      ),
    );
    assert.equal(context.events_before.length, 2);
  });

  test('aliases, the published list and the user directory', async () => {
    assert.equal((await ok(hs.call('GET', '/_matrix/client/v3/directory/room/%23pg%3Atest.local'))).room_id, roomId);
    await ok(
      hs.call('PUT', '/_matrix/client/v3/directory/room/%23pg2%3Atest.local', { token: bob.accessToken, body: { room_id: roomId } }),
    );
    assert.deepEqual(
      (await ok(hs.call('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/aliases`, { token: bob.accessToken }))).aliases,
      ['#pg2:test.local', '#pg:test.local'],
    );
    await ok(hs.call('DELETE', '/_matrix/client/v3/directory/room/%23pg2%3Atest.local', { token: bob.accessToken }));
    const listed = await ok(
      hs.call('POST', '/_matrix/client/v3/publicRooms', { token: bob.accessToken, body: { filter: { generic_search_term: 'pg' } } }),
    );
    assert.deepEqual(
      listed.chunk.map((r: any) => [r.room_id, r.num_joined_members]),
      [[roomId, 2]],
    );
    const found = await ok(
      hs.call('POST', '/_matrix/client/v3/user_directory/search', { token: bob.accessToken, body: { search_term: '50%_' } }),
    );
    assert.deepEqual(found.results, [{ user_id: alice.userId, display_name: 'Alice 50%_off' }]);
  });

  test('a profile change reaches the member event', async () => {
    await ok(
      hs.call('PUT', `/_matrix/client/v3/profile/${encodeURIComponent(bob.userId)}/displayname`, {
        token: bob.accessToken,
        body: { displayname: 'Robert' },
      }),
    );
    const member = await ok(
      hs.call('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.member/${encodeURIComponent(bob.userId)}`, {
        token: alice.accessToken,
      }),
    );
    assert.equal(member.displayname, 'Robert');
  });
});
