// Registration as clients see it: the dummy user-interactive flow, username rules, registration
// switched off, /register/available, and the shared-secret admin API.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { TestHomeserver } from '../helpers/homeserver.js';
import { forEachBackend } from '../helpers/backends.js';

const REGISTER = '/_matrix/client/v3/register';

forEachBackend('POST /register with the dummy flow', (backend) => {
  let hs: TestHomeserver;
  before(async () => {
    hs = await backend.startHomeserver();
  });
  after(() => hs.stop());

  test('the first request gets 401 with the dummy flow and a session; the retry with the session registers', async () => {
    const first = await hs.call('POST', REGISTER, { body: { username: 'dummyflow', password: 'secret-1' } });
    assert.equal(first.status, 401);
    assert.deepEqual(first.json.flows, [{ stages: ['m.login.dummy'] }]);
    assert.deepEqual(first.json.params, {});
    assert.equal(typeof first.json.session, 'string');
    assert.equal(first.json.errcode, undefined, 'asking for auth is not an error');

    const second = await hs.call('POST', REGISTER, {
      body: { username: 'dummyflow', password: 'secret-1', auth: { type: 'm.login.dummy', session: first.json.session } },
    });
    assert.equal(second.status, 200, second.text);
    assert.equal(second.json.user_id, `@dummyflow:${hs.serverName}`);
    assert.equal(second.json.home_server, hs.serverName);
    assert.equal(typeof second.json.device_id, 'string');
    const whoami = await hs.call('GET', '/_matrix/client/v3/account/whoami', { token: second.json.access_token });
    assert.equal(whoami.status, 200);
    assert.equal(whoami.json.user_id, `@dummyflow:${hs.serverName}`);
  });

  test('auth without a session registers in one request (SyTest "POST /register can create a user")', async () => {
    const res = await hs.call('POST', REGISTER, { body: { username: 'onestep', password: 'secret-2', auth: { type: 'm.login.dummy' } } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.user_id, `@onestep:${hs.serverName}`);
    const login = await hs.call('POST', '/_matrix/client/v3/login', {
      body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'onestep' }, password: 'secret-2' },
    });
    assert.equal(login.status, 200);
  });

  test('a follow-up carrying only auth reuses the stored request, password included', async () => {
    const first = await hs.call('POST', REGISTER, {
      body: { username: 'followup', password: 'secret-3', device_id: 'FOLLOWDEV', initial_device_display_name: 'Phone' },
    });
    assert.equal(first.status, 401);
    const stored = await hs.homeserver.database.get<{ body_json: string; server_data_json: string }>(
      'SELECT body_json, server_data_json FROM ui_auth_sessions WHERE session_id = ?',
      [first.json.session],
    );
    assert.ok(stored);
    assert.ok(
      !stored.body_json.includes('secret-3') && !stored.server_data_json.includes('secret-3'),
      'no plaintext password in the session',
    );

    const second = await hs.call('POST', REGISTER, { body: { auth: { type: 'm.login.dummy', session: first.json.session } } });
    assert.equal(second.status, 200, second.text);
    assert.equal(second.json.user_id, `@followup:${hs.serverName}`);
    assert.equal(second.json.device_id, 'FOLLOWDEV');
    const devices = await hs.call('GET', '/_matrix/client/v3/devices', { token: second.json.access_token });
    assert.deepEqual(
      devices.json.devices.map((d: { device_id: string; display_name?: string }) => [d.device_id, d.display_name]),
      [['FOLLOWDEV', 'Phone']],
    );
    const login = await hs.call('POST', '/_matrix/client/v3/login', {
      body: { type: 'm.login.password', user: 'followup', password: 'secret-3' },
    });
    assert.equal(login.status, 200, 'the password from the first request was kept (as a hash)');
  });

  test('a session is bound to its operation: on another endpoint it is 403 (SyTest "The operation must be consistent…")', async () => {
    const first = await hs.call('POST', REGISTER, { body: { username: 'bound', password: 'secret-4' } });
    const user = await hs.createUser('sessionthief');
    const elsewhere = await hs.call('POST', '/_matrix/client/v3/delete_devices', {
      token: user.accessToken,
      body: { devices: [], auth: { type: 'm.login.password', user: 'sessionthief', password: user.password, session: first.json.session } },
    });
    assert.equal(elsewhere.status, 403);
    assert.equal(elsewhere.json.errcode, 'M_FORBIDDEN');
    const unknown = await hs.call('POST', REGISTER, { body: { auth: { type: 'm.login.dummy', session: 'no-such-session' } } });
    assert.equal(unknown.status, 400);
  });

  test('retrying a completed session returns the same user, without registering twice', async () => {
    const first = await hs.call('POST', REGISTER, { body: { username: 'retrying', password: 'secret-5' } });
    const auth = { type: 'm.login.dummy', session: first.json.session };
    const done = await hs.call('POST', REGISTER, { body: { username: 'retrying', password: 'secret-5', auth } });
    const again = await hs.call('POST', REGISTER, { body: { username: 'retrying', password: 'secret-5', auth } });
    assert.equal(done.status, 200);
    assert.equal(again.status, 200, again.text);
    assert.equal(again.json.user_id, done.json.user_id);
  });

  test('without a username the server picks one; inhibit_login returns no token', async () => {
    const res = await hs.call('POST', REGISTER, { body: { password: 'secret-6', inhibit_login: true, auth: { type: 'm.login.dummy' } } });
    assert.equal(res.status, 200, res.text);
    assert.match(res.json.user_id, new RegExp(`^@\\d+:${hs.serverName.replace('.', '\\.')}$`));
    assert.equal(res.json.access_token, undefined);
    assert.equal(res.json.device_id, undefined);
  });

  test('refresh_token: true is answered without a refresh token; a password is required', async () => {
    const res = await hs.call('POST', REGISTER, {
      body: { username: 'norefresh', password: 'pw', refresh_token: true, auth: { type: 'm.login.dummy' } },
    });
    assert.equal(res.status, 200);
    assert.equal(res.json.refresh_token, undefined);
    assert.equal(typeof res.json.access_token, 'string');
    const noPassword = await hs.call('POST', REGISTER, { body: { username: 'nopassword', auth: { type: 'm.login.dummy' } } });
    assert.equal(noPassword.status, 400);
    assert.equal(noPassword.json.errcode, 'M_MISSING_PARAM');
  });

  test('wrong types are 400 M_BAD_JSON; guests are refused; unknown kinds are 400', async () => {
    for (const body of [
      { username: 'typed', password: 42 },
      { username: 'typed', password: 'pw', device_id: 7 },
      { username: 'typed', password: 'pw', inhibit_login: 'yes' },
      { username: 'typed', password: 'pw', refresh_token: 'yes' },
      { username: 'typed', password: 'pw', auth: 'dummy' },
      { username: ['typed'], password: 'pw' },
    ]) {
      const res = await hs.call('POST', REGISTER, { body });
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.json.errcode, 'M_BAD_JSON', JSON.stringify(body));
    }
    const guest = await hs.call('POST', `${REGISTER}?kind=guest`, { body: {} });
    assert.equal(guest.status, 403);
    assert.equal(guest.json.errcode, 'M_GUEST_ACCESS_FORBIDDEN');
    const odd = await hs.call('POST', `${REGISTER}?kind=robot`, { body: {} });
    assert.equal(odd.status, 400);
  });
});

