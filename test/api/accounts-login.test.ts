// Login, logout, whoami and capabilities as clients see them, and the rate limits on login and
// registration.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TestHomeserver } from '../helpers/homeserver.js';
import { forEachBackend } from '../helpers/backends.js';

const LOGIN = '/_matrix/client/v3/login';
const WHOAMI = '/_matrix/client/v3/account/whoami';

forEachBackend('login', (backend) => {
  let hs: TestHomeserver;
  before(async () => {
    hs = await backend.startHomeserver({ config: { public_baseurl: 'https://matrix.test.local/' } });
  });
  after(() => hs.stop());

  test('GET /login offers password login', async () => {
    const res = await hs.call('GET', LOGIN);
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { flows: [{ type: 'm.login.password' }] });
  });

  test('m.id.user with the localpart, the full id, or another case; and the legacy `user` field', async () => {
    const user = await hs.createUser('loginuser');
    for (const identifierUser of ['loginuser', user.userId, 'LoginUser', `@LOGINUSER:${hs.serverName}`]) {
      const res = await hs.call('POST', LOGIN, {
        body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: identifierUser }, password: user.password },
      });
      assert.equal(res.status, 200, `${identifierUser}: ${res.text}`);
      assert.equal(res.json.user_id, user.userId);
      assert.equal(res.json.home_server, hs.serverName);
      assert.deepEqual(res.json.well_known, { 'm.homeserver': { base_url: 'https://matrix.test.local/' } });
      const whoami = await hs.call('GET', WHOAMI, { token: res.json.access_token });
      assert.deepEqual(whoami.json, { user_id: user.userId, device_id: res.json.device_id, is_guest: false });
    }
    const legacy = await hs.call('POST', LOGIN, { body: { type: 'm.login.password', user: 'loginuser', password: user.password } });
    assert.equal(legacy.status, 200);
    assert.equal(legacy.json.user_id, user.userId);
  });

  test('a supplied device_id is kept (SyTest "POST /login returns the same device_id as that in the request")', async () => {
    const user = await hs.createUser('deviceuser');
    const body = {
      type: 'm.login.password',
      user: 'deviceuser',
      password: user.password,
      device_id: 'MYDEVICE',
      initial_device_display_name: 'Laptop',
    };
    const first = await hs.call('POST', LOGIN, { body });
    assert.equal(first.status, 200);
    assert.equal(first.json.device_id, 'MYDEVICE');
    const again = await hs.call('POST', LOGIN, { body: { ...body, initial_device_display_name: 'Ignored' } });
    assert.equal(again.json.device_id, 'MYDEVICE');
    const device = await hs.call('GET', '/_matrix/client/v3/devices/MYDEVICE', { token: again.json.access_token });
    assert.equal(device.json.display_name, 'Laptop', 'an existing device keeps its name');
  });

  test('a wrong password or unknown user is 403 M_FORBIDDEN; bad requests are 400', async () => {
    const user = await hs.createUser('wrongpw');
    const wrong = await hs.call('POST', LOGIN, { body: { type: 'm.login.password', user: 'wrongpw', password: 'not it' } });
    assert.equal(wrong.status, 403);
    assert.equal(wrong.json.errcode, 'M_FORBIDDEN');
    const unknown = await hs.call('POST', LOGIN, { body: { type: 'm.login.password', user: 'nosuchuser', password: 'x' } });
    assert.equal(unknown.status, 403);
    assert.equal(unknown.json.errcode, 'M_FORBIDDEN');
    const email = await hs.call('POST', LOGIN, {
      body: {
        type: 'm.login.password',
        identifier: { type: 'm.id.thirdparty', medium: 'email', address: 'a@b.c' },
        password: user.password,
      },
    });
    assert.equal(email.status, 403);

    const cases: [unknown, number, string][] = [
      [{ user: 'wrongpw', password: user.password }, 400, 'M_MISSING_PARAM'],
      [{ type: 42, user: 'wrongpw', password: user.password }, 400, 'M_BAD_JSON'],
      [{ type: 'm.login.token', token: 'abc' }, 400, 'M_UNKNOWN'],
      [{ type: 'm.login.password', user: 'wrongpw' }, 400, 'M_MISSING_PARAM'],
      [{ type: 'm.login.password', user: 'wrongpw', password: 12 }, 400, 'M_BAD_JSON'],
      [{ type: 'm.login.password', password: user.password }, 400, 'M_INVALID_PARAM'],
      [{ type: 'm.login.password', identifier: 'wrongpw', password: user.password }, 400, 'M_BAD_JSON'],
      [{ type: 'm.login.password', identifier: { user: 'wrongpw' }, password: user.password }, 400, 'M_MISSING_PARAM'],
      [{ type: 'm.login.password', identifier: { type: 'm.id.user', user: 5 }, password: user.password }, 400, 'M_BAD_JSON'],
      [{ type: 'm.login.password', user: 'wrongpw', password: user.password, device_id: 5 }, 400, 'M_BAD_JSON'],
      [
        { type: 'm.login.password', user: 'wrongpw', password: user.password, initial_device_display_name: 'x'.repeat(101) },
        400,
        'M_INVALID_PARAM',
      ],
    ];
    for (const [body, status, errcode] of cases) {
      const res = await hs.call('POST', LOGIN, { body });
      assert.equal(res.status, status, JSON.stringify(body));
      assert.equal(res.json.errcode, errcode, JSON.stringify(body));
    }
  });
});

