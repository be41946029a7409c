// An account's whole life in one flow, on both backends: the same SQL (and migration 10) must hold
// on each.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { forEachBackend } from '../helpers/backends.js';
import type { TestHomeserver } from '../helpers/homeserver.js';

forEachBackend('an account from registration to deactivation', (backend) => {
  let hs: TestHomeserver;
  before(async () => {
    hs = await backend.startHomeserver();
  });
  after(() => hs.stop());

  test('register through a UIA session, log in ignoring case, change the password, delete a device, deactivate', async () => {
    const first = await hs.call('POST', '/_matrix/client/v3/register', { body: { username: 'PgUser', password: 'pg-pw' } });
    assert.equal(first.status, 401);
    const registered = await hs.call('POST', '/_matrix/client/v3/register', {
      body: { auth: { type: 'm.login.dummy', session: first.json.session } },
    });
    assert.equal(registered.status, 200, registered.text);
    assert.equal(registered.json.user_id, `@pguser:${hs.serverName}`);
    const taken = await hs.call('GET', '/_matrix/client/v3/register/available?username=pguser');
    assert.equal(taken.json.errcode, 'M_USER_IN_USE');
    const token = registered.json.access_token as string;

    const login = await hs.call('POST', '/_matrix/client/v3/login', {
      body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'PGUSER' }, password: 'pg-pw', device_id: 'SECOND' },
    });
    assert.equal(login.status, 200, login.text);

    const auth = (session: string, password: string) => ({ type: 'm.login.password', user: 'pguser', password, session });
    const change = await hs.call('POST', '/_matrix/client/v3/account/password', {
      token,
      body: { new_password: 'pg-new', logout_devices: false },
    });
    const changed = await hs.call('POST', '/_matrix/client/v3/account/password', {
      token,
      body: { auth: auth(change.json.session, 'pg-pw') },
    });
    assert.equal(changed.status, 200, changed.text);

    const del = await hs.call('DELETE', '/_matrix/client/v3/devices/SECOND', { token });
    const deleted = await hs.call('DELETE', '/_matrix/client/v3/devices/SECOND', {
      token,
      body: { auth: auth(del.json.session, 'pg-new') },
    });
    assert.equal(deleted.status, 200, deleted.text);
    assert.equal((await hs.call('GET', '/_matrix/client/v3/account/whoami', { token: login.json.access_token })).status, 401);

    const deactivate = await hs.call('POST', '/_matrix/client/v3/account/deactivate', { token, body: {} });
    const gone = await hs.call('POST', '/_matrix/client/v3/account/deactivate', {
      token,
      body: { auth: auth(deactivate.json.session, 'pg-new') },
    });
    assert.equal(gone.status, 200, gone.text);
    const refused = await hs.call('POST', '/_matrix/client/v3/login', {
      body: { type: 'm.login.password', user: 'pguser', password: 'pg-new' },
    });
    assert.equal(refused.json.errcode, 'M_USER_DEACTIVATED');
  });
});
