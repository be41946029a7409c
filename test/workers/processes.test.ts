// The worker deployment as real processes: ONE `myelin start` supervising two event persisters,
// two generic workers and the ephemeral-streams writer, on a real PostgreSQL and a real Redis on a
// UNIX socket (`port 0`, `unixsocketperm 770`), laid out as the seed guide lays it out. Clients are
// matrix-js-sdk and plain HTTP; faults are real signals.
//
// 1. the guide's setup: sockets and modes, the guide's log lines, `myelin check`;
// 2. a client sending through generic1 and another syncing through generic2;
// 3. the same suite through the built-in router and through nginx on `myelin proxy-config nginx`;
// 4. kill -9 of a generic worker and of an events persister while a client sends; Redis down 3 s.
// Also: one user creating 100 rooms, 8 at a time, through several processes at once.
//
// One cluster serves the whole file (starting six Node processes is the expensive part); each
// suite uses its own users and rooms.

import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import {
  ClientEvent,
  createClient,
  EventType,
  Filter,
  MsgType,
  PendingEventOrdering,
  type MatrixClient,
  type MatrixEvent,
  type Room,
} from 'matrix-js-sdk';
import { logger } from 'matrix-js-sdk/lib/logger.js';
import { shardOf } from '../../src/process/placement.js';
import { startHaproxy, type HaproxyServer } from '../harness/haproxy.js';
import { startNginx, type NginxServer } from '../harness/nginx.js';
import { request } from '../helpers/http.js';
import { runMyelin } from '../helpers/myelin.js';
import { startProcessCluster, type ProcessCluster } from '../helpers/process-cluster.js';
import { createRoomsConcurrently } from '../helpers/rooms.js';
import { freePort } from '../helpers/server-process.js';
import { waitFor } from '../helpers/wait.js';

// The SDK's loggers, including the one of its MatrixRTC session manager (which logs an error for
// the state of a room it has not seen yet, as happens when a test creates rooms quickly).
for (const l of [logger, logger.getChild('[MatrixRTCSessionManager]')])
  (l as unknown as { setLevel(level: string): void }).setLevel('silent');

// matrix-js-sdk arms a timer of 110 s for every /sync request (its AbortSignal.timeout ponyfill)
// and never clears it, so the test process would stay alive for almost two minutes after its
// clients stop. Timers that long are unref'd here; nothing in this file waits on one.
const realSetTimeout = globalThis.setTimeout;
globalThis.setTimeout = Object.assign((handler: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
  const timer = realSetTimeout(handler, ms, ...args);
  if ((ms ?? 0) >= 60_000) timer.unref();
  return timer;
}, realSetTimeout);

const enc = encodeURIComponent;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- plain HTTP -------------------------------------------------------------------------------

interface Account {
  userId: string;
  accessToken: string;
  deviceId: string;
}

async function call(baseUrl: string, method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; json: any }> {
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
  return { status: res.status, json };
}

async function registerAccount(baseUrl: string, username: string): Promise<Account> {
  const res = await call(baseUrl, 'POST', '/_matrix/client/v3/register', undefined, {
    username,
    password: `pw-${username}-secret`,
    auth: { type: 'm.login.dummy' },
  });
  assert.equal(res.status, 200, JSON.stringify(res.json));
  return { userId: res.json.user_id, accessToken: res.json.access_token, deviceId: res.json.device_id };
}

/**
 * A client that sends as a client does when its connection fails: the same transaction id again
 * until it gets an answer. Returns the event id; counts the attempts that failed.
 */
