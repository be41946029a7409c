// /keys/upload, /keys/query and /keys/claim: device keys, one-time and fallback keys, and bad input.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { TestHomeserver, TestUser } from '../helpers/homeserver.js';
import { forEachBackend } from '../helpers/backends.js';
import { deviceKeysOf, ed25519, newDevice, oneTimeKeys, signed, uploadDevice, type TestDevice } from './e2ee-fixtures.js';

const UPLOAD = '/_matrix/client/v3/keys/upload';
const QUERY = '/_matrix/client/v3/keys/query';
const CLAIM = '/_matrix/client/v3/keys/claim';

forEachBackend('end-to-end encryption keys', (backend) => {
  let hs: TestHomeserver;
  let alice: TestUser;
  let bob: TestUser;

  before(async () => {
    hs = await backend.startHomeserver();
    alice = await hs.createUser('alice');
    bob = await hs.createUser('bob');
  });
  after(() => hs.stop());

  const claim = (token: string, userId: string, deviceId: string, algorithm = 'signed_curve25519') =>
    hs.call('POST', CLAIM, { token, body: { one_time_keys: { [userId]: { [deviceId]: algorithm } } } });
  const claimedKeyIds = (res: { json: any }, userId: string, deviceId: string): string[] =>
    Object.keys(res.json.one_time_keys[userId]?.[deviceId] ?? {});

  test('uploaded device keys are served to other users with the device display name', async () => {
    const device = await newDevice(hs, alice);
    await hs.homeserver.services.devices.rename(alice.userId, device.deviceId, "Alice's phone");
    const res = await hs.call('POST', QUERY, { token: bob.accessToken, body: { device_keys: { [alice.userId]: [] } } });
    assert.equal(res.status, 200);
    assert.deepEqual(res.json.failures, {});
    assert.deepEqual(res.json.device_keys[alice.userId][device.deviceId], {
      ...device.deviceKeys,
      unsigned: { device_display_name: "Alice's phone" },
    });
    // A device without keys is not listed; asking for one device gives only that one.
    const one = await hs.call('POST', QUERY, {
      token: bob.accessToken,
      body: { device_keys: { [alice.userId]: [device.deviceId, 'NOSUCHDEVICE'] } },
    });
    assert.deepEqual(Object.keys(one.json.device_keys[alice.userId]), [device.deviceId]);
  });

  test('upload answers one_time_key_counts, always with signed_curve25519', async () => {
    const device = await newDevice(hs, alice);
    const empty = await hs.call('POST', UPLOAD, { token: device.accessToken, body: {} });
    assert.deepEqual(empty.json, { one_time_key_counts: { signed_curve25519: 0 } });
    const res = await hs.call('POST', UPLOAD, {
      token: device.accessToken,
      body: { one_time_keys: { ...oneTimeKeys(device, 3), 'curve25519:plain': 'cGxhaW4ga2V5' } },
    });
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { one_time_key_counts: { signed_curve25519: 3, curve25519: 1 } });
  });

  test('the same one-time key may be uploaded again (signatures aside); a different key under its id is refused', async () => {
    const device = await newDevice(hs, alice);
    const keys = oneTimeKeys(device, 1, 'same');
    assert.equal((await hs.call('POST', UPLOAD, { token: device.accessToken, body: { one_time_keys: keys } })).status, 200);
    const [[name, key]] = Object.entries(keys) as [[string, any]];
    const resigned = { [name]: signed({ key: key.key }, device.userId, `ed25519:${device.deviceId}`, device.key) };
    const again = await hs.call('POST', UPLOAD, { token: device.accessToken, body: { one_time_keys: resigned } });
    assert.deepEqual(again.json, { one_time_key_counts: { signed_curve25519: 1 } });
    const different = await hs.call('POST', UPLOAD, {
      token: device.accessToken,
      body: { one_time_keys: { [name]: { ...key, key: 'b3RoZXIga2V5' } } },
    });
    assert.equal(different.status, 400);
    assert.equal(different.json.errcode, 'M_INVALID_PARAM');
  });

  test('claims hand out one-time keys oldest upload first, each once, then the fallback key', async () => {
    const device = await newDevice(hs, alice);
    await hs.call('POST', UPLOAD, { token: device.accessToken, body: { one_time_keys: oneTimeKeys(device, 2, 'first') } });
    await new Promise((r) => setTimeout(r, 5));
    await hs.call('POST', UPLOAD, {
      token: device.accessToken,
      body: { one_time_keys: oneTimeKeys(device, 1, 'second'), fallback_keys: oneTimeKeys(device, 1, 'fb', true) },
    });
    const claimed: string[] = [];
    for (let i = 0; i < 3; i++)
      claimed.push(...claimedKeyIds(await claim(bob.accessToken, alice.userId, device.deviceId), alice.userId, device.deviceId));
    assert.deepEqual(claimed.slice(0, 2).sort(), ['signed_curve25519:first0', 'signed_curve25519:first1']);
    assert.equal(claimed[2], 'signed_curve25519:second0');

    const sources = hs.homeserver.services.e2eeSyncSources;
    assert.deepEqual(await sources.unusedFallbackKeyTypes(alice.userId, device.deviceId), ['signed_curve25519']);
    for (let i = 0; i < 2; i++) {
      const res = await claim(bob.accessToken, alice.userId, device.deviceId);
      assert.deepEqual(claimedKeyIds(res, alice.userId, device.deviceId), ['signed_curve25519:fb0']);
      assert.equal(res.json.one_time_keys[alice.userId][device.deviceId]['signed_curve25519:fb0'].fallback, true);
    }
    assert.deepEqual(await sources.unusedFallbackKeyTypes(alice.userId, device.deviceId), []);
    assert.deepEqual(await sources.oneTimeKeyCounts(alice.userId, device.deviceId), { signed_curve25519: 0 });
  });

  test('re-uploading the used fallback key keeps it used; a new one is unused', async () => {
    const device = await newDevice(hs, alice);
    const fallback = oneTimeKeys(device, 1, 'fbk', true);
    await hs.call('POST', UPLOAD, { token: device.accessToken, body: { fallback_keys: fallback } });
    await claim(bob.accessToken, alice.userId, device.deviceId);
    const sources = hs.homeserver.services.e2eeSyncSources;
    await hs.call('POST', UPLOAD, { token: device.accessToken, body: { fallback_keys: fallback } });
    assert.deepEqual(await sources.unusedFallbackKeyTypes(alice.userId, device.deviceId), []);
    await hs.call('POST', UPLOAD, { token: device.accessToken, body: { fallback_keys: oneTimeKeys(device, 1, 'fbnew', true) } });
    assert.deepEqual(await sources.unusedFallbackKeyTypes(alice.userId, device.deviceId), ['signed_curve25519']);
    const res = await claim(bob.accessToken, alice.userId, device.deviceId);
    assert.deepEqual(claimedKeyIds(res, alice.userId, device.deviceId), ['signed_curve25519:fbnew0']);
  });

  test('/sync always carries the one-time key counts and the unused fallback key types', async () => {
    const device = await newDevice(hs, bob);
    await hs.call('POST', UPLOAD, {
      token: device.accessToken,
      body: { one_time_keys: oneTimeKeys(device, 5), fallback_keys: oneTimeKeys(device, 1, 'f', true) },
    });
    const initial = await hs.call('GET', '/_matrix/client/v3/sync', { token: device.accessToken });
    assert.deepEqual(initial.json.device_one_time_keys_count, { signed_curve25519: 5 });
    assert.deepEqual(initial.json.device_unused_fallback_key_types, ['signed_curve25519']);
    await claim(alice.accessToken, bob.userId, device.deviceId);
    const next = await hs.call('GET', `/_matrix/client/v3/sync?timeout=0&since=${initial.json.next_batch}`, { token: device.accessToken });
    assert.deepEqual(next.json.device_one_time_keys_count, { signed_curve25519: 4 });
    const fresh = await hs.homeserver.services.auth.createSession(bob.userId);
    const none = await hs.call('GET', '/_matrix/client/v3/sync', { token: fresh.accessToken });
    assert.deepEqual(none.json.device_one_time_keys_count, { signed_curve25519: 0 });
    assert.deepEqual(none.json.device_unused_fallback_key_types, []);
  });

  test('50 concurrent claims of a device with 20 one-time keys: 20 distinct keys, then the fallback key, never a duplicate', async () => {
    const device = await newDevice(hs, alice);
    await hs.call('POST', UPLOAD, {
      token: device.accessToken,
      body: { one_time_keys: oneTimeKeys(device, 20, 'race'), fallback_keys: oneTimeKeys(device, 1, 'racefb', true) },
    });
    const results = await Promise.all(Array.from({ length: 50 }, () => claim(bob.accessToken, alice.userId, device.deviceId)));
    const ids = results.map((r) => claimedKeyIds(r, alice.userId, device.deviceId));
    assert.ok(ids.every((list) => list.length === 1));
    const oneTime = ids.flat().filter((id) => id !== 'signed_curve25519:racefb0');
    assert.equal(oneTime.length, 20);
    assert.equal(new Set(oneTime).size, 20);
    assert.equal(ids.flat().length - oneTime.length, 30);
  });

  test('claims and queries skip unknown devices and unknown users; a server that cannot be reached is in failures', async () => {
    const res = await hs.call('POST', CLAIM, {
      token: bob.accessToken,
      body: {
        timeout: 1_000,
        one_time_keys: {
          [alice.userId]: { NOPE: 'signed_curve25519' },
          '@carol:elsewhere.example': { D: 'signed_curve25519' },
          '@nobody:test.local': { X: 'signed_curve25519' },
        },
      },
    });
    assert.deepEqual(res.json.one_time_keys, {});
    assert.deepEqual(Object.keys(res.json.failures), ['elsewhere.example']);
    const query = await hs.call('POST', QUERY, {
      token: bob.accessToken,
      body: { timeout: 1_000, device_keys: { '@carol:elsewhere.example': [], 'not a user id': [], '@nobody:test.local': [] } },
    });
    assert.equal(query.status, 200);
    assert.deepEqual(query.json.device_keys, { '@nobody:test.local': {} });
    assert.deepEqual(Object.keys(query.json.failures), ['elsewhere.example']);
    assert.equal(query.json.failures['elsewhere.example'].status, 503);
  });

  describe('bad input', () => {
    let device: TestDevice;
    before(async () => {
      device = await newDevice(hs, bob);
    });
    const upload = (body: unknown, token = device.accessToken) => hs.call('POST', UPLOAD, { token, body });

    test('no token, or an unknown one', async () => {
      for (const [method, path] of [
        ['POST', UPLOAD],
        ['POST', QUERY],
        ['POST', CLAIM],
        ['GET', '/_matrix/client/v3/keys/changes?from=s0_0_0_0_0_0_0_0'],
      ]) {
        const missing = await hs.call(method!, path!, { body: {} });
        assert.equal(missing.status, 401);
        assert.equal(missing.json.errcode, 'M_MISSING_TOKEN');
        const unknown = await hs.call(method!, path!, { token: 'nope', body: {} });
        assert.equal(unknown.status, 401);
        assert.equal(unknown.json.errcode, 'M_UNKNOWN_TOKEN');
      }
    });

    test('unsigned, wrongly signed or unverifiable device keys: M_INVALID_SIGNATURE', async () => {
      const keys = deviceKeysOf(device) as any;
      const unsigned = { ...keys, signatures: {} };
      const otherKey = deviceKeysOf(device, ed25519()) as any;
      const wronglySigned = { ...keys, signatures: otherKey.signatures };
      const tampered = { ...keys, algorithms: ['m.olm.v1.curve25519-aes-sha2'] };
      const { [`ed25519:${device.deviceId}`]: _, ...withoutEd25519 } = keys.keys;
      const noKey = { ...keys, keys: withoutEd25519 };
      for (const bad of [unsigned, wronglySigned, tampered, noKey]) {
        const res = await upload({ device_keys: bad });
        assert.equal(res.status, 400);
        assert.equal(res.json.errcode, 'M_INVALID_SIGNATURE');
      }
    });

    test('keys for another user or another device: M_BAD_JSON', async () => {
      const forAlice = deviceKeysOf({ userId: alice.userId, deviceId: device.deviceId });
      const forOtherDevice = deviceKeysOf({ userId: bob.userId, deviceId: 'OTHERDEVICE' });
      for (const bad of [forAlice, forOtherDevice]) {
        const res = await upload({ device_keys: bad });
        assert.equal(res.status, 400);
        assert.equal(res.json.errcode, 'M_BAD_JSON');
      }
    });

    test('malformed key JSON: M_BAD_JSON, and nothing is stored', async () => {
      const good = deviceKeysOf(device) as any;
      const cases: unknown[] = [
        { device_keys: null },
        { device_keys: 'keys' },
        { device_keys: { ...good, algorithms: 'all' } },
        { device_keys: { ...good, keys: { 'ed25519:X': 5 } } },
        { device_keys: { ...good, signatures: { [bob.userId]: 'sig' } } },
        { one_time_keys: [] },
        { one_time_keys: { nocolon: 'key' } },
        { one_time_keys: { 'a:b:c': 'key' } },
        { one_time_keys: { 'signed_curve25519:x': { signatures: {} } } },
        { one_time_keys: { 'signed_curve25519:x': { key: 'k', signatures: {}, fallback: 'yes' } } },
        { one_time_keys: { 'signed_curve25519:x': { key: 'k', signatures: {}, weight: 1.5 } } },
        { fallback_keys: { 'signed_curve25519:a': 'k1', 'signed_curve25519:b': 'k2' } },
        { device_keys: good, one_time_keys: { 'signed_curve25519:y': 7 } },
      ];
      for (const body of cases) {
        const res = await upload(body);
        assert.equal(res.status, 400, JSON.stringify(body));
        assert.equal(res.json.errcode, 'M_BAD_JSON', JSON.stringify(body));
      }
      assert.deepEqual(await hs.homeserver.services.e2eeSyncSources.oneTimeKeyCounts(bob.userId, device.deviceId), {
        signed_curve25519: 0,
      });
    });

    test('query and claim bodies of the wrong shape: M_BAD_JSON', async () => {
      for (const body of [
        {},
        { device_keys: [] },
        { device_keys: { [alice.userId]: 'all' } },
        { device_keys: { [alice.userId]: [1] } },
        { device_keys: {}, timeout: 'soon' },
      ]) {
        const res = await hs.call('POST', QUERY, { token: bob.accessToken, body });
        assert.equal(res.status, 400, JSON.stringify(body));
        assert.equal(res.json.errcode, 'M_BAD_JSON');
      }
      for (const body of [
        {},
        { one_time_keys: 'x' },
        { one_time_keys: { [alice.userId]: ['D'] } },
        { one_time_keys: { [alice.userId]: { D: 1 } } },
      ]) {
        const res = await hs.call('POST', CLAIM, { token: bob.accessToken, body });
        assert.equal(res.status, 400, JSON.stringify(body));
        assert.equal(res.json.errcode, 'M_BAD_JSON');
      }
    });
  });

  test('keys for a device that was re-uploaded unchanged are not announced again', async () => {
    const device = await uploadDevice(hs, await hs.createUser('dora'));
    const before = hs.homeserver.services.notifier.currentPositions().device_lists;
    const res = await hs.call('POST', UPLOAD, { token: device.accessToken, body: { device_keys: device.deviceKeys } });
    assert.equal(res.status, 200);
    assert.equal(hs.homeserver.services.notifier.currentPositions().device_lists, before);
  });
});