forEachBackend('whoami, capabilities and logout', (backend) => {
  let hs: TestHomeserver;
  before(async () => {
    hs = await backend.startHomeserver();
  });
  after(() => hs.stop());

  test('whoami and capabilities need a valid token', async () => {
    for (const path of [WHOAMI, '/_matrix/client/v3/capabilities']) {
      const missing = await hs.call('GET', path);
      assert.equal(missing.status, 401);
      assert.equal(missing.json.errcode, 'M_MISSING_TOKEN');
      const bad = await hs.call('GET', path, { token: 'syt_bogus' });
      assert.equal(bad.status, 401);
      assert.equal(bad.json.errcode, 'M_UNKNOWN_TOKEN');
    }
  });

  test('capabilities: room versions 1–12 with 12 the default; password and profile changes allowed; no 3PID changes', async () => {
    const user = await hs.createUser('capable');
    const res = await hs.call('GET', '/_matrix/client/v3/capabilities', { token: user.accessToken });
    assert.equal(res.status, 200);
    const caps = res.json.capabilities;
    assert.equal(caps['m.room_versions'].default, '12');
    assert.deepEqual(
      Object.keys(caps['m.room_versions'].available).sort((a, b) => Number(a) - Number(b)),
      ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12'],
    );
    assert.ok(Object.values(caps['m.room_versions'].available).every((s) => s === 'stable'));
    assert.deepEqual(caps['m.change_password'], { enabled: true });
    assert.deepEqual(caps['m.set_displayname'], { enabled: true });
    assert.deepEqual(caps['m.set_avatar_url'], { enabled: true });
    assert.deepEqual(caps['m.3pid_changes'], { enabled: false });
  });

  test('logout ends this session and deletes its device; other sessions live on', async () => {
    const user = await hs.createUser('leaver');
    const other = await hs.call('POST', LOGIN, { body: { type: 'm.login.password', user: 'leaver', password: user.password } });
    const res = await hs.call('POST', '/_matrix/client/v3/logout', { token: user.accessToken });
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, {});
    const after = await hs.call('GET', WHOAMI, { token: user.accessToken });
    assert.equal(after.status, 401);
    assert.equal(after.json.errcode, 'M_UNKNOWN_TOKEN');
    const devices = await hs.call('GET', '/_matrix/client/v3/devices', { token: other.json.access_token });
    assert.deepEqual(
      devices.json.devices.map((d: { device_id: string }) => d.device_id),
      [other.json.device_id],
    );
  });

  test('logout/all ends every session and deletes every device', async () => {
    const user = await hs.createUser('leaveall');
    const second = await hs.call('POST', LOGIN, { body: { type: 'm.login.password', user: 'leaveall', password: user.password } });
    const res = await hs.call('POST', '/_matrix/client/r0/logout/all', { token: second.json.access_token });
    assert.equal(res.status, 200);
    for (const token of [user.accessToken, second.json.access_token]) {
      const after = await hs.call('GET', WHOAMI, { token });
      assert.equal(after.json.errcode, 'M_UNKNOWN_TOKEN');
    }
    const rows = await hs.homeserver.database.all('SELECT device_id FROM devices WHERE user_id = ?', [user.userId]);
    assert.equal(rows.length, 0);
  });
});

