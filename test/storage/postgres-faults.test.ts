// The PostgreSQL backend when the server goes away under it, on a real server of this file's own
// (so it can be stopped): sessions terminated by the administrator (57P01, as `pg_terminate_backend`
// and a fast shutdown send), a full restart, an outage longer than the retry window, and a
// connection that breaks while a COMMIT is in flight (through a relay that cuts it).

import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import pino from 'pino';
import { DatabaseUnavailableError } from '../../src/storage/database.js';
import { isTransientDatabaseError } from '../../src/storage/faults.js';
import { checkSchemaVersion, migrate, waitForDatabase } from '../../src/storage/migrations.js';
import { PostgresDatabase, type PostgresOptions } from '../../src/storage/postgres.js';
import { UsersStore } from '../../src/storage/users-store.js';
import { AuthHandler } from '../../src/handlers/kernel/auth.js';
import { startPostgresProxy, type PostgresProxy } from '../harness/pg-proxy.js';
import { startPostgres, type PostgresServer } from '../harness/postgres.js';
import { eventually } from '../helpers/wait.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A logger whose lines the test can read. */
function capturingLogger() {
  const lines: Array<{ msg: string; level: number; [key: string]: unknown }> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const text of chunk.toString().split('\n')) if (text) lines.push(JSON.parse(text));
      done();
    },
  });
  return { log: pino({ level: 'debug' }, stream), lines, messages: () => lines.map((l) => l.msg) };
}

