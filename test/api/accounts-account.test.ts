// Password change, deactivation and device management, each behind user-interactive auth with the
// requester's password.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TestHomeserver, TestUser } from '../helpers/homeserver.js';
import { forEachBackend } from '../helpers/backends.js';

const LOGIN = '/_matrix/client/v3/login';
const WHOAMI = '/_matrix/client/v3/account/whoami';

function passwordAuth(user: TestUser, session: string, password = user.password) {
  return { type: 'm.login.password', identifier: { type: 'm.id.user', user: user.userId }, password, session };
}

forEachBackend('POST /account/password', (backend) => {
  let hs: TestHomeserver;
  before(async () => {
    hs = await backend.startHomeserver();
  });
  after(() => hs.stop());

  const login = (user: string, password: string) => hs.call('POST', LOGIN, { body: { type: 'm.login.password', user, password } });

  test('asks for the current password; a wrong one is 401 M_FORBIDDEN; the right one changes it and logs out other devices', async () => {
    const user = await hs.createUser('changer');
    const other = await login('changer', user.password);
    const path = '/_matrix/client/v3/account/password';

    const first = await hs.call('POST', path, { token: user.accessToken, body: { new_password: 'brand-new' } });
    assert.equal(first.status, 401);
    assert.deepEqual(first.json.flows, [{ stages: ['m.login.password'] }]);
    assert.equal(first.json.errcode, undefined);

    const wrong = await hs.call('POST', path, {
      token: user.accessToken,
      body: { new_password: 'brand-new', auth: passwordAuth(user, first.json.session, 'nope') },
    });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.json.errcode, 'M_FORBIDDEN');
    assert.equal(wrong.json.session, first.json.session);
    assert.equal((await login('changer', 'brand-new')).status, 403, 'not changed yet');

    const right = await hs.call('POST', path, {
      token: user.accessToken,
      body: { new_password: 'brand-new', auth: passwordAuth(user, first.json.session) },
    });
    assert.equal(right.status, 200, right.text);
    assert.deepEqual(right.json, {});

    assert.equal((await hs.call('GET', WHOAMI, { token: user.accessToken })).status, 200, 'the requester stays logged in');
    const otherNow = await hs.call('GET', WHOAMI, { token: other.json.access_token });
    assert.equal(otherNow.status, 401);
    assert.equal(otherNow.json.errcode, 'M_UNKNOWN_TOKEN');
    assert.equal((await login('changer', user.password)).status, 403);
    assert.equal((await login('changer', 'brand-new')).status, 200);
  });

  test('logout_devices: false keeps the other sessions; the new password may come only in the first request', async () => {
    const user = await hs.createUser('keeper');
    const other = await login('keeper', user.password);
    const path = '/_matrix/client/r0/account/password';
    const first = await hs.call('POST', path, { token: user.accessToken, body: { new_password: 'kept-new', logout_devices: false } });
    assert.equal(first.status, 401);
    const stored = await hs.homeserver.database.get<{ body_json: string; server_data_json: string }>(
      'SELECT body_json, server_data_json FROM ui_auth_sessions WHERE session_id = ?',
      [first.json.session],
    );
    assert.ok(
      stored && !stored.body_json.includes('kept-new') && !stored.server_data_json.includes('kept-new'),
      'no plaintext password stored',
    );
    const done = await hs.call('POST', path, { token: user.accessToken, body: { auth: passwordAuth(user, first.json.session) } });
    assert.equal(done.status, 200, done.text);
    assert.equal((await hs.call('GET', WHOAMI, { token: other.json.access_token })).status, 200);
    assert.equal((await login('keeper', 'kept-new')).status, 200);
  });

  test("another user's password does not authenticate, and their session cannot be borrowed", async () => {
    const user = await hs.createUser('victim');
    const attacker = await hs.createUser('attacker');
    const path = '/_matrix/client/v3/account/password';
    const first = await hs.call('POST', path, { token: user.accessToken, body: { new_password: 'owned' } });
    const res = await hs.call('POST', path, {
      token: user.accessToken,
      body: { new_password: 'owned', auth: passwordAuth(attacker, first.json.session) },
    });
    assert.equal(res.status, 403);
    assert.equal(res.json.errcode, 'M_FORBIDDEN');
    const borrowed = await hs.call('POST', path, {
      token: attacker.accessToken,
      body: { new_password: 'owned', auth: passwordAuth(attacker, first.json.session) },
    });
    assert.equal(borrowed.status, 403);
    assert.equal((await login('victim', user.password)).status, 200);
  });

  test('no token is 401 M_MISSING_TOKEN; wrong types are 400 M_BAD_JSON', async () => {
    const path = '/_matrix/client/v3/account/password';
    const missing = await hs.call('POST', path, { body: { new_password: 'x' } });
    assert.equal(missing.status, 401);
    assert.equal(missing.json.errcode, 'M_MISSING_TOKEN');
    const user = await hs.createUser('typer');
    for (const body of [{ new_password: 5 }, { new_password: 'x', logout_devices: 'no' }, { new_password: 'x', auth: [] }]) {
      const res = await hs.call('POST', path, { token: user.accessToken, body });
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.json.errcode, 'M_BAD_JSON', JSON.stringify(body));
    }
  });
});