forEachBackend('usernames', (backend) => {
  let hs: TestHomeserver;
  before(async () => {
    hs = await backend.startHomeserver();
  });
  after(() => hs.stop());

  test('capitals are lowercased (SyTest "POST /register downcases capitals in usernames")', async () => {
    const res = await hs.call('POST', REGISTER, { body: { username: 'MixedCase', password: 'pw', auth: { type: 'm.login.dummy' } } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.user_id, `@mixedcase:${hs.serverName}`);
  });

  test('bad names are 400 M_INVALID_USERNAME before any auth is asked for', async () => {
    for (const username of ['bad name', 'é', 'a:b', '_underscore', '12345', '', 'x'.repeat(260), 'q$q']) {
      const res = await hs.call('POST', REGISTER, { body: { username, password: 'pw' } });
      assert.equal(res.status, 400, `${username}: ${res.text}`);
      assert.equal(res.json.errcode, 'M_INVALID_USERNAME', username);
    }
    for (const username of ['a.b', 'a_b', 'a=b', 'a-b', 'a/b', 'a+b', '9lives']) {
      const res = await hs.call('GET', `/_matrix/client/v3/register/available?username=${encodeURIComponent(username)}`);
      assert.equal(res.status, 200, `${username}: ${res.text}`);
    }
  });

  test('a taken name is 400 M_USER_IN_USE, whatever its case', async () => {
    await hs.createUser('taken');
    for (const username of ['taken', 'TAKEN', 'Taken']) {
      const res = await hs.call('POST', REGISTER, { body: { username, password: 'pw' } });
      assert.equal(res.status, 400);
      assert.equal(res.json.errcode, 'M_USER_IN_USE', username);
    }
  });

  test('GET /register/available: true, or the same 400s', async () => {
    const free = await hs.call('GET', '/_matrix/client/v3/register/available?username=freename');
    assert.equal(free.status, 200);
    assert.deepEqual(free.json, { available: true });
    await hs.createUser('occupied');
    const taken = await hs.call('GET', '/_matrix/client/r0/register/available?username=occupied');
    assert.equal(taken.status, 400);
    assert.equal(taken.json.errcode, 'M_USER_IN_USE');
    const invalid = await hs.call('GET', '/_matrix/client/v3/register/available?username=not%20valid');
    assert.equal(invalid.json.errcode, 'M_INVALID_USERNAME');
    const missing = await hs.call('GET', '/_matrix/client/v3/register/available');
    assert.equal(missing.status, 400);
    assert.equal(missing.json.errcode, 'M_MISSING_PARAM');
  });
});

forEachBackend('registration switched off', (backend) => {
  let hs: TestHomeserver;
  before(async () => {
    hs = await backend.startHomeserver({ config: { enable_registration: false } });
  });
  after(() => hs.stop());

  test('POST /register and /register/available are 403 M_FORBIDDEN', async () => {
    const res = await hs.call('POST', REGISTER, { body: { username: 'nobody', password: 'pw', auth: { type: 'm.login.dummy' } } });
    assert.equal(res.status, 403);
    assert.equal(res.json.errcode, 'M_FORBIDDEN');
    const available = await hs.call('GET', '/_matrix/client/v3/register/available?username=nobody');
    assert.equal(available.status, 403);
  });

  test('open registration also needs enable_registration_without_verification', async () => {
    const unverified = await backend.startHomeserver({ config: { enable_registration_without_verification: false } });
    try {
      const res = await unverified.call('POST', REGISTER, {
        body: { username: 'nobody', password: 'pw', auth: { type: 'm.login.dummy' } },
      });
      assert.equal(res.status, 403);
    } finally {
      await unverified.stop();
    }
  });
});

const ADMIN_REGISTER = '/_synapse/admin/v1/register';

function mac(secret: string, nonce: string, username: string, password: string, admin: boolean, userType?: string): string {
  const parts = [nonce, username, password, admin ? 'admin' : 'notadmin', ...(userType ? [userType] : [])];
  return createHmac('sha1', secret).update(parts.join('\0')).digest('hex');
}

forEachBackend('shared-secret registration (/_synapse/admin/v1/register)', (backend) => {
  const secret = 'test-shared-secret';
  let hs: TestHomeserver;
  before(async () => {
    hs = await backend.startHomeserver({ config: { enable_registration: false } });
  });
  after(() => hs.stop());

  const nonce = async () => {
    const res = await hs.call('GET', ADMIN_REGISTER);
    assert.equal(res.status, 200);
    assert.match(res.json.nonce, /^[0-9a-f]{128}$/);
    return res.json.nonce as string;
  };

  test('registers a user even with registration off; the username is lowercased; admin flag honoured', async () => {
    const n = await nonce();
    const res = await hs.call('POST', ADMIN_REGISTER, {
      body: { nonce: n, username: 'BossUser', password: 'pw-boss', admin: true, mac: mac(secret, n, 'BossUser', 'pw-boss', true) },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.user_id, `@bossuser:${hs.serverName}`);
    assert.equal(res.json.home_server, hs.serverName);
    assert.equal(typeof res.json.access_token, 'string');
    assert.equal(typeof res.json.device_id, 'string');
    const row = await hs.homeserver.database.get<{ is_admin: number }>('SELECT is_admin FROM users WHERE user_id = ?', [res.json.user_id]);
    assert.equal(row?.is_admin, 1);

    const m = await nonce();
    const plain = await hs.call('POST', ADMIN_REGISTER, {
      body: {
        nonce: m,
        username: 'plainuser',
        password: 'pw',
        admin: false,
        user_type: 'bot',
        mac: mac(secret, m, 'plainuser', 'pw', false, 'bot'),
      },
    });
    assert.equal(plain.status, 200, plain.text);
    const plainRow = await hs.homeserver.database.get<{ is_admin: number; user_type: string }>(
      'SELECT is_admin, user_type FROM users WHERE user_id = ?',
      [plain.json.user_id],
    );
    assert.deepEqual({ ...plainRow }, { is_admin: 0, user_type: 'bot' });
  });

  test('a wrong MAC is 403, and burns the nonce', async () => {
    const n = await nonce();
    const bad = await hs.call('POST', ADMIN_REGISTER, {
      body: { nonce: n, username: 'mallory', password: 'pw', mac: mac('wrong-secret', n, 'mallory', 'pw', false) },
    });
    assert.equal(bad.status, 403);
    assert.equal(bad.json.error, 'HMAC incorrect');
    const retry = await hs.call('POST', ADMIN_REGISTER, {
      body: { nonce: n, username: 'mallory', password: 'pw', mac: mac(secret, n, 'mallory', 'pw', false) },
    });
    assert.equal(retry.status, 400);
    assert.equal(retry.json.error, 'unrecognised nonce');
  });

  test('a nonce is single use; admin: true signed as notadmin is refused', async () => {
    const n = await nonce();
    const ok = await hs.call('POST', ADMIN_REGISTER, {
      body: { nonce: n, username: 'onceonly', password: 'pw', mac: mac(secret, n, 'onceonly', 'pw', false) },
    });
    assert.equal(ok.status, 200);
    const reuse = await hs.call('POST', ADMIN_REGISTER, {
      body: { nonce: n, username: 'twice', password: 'pw', mac: mac(secret, n, 'twice', 'pw', false) },
    });
    assert.equal(reuse.status, 400);

    const m = await nonce();
    const escalate = await hs.call('POST', ADMIN_REGISTER, {
      body: { nonce: m, username: 'sneaky', password: 'pw', admin: true, mac: mac(secret, m, 'sneaky', 'pw', false) },
    });
    assert.equal(escalate.status, 403);
  });

  test('missing fields are 400 M_BAD_JSON; NUL bytes, bad user types and taken names are refused', async () => {
    for (const field of ['username', 'password', 'mac']) {
      const n = await nonce();
      const body: Record<string, unknown> = { nonce: n, username: 'partial', password: 'pw', mac: mac(secret, n, 'partial', 'pw', false) };
      delete body[field];
      const res = await hs.call('POST', ADMIN_REGISTER, { body });
      assert.equal(res.status, 400, field);
      assert.equal(res.json.errcode, 'M_BAD_JSON', field);
    }
    const noNonce = await hs.call('POST', ADMIN_REGISTER, { body: { username: 'x', password: 'pw', mac: '00' } });
    assert.equal(noNonce.json.errcode, 'M_BAD_JSON');

    const n1 = await nonce();
    const nul = await hs.call('POST', ADMIN_REGISTER, {
      body: { nonce: n1, username: 'nul\0byte', password: 'pw', mac: mac(secret, n1, 'nul\0byte', 'pw', false) },
    });
    assert.equal(nul.status, 400);
    const n2 = await nonce();
    const type = await hs.call('POST', ADMIN_REGISTER, {
      body: { nonce: n2, username: 'typed', password: 'pw', user_type: 'wizard', mac: mac(secret, n2, 'typed', 'pw', false, 'wizard') },
    });
    assert.equal(type.status, 400);
    await hs.createUser('alreadyhere');
    const n3 = await nonce();
    const taken = await hs.call('POST', ADMIN_REGISTER, {
      body: { nonce: n3, username: 'AlreadyHere', password: 'pw', mac: mac(secret, n3, 'AlreadyHere', 'pw', false) },
    });
    assert.equal(taken.status, 400);
    assert.equal(taken.json.errcode, 'M_USER_IN_USE');
  });

  test('without a configured secret, POST is 400', async () => {
    const bare = await backend.startHomeserver({ config: { registration_shared_secret: undefined } });
    try {
      const n = (await bare.call('GET', ADMIN_REGISTER)).json.nonce as string;
      const res = await bare.call('POST', ADMIN_REGISTER, {
        body: { nonce: n, username: 'x', password: 'pw', mac: mac(secret, n, 'x', 'pw', false) },
      });
      assert.equal(res.status, 400);
      assert.match(res.json.error, /not enabled/);
    } finally {
      await bare.stop();
    }
  });
});
