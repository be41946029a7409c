// Server-side key backups (key_backup.yaml): versions (create, read, update, delete), keys by
// backup, room and session, the spec's rule for which copy of a session's key is kept, etags and
// counts, writes to a version that is not the current one, and bad input.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type TestHomeserver, type TestUser } from '../helpers/homeserver.js';
import { forEachBackend } from '../helpers/backends.js';

const VERSION = '/_matrix/client/v3/room_keys/version';
const KEYS = '/_matrix/client/v3/room_keys/keys';
/** A room id for the key paths (path room ids must be room ids). */
const R = encodeURIComponent('!r:test.local');
const ALGORITHM = 'm.megolm_backup.v1.curve25519-aes-sha2';

const enc = encodeURIComponent;

interface KeyData {
  first_message_index: number;
  forwarded_count: number;
  is_verified: boolean;
  session_data: Record<string, unknown>;
}

function keyData(first_message_index: number, forwarded_count: number, is_verified: boolean, tag = 'x'): KeyData {
  return {
    first_message_index,
    forwarded_count,
    is_verified,
    session_data: { ephemeral: `e-${tag}`, ciphertext: `c-${tag}`, mac: `m-${tag}` },
  };
}

forEachBackend('key backup', (backend) => {
  let hs: TestHomeserver;
  before(async () => {
    hs = await backend.startHomeserver();
  });
  after(() => hs.stop());

  const authData = (n: number) => ({ public_key: `pk${n}`, signatures: { '@someone:test.local': { 'ed25519:DEV': `sig${n}` } } });
  const createVersion = async (user: TestUser, n = 1) => {
    const res = await hs.call('POST', VERSION, { token: user.accessToken, body: { algorithm: ALGORITHM, auth_data: authData(n) } });
    assert.equal(res.status, 200, res.text);
    assert.equal(typeof res.json.version, 'string');
    return res.json.version as string;
  };
  const putKeys = (user: TestUser, version: string, rooms: Record<string, Record<string, KeyData>>) =>
    hs.call('PUT', `${KEYS}?version=${enc(version)}`, {
      token: user.accessToken,
      body: { rooms: Object.fromEntries(Object.entries(rooms).map(([roomId, sessions]) => [roomId, { sessions }])) },
    });
  const putSession = (user: TestUser, version: string, roomId: string, sessionId: string, key: unknown) =>
    hs.call('PUT', `${KEYS}/${enc(roomId)}/${enc(sessionId)}?version=${enc(version)}`, { token: user.accessToken, body: key });
  const getSession = (user: TestUser, version: string, roomId: string, sessionId: string) =>
    hs.call('GET', `${KEYS}/${enc(roomId)}/${enc(sessionId)}?version=${enc(version)}`, { token: user.accessToken });
  const info = (user: TestUser, version?: string) =>
    hs.call('GET', version === undefined ? VERSION : `${VERSION}/${enc(version)}`, { token: user.accessToken });

  test('no backup yet: the current version, a named one and keys of one are 404 M_NOT_FOUND', async () => {
    const user = await hs.createUser('nobackup');
    for (const res of [
      await info(user),
      await info(user, '1'),
      await info(user, 'not-a-number'),
      await hs.call('GET', `${KEYS}?version=1`, { token: user.accessToken }),
    ]) {
      assert.equal(res.status, 404, res.text);
      assert.equal(res.json.errcode, 'M_NOT_FOUND');
    }
    const put = await putSession(user, '1', '!room:test.local', 'sess', keyData(0, 0, false));
    assert.equal(put.status, 404);
    assert.equal(put.json.errcode, 'M_NOT_FOUND');
  });

  test('create, read and update a version; only auth_data changes; the body’s version and algorithm must match', async () => {
    const user = await hs.createUser('versions');
    const version = await createVersion(user, 1);
    const current = await info(user);
    assert.equal(current.status, 200);
    assert.deepEqual(current.json, { version, algorithm: ALGORITHM, auth_data: authData(1), count: 0, etag: current.json.etag });
    assert.equal(typeof current.json.etag, 'string');
    assert.deepEqual((await info(user, version)).json, current.json);

    const updated = await hs.call('PUT', `${VERSION}/${version}`, {
      token: user.accessToken,
      body: { algorithm: ALGORITHM, auth_data: authData(2), version },
    });
    assert.equal(updated.status, 200, updated.text);
    assert.deepEqual(updated.json, {});
    assert.deepEqual((await info(user, version)).json.auth_data, authData(2));
    const withoutVersion = await hs.call('PUT', `${VERSION}/${version}`, {
      token: user.accessToken,
      body: { algorithm: ALGORITHM, auth_data: authData(3) },
    });
    assert.equal(withoutVersion.status, 200);
    assert.deepEqual((await info(user, version)).json.auth_data, authData(3));

    const mismatch = await hs.call('PUT', `${VERSION}/${version}`, {
      token: user.accessToken,
      body: { algorithm: ALGORITHM, auth_data: authData(4), version: '999' },
    });
    assert.equal(mismatch.status, 400);
    assert.equal(mismatch.json.errcode, 'M_INVALID_PARAM');
    const otherAlgorithm = await hs.call('PUT', `${VERSION}/${version}`, {
      token: user.accessToken,
      body: { algorithm: 'm.other', auth_data: authData(4) },
    });
    assert.equal(otherAlgorithm.status, 400);
    assert.equal(otherAlgorithm.json.errcode, 'M_INVALID_PARAM');
    const unknown = await hs.call('PUT', `${VERSION}/999`, {
      token: user.accessToken,
      body: { algorithm: ALGORITHM, auth_data: authData(4) },
    });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json.errcode, 'M_NOT_FOUND');
    assert.deepEqual((await info(user, version)).json.auth_data, authData(3));
  });

  test('backups are per user: another user sees none of them', async () => {
    const owner = await hs.createUser('owner');
    const other = await hs.createUser('other');
    const version = await createVersion(owner);
    await putSession(owner, version, '!r:test.local', 's', keyData(0, 0, true));
    const res = await info(other, version);
    assert.equal(res.status, 404);
    assert.equal(res.json.errcode, 'M_NOT_FOUND');
    const keys = await getSession(other, version, '!r:test.local', 's');
    assert.equal(keys.status, 404);
  });

  test('keys by backup, room and session; etag and count follow every change', async () => {
    const user = await hs.createUser('keeper');
    const version = await createVersion(user);
    const etag0 = (await info(user)).json.etag;
    const [roomA, roomB] = ['!a:test.local', '!b:test.local'];

    const first = await putKeys(user, version, {
      [roomA]: { s1: keyData(0, 0, false, '1'), s2: keyData(0, 0, false, '2') },
      [roomB]: { s3: keyData(0, 0, false, '3') },
    });
    assert.equal(first.status, 200, first.text);
    assert.equal(first.json.count, 3);
    assert.notEqual(first.json.etag, etag0);
    assert.deepEqual((await info(user)).json.count, 3);
    assert.equal((await info(user)).json.etag, first.json.etag);

    const all = await hs.call('GET', `${KEYS}?version=${version}`, { token: user.accessToken });
    assert.deepEqual(all.json, {
      rooms: {
        [roomA]: { sessions: { s1: keyData(0, 0, false, '1'), s2: keyData(0, 0, false, '2') } },
        [roomB]: { sessions: { s3: keyData(0, 0, false, '3') } },
      },
    });
    const room = await hs.call('GET', `${KEYS}/${enc(roomA)}?version=${version}`, { token: user.accessToken });
    assert.deepEqual(room.json, { sessions: { s1: keyData(0, 0, false, '1'), s2: keyData(0, 0, false, '2') } });
    assert.deepEqual((await getSession(user, version, roomB, 's3')).json, keyData(0, 0, false, '3'));

    // Nothing in a room: an empty `sessions`; no such session: 404.
    const emptyRoom = await hs.call('GET', `${KEYS}/${enc('!none:test.local')}?version=${version}`, { token: user.accessToken });
    assert.equal(emptyRoom.status, 200);
    assert.deepEqual(emptyRoom.json, { sessions: {} });
    const missing = await getSession(user, version, roomA, 'nope');
    assert.equal(missing.status, 404);
    assert.equal(missing.json.errcode, 'M_NOT_FOUND');

    // The same keys again change nothing: same etag, same count.
    const again = await putKeys(user, version, { [roomA]: { s1: keyData(0, 0, false, '1') } });
    assert.deepEqual(again.json, first.json);

    // One session by its own endpoint, and one room's keys by the room endpoint.
    const single = await putSession(user, version, roomB, 's4', keyData(0, 0, false, '4'));
    assert.equal(single.json.count, 4);
    assert.notEqual(single.json.etag, first.json.etag);
    const byRoom = await hs.call('PUT', `${KEYS}/${enc(roomB)}?version=${version}`, {
      token: user.accessToken,
      body: { sessions: { s5: keyData(0, 0, false, '5') } },
    });
    assert.equal(byRoom.status, 200, byRoom.text);
    assert.equal(byRoom.json.count, 5);
    assert.notEqual(byRoom.json.etag, single.json.etag);

    // Deleting a session, then a room, then everything.
    const delSession = await hs.call('DELETE', `${KEYS}/${enc(roomA)}/s1?version=${version}`, { token: user.accessToken });
    assert.equal(delSession.status, 200, delSession.text);
    assert.equal(delSession.json.count, 4);
    assert.notEqual(delSession.json.etag, byRoom.json.etag);
    assert.equal((await getSession(user, version, roomA, 's1')).status, 404);
    const delRoom = await hs.call('DELETE', `${KEYS}/${enc(roomB)}?version=${version}`, { token: user.accessToken });
    assert.equal(delRoom.json.count, 1);
    assert.notEqual(delRoom.json.etag, delSession.json.etag);
    const delAll = await hs.call('DELETE', `${KEYS}?version=${version}`, { token: user.accessToken });
    assert.equal(delAll.json.count, 0);
    assert.notEqual(delAll.json.etag, delRoom.json.etag);
    assert.deepEqual((await hs.call('GET', `${KEYS}?version=${version}`, { token: user.accessToken })).json, { rooms: {} });
    assert.deepEqual((await info(user)).json.count, 0);
  });

  test('a stored key is replaced only by a better one: verified first, then lower first_message_index, then fewer forwards', async () => {
    const user = await hs.createUser('chooser');
    const version = await createVersion(user);
    const room = '!choose:test.local';
    const stored = async () => (await getSession(user, version, room, 'sess')).json;
    const offer = async (key: KeyData, kept: KeyData) => {
      const before = (await info(user)).json.etag;
      const res = await putSession(user, version, room, 'sess', key);
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json.count, 1);
      assert.deepEqual(await stored(), kept, JSON.stringify(key));
      // The etag moves exactly when the stored key changed.
      assert.equal(res.json.etag === before, kept !== key, JSON.stringify(key));
    };
    const start = keyData(5, 2, false, 'start');
    await putSession(user, version, room, 'sess', start);
    assert.deepEqual(await stored(), start);

    await offer(keyData(6, 0, false, 'later index'), start);
    await offer(keyData(5, 3, false, 'more forwards'), start);
    await offer(keyData(5, 2, false, 'equal'), start);
    const fewerForwards = keyData(5, 1, false, 'fewer forwards');
    await offer(fewerForwards, fewerForwards);
    const lowerIndex = keyData(3, 9, false, 'lower index');
    await offer(lowerIndex, lowerIndex);
    const verified = keyData(50, 50, true, 'verified');
    await offer(verified, verified);
    // An unverified key never replaces a verified one, whatever its index (the spec's order).
    await offer(keyData(0, 0, false, 'unverified but earlier'), verified);
    const verifiedEarlier = keyData(10, 60, true, 'verified earlier');
    await offer(verifiedEarlier, verifiedEarlier);
  });

  test('keys may only go to the current version: 403 M_WRONG_ROOM_KEYS_VERSION with current_version', async () => {
    const user = await hs.createUser('rotator');
    const v1 = await createVersion(user, 1);
    await putSession(user, v1, '!r:test.local', 'old', keyData(0, 0, false));
    const v2 = await createVersion(user, 2);
    assert.notEqual(v2, v1);
    assert.equal((await info(user)).json.version, v2);
    assert.equal((await info(user)).json.count, 0);

    for (const res of [
      await putSession(user, v1, '!r:test.local', 'new', keyData(0, 0, false)),
      await putKeys(user, v1, { '!r:test.local': { new: keyData(0, 0, false) } }),
    ]) {
      assert.equal(res.status, 403, res.text);
      assert.equal(res.json.errcode, 'M_WRONG_ROOM_KEYS_VERSION');
      assert.equal(res.json.current_version, v2);
    }
    // The old version can still be read.
    assert.deepEqual((await getSession(user, v1, '!r:test.local', 'old')).json, keyData(0, 0, false));
    // A version that never existed is not found rather than wrong.
    const never = await putSession(user, '12345', '!r:test.local', 'new', keyData(0, 0, false));
    assert.equal(never.status, 404);
    assert.equal(never.json.errcode, 'M_NOT_FOUND');
  });

  test('deleting a version: its keys go, it is not found, deleting it again succeeds, the previous one is current again', async () => {
    const user = await hs.createUser('deleter');
    const v1 = await createVersion(user, 1);
    const v2 = await createVersion(user, 2);
    await putSession(user, v2, '!r:test.local', 's', keyData(0, 0, false));
    const deleted = await hs.call('DELETE', `${VERSION}/${v2}`, { token: user.accessToken });
    assert.equal(deleted.status, 200, deleted.text);
    assert.deepEqual(deleted.json, {});
    for (const res of [
      await info(user, v2),
      await getSession(user, v2, '!r:test.local', 's'),
      await hs.call('GET', `${KEYS}?version=${v2}`, { token: user.accessToken }),
    ]) {
      assert.equal(res.status, 404, res.text);
      assert.equal(res.json.errcode, 'M_NOT_FOUND');
    }
    const put = await putSession(user, v2, '!r:test.local', 's', keyData(0, 0, false));
    assert.equal(put.status, 404);
    assert.equal(put.json.errcode, 'M_NOT_FOUND');
    const again = await hs.call('DELETE', `${VERSION}/${v2}`, { token: user.accessToken });
    assert.equal(again.status, 200);
    const never = await hs.call('DELETE', `${VERSION}/777`, { token: user.accessToken });
    assert.equal(never.status, 404);
    assert.equal(never.json.errcode, 'M_NOT_FOUND');

    assert.equal((await info(user)).json.version, v1);
    // A new version gets a number never used before.
    const v3 = await createVersion(user, 3);
    assert.ok(![v1, v2].includes(v3));
  });

  describe('bad input', () => {
    let user: TestUser;
    let version: string;
    before(async () => {
      user = await hs.createUser('badinput');
      version = await createVersion(user);
    });

    test('no token', async () => {
      for (const [method, path] of [
        ['GET', VERSION],
        ['POST', VERSION],
        ['GET', `${KEYS}?version=1`],
        ['PUT', `${KEYS}?version=1`],
      ] as const) {
        const res = await hs.call(method, path, { body: method === 'GET' ? undefined : {} });
        assert.equal(res.status, 401);
        assert.equal(res.json.errcode, 'M_MISSING_TOKEN');
      }
    });

    test('bodies that are not JSON objects: M_NOT_JSON / M_BAD_JSON', async () => {
      for (const [method, path] of [
        ['POST', VERSION],
        ['PUT', `${VERSION}/${version}`],
        ['PUT', `${KEYS}?version=${version}`],
        ['PUT', `${KEYS}/${R}?version=${version}`],
        ['PUT', `${KEYS}/${R}/s?version=${version}`],
      ] as const) {
        const broken = await hs.call(method, path, {
          token: user.accessToken,
          rawBody: '{"algorithm":',
          headers: { 'Content-Type': 'application/json' },
        });
        assert.equal(broken.status, 400, `${method} ${path}`);
        assert.equal(broken.json.errcode, 'M_NOT_JSON');
        for (const rawBody of ['[]', '"x"', '3']) {
          const res = await hs.call(method, path, { token: user.accessToken, rawBody, headers: { 'Content-Type': 'application/json' } });
          assert.equal(res.status, 400, `${method} ${path} ${rawBody}`);
          assert.ok(['M_NOT_JSON', 'M_BAD_JSON'].includes(res.json.errcode), `${method} ${path} ${rawBody}: ${res.text}`);
        }
      }
    });

    test('version fields missing or of the wrong type', async () => {
      const cases: Array<[unknown, string]> = [
        [{ auth_data: {} }, 'M_MISSING_PARAM'],
        [{ algorithm: ALGORITHM }, 'M_MISSING_PARAM'],
        [{ algorithm: 5, auth_data: {} }, 'M_BAD_JSON'],
        [{ algorithm: ALGORITHM, auth_data: 'data' }, 'M_BAD_JSON'],
        [{ algorithm: ALGORITHM, auth_data: { n: 1.5 } }, 'M_BAD_JSON'],
      ];
      for (const [body, errcode] of cases) {
        for (const [method, path] of [
          ['POST', VERSION],
          ['PUT', `${VERSION}/${version}`],
        ] as const) {
          const res = await hs.call(method, path, { token: user.accessToken, body });
          assert.equal(res.status, 400, `${method} ${JSON.stringify(body)}`);
          assert.equal(res.json.errcode, errcode, `${method} ${JSON.stringify(body)}`);
        }
      }
      const versionNumber = await hs.call('PUT', `${VERSION}/${version}`, {
        token: user.accessToken,
        body: { algorithm: ALGORITHM, auth_data: {}, version: 1 },
      });
      assert.equal(versionNumber.status, 400);
      assert.deepEqual((await info(user)).json.version, version);
    });

    test('keys without ?version: M_MISSING_PARAM', async () => {
      for (const [method, path] of [
        ['GET', KEYS],
        ['PUT', KEYS],
        ['DELETE', KEYS],
        ['GET', `${KEYS}/${R}`],
        ['PUT', `${KEYS}/${R}/s`],
        ['DELETE', `${KEYS}/${R}/s`],
      ] as const) {
        const res = await hs.call(method, path, {
          token: user.accessToken,
          body: method === 'GET' ? undefined : { rooms: {}, sessions: {}, ...keyData(0, 0, false) },
        });
        assert.equal(res.status, 400, `${method} ${path}`);
        assert.equal(res.json.errcode, 'M_MISSING_PARAM', `${method} ${path}`);
      }
    });

    test('malformed key data is refused whole: 400, and nothing is stored', async () => {
      const good = keyData(0, 0, false);
      const badKeys: unknown[] = [
        'key',
        { ...good, first_message_index: '0' },
        { ...good, first_message_index: -1 },
        { ...good, forwarded_count: 1.5 },
        { ...good, is_verified: 'yes' },
        { ...good, session_data: 'opaque' },
        { first_message_index: 0, forwarded_count: 0, is_verified: false },
        { forwarded_count: 0, is_verified: false, session_data: {} },
      ];
      for (const bad of badKeys) {
        const single = await putSession(user, version, '!r:test.local', 'bad', bad);
        assert.equal(single.status, 400, JSON.stringify(bad));
        assert.ok(['M_BAD_JSON', 'M_MISSING_PARAM'].includes(single.json.errcode), JSON.stringify(bad));
        const withGood = await hs.call('PUT', `${KEYS}?version=${version}`, {
          token: user.accessToken,
          body: { rooms: { '!r:test.local': { sessions: { good, bad } } } },
        });
        assert.equal(withGood.status, 400, JSON.stringify(bad));
      }
      for (const body of [
        {},
        { rooms: [] },
        { rooms: { '!r:test.local': [] } },
        { rooms: { '!r:test.local': {} } },
        { rooms: { '!r:test.local': { sessions: 'x' } } },
      ]) {
        const res = await hs.call('PUT', `${KEYS}?version=${version}`, { token: user.accessToken, body });
        assert.equal(res.status, 400, JSON.stringify(body));
        assert.ok(['M_BAD_JSON', 'M_MISSING_PARAM'].includes(res.json.errcode), JSON.stringify(body));
      }
      const roomBody = await hs.call('PUT', `${KEYS}/${R}?version=${version}`, { token: user.accessToken, body: { sessions: [good] } });
      assert.equal(roomBody.status, 400);
      assert.equal(roomBody.json.errcode, 'M_BAD_JSON');
      assert.equal((await info(user)).json.count, 0);
    });
  });
});
