// End-to-end encryption across servers (spec: server-server API §End-to-End Encryption, §Device
// Management, §Send-to-device messaging; client-server API §Tracking the device list for a user):
// a real Myelin over TLS on loopback, and a homeserver of the test's own (destination-server.ts)
// playing the remote side: its users' devices and keys served at `/user/devices` and
// `/user/keys/query|claim`, its EDUs handed to Myelin's handlers, and its own signed requests to
// Myelin's federation routes. Remote memberships are simulated as in sender-edus.test.ts.

import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import type { JsonObject } from '../../src/core/json.js';
import { forEachBackend } from '../helpers/backends.js';
import { TestDestination, type ServedRequest } from '../helpers/destination-server.js';
import { crossSigningSet, deviceKeysOf, ed25519, oneTimeKeys, type CrossSigningSet } from '../helpers/e2ee-keys.js';
import { httpsCall, startFederatingServer, type FederatingServer, type HttpsAnswer } from '../helpers/federation.js';
import type { TestHomeserver, TestUser } from '../helpers/homeserver.js';
import { createRoomWith } from '../helpers/rooms.js';
import { eventually } from '../helpers/wait.js';

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

async function setMembership(hs: TestHomeserver, roomId: string, userId: string, membership: 'join' | 'leave'): Promise<void> {
  await hs.homeserver.services.eventsWriter.sendEvent(roomId, {
    type: 'm.room.member',
    stateKey: userId,
    sender: userId,
    content: { membership },
  });
}

/** A remote user as their server knows them: devices with keys, cross-signing keys, a stream id. */
class RemoteUser {
  readonly devices = new Map<string, { keys: JsonObject; key: ReturnType<typeof ed25519> }>();
  crossSigning: CrossSigningSet;
  streamId = 1;

  constructor(readonly userId: string) {
    this.crossSigning = crossSigningSet(userId);
  }

  addDevice(deviceId: string): JsonObject {
    const key = ed25519();
    const keys = deviceKeysOf({ userId: this.userId, deviceId }, key);
    this.devices.set(deviceId, { keys, key });
    return keys;
  }

  devicesAnswer(): JsonObject {
    return {
      user_id: this.userId,
      stream_id: this.streamId,
      devices: [...this.devices].map(([deviceId, d]) => ({ device_id: deviceId, keys: d.keys, device_display_name: `${deviceId} phone` })),
      master_key: this.crossSigning.body.master_key,
      self_signing_key: this.crossSigning.body.self_signing_key,
    };
  }
}

/** Serves the users' devices and keys as their homeserver would. */
function serveUsers(dest: TestDestination, users: RemoteUser[]): void {
  const byId = new Map(users.map((u) => [u.userId, u]));
  dest.onRequest = (request: ServedRequest) => {
    const devicesOf = /^\/_matrix\/federation\/v1\/user\/devices\/(.+)$/.exec(request.path);
    if (request.method === 'GET' && devicesOf) {
      const user = byId.get(devicesOf[1]!);
      return user ? { status: 200, body: user.devicesAnswer() } : { status: 404, body: { errcode: 'M_NOT_FOUND', error: 'no' } };
    }
    if (request.method === 'POST' && request.path === '/_matrix/federation/v1/user/keys/query') {
      const asked = (request.body?.device_keys ?? {}) as Record<string, string[]>;
      const device_keys: Record<string, Record<string, JsonObject>> = {};
      const master_keys: Record<string, JsonObject> = {};
      const self_signing_keys: Record<string, JsonObject> = {};
      for (const userId of Object.keys(asked)) {
        const user = byId.get(userId);
        if (!user) continue;
        device_keys[userId] = Object.fromEntries([...user.devices].map(([id, d]) => [id, d.keys]));
        master_keys[userId] = user.crossSigning.body.master_key;
        self_signing_keys[userId] = user.crossSigning.body.self_signing_key;
      }
      return { status: 200, body: { device_keys, master_keys, self_signing_keys } };
    }
    if (request.method === 'POST' && request.path === '/_matrix/federation/v1/user/keys/claim') {
      const asked = (request.body?.one_time_keys ?? {}) as Record<string, Record<string, string>>;
      const one_time_keys: Record<string, Record<string, Record<string, JsonObject>>> = {};
      for (const [userId, devices] of Object.entries(asked)) {
        const user = byId.get(userId);
        for (const deviceId of Object.keys(devices)) {
          const device = user?.devices.get(deviceId);
          if (device)
            (one_time_keys[userId] ??= {})[deviceId] = oneTimeKeys({ userId, deviceId, key: device.key }, 1, `claimed-${deviceId}-`);
        }
      }
      return { status: 200, body: { one_time_keys } };
    }
    return undefined;
  };
}

