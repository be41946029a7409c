// GET/PUT /presence/{userId}/status, presence set by syncing, its timeout, and the presence /sync gets.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { OFFLINE_AFTER_MS, type PresenceWriter } from '../../src/handlers/ephemeral/presence.js';
import type { TestHomeserver, TestUser } from '../helpers/homeserver.js';
import { forEachBackend } from '../helpers/backends.js';
import { createRoomWith, recordBus } from '../helpers/rooms.js';

forEachBackend('presence', (backend) => {
  let hs: TestHomeserver;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let roomId: string;
  const statusPath = (user: string) => `/_matrix/client/v3/presence/${encodeURIComponent(user)}/status`;
  const position = () => hs.homeserver.services.notifier.currentPositions().presence;

  before(async () => {
    hs = await backend.startHomeserver();
    alice = await hs.createUser('alice');
    bob = await hs.createUser('bob');
    carol = await hs.createUser('carol');
    roomId = await createRoomWith(hs, alice, [bob]);
  });
  after(() => hs.stop());

  test('a user with no presence yet is offline', async () => {
    const res = await hs.call('GET', statusPath(alice.userId), { token: alice.accessToken });
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { presence: 'offline' });
  });

  test("PUT sets presence and message, published with the user's rooms", async () => {
    const since = position();
    const bus = recordBus(hs);
    const res = await hs.call('PUT', statusPath(alice.userId), {
      token: alice.accessToken,
      body: { presence: 'online', status_msg: 'Here' },
    });
    bus.stop();
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, {});
    const update = bus.updates.find((u) => u.stream === 'presence');
    assert.deepEqual(update && { position: update.position, rows: update.rows }, {
      position: since + 1,
      rows: [{ stream: 'presence', userId: alice.userId, roomIds: [roomId] }],
    });

    const seen = await hs.call('GET', statusPath(alice.userId), { token: bob.accessToken });
    assert.equal(seen.status, 200);
    assert.equal(seen.json.presence, 'online');
    assert.equal(seen.json.status_msg, 'Here');
    assert.equal(seen.json.currently_active, true);
    assert.equal(typeof seen.json.last_active_ago, 'number');
    assert.ok(seen.json.last_active_ago >= 0 && seen.json.last_active_ago < 60_000);

    // Without status_msg the message is cleared (as Synapse).
    await hs.call('PUT', statusPath(alice.userId), { token: alice.accessToken, body: { presence: 'unavailable' } });
    const idle = (await hs.call('GET', statusPath(alice.userId), { token: alice.accessToken })).json;
    assert.equal(idle.presence, 'unavailable');
    assert.equal(idle.status_msg, undefined);
    assert.equal(idle.currently_active, undefined);
  });

  test('syncs get the presence of users sharing a room, and their own', async () => {
    const sources = hs.homeserver.services.syncSources;
    const since = position();
    await hs.call('PUT', statusPath(bob.userId), { token: bob.accessToken, body: { presence: 'online', status_msg: 'hi' } });
    await hs.call('PUT', statusPath(carol.userId), { token: carol.accessToken, body: { presence: 'online' } });
    const forAlice = await sources.presence(alice.userId, since, position());
    assert.deepEqual(
      forAlice.map((e) => e.sender),
      [bob.userId],
      'carol shares no room with alice',
    );
    assert.equal(forAlice[0]!.type, 'm.presence');
    assert.equal((forAlice[0]!.content as any).status_msg, 'hi');
    const forCarol = await sources.presence(carol.userId, since, position());
    assert.deepEqual(
      forCarol.map((e) => e.sender),
      [carol.userId],
    );
    const initial = await sources.presence(alice.userId, 0, position());
    assert.deepEqual(initial.map((e) => e.sender).sort(), [alice.userId, bob.userId].sort());
  });

  test('syncing marks the user online, writing only when something changes', async () => {
    const dave = await hs.createUser('dave');
    await createRoomWith(hs, dave, [alice]);
    const sources = hs.homeserver.services.syncSources;
    const since = position();
    await sources.userSyncing(dave.userId, undefined);
    assert.equal(position(), since + 1);
    assert.equal((await hs.call('GET', statusPath(dave.userId), { token: alice.accessToken })).json.presence, 'online');
    await sources.userSyncing(dave.userId, undefined);
    await sources.userSyncing(dave.userId, 'online');
    assert.equal(position(), since + 1, 'syncing again changes nothing visible');
    await sources.userSyncing(dave.userId, 'offline');
    assert.equal(position(), since + 1, 'set_presence=offline does not mark anyone online or offline');
    await sources.userSyncing(dave.userId, 'unavailable');
    assert.equal(position(), since + 2);
    assert.equal((await hs.call('GET', statusPath(dave.userId), { token: dave.accessToken })).json.presence, 'unavailable');
  });

  test('users nobody has seen for a while go offline', async () => {
    const writer = hs.homeserver.services.ephemeralWriters.presence as PresenceWriter;
    const erin = await hs.createUser('erin');
    await hs.homeserver.services.syncSources.userSyncing(erin.userId, undefined);
    const since = position();
    await writer.sweep();
    assert.equal(position(), since, 'seen just now: still online');
    const bus = recordBus(hs);
    await writer.sweep(Date.now() + OFFLINE_AFTER_MS + 1000);
    bus.stop();
    assert.ok(
      bus.updates.some((u) => u.rows.some((r) => r.stream === 'presence' && r.userId === erin.userId)),
      'the timeout is published',
    );
    assert.equal((await hs.call('GET', statusPath(erin.userId), { token: erin.accessToken })).json.presence, 'offline');
  });

  test('errors', async () => {
    const cases: Array<[string, Awaited<ReturnType<TestHomeserver['call']>>, number, string]> = [
      ['no token', await hs.call('GET', statusPath(alice.userId)), 401, 'M_MISSING_TOKEN'],
      ['bad token', await hs.call('PUT', statusPath(alice.userId), { token: 'bad', body: { presence: 'online' } }), 401, 'M_UNKNOWN_TOKEN'],
      [
        'another user',
        await hs.call('PUT', statusPath(alice.userId), { token: bob.accessToken, body: { presence: 'online' } }),
        403,
        'M_FORBIDDEN',
      ],
      ["a stranger's presence", await hs.call('GET', statusPath(alice.userId), { token: carol.accessToken }), 403, 'M_FORBIDDEN'],
      ['no presence', await hs.call('PUT', statusPath(alice.userId), { token: alice.accessToken, body: {} }), 400, 'M_MISSING_PARAM'],
      [
        'unknown state',
        await hs.call('PUT', statusPath(alice.userId), { token: alice.accessToken, body: { presence: 'busy' } }),
        400,
        'M_INVALID_PARAM',
      ],
      [
        'status_msg not a string',
        await hs.call('PUT', statusPath(alice.userId), { token: alice.accessToken, body: { presence: 'online', status_msg: 5 } }),
        400,
        'M_BAD_JSON',
      ],
    ];
    for (const [what, res, status, errcode] of cases) {
      assert.equal(res.status, status, `${what}: ${JSON.stringify(res.json)}`);
      assert.equal(res.json.errcode, errcode, what);
    }
  });
});
