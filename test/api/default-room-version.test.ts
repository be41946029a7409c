// `default_room_version` (Synapse's key): the version of rooms created without `room_version`, and
// the default /capabilities announces; a version this server does not support stops start-up.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { forEachBackend } from '../helpers/backends.js';
import type { TestHomeserver } from '../helpers/homeserver.js';
import { tempDir, writeFiles } from '../helpers/tmp.js';

forEachBackend('default_room_version', (backend) => {
  let hs: TestHomeserver;
  let token: string;
  before(async () => {
    hs = await backend.startHomeserver({ config: { default_room_version: 10 } });
    token = (await hs.createUser('alice')).accessToken;
  });
  after(() => hs.stop());

  test('a room created without room_version has the configured version, and /capabilities says so', async () => {
    const capabilities = await hs.call('GET', '/_matrix/client/v3/capabilities', { token });
    assert.equal(capabilities.json.capabilities['m.room_versions'].default, '10');
    const created = await hs.call('POST', '/_matrix/client/v3/createRoom', { token, body: {} });
    assert.equal(created.status, 200, created.text);
    const create = await hs.call('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(created.json.room_id)}/state/m.room.create`, {
      token,
    });
    assert.equal(create.json.room_version, '10');
    const explicit = await hs.call('POST', '/_matrix/client/v3/createRoom', { token, body: { room_version: '12' } });
    assert.equal(explicit.status, 200, explicit.text);
  });
});

test('default_room_version: a version this server does not support is a configuration error', () => {
  const dir = tempDir();
  writeFiles(dir, { 'homeserver.yaml': 'server_name: example.org\ndefault_room_version: "99"\n' });
  assert.throws(
    () => loadConfig([join(dir, 'homeserver.yaml')]),
    (err: unknown) => err instanceof ConfigError && /default_room_version/.test(err.message),
  );
});
