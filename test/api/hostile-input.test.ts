// The probe's hostile inputs against the real endpoints, on SQLite and on PostgreSQL (whose text
// columns refuse U+0000): deeply nested JSON, NUL in names, ids and search terms, lone
// surrogates in display names, enormous user-directory terms. Each is a 400 Matrix error (or, for
// event content, stored as sent), the same on both backends — never a 500, never a value stored
// differently from what the client sent.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { forEachBackend } from '../helpers/backends.js';
import type { TestHomeserver, TestUser } from '../helpers/homeserver.js';
import { ok } from '../helpers/http.js';

const enc = encodeURIComponent;
const V3 = '/_matrix/client/v3';

forEachBackend('hostile input', (backend) => {
  let hs: TestHomeserver;
  let alice: TestUser;
  let bob: TestUser;
  let roomId: string;

  const call = (method: string, path: string, user: TestUser | undefined, body: unknown) =>
    hs.call(method, path, {
      ...(user ? { token: user.accessToken } : {}),
      ...(typeof body === 'string' ? { rawBody: body, headers: { 'Content-Type': 'application/json' } } : { body }),
    });
  const refused = async (what: string, res: Promise<{ status: number; json: any; text: string }>, errcode: string) => {
    const answer = await res;
    assert.equal(answer.status, 400, `${what}: ${answer.text}`);
    assert.equal(answer.json.errcode, errcode, `${what}: ${answer.text}`);
  };

  before(async () => {
    hs = await backend.startHomeserver();
    alice = await hs.createUser('alice', { displayname: 'Alice' });
    bob = await hs.createUser('bob', { displayname: 'Bob' });
    roomId = (await ok(hs.call('POST', `${V3}/createRoom`, { token: alice.accessToken, body: { preset: 'public_chat' } }))).room_id;
    await ok(hs.call('POST', `${V3}/join/${enc(roomId)}`, { token: bob.accessToken, body: {} }));
  });
  after(() => hs.stop());

  test('deeply nested JSON is 400 M_BAD_JSON wherever it is sent, even unauthenticated', async () => {
    const nested = (depth: number) => `{"x":${'['.repeat(depth)}${']'.repeat(depth)}}`;
    await refused('register', call('POST', `${V3}/register`, undefined, nested(100_000)), 'M_BAD_JSON');
    const targets: Array<[string, string]> = [
      ['PUT', `${V3}/user/${enc(alice.userId)}/account_data/org.example.deep`],
      ['PUT', `${V3}/pushrules/global/override/deep`],
      ['POST', `${V3}/delete_devices`],
      ['POST', `${V3}/account/password`],
      ['PUT', `${V3}/rooms/${enc(roomId)}/send/m.room.message/deep1`],
      ['PUT', `${V3}/rooms/${enc(roomId)}/state/org.example.deep/`],
    ];
    for (const [method, path] of targets) await refused(`${method} ${path}`, call(method, path, alice, nested(5000)), 'M_BAD_JSON');
    // Content that nests a little is of course fine.
    await ok(
      call('PUT', `${V3}/rooms/${enc(roomId)}/send/m.room.message/deep2`, alice, {
        msgtype: 'm.text',
        body: 'x',
        n: { a: [[{ b: [1] }]] },
      }),
    );
  });

  test('U+0000 in names, ids and search terms is 400, and nothing changes', async () => {
    const login = { type: 'm.login.password', identifier: { type: 'm.id.user', user: '\u0000' }, password: 'x' };
    await refused('login', call('POST', `${V3}/login`, undefined, login), 'M_BAD_JSON');
    await refused(
      'displayname',
      call('PUT', `${V3}/profile/${enc(alice.userId)}/displayname`, alice, { displayname: 'A\u0000lice' }),
      'M_BAD_JSON',
    );
    await refused(
      'avatar_url',
      call('PUT', `${V3}/profile/${enc(alice.userId)}/avatar_url`, alice, { avatar_url: 'mxc://x/\u0000' }),
      'M_BAD_JSON',
    );
    await refused('device name', call('PUT', `${V3}/devices/${enc(alice.deviceId)}`, alice, { display_name: 'phone\u0000' }), 'M_BAD_JSON');
    await refused(
      'presence',
      call('PUT', `${V3}/presence/${enc(alice.userId)}/status`, alice, { presence: 'online', status_msg: 'busy\u0000' }),
      'M_BAD_JSON',
    );
    await refused(
      'read markers',
      call('POST', `${V3}/rooms/${enc(roomId)}/read_markers`, alice, { 'm.fully_read': '$a\u0000' }),
      'M_BAD_JSON',
    );
    await refused('user directory', call('POST', `${V3}/user_directory/search`, alice, { search_term: 'b\u0000' }), 'M_BAD_JSON');
    await refused('account data type', call('PUT', `${V3}/user/${enc(alice.userId)}/account_data/a%00b`, alice, {}), 'M_INVALID_PARAM');
    await refused('room id', call('GET', `${V3}/rooms/%00/state`, alice, undefined), 'M_INVALID_PARAM');
    await refused('event type', call('PUT', `${V3}/rooms/${enc(roomId)}/send/m.room%00/t1`, alice, { body: 'x' }), 'M_INVALID_PARAM');
    await refused('txn id', call('PUT', `${V3}/rooms/${enc(roomId)}/send/m.room.message/t%001`, alice, { body: 'x' }), 'M_INVALID_PARAM');
    await refused('user id', call('GET', `${V3}/profile/@a%00:test.local`, undefined, undefined), 'M_INVALID_PARAM');
    await refused('query', call('GET', `${V3}/rooms/${enc(roomId)}/messages?dir=b&from=s1%00`, alice, undefined), 'M_INVALID_PARAM');
    assert.deepEqual(await ok(hs.call('GET', `${V3}/profile/${enc(alice.userId)}`)), { displayname: 'Alice' });
    const device = await ok(hs.call('GET', `${V3}/devices/${enc(alice.deviceId)}`, { token: alice.accessToken }));
    assert.notEqual(device.display_name, 'phone\u0000');
  });

  test('U+0000 in event content and account data is stored and served as sent', async () => {
    const content = {
      msgtype: 'm.text',
      body: 'a\u0000b',
      'm.relates_to': { rel_type: 'm.thread\u0000', event_id: '$\u0000' },
      'k\u0000': ['\u0000'],
    };
    const { event_id: eventId } = await ok(call('PUT', `${V3}/rooms/${enc(roomId)}/send/m.room.message/nul1`, alice, content));
    const event = await ok(hs.call('GET', `${V3}/rooms/${enc(roomId)}/event/${enc(eventId)}`, { token: bob.accessToken }));
    assert.deepEqual(event.content, content);
    const state = { name: 'N\u0000' };
    await ok(call('PUT', `${V3}/rooms/${enc(roomId)}/state/m.room.name/`, alice, state));
    assert.deepEqual(await ok(hs.call('GET', `${V3}/rooms/${enc(roomId)}/state/m.room.name/`, { token: bob.accessToken })), state);
    const data = { v: '\u0000' };
    await ok(call('PUT', `${V3}/user/${enc(alice.userId)}/account_data/org.example.nul`, alice, data));
    assert.deepEqual(
      await ok(hs.call('GET', `${V3}/user/${enc(alice.userId)}/account_data/org.example.nul`, { token: alice.accessToken })),
      data,
    );
  });

  test('a display name with a lone surrogate is 400 M_BAD_JSON; the profile and member event keep one value', async () => {
    await ok(call('PUT', `${V3}/profile/${enc(bob.userId)}/displayname`, bob, { displayname: 'Bobby 😀' }));
    await refused(
      'lone surrogate',
      call('PUT', `${V3}/profile/${enc(bob.userId)}/displayname`, bob, '{"displayname":"Bob\\ud800"}'),
      'M_BAD_JSON',
    );
    await refused(
      'lone low surrogate',
      call('PUT', `${V3}/profile/${enc(bob.userId)}/displayname`, bob, '{"displayname":"\\udc00Bob"}'),
      'M_BAD_JSON',
    );
    assert.deepEqual(await ok(hs.call('GET', `${V3}/profile/${enc(bob.userId)}/displayname`)), { displayname: 'Bobby 😀' });
    const member = await ok(
      hs.call('GET', `${V3}/rooms/${enc(roomId)}/state/m.room.member/${enc(bob.userId)}`, { token: alice.accessToken }),
    );
    assert.equal(member.displayname, 'Bobby 😀');
  });

  // Transaction ids beside a long device id, key names, backup session and room ids.
  test('long names that PostgreSQL would have to index whole: 400, on both backends', async () => {
    // Characters PostgreSQL cannot compress: they take their full size in an index entry.
    const cjk = (length: number, from: number) =>
      Array.from({ length }, (_, i) => String.fromCharCode(0x4e00 + ((from + i * 7919) % 0x5000))).join('');
    const login = await ok(
      call('POST', `${V3}/login`, undefined, {
        type: 'm.login.password',
        identifier: { type: 'm.id.user', user: 'alice' },
        password: alice.password,
        device_id: cjk(512, 1),
      }),
    );
    const long = {
      userId: alice.userId,
      accessToken: login.access_token as string,
      deviceId: login.device_id as string,
      password: alice.password,
    };
    const txnId = Buffer.from(cjk(1000, 2)).toString('base64url').slice(0, 1500);
    await refused(
      'send',
      call('PUT', `${V3}/rooms/${enc(roomId)}/send/m.room.message/${txnId}`, long, { msgtype: 'm.text', body: 'x' }),
      'M_INVALID_PARAM',
    );
    await refused('to-device', call('PUT', `${V3}/sendToDevice/m.x/${txnId}`, long, { messages: {} }), 'M_INVALID_PARAM');
    await ok(call('PUT', `${V3}/rooms/${enc(roomId)}/send/m.room.message/${txnId.slice(0, 512)}`, long, { msgtype: 'm.text', body: 'x' }));
    await refused(
      'one-time key',
      call('POST', `${V3}/keys/upload`, long, { one_time_keys: { [`signed_curve25519:${cjk(1000, 3)}`]: { key: 'k' } } }),
      'M_BAD_JSON',
    );
    const master = { user_id: alice.userId, usage: ['master'], keys: { [`ed25519:${cjk(1000, 4)}`]: 'k' } };
    await refused('cross-signing key', call('POST', `${V3}/keys/device_signing/upload`, alice, { master_key: master }), 'M_INVALID_PARAM');
    const { version } = await ok(
      call('POST', `${V3}/room_keys/version`, alice, {
        algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2',
        auth_data: { public_key: 'k' },
      }),
    );
    const session = { first_message_index: 0, forwarded_count: 0, is_verified: false, session_data: { s: 1 } };
    const keys = `${V3}/room_keys/keys?version=${version}`;
    await refused(
      'backup session id',
      call('PUT', keys, alice, { rooms: { [roomId]: { sessions: { [cjk(1000, 5)]: session } } } }),
      'M_INVALID_PARAM',
    );
    await refused(
      'backup room id',
      call('PUT', keys, alice, { rooms: { [`!${cjk(1000, 6)}:x`]: { sessions: { s: session } } } }),
      'M_INVALID_PARAM',
    );
    await refused(
      'backup room key',
      call('PUT', `${V3}/room_keys/keys/${enc(roomId)}?version=${version}`, alice, { sessions: { [cjk(1000, 7)]: session } }),
      'M_INVALID_PARAM',
    );
    await ok(call('PUT', keys, alice, { rooms: { [roomId]: { sessions: { s: session } } } }));
  });

  test('a burst of filter uploads by one user: each gets its own id (none runs out of retries)', async () => {
    const ids = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        ok(call('POST', `${V3}/user/${enc(bob.userId)}/filter`, bob, { room: { timeline: { limit: i } } })),
      ),
    );
    assert.equal(new Set(ids.map((r) => r.filter_id)).size, 24);
  });

  test('a user-directory term of 50,000 characters finds nobody (no 500); % and _ stay literal', async () => {
    for (const term of ['b'.repeat(50_000), 'é'.repeat(50_000), '%_'.repeat(30_000)]) {
      assert.deepEqual(await ok(call('POST', `${V3}/user_directory/search`, alice, { search_term: term })), {
        limited: false,
        results: [],
      });
    }
    // Up to the longest name there is, a term is searched for.
    const long = 'x'.repeat(200);
    await ok(call('PUT', `${V3}/profile/${enc(bob.userId)}/displayname`, bob, { displayname: `${long}%_` }));
    assert.deepEqual(
      (await ok(call('POST', `${V3}/user_directory/search`, alice, { search_term: `${long}%_` }))).results.map((r: any) => r.user_id),
      [bob.userId],
    );
    assert.deepEqual((await ok(call('POST', `${V3}/user_directory/search`, alice, { search_term: `${long}__` }))).results, []);
  });
});
