// Access-token authentication as every authenticated endpoint sees it.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TestHomeserver } from '../helpers/homeserver.js';
import { forEachBackend } from '../helpers/backends.js';

forEachBackend('access tokens', (backend) => {
  let hs: TestHomeserver;
  before(async () => {
    hs = await backend.startHomeserver();
  });
  after(() => hs.stop());

  test('the in-process test homeserver answers /versions', async () => {
    const res = await hs.call('GET', '/_matrix/client/versions');
    assert.equal(res.status, 200);
  });

  test('tokens are stored hashed, never in plain text', async () => {
    const user = await hs.createUser('hashcheck');
    const rows = await hs.homeserver.database.all<{ token_hash: string }>('SELECT token_hash FROM access_tokens WHERE user_id = ?', [
      user.userId,
    ]);
    assert.equal(rows.length, 1);
    assert.notEqual(rows[0]!.token_hash, user.accessToken);
    assert.ok(!rows[0]!.token_hash.includes(user.accessToken));
  });
});
