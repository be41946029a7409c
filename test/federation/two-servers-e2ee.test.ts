// End-to-end encryption and to-device messages between two real Myelins federating over TLS on
// loopback (issue 11, test 1), with matrix-js-sdk 37.5 and its rust crypto on both sides: keys are
// queried and claimed over federation, device lists follow devices added later, cross-signing
// identities are seen by the other server's users, and to-device messages cross.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ClientEvent, MsgType, type MatrixClient, type MatrixEvent } from 'matrix-js-sdk';
import { logger } from 'matrix-js-sdk/lib/logger.js';
import { forEachBackend } from '../helpers/backends.js';
import { startFederatingServer, type FederatingServer } from '../helpers/federation.js';
import { call, loginAccount, registerAccount, startClient, stopClients, type Account } from '../helpers/federation-clients.js';
import { eventually, waitFor } from '../helpers/wait.js';

(logger as unknown as { setLevel(level: string): void }).setLevel(process.env.E2EE_DEBUG ? 'debug' : 'silent');
// The rust crypto logs through console.debug/info; keep the test output readable.
console.debug = () => undefined;
console.info = () => undefined;

after(() => {
  // matrix-js-sdk and rust-crypto leave timers behind after stopClient; everything here is
  // finished, so leave once the runner has reported.
  setTimeout(() => process.exit(), 2000).unref();
});

/** Bodies of the room's messages this client could decrypt, in timeline order. */
function decryptedBodies(client: MatrixClient, roomId: string): string[] {
  return (client.getRoom(roomId)?.getLiveTimeline().getEvents() ?? [])
    .filter((e) => e.isEncrypted() && !e.isDecryptionFailure() && e.getType() === 'm.room.message')
    .map((e) => String(e.getContent().body));
}

function passwordAuth(account: Account) {
  return async (makeRequest: (auth: Record<string, unknown> | null) => Promise<unknown>) => {
    await makeRequest({ type: 'm.login.password', identifier: { type: 'm.id.user', user: account.username }, password: account.password });
  };
}

