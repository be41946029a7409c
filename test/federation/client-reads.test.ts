// What clients read from other servers, end to end between two real Myelins over TLS on loopback:
// remote profiles, remote aliases (and joining by one), another server's public room list, and
// /messages backfilling the history of a room joined over federation down to its create event.
// Unreachable servers and "not found" answers are checked as the client sees them.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { JsonObject } from '../../src/core/json.js';
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

const enc = encodeURIComponent;
/** A server name on loopback where nothing listens. */
const UNREACHABLE = 'localhost:1';

forEachBackend('what clients read from other servers', (backend) => {
  let a: FederatingServer;
  let b: FederatingServer;
  let alice: TestUser;
  let bob: TestUser;

  before(async () => {
    a = await startFederatingServer({ database: await backend.databaseConfig(), config: { allow_public_rooms_over_federation: true } });
    b = await startFederatingServer({ database: await backend.databaseConfig() });
    alice = await a.hs.createUser('alice', { displayname: 'Alice of A' });
    bob = await b.hs.createUser('bob', { displayname: 'Bob' });
  });
  after(async () => {
    await b?.stop();
    await a?.stop();
  });

  test('remote profiles: /profile, /displayname, /avatar_url of a user of A from B; 404 when A has none; 502 unreachable', async () => {
    const avatar = await clientCall(a, alice, 'PUT', `/_matrix/client/v3/profile/${enc(alice.userId)}/avatar_url`, {
      avatar_url: 'mxc://a/alice',
    });
    assert.equal(avatar.status, 200, avatar.text);

    const profile = await clientCall(b, bob, 'GET', `/_matrix/client/v3/profile/${enc(alice.userId)}`);
    assert.equal(profile.status, 200, profile.text);
    assert.deepEqual(profile.json, { displayname: 'Alice of A', avatar_url: 'mxc://a/alice' });
    const name = await clientCall(b, bob, 'GET', `/_matrix/client/v3/profile/${enc(alice.userId)}/displayname`);
    assert.equal(name.status, 200, name.text);
    assert.deepEqual(name.json, { displayname: 'Alice of A' });
    const url = await clientCall(b, bob, 'GET', `/_matrix/client/v3/profile/${enc(alice.userId)}/avatar_url`);
    assert.deepEqual(url.json, { avatar_url: 'mxc://a/alice' });

    const nobody = await clientCall(b, bob, 'GET', `/_matrix/client/v3/profile/${enc(`@nobody:${a.serverName}`)}`);
    assert.equal(nobody.status, 404, nobody.text);
    assert.equal(nobody.json.errcode, 'M_NOT_FOUND');
    const nobodyName = await clientCall(b, bob, 'GET', `/_matrix/client/v3/profile/${enc(`@nobody:${a.serverName}`)}/displayname`);
    assert.equal(nobodyName.status, 404, nobodyName.text);

    const lost = await clientCall(b, bob, 'GET', `/_matrix/client/v3/profile/${enc(`@someone:${UNREACHABLE}`)}`);
    assert.equal(lost.status, 502, lost.text);
    assert.equal(lost.json.errcode, 'M_UNKNOWN');
  });

  test('remote aliases: /directory/room of an alias of A from B; 404 unknown; 502 unreachable; joining by the alias', async () => {
    const roomId = await createRoom(a, alice, { preset: 'public_chat', room_alias_name: 'lobby', name: 'Lobby' });
    const alias = `#lobby:${a.serverName}`;
    const resolved = await clientCall(b, bob, 'GET', `/_matrix/client/v3/directory/room/${enc(alias)}`);
    assert.equal(resolved.status, 200, resolved.text);
    assert.equal(resolved.json.room_id, roomId);
    assert.equal(resolved.json.servers[0], a.serverName);

    const unknown = await clientCall(b, bob, 'GET', `/_matrix/client/v3/directory/room/${enc(`#nothing:${a.serverName}`)}`);
    assert.equal(unknown.status, 404, unknown.text);
    assert.equal(unknown.json.errcode, 'M_NOT_FOUND');
    const lost = await clientCall(b, bob, 'GET', `/_matrix/client/v3/directory/room/${enc(`#lobby:${UNREACHABLE}`)}`);
    assert.equal(lost.status, 502, lost.text);
    assert.equal(lost.json.errcode, 'M_UNKNOWN');

    // Joining by the alias resolves it the same way, then joins through A.
    const joined = await clientCall(b, bob, 'POST', `/_matrix/client/v3/join/${enc(alias)}`, {});
    assert.equal(joined.status, 200, joined.text);
    assert.equal(joined.json.room_id, roomId);
    const member = await clientCall(a, alice, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(bob.userId)}`);
    assert.equal(member.json?.membership, 'join');
    const noAlias = await clientCall(b, bob, 'POST', `/_matrix/client/v3/join/${enc(`#nothing:${a.serverName}`)}`, {});
    assert.equal(noAlias.status, 404, noAlias.text);
  });

  test("/publicRooms?server=: A's list from B (GET and POST, limit, since, filter); 403 when not shared; 502 unreachable", async () => {
    const names = ['Garden', 'Kitchen', 'Library'];
    const ids: string[] = [];
    for (const name of names)
      ids.push(await createRoom(a, alice, { preset: 'public_chat', visibility: 'public', name, topic: `${name} talk` }));

    const all = await clientCall(b, bob, 'GET', `/_matrix/client/v3/publicRooms?server=${enc(a.serverName)}`);
    assert.equal(all.status, 200, all.text);
    for (const id of ids)
      assert.ok(
        (all.json.chunk as JsonObject[]).some((r) => r.room_id === id),
        `${id} is listed`,
      );

    // Paged with limit and since, through the other server's tokens.
    const first = await clientCall(b, bob, 'GET', `/_matrix/client/v3/publicRooms?server=${enc(a.serverName)}&limit=1`);
    assert.equal(first.json.chunk.length, 1);
    assert.equal(typeof first.json.next_batch, 'string');
    const second = await clientCall(
      b,
      bob,
      'GET',
      `/_matrix/client/v3/publicRooms?server=${enc(a.serverName)}&limit=1&since=${enc(first.json.next_batch)}`,
    );
    assert.equal(second.status, 200, second.text);
    assert.equal(second.json.chunk.length, 1);
    assert.notEqual(second.json.chunk[0].room_id, first.json.chunk[0].room_id);

    // POST with a search filter: the other server searches.
    const searched = await clientCall(b, bob, 'POST', `/_matrix/client/v3/publicRooms?server=${enc(a.serverName)}`, {
      limit: 10,
      filter: { generic_search_term: 'kitchen' },
      include_all_networks: false,
    });
    assert.equal(searched.status, 200, searched.text);
    assert.deepEqual(
      (searched.json.chunk as JsonObject[]).map((r) => r.name),
      ['Kitchen'],
    );

    // B does not share its list over federation (the default): A's user is told so.
    const refused = await clientCall(a, alice, 'GET', `/_matrix/client/v3/publicRooms?server=${enc(b.serverName)}`);
    assert.equal(refused.status, 403, refused.text);
    assert.equal(refused.json.errcode, 'M_FORBIDDEN');
    const lost = await clientCall(b, bob, 'POST', `/_matrix/client/v3/publicRooms?server=${enc(UNREACHABLE)}`, {});
    assert.equal(lost.status, 502, lost.text);
    assert.equal(lost.json.errcode, 'M_UNKNOWN');
  });

  test('backfill: a user of B joining after 300 messages pages /messages to the create event, each event once, in order', async () => {
    const roomId = await createRoom(a, alice, { preset: 'public_chat', name: 'History' });
    const sent: string[] = [];
    for (let i = 0; i < 300; i++) {
      const res = await clientCall(a, alice, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/h${i}`, {
        msgtype: 'm.text',
        body: `message ${i}`,
      });
      assert.equal(res.status, 200, res.text);
      sent.push(res.json.event_id as string);
    }
    // The whole history as A holds it, oldest first: what B must end up showing.
    const expected: string[] = [];
    let token: string | undefined;
    for (;;) {
      const page = await clientCall(
        a,
        alice,
        'GET',
        `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=100${token ? `&from=${enc(token)}` : ''}`,
      );
      assert.equal(page.status, 200, page.text);
      expected.unshift(...(page.json.chunk as JsonObject[]).map((e) => e.event_id as string).reverse());
      if (page.json.end === undefined) break;
      token = page.json.end;
    }

    const carol = await b.hs.createUser(`carol-${backend.name}`);
    const joined = await clientCall(b, carol, 'POST', `/_matrix/client/v3/join/${enc(roomId)}?via=${enc(a.serverName)}`, {});
    assert.equal(joined.status, 200, joined.text);
    const initial = await clientCall(b, carol, 'GET', '/_matrix/client/v3/sync?timeout=0');
    assert.equal(initial.status, 200, initial.text);
    const section = initial.json.rooms.join[roomId];
    assert.ok(section, 'the room is joined on B');

    // Paging back from the sync's prev_batch, 40 at a time, to the very beginning.
    const seen: JsonObject[] = [...(section.timeline.events as JsonObject[])].reverse();
    let from: string | undefined = section.timeline.prev_batch;
    let pages = 0;
    while (from !== undefined) {
      const page = await clientCall(b, carol, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=40&from=${enc(from)}`);
      assert.equal(page.status, 200, page.text);
      seen.push(...(page.json.chunk as JsonObject[]));
      from = page.json.end;
      assert.ok(++pages < 100, 'pagination ends');
    }
    const ids = seen.map((e) => e.event_id as string).reverse();
    assert.equal(new Set(ids).size, ids.length, 'every event once');
    assert.equal(seen.at(-1)!.type, 'm.room.create', 'the last page ends with the create event');
    // Everything A showed, in A's order.
    const history = ids.filter((id) => expected.includes(id));
    assert.deepEqual(history, expected, 'the history B shows is A’s, in order');
    const bodies = seen
      .filter((e) => e.type === 'm.room.message')
      .map((e) => (e.content as JsonObject).body)
      .reverse();
    assert.deepEqual(
      bodies,
      sent.map((_, i) => `message ${i}`),
    );

    // Paging forwards from below the oldest position gives the same events in the same order.
    const forwards: string[] = [];
    let next: string | undefined = undefined;
    do {
      const page: HttpsAnswer = await clientCall(
        b,
        carol,
        'GET',
        `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=f&limit=100${next ? `&from=${enc(next)}` : '&from=s-999999999'}`,
      );
      assert.equal(page.status, 200, page.text);
      forwards.push(...(page.json.chunk as JsonObject[]).map((e) => e.event_id as string));
      next = page.json.end;
    } while (next !== undefined);
    assert.deepEqual(forwards, ids);

    // The backfilled history never comes down /sync as new events.
    const later = await clientCall(b, carol, 'GET', `/_matrix/client/v3/sync?timeout=0&since=${enc(initial.json.next_batch)}`);
    assert.equal(later.status, 200, later.text);
    const news = (later.json.rooms?.join?.[roomId]?.timeline?.events ?? []) as JsonObject[];
    assert.deepEqual(news, []);

    // A second user of B paging the same room is served from what B now holds.
    const dave = await b.hs.createUser(`dave-${backend.name}`);
    const daveJoin = await clientCall(b, dave, 'POST', `/_matrix/client/v3/join/${enc(roomId)}`, {});
    assert.equal(daveJoin.status, 200, daveJoin.text);
    await eventually(async () => {
      const m = await clientCall(a, alice, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(dave.userId)}`);
      return m.json?.membership === 'join';
    }, 'dave joined on A');
  });

  test('backfill from a server that cannot be reached: /messages ends at what B holds, without an error', async () => {
    const c = await startFederatingServer({ database: await backend.databaseConfig() });
    try {
      const frank = await c.hs.createUser('frank');
      const roomId = await createRoom(c, frank, { preset: 'public_chat' });
      for (let i = 0; i < 5; i++) {
        const res = await clientCall(c, frank, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/u${i}`, {
          msgtype: 'm.text',
          body: `${i}`,
        });
        assert.equal(res.status, 200, res.text);
      }
      const erin = await b.hs.createUser(`erin-${backend.name}`);
      const joined = await clientCall(b, erin, 'POST', `/_matrix/client/v3/join/${enc(roomId)}?via=${enc(c.serverName)}`, {});
      assert.equal(joined.status, 200, joined.text);
      await c.stop();
      const page = await clientCall(b, erin, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=50`);
      assert.equal(page.status, 200, page.text);
      assert.equal(page.json.end, undefined, 'pagination ends where B has nothing more');
      const chunk = page.json.chunk as JsonObject[];
      assert.ok(chunk.some((e) => e.type === 'm.room.member' && e.state_key === erin.userId));
      assert.ok(!chunk.some((e) => e.type === 'm.room.message'), 'nothing backfilled');
    } finally {
      await c.stop().catch(() => undefined);
    }
  });
});