describe('PostgreSQL backend: the server goes away', () => {
  let server: PostgresServer;
  let admin: pg.Client;
  const opened: PostgresDatabase[] = [];

  before(async () => {
    server = await startPostgres();
  });
  after(async () => {
    await Promise.all(opened.map((db) => db.close()));
    await admin?.end().catch(() => undefined);
    await server?.stop();
  });

  async function adminClient(): Promise<pg.Client> {
    if (!server.running) await server.start();
    await admin?.end().catch(() => undefined);
    admin = new pg.Client({ host: server.socketDir, user: server.user, database: 'postgres' });
    admin.on('error', () => undefined);
    await admin.connect();
    return admin;
  }

  async function open(options: Partial<PostgresOptions> & { host?: string } = {}): Promise<{ db: PostgresDatabase; name: string }> {
    const name = await server.createDatabase('faults');
    const db = new PostgresDatabase({ host: server.socketDir, user: server.user, database: name, ...options });
    opened.push(db);
    await db.exec('CREATE TABLE t (v TEXT NOT NULL)');
    return { db, name };
  }

  /** Terminates every session on `database` (as an administrator does), returns how many. */
  async function terminateSessions(database: string): Promise<number> {
    const client = await adminClient();
    const { rows } = await client.query(
      'SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
      [database],
    );
    return rows.length;
  }

  async function sessionsOn(database: string): Promise<number> {
    const client = await adminClient();
    const { rows } = await client.query('SELECT COUNT(*)::int AS n FROM pg_stat_activity WHERE datname = $1', [database]);
    return rows[0].n as number;
  }

  test('a session terminated by an admin (57P01) mid-transaction: no crash; the transaction runs again and commits once', async () => {
    const { db, name } = await open();
    let runs = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let inside!: () => void;
    const entered = new Promise<void>((r) => (inside = r));
    const done = db.transaction(async (tx) => {
      runs++;
      await tx.run('INSERT INTO t (v) VALUES (?)', ['once']);
      inside();
      await gate;
      await tx.run('INSERT INTO t (v) VALUES (?)', ['twice?']);
      return runs;
    });
    await entered;
    // The connection checked out for the transaction is idle in transaction: the server ends it
    // between two of its statements, and node-postgres reports that as an 'error' event on a
    // client nobody listened to — which used to crash the process.
    assert.ok((await terminateSessions(name)) >= 1);
    await eventually(async () => (await sessionsOn(name)) === 0, 'the sessions to end');
    release();
    assert.equal(await done, 2, 'the transaction ran again after its connection was lost');
    assert.deepEqual(await db.all('SELECT v FROM t ORDER BY v'), [{ v: 'once' }, { v: 'twice?' }]);
    // Idle pooled connections were terminated too; the pool replaces them.
    assert.deepEqual(await db.get('SELECT 1 AS one'), { one: 1 });
  });

  test('a statement running when its session is terminated: a SELECT runs again; a write reports that its outcome is unknown', async () => {
    const { db, name } = await open();
    const read = db.get<{ one: number }>('SELECT 1 AS one FROM pg_sleep(1)');
    const write = db.run("INSERT INTO t (v) SELECT 'slow' FROM pg_sleep(1)").then(
      () => assert.fail('the write succeeded'),
      (err: unknown) => err,
    );
    await eventually(async () => {
      const client = await adminClient();
      const { rows } = await client.query(
        "SELECT COUNT(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND query LIKE '%pg_sleep(1)%'",
        [name],
      );
      return rows[0].n === 2;
    }, 'both statements to run');
    await terminateSessions(name);
    assert.deepEqual(await read, { one: 1 });
    // The server's 57P01 is its last word on a connection it ends; it cannot say whether an
    // autocommitted statement committed just before, so a write is not repeated blindly.
    const err = await write;
    assert.ok(err instanceof DatabaseUnavailableError && err.committed === 'unknown' && err.kind === 'unreachable', String(err));
    assert.deepEqual(await db.all('SELECT v FROM t'), []);
    assert.deepEqual(await db.run("INSERT INTO t (v) VALUES ('again')"), { changes: 1 });
  });

  test('a full restart: work issued during the outage waits and succeeds; the log says when it went and came back; no crash', async () => {
    const { log, messages, lines } = capturingLogger();
    const { db } = await open({ log, retryWindowMs: 60_000 });
    await db.run('INSERT INTO t (v) VALUES (?)', ['before']);
    await server.shutdown();
    const read = db.all<{ v: string }>('SELECT v FROM t ORDER BY v');
    const tx = db.transaction(async (q) => {
      await q.run('INSERT INTO t (v) VALUES (?)', ['during']);
      return 'committed';
    });
    const write = db.run('INSERT INTO t (v) VALUES (?)', ['during, alone']);
    await eventually(() => messages().includes('database unreachable; retrying'), 'the unreachable line');
    await sleep(500);
    await server.start();
    // (The read and the writes all wait for the server; which runs first then is not defined.)
    assert.ok((await read).some((r) => r.v === 'before'));
    assert.equal(await tx, 'committed');
    assert.deepEqual(await write, { changes: 1 });
    assert.deepEqual(
      (await db.all<{ v: string }>('SELECT v FROM t ORDER BY v')).map((r) => r.v),
      ['before', 'during', 'during, alone'],
    );
    const said = messages();
    assert.equal(said.filter((m) => m === 'database unreachable; retrying').length, 1, said.join('\n'));
    assert.ok(said.indexOf('database connection restored') > said.indexOf('database unreachable; retrying'), said.join('\n'));
    assert.ok((lines.find((l) => l.msg === 'database connection restored')!.downMs as number) > 0);
  });

  test('an outage beyond the retry window: DatabaseUnavailableError (retriable); the same handle works when it is back', async () => {
    const { db } = await open({ retryWindowMs: 300 });
    await server.shutdown();
    try {
      for (const attempt of [
        db.get('SELECT 1 AS one'),
        db.run('INSERT INTO t (v) VALUES (?)', ['x']),
        db.transaction((q) => q.run('INSERT INTO t (v) VALUES (?)', ['y'])),
      ]) {
        await assert.rejects(attempt, (err: unknown) => {
          assert.ok(err instanceof DatabaseUnavailableError, String(err));
          assert.equal(err.kind, 'unreachable');
          assert.equal(err.committed, 'no');
          assert.ok(isTransientDatabaseError(err));
          return true;
        });
      }
    } finally {
      await server.start();
    }
    assert.deepEqual(await db.get('SELECT 1 AS one'), { one: 1 });
    assert.deepEqual(await db.all('SELECT v FROM t'), []);
  });

  // waitForDatabase then waits, says so, and returns once the server answers.
  test('start-up while the server is down: the schema check says the database is unreachable (not "version 0")', async () => {
    const { log, messages } = capturingLogger();
    const { db } = await open({ retryWindowMs: 200, log });
    await migrate(db);
    await server.shutdown();
    try {
      await assert.rejects(checkSchemaVersion(db), (err: unknown) => err instanceof DatabaseUnavailableError && err.kind === 'unreachable');
      let waits = 0;
      const waited = waitForDatabase(db, { log, onWaiting: () => waits++, maxDelayMs: 200 });
      await eventually(() => waits >= 2, 'the wait to go on');
      assert.ok(messages().includes('database unreachable; waiting for it before starting'), messages().join('\n'));
      await server.start();
      await waited;
      assert.ok(messages().includes('the database answers; starting'), messages().join('\n'));
    } finally {
      if (!server.running) await server.start();
    }
    await checkSchemaVersion(db);
  });

  test('a signed-in client is still recognised while the database is down (the token cache’s re-read does not fail it)', async () => {
    const { db } = await open({ retryWindowMs: 200 });
    await migrate(db);
    let now = 1_000_000;
    const users = new UsersStore(db);
    const auth = new AuthHandler(users, () => now);
    await users.createUser({ userId: '@alice:example.org', passwordHash: null }, now);
    const { accessToken, deviceId } = await auth.createSession('@alice:example.org');
    assert.equal((await auth.authenticate(accessToken)).deviceId, deviceId);
    now += 60_000; // past the cache's re-read interval
    await server.shutdown();
    try {
      assert.equal((await auth.authenticate(accessToken)).userId, '@alice:example.org');
      // A token never seen before cannot be checked: that is a database failure, not a 401.
      await assert.rejects(auth.authenticate('syt_bob_unknown'), DatabaseUnavailableError);
    } finally {
      await server.start();
    }
  });

  test('a restart while transactions are running: each commits exactly once', async () => {
    const { db } = await open({ retryWindowMs: 60_000 });
    const counts = new Map<number, number>();
    const work = Array.from({ length: 40 }, async (_, i) => {
      await sleep(i * 25);
      return db.transaction(async (tx) => {
        counts.set(i, (counts.get(i) ?? 0) + 1);
        await tx.run('INSERT INTO t (v) VALUES (?)', [`row ${i}`]);
        await tx.get('SELECT pg_sleep(0.05)');
      });
    });
    await sleep(300);
    await server.restart();
    await Promise.all(work);
    const rows = await db.all<{ v: string; n: number }>('SELECT v, COUNT(*)::int AS n FROM t GROUP BY v');
    assert.equal(rows.length, 40);
    assert.ok(
      rows.every((r) => r.n === 1),
      JSON.stringify(rows.filter((r) => r.n !== 1)),
    );
  });

  describe('a connection that breaks while its COMMIT is in flight', () => {
    let proxy: PostgresProxy;
    before(async () => {
      if (!server.running) await server.start();
      proxy = await startPostgresProxy(server.socketDir);
    });
    after(() => proxy?.close());

    /**
     * A database reached through the relay whose table `t` commits only when the test lets it:
     * a deferred constraint trigger (it runs during COMMIT) waits for an advisory lock the test holds.
     */
    async function gatedDatabase() {
      const name = await server.createDatabase('commit');
      const setup = new pg.Client({ host: server.socketDir, user: server.user, database: name });
      await setup.connect();
      await setup.query(`CREATE TABLE t (v TEXT NOT NULL);
        CREATE FUNCTION wait_for_gate() RETURNS trigger LANGUAGE plpgsql
          AS $$ BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN NULL; END $$;
        CREATE CONSTRAINT TRIGGER gate AFTER INSERT ON t DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION wait_for_gate();`);
      await setup.query('SELECT pg_advisory_lock(4242)');
      const { log, messages } = capturingLogger();
      const db = new PostgresDatabase({ host: proxy.dir, user: server.user, database: name, log, retryWindowMs: 60_000 });
      opened.push(db);
      const waitingInCommit = () =>
        eventually(async () => {
          const { rows } = await setup.query(
            `SELECT pid FROM pg_stat_activity
             WHERE datname = $1 AND wait_event_type = 'Lock' AND wait_event = 'advisory' AND query = 'COMMIT'`,
            [name],
          );
          return rows[0]?.pid as number | undefined;
        }, 'a COMMIT waiting at the gate');
      return {
        db,
        messages,
        waitingInCommit,
        terminate: (pid: number) => setup.query('SELECT pg_terminate_backend($1)', [pid]),
        open: () => setup.query('SELECT pg_advisory_unlock(4242)'),
        close: () => setup.query('SELECT pg_advisory_unlock_all()').finally(() => setup.end()),
      };
    }

    test('it committed on the server: the transaction is reported committed and is not run again', async () => {
      const gated = await gatedDatabase();
      try {
        let runs = 0;
        const done = gated.db.transaction(async (tx) => {
          runs++;
          await tx.run('INSERT INTO t (v) VALUES (?)', ['exactly once']);
          return 'ok';
        });
        await gated.waitingInCommit();
        proxy.cut(); // the client loses the connection; the server's backend keeps waiting at the gate
        await eventually(
          () => gated.messages().includes('the database connection broke during a COMMIT; asking the server whether it committed'),
          'the client to notice',
        );
        await gated.open(); // the backend goes on and commits, and cannot tell the client
        assert.equal(await done, 'ok');
        assert.equal(runs, 1);
        assert.deepEqual(await gated.db.all('SELECT v FROM t'), [{ v: 'exactly once' }]);
        assert.ok(gated.messages().includes('the transaction interrupted during COMMIT was committed'));
      } finally {
        await gated.close();
      }
    });

    test('it was rolled back on the server: the transaction runs again and commits once', async () => {
      const gated = await gatedDatabase();
      try {
        let runs = 0;
        const done = gated.db.transaction(async (tx) => {
          runs++;
          await tx.run('INSERT INTO t (v) VALUES (?)', [`attempt ${runs}`]);
          return runs;
        });
        const pid = await gated.waitingInCommit();
        proxy.cut();
        await eventually(
          () => gated.messages().includes('the database connection broke during a COMMIT; asking the server whether it committed'),
          'the client to notice',
        );
        await gated.terminate(pid); // the server rolls it back
        // The second run waits at the gate in its turn; then it may commit.
        await gated.waitingInCommit();
        await gated.open();
        assert.equal(await done, 2);
        assert.deepEqual(await gated.db.all('SELECT v FROM t'), [{ v: 'attempt 2' }]);
        assert.ok(gated.messages().includes('the transaction interrupted during COMMIT was rolled back'));
      } finally {
        await gated.close();
      }
    });
  });
});
