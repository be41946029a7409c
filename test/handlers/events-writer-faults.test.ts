// The events writer when the database connection breaks during an event's COMMIT, on a real
// PostgreSQL reached through a relay that cuts connections: a deferred trigger holds the COMMIT at
// a gate the test opens, so the break lands exactly there. Whether the server then commits or rolls
// back, the send is answered once, with one event, and a client's retry with the same transaction
// id — while the outcome is still being learned, or after — gets that same event.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { startPostgresProxy, type PostgresProxy } from '../harness/pg-proxy.js';
import { testPostgres, type PostgresServer } from '../harness/postgres.js';
import { startTestHomeserver, type TestHomeserver, type TestUser } from '../helpers/homeserver.js';
import { eventually } from '../helpers/wait.js';

const GATE = 4343;

describe('events writer: the connection breaks during a COMMIT', () => {
  let server: PostgresServer;
  let proxy: PostgresProxy;
  let hs: TestHomeserver;
  let admin: pg.Client;
  let alice: TestUser;
  let database: string;

  before(async () => {
    server = await testPostgres();
    proxy = await startPostgresProxy(server.socketDir);
    database = await server.createDatabase('commit_cut');
    hs = await startTestHomeserver({ database: { name: 'psycopg2', args: { host: proxy.dir, user: server.user, dbname: database } } });
    alice = await hs.createUser('alice');
    admin = new pg.Client({ host: server.socketDir, user: server.user, database });
    await admin.connect();
    // Every stored event passes a gate at COMMIT time; the gate is open unless the test holds it.
    await admin.query(`CREATE FUNCTION events_gate() RETURNS trigger LANGUAGE plpgsql
        AS $$ BEGIN PERFORM pg_advisory_xact_lock(${GATE}); RETURN NULL; END $$;
      CREATE CONSTRAINT TRIGGER events_gate AFTER INSERT ON events DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION events_gate();`);
  });
  after(async () => {
    await admin?.end();
    await hs?.stop();
    await proxy?.close();
  });

  const enc = encodeURIComponent;

  async function newRoom(): Promise<string> {
    const created = await hs.call('POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: {} });
    assert.equal(created.status, 200, JSON.stringify(created.json));
    return created.json.room_id;
  }

  const send = (roomId: string, txn: string, body: string) =>
    hs.call('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${txn}`, {
      token: alice.accessToken,
      body: { msgtype: 'm.text', body },
    });

  /** The backend of a COMMIT waiting at the gate. */
  const waitingInCommit = () =>
    eventually(async () => {
      const { rows } = await admin.query(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' AND wait_event = 'advisory' AND query = 'COMMIT'",
        [database],
      );
      return rows[0]?.pid as number | undefined;
    }, 'an event COMMIT waiting at the gate');

  async function stored(roomId: string, body: string): Promise<string[]> {
    const { rows } = await admin.query(
      "SELECT event_id FROM events WHERE room_id = $1 AND type = 'm.room.message' AND json::jsonb->'content'->>'body' = $2",
      [roomId, body],
    );
    return rows.map((r) => r.event_id as string);
  }

  async function syncToken(): Promise<string> {
    const res = await hs.call('GET', '/_matrix/client/v3/sync?timeout=0', { token: alice.accessToken });
    assert.equal(res.status, 200);
    return res.json.next_batch;
  }

  async function syncedSince(since: string, roomId: string): Promise<string[]> {
    const res = await hs.call('GET', `/_matrix/client/v3/sync?timeout=0&since=${enc(since)}`, { token: alice.accessToken });
    assert.equal(res.status, 200);
    return (res.json.rooms?.join?.[roomId]?.timeline?.events ?? [])
      .filter((e: { type: string }) => e.type === 'm.room.message')
      .map((e: { event_id: string }) => e.event_id);
  }

  for (const outcome of ['committed', 'rolled back'] as const) {
    const did = outcome === 'committed' ? 'committed it' : 'rolled it back';
    test(`the server ${did}: one event for the send, the retry sent meanwhile and the one sent after; syncing clients see it`, async () => {
      const roomId = await newRoom();
      const since = await syncToken();
      const body = `cut, ${outcome}`;
      await admin.query('SELECT pg_advisory_lock($1)', [GATE]);
      let first: ReturnType<typeof send> | undefined;
      try {
        first = send(roomId, 'cut-1', body);
        const pid = await waitingInCommit();
        proxy.cut();
        // The client gives up on its request and sends it again, while the outcome is unknown.
        const retry = send(roomId, 'cut-1', body);
        if (outcome === 'rolled back') {
          await admin.query('SELECT pg_terminate_backend($1)', [pid]);
          await waitingInCommit(); // run again, and held at the gate in its turn
        }
        await admin.query('SELECT pg_advisory_unlock($1)', [GATE]);
        const [a, b] = await Promise.all([first, retry]);
        assert.equal(a.status, 200, JSON.stringify(a.json));
        assert.equal(b.status, 200, JSON.stringify(b.json));
        assert.equal(b.json.event_id, a.json.event_id, 'the retry gets the same event');
        const again = await send(roomId, 'cut-1', body);
        assert.equal(again.json.event_id, a.json.event_id, 'a later retry too');
        assert.deepEqual(await stored(roomId, body), [a.json.event_id], 'stored once');
        // Its position was announced with its row: an incremental sync has it.
        assert.deepEqual(await syncedSince(since, roomId), [a.json.event_id]);
        // And the room goes on.
        const next = await send(roomId, 'cut-2', 'next');
        assert.equal(next.status, 200);
        assert.deepEqual(await syncedSince(since, roomId), [a.json.event_id, next.json.event_id]);
      } finally {
        await admin.query('SELECT pg_advisory_unlock_all()');
        await first?.catch(() => undefined);
      }
    });
  }
});
