// PUT /rooms/{roomId}/typing/{userId}, and the typing that /sync gets.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TestHomeserver, TestUser } from '../helpers/homeserver.js';
import { forEachBackend } from '../helpers/backends.js';
import { createRoomWith, leave, recordBus, sleep } from '../helpers/rooms.js';

forEachBackend('typing', (backend) => {
  let hs: TestHomeserver;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let roomId: string;
  const typingPath = (room: string, user: string) =>
    `/_matrix/client/v3/rooms/${encodeURIComponent(room)}/typing/${encodeURIComponent(user)}`;

  before(async () => {
    hs = await backend.startHomeserver();
    alice = await hs.createUser('alice');
    bob = await hs.createUser('bob');
    carol = await hs.createUser('carol');
    roomId = await createRoomWith(hs, alice, [bob]);
  });
  after(() => hs.stop());

  test('a typer appears in the room, is published on the bus, and stops', async () => {
    const sources = hs.homeserver.services.syncSources;
    const since = hs.homeserver.services.notifier.currentPositions().typing;
    const bus = recordBus(hs);
    const res = await hs.call('PUT', typingPath(roomId, alice.userId), {
      token: alice.accessToken,
      body: { typing: true, timeout: 30000 },
    });
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, {});
    bus.stop();
    const update = bus.updates.find((u) => u.stream === 'typing');
    assert.ok(update, 'a typing update was published');
    assert.equal(update.position, since + 1);
    assert.equal(update.instance, 'main');
    assert.deepEqual(update.rows, [{ stream: 'typing', roomId, userIds: [alice.userId] }]);

    assert.deepEqual(sources.typing([roomId], since).get(roomId), { user_ids: [alice.userId] });
    assert.deepEqual(sources.typing([roomId], 0).get(roomId), { user_ids: [alice.userId] }, 'an initial sync shows current typers');
    assert.equal(sources.typing([roomId], since + 1).size, 0, 'nothing new after the position');

    // Typing again only refreshes the timer: no new position.
    await hs.call('PUT', typingPath(roomId, alice.userId), { token: alice.accessToken, body: { typing: true, timeout: 30000 } });
    assert.equal(hs.homeserver.services.notifier.currentPositions().typing, since + 1);

    await hs.call('PUT', typingPath(roomId, bob.userId), { token: bob.accessToken, body: { typing: true } });
    assert.deepEqual(
      sources
        .typing([roomId], since + 1)
        .get(roomId)
        ?.user_ids.sort(),
      [alice.userId, bob.userId].sort(),
    );

    const stopped = await hs.call('PUT', typingPath(roomId, alice.userId), { token: alice.accessToken, body: { typing: false } });
    assert.equal(stopped.status, 200);
    await hs.call('PUT', typingPath(roomId, bob.userId), { token: bob.accessToken, body: { typing: false } });
    const position = hs.homeserver.services.notifier.currentPositions().typing;
    assert.deepEqual(sources.typing([roomId], since + 1).get(roomId), { user_ids: [] }, 'an incremental sync sees the typers leave');
    assert.equal(sources.typing([roomId], 0).size, 0, 'an initial sync shows no room without typers');
    assert.equal(position, since + 4);
  });

  test('typing expires after its timeout, advancing the stream and waking syncs', async () => {
    const notifier = hs.homeserver.services.notifier;
    const since = notifier.currentPositions().typing;
    await hs.call('PUT', typingPath(roomId, bob.userId), { token: bob.accessToken, body: { typing: true, timeout: 50 } });
    const afterStart = notifier.currentPositions();
    const woken = notifier.waitForUpdates({ userId: alice.userId, roomIds: new Set([roomId]), seen: afterStart, timeoutMs: 5000 });
    const started = Date.now();
    await woken;
    assert.ok(Date.now() - started < 4000, 'the expiry woke the waiting sync');
    assert.equal(notifier.currentPositions().typing, since + 2);
    assert.deepEqual(hs.homeserver.services.syncSources.typing([roomId], since + 1).get(roomId), { user_ids: [] });
  });

  test('the timeout is capped at 120 seconds and must be a number', async () => {
    const bad = await hs.call('PUT', typingPath(roomId, alice.userId), {
      token: alice.accessToken,
      body: { typing: true, timeout: 'soon' },
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.errcode, 'M_BAD_JSON');
    const huge = await hs.call('PUT', typingPath(roomId, alice.userId), {
      token: alice.accessToken,
      body: { typing: true, timeout: 10_000_000 },
    });
    assert.equal(huge.status, 200);
    await hs.call('PUT', typingPath(roomId, alice.userId), { token: alice.accessToken, body: { typing: false } });
  });

  test('leaving the room ends typing there', async () => {
    const room = await createRoomWith(hs, alice, [carol]);
    const since = hs.homeserver.services.notifier.currentPositions().typing;
    await hs.call('PUT', typingPath(room, carol.userId), { token: carol.accessToken, body: { typing: true, timeout: 60000 } });
    await leave(hs, room, carol);
    assert.deepEqual(hs.homeserver.services.syncSources.typing([room], since).get(room), { user_ids: [] });
  });

  test('errors: no token, bad token, another user, not in the room, unknown room, bad body', async () => {
    const path = typingPath(roomId, alice.userId);
    const cases: Array<[Awaited<ReturnType<TestHomeserver['call']>>, number, string]> = [
      [await hs.call('PUT', path, { body: { typing: true } }), 401, 'M_MISSING_TOKEN'],
      [await hs.call('PUT', path, { token: 'nope', body: { typing: true } }), 401, 'M_UNKNOWN_TOKEN'],
      [await hs.call('PUT', path, { token: bob.accessToken, body: { typing: true } }), 403, 'M_FORBIDDEN'],
      [await hs.call('PUT', typingPath(roomId, carol.userId), { token: carol.accessToken, body: { typing: true } }), 403, 'M_FORBIDDEN'],
      [
        await hs.call('PUT', typingPath('!nowhere:test.local', alice.userId), { token: alice.accessToken, body: { typing: true } }),
        403,
        'M_FORBIDDEN',
      ],
      [await hs.call('PUT', path, { token: alice.accessToken, body: {} }), 400, 'M_MISSING_PARAM'],
      [await hs.call('PUT', path, { token: alice.accessToken, body: { typing: 'yes' } }), 400, 'M_BAD_JSON'],
      [await hs.call('PUT', path, { token: alice.accessToken, rawBody: '[1]' }), 400, 'M_BAD_JSON'],
    ];
    for (const [res, status, errcode] of cases) {
      assert.equal(res.status, status, JSON.stringify(res.json));
      assert.equal(res.json.errcode, errcode);
    }
  });

  test('a short typing notification is gone from the next initial sync', async () => {
    await hs.call('PUT', typingPath(roomId, alice.userId), { token: alice.accessToken, body: { typing: true, timeout: 20 } });
    await sleep(60);
    assert.equal(hs.homeserver.services.syncSources.typing([roomId], 0).size, 0);
  });
});
