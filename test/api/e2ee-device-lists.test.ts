// Device-list tracking (end_to_end_encryption.md §Tracking the device list): the `device_lists`
// section of incremental /sync and GET /keys/changes. Users sharing a room hear of each other's new
// device keys, cross-signing keys and deleted devices (DELETE /devices/{id}, /delete_devices,
// /logout); newcomers to a shared room are `changed`, users who no longer share a room `left`.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type TestHomeserver, type TestUser } from '../helpers/homeserver.js';
import { forEachBackend } from '../helpers/backends.js';
import { createRoomWith, join, leave, sleep } from '../helpers/rooms.js';
import { crossSigningKey, crossSigningSet, ed25519, newDevice, signed, uploadDevice } from './e2ee-fixtures.js';

const QUERY = '/_matrix/client/v3/keys/query';
const CHANGES = '/_matrix/client/v3/keys/changes';

function passwordAuth(user: TestUser, session: string) {
  return { type: 'm.login.password', identifier: { type: 'm.id.user', user: user.userId }, password: user.password, session };
}

interface SyncBody {
  next_batch: string;
  device_lists?: { changed: string[]; left: string[] };
}

forEachBackend('device lists', (backend) => {
  let hs: TestHomeserver;
  let counter = 0;
  before(async () => {
    hs = await backend.startHomeserver();
  });
  after(() => hs.stop());

  /** Fresh users, so one test's changes are not another's. */
  const users = <N extends readonly string[]>(...names: N) =>
    Promise.all(names.map((n) => hs.createUser(`${n}${++counter}`))) as Promise<{ [K in keyof N]: TestUser }>;
  const sync = async (user: TestUser, since?: string, timeout = 0): Promise<SyncBody> => {
    const query = since === undefined ? '' : `?since=${encodeURIComponent(since)}&timeout=${timeout}`;
    const res = await hs.call('GET', `/_matrix/client/v3/sync${query}`, { token: user.accessToken });
    assert.equal(res.status, 200, res.text);
    return res.json;
  };
  /**
   * Incremental syncs from `since` until `predicate` holds for the accumulated device lists; each
   * waits on the server (long poll), so a change announced after the request still shows up.
   */
  const syncUntil = async (user: TestUser, since: string, predicate: (lists: { changed: Set<string>; left: Set<string> }) => boolean) => {
    const lists = { changed: new Set<string>(), left: new Set<string>() };
    let token = since;
    for (let i = 0; i < 20; i++) {
      const body = await sync(user, token, 10_000);
      for (const u of body.device_lists?.changed ?? []) lists.changed.add(u);
      for (const u of body.device_lists?.left ?? []) lists.left.add(u);
      token = body.next_batch;
      if (predicate(lists)) return { ...lists, token };
    }
    assert.fail(`device lists never matched: ${JSON.stringify({ changed: [...lists.changed], left: [...lists.left] })}`);
  };
  const changes = async (user: TestUser, from: string, to?: string) => {
    const res = await hs.call(
      'GET',
      `${CHANGES}?from=${encodeURIComponent(from)}${to === undefined ? '' : `&to=${encodeURIComponent(to)}`}`,
      { token: user.accessToken },
    );
    assert.equal(res.status, 200, res.text);
    return res.json as { changed: string[]; left: string[] };
  };
  const deviceIdsOf = async (viewer: TestUser, userId: string) => {
    const res = await hs.call('POST', QUERY, { token: viewer.accessToken, body: { device_keys: { [userId]: [] } } });
    assert.equal(res.status, 200, res.text);
    return Object.keys(res.json.device_keys[userId] ?? {}).sort();
  };

  test('new device keys of a user sharing a room show up in the others’ incremental sync; users sharing no room do not', async () => {
    const [alice, bob, zed] = await users('alice', 'bob', 'zed');
    await createRoomWith(hs, alice, [bob]);
    await createRoomWith(hs, zed);
    const initial = await sync(alice);
    assert.equal(initial.device_lists, undefined);

    await newDevice(hs, bob);
    await newDevice(hs, zed);
    const next = await sync(alice, initial.next_batch, 10_000);
    assert.ok(next.device_lists, JSON.stringify(next));
    assert.deepEqual(next.device_lists.changed, [bob.userId]);
    assert.deepEqual(next.device_lists.left, []);

    // Nothing new since: no device_lists section at all.
    const quiet = await sync(alice, next.next_batch, 0);
    assert.equal(quiet.device_lists, undefined);

    // The user's own new device is news to the user's other devices.
    const own = await newDevice(hs, alice);
    const mine = await syncUntil(alice, quiet.next_batch, (l) => l.changed.has(alice.userId));
    assert.ok(!mine.changed.has(zed.userId));
    assert.ok(own.deviceId);
  });

  test('a long-polling sync wakes when a user sharing a room uploads new device keys', { timeout: 120_000 }, async () => {
    const [alice, bob] = await users('alice', 'bob');
    await createRoomWith(hs, alice, [bob]);
    const initial = await sync(alice);
    let returned = false;
    // A timeout far beyond this test's own: only the upload can end the wait in time.
    const waiting = sync(alice, initial.next_batch, 240_000).then((body) => {
      returned = true;
      return body;
    });
    await sleep(300);
    assert.equal(returned, false, 'the sync answered before anything happened');
    await uploadDevice(hs, bob);
    const woken = await waiting;
    assert.deepEqual(woken.device_lists, { changed: [bob.userId], left: [] });
  });

  test('leaving the last shared room puts the user in `left`; leaving one of two shared rooms does not', async () => {
    const [alice, bob] = await users('alice', 'bob');
    const room1 = await createRoomWith(hs, alice, [bob]);
    const room2 = await createRoomWith(hs, bob, [alice]);
    const start = (await sync(alice)).next_batch;

    await leave(hs, room1, bob);
    const afterFirst = await sync(alice, start, 0);
    assert.ok(!(afterFirst.device_lists?.left ?? []).includes(bob.userId), JSON.stringify(afterFirst.device_lists));

    await leave(hs, room2, bob);
    const afterSecond = await syncUntil(alice, afterFirst.next_batch, (l) => l.left.has(bob.userId));
    assert.ok(!afterSecond.changed.has(bob.userId));

    // Their device changes are no longer Alice's business.
    await newDevice(hs, bob);
    const later = await sync(alice, afterSecond.token, 0);
    assert.ok(!(later.device_lists?.changed ?? []).includes(bob.userId));
    // Bob, for his part, no longer shares a room with Alice either.
    assert.deepEqual((await changes(bob, start)).left, [alice.userId]);
  });

  test('someone joining a shared room is `changed`; so are the members of a room the user joins', async () => {
    const [alice, carol, dan, erin] = await users('alice', 'carol', 'dan', 'erin');
    const room = await createRoomWith(hs, alice);
    const danRoom = await createRoomWith(hs, dan, [erin]);
    const start = (await sync(alice)).next_batch;

    await join(hs, room, carol);
    const afterCarol = await syncUntil(alice, start, (l) => l.changed.has(carol.userId));
    assert.ok(!afterCarol.changed.has(dan.userId));

    await join(hs, danRoom, alice);
    const afterJoin = await syncUntil(alice, afterCarol.token, (l) => l.changed.has(dan.userId) && l.changed.has(erin.userId));
    assert.deepEqual(afterJoin.left, new Set());
  });

  test('GET /keys/changes between two sync tokens lists the users whose keys changed in between', async () => {
    const [alice, bob, carol, dora] = await users('alice', 'bob', 'carol', 'dora');
    await createRoomWith(hs, alice, [bob, carol]);
    const t0 = (await sync(alice)).next_batch;
    await newDevice(hs, bob);
    const t1 = (await syncUntil(alice, t0, (l) => l.changed.has(bob.userId))).token;
    await newDevice(hs, carol);
    await newDevice(hs, dora);
    const t2 = (await syncUntil(alice, t1, (l) => l.changed.has(carol.userId))).token;

    assert.deepEqual(await changes(alice, t0, t1), { changed: [bob.userId], left: [] });
    assert.deepEqual(await changes(alice, t1, t2), { changed: [carol.userId], left: [] });
    assert.deepEqual((await changes(alice, t0, t2)).changed.sort(), [bob.userId, carol.userId].sort());
    assert.deepEqual((await changes(alice, t0)).changed.sort(), [bob.userId, carol.userId].sort());
    assert.deepEqual(await changes(alice, t2, t2), { changed: [], left: [] });
  });

  test('cross-signing: master/self-signing changes reach room members; signing someone’s master key tells only the signer', async () => {
    const [alice, bob, carol] = await users('alice', 'bob', 'carol');
    await createRoomWith(hs, alice, [bob, carol]);
    const aliceSet = crossSigningSet(alice.userId);
    const bobSet = crossSigningSet(bob.userId);
    assert.equal(
      (await hs.call('POST', '/_matrix/client/v3/keys/device_signing/upload', { token: alice.accessToken, body: aliceSet.body })).status,
      200,
    );
    const t0 = (await sync(carol)).next_batch;

    assert.equal(
      (await hs.call('POST', '/_matrix/client/v3/keys/device_signing/upload', { token: bob.accessToken, body: bobSet.body })).status,
      200,
    );
    const seen = await syncUntil(carol, t0, (l) => l.changed.has(bob.userId));
    assert.deepEqual(seen.changed, new Set([bob.userId]));

    const aliceBefore = (await sync(alice)).next_batch;
    const carolBefore = (await sync(carol)).next_batch;
    const signedMaster = signed(bobSet.body.master_key, alice.userId, `ed25519:${aliceSet.userSigning.publicKey}`, aliceSet.userSigning);
    const res = await hs.call('POST', '/_matrix/client/v3/keys/signatures/upload', {
      token: alice.accessToken,
      body: { [bob.userId]: { [bobSet.master.publicKey]: signedMaster } },
    });
    assert.deepEqual(res.json, { failures: {} });
    await syncUntil(alice, aliceBefore, (l) => l.changed.has(bob.userId));
    // Alice's verification of Bob is nobody else's business.
    const carolAfter = await sync(carol, carolBefore, 0);
    assert.ok(!(carolAfter.device_lists?.changed ?? []).includes(bob.userId), JSON.stringify(carolAfter.device_lists));
  });

  test('a device signed by its owner’s self-signing key is news to room members; a new user-signing key only to its owner', async () => {
    const [alice, bob] = await users('alice', 'bob');
    await createRoomWith(hs, alice, [bob]);
    const device = await uploadDevice(hs, bob);
    const set = crossSigningSet(bob.userId);
    assert.equal(
      (await hs.call('POST', '/_matrix/client/v3/keys/device_signing/upload', { token: bob.accessToken, body: set.body })).status,
      200,
    );
    const aliceStart = (await sync(alice)).next_batch;

    const signedDevice = signed(device.deviceKeys, bob.userId, `ed25519:${set.selfSigning.publicKey}`, set.selfSigning);
    const res = await hs.call('POST', '/_matrix/client/v3/keys/signatures/upload', {
      token: bob.accessToken,
      body: { [bob.userId]: { [device.deviceId]: signedDevice } },
    });
    assert.deepEqual(res.json, { failures: {} });
    const seen = await syncUntil(alice, aliceStart, (l) => l.changed.has(bob.userId));

    // A new user-signing key (signed by the stored master key; replacing one needs the password).
    const bobStart = (await sync(bob)).next_batch;
    const userSigning = ed25519();
    const key = signed(crossSigningKey(bob.userId, 'user_signing', userSigning), bob.userId, `ed25519:${set.master.publicKey}`, set.master);
    const first = await hs.call('POST', '/_matrix/client/v3/keys/device_signing/upload', {
      token: bob.accessToken,
      body: { user_signing_key: key },
    });
    assert.equal(first.status, 401);
    const done = await hs.call('POST', '/_matrix/client/v3/keys/device_signing/upload', {
      token: bob.accessToken,
      body: { user_signing_key: key, auth: passwordAuth(bob, first.json.session) },
    });
    assert.equal(done.status, 200, done.text);
    await syncUntil(bob, bobStart, (l) => l.changed.has(bob.userId));
    const aliceAfter = await sync(alice, seen.token, 0);
    assert.ok(!(aliceAfter.device_lists?.changed ?? []).includes(bob.userId), JSON.stringify(aliceAfter.device_lists));
  });

  describe('deleting a device removes its keys and tells everyone sharing a room', () => {
    test('DELETE /devices/{deviceId} (after the password)', async () => {
      const [alice, bob] = await users('alice', 'bob');
      await createRoomWith(hs, alice, [bob]);
      const device = await newDevice(hs, bob);
      assert.ok((await deviceIdsOf(alice, bob.userId)).includes(device.deviceId));
      const start = (await sync(alice)).next_batch;

      const path = `/_matrix/client/v3/devices/${encodeURIComponent(device.deviceId)}`;
      const first = await hs.call('DELETE', path, { token: bob.accessToken, body: {} });
      assert.equal(first.status, 401);
      assert.ok((await deviceIdsOf(alice, bob.userId)).includes(device.deviceId));
      const done = await hs.call('DELETE', path, { token: bob.accessToken, body: { auth: passwordAuth(bob, first.json.session) } });
      assert.equal(done.status, 200, done.text);

      assert.ok(!(await deviceIdsOf(alice, bob.userId)).includes(device.deviceId));
      await syncUntil(alice, start, (l) => l.changed.has(bob.userId));
    });

    test('POST /delete_devices', async () => {
      const [alice, bob] = await users('alice', 'bob');
      await createRoomWith(hs, alice, [bob]);
      const one = await newDevice(hs, bob);
      const two = await newDevice(hs, bob);
      const kept = await newDevice(hs, bob);
      const start = (await sync(alice)).next_batch;

      const path = '/_matrix/client/v3/delete_devices';
      const first = await hs.call('POST', path, { token: bob.accessToken, body: { devices: [one.deviceId, two.deviceId] } });
      assert.equal(first.status, 401);
      const done = await hs.call('POST', path, {
        token: bob.accessToken,
        body: { devices: [one.deviceId, two.deviceId], auth: passwordAuth(bob, first.json.session) },
      });
      assert.equal(done.status, 200, done.text);

      const remaining = await deviceIdsOf(alice, bob.userId);
      assert.ok(!remaining.includes(one.deviceId) && !remaining.includes(two.deviceId));
      assert.ok(remaining.includes(kept.deviceId));
      await syncUntil(alice, start, (l) => l.changed.has(bob.userId));
    });

    test('POST /logout', async () => {
      const [alice, bob] = await users('alice', 'bob');
      await createRoomWith(hs, alice, [bob]);
      const device = await newDevice(hs, bob);
      const start = (await sync(alice)).next_batch;

      const res = await hs.call('POST', '/_matrix/client/v3/logout', { token: device.accessToken, body: {} });
      assert.equal(res.status, 200, res.text);
      assert.ok(!(await deviceIdsOf(alice, bob.userId)).includes(device.deviceId));
      const seen = await syncUntil(alice, start, (l) => l.changed.has(bob.userId));
      assert.deepEqual(await changes(alice, start, seen.token), { changed: [bob.userId], left: [] });
    });
  });

  describe('bad input', () => {
    test('GET /keys/changes without `from`, or with tokens that are not sync tokens', async () => {
      const [alice] = await users('alice');
      const missing = await hs.call('GET', CHANGES, { token: alice.accessToken });
      assert.equal(missing.status, 400);
      assert.equal(missing.json.errcode, 'M_MISSING_PARAM');
      const token = (await sync(alice)).next_batch;
      for (const [from, to] of [
        ['garbage', undefined],
        ['s1_2', undefined],
        [token, 'nope'],
        ['', undefined],
        ['s-1_0_0_0_0_0_0_0', undefined],
      ] as const) {
        const res = await hs.call(
          'GET',
          `${CHANGES}?from=${encodeURIComponent(from)}${to === undefined ? '' : `&to=${encodeURIComponent(to)}`}`,
          { token: alice.accessToken },
        );
        assert.equal(res.status, 400, `${from} ${to}: ${res.text}`);
        assert.equal(res.json.errcode, 'M_INVALID_PARAM', `${from} ${to}: ${res.text}`);
      }
    });
  });
});
