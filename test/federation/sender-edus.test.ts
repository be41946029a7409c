// The EDUs the federation sender sends, as a receiving server reads them (core/edus.ts
// `parseEdu`, which refuses anything off the spec's shapes): typing, receipts, presence, device
// lists and cross-signing keys, to-device messages — to the servers that share a room with the
// user, and only to them. Real Myelin, real TLS, destination servers of the test's own; the remote
// memberships are simulated as in sender.test.ts.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type {
  DeviceListUpdateEdu,
  DirectToDeviceEdu,
  Edu,
  PresenceEdu,
  ReceiptEdu,
  SigningKeyUpdateEdu,
  TypingEdu,
} from '../../src/core/edus.js';
import { FederationOutboxStore } from '../../src/storage/federation-outbox-store.js';
import { testPostgres } from '../harness/postgres.js';
import { httpsCall, startFederatingServer, type FederatingServer, type HttpsAnswer } from '../helpers/federation.js';
import { TestDestination } from '../helpers/destination-server.js';
import { crossSigningSet, deviceKeysOf, ed25519 } from '../helpers/e2ee-keys.js';
import type { TestHomeserver, TestUser } from '../helpers/homeserver.js';
import { createRoomWith, sendText } from '../helpers/rooms.js';
import { eventually } from '../helpers/wait.js';

const FAST_RETRIES = { federation: { destination_min_retry_interval: '200ms', destination_max_retry_interval: '2s' } };

async function joinRemote(hs: TestHomeserver, roomId: string, destination: TestDestination, localpart = 'remote'): Promise<string> {
  const userId = `@${localpart}:${destination.serverName}`;
  await hs.homeserver.services.eventsWriter.sendEvent(roomId, {
    type: 'm.room.member',
    stateKey: userId,
    sender: userId,
    content: { membership: 'join' },
  });
  return userId;
}

function call(fed: FederatingServer, user: { accessToken: string }, method: string, path: string, body?: unknown): Promise<HttpsAnswer> {
  return httpsCall(fed.baseUrl, method, path, {
    headers: { Authorization: `Bearer ${user.accessToken}` },
    ...(body === undefined ? {} : { body }),
  });
}

async function ok(answer: Promise<HttpsAnswer>): Promise<any> {
  const res = await answer;
  assert.equal(res.status, 200, res.text);
  return res.json;
}

function ofType<T extends Edu>(edus: Edu[], type: T['type']): T[] {
  return edus.filter((e): e is T => e.type === type);
}

