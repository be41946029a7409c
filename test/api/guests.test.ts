// Guest accounts as the route declarations treat them: routes declared `auth: 'user'` refuse them
// with 403 M_GUEST_ACCESS_FORBIDDEN (key backups and the user directory, as Synapse), routes
// declared `auth: 'guest'` serve them; TURN credentials only with `turn_allow_guests`.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestHomeserver, type TestHomeserver } from '../helpers/homeserver.js';

describe('guests', () => {
  let hs: TestHomeserver;
  let guestToken: string;
  let userToken: string;
  before(async () => {
    hs = await startTestHomeserver({
      config: { turn_uris: ['turn:turn.example.org'], turn_shared_secret: 'secret', turn_allow_guests: false },
    });
    const guest = await hs.createUser('guest');
    await hs.homeserver.database.run('UPDATE users SET is_guest = 1 WHERE user_id = ?', [guest.userId]);
    guestToken = guest.accessToken;
    userToken = (await hs.createUser('full')).accessToken;
  });
  after(() => hs.stop());

  test("routes declared auth 'user' refuse guests, and serve full accounts", async () => {
    const backup = { algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2', auth_data: { public_key: 'abc' } };
    const calls: Array<[string, string, unknown]> = [
      ['POST', '/_matrix/client/v3/room_keys/version', backup],
      ['GET', '/_matrix/client/v3/room_keys/version', undefined],
      ['GET', '/_matrix/client/v3/room_keys/keys?version=1', undefined],
      ['POST', '/_matrix/client/v3/user_directory/search', { search_term: 'a' }],
    ];
    for (const [method, path, body] of calls) {
      const refused = await hs.call(method, path, { token: guestToken, ...(body === undefined ? {} : { body }) });
      assert.equal(refused.status, 403, `${method} ${path} ${refused.text}`);
      assert.equal(refused.json.errcode, 'M_GUEST_ACCESS_FORBIDDEN');
    }
    const created = await hs.call('POST', '/_matrix/client/v3/room_keys/version', { token: userToken, body: backup });
    assert.equal(created.status, 200, created.text);
    const searched = await hs.call('POST', '/_matrix/client/v3/user_directory/search', { token: userToken, body: { search_term: 'a' } });
    assert.equal(searched.status, 200, searched.text);
  });

  test("routes declared auth 'guest' serve guests", async () => {
    const whoami = await hs.call('GET', '/_matrix/client/v3/account/whoami', { token: guestToken });
    assert.equal(whoami.status, 200, whoami.text);
    assert.equal(whoami.json.is_guest, true);
    const sync = await hs.call('GET', '/_matrix/client/v3/sync?timeout=0', { token: guestToken });
    assert.equal(sync.status, 200, sync.text);
  });

  test('TURN credentials: refused to guests with turn_allow_guests: false', async () => {
    const refused = await hs.call('GET', '/_matrix/client/v3/voip/turnServer', { token: guestToken });
    assert.equal(refused.status, 403, refused.text);
    assert.equal(refused.json.errcode, 'M_GUEST_ACCESS_FORBIDDEN');
    const served = await hs.call('GET', '/_matrix/client/v3/voip/turnServer', { token: userToken });
    assert.equal(served.status, 200, served.text);
    assert.deepEqual(served.json.uris, ['turn:turn.example.org']);
  });
});