async function sendWithRetries(
  baseUrl: () => string,
  token: string,
  roomId: string,
  txnId: string,
  body: string,
  failures: { count: number },
  ms = 120_000,
): Promise<string> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const res = await call(baseUrl(), 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${enc(txnId)}`, token, {
        msgtype: 'm.text',
        body,
      });
      if (res.status === 200) return res.json.event_id as string;
      // A proxy answers 502 while the worker behind it is down; anything else is a real error.
      assert.ok(res.status >= 500, `${txnId}: ${res.status} ${JSON.stringify(res.json)}`);
    } catch (err) {
      if (err instanceof assert.AssertionError) throw err;
      // connection refused or reset: the worker is down
    }
    failures.count++;
    if (Date.now() > deadline) throw new Error(`${txnId}: no answer within ${ms} ms`);
    await sleep(200);
  }
}

/**
 * A `/sync` loop over plain HTTP that records every m.room.message of a room as it arrives, so
 * duplicates and gaps show (a client library would hide a duplicate). The timeline limit is high
 * enough that no incremental sync is `limited`, and a limited one fails the test.
 */
class MessageCollector {
  readonly bodies: string[] = [];
  readonly eventIds: string[] = [];
  private since = '';
  private running = true;
  private loop: Promise<void> | undefined;
  private error: Error | undefined;
  private readonly filter = enc(JSON.stringify({ room: { timeline: { limit: 500 } } }));

  constructor(
    private readonly baseUrl: () => string,
    private readonly token: string,
    private readonly roomId: string,
  ) {}

  /** Takes the current position (nothing before it is collected), then follows from there. */
  async start(): Promise<void> {
    const first = await call(this.baseUrl(), 'GET', `/_matrix/client/v3/sync?timeout=0&filter=${this.filter}`, this.token);
    assert.equal(first.status, 200, JSON.stringify(first.json));
    this.since = first.json.next_batch;
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (this.running) {
      let res: { status: number; json: any };
      try {
        res = await call(
          this.baseUrl(),
          'GET',
          `/_matrix/client/v3/sync?since=${enc(this.since)}&timeout=2000&filter=${this.filter}`,
          this.token,
        );
      } catch {
        await sleep(200);
        continue;
      }
      if (res.status !== 200) {
        if (res.status >= 500) {
          await sleep(200);
          continue;
        }
        this.error = new Error(`sync answered ${res.status}: ${JSON.stringify(res.json)}`);
        return;
      }
      const room = res.json.rooms?.join?.[this.roomId];
      if (room?.timeline?.limited) {
        this.error = new Error(`an incremental sync was limited: events were skipped (${room.timeline.events.length} returned)`);
        return;
      }
      for (const e of room?.timeline?.events ?? []) {
        if (e.type !== 'm.room.message') continue;
        this.bodies.push(e.content.body);
        this.eventIds.push(e.event_id);
      }
      this.since = res.json.next_batch;
    }
  }

  /** Waits until `count` messages have arrived (or fails after `ms`), then a little longer for any extra. */
  async waitFor(count: number, ms = 60_000): Promise<string[]> {
    const deadline = Date.now() + ms;
    while (this.bodies.length < count) {
      if (this.error) throw this.error;
      if (Date.now() > deadline) throw new Error(`got ${this.bodies.length} of ${count} messages: ${JSON.stringify(this.bodies)}`);
      await sleep(50);
    }
    // A duplicate would come in a later sync: give the loop another round trip to show it.
    const seen = this.bodies.length;
    const settle = Date.now() + 2_500;
    while (Date.now() < settle && this.bodies.length === seen && !this.error) await sleep(50);
    if (this.error) throw this.error;
    return [...this.bodies];
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

// ---- matrix-js-sdk ---------------------------------------------------------------------------

interface SdkUser {
  client: MatrixClient;
  account: Account;
  toDevice: MatrixEvent[];
}

async function startSdkUser(baseUrl: string, username: string): Promise<SdkUser> {
  const account = await registerAccount(baseUrl, username);
  const client = createClient({ baseUrl, userId: account.userId, accessToken: account.accessToken, deviceId: account.deviceId });
  const toDevice: MatrixEvent[] = [];
  client.on(ClientEvent.ToDeviceEvent, (event) => toDevice.push(event));
  // Incremental syncs up to 100 events are never `limited`, so the live timeline holds every
  // message even when a burst arrives between two syncs.
  const filter = new Filter(account.userId);
  filter.setDefinition({ room: { timeline: { limit: 100 } } });
  await client.startClient({ initialSyncLimit: 20, pendingEventOrdering: PendingEventOrdering.Detached, filter });
  await waitFor(client, () => client.isInitialSyncComplete(), `${username}'s initial sync`, 90_000);
  return { client, account, toDevice };
}

function messagesOf(room: Room | null): MatrixEvent[] {
  return (room?.getLiveTimeline().getEvents() ?? []).filter((e) => e.getType() === EventType.RoomMessage);
}

// ---- the suite of test 2, for any way in ------------------------------------------------------

interface Entry {
  /** Where client A (the sender) connects. */
  a: string;
  /** Where client B (the syncing reader) connects. */
  b: string;
}

