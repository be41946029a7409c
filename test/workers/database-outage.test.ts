// A worker deployment of real processes (ONE `myelin start`: main, two event persisters, two
// generic workers, the ephemeral writer) on a PostgreSQL of its own, which the tests stop, restart
// and start while clients keep sending:
//
// 1. PostgreSQL stopped for 10 s under a steady send load (several clients, through both generic
//    workers, to rooms on both persisters), then started: every persister and worker serves again
//    with no manual action; no acknowledged send is lost, none is stored twice; no process exited.
// 2. `pg_ctl restart` (fast) under the same load: the same, no process exits.
// 3. Workers that start while PostgreSQL is down wait for it (and say so), then serve.
// 4. A worker that hangs (SIGSTOP) is killed and restarted by the supervisor.
//
// How long each process took to serve again after PostgreSQL came back is printed as a test
// diagnostic; the waits themselves have generous deadlines (the tests never fail on timing).

import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import { shardOf } from '../../src/process/placement.js';
import { startPostgres, type PostgresServer } from '../harness/postgres.js';
import { startProcessCluster, type LogLine, type ProcessCluster } from '../helpers/process-cluster.js';

const enc = encodeURIComponent;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Account {
  userId: string;
  accessToken: string;
}

async function call(
  baseUrl: string,
  method: string,
  path: string,
  token?: string,
  body?: unknown,
): Promise<{ status: number; json: any; headers: Headers }> {
  const res = await fetch(baseUrl + path, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = { text };
  }
  return { status: res.status, json, headers: res.headers };
}

async function register(baseUrl: string, username: string): Promise<Account> {
  const res = await call(baseUrl, 'POST', '/_matrix/client/v3/register', undefined, {
    username,
    password: `pw-${username}-secret`,
    auth: { type: 'm.login.dummy' },
  });
  assert.equal(res.status, 200, JSON.stringify(res.json));
  return { userId: res.json.user_id, accessToken: res.json.access_token };
}

/** What the clients saw: every acknowledged send, and the answers that were not 200. */
interface LoadResult {
  acknowledged: Array<{ roomId: string; txnId: string; body: string; eventId: string }>;
  /** Status (or connection error) → how many times it was answered instead of 200. */
  failures: Map<string, number>;
}

/**
 * Clients sending as clients do: each message with its own transaction id, sent again with the
 * same id after any 5xx or connection failure until it is acknowledged, one after another, with
 * a short pause, alternating rooms and generic workers: with eight of them, some event is being
 * committed at almost any moment. Stops after its current send once asked.
 */
function startLoad(cluster: ProcessCluster, senders: Account[], roomIds: string[], prefix: string) {
  const result: LoadResult = { acknowledged: [], failures: new Map() };
  let running = true;
  const note = (what: string) => result.failures.set(what, (result.failures.get(what) ?? 0) + 1);
  const loops = senders.map(async (sender, s) => {
    for (let i = 0; running; i++) {
      const roomId = roomIds[(i + s) % roomIds.length]!;
      const txnId = `${prefix}-${s}-${i}`;
      const body = `${prefix} from ${s}, #${i}`;
      for (let attempt = 0; ; attempt++) {
        const worker = ['generic1', 'generic2'][(i + s + attempt) % 2]!;
        try {
          const res = await call(
            cluster.baseUrl(worker),
            'PUT',
            `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${txnId}`,
            sender.accessToken,
            { msgtype: 'm.text', body },
          );
          if (res.status === 200) {
            result.acknowledged.push({ roomId, txnId, body, eventId: res.json.event_id });
            break;
          }
          assert.ok(res.status >= 500, `${txnId}: ${res.status} ${JSON.stringify(res.json)}`);
          note(`${res.status} ${res.json.errcode ?? ''}`.trim());
        } catch (err) {
          if (err instanceof assert.AssertionError) throw err;
          note(`connection: ${(err as Error).message}`);
        }
        await sleep(200);
      }
      await sleep(10);
    }
  });
  return {
    result,
    /** Resolves once every sender has had `count` more sends acknowledged. */
    async waitForMore(count: number, ms = 180_000) {
      const target = result.acknowledged.length + count * senders.length;
      const deadline = Date.now() + ms;
      while (result.acknowledged.length < target) {
        if (Date.now() > deadline) throw new Error(`only ${result.acknowledged.length} of ${target} sends acknowledged`);
        await sleep(100);
      }
    },
    async stop(): Promise<LoadResult> {
      running = false;
      await Promise.all(loops);
      return result;
    },
  };
}

