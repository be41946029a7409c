// Cross-signing: /keys/device_signing/upload (first upload without user-interactive auth, as
// Synapse after MSC3967; replacements only with the password), the keys /keys/query shows to whom,
// and /keys/signatures/upload (devices signed by the self-signing key, the master key by a device,
// other users' master keys by the user-signing key; bad signatures listed under `failures`).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type TestHomeserver, type TestUser } from '../helpers/homeserver.js';
import { forEachBackend } from '../helpers/backends.js';
import { crossSigningKey, crossSigningSet, ed25519, newDevice, signed, uploadDevice, type CrossSigningSet } from './e2ee-fixtures.js';

const SIGNING_UPLOAD = '/_matrix/client/v3/keys/device_signing/upload';
const SIGNATURES_UPLOAD = '/_matrix/client/v3/keys/signatures/upload';
const QUERY = '/_matrix/client/v3/keys/query';

function passwordAuth(user: TestUser, session: string, password = user.password) {
  return { type: 'm.login.password', identifier: { type: 'm.id.user', user: user.userId }, password, session };
}

const idOf = (key: { publicKey: string }) => `ed25519:${key.publicKey}`;

forEachBackend('cross-signing', (backend) => {
  let hs: TestHomeserver;
  let observer: TestUser;

  before(async () => {
    hs = await backend.startHomeserver();
    observer = await hs.createUser('observer');
  });
  after(() => hs.stop());

  const upload = (user: TestUser, body: unknown) => hs.call('POST', SIGNING_UPLOAD, { token: user.accessToken, body });
  const query = async (viewer: TestUser, userIds: string[]) => {
    const res = await hs.call('POST', QUERY, {
      token: viewer.accessToken,
      body: { device_keys: Object.fromEntries(userIds.map((u) => [u, []])) },
    });
    assert.equal(res.status, 200, res.text);
    return res.json;
  };
  /** A user with a device with keys and a full set of cross-signing keys uploaded. */
  const crossSigningUser = async (localpart: string) => {
    const user = await hs.createUser(localpart);
    const device = await uploadDevice(hs, user);
    const set = crossSigningSet(user.userId);
    const res = await upload(user, set.body);
    assert.equal(res.status, 200, res.text);
    return { user, device, set };
  };

  test('the first upload needs no UIA; master and self-signing keys are public, the user-signing key is the owner’s', async () => {
    const alice = await hs.createUser('alice');
    const set = crossSigningSet(alice.userId);
    const res = await upload(alice, set.body);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, {});

    const own = await query(alice, [alice.userId]);
    assert.deepEqual(own.master_keys[alice.userId], set.body.master_key);
    assert.deepEqual(own.self_signing_keys[alice.userId], set.body.self_signing_key);
    assert.deepEqual(own.user_signing_keys[alice.userId], set.body.user_signing_key);

    const seen = await query(observer, [alice.userId]);
    assert.deepEqual(seen.master_keys[alice.userId], set.body.master_key);
    assert.deepEqual(seen.self_signing_keys[alice.userId], set.body.self_signing_key);
    assert.deepEqual(seen.user_signing_keys, {});

    // Sending exactly the same keys again (a client retrying) is a 200 without auth.
    const retry = await upload(alice, set.body);
    assert.equal(retry.status, 200, retry.text);
  });

  test('replacing the master key needs the password (401, flows); a wrong one is refused; the right one replaces the keys', async () => {
    const { user: bob, set: old } = await crossSigningUser('bob');
    const fresh = crossSigningSet(bob.userId);

    const first = await upload(bob, fresh.body);
    assert.equal(first.status, 401);
    assert.deepEqual(first.json.flows, [{ stages: ['m.login.password'] }]);
    assert.equal(typeof first.json.session, 'string');
    // Nothing changed yet.
    assert.deepEqual((await query(observer, [bob.userId])).master_keys[bob.userId], old.body.master_key);

    const wrong = await upload(bob, { ...fresh.body, auth: passwordAuth(bob, first.json.session, 'not the password') });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.json.errcode, 'M_FORBIDDEN');
    assert.deepEqual((await query(observer, [bob.userId])).master_keys[bob.userId], old.body.master_key);

    const done = await upload(bob, { ...fresh.body, auth: passwordAuth(bob, first.json.session) });
    assert.equal(done.status, 200, done.text);
    const own = await query(bob, [bob.userId]);
    assert.deepEqual(own.master_keys[bob.userId], fresh.body.master_key);
    assert.deepEqual(own.self_signing_keys[bob.userId], fresh.body.self_signing_key);
    assert.deepEqual(own.user_signing_keys[bob.userId], fresh.body.user_signing_key);
  });

  test('finishing the auth with only `auth` in the body uploads the keys of the first request', async () => {
    const { user: cleo } = await crossSigningUser('cleo');
    const fresh = crossSigningSet(cleo.userId);
    const first = await upload(cleo, fresh.body);
    assert.equal(first.status, 401);
    const done = await upload(cleo, { auth: passwordAuth(cleo, first.json.session) });
    assert.equal(done.status, 200, done.text);
    assert.deepEqual((await query(observer, [cleo.userId])).master_keys[cleo.userId], fresh.body.master_key);
  });

  test('a new self-signing key (signed by the stored master key) also needs the password once cross-signing is set up', async () => {
    const { user: dave, set } = await crossSigningUser('dave');
    const selfSigning = ed25519();
    const newKey = signed(crossSigningKey(dave.userId, 'self_signing', selfSigning), dave.userId, idOf(set.master), set.master);
    const first = await upload(dave, { self_signing_key: newKey });
    assert.equal(first.status, 401);
    const done = await upload(dave, { self_signing_key: newKey, auth: passwordAuth(dave, first.json.session) });
    assert.equal(done.status, 200, done.text);
    const seen = await query(observer, [dave.userId]);
    assert.deepEqual(seen.self_signing_keys[dave.userId], newKey);
    assert.deepEqual(seen.master_keys[dave.userId], set.body.master_key);
  });

  test('self-signing and user-signing keys not signed by the master key: M_INVALID_SIGNATURE, and nothing is stored', async () => {
    const erin = await hs.createUser('erin');
    const set = crossSigningSet(erin.userId);
    const other = ed25519();
    const bySomeoneElse = signed(crossSigningKey(erin.userId, 'self_signing', set.selfSigning), erin.userId, idOf(set.master), other);
    const unsigned = crossSigningKey(erin.userId, 'user_signing', set.userSigning);
    const tampered = { ...set.body.self_signing_key, usage: ['self_signing', 'extra'] };
    for (const body of [
      { ...set.body, self_signing_key: bySomeoneElse },
      { ...set.body, user_signing_key: unsigned },
      { ...set.body, self_signing_key: tampered },
    ]) {
      const res = await upload(erin, body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.json.errcode, 'M_INVALID_SIGNATURE');
    }
    const seen = await query(erin, [erin.userId]);
    assert.deepEqual([seen.master_keys, seen.self_signing_keys, seen.user_signing_keys], [{}, {}, {}]);

    // Without any master key there is nothing to check the others against.
    const alone = await upload(erin, { self_signing_key: set.body.self_signing_key });
    assert.equal(alone.status, 400);
    assert.equal(alone.json.errcode, 'M_MISSING_PARAM');
  });

  test('keys that are not the user’s, have the wrong usage or not exactly one ed25519 key: M_INVALID_PARAM', async () => {
    const fred = await hs.createUser('fred');
    const master = ed25519();
    const cases = [
      crossSigningKey(observer.userId, 'master', master),
      crossSigningKey(fred.userId, 'self_signing', master),
      { user_id: fred.userId, usage: ['master'], keys: {} },
      { user_id: fred.userId, usage: ['master'], keys: { [idOf(master)]: master.publicKey, 'ed25519:second': ed25519().publicKey } },
      { user_id: fred.userId, usage: ['master'], keys: { [`curve25519:${master.publicKey}`]: master.publicKey } },
      { user_id: fred.userId, usage: 'master', keys: { [idOf(master)]: master.publicKey } },
    ];
    for (const master_key of cases) {
      const res = await upload(fred, { master_key });
      assert.equal(res.status, 400, JSON.stringify(master_key));
      assert.equal(res.json.errcode, 'M_INVALID_PARAM', JSON.stringify(master_key));
    }
    assert.deepEqual((await query(fred, [fred.userId])).master_keys, {});
  });

  describe('/keys/signatures/upload', () => {
    let gina: { user: TestUser; device: Awaited<ReturnType<typeof uploadDevice>>; set: CrossSigningSet };
    let hank: { user: TestUser; device: Awaited<ReturnType<typeof uploadDevice>>; set: CrossSigningSet };
    before(async () => {
      gina = await crossSigningUser('gina');
      hank = await crossSigningUser('hank');
    });
    const signatures = (user: { accessToken: string }, body: unknown) =>
      hs.call('POST', SIGNATURES_UPLOAD, { token: user.accessToken, body });

    test('a device signed by the self-signing key: stored, and shown on the device keys to everyone', async () => {
      const device = await newDevice(hs, gina.user);
      const signedDevice = signed(device.deviceKeys, gina.user.userId, idOf(gina.set.selfSigning), gina.set.selfSigning);
      const res = await signatures(device, { [gina.user.userId]: { [device.deviceId]: signedDevice } });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.json, { failures: {} });
      for (const viewer of [gina.user, observer]) {
        const keys = (await query(viewer, [gina.user.userId])).device_keys[gina.user.userId][device.deviceId];
        assert.deepEqual(keys.signatures[gina.user.userId], (signedDevice.signatures as any)[gina.user.userId]);
        assert.equal(
          keys.signatures[gina.user.userId][idOf(gina.set.selfSigning)],
          (signedDevice.signatures as any)[gina.user.userId][idOf(gina.set.selfSigning)],
        );
      }
    });

    test('the master key signed by one of the user’s devices is stored; its owner sees the signature', async () => {
      const signedMaster = signed(gina.set.body.master_key, gina.user.userId, `ed25519:${gina.device.deviceId}`, gina.device.key);
      const res = await signatures(gina.user, { [gina.user.userId]: { [gina.set.master.publicKey]: signedMaster } });
      assert.deepEqual(res.json, { failures: {} });
      const own = await query(gina.user, [gina.user.userId]);
      assert.equal(
        own.master_keys[gina.user.userId].signatures[gina.user.userId][`ed25519:${gina.device.deviceId}`],
        (signedMaster.signatures as any)[gina.user.userId][`ed25519:${gina.device.deviceId}`],
      );
    });

    test('another user’s master key signed with the user-signing key: its signer sees the signature, others do not', async () => {
      const signedMaster = signed(hank.set.body.master_key, gina.user.userId, idOf(gina.set.userSigning), gina.set.userSigning);
      const res = await signatures(gina.user, { [hank.user.userId]: { [hank.set.master.publicKey]: signedMaster } });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.json, { failures: {} });
      const byGina = await query(gina.user, [hank.user.userId]);
      assert.equal(
        byGina.master_keys[hank.user.userId].signatures[gina.user.userId][idOf(gina.set.userSigning)],
        (signedMaster.signatures as any)[gina.user.userId][idOf(gina.set.userSigning)],
      );
      for (const viewer of [hank.user, observer]) {
        const master = (await query(viewer, [hank.user.userId])).master_keys[hank.user.userId];
        assert.deepEqual(master, hank.set.body.master_key);
      }
    });

    test('bad signatures are listed under failures with an errcode; good ones in the same request are stored', async () => {
      const good = await newDevice(hs, gina.user);
      const bad = await newDevice(hs, gina.user);
      const goodSigned = signed(good.deviceKeys, gina.user.userId, idOf(gina.set.selfSigning), gina.set.selfSigning);
      // Signed by a key that is not the self-signing key, under its id.
      const forged = signed(bad.deviceKeys, gina.user.userId, idOf(gina.set.selfSigning), ed25519());
      // The right signature over a different object than the stored device keys.
      const altered = signed(
        { ...bad.deviceKeys, algorithms: ['m.megolm.v1.aes-sha2'] },
        gina.user.userId,
        idOf(gina.set.selfSigning),
        gina.set.selfSigning,
      );
      // No signature by the user at all; a device that does not exist.
      const unsignedBody = { ...bad.deviceKeys, signatures: {} };
      const ghost = signed({ ...bad.deviceKeys, device_id: 'GHOST' }, gina.user.userId, idOf(gina.set.selfSigning), gina.set.selfSigning);
      // Hank's master key signed with Gina's self-signing key (only the user-signing key may), and
      // a key id that is not Hank's master key.
      const wrongKey = signed(hank.set.body.master_key, gina.user.userId, idOf(gina.set.selfSigning), gina.set.selfSigning);
      const notMaster = signed(hank.set.body.self_signing_key, gina.user.userId, idOf(gina.set.userSigning), gina.set.userSigning);

      const res = await signatures(gina.user, {
        [gina.user.userId]: { [good.deviceId]: goodSigned, [bad.deviceId]: forged, GHOST: ghost },
        [hank.user.userId]: { [hank.set.master.publicKey]: wrongKey, [hank.set.selfSigning.publicKey]: notMaster },
      });
      assert.equal(res.status, 200, res.text);
      const failures = res.json.failures;
      assert.equal(failures[gina.user.userId][bad.deviceId].errcode, 'M_INVALID_SIGNATURE');
      assert.equal(typeof failures[gina.user.userId][bad.deviceId].error, 'string');
      assert.ok(failures[gina.user.userId].GHOST.errcode);
      assert.equal(failures[gina.user.userId][good.deviceId], undefined);
      assert.equal(failures[hank.user.userId][hank.set.master.publicKey].errcode, 'M_INVALID_SIGNATURE');
      assert.ok(failures[hank.user.userId][hank.set.selfSigning.publicKey].errcode);

      for (const body of [altered, unsignedBody]) {
        const again = await signatures(gina.user, { [gina.user.userId]: { [bad.deviceId]: body } });
        assert.equal(again.status, 200);
        assert.ok(again.json.failures[gina.user.userId][bad.deviceId].errcode, JSON.stringify(body));
      }

      const seen = (await query(observer, [gina.user.userId])).device_keys[gina.user.userId];
      assert.ok(seen[good.deviceId].signatures[gina.user.userId][idOf(gina.set.selfSigning)]);
      assert.equal(seen[bad.deviceId].signatures[gina.user.userId][idOf(gina.set.selfSigning)], undefined);
    });

    test('signing without cross-signing keys fails per entry, not the request', async () => {
      const ivan = await hs.createUser('ivan');
      const device = await uploadDevice(hs, ivan);
      const res = await signatures(ivan, {
        [ivan.userId]: { [device.deviceId]: signed(device.deviceKeys, ivan.userId, 'ed25519:nokey', ed25519()) },
        [hank.user.userId]: { [hank.set.master.publicKey]: signed(hank.set.body.master_key, ivan.userId, 'ed25519:nokey', ed25519()) },
      });
      assert.equal(res.status, 200, res.text);
      assert.ok(res.json.failures[ivan.userId][device.deviceId].errcode);
      assert.ok(res.json.failures[hank.user.userId][hank.set.master.publicKey].errcode);
    });
  });

  describe('bad input', () => {
    let jane: TestUser;
    before(async () => {
      jane = await hs.createUser('jane');
    });

    test('no token, or an unknown one', async () => {
      for (const path of [SIGNING_UPLOAD, SIGNATURES_UPLOAD]) {
        const missing = await hs.call('POST', path, { body: {} });
        assert.equal(missing.status, 401);
        assert.equal(missing.json.errcode, 'M_MISSING_TOKEN');
        const unknown = await hs.call('POST', path, { token: 'nope', body: {} });
        assert.equal(unknown.status, 401);
        assert.equal(unknown.json.errcode, 'M_UNKNOWN_TOKEN');
      }
    });

    test('a body that is not JSON: M_NOT_JSON; not an object: M_BAD_JSON or M_NOT_JSON', async () => {
      for (const path of [SIGNING_UPLOAD, SIGNATURES_UPLOAD]) {
        const res = await hs.call('POST', path, {
          token: jane.accessToken,
          rawBody: '{"master_key":',
          headers: { 'Content-Type': 'application/json' },
        });
        assert.equal(res.status, 400);
        assert.equal(res.json.errcode, 'M_NOT_JSON');
        for (const rawBody of ['[]', '"keys"', '5', 'null']) {
          const other = await hs.call('POST', path, { token: jane.accessToken, rawBody, headers: { 'Content-Type': 'application/json' } });
          assert.equal(other.status, 400, `${path} ${rawBody}`);
          assert.ok(['M_BAD_JSON', 'M_NOT_JSON'].includes(other.json.errcode), `${path} ${rawBody}: ${other.text}`);
        }
      }
    });

    test('keys of the wrong type: M_BAD_JSON', async () => {
      for (const body of [{ master_key: 'key' }, { master_key: [] }, { self_signing_key: 5 }, { user_signing_key: true }]) {
        const res = await hs.call('POST', SIGNING_UPLOAD, { token: jane.accessToken, body });
        assert.equal(res.status, 400, JSON.stringify(body));
        assert.equal(res.json.errcode, 'M_BAD_JSON', JSON.stringify(body));
      }
      const master = ed25519();
      const badSignatures = { ...crossSigningKey(jane.userId, 'master', master), signatures: { [jane.userId]: 'sig' } };
      const res = await hs.call('POST', SIGNING_UPLOAD, { token: jane.accessToken, body: { master_key: badSignatures } });
      assert.equal(res.status, 400);
      assert.equal(res.json.errcode, 'M_BAD_JSON');
    });

    test('signature uploads of the wrong shape: M_BAD_JSON', async () => {
      for (const body of [
        { [jane.userId]: 'x' },
        { [jane.userId]: [] },
        { [jane.userId]: { DEVICE: 'signed' } },
        { [jane.userId]: { DEVICE: [1] } },
      ]) {
        const res = await hs.call('POST', SIGNATURES_UPLOAD, { token: jane.accessToken, body });
        assert.equal(res.status, 400, JSON.stringify(body));
        assert.equal(res.json.errcode, 'M_BAD_JSON', JSON.stringify(body));
      }
      // An empty upload changes nothing.
      const empty = await hs.call('POST', SIGNATURES_UPLOAD, { token: jane.accessToken, body: {} });
      assert.equal(empty.status, 200);
      assert.deepEqual(empty.json, { failures: {} });
    });
  });
});
