// SQLite's passing faults, produced for real: the database locked by another connection for longer
// than busy_timeout (SQLITE_BUSY), and a full database (SQLITE_FULL, by capping its size with
// PRAGMA max_page_count). Each fails only the operations it hits, with a retriable error and a log
// line; the process goes on, nothing acknowledged is lost, and writes succeed again once it passes.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';
import pino from 'pino';
import { DatabaseUnavailableError } from '../../src/storage/database.js';
import { SqliteDatabase } from '../../src/storage/sqlite.js';
import { startTestHomeserver } from '../helpers/homeserver.js';
import { tempDir } from '../helpers/tmp.js';

const Sqlite = createRequire(import.meta.url)('better-sqlite3') as typeof BetterSqlite3;

function capturingLogger() {
  const lines: Array<{ msg: string; [key: string]: unknown }> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const text of chunk.toString().split('\n')) if (text) lines.push(JSON.parse(text));
      done();
    },
  });
  return { log: pino({ level: 'info' }, stream), messages: () => lines.map((l) => l.msg) };
}

function unavailable(kind: string) {
  return (err: unknown) => {
    assert.ok(err instanceof DatabaseUnavailableError, String(err));
    assert.equal(err.kind, kind);
    return true;
  };
}

describe('SQLite backend: passing faults', () => {
  const opened: SqliteDatabase[] = [];
  after(async () => {
    await Promise.all(opened.map((db) => db.close()));
  });

  async function open(options: { busyTimeoutMs?: number } = {}) {
    const file = join(tempDir('myelin-sqlite-faults-'), 'test.db');
    const { log, messages } = capturingLogger();
    const db = new SqliteDatabase(file, { log, ...options });
    opened.push(db);
    await db.exec('CREATE TABLE t (v TEXT NOT NULL)');
    return { db, file, messages };
  }

  // The queue goes on once the lock is released.
  test('SQLITE_BUSY: another process holds the lock beyond busy_timeout → the waiting writes fail with a retriable error', async () => {
    const { db, file, messages } = await open({ busyTimeoutMs: 200 });
    await db.run('INSERT INTO t (v) VALUES (?)', ['before']);
    const other = new Sqlite(file);
    other.exec('BEGIN IMMEDIATE'); // as another process writing (a backup tool, `sqlite3` by hand)
    try {
      const results = await Promise.allSettled([
        db.transaction((tx) => tx.run('INSERT INTO t (v) VALUES (?)', ['while locked 1'])),
        db.run('INSERT INTO t (v) VALUES (?)', ['while locked 2']),
      ]);
      for (const result of results) {
        assert.equal(result.status, 'rejected');
        unavailable('busy')(result.reason);
      }
      // Reads go on meanwhile (WAL: readers do not wait for the writer).
      assert.deepEqual(await db.all('SELECT v FROM t'), [{ v: 'before' }]);
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
    await db.transaction((tx) => tx.run('INSERT INTO t (v) VALUES (?)', ['after']));
    assert.deepEqual(await db.all('SELECT v FROM t ORDER BY rowid'), [{ v: 'before' }, { v: 'after' }]);
    const said = messages();
    assert.ok(
      said.includes('database busy (locked by another connection, or no free connection); answering 503 until it passes'),
      said.join('\n'),
    );
    assert.ok(said.includes('database serves again'), said.join('\n'));
  });

  // Every write reported done is stored, and writes succeed again once there is room.
  test('SQLITE_FULL: the database reaches its size cap → the writes that need room fail with a retriable error', async () => {
    const { db } = await open();
    const [{ page_count: pages }] = (await db.all<{ page_count: number }>('PRAGMA page_count')) as [{ page_count: number }];
    // The write connection may not grow the file beyond a few more pages.
    await db.exec(`PRAGMA max_page_count = ${pages + 2}`);
    const big = 'x'.repeat(64 * 1024);
    const attempts = Array.from({ length: 20 }, (_, i) => ({ value: `${i}:${i % 4 === 0 ? big : 'small'}` }));
    const results = await Promise.allSettled(
      attempts.map(({ value }) => db.transaction((tx) => tx.run('INSERT INTO t (v) VALUES (?)', [value]))),
    );
    const failed = results.filter((r) => r.status === 'rejected');
    assert.ok(failed.length > 0, 'some writes did not fit');
    for (const { reason } of failed) unavailable('resources')(reason);
    // Reported done ⇔ stored: a group commit that failed did not leave anything behind.
    const stored = new Set((await db.all<{ v: string }>('SELECT v FROM t')).map((r) => r.v));
    attempts.forEach(({ value }, i) => assert.equal(stored.has(value), results[i]!.status === 'fulfilled', `write ${i}`));

    await db.exec('PRAGMA max_page_count = 1073741823');
    await db.transaction((tx) => tx.run('INSERT INTO t (v) VALUES (?)', [big]));
    assert.equal((await db.all('SELECT v FROM t WHERE v = ?', [big])).length, 1);
  });

  test('one process whose database is full answers 503 M_UNKNOWN with Retry-After; the same send succeeds once there is room', async () => {
    const hs = await startTestHomeserver();
    try {
      const alice = await hs.createUser('alice');
      const created = await hs.call('POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: {} });
      assert.equal(created.status, 200);
      const roomId: string = created.json.room_id;
      const db = hs.homeserver.database;
      const [{ page_count: pages }] = (await db.all<{ page_count: number }>('PRAGMA page_count')) as [{ page_count: number }];
      await db.exec(`PRAGMA max_page_count = ${pages}`);
      const sent: Array<{ txn: string; eventId: string }> = [];
      let refused: { txn: string; status: number; json: any; retryAfter: unknown } | undefined;
      for (let i = 0; i < 500 && !refused; i++) {
        const txn = `full-${i}`;
        const res = await hs.call('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${txn}`, {
          token: alice.accessToken,
          body: { msgtype: 'm.text', body: `message ${i} ${'padding '.repeat(200)}` },
        });
        if (res.status === 200) sent.push({ txn, eventId: res.json.event_id });
        else refused = { txn, status: res.status, json: res.json, retryAfter: res.headers['retry-after'] };
      }
      assert.ok(refused, 'a send was refused once the database was full');
      assert.equal(refused.status, 503, JSON.stringify(refused.json));
      assert.equal(refused.json.errcode, 'M_UNKNOWN');
      assert.equal(refused.retryAfter, '1');

      await db.exec('PRAGMA max_page_count = 1073741823');
      const retried = await hs.call('PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${refused.txn}`, {
        token: alice.accessToken,
        body: { msgtype: 'm.text', body: 'retried' },
      });
      assert.equal(retried.status, 200, JSON.stringify(retried.json));
      // Every acknowledged send is there once, and so is the retried one.
      const messages = await db.all<{ event_id: string }>("SELECT event_id FROM events WHERE room_id = ? AND type = 'm.room.message'", [
        roomId,
      ]);
      assert.deepEqual(messages.map((m) => m.event_id).sort(), [...sent.map((s) => s.eventId), retried.json.event_id].sort());
      // And the server goes on serving reads.
      const page = await hs.call('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=5`, {
        token: alice.accessToken,
      });
      assert.equal(page.status, 200);
    } finally {
      await hs.stop();
    }
  });
});
