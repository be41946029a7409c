// PUT /sendToDevice/{eventType}/{txnId}, and the to-device messages /sync gets.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { FederationOutboxStore } from '../../src/storage/federation-outbox-store.js';
import type { TestHomeserver, TestUser } from '../helpers/homeserver.js';
import { forEachBackend } from '../helpers/backends.js';
import { recordBus } from '../helpers/rooms.js';

forEachBackend('send-to-device', (backend) => {
  let hs: TestHomeserver;
  let alice: TestUser;
  let bob: TestUser;
  let bobPhone: { accessToken: string; deviceId: string };
  const sendPath = (type: string, txnId: string) =>
    `/_matrix/client/v3/sendToDevice/${encodeURIComponent(type)}/${encodeURIComponent(txnId)}`;
  const position = () => hs.homeserver.services.notifier.currentPositions().to_device;

  before(async () => {
    hs = await backend.startHomeserver();
    alice = await hs.createUser('alice');
    bob = await hs.createUser('bob');
    bobPhone = await hs.homeserver.services.auth.createSession(bob.userId);
  });
  after(() => hs.stop());

  test('a message reaches the named device, published per device, until acknowledged', async () => {
    const since = position();
    const bus = recordBus(hs);
    const res = await hs.call('PUT', sendPath('m.room_key_request', 'txn1'), {
      token: alice.accessToken,
      body: { messages: { [bob.userId]: { [bob.deviceId]: { action: 'request', n: 1 } } } },
    });
    bus.stop();
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, {});
    const update = bus.updates.find((u) => u.stream === 'to_device');
    assert.deepEqual(update && { position: update.position, rows: update.rows }, {
      position: since + 1,
      rows: [{ stream: 'to_device', userId: bob.userId, deviceId: bob.deviceId }],
    });

    const sources = hs.homeserver.services.syncSources;
    const got = await sources.toDevice(bob.userId, bob.deviceId, since, position(), 100);
    assert.deepEqual(got, {
      events: [{ type: 'm.room_key_request', sender: alice.userId, content: { action: 'request', n: 1 } }],
      upTo: position(),
    });
    assert.deepEqual(
      (await sources.toDevice(bob.userId, bobPhone.deviceId, since, position(), 100)).events,
      [],
      'other devices get nothing',
    );
    // Not acknowledged yet: a retry from the same position gets it again (even an initial sync).
    assert.equal((await sources.toDevice(bob.userId, bob.deviceId, 0, position(), 100)).events.length, 1);
    await sources.acknowledgeToDevice(bob.userId, bob.deviceId, position());
    assert.deepEqual((await sources.toDevice(bob.userId, bob.deviceId, 0, position(), 100)).events, []);
  });

  test('the same txn id from the same device is accepted once', async () => {
    const since = position();
    const body = { messages: { [bob.userId]: { [bob.deviceId]: { n: 'once' } } } };
    assert.equal((await hs.call('PUT', sendPath('m.test', 'dup'), { token: alice.accessToken, body })).status, 200);
    const again = await hs.call('PUT', sendPath('m.test', 'dup'), { token: alice.accessToken, body });
    assert.equal(again.status, 200);
    assert.deepEqual(again.json, {});
    assert.equal(position(), since + 1);
    // Another device of the same user may use the same txn id.
    const aliceOther = await hs.homeserver.services.auth.createSession(alice.userId);
    assert.equal((await hs.call('PUT', sendPath('m.test', 'dup'), { token: aliceOther.accessToken, body })).status, 200);
    const events = (await hs.homeserver.services.syncSources.toDevice(bob.userId, bob.deviceId, since, position(), 100)).events;
    assert.equal(events.length, 2);
    await hs.homeserver.services.syncSources.acknowledgeToDevice(bob.userId, bob.deviceId, position());
  });

  test("`*` reaches every device; unknown devices get nothing; a remote user's message waits in the federation outbox", async () => {
    const since = position();
    const res = await hs.call('PUT', sendPath('m.test', 'star'), {
      token: alice.accessToken,
      body: {
        messages: {
          [bob.userId]: { '*': { to: 'all' } },
          [alice.userId]: { NOSUCHDEVICE: { x: 1 } },
          '@someone:elsewhere.example': { DEV: { x: 1 } },
        },
      },
    });
    assert.equal(res.status, 200);
    assert.equal(position(), since + 3, 'one position per delivered message, and one for the other server');
    const outbox = await new FederationOutboxStore(hs.homeserver.database).pending('elsewhere.example', position(), 10);
    assert.equal(outbox.length, 1);
    assert.deepEqual(JSON.parse(outbox[0]!.eduJson), {
      sender: alice.userId,
      type: 'm.test',
      message_id: outbox[0]!.messageId,
      messages: { '@someone:elsewhere.example': { DEV: { x: 1 } } },
    });
    const sources = hs.homeserver.services.syncSources;
    for (const deviceId of [bob.deviceId, bobPhone.deviceId]) {
      assert.deepEqual((await sources.toDevice(bob.userId, deviceId, since, position(), 100)).events, [
        { type: 'm.test', sender: alice.userId, content: { to: 'all' } },
      ]);
      await sources.acknowledgeToDevice(bob.userId, deviceId, position());
    }
  });

  test('at most `limit` per sync; the position stops at the last one delivered', async () => {
    const since = position();
    for (let i = 0; i < 5; i++) {
      await hs.call('PUT', sendPath('m.test', `batch-${i}`), {
        token: alice.accessToken,
        body: { messages: { [bob.userId]: { [bob.deviceId]: { i } } } },
      });
    }
    const sources = hs.homeserver.services.syncSources;
    const first = await sources.toDevice(bob.userId, bob.deviceId, since, position(), 3);
    assert.deepEqual(
      first.events.map((e: any) => e.content.i),
      [0, 1, 2],
    );
    assert.equal(first.upTo, since + 3);
    // The next sync (with the token at upTo) acknowledges those and gets the rest.
    await sources.acknowledgeToDevice(bob.userId, bob.deviceId, first.upTo);
    const second = await sources.toDevice(bob.userId, bob.deviceId, first.upTo, position(), 3);
    assert.deepEqual(
      second.events.map((e: any) => e.content.i),
      [3, 4],
    );
    assert.equal(second.upTo, position());
    await sources.acknowledgeToDevice(bob.userId, bob.deviceId, second.upTo);
    assert.deepEqual((await sources.toDevice(bob.userId, bob.deviceId, 0, position(), 3)).events, []);
  });

  test("a message wakes the target user's sync", async () => {
    const notifier = hs.homeserver.services.notifier;
    const seen = notifier.currentPositions();
    const woken = notifier.waitForUpdates({ userId: bob.userId, roomIds: new Set(), seen, timeoutMs: 5000 });
    const started = Date.now();
    await hs.call('PUT', sendPath('m.test', 'wake'), {
      token: alice.accessToken,
      body: { messages: { [bob.userId]: { [bob.deviceId]: {} } } },
    });
    await woken;
    assert.ok(Date.now() - started < 4000);
  });

  test('errors', async () => {
    const cases: Array<[string, Awaited<ReturnType<TestHomeserver['call']>>, number, string]> = [
      ['no token', await hs.call('PUT', sendPath('m.test', 'e1'), { body: { messages: {} } }), 401, 'M_MISSING_TOKEN'],
      ['bad token', await hs.call('PUT', sendPath('m.test', 'e2'), { token: 'bad', body: { messages: {} } }), 401, 'M_UNKNOWN_TOKEN'],
      ['no messages', await hs.call('PUT', sendPath('m.test', 'e3'), { token: alice.accessToken, body: {} }), 400, 'M_MISSING_PARAM'],
      [
        'messages not an object',
        await hs.call('PUT', sendPath('m.test', 'e4'), { token: alice.accessToken, body: { messages: [] } }),
        400,
        'M_BAD_JSON',
      ],
      [
        'devices not an object',
        await hs.call('PUT', sendPath('m.test', 'e5'), { token: alice.accessToken, body: { messages: { [bob.userId]: 'x' } } }),
        400,
        'M_BAD_JSON',
      ],
      [
        'content not an object',
        await hs.call('PUT', sendPath('m.test', 'e6'), { token: alice.accessToken, body: { messages: { [bob.userId]: { D: 1 } } } }),
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
