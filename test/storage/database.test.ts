// The same database tests on both backends: SQLite (embedded) and PostgreSQL (a real server on a
// UNIX socket, started by the harness).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LATEST_SCHEMA_VERSION, SchemaVersionError, checkSchemaVersion, migrate } from '../../src/storage/migrations.js';
import { SCHEMA } from '../../src/storage/schema/index.js';
import { ServerMetaStore, ServerNameMismatchError } from '../../src/storage/server-meta-store.js';
import { forEachBackend } from '../helpers/backends.js';

forEachBackend('store', (backend) => {
  const open = () => backend.openDatabase();

  test('migrations apply once and record the schema version', async () => {
    const db = await open();
    assert.deepEqual(await migrate(db), { from: 0, to: LATEST_SCHEMA_VERSION });
    assert.deepEqual(await migrate(db), { from: LATEST_SCHEMA_VERSION, to: LATEST_SCHEMA_VERSION });
    await checkSchemaVersion(db);
    const rows = await db.all<{ version: number }>('SELECT version FROM schema_version ORDER BY version');
    assert.deepEqual(
      rows.map((r) => r.version),
      SCHEMA.map((m) => m.version).sort((a, b) => a - b),
    );
  });

  test('a schema newer than the code is refused', async () => {
    const db = await open();
    await migrate(db);
    await db.run('INSERT INTO schema_version (version, name, applied_ts) VALUES (?, ?, ?)', [
      LATEST_SCHEMA_VERSION + 1,
      'from the future',
      0,
    ]);
    await assert.rejects(
      migrate(db),
      (err: Error) => err instanceof SchemaVersionError && /newer than this version of Myelin/.test(err.message),
    );
    await assert.rejects(checkSchemaVersion(db), SchemaVersionError);
  });

  test('a worker refuses a schema that main has not upgraded yet', async () => {
    const db = await open();
    await assert.rejects(checkSchemaVersion(db), /start the main process first/);
  });

  test('concurrent migrations (two processes starting together) apply each step once', async () => {
    const [first, second] = await backend.openTwice();
    await Promise.all([migrate(first), migrate(second), migrate(first)]);
    const rows = await first.all('SELECT version FROM schema_version');
    assert.equal(rows.length, SCHEMA.length);
  });

  test('a transaction commits on success and rolls back on error', async () => {
    const db = await open();
    await migrate(db);
    await db.transaction(async (tx) => {
      await tx.run('INSERT INTO server_meta (meta_key, meta_value) VALUES (?, ?)', ['a', '1']);
    });
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.run('INSERT INTO server_meta (meta_key, meta_value) VALUES (?, ?)', ['b', '2']);
        throw new Error('boom');
      }),
      /boom/,
    );
    const keys = (await db.all<{ meta_key: string }>('SELECT meta_key FROM server_meta ORDER BY meta_key')).map((r) => r.meta_key);
    assert.deepEqual(keys, ['a']);
  });

  test('reads outside a transaction never see its uncommitted writes', async () => {
    const db = await open();
    await migrate(db);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const inserted = new Promise<void>((resolveInserted) => {
      void db.transaction(async (tx) => {
        await tx.run('INSERT INTO server_meta (meta_key, meta_value) VALUES (?, ?)', ['pending', 'x']);
        resolveInserted();
        await gate;
      });
    });
    await inserted;
    assert.equal(await db.get('SELECT meta_value FROM server_meta WHERE meta_key = ?', ['pending']), undefined);
    release();
    await new Promise((r) => setTimeout(r, 50));
    await db.transaction(async () => undefined); // waits for the first to finish
    assert.deepEqual(await db.get('SELECT meta_value FROM server_meta WHERE meta_key = ?', ['pending']), { meta_value: 'x' });
  });

  test('concurrent transactions on the same rows do not lose updates', async () => {
    const db = await open();
    await migrate(db);
    await db.run('INSERT INTO server_meta (meta_key, meta_value) VALUES (?, ?)', ['counter', '0']);
    await Promise.all(
      Array.from({ length: 20 }, () =>
        db.transaction(async (tx) => {
          // An atomic read-modify-write in SQL, as stores do for counters.
          await tx.run(`UPDATE server_meta SET meta_value = CAST(CAST(meta_value AS INTEGER) + 1 AS TEXT) WHERE meta_key = ?`, ['counter']);
        }),
      ),
    );
    assert.deepEqual(await db.get('SELECT meta_value FROM server_meta WHERE meta_key = ?', ['counter']), { meta_value: '20' });
  });

  test('values round-trip with their types: text, integers beyond 2^32, bytes, null', async () => {
    const db = await open();
    await db.exec(
      'CREATE TABLE t (s TEXT, n BIGINT, b BYTEA_OR_BLOB, z TEXT)'.replace('BYTEA_OR_BLOB', db.dialect === 'sqlite' ? 'BLOB' : 'BYTEA'),
    );
    const bytes = Buffer.from([0, 1, 2, 255]);
    await db.run('INSERT INTO t (s, n, b, z) VALUES (?, ?, ?, ?)', ['héllo ☃ 😀', 2 ** 40 + 3, bytes, null]);
    const row = await db.get<{ s: string; n: number; b: Buffer; z: null }>('SELECT s, n, b, z FROM t');
    assert.equal(row?.s, 'héllo ☃ 😀');
    assert.equal(row?.n, 2 ** 40 + 3);
    assert.ok(Buffer.from(row.b).equals(bytes));
    assert.equal(row?.z, null);
    assert.deepEqual(await db.run('UPDATE t SET z = ? WHERE s = ?', ['set', 'nope']), { changes: 0 });
  });

  test('the server name is claimed on first start and cannot change', async () => {
    const db = await open();
    await migrate(db);
    const meta = new ServerMetaStore(db);
    await meta.claimServerName('example.org');
    await meta.claimServerName('example.org');
    await assert.rejects(meta.claimServerName('other.org'), ServerNameMismatchError);
    assert.equal(await meta.get('server_name'), 'example.org');
  });
});