forEachBackend('POST /account/deactivate', (backend) => {
  let hs: TestHomeserver;
  before(async () => {
    hs = await backend.startHomeserver();
  });
  after(() => hs.stop());

  test('after password auth: tokens die, login is refused with M_USER_DEACTIVATED, and the user has left their rooms', async () => {
    const user = await hs.createUser('departing');
    const host = await hs.createUser('roomhost');
    const second = await hs.call('POST', LOGIN, { body: { type: 'm.login.password', user: 'departing', password: user.password } });
    const own = await hs.call('POST', '/_matrix/client/v3/createRoom', { token: user.accessToken, body: {} });
    assert.equal(own.status, 200, own.text);
    const invitedTo = await hs.call('POST', '/_matrix/client/v3/createRoom', { token: host.accessToken, body: { invite: [user.userId] } });
    assert.equal(invitedTo.status, 200, invitedTo.text);
    const { roomState } = hs.homeserver.services;
    assert.equal(await roomState.membership(own.json.room_id, user.userId), 'join');
    assert.equal(await roomState.membership(invitedTo.json.room_id, user.userId), 'invite');

    const path = '/_matrix/client/v3/account/deactivate';
    const first = await hs.call('POST', path, { token: user.accessToken, body: {} });
    assert.equal(first.status, 401);
    assert.deepEqual(first.json.flows, [{ stages: ['m.login.password'] }]);
    const wrong = await hs.call('POST', path, { token: user.accessToken, body: { auth: passwordAuth(user, first.json.session, 'wrong') } });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.json.errcode, 'M_FORBIDDEN');
    assert.equal((await hs.call('GET', WHOAMI, { token: user.accessToken })).status, 200, 'nothing happened yet');

    const done = await hs.call('POST', path, { token: user.accessToken, body: { auth: passwordAuth(user, first.json.session) } });
    assert.equal(done.status, 200, done.text);
    assert.deepEqual(done.json, { id_server_unbind_result: 'success' });

    for (const token of [user.accessToken, second.json.access_token]) {
      const res = await hs.call('GET', WHOAMI, { token });
      assert.equal(res.status, 401);
      assert.equal(res.json.errcode, 'M_UNKNOWN_TOKEN');
    }
    const login = await hs.call('POST', LOGIN, { body: { type: 'm.login.password', user: 'departing', password: user.password } });
    assert.equal(login.status, 403);
    assert.equal(login.json.errcode, 'M_USER_DEACTIVATED');
    assert.equal(await roomState.membership(own.json.room_id, user.userId), 'leave');
    assert.equal(await roomState.membership(invitedTo.json.room_id, user.userId), 'leave');
    const devices = await hs.homeserver.database.all('SELECT device_id FROM devices WHERE user_id = ?', [user.userId]);
    assert.equal(devices.length, 0);
    const available = await hs.call('GET', '/_matrix/client/v3/register/available?username=departing');
    assert.equal(available.json.errcode, 'M_USER_IN_USE', 'a deactivated name is not free again');
  });

  test('without a token: 401 M_MISSING_TOKEN; with a bad one: M_UNKNOWN_TOKEN', async () => {
    const missing = await hs.call('POST', '/_matrix/client/v3/account/deactivate', { body: {} });
    assert.equal(missing.json.errcode, 'M_MISSING_TOKEN');
    const bad = await hs.call('POST', '/_matrix/client/v3/account/deactivate', { token: 'nope', body: {} });
    assert.equal(bad.json.errcode, 'M_UNKNOWN_TOKEN');
  });
});