/** A TCP server that accepts connections and never answers: a server that hangs. */
async function silentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const requestsFor = (dest: TestDestination, path: string) => dest.requests.filter((r) => r.path === path);

forEachBackend('E2EE across servers', (backend) => {
  let fed: FederatingServer;
  let alice: TestUser;
  let dest: TestDestination;
  let bob: RemoteUser;
  let carol: RemoteUser;
  let roomId: string;
  const aliceDeviceKey = ed25519();

  before(async () => {
    // rc_key_requests small enough to reach in a test (Synapse's default is a burst of 100).
    const config = { rc_key_requests: { per_second: 0.001, burst_count: 3 } };
    fed = await startFederatingServer({ database: await backend.databaseConfig(), config });
    alice = await fed.hs.createUser('alice');
    dest = await TestDestination.start();
    bob = new RemoteUser(`@bob:${dest.serverName}`);
    bob.addDevice('BOBPHONE');
    // Keys under a device id they do not sign for: left out, as forged.
    const forged = bob.addDevice('FORGED');
    bob.devices.get('FORGED')!.keys = { ...forged, keys: { ...(forged.keys as JsonObject), 'curve25519:FORGED': 'c3dhcHBlZA' } };
    carol = new RemoteUser(`@carol:${dest.serverName}`);
    carol.addDevice('CAROLPC');
    serveUsers(dest, [bob, carol]);
    roomId = await createRoomWith(fed.hs, alice);
    // Bob shares a room with alice (so his devices are tracked); carol shares none.
    await setMembership(fed.hs, roomId, bob.userId, 'join');
    await ok(
      call(fed, alice, 'POST', '/_matrix/client/v3/keys/upload', {
        device_keys: deviceKeysOf(alice, aliceDeviceKey),
        one_time_keys: oneTimeKeys({ ...alice, key: aliceDeviceKey }, 2),
      }),
    );
  });
  after(async () => {
    await fed?.stop();
    await dest?.stop();
  });

  const query = (users: Record<string, string[]>, timeout?: number) =>
    ok(call(fed, alice, 'POST', '/_matrix/client/v3/keys/query', { device_keys: users, ...(timeout === undefined ? {} : { timeout }) }));

  test('a tracked remote user: fetched with /user/devices, forged keys left out, then served from the cache', async () => {
    const answer = await query({ [bob.userId]: [] });
    assert.deepEqual(answer.failures, {});
    assert.deepEqual(Object.keys(answer.device_keys[bob.userId]), ['BOBPHONE']);
    assert.equal(answer.device_keys[bob.userId].BOBPHONE.keys['ed25519:BOBPHONE'], bob.devices.get('BOBPHONE')!.key.publicKey);
    assert.equal(answer.device_keys[bob.userId].BOBPHONE.unsigned.device_display_name, 'BOBPHONE phone');
    assert.deepEqual(answer.master_keys[bob.userId].keys, bob.crossSigning.body.master_key.keys);
    assert.deepEqual(answer.self_signing_keys[bob.userId].keys, bob.crossSigning.body.self_signing_key.keys);
    assert.equal(requestsFor(dest, `/_matrix/federation/v1/user/devices/${bob.userId}`).length, 1);

    const again = await query({ [bob.userId]: ['BOBPHONE'] });
    assert.deepEqual(again.device_keys, answer.device_keys);
    assert.equal(requestsFor(dest, `/_matrix/federation/v1/user/devices/${bob.userId}`).length, 1, 'the second query is answered locally');
  });

  test('an untracked remote user: asked of their server with /user/keys/query', async () => {
    const answer = await query({ [carol.userId]: [] });
    assert.deepEqual(answer.failures, {});
    assert.deepEqual(Object.keys(answer.device_keys[carol.userId]), ['CAROLPC']);
    assert.deepEqual(answer.master_keys[carol.userId].keys, carol.crossSigning.body.master_key.keys);
    const asked = requestsFor(dest, '/_matrix/federation/v1/user/keys/query');
    assert.equal(asked.length, 1);
    assert.deepEqual(asked[0]!.body, { device_keys: { [carol.userId]: [] } });
    assert.equal(asked[0]!.origin, fed.serverName);
  });

  test("/keys/claim claims a remote user's one-time key from their server", async () => {
    const answer = await ok(
      call(fed, alice, 'POST', '/_matrix/client/v3/keys/claim', {
        one_time_keys: { [bob.userId]: { BOBPHONE: 'signed_curve25519' }, [alice.userId]: { [alice.deviceId]: 'signed_curve25519' } },
      }),
    );
    assert.deepEqual(answer.failures, {});
    assert.deepEqual(Object.keys(answer.one_time_keys[bob.userId].BOBPHONE), ['signed_curve25519:claimed-BOBPHONE-0']);
    assert.equal(Object.keys(answer.one_time_keys[alice.userId][alice.deviceId]).length, 1, 'local claims still work');
  });

  test('an unreachable server is in failures, and the answer comes within the timeout', async () => {
    const silent = await silentServer();
    const down = await TestDestination.start();
    const downName = down.serverName;
    await down.stop();
    try {
      const hanging = `@dave:localhost:${silent.port}`;
      const gone = `@erin:${downName}`;
      const answer = await query({ [hanging]: [], [gone]: [], [carol.userId]: [] }, 1_000);
      assert.deepEqual(Object.keys(answer.failures).sort(), [`localhost:${silent.port}`, downName].sort());
      assert.equal(answer.failures[`localhost:${silent.port}`].status, 503);
      assert.deepEqual(Object.keys(answer.device_keys[carol.userId]), ['CAROLPC'], 'the reachable server is still answered');
      const claimed = await ok(
        call(fed, alice, 'POST', '/_matrix/client/v3/keys/claim', {
          one_time_keys: { [hanging]: { D: 'signed_curve25519' } },
          timeout: 1_000,
        }),
      );
      assert.deepEqual(Object.keys(claimed.failures), [`localhost:${silent.port}`]);
    } finally {
      await silent.close();
    }
  });

  test("an m.device_list_update with a known prev_id updates the cache; alice's /sync has bob in device_lists.changed", async () => {
    await query({ [bob.userId]: [] }); // cached
    const since = (await ok(call(fed, alice, 'GET', '/_matrix/client/v3/sync?timeout=0'))).next_batch;
    const fetchesBefore = requestsFor(dest, `/_matrix/federation/v1/user/devices/${bob.userId}`).length;
    const keys = bob.addDevice('BOBTABLET');
    const prev = bob.streamId;
    bob.streamId = 5;
    await fed.hs.homeserver.services.e2eeEdus['m.device_list_update'](dest.serverName, {
      user_id: bob.userId,
      device_id: 'BOBTABLET',
      stream_id: 5,
      prev_id: [prev],
      device_display_name: 'tablet',
      keys,
    });
    const sync = await ok(call(fed, alice, 'GET', `/_matrix/client/v3/sync?timeout=10000&since=${encodeURIComponent(since)}`));
    assert.ok(sync.device_lists?.changed?.includes(bob.userId), JSON.stringify(sync.device_lists));
    const answer = await query({ [bob.userId]: [] });
    assert.deepEqual(Object.keys(answer.device_keys[bob.userId]).sort(), ['BOBPHONE', 'BOBTABLET']);
    assert.equal(answer.device_keys[bob.userId].BOBTABLET.unsigned.device_display_name, 'tablet');
    assert.equal(requestsFor(dest, `/_matrix/federation/v1/user/devices/${bob.userId}`).length, fetchesBefore, 'applied without a resync');

    // The same EDU again is no news; a deletion with a known prev_id removes the device.
    await fed.hs.homeserver.services.e2eeEdus['m.device_list_update'](dest.serverName, {
      user_id: bob.userId,
      device_id: 'BOBTABLET',
      stream_id: 6,
      prev_id: [5],
      deleted: true,
    });
    bob.devices.delete('BOBTABLET');
    bob.streamId = 6;
    assert.deepEqual(Object.keys((await query({ [bob.userId]: [] })).device_keys[bob.userId]), ['BOBPHONE']);
  });

  test('an m.device_list_update with an unknown prev_id makes the server fetch the whole list again', async () => {
    await query({ [bob.userId]: [] }); // cached
    const path = `/_matrix/federation/v1/user/devices/${bob.userId}`;
    const fetchesBefore = requestsFor(dest, path).length;
    // Updates 7 and 8 never reached us; the list the server serves has both.
    bob.addDevice('BOBLAPTOP');
    const watch = bob.addDevice('BOBWATCH');
    bob.streamId = 9;
    await fed.hs.homeserver.services.e2eeEdus['m.device_list_update'](dest.serverName, {
      user_id: bob.userId,
      device_id: 'BOBWATCH',
      stream_id: 9,
      prev_id: [8],
      keys: watch,
    });
    assert.equal(requestsFor(dest, path).length, fetchesBefore + 1, 'one resync');
    const answer = await query({ [bob.userId]: [] });
    assert.deepEqual(Object.keys(answer.device_keys[bob.userId]).sort(), ['BOBLAPTOP', 'BOBPHONE', 'BOBWATCH']);
    assert.equal(requestsFor(dest, path).length, fetchesBefore + 1, 'then served from the cache');
  });

  test("an m.signing_key_update replaces bob's master and self-signing keys; one naming another server's user is dropped", async () => {
    await query({ [bob.userId]: [] });
    bob.crossSigning = crossSigningSet(bob.userId);
    await fed.hs.homeserver.services.e2eeEdus['m.signing_key_update'](dest.serverName, {
      user_id: bob.userId,
      master_key: bob.crossSigning.body.master_key,
      self_signing_key: bob.crossSigning.body.self_signing_key,
    });
    const answer = await query({ [bob.userId]: [] });
    assert.deepEqual(answer.master_keys[bob.userId].keys, bob.crossSigning.body.master_key.keys);
    assert.deepEqual(answer.self_signing_keys[bob.userId].keys, bob.crossSigning.body.self_signing_key.keys);
    // A self-signing key its master key did not sign is not taken.
    const stray = crossSigningSet(bob.userId);
    await fed.hs.homeserver.services.e2eeEdus['m.signing_key_update'](dest.serverName, {
      user_id: bob.userId,
      self_signing_key: stray.body.self_signing_key,
    });
    assert.deepEqual((await query({ [bob.userId]: [] })).self_signing_keys[bob.userId].keys, bob.crossSigning.body.self_signing_key.keys);
  });

  test("to-device from the remote server reaches alice's device once, even when the EDU comes again", async () => {
    const since = (await ok(call(fed, alice, 'GET', '/_matrix/client/v3/sync?timeout=0'))).next_batch;
    const edu = {
      sender: bob.userId,
      type: 'm.room_key_request',
      message_id: 'msg-1',
      messages: { [alice.userId]: { '*': { action: 'request', request_id: 'r1' } } },
    };
    const handle = fed.hs.homeserver.services.e2eeEdus['m.direct_to_device'];
    await handle(dest.serverName, edu);
    await handle(dest.serverName, edu);
    // A sender of another server is refused.
    await handle(dest.serverName, { ...edu, sender: '@mallory:elsewhere.test', message_id: 'msg-2' });
    const events: JsonObject[] = [];
    let token = since;
    await eventually(async () => {
      const sync = await ok(call(fed, alice, 'GET', `/_matrix/client/v3/sync?timeout=1000&since=${encodeURIComponent(token)}`));
      token = sync.next_batch;
      events.push(...((sync.to_device?.events ?? []) as JsonObject[]));
      return events.length > 0;
    }, 'the to-device message');
    // One more sync: nothing else arrives.
    const more = await ok(call(fed, alice, 'GET', `/_matrix/client/v3/sync?timeout=0&since=${encodeURIComponent(token)}`));
    events.push(...((more.to_device?.events ?? []) as JsonObject[]));
    assert.deepEqual(events, [{ type: 'm.room_key_request', sender: bob.userId, content: { action: 'request', request_id: 'r1' } }]);
  });

  test('rc_key_requests: room key requests of one requesting device beyond the burst are dropped; other to-device types pass', async () => {
    const since = (await ok(call(fed, alice, 'GET', '/_matrix/client/v3/sync?timeout=0'))).next_batch;
    const handle = fed.hs.homeserver.services.e2eeEdus['m.direct_to_device'];
    const request = (i: number) => ({
      sender: bob.userId,
      type: 'm.room_key_request',
      message_id: `flood-${i}`,
      messages: { [alice.userId]: { '*': { action: 'request', request_id: `f${i}`, requesting_device_id: 'BOBPHONE' } } },
    });
    for (let i = 0; i < 6; i++) await handle(dest.serverName, request(i));
    const other = { sender: bob.userId, type: 'org.example.ping', message_id: 'ping-1', messages: { [alice.userId]: { '*': { n: 1 } } } };
    await handle(dest.serverName, other);
    const events: JsonObject[] = [];
    let token = since;
    await eventually(async () => {
      const sync = await ok(call(fed, alice, 'GET', `/_matrix/client/v3/sync?timeout=1000&since=${encodeURIComponent(token)}`));
      token = sync.next_batch;
      events.push(...((sync.to_device?.events ?? []) as JsonObject[]));
      return events.some((e) => e.type === 'org.example.ping');
    }, 'the ping');
    const requests = events.filter((e) => e.type === 'm.room_key_request').map((e) => (e.content as JsonObject).request_id);
    assert.deepEqual(requests, ['f0', 'f1', 'f2'], 'a burst of 3, then dropped');
  });

  test("inbound /user/keys/query, /user/keys/claim and /user/devices answer our users' keys to a signed request", async () => {
    const set = crossSigningSet(alice.userId);
    await ok(call(fed, alice, 'POST', '/_matrix/client/v3/keys/device_signing/upload', set.body));
    const signedCall = (method: string, path: string, body?: JsonObject) =>
      httpsCall(fed.baseUrl, method, path, {
        headers: { Authorization: dest.authorization(fed.serverName, method, path, body) },
        ...(body === undefined ? {} : { body }),
      });

    const queryBody = { device_keys: { [alice.userId]: [], [bob.userId]: [] } };
    const queried = await ok(signedCall('POST', '/_matrix/federation/v1/user/keys/query', queryBody));
    assert.deepEqual(Object.keys(queried.device_keys), [alice.userId], "only this server's users");
    assert.equal(queried.device_keys[alice.userId][alice.deviceId].keys[`ed25519:${alice.deviceId}`], aliceDeviceKey.publicKey);
    assert.deepEqual(queried.master_keys[alice.userId].keys, set.body.master_key.keys);
    assert.deepEqual(queried.self_signing_keys[alice.userId].keys, set.body.self_signing_key.keys);
    assert.equal(queried.user_signing_keys, undefined, 'never the user-signing key');

    const devicesPath = `/_matrix/federation/v1/user/devices/${encodeURIComponent(alice.userId)}`;
    const devices = await ok(signedCall('GET', devicesPath));
    assert.equal(devices.user_id, alice.userId);
    assert.ok(Number.isInteger(devices.stream_id) && devices.stream_id > 0);
    assert.deepEqual(
      devices.devices.map((d: JsonObject) => d.device_id),
      [alice.deviceId],
    );
    assert.equal(devices.devices[0].keys.keys[`ed25519:${alice.deviceId}`], aliceDeviceKey.publicKey);
    assert.deepEqual(devices.master_key.keys, set.body.master_key.keys);
    assert.equal(devices.user_signing_key, undefined);

    const claimBody = { one_time_keys: { [alice.userId]: { [alice.deviceId]: 'signed_curve25519' } } };
    const claimed = await ok(signedCall('POST', '/_matrix/federation/v1/user/keys/claim', claimBody));
    assert.equal(Object.keys(claimed.one_time_keys[alice.userId][alice.deviceId]).length, 1);

    const notOurs = await signedCall('GET', `/_matrix/federation/v1/user/devices/${encodeURIComponent(bob.userId)}`);
    assert.equal(notOurs.status, 400, notOurs.text);
    const unsigned = await httpsCall(fed.baseUrl, 'POST', '/_matrix/federation/v1/user/keys/query', { body: queryBody });
    assert.equal(unsigned.status, 401);
    assert.equal(unsigned.json.errcode, 'M_UNAUTHORIZED');
  });

  test('bob leaving the only shared room puts him in device_lists.left', async () => {
    const since = (await ok(call(fed, alice, 'GET', '/_matrix/client/v3/sync?timeout=0'))).next_batch;
    await setMembership(fed.hs, roomId, bob.userId, 'leave');
    const sync = await ok(call(fed, alice, 'GET', `/_matrix/client/v3/sync?timeout=10000&since=${encodeURIComponent(since)}`));
    assert.ok(sync.device_lists?.left?.includes(bob.userId), JSON.stringify(sync.device_lists));
    // No longer tracked: an update is ignored, and a query asks his server again.
    const path = '/_matrix/federation/v1/user/keys/query';
    const before = requestsFor(dest, path).length;
    await query({ [bob.userId]: [] });
    assert.equal(requestsFor(dest, path).length, before + 1);
  });
});