describe('a worker deployment through PostgreSQL outages', () => {
  let postgres: PostgresServer;
  let cluster: ProcessCluster;
  let senders: Account[];
  let reader: Account;
  /** A room on each persister, every sender and the reader joined. */
  const rooms = new Map<string, string>();

  before(async () => {
    postgres = await startPostgres();
    cluster = await startProcessCluster({ postgres });
    senders = [];
    for (let i = 0; i < 8; i++) senders.push(await register(cluster.baseUrl(i % 2 === 0 ? 'generic1' : 'generic2'), `outage_sender${i}`));
    reader = await register(cluster.baseUrl('generic2'), 'outage_reader');
    for (let i = 0; rooms.size < 2 && i < 60; i++) {
      const created = await call(cluster.baseUrl('generic1'), 'POST', '/_matrix/client/v3/createRoom', senders[0]!.accessToken, {
        preset: 'public_chat',
      });
      assert.equal(created.status, 200, JSON.stringify(created.json));
      const roomId: string = created.json.room_id;
      const persister = shardOf(roomId, ['persister1', 'persister2']);
      if (rooms.has(persister)) continue;
      for (const member of [...senders.slice(1), reader]) {
        const joined = await call(cluster.baseUrl('generic2'), 'POST', `/_matrix/client/v3/join/${enc(roomId)}`, member.accessToken);
        assert.equal(joined.status, 200, JSON.stringify(joined.json));
      }
      rooms.set(persister, roomId);
    }
    assert.equal(rooms.size, 2, 'a room on each persister');
  });

  after(async () => {
    if (postgres && !postgres.running) await postgres.start();
    if (cluster) assert.equal(await cluster.stop(), 0, 'myelin start stops cleanly on SIGTERM');
    await postgres?.stop();
  });

  /** Every worker's pid, from the supervisor's status lines. */
  const pids = () => new Map(cluster.workers.map((w) => [w, cluster.pidOf(w)]));

  /** Status lines that say a worker went down or came back, from log index `from` on. */
  function exits(from: number): string[] {
    return cluster
      .logLines()
      .slice(from)
      .filter((l) => l.instance === 'main' && /^worker \S+: (exited|killed|restarted|not answering|cannot be started)/.test(l.msg ?? ''))
      .map((l) => l.msg!);
  }

  /**
   * Polls until every persister and client-facing process serves requests that need the database,
   * and returns how long each took from `since` (the moment PostgreSQL was back).
   */
  async function timesToServe(since: number): Promise<Map<string, number>> {
    const token = reader.accessToken;
    const probes: Record<string, () => Promise<boolean>> = {};
    // A send to each persister's room (a fresh transaction id per attempt: each probe is a new message).
    let probe = 0;
    for (const [persister, roomId] of rooms) {
      probes[persister] = async () =>
        (
          await call(
            cluster.baseUrl('generic1'),
            'PUT',
            `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/probe-${Date.now()}-${probe++}`,
            token,
            { msgtype: 'm.text', body: 'probe' },
          )
        ).status === 200;
    }
    // Reads that hit the database (pagination) on each client-facing process.
    for (const instance of ['main', ...cluster.clientWorkers]) {
      probes[instance] = async () =>
        (
          await call(
            cluster.baseUrl(instance),
            'GET',
            `/_matrix/client/v3/rooms/${enc(rooms.get('persister1')!)}/messages?dir=b&limit=1`,
            token,
          )
        ).status === 200;
    }
    const times = new Map<string, number>();
    await Promise.all(
      Object.entries(probes).map(async ([instance, serves]) => {
        const deadline = Date.now() + 120_000;
        for (;;) {
          const ok = await serves().catch(() => false);
          if (ok) {
            times.set(instance, Date.now() - since);
            return;
          }
          if (Date.now() > deadline) throw new Error(`${instance} did not serve again within 120 s of PostgreSQL's return`);
          await sleep(100);
        }
      }),
    );
    return times;
  }

  /** Every acknowledged send is stored exactly once, /messages shows it, and nothing else was stored. */
  async function checkNothingLostOrDoubled(load: LoadResult, prefix: string): Promise<void> {
    assert.ok(load.acknowledged.length > 0);
    const ids = load.acknowledged.map((a) => a.eventId);
    assert.equal(new Set(ids).size, ids.length, 'every acknowledged send is its own event');
    const rows = await cluster.query<{ event_id: string; body: string }>(
      `SELECT event_id, json::jsonb->'content'->>'body' AS body FROM events
       WHERE room_id = ANY($1) AND type = 'm.room.message' AND json::jsonb->'content'->>'body' LIKE $2`,
      [[...rooms.values()], `${prefix} %`],
    );
    const storedBodies = rows.map((r) => r.body);
    assert.equal(new Set(storedBodies).size, storedBodies.length, 'no message stored twice');
    assert.deepEqual(rows.map((r) => r.event_id).sort(), [...ids].sort(), 'the database holds exactly the acknowledged sends');
    // What a client reads: /messages through a generic worker has every acknowledged event.
    for (const roomId of rooms.values()) {
      const seen = new Set<string>();
      let from: string | undefined;
      for (let page = 0; page < 50; page++) {
        const res = await call(
          cluster.baseUrl('generic2'),
          'GET',
          `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=500${from ? `&from=${enc(from)}` : ''}`,
          reader.accessToken,
        );
        assert.equal(res.status, 200, JSON.stringify(res.json));
        for (const event of res.json.chunk) if (event.type === 'm.room.message') seen.add(event.event_id);
        if (!res.json.end || res.json.chunk.length === 0) break;
        from = res.json.end;
      }
      for (const sent of load.acknowledged.filter((a) => a.roomId === roomId))
        assert.ok(seen.has(sent.eventId), `${sent.txnId} (${sent.eventId}) is in /messages`);
    }
  }

  function report(t: TestContext, what: string, times: Map<string, number>, load: LoadResult, from: number): void {
    const sorted = [...times].sort((a, b) => a[0].localeCompare(b[0]));
    const said = new Map<string, number>();
    for (const l of cluster.logLines().slice(from)) {
      if (l.name !== 'myelin.storage' && l.msg !== 'replication call failed; retrying') continue;
      const key = `${l.instance}: ${l.msg}`;
      said.set(key, (said.get(key) ?? 0) + 1);
    }
    t.diagnostic(`${what}: log lines: ${[...said].map(([k, n]) => `${k} ×${n}`).join('; ')}`);
    t.diagnostic(
      `${what}: serving again after PostgreSQL's return: ${sorted.map(([i, ms]) => `${i} ${(ms / 1000).toFixed(1)} s`).join(', ')}; ` +
        `max ${(Math.max(...times.values()) / 1000).toFixed(1)} s`,
    );
    t.diagnostic(
      `${what}: ${load.acknowledged.length} sends acknowledged; ` +
        `answers other than 200 meanwhile: ${JSON.stringify(Object.fromEntries(load.failures))}`,
    );
  }

  const linesOf = (from: number, instance: string, msg: string) =>
    cluster
      .logLines()
      .slice(from)
      .filter((l: LogLine) => l.instance === instance && l.msg === msg);

  test('PostgreSQL down for 10 s under load: every process serves again; no acknowledged send lost or doubled; none exited', async (t) => {
    const before = pids();
    const from = cluster.logLines().length;
    const load = startLoad(cluster, senders, [...rooms.values()], 'stop10');
    await load.waitForMore(5);
    await postgres.shutdown();
    const stoppedAt = Date.now();
    await sleep(10_000);
    await postgres.start();
    const backAt = Date.now();
    const times = await timesToServe(backAt);
    await load.waitForMore(5);
    const result = await load.stop();
    report(t, 'stopped 10 s', times, result, from);
    t.diagnostic(`PostgreSQL was down ${((backAt - stoppedAt) / 1000).toFixed(1)} s`);

    await checkNothingLostOrDoubled(result, 'stop10');
    assert.deepEqual(exits(from), [], 'no worker exited or was restarted');
    assert.deepEqual(pids(), before);
    assert.equal(cluster.supervisor.child.exitCode, null, 'main is running');
    // Each persister said the database went away and came back.
    for (const persister of ['persister1', 'persister2']) {
      assert.ok(linesOf(from, persister, 'database unreachable; retrying').length >= 1, `${persister} logged the outage`);
      assert.ok(linesOf(from, persister, 'database connection restored').length >= 1, `${persister} logged the recovery`);
    }
  });

  test('pg_ctl restart (fast) under a steady send load: no process crashes, nothing lost or doubled', async (t) => {
    const before = pids();
    const from = cluster.logLines().length;
    const load = startLoad(cluster, senders, [...rooms.values()], 'restart');
    await load.waitForMore(5);
    await postgres.restart();
    const backAt = Date.now();
    const times = await timesToServe(backAt);
    await load.waitForMore(5);
    const result = await load.stop();
    report(t, 'restart', times, result, from);
    await checkNothingLostOrDoubled(result, 'restart');
    assert.deepEqual(exits(from), [], 'no worker exited or was restarted');
    assert.deepEqual(pids(), before);
    assert.equal(cluster.supervisor.child.exitCode, null, 'main is running');
  });

  test('workers that start while PostgreSQL is down wait for it, saying so, and serve once it is back', async (t) => {
    const from = cluster.logLines().length;
    await postgres.shutdown();
    const oldPids = pids();
    for (const worker of ['generic2', 'persister1']) process.kill(oldPids.get(worker)!, 'SIGKILL');
    for (const worker of ['generic2', 'persister1']) {
      await cluster.waitForLog((l) => l.instance === worker && l.msg === 'database unreachable; waiting for it before starting', {
        from,
        ms: 90_000,
        what: `${worker} to say it waits for the database`,
      });
      await cluster.waitForLog(
        (l) =>
          l.instance === 'main' && new RegExp(`^worker ${worker}: starting \\(pid \\d+\\), waiting for the database$`).test(l.msg ?? ''),
        {
          from,
          ms: 90_000,
          what: `the supervisor to hear that ${worker} waits`,
        },
      );
    }
    // Nobody said "schema version 0", and the waiting workers were not restarted meanwhile.
    assert.ok(
      !cluster
        .logLines()
        .slice(from)
        .some((l) => /schema is at version 0/.test(l.msg ?? '')),
    );
    await postgres.start();
    const backAt = Date.now();
    for (const worker of ['generic2', 'persister1']) {
      const pid = await cluster.waitForRestart(worker, from, 120_000);
      assert.notEqual(pid, oldPids.get(worker));
    }
    const times = await timesToServe(backAt);
    t.diagnostic(
      'started while PostgreSQL was down: ' +
        `serving after its return: ${[...times].map(([i, ms]) => `${i} ${(ms / 1000).toFixed(1)} s`).join(', ')}`,
    );
    // Each was started once after its kill: it waited instead of being restarted over and over.
    for (const worker of ['generic2', 'persister1']) {
      const restarts = cluster
        .logLines()
        .slice(from)
        .filter((l) => l.instance === 'main' && new RegExp(`^worker ${worker}: (exited|killed)`).test(l.msg ?? ''));
      assert.equal(restarts.length, 1, restarts.map((l) => l.msg).join('\n'));
    }
  });

  test('a worker that hangs (SIGSTOP) is killed and restarted by the supervisor, and serves again', async () => {
    const from = cluster.logLines().length;
    const pid = cluster.pidOf('generic1');
    process.kill(pid, 'SIGSTOP');
    try {
      await cluster.waitForLog(
        (l) =>
          l.instance === 'main' &&
          new RegExp(`^worker generic1: not answering /health for \\d+ s \\(ETIMEDOUT\\); killing it \\(pid ${pid}\\) to restart it$`).test(
            l.msg ?? '',
          ),
        {
          from,
          ms: 120_000,
          what: 'the supervisor to kill the hung worker',
        },
      );
      const newPid = await cluster.waitForRestart('generic1', from, 120_000);
      assert.notEqual(newPid, pid);
    } finally {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // killed, as it should be
      }
    }
    const res = await call(
      cluster.baseUrl('generic1'),
      'GET',
      `/_matrix/client/v3/rooms/${enc(rooms.get('persister2')!)}/messages?dir=b&limit=1`,
      reader.accessToken,
    );
    assert.equal(res.status, 200, JSON.stringify(res.json));
  });
});