forEachBackend('devices', (backend) => {
  let hs: TestHomeserver;
  before(async () => {
    hs = await backend.startHomeserver();
  });
  after(() => hs.stop());

  const loginAs = async (user: TestUser, deviceId: string, name?: string) => {
    const res = await hs.call('POST', LOGIN, {
      body: {
        type: 'm.login.password',
        user: user.userId,
        password: user.password,
        device_id: deviceId,
        initial_device_display_name: name,
      },
    });
    assert.equal(res.status, 200, res.text);
    return res.json.access_token as string;
  };

  test("list, get and rename; another user's device is 404", async () => {
    const user = await hs.createUser('gadgets');
    const stranger = await hs.createUser('stranger');
    await loginAs(user, 'PHONE', 'My phone');
    const list = await hs.call('GET', '/_matrix/client/v3/devices', { token: user.accessToken });
    assert.equal(list.status, 200);
    const ids = list.json.devices.map((d: { device_id: string }) => d.device_id).sort();
    assert.deepEqual(ids, ['PHONE', user.deviceId].sort());
    for (const device of list.json.devices) assert.equal(device.last_seen_user_agent, undefined);

    const phone = await hs.call('GET', '/_matrix/client/v3/devices/PHONE', { token: user.accessToken });
    assert.equal(phone.status, 200);
    assert.deepEqual(phone.json, { device_id: 'PHONE', display_name: 'My phone' });

    const rename = await hs.call('PUT', '/_matrix/client/v3/devices/PHONE', {
      token: user.accessToken,
      body: { display_name: 'Old phone' },
    });
    assert.equal(rename.status, 200);
    assert.deepEqual(rename.json, {});
    assert.equal((await hs.call('GET', '/_matrix/client/v3/devices/PHONE', { token: user.accessToken })).json.display_name, 'Old phone');
    const unchanged = await hs.call('PUT', '/_matrix/client/v3/devices/PHONE', { token: user.accessToken, body: {} });
    assert.equal(unchanged.status, 200);
    assert.equal((await hs.call('GET', '/_matrix/client/v3/devices/PHONE', { token: user.accessToken })).json.display_name, 'Old phone');

    for (const [method, body] of [
      ['GET', undefined],
      ['PUT', { display_name: 'mine now' }],
    ] as const) {
      const res = await hs.call(method, '/_matrix/client/v3/devices/PHONE', { token: stranger.accessToken, body });
      assert.equal(res.status, 404, method);
      assert.equal(res.json.errcode, 'M_NOT_FOUND', method);
    }
    const badName = await hs.call('PUT', '/_matrix/client/v3/devices/PHONE', { token: user.accessToken, body: { display_name: 42 } });
    assert.equal(badName.status, 400);
    assert.equal(badName.json.errcode, 'M_BAD_JSON');
    const longName = await hs.call('PUT', '/_matrix/client/v3/devices/PHONE', {
      token: user.accessToken,
      body: { display_name: 'x'.repeat(101) },
    });
    assert.equal(longName.status, 400);
    assert.equal((await hs.call('GET', '/_matrix/client/v3/devices')).json.errcode, 'M_MISSING_TOKEN');
  });

  test('DELETE /devices/{id} needs the password; the device and its token are gone', async () => {
    const user = await hs.createUser('pruner');
    const tabletToken = await loginAs(user, 'TABLET');
    const path = '/_matrix/client/v3/devices/TABLET';
    const first = await hs.call('DELETE', path, { token: user.accessToken });
    assert.equal(first.status, 401);
    assert.deepEqual(first.json.flows, [{ stages: ['m.login.password'] }]);
    assert.equal((await hs.call('GET', WHOAMI, { token: tabletToken })).status, 200);

    const legacyUserField = { type: 'm.login.password', user: 'pruner', password: user.password, session: first.json.session };
    const done = await hs.call('DELETE', path, { token: user.accessToken, body: { auth: legacyUserField } });
    assert.equal(done.status, 200, done.text);
    const gone = await hs.call('GET', WHOAMI, { token: tabletToken });
    assert.equal(gone.status, 401);
    assert.equal(gone.json.errcode, 'M_UNKNOWN_TOKEN');
    assert.equal((await hs.call('GET', path, { token: user.accessToken })).status, 404);
  });

  test('POST /delete_devices deletes several after auth, keeping the stored list for a follow-up with only auth', async () => {
    const user = await hs.createUser('bulk');
    const tokens = [await loginAs(user, 'ONE'), await loginAs(user, 'TWO'), await loginAs(user, 'THREE')];
    const path = '/_matrix/client/v3/delete_devices';
    const first = await hs.call('POST', path, { token: user.accessToken, body: { devices: ['ONE', 'TWO', 'NEVER-EXISTED'] } });
    assert.equal(first.status, 401);
    const done = await hs.call('POST', path, { token: user.accessToken, body: { auth: passwordAuth(user, first.json.session) } });
    assert.equal(done.status, 200, done.text);
    assert.equal((await hs.call('GET', WHOAMI, { token: tokens[0] })).status, 401);
    assert.equal((await hs.call('GET', WHOAMI, { token: tokens[1] })).status, 401);
    assert.equal((await hs.call('GET', WHOAMI, { token: tokens[2] })).status, 200);
    const left = (await hs.call('GET', '/_matrix/client/v3/devices', { token: user.accessToken })).json.devices.map(
      (d: { device_id: string }) => d.device_id,
    );
    assert.deepEqual(left.sort(), ['THREE', user.deviceId].sort());

    const badList = await hs.call('POST', path, { token: user.accessToken, body: { devices: 'ONE' } });
    assert.equal(badList.status, 400);
    assert.equal(badList.json.errcode, 'M_BAD_JSON');
    const start = await hs.call('POST', path, { token: user.accessToken, body: {} });
    const noList = await hs.call('POST', path, { token: user.accessToken, body: { auth: passwordAuth(user, start.json.session) } });
    assert.equal(noList.status, 400);
    assert.equal(noList.json.errcode, 'M_MISSING_PARAM');
  });

  test('the dummy stage does not satisfy a password flow', async () => {
    const user = await hs.createUser('dummyuser');
    const path = '/_matrix/client/v3/delete_devices';
    const res = await hs.call('POST', path, {
      token: user.accessToken,
      body: { devices: [user.deviceId], auth: { type: 'm.login.dummy' } },
    });
    assert.equal(res.status, 401);
    assert.deepEqual(res.json.completed, ['m.login.dummy']);
    assert.equal((await hs.call('GET', WHOAMI, { token: user.accessToken })).status, 200);
  });

  test('last seen is recorded at most once per interval and shown without the user agent', async () => {
    const user = await hs.createUser('seen');
    const { devices, auth } = hs.homeserver.services;
    const requester = await auth.authenticate(user.accessToken);
    await devices.recordSeen(requester, '192.0.2.7', 'TestAgent/1');
    await devices.recordSeen(requester, '192.0.2.8', 'TestAgent/2');
    const res = await hs.call('GET', `/_matrix/client/v3/devices/${user.deviceId}`, { token: user.accessToken });
    assert.equal(res.json.last_seen_ip, '192.0.2.7', 'the second sighting within the interval is not written');
    assert.equal(typeof res.json.last_seen_ts, 'number');
    assert.equal(res.json.last_seen_user_agent, undefined);
  });
});