forEachBackend('end-to-end encryption between two Myelins (matrix-js-sdk, rust crypto)', (backend) => {
  let a: FederatingServer;
  let b: FederatingServer;
  let alice: Account; // on A
  let bob: Account; // on B
  let alice1: MatrixClient;
  let bob1: MatrixClient;
  let roomId: string;

  before(async () => {
    a = await startFederatingServer({ database: await backend.databaseConfig() });
    b = await startFederatingServer({ database: await backend.databaseConfig() });
    alice = await registerAccount(a, 'alice');
    bob = await registerAccount(b, 'bob');
    alice1 = await startClient(alice, { crypto: true });
    bob1 = await startClient(bob, { crypto: true });
  });
  after(async () => {
    stopClients();
    await b?.stop();
    await a?.stop();
  });

  test("an encrypted room across servers: each side decrypts the other's message (keys queried and claimed over federation)", async () => {
    roomId = (
      await alice1.createRoom({
        name: 'Secret across',
        preset: 'private_chat' as never,
        invite: [bob.userId],
        initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
      })
    ).room_id;
    await waitFor(bob1, () => bob1.getRoom(roomId)?.getMyMembership() === 'invite', 'bob to see the invite');
    await bob1.joinRoom(roomId);
    for (const client of [alice1, bob1]) {
      await waitFor(client, () => client.getRoom(roomId)?.getMember(bob.userId)?.membership === 'join', 'both to see bob join');
      assert.equal(await client.getCrypto()!.isEncryptionEnabledInRoom(roomId), true);
    }

    await alice1.sendMessage(roomId, { msgtype: MsgType.Text, body: 'secret from A' });
    await eventually(() => decryptedBodies(bob1, roomId).includes('secret from A'), 'bob to decrypt alice’s message', 60_000);
    await bob1.sendMessage(roomId, { msgtype: MsgType.Text, body: 'secret from B' });
    await eventually(() => decryptedBodies(alice1, roomId).includes('secret from B'), 'alice to decrypt bob’s message', 60_000);

    // Each server holds ciphertext only.
    for (const [server, account] of [
      [a, alice],
      [b, bob],
    ] as const) {
      const res = await call(account, 'GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=50`);
      assert.equal(res.status, 200, res.text);
      assert.ok(res.json.chunk.some((e: { type: string }) => e.type === 'm.room.encrypted'));
      assert.ok(!res.text.includes('secret from'), `${server.serverName} holds ciphertext only`);
    }
  });

  test('a device of B added later receives a later message of A', async () => {
    const bob2 = await startClient(await loginAccount(bob), { crypto: true });
    await waitFor(bob2, () => bob2.getRoom(roomId)?.getMyMembership() === 'join', 'the new device to see the room');
    // Alice's server learns of the new device (m.device_list_update over federation) and her client from device_lists.changed.
    await eventually(
      async () => (await alice1.getCrypto()!.getUserDeviceInfo([bob.userId])).get(bob.userId)?.has(bob2.getDeviceId()!),
      'alice to see bob’s new device',
      60_000,
    );
    await alice1.sendMessage(roomId, { msgtype: MsgType.Text, body: 'for every device of bob' });
    for (const client of [bob1, bob2]) {
      await eventually(
        () => decryptedBodies(client, roomId).includes('for every device of bob'),
        `${client.getDeviceId()} to decrypt the later message`,
        60_000,
      );
    }
  });

  test("cross-signing: each user sees the other server's user's identity and devices signed by their owner", async () => {
    await alice1.getCrypto()!.bootstrapCrossSigning({ authUploadDeviceSigningKeys: passwordAuth(alice) });
    await bob1.getCrypto()!.bootstrapCrossSigning({ authUploadDeviceSigningKeys: passwordAuth(bob) });
    for (const [viewer, owner, device] of [
      [alice1, bob, bob1],
      [bob1, alice, alice1],
    ] as const) {
      await eventually(
        async () => {
          await viewer.getCrypto()!.getUserDeviceInfo([owner.userId], true);
          return await viewer.getCrypto()!.userHasCrossSigningKeys(owner.userId, true);
        },
        `${viewer.getUserId()} to see ${owner.userId}'s cross-signing keys`,
        60_000,
      );
      await eventually(
        async () => (await viewer.getCrypto()!.getDeviceVerificationStatus(owner.userId, device.getDeviceId()!))?.signedByOwner,
        `${viewer.getUserId()} to see ${device.getDeviceId()} signed by ${owner.userId}`,
        60_000,
      );
    }
  });

  test("to-device: a custom event from A's client reaches B's client, and back", async () => {
    const received = (client: MatrixClient, type: string) => {
      const seen: MatrixEvent[] = [];
      client.on(ClientEvent.ToDeviceEvent, (event) => {
        if (event.getType() === type) seen.push(event);
      });
      return seen;
    };
    const onB = received(bob1, 'org.example.ping');
    await alice1.queueToDevice({
      eventType: 'org.example.ping',
      batch: [{ userId: bob.userId, deviceId: bob1.getDeviceId()!, payload: { n: 1, from: 'A' } }],
    });
    await eventually(() => onB[0], 'bob to receive the to-device event', 60_000);
    assert.equal(onB[0]!.getSender(), alice.userId);
    assert.deepEqual(onB[0]!.getContent(), { n: 1, from: 'A' });

    const onA = received(alice1, 'org.example.pong');
    await bob1.queueToDevice({ eventType: 'org.example.pong', batch: [{ userId: alice.userId, deviceId: '*', payload: { n: 2 } }] });
    await eventually(() => onA[0], 'alice to receive the to-device event', 60_000);
    assert.equal(onA[0]!.getSender(), bob.userId);
    // Once each.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal(onB.length, 1);
    assert.equal(onA.length, 1);
  });
});