/** Where each room of `roomIds` was written: the instance of every event, from the database. */
async function writersOfRooms(cluster: ProcessCluster, roomIds: string[]): Promise<Map<string, Set<string>>> {
  const rows = await cluster.query<{ room_id: string; instance_name: string }>(
    'SELECT DISTINCT room_id, instance_name FROM events WHERE room_id = ANY($1)',
    [roomIds],
  );
  const writers = new Map<string, Set<string>>();
  for (const row of rows) {
    if (!writers.has(row.room_id)) writers.set(row.room_id, new Set());
    writers.get(row.room_id)!.add(row.instance_name);
  }
  return writers;
}

function clientSuite(name: string, prefix: string, cluster: () => ProcessCluster, entry: () => Entry) {
  describe(name, () => {
    let alice: SdkUser;
    let bob: SdkUser;
    let roomId: string;

    before(async () => {
      alice = await startSdkUser(entry().a, `${prefix}alice`);
      bob = await startSdkUser(entry().b, `${prefix}bob`);
      const created = await alice.client.createRoom({ name: `${name} room`, preset: 'public_chat' as never });
      roomId = created.room_id;
      await bob.client.joinRoom(roomId);
      await waitFor(
        alice.client,
        () => alice.client.getRoom(roomId)?.getMember(bob.account.userId)?.membership === 'join',
        'alice to see bob join',
      );
      await waitFor(bob.client, () => bob.client.getRoom(roomId)?.getMyMembership() === 'join', 'bob to see his join');
    });

    after(() => {
      alice?.client.stopClient();
      bob?.client.stopClient();
    });

    test('messages sent by A reach B, who is syncing meanwhile, in order, each exactly once', async () => {
      const collector = new MessageCollector(() => entry().b, bob.account.accessToken, roomId);
      await collector.start();
      try {
        const expected = Array.from({ length: 30 }, (_, i) => `${prefix}m${i}`);
        const sentIds: string[] = [];
        for (const body of expected) sentIds.push((await alice.client.sendMessage(roomId, { msgtype: MsgType.Text, body })).event_id);
        await waitFor(
          bob.client,
          () => messagesOf(bob.client.getRoom(roomId)).length >= expected.length,
          'bob (js-sdk) to see every message',
          60_000,
        );
        const seen = messagesOf(bob.client.getRoom(roomId));
        assert.deepEqual(
          seen.map((e) => e.getContent().body),
          expected,
        );
        assert.deepEqual(
          seen.map((e) => e.getId()),
          sentIds,
        );
        // The raw sync stream: a duplicate or a gap would show here even where the SDK dedupes.
        assert.deepEqual(await collector.waitFor(expected.length), expected);
        assert.deepEqual(collector.eventIds, sentIds);
      } finally {
        await collector.stop();
      }
    });

    test('typing, receipts and to-device messages cross workers', async () => {
      await alice.client.sendTyping(roomId, true, 20_000);
      await waitFor(
        bob.client,
        () => bob.client.getRoom(roomId)?.getMember(alice.account.userId)?.typing === true,
        'bob to see alice typing',
      );
      await alice.client.sendTyping(roomId, false, 0);
      await waitFor(
        bob.client,
        () => bob.client.getRoom(roomId)?.getMember(alice.account.userId)?.typing === false,
        'bob to see alice stop typing',
      );

      const last = messagesOf(bob.client.getRoom(roomId)).at(-1)!;
      await bob.client.sendReadReceipt(last);
      await waitFor(
        alice.client,
        () => alice.client.getRoom(roomId)?.getUsersReadUpTo(last).includes(bob.account.userId),
        'alice to see bob’s receipt',
      );

      const content = new Map([[bob.account.userId, new Map([[bob.account.deviceId, { hello: `${prefix}bob`, n: 1 }]])]]);
      await alice.client.sendToDevice('org.example.ping', content);
      const received = await waitFor(
        bob.client,
        () => bob.toDevice.find((e) => e.getType() === 'org.example.ping' && e.getContent().hello === `${prefix}bob`),
        'bob to receive the to-device message',
      );
      assert.equal(received.getSender(), alice.account.userId);
      // Delivered once: a second message arrives in a later sync, which brings no second copy.
      await alice.client.sendToDevice('org.example.pong', content);
      await waitFor(
        bob.client,
        () => bob.toDevice.find((e) => e.getType() === 'org.example.pong'),
        'bob to receive the second to-device message',
      );
      assert.equal(bob.toDevice.filter((e) => e.getType() === 'org.example.ping').length, 1);
    });

    test('a write through A’s way in is seen by an immediate read through B’s', async () => {
      const token = alice.account.accessToken;
      for (let i = 0; i < 5; i++) {
        const sent = await call(entry().a, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${prefix}ryw${i}`, token, {
          msgtype: 'm.text',
          body: `${prefix}ryw ${i}`,
        });
        assert.equal(sent.status, 200, JSON.stringify(sent.json));
        const read = await call(entry().b, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/event/${enc(sent.json.event_id)}`, token);
        assert.equal(read.status, 200, JSON.stringify(read.json));
        const messages = await call(entry().b, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=1`, token);
        assert.equal(messages.json.chunk?.[0]?.event_id, sent.json.event_id);
        const synced = await call(
          entry().b,
          'GET',
          `/_matrix/client/v3/sync?timeout=0&filter=${enc(JSON.stringify({ room: { timeline: { limit: 1 } } }))}`,
          token,
        );
        assert.equal(synced.json.rooms.join[roomId].timeline.events.at(-1).event_id, sent.json.event_id);
      }
      const topic = await call(entry().a, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.topic/`, token, {
        topic: `${prefix}topic`,
      });
      assert.equal(topic.status, 200, JSON.stringify(topic.json));
      const state = await call(entry().b, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.topic/`, token);
      assert.equal(state.json.topic, `${prefix}topic`);
      const data = await call(
        entry().a,
        'PUT',
        `/_matrix/client/v3/user/${enc(alice.account.userId)}/account_data/org.example.${prefix}`,
        token,
        { n: 7 },
      );
      assert.equal(data.status, 200, JSON.stringify(data.json));
      const readData = await call(
        entry().b,
        'GET',
        `/_matrix/client/v3/user/${enc(alice.account.userId)}/account_data/org.example.${prefix}`,
        token,
      );
      assert.deepEqual(readData.json, { n: 7 });
    });

    test('rooms land on both persisters, each room on the one its id hashes to', async () => {
      const rooms: string[] = [roomId];
      for (let i = 0; i < 6; i++) rooms.push((await alice.client.createRoom({ preset: 'private_chat' as never })).room_id);
      const writers = await writersOfRooms(cluster(), rooms);
      const used = new Set<string>();
      for (const room of rooms) {
        const expected = shardOf(room, ['persister1', 'persister2']);
        assert.deepEqual([...(writers.get(room) ?? [])], [expected], `room ${room}`);
        used.add(expected);
      }
      // With seven rooms, both persisters almost surely own one; if not, more rooms settle it.
      for (let i = 0; used.size < 2 && i < 40; i++) {
        const room = (await alice.client.createRoom({ preset: 'private_chat' as never })).room_id;
        const expected = shardOf(room, ['persister1', 'persister2']);
        assert.deepEqual([...((await writersOfRooms(cluster(), [room])).get(room) ?? [])], [expected], `room ${room}`);
        used.add(expected);
      }
      assert.deepEqual([...used].sort(), ['persister1', 'persister2']);
    });
  });
}

// ---- the file's one cluster --------------------------------------------------------------------

describe('a worker deployment as real processes, supervised by one myelin start', () => {
  let cluster: ProcessCluster;
  let nginx: NginxServer | undefined;
  let nginxUrl = '';
  let haproxy: HaproxyServer | undefined;
  let haproxyUrl = '';

  before(async () => {
    cluster = await startProcessCluster();
    const port = await freePort();
    const generated = runMyelin([
      'proxy-config',
      'nginx',
      '-c',
      cluster.configPath,
      '--listen',
      `127.0.0.1:${port}`,
      '--server-name',
      cluster.serverName,
    ]);
    assert.equal(generated.status, 0, generated.stderr);
    nginx = await startNginx(generated.stdout, port);
    nginxUrl = `http://127.0.0.1:${port}`;
    const haproxyPort = await freePort();
    const haproxyConfig = runMyelin([
      'proxy-config',
      'haproxy',
      '-c',
      cluster.configPath,
      '--listen',
      `127.0.0.1:${haproxyPort}`,
      '--server-name',
      cluster.serverName,
    ]);
    assert.equal(haproxyConfig.status, 0, haproxyConfig.stderr);
    haproxy = await startHaproxy(haproxyConfig.stdout, haproxyPort);
    haproxyUrl = `http://127.0.0.1:${haproxyPort}`;
  });

  after(async () => {
    await nginx?.stop();
    await haproxy?.stop();
    if (cluster) assert.equal(await cluster.stop(), 0, 'myelin start stops cleanly on SIGTERM');
  });

  describe('the guide’s setup (test 1)', () => {
    test('Redis listens only on its socket (mode 0770); every listener socket exists with mode 0660', () => {
      assert.equal(statSync(cluster.redis.socketPath).mode & 0o777, 0o770);
      assert.ok(statSync(cluster.redis.socketPath).isSocket());
      for (const instance of ['main', 'persister1', 'persister2', 'ephemeral']) {
        const stat = statSync(cluster.replicationSocket(instance));
        assert.ok(stat.isSocket(), instance);
        assert.equal((stat.mode & 0o777).toString(8), '660', `${instance}'s replication socket`);
      }
      for (const instance of ['main', 'generic1', 'generic2', 'ephemeral']) {
        assert.equal((statSync(cluster.clientSocket(instance)).mode & 0o777).toString(8), '660', `${instance}'s client socket`);
      }
    });

    test('every process logs the guide’s lines, in the guide’s order', () => {
      const lines = cluster.logLines();
      const server = cluster.serverName;
      for (const instance of cluster.instances) {
        const mine = lines.filter((l) => l.instance === instance).map((l) => l.msg ?? '');
        const at = (text: string) => {
          const index = mine.indexOf(text);
          assert.ok(index >= 0, `${instance} never logged "${text}":\n${mine.join('\n')}`);
          return index;
        };
        const channels = instance === 'main' ? `['${server}/USER_IP', '${server}']` : `['${server}']`;
        const connecting = at(`Connecting to redis server at ${cluster.redis.socketPath}`);
        const connected = at('Connected to redis');
        const subscribe = at(`Sending redis SUBSCRIBE for ${channels}`);
        const subscribed = at('Successfully subscribed to redis stream, sending REPLICATE command');
        const replicate = at('REPLICATE successfully sent');
        assert.ok(
          connecting < connected && connected < subscribe && subscribe < subscribed && subscribed < replicate,
          `${instance}: ${mine.join('\n')}`,
        );
        const hasReplicationListener = ['main', 'persister1', 'persister2', 'ephemeral'].includes(instance);
        assert.equal(mine.includes('Attaching to path /_synapse/replication'), hasReplicationListener, instance);
        assert.ok(mine.includes(`Myelin is serving ${server}`), instance);
      }
      // The supervisor's status line for every worker, and the "all up" line.
      const mainLines = lines.filter((l) => l.instance === 'main').map((l) => l.msg ?? '');
      for (const worker of cluster.workers) {
        assert.ok(
          mainLines.some((l) => new RegExp(`^worker ${worker}: started \\(pid \\d+\\) on unix:${cluster.run}/`).test(l)),
          `${worker}'s status line`,
        );
      }
      assert.ok(mainLines.includes(`all ${cluster.workers.length} workers are up`));
    });

    test('the workers are separate processes, children of myelin start', () => {
      const pids = new Set(cluster.workers.map((w) => cluster.pidOf(w)));
      assert.equal(pids.size, cluster.workers.length);
      assert.ok(!pids.has(cluster.supervisor.child.pid!));
      for (const pid of pids) assert.doesNotThrow(() => process.kill(pid, 0), `pid ${pid} is alive`);
    });

    test('myelin check passes on the whole deployment (PostgreSQL, Redis, five workers)', () => {
      const { status, stdout } = runMyelin(['check', '-c', cluster.configPath]);
      assert.equal(status, 0, stdout);
      const lines = stdout.split('\n').filter(Boolean);
      const expect = (pattern: RegExp) =>
        assert.ok(
          lines.some((l) => pattern.test(l)),
          `no line matching ${pattern} in:\n${stdout}`,
        );
      expect(/^✓ config: 2 file\(s\), 5 worker\(s\) in \S+\/workers$/);
      expect(
        new RegExp(
          `^✓ socket ${cluster.run}/replication\\.sock \\(main listener \\(replication\\), instance_map\\.main\\): mode 0660, owner ` +
            `\\S+, group \\S+$`,
        ),
      );
      expect(new RegExp(`^✓ Redis at ${cluster.redis.socketPath}: answers PING$`));
      expect(/^✓ Redis TCP listener: off \(port 0\)/);
      for (const instance of ['main', 'persister1', 'persister2', 'ephemeral'])
        expect(new RegExp(`^✓ replication listener of ${instance} \\(\\S+\\): answers`));
      for (const instance of cluster.instances) expect(new RegExp(`^✓ ${instance} /health on unix:\\S+: 200 OK$`));
      expect(new RegExp(`^✓ database \\(PostgreSQL ${cluster.database} .*\\): reachable, schema version \\d+ as this Myelin expects$`));
      expect(/^all \d+ checks passed$/);
    });
  });

  clientSuite(
    'test 2: A sends through generic1, B syncs through generic2',
    'direct',
    () => cluster,
    () => ({ a: cluster.baseUrl('generic1'), b: cluster.baseUrl('generic2') }),
  );
  clientSuite(
    'test 3: both through the built-in router',
    'router',
    () => cluster,
    () => ({ a: cluster.routerUrl!, b: cluster.routerUrl! }),
  );
  clientSuite(
    'test 3: both through nginx on the generated config',
    'nginx',
    () => cluster,
    () => ({ a: nginxUrl, b: nginxUrl }),
  );
  clientSuite(
    'test 3: both through haproxy on the generated config',
    'haproxy',
    () => cluster,
    () => ({ a: haproxyUrl, b: haproxyUrl }),
  );

  describe('test 5: bad replication input', () => {
    test('the replication listeners refuse a call without the secret (401) or with a wrong one (403)', async () => {
      for (const instance of ['main', 'persister1', 'persister2', 'ephemeral']) {
        const socketPath = cluster.replicationSocket(instance);
        const path = '/_synapse/replication/events.sendEvent/t1';
        const body = JSON.stringify({ args: [] });
        const missing = await request({ socketPath }, 'POST', path, { body, headers: { 'Content-Type': 'application/json' } });
        assert.equal(missing.status, 401, `${instance}: ${missing.text}`);
        assert.equal(missing.json.errcode, 'M_MISSING_TOKEN');
        const wrong = await request({ socketPath }, 'POST', path, {
          body,
          headers: { 'Content-Type': 'application/json', Authorization: 'Bearer not the secret' },
        });
        assert.equal(wrong.status, 403, `${instance}: ${wrong.text}`);
        assert.equal(wrong.json.errcode, 'M_FORBIDDEN');
      }
    });

    test('malformed lines on the Redis channel are logged and ignored by every process; none restarts', async () => {
      const pids = new Map(cluster.workers.map((w) => [w, cluster.pidOf(w)]));
      const from = cluster.logLines().length;
      const redis = new Redis({ path: cluster.redis.socketPath, lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        await redis.connect();
        for (const line of [
          'garbage',
          'POSITION events',
          'RDATA events persister1 notanumber {}',
          'RDATA events persister1 5 {not json',
          'USER_IP @a:b [1]',
        ]) {
          await redis.publish(cluster.serverName, line);
        }
      } finally {
        redis.disconnect();
      }
      for (const instance of ['main', ...cluster.workers]) {
        await cluster.waitForLog((l) => l.instance === instance && l.msg === 'Failed to parse replication line', {
          from,
          ms: 30_000,
          what: `${instance} to log the malformed line`,
        });
      }
      for (const instance of ['main', ...cluster.clientWorkers]) {
        const health = await fetch(`${cluster.baseUrl(instance)}/health`);
        assert.equal(health.status, 200, instance);
      }
      for (const [worker, pid] of pids) assert.equal(cluster.pidOf(worker), pid, `${worker} was not restarted`);
    });
  });

  describe('concurrent room creation', () => {
    test('100 creations by a user, 8 at once, via both generic workers and router: 100 rooms, each on its persister, no 5xx', async (t) => {
      const creator = await registerAccount(cluster.baseUrl('generic1'), 'bulkcreator');
      // Round robin over three ways in, so one user's creations are built by two processes at once.
      const ways = [cluster.baseUrl('generic1'), cluster.baseUrl('generic2'), cluster.routerUrl!];
      const from = cluster.logLines().length;
      const roomIds = await createRoomsConcurrently(async (i) => {
        const res = await call(ways[i % ways.length]!, 'POST', '/_matrix/client/v3/createRoom', creator.accessToken, {
          preset: 'private_chat',
          name: `bulk ${i}`,
        });
        return { ...res, text: JSON.stringify(res.json) };
      });

      const creates = await cluster.query<{ room_id: string; event_id: string }>(
        "SELECT room_id, event_id FROM events WHERE type = 'm.room.create' AND room_id = ANY($1)",
        [roomIds],
      );
      assert.equal(creates.length, roomIds.length, 'one create event per room');
      for (const row of creates) assert.equal(row.event_id, `$${row.room_id.slice(1)}`);
      const writers = await writersOfRooms(cluster, roomIds);
      const used = new Set<string>();
      for (const roomId of roomIds) {
        const expected = shardOf(roomId, ['persister1', 'persister2']);
        assert.deepEqual([...(writers.get(roomId) ?? [])], [expected], `room ${roomId}`);
        used.add(expected);
      }
      assert.deepEqual([...used].sort(), ['persister1', 'persister2']);
      const retried = cluster
        .logLines()
        .slice(from)
        .filter((l) => l.msg === 'the room id of a new room is taken; trying another create event').length;
      t.diagnostic(`creations built again after their room id was taken: ${retried}`);
    });
  });

  describe('test 4: faults, with real signals', () => {
    let sender: Account;
    let reader: Account;

    before(async () => {
      sender = await registerAccount(cluster.baseUrl('generic1'), 'faultsender');
      reader = await registerAccount(cluster.baseUrl('generic2'), 'faultreader');
    });

    async function roomFor(persister?: string): Promise<string> {
      for (let i = 0; i < 40; i++) {
        const created = await call(cluster.baseUrl('generic1'), 'POST', '/_matrix/client/v3/createRoom', sender.accessToken, {
          preset: 'public_chat',
        });
        assert.equal(created.status, 200, JSON.stringify(created.json));
        const roomId: string = created.json.room_id;
        if (persister !== undefined && shardOf(roomId, ['persister1', 'persister2']) !== persister) continue;
        const joined = await call(cluster.baseUrl('generic2'), 'POST', `/_matrix/client/v3/join/${enc(roomId)}`, reader.accessToken);
        assert.equal(joined.status, 200, JSON.stringify(joined.json));
        return roomId;
      }
      throw new Error(`no room landed on ${persister}`);
    }

    async function messageCount(roomId: string): Promise<number> {
      const [row] = await cluster.query<{ n: string }>("SELECT COUNT(*) AS n FROM events WHERE room_id = $1 AND type = 'm.room.message'", [
        roomId,
      ]);
      return Number(row!.n);
    }

    test('kill -9 of generic1 while a client sends via it: restarted; no acknowledged event lost; retries never duplicate', async () => {
      const roomId = await roomFor();
      const collector = new MessageCollector(() => cluster.baseUrl('generic2'), reader.accessToken, roomId);
      await collector.start();
      try {
        const oldPid = cluster.pidOf('generic1');
        const from = cluster.logLines().length;
        const failures = { count: 0 };
        const total = 40;
        const eventIds: string[] = [];
        let killed = false;
        for (let i = 0; i < total; i++) {
          // Fire the kill while a send is in flight: the request may or may not have been persisted.
          const send = sendWithRetries(() => cluster.baseUrl('generic1'), sender.accessToken, roomId, `kill-g-${i}`, `g${i}`, failures);
          if (i === 10) {
            await sleep(2);
            process.kill(oldPid, 'SIGKILL');
            killed = true;
          }
          eventIds.push(await send);
        }
        assert.ok(killed);
        const newPid = await cluster.waitForRestart('generic1', from);
        assert.notEqual(newPid, oldPid);
        assert.ok(failures.count > 0, 'the client saw generic1 go away and retried');
        const supervisorSaw = cluster
          .logLines()
          .slice(from)
          .map((l) => l.msg ?? '');
        assert.ok(supervisorSaw.includes('worker generic1: killed by SIGKILL; restarting in 1 s'), supervisorSaw.join('\n'));

        // The client retries a few acknowledged sends once more: the same events come back.
        for (const i of [0, 10, 11, total - 1]) {
          assert.equal(
            await sendWithRetries(() => cluster.baseUrl('generic1'), sender.accessToken, roomId, `kill-g-${i}`, `g${i}`, failures),
            eventIds[i],
          );
        }
        const expected = Array.from({ length: total }, (_, i) => `g${i}`);
        assert.equal(new Set(eventIds).size, total, 'every send is its own event');
        assert.deepEqual(await collector.waitFor(total), expected);
        assert.deepEqual(collector.eventIds, eventIds);
        assert.equal(await messageCount(roomId), total, 'nothing persisted twice');
      } finally {
        await collector.stop();
      }
    });

    test('kill -9 of an events persister: sends for its rooms wait, succeed once it is back, none lost, none twice', async () => {
      const roomId = await roomFor('persister2');
      const collector = new MessageCollector(() => cluster.baseUrl('generic2'), reader.accessToken, roomId);
      await collector.start();
      try {
        const before = await sendWithRetries(() => cluster.baseUrl('generic1'), sender.accessToken, roomId, 'kill-p-before', 'p before', {
          count: 0,
        });
        const oldPid = cluster.pidOf('persister2');
        const from = cluster.logLines().length;
        process.kill(oldPid, 'SIGKILL');
        // Sent while it is down, through both client workers; generic1 and generic2 hold them and
        // retry the persister until it is back. No client-side retry here: each request must succeed.
        const pending = Array.from({ length: 6 }, (_, i) =>
          call(
            cluster.baseUrl(i % 2 === 0 ? 'generic1' : 'generic2'),
            'PUT',
            `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/kill-p-${i}`,
            sender.accessToken,
            {
              msgtype: 'm.text',
              body: `p${i}`,
            },
          ),
        );
        const newPid = await cluster.waitForRestart('persister2', from);
        assert.notEqual(newPid, oldPid);
        const results = await Promise.all(pending);
        for (const res of results) assert.equal(res.status, 200, JSON.stringify(res.json));
        const eventIds = results.map((r) => r.json.event_id as string);
        assert.equal(new Set(eventIds).size, 6);
        // They did wait: the client workers' calls to the persister failed and were retried.
        const retried = cluster
          .logLines()
          .slice(from)
          .filter(
            (l) =>
              ['generic1', 'generic2'].includes(String(l.instance)) &&
              l.callee === 'persister2' &&
              l.msg === 'replication call failed; retrying',
          );
        assert.ok(retried.length > 0, 'a client worker retried its call to the persister');
        // Retries with the same txnIds, through either worker, return the same events.
        for (let i = 0; i < 6; i++) {
          const again = await call(
            cluster.baseUrl(i % 2 === 0 ? 'generic2' : 'generic1'),
            'PUT',
            `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/kill-p-${i}`,
            sender.accessToken,
            {
              msgtype: 'm.text',
              body: `p${i}`,
            },
          );
          assert.equal(again.json.event_id, eventIds[i], `retry of kill-p-${i}`);
        }
        const bodies = await collector.waitFor(7);
        assert.equal(bodies[0], 'p before');
        assert.deepEqual(bodies.slice(1).sort(), ['p0', 'p1', 'p2', 'p3', 'p4', 'p5']);
        assert.deepEqual([...collector.eventIds].sort(), [before, ...eventIds].sort());
        assert.equal(await messageCount(roomId), 7, 'nothing persisted twice');
        assert.deepEqual([...((await writersOfRooms(cluster, [roomId])).get(roomId) ?? [])], ['persister2']);
      } finally {
        await collector.stop();
      }
    });

    test('Redis stops for 3 s: every process reconnects and the syncing client misses nothing', async () => {
      const roomId = await roomFor();
      const collector = new MessageCollector(() => cluster.baseUrl('generic2'), reader.accessToken, roomId);
      await collector.start();
      try {
        const from = cluster.logLines().length;
        await cluster.redis.stop();
        const sent: string[] = [];
        for (let i = 0; i < 6; i++) {
          const res = await call(
            cluster.baseUrl('generic1'),
            'PUT',
            `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/redis-${i}`,
            sender.accessToken,
            { msgtype: 'm.text', body: `during ${i}` },
          );
          assert.equal(res.status, 200, JSON.stringify(res.json));
          sent.push(`during ${i}`);
          await sleep(500);
        }
        await cluster.redis.start();
        for (const instance of cluster.instances) {
          await cluster.waitForLog((l) => l.instance === instance && l.msg === 'REPLICATE successfully sent', {
            from,
            ms: 60_000,
            what: `${instance} to rejoin Redis`,
          });
        }
        const res = await call(
          cluster.baseUrl('generic1'),
          'PUT',
          `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/redis-after`,
          sender.accessToken,
          { msgtype: 'm.text', body: 'after' },
        );
        assert.equal(res.status, 200, JSON.stringify(res.json));
        assert.deepEqual(await collector.waitFor(7), [...sent, 'after']);
      } finally {
        await collector.stop();
      }
    });

    test('after the faults every process is back: myelin check passes again', () => {
      const { status, stdout } = runMyelin(['check', '-c', cluster.configPath]);
      assert.equal(status, 0, stdout);
      assert.match(stdout, /^all \d+ checks passed$/m);
    });
  });
});
