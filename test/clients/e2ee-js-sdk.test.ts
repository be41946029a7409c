// matrix-js-sdk 37.5.0 with its rust crypto (@matrix-org/matrix-sdk-crypto-wasm) against the real
// `bin/myelin start` process: two users with two devices each chat in an encrypted room, a device
// added later reads new messages, cross-signing is set up for both users, and a new login restores
// room keys from the server-side backup to read old history. The same suite runs against a worker
// cluster of real processes (through the built-in router), where device_lists and to_device are
// written by a stream-writer worker and events by two persisters.
//
// Node 20 has what the wasm crypto needs (WebAssembly, `globalThis.crypto`); it has no IndexedDB,
// hence `useIndexedDB: false` (the crypto store is in memory, one per client).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createClient, MsgType, PendingEventOrdering, type MatrixClient } from 'matrix-js-sdk';
import { logger } from 'matrix-js-sdk/lib/logger.js';
import { startE2eeCluster } from '../helpers/e2ee-cluster.js';
import { startServerProcess } from '../helpers/server-process.js';
import { eventually } from '../helpers/wait.js';

(logger as unknown as { setLevel(level: string): void }).setLevel(process.env.E2EE_DEBUG ? 'debug' : 'silent');
// The rust crypto logs through console.debug/info; keep the test output readable.
console.debug = () => undefined;
console.info = () => undefined;

interface Account {
  userId: string;
  username: string;
  password: string;
}

const clients: MatrixClient[] = [];

async function startDevice(
  baseUrl: string,
  credentials: { user_id: string; access_token?: string; device_id?: string },
): Promise<MatrixClient> {
  const client = createClient({
    baseUrl,
    userId: credentials.user_id,
    accessToken: credentials.access_token!,
    deviceId: credentials.device_id!,
  });
  await client.initRustCrypto({ useIndexedDB: false });
  // Detached local echoes: the timeline shows what came back from the server (decrypted).
  await client.startClient({ initialSyncLimit: 30, pendingEventOrdering: PendingEventOrdering.Detached });
  clients.push(client);
  await eventually(() => client.isInitialSyncComplete(), `${credentials.user_id}'s initial sync`, 60_000);
  return client;
}

async function register(baseUrl: string, username: string): Promise<{ account: Account; client: MatrixClient }> {
  const password = `pw-${username}-secret`;
  const registered = await createClient({ baseUrl }).registerRequest({ username, password, auth: { type: 'm.login.dummy' } });
  return { account: { userId: registered.user_id, username, password }, client: await startDevice(baseUrl, registered) };
}

async function login(baseUrl: string, account: Account): Promise<MatrixClient> {
  const response = await createClient({ baseUrl }).loginRequest({
    type: 'm.login.password',
    identifier: { type: 'm.id.user', user: account.username },
    password: account.password,
  });
  return startDevice(baseUrl, response);
}

/** Bodies of the room's messages this client could decrypt, in timeline order. */
function decryptedBodies(client: MatrixClient, roomId: string): string[] {
  return (client.getRoom(roomId)?.getLiveTimeline().getEvents() ?? [])
    .filter((e) => e.isEncrypted() && !e.isDecryptionFailure() && e.getType() === 'm.room.message')
    .map((e) => String(e.getContent().body));
}

function passwordAuth(client: MatrixClient, account: Account) {
  return async (makeRequest: (auth: Record<string, unknown> | null) => Promise<unknown>) => {
    await makeRequest({ type: 'm.login.password', identifier: { type: 'm.id.user', user: account.username }, password: account.password });
    void client;
  };
}

/** A homeserver to run the suite against. */
interface Target {
  baseUrl: string;
  stop(): Promise<unknown>;
}

after(() => {
  // matrix-js-sdk leaves timers behind after stopClient (each request's abort timer, up to
  // minutes long, and rust-crypto's retry timers), which would hold this test file open for
  // about five minutes. Everything here is finished, so leave once the runner has reported.
  setTimeout(() => process.exit(), 2000).unref();
});