forEachBackend('rate limits', (backend) => {
  let hs: TestHomeserver;
  before(async () => {
    hs = await backend.startHomeserver({
      config: {
        rc_login: { address: { per_second: 0.17, burst_count: 3 }, failed_attempts: { per_second: 0.17, burst_count: 3 } },
        rc_registration: { per_second: 0.17, burst_count: 3 },
        rc_message: { per_second: 0.2, burst_count: 2 },
      },
    });
  });
  after(() => hs.stop());

  test('login: the fourth attempt from one address in a burst is 429 with retry_after_ms and Retry-After', async () => {
    const user = await hs.createUser('burster');
    const body = { type: 'm.login.password', user: 'burster', password: user.password };
    for (let i = 0; i < 3; i++) assert.equal((await hs.call('POST', LOGIN, { body })).status, 200);
    const limited = await hs.call('POST', LOGIN, { body });
    assert.equal(limited.status, 429);
    assert.equal(limited.json.errcode, 'M_LIMIT_EXCEEDED');
    assert.equal(typeof limited.json.retry_after_ms, 'number');
    assert.ok(limited.json.retry_after_ms > 0 && limited.json.retry_after_ms <= 6000, String(limited.json.retry_after_ms));
    assert.equal(limited.headers['retry-after'], String(Math.ceil(limited.json.retry_after_ms / 1000)));
  });

  test('registration: three accounts per address in a burst', async () => {
    const register = (username: string) =>
      hs.call('POST', '/_matrix/client/v3/register', { body: { username, password: 'pw', auth: { type: 'm.login.dummy' } } });
    for (const name of ['reg1', 'reg2', 'reg3']) assert.equal((await register(name)).status, 200);
    const limited = await register('reg4');
    assert.equal(limited.status, 429);
    assert.equal(limited.json.errcode, 'M_LIMIT_EXCEEDED');
    assert.ok(limited.headers['retry-after']);
  });

  test('messages: limited per user, server admins exempt', async () => {
    const { rateLimits } = hs.homeserver.services;
    const plain = await hs.createUser('chatty');
    const admin = await hs.createUser('chattyadmin', { admin: true });
    await rateLimits.checkMessage(plain.userId);
    await rateLimits.checkMessage(plain.userId);
    await assert.rejects(
      rateLimits.checkMessage(plain.userId),
      (err: { status: number; errcode: string }) => err.status === 429 && err.errcode === 'M_LIMIT_EXCEEDED',
    );
    for (let i = 0; i < 5; i++) await rateLimits.checkMessage(admin.userId);
  });
});

forEachBackend('failed login attempts', (backend) => {
  let hs: TestHomeserver;
  before(async () => {
    hs = await backend.startHomeserver({
      config: {
        rc_login: {
          address: { per_second: 1000, burst_count: 1000 },
          account: { per_second: 1000, burst_count: 1000 },
          failed_attempts: { per_second: 0.17, burst_count: 3 },
        },
      },
    });
  });
  after(() => hs.stop());

  test('after three wrong passwords for a user, even the right one is 429 for a while; other users are unaffected', async () => {
    const victim = await hs.createUser('guessed');
    const bystander = await hs.createUser('bystander');
    for (let i = 0; i < 3; i++) {
      const res = await hs.call('POST', LOGIN, { body: { type: 'm.login.password', user: 'guessed', password: `guess ${i}` } });
      assert.equal(res.status, 403);
    }
    const right = await hs.call('POST', LOGIN, { body: { type: 'm.login.password', user: 'GUESSED', password: victim.password } });
    assert.equal(right.status, 429);
    assert.equal(right.json.errcode, 'M_LIMIT_EXCEEDED');
    const other = await hs.call('POST', LOGIN, { body: { type: 'm.login.password', user: 'bystander', password: bystander.password } });
    assert.equal(other.status, 200);
  });
});
