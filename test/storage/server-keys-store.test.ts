// The server keys store on SQLite and on PostgreSQL: sightings of one key merge (the longer
// validity wins for the same public key, a new public key replaces the old), the latest signed
// answer is kept with its server's signatures only.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { JsonObject } from '../../src/core/json.js';
import type { ServerVerifyKey } from '../../src/core/server-keys.js';
import type { Database } from '../../src/storage/database.js';
import { migrate } from '../../src/storage/migrations.js';
import { PostgresDatabase } from '../../src/storage/postgres.js';
import { ServerKeysStore } from '../../src/storage/server-keys-store.js';
import { SqliteDatabase } from '../../src/storage/sqlite.js';
import { testPostgres } from '../harness/postgres.js';
import { tempDir } from '../helpers/tmp.js';

const opened: Database[] = [];
after(() => Promise.all(opened.map((db) => db.close())));

const BACKENDS: Record<string, () => Promise<Database>> = {
  sqlite: async () => new SqliteDatabase(join(tempDir(), 'keys.db')),
  postgres: async () => {
    const pg = await testPostgres();
    return new PostgresDatabase({ host: pg.socketDir, user: pg.user, database: await pg.createDatabase('server_keys') });
  },
};

const key = (keyId: string, publicKey: string, validUntilTs: number, old = false): ServerVerifyKey => ({
  serverName: 'a.example',
  keyId,
  publicKey,
  validUntilTs,
  old,
});
const answer = (validUntilTs: number, extra: JsonObject = {}): JsonObject => ({
  server_name: 'a.example',
  valid_until_ts: validUntilTs,
  verify_keys: {},
  old_verify_keys: { 'ed25519:old': { key: 'OLD', expired_ts: 500 } },
  signatures: { 'a.example': { 'ed25519:k': 'sig' }, 'notary.example': { 'ed25519:n': 'nsig' } },
  ...extra,
});

for (const [backend, open] of Object.entries(BACKENDS)) {
  describe(`server keys store on ${backend}`, () => {
    test('sightings merge; answers are kept with the origin’s signatures only; the one valid longest wins', async () => {
      const db = await open();
      opened.push(db);
      await migrate(db);
      const store = new ServerKeysStore(db);

      await store.storeAnswer(
        'a.example',
        answer(2000),
        2000,
        [key('ed25519:k', 'PK1', 2000), key('ed25519:old', 'OLD', 500, true)],
        100,
        'a.example',
      );
      // A notary's older sighting of the same key, valid for less: the longer validity stays.
      await store.storeAnswer('a.example', answer(1500), 1500, [key('ed25519:k', 'PK1', 1500)], 200, 'notary.example');
      assert.deepEqual(
        (await store.keysOf('a.example')).sort((x, y) => (x.keyId < y.keyId ? -1 : 1)),
        [key('ed25519:k', 'PK1', 2000), key('ed25519:old', 'OLD', 500, true)],
      );
      const kept = await store.answerOf('a.example');
      assert.deepEqual([kept?.validUntilTs, kept?.fetchedAtTs, kept?.fromServer], [2000, 100, 'a.example']);
      assert.deepEqual(kept?.json.signatures, { 'a.example': { 'ed25519:k': 'sig' } });

      // The server publishes another public key under the same id: it replaces the old one.
      await store.storeAnswer('a.example', answer(3000), 3000, [key('ed25519:k', 'PK2', 1000)], 300, 'a.example');
      assert.deepEqual(await store.keysOf('a.example', ['ed25519:k', 'ed25519:missing']), [key('ed25519:k', 'PK2', 1000)]);
      assert.equal((await store.answerOf('a.example'))?.validUntilTs, 3000);
      const expired = await db.get<{ expired_ts: number | null }>("SELECT expired_ts FROM server_verify_keys WHERE key_id = 'ed25519:old'");
      assert.equal(Number(expired?.expired_ts), 500);

      assert.deepEqual(await store.keysOf('b.example'), []);
      assert.equal(await store.answerOf('b.example'), undefined);
    });
  });
}
