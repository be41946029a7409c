// Backup versions created at once by several processes (worker mode: any client worker serves
// POST /room_keys/version) get distinct numbers; nothing fails.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { migrate } from '../../src/storage/migrations.js';
import { PostgresDatabase } from '../../src/storage/postgres.js';
import { SCHEMA } from '../../src/storage/schema/index.js';
import { KeyBackupStore } from '../../src/storage/key-backup-store.js';
import { testPostgres } from '../harness/postgres.js';

const handles: PostgresDatabase[] = [];
after(() => Promise.all(handles.map((db) => db.close())));

test('PostgreSQL: 20 versions created at once through two connections pools are numbered 1..20', async () => {
  const server = await testPostgres();
  const database = await server.createDatabase('backup_race');
  const open = () => {
    const db = new PostgresDatabase({ host: server.socketDir, user: server.user, database });
    handles.push(db);
    return db;
  };
  const [a, b] = [open(), open()];
  await migrate(a, SCHEMA);
  const stores = [new KeyBackupStore(a), new KeyBackupStore(b)];
  const versions = await Promise.all(
    Array.from({ length: 20 }, (_, i) => stores[i % 2]!.create('@racer:test', 'm.megolm_backup.v1.curve25519-aes-sha2', '{}')),
  );
  assert.deepEqual(
    [...versions].sort((x, y) => x - y),
    Array.from({ length: 20 }, (_, i) => i + 1),
  );
});