for (const backend of ['sqlite', 'postgres'] as const) {
  describe(`federation sender: EDUs (${backend})`, () => {
    let fed: FederatingServer;
    let alice: TestUser;
    let bob: TestUser;
    let dest: TestDestination;
    let stranger: TestDestination;
    let roomId: string;
    let remoteUser: string;
    const edus = () => dest.edus(fed.serverName);

    before(async () => {
      const database =
        backend === 'sqlite'
          ? undefined
          : await testPostgres().then(async (pg) => ({
              name: 'psycopg2',
              args: { host: pg.socketDir, user: pg.user, database: await pg.createDatabase('sender_edus') },
            }));
      fed = await startFederatingServer({ config: FAST_RETRIES, ...(database ? { database } : {}) });
      alice = await fed.hs.createUser('alice');
      bob = await fed.hs.createUser('bob');
      dest = await TestDestination.start();
      // A server in none of alice's rooms: it must hear nothing about her.
      stranger = await TestDestination.start();
      roomId = await createRoomWith(fed.hs, alice);
      remoteUser = await joinRemote(fed.hs, roomId, dest);
      const bobsRoom = await createRoomWith(fed.hs, bob);
      await joinRemote(fed.hs, bobsRoom, stranger);
    });
    after(async () => {
      await fed?.stop();
      await dest?.stop();
      await stranger?.stop();
    });

    test('m.typing: started and stopped', async () => {
      const path = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/typing/${encodeURIComponent(alice.userId)}`;
      await ok(call(fed, alice, 'PUT', path, { typing: true, timeout: 20_000 }));
      await eventually(() => ofType<TypingEdu>(edus(), 'm.typing').length >= 1, 'typing started');
      await ok(call(fed, alice, 'PUT', path, { typing: false }));
      await eventually(() => ofType<TypingEdu>(edus(), 'm.typing').length >= 2, 'typing stopped');
      assert.deepEqual(
        ofType<TypingEdu>(edus(), 'm.typing').map((e) => [e.roomId, e.userId, e.typing]),
        [
          [roomId, alice.userId, true],
          [roomId, alice.userId, false],
        ],
      );
    });

    test('m.receipt: public read receipts, threads included; private ones stay home', async () => {
      const first = await sendText(fed.hs, roomId, alice, 'to be read');
      const second = await sendText(fed.hs, roomId, alice, 'read privately');
      const receiptPath = (type: string, eventId: string) =>
        `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/receipt/${type}/${encodeURIComponent(eventId)}`;
      await ok(call(fed, alice, 'POST', receiptPath('m.read', first.eventId), {}));
      await eventually(() => ofType<ReceiptEdu>(edus(), 'm.receipt').length >= 1, 'the receipt');
      await ok(call(fed, alice, 'POST', receiptPath('m.read.private', second.eventId), {}));
      await ok(call(fed, alice, 'POST', receiptPath('m.read', second.eventId), { thread_id: 'main' }));
      await eventually(() => ofType<ReceiptEdu>(edus(), 'm.receipt').flatMap((e) => e.receipts).length >= 2, 'the threaded receipt');
      const receipts = ofType<ReceiptEdu>(edus(), 'm.receipt').flatMap((e) => e.receipts);
      assert.deepEqual(
        receipts.map((r) => [r.roomId, r.userId, r.eventIds, r.threadId]),
        [
          [roomId, alice.userId, [first.eventId], undefined],
          [roomId, alice.userId, [second.eventId], 'main'],
        ],
      );
      assert.ok(receipts.every((r) => typeof r.ts === 'number'));
    });

    test('m.presence: to servers sharing a room with the user', async () => {
      await ok(
        call(fed, alice, 'PUT', `/_matrix/client/v3/presence/${encodeURIComponent(alice.userId)}/status`, {
          presence: 'online',
          status_msg: 'federating',
        }),
      );
      await ok(call(fed, bob, 'PUT', `/_matrix/client/v3/presence/${encodeURIComponent(bob.userId)}/status`, { presence: 'unavailable' }));
      await eventually(() => ofType<PresenceEdu>(edus(), 'm.presence').length >= 1, "alice's presence");
      await eventually(
        () => ofType<PresenceEdu>(stranger.edus(fed.serverName), 'm.presence').length >= 1,
        "bob's presence at his room's server",
      );
      const updates = ofType<PresenceEdu>(edus(), 'm.presence').flatMap((e) => e.updates);
      assert.deepEqual(
        updates.map((u) => [u.userId, u.presence, u.statusMsg, u.currentlyActive]),
        [[alice.userId, 'online', 'federating', true]],
      );
      assert.ok(updates[0]!.lastActiveAgo !== undefined && updates[0]!.lastActiveAgo >= 0);
      const strangers = ofType<PresenceEdu>(stranger.edus(fed.serverName), 'm.presence').flatMap((e) => e.updates);
      assert.ok(
        strangers.every((u) => u.userId === bob.userId),
        'alice shares no room with the stranger',
      );
    });

    test('m.device_list_update with the stream_id / prev_id chain and keys; m.signing_key_update; a deleted device', async () => {
      const key = ed25519();
      await ok(
        call(fed, alice, 'POST', '/_matrix/client/v3/keys/upload', {
          device_keys: deviceKeysOf({ userId: alice.userId, deviceId: alice.deviceId }, key),
        }),
      );
      await eventually(() => ofType<DeviceListUpdateEdu>(edus(), 'm.device_list_update').length >= 1, 'the first device update');
      const [firstUpdate] = ofType<DeviceListUpdateEdu>(edus(), 'm.device_list_update');
      assert.equal(firstUpdate!.userId, alice.userId);
      assert.equal(firstUpdate!.deviceId, alice.deviceId);
      assert.deepEqual(firstUpdate!.prevIds, [], 'the first change of her devices follows none');
      assert.equal(firstUpdate!.deleted, false);
      assert.equal((firstUpdate!.keys?.keys as Record<string, string>)[`ed25519:${alice.deviceId}`], key.publicKey);

      // A second device: its update follows the first.
      const phone = await fed.hs.homeserver.services.auth.createSession(alice.userId);
      await ok(
        call(fed, phone, 'POST', '/_matrix/client/v3/keys/upload', {
          device_keys: deviceKeysOf({ userId: alice.userId, deviceId: phone.deviceId }),
        }),
      );
      await eventually(() => ofType<DeviceListUpdateEdu>(edus(), 'm.device_list_update').length >= 2, 'the second device update');
      const second = ofType<DeviceListUpdateEdu>(edus(), 'm.device_list_update')[1]!;
      assert.equal(second.deviceId, phone.deviceId);
      assert.deepEqual(second.prevIds, [firstUpdate!.streamId]);
      assert.ok(second.streamId > firstUpdate!.streamId);

      // Cross-signing keys.
      const set = crossSigningSet(alice.userId);
      await ok(call(fed, alice, 'POST', '/_matrix/client/v3/keys/device_signing/upload', set.body));
      await eventually(() => ofType<SigningKeyUpdateEdu>(edus(), 'm.signing_key_update').length >= 1, 'the signing key update');
      const signing = ofType<SigningKeyUpdateEdu>(edus(), 'm.signing_key_update')[0]!;
      assert.equal(signing.userId, alice.userId);
      assert.deepEqual(signing.masterKey?.keys, set.body.master_key.keys);
      assert.deepEqual(signing.selfSigningKey?.keys, set.body.self_signing_key.keys);

      // The phone is deleted (user-interactive auth with her password).
      const deleted = await call(fed, alice, 'DELETE', `/_matrix/client/v3/devices/${encodeURIComponent(phone.deviceId)}`, {
        auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: alice.userId }, password: alice.password },
      });
      assert.equal(deleted.status, 200, deleted.text);
      await eventually(() => ofType<DeviceListUpdateEdu>(edus(), 'm.device_list_update').some((e) => e.deleted), 'the deletion');
      const deletion = ofType<DeviceListUpdateEdu>(edus(), 'm.device_list_update').find((e) => e.deleted)!;
      assert.equal(deletion.deviceId, phone.deviceId);
      assert.equal(deletion.keys, undefined);
      assert.ok(deletion.prevIds.length === 1 && deletion.prevIds[0]! >= second.streamId);
      // The stranger shares no room with alice: none of her device changes reach it.
      assert.ok(ofType<DeviceListUpdateEdu>(stranger.edus(fed.serverName), 'm.device_list_update').every((e) => e.userId !== alice.userId));
    });

    test('m.direct_to_device with a message_id, removed from the outbox once acknowledged', async () => {
      const res = await call(fed, alice, 'PUT', '/_matrix/client/v3/sendToDevice/m.room_key_request/txn-1', {
        messages: {
          [remoteUser]: { RDEVICE: { action: 'request', request_id: 'r1' } },
          [alice.userId]: { [alice.deviceId]: { local: true } },
        },
      });
      assert.equal(res.status, 200, res.text);
      await eventually(() => ofType<DirectToDeviceEdu>(edus(), 'm.direct_to_device').length >= 1, 'the to-device message');
      const [message] = ofType<DirectToDeviceEdu>(edus(), 'm.direct_to_device');
      assert.equal(message!.sender, alice.userId);
      assert.equal(message!.eventType, 'm.room_key_request');
      assert.ok(message!.messageId.length > 0);
      assert.deepEqual([...message!.messages.keys()], [remoteUser], 'only the recipients of that server');
      assert.deepEqual(message!.messages.get(remoteUser)?.get('RDEVICE'), { action: 'request', request_id: 'r1' });
      await eventually(
        async () =>
          (await new FederationOutboxStore(fed.hs.homeserver.database).pending(dest.serverName, Number.MAX_SAFE_INTEGER, 10)).length === 0,
        'the outbox emptied',
      );
    });
  });
}

describe('federation sender: to-device across a restart', () => {
  test('a to-device message for a remote user survives a restart of the sender', async () => {
    const dest = await TestDestination.start();
    let fed = await startFederatingServer({ config: FAST_RETRIES });
    try {
      const alice = await fed.hs.createUser('alice');
      const roomId = await createRoomWith(fed.hs, alice);
      const remoteUser = await joinRemote(fed.hs, roomId, dest);
      await dest.down();
      const res = await call(fed, alice, 'PUT', '/_matrix/client/v3/sendToDevice/m.test/txn-restart', {
        messages: { [remoteUser]: { '*': { survives: true } } },
      });
      assert.equal(res.status, 200, res.text);
      const [waiting] = await new FederationOutboxStore(fed.hs.homeserver.database).pending(dest.serverName, Number.MAX_SAFE_INTEGER, 10);
      assert.ok(waiting, 'the message waits in the outbox');
      await eventually(
        () => (fed.hs.homeserver.federationSender!.status(dest.serverName)?.consecutiveFailures ?? 0) >= 1,
        'a failed attempt',
      );
      const { port, hs } = fed;
      await fed.stop();
      await dest.up();
      fed = await startFederatingServer({ config: FAST_RETRIES, port, dir: hs.dir });
      await eventually(
        () => ofType<DirectToDeviceEdu>(dest.edus(fed.serverName), 'm.direct_to_device').length >= 1,
        'the message after the restart',
      );
      const [message] = ofType<DirectToDeviceEdu>(dest.edus(fed.serverName), 'm.direct_to_device');
      assert.equal(message!.messageId, waiting.messageId, 'the same message, deduplicated by its id at the receiver');
      assert.deepEqual(message!.messages.get(remoteUser)?.get('*'), { survives: true });
    } finally {
      await fed.stop();
      await dest.stop();
    }
  });
});