e2eeSuite('myelin (one process)', () => startServerProcess());
e2eeSuite('a myelin worker cluster (processes, through the built-in router)', async () => {
  const cluster = await startE2eeCluster();
  return { baseUrl: cluster.routerUrl!, stop: () => cluster.stop() };
});

function e2eeSuite(label: string, start: () => Promise<Target>): void {
  describe(`matrix-js-sdk (rust crypto) end-to-end encryption against ${label}`, () => {
    let server: Target;
    let alice: Account;
    let bob: Account;
    let alice1: MatrixClient;
    let alice2: MatrixClient;
    let bob1: MatrixClient;
    let bob2: MatrixClient;
    let roomId: string;

    before(async () => {
      server = await start();
      ({ account: alice, client: alice1 } = await register(server.baseUrl, 'alice'));
      ({ account: bob, client: bob1 } = await register(server.baseUrl, 'bob'));
      alice2 = await login(server.baseUrl, alice);
      bob2 = await login(server.baseUrl, bob);
    });

    after(async () => {
      for (const client of clients) client.stopClient();
      await server?.stop();
    });

    test('every device of both users decrypts every message in an encrypted room', async () => {
      const created = await alice1.createRoom({
        name: 'Secret',
        preset: 'private_chat' as never,
        invite: [bob.userId],
        initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
      });
      roomId = created.room_id;
      await eventually(() => bob1.getRoom(roomId)?.getMyMembership() === 'invite', 'bob to see the invite');
      await bob1.joinRoom(roomId);
      for (const client of [alice1, alice2, bob1, bob2]) {
        await eventually(() => client.getRoom(roomId)?.getMember(bob.userId)?.membership === 'join', 'everyone to see bob join');
        assert.equal(await client.getCrypto()!.isEncryptionEnabledInRoom(roomId), true);
      }

      const senders: Array<[MatrixClient, string]> = [
        [alice1, 'from alice 1'],
        [bob1, 'from bob 1'],
        [alice2, 'from alice 2'],
        [bob2, 'from bob 2'],
      ];
      for (const [sender, body] of senders) {
        await sender.sendMessage(roomId, { msgtype: MsgType.Text, body });
        // Each message is readable by all four devices before the next is sent.
        for (const client of [alice1, alice2, bob1, bob2]) {
          await eventually(() => decryptedBodies(client, roomId).includes(body), `${client.getDeviceId()} to decrypt "${body}"`);
        }
      }
      for (const client of [alice1, alice2, bob1, bob2])
        assert.deepEqual(
          decryptedBodies(client, roomId),
          senders.map(([, body]) => body),
        );

      // What the server stores is ciphertext only.
      const res = await fetch(`${server.baseUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=50`, {
        headers: { Authorization: `Bearer ${alice1.getAccessToken()}` },
      });
      const chunk = ((await res.json()) as { chunk: Array<{ type: string; content: Record<string, unknown> }> }).chunk;
      assert.ok(chunk.filter((e) => e.type === 'm.room.encrypted').length >= 4);
      assert.ok(!JSON.stringify(chunk).includes('from alice 1'));
    });

    test('a device that logs in later receives the keys of new messages', async () => {
      const alice3 = await login(server.baseUrl, alice);
      await eventually(() => alice3.getRoom(roomId)?.getMyMembership() === 'join', 'the new device to see the room');
      // The others learn of the new device through device_lists in their syncs.
      await eventually(
        async () => (await bob1.getCrypto()!.getUserDeviceInfo([alice.userId])).get(alice.userId)?.has(alice3.getDeviceId()!),
        'bob to see the new device',
      );
      await bob1.sendMessage(roomId, { msgtype: MsgType.Text, body: 'after the new login' });
      await eventually(() => decryptedBodies(alice3, roomId).includes('after the new login'), 'the new device to decrypt a new message');
      await alice3.sendMessage(roomId, { msgtype: MsgType.Text, body: 'hello from the new device' });
      for (const client of [alice1, alice2, bob1, bob2]) {
        await eventually(
          () => decryptedBodies(client, roomId).includes('hello from the new device'),
          `${client.getDeviceId()} to decrypt the new device's message`,
        );
      }
    });

    test("cross-signing: both users bootstrap it and see the other user's devices signed by their owner", async () => {
      await alice1.getCrypto()!.bootstrapCrossSigning({ authUploadDeviceSigningKeys: passwordAuth(alice1, alice) });
      await bob1.getCrypto()!.bootstrapCrossSigning({ authUploadDeviceSigningKeys: passwordAuth(bob1, bob) });
      assert.equal(await alice1.getCrypto()!.isCrossSigningReady(), true);
      assert.equal(await bob1.getCrypto()!.isCrossSigningReady(), true);
      // Each signs its second device with the self-signing key (`/keys/signatures/upload`).
      await alice1.getCrypto()!.crossSignDevice(alice2.getDeviceId()!);
      await bob1.getCrypto()!.crossSignDevice(bob2.getDeviceId()!);

      for (const [viewer, owner, devices] of [
        [bob1, alice, [alice1, alice2]],
        [bob2, alice, [alice1, alice2]],
        [alice1, bob, [bob1, bob2]],
        [alice2, bob, [bob1, bob2]],
      ] as const) {
        assert.equal(await viewer.getCrypto()!.userHasCrossSigningKeys(owner.userId, true), true);
        for (const device of devices) {
          await eventually(
            async () => (await viewer.getCrypto()!.getDeviceVerificationStatus(owner.userId, device.getDeviceId()!))?.signedByOwner,
            `${viewer.getDeviceId()} to see ${device.getDeviceId()} cross-signed`,
          );
        }
      }
      // Replacing the cross-signing identity needs the password (user-interactive auth).
      let asked = false;
      await alice1.getCrypto()!.bootstrapCrossSigning({
        setupNewCrossSigning: true,
        authUploadDeviceSigningKeys: async (makeRequest) => {
          asked = true;
          await assert.rejects(
            makeRequest(null),
            (err: { httpStatus?: number; data?: { flows?: unknown } }) => err.httpStatus === 401 && err.data?.flows !== undefined,
          );
          await makeRequest({
            type: 'm.login.password',
            identifier: { type: 'm.id.user', user: alice.username },
            password: alice.password,
          });
        },
      });
      assert.equal(asked, true);
    });

    test('key backup: a new login restores room keys from the backup and decrypts old history', async () => {
      const crypto = alice1.getCrypto()!;
      await crypto.resetKeyBackup();
      const version: string = await eventually(
        async () => (await crypto.getActiveSessionBackupVersion()) ?? undefined,
        'the backup to be active',
      );
      // The SDK uploads keys in the background, a few seconds after it has them.
      await eventually(
        async () => {
          const res = await fetch(`${server.baseUrl}/_matrix/client/v3/room_keys/version/${version}`, {
            headers: { Authorization: `Bearer ${alice1.getAccessToken()}` },
          });
          const info = (await res.json()) as { count?: number };
          return (info.count ?? 0) >= 2;
        },
        'room keys in the backup',
        60_000,
      );
      const backupKey = await crypto.getSessionBackupPrivateKey();
      assert.ok(backupKey);

      const alice4 = await login(server.baseUrl, alice);
      await eventually(() => alice4.getRoom(roomId)?.getMyMembership() === 'join', 'the new login to see the room');
      await eventually(
        () => (alice4.getRoom(roomId)?.getLiveTimeline().getEvents() ?? []).some((e) => e.isDecryptionFailure()),
        'old messages the new login cannot read yet',
      );
      assert.deepEqual(decryptedBodies(alice4, roomId), []);

      await alice4.getCrypto()!.storeSessionBackupPrivateKey(backupKey, version);
      const restored = await alice4.getCrypto()!.restoreKeyBackup();
      assert.ok(restored.imported > 0);
      for (const body of ['from alice 1', 'from bob 1', 'from alice 2', 'from bob 2', 'after the new login']) {
        await eventually(() => decryptedBodies(alice4, roomId).includes(body), `the restored login to decrypt "${body}"`);
      }
    });
  });
}
