// Benchmark group `client`: the client-server API of a single process on SQLite, measured from
// this (separate) process over keep-alive HTTP against the real `bin/myelin start`.
//
// Accounts are created directly in the database before the server starts (hashing a thousand
// passwords would measure scrypt, not the server); everything else goes through HTTP.

import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, Pool, request as undiciRequest } from 'undici';
import YAML from 'yaml';
import { formatSigningKeyFile, generateSigningKey } from '../src/core/signing.js';
import { AuthHandler } from '../src/handlers/kernel/auth.js';
import { migrate } from '../src/storage/migrations.js';
import { SqliteDatabase } from '../src/storage/sqlite.js';
import { UsersStore } from '../src/storage/users-store.js';
import { MYELIN_BIN } from '../test/helpers/myelin.js';
import { freePort } from '../test/helpers/server-process.js';
import { tempDir } from '../test/helpers/tmp.js';
import { figure, median, percentile, type Figure } from './harness.js';

const GROUP = 'client';
const unlimited = { per_second: 1_000_000, burst_count: 1_000_000 };

interface Server {
  baseUrl: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

export interface Account {
  userId: string;
  deviceId: string;
  token: string;
}

export async function prepareServer(users: number): Promise<{ dir: string; configPath: string; accounts: Account[]; baseUrl: string }> {
  const dir = tempDir('myelin-bench-');
  const port = await freePort();
  const dbPath = join(dir, 'homeserver.db');
  writeFileSync(join(dir, 'signing.key'), formatSigningKeyFile([generateSigningKey()]));
  const configPath = join(dir, 'homeserver.yaml');
  writeFileSync(
    configPath,
    YAML.stringify({
      server_name: 'bench.local',
      signing_key_path: join(dir, 'signing.key'),
      listeners: [{ port, bind_addresses: ['127.0.0.1'], type: 'http', resources: [{ names: ['client'] }] }],
      database: { name: 'sqlite3', args: { database: dbPath } },
      rc_message: unlimited,
      rc_registration: unlimited,
      rc_login: { address: unlimited, account: unlimited, failed_attempts: unlimited },
      rc_joins: { local: unlimited, remote: unlimited },
    }),
  );
  const db = new SqliteDatabase(dbPath);
  await migrate(db);
  const store = new UsersStore(db);
  const auth = new AuthHandler(store);
  const accounts: Account[] = [];
  for (let i = 0; i < users; i++) {
    const userId = `@user${i}:bench.local`;
    await store.createUser({ userId, passwordHash: null, displayname: `User ${i}` }, Date.now());
    const session = await auth.createSession(userId);
    accounts.push({ userId, deviceId: session.deviceId, token: session.accessToken });
  }
  await db.close();
  return { dir, configPath, accounts, baseUrl: `http://127.0.0.1:${port}` };
}

export async function startServer(configPath: string, baseUrl: string): Promise<Server> {
  // MYELIN_BENCH_SERVER_NODE_ARGS (e.g. "--cpu-prof") lets a profiling run look inside the server.
  const nodeArgs = (process.env.MYELIN_BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, MYELIN_BIN, 'start', '-c', configPath], {
    env: { ...process.env, MYELIN_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      const res = await fetch(`${baseUrl}/_matrix/client/versions`);
      if (res.ok) break;
    } catch {
      // starting
    }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error('the server did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    baseUrl,
    child,
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** Resident memory of a process in MB, from /proc. */
function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round((kb / 1024) * 10) / 10;
}

export async function call(pool: Pool, method: string, path: string, token: string, body?: unknown): Promise<any> {
  const res = await pool.request({
    method,
    path,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.body.text();
  if (res.statusCode >= 400) throw new Error(`${method} ${path} → ${res.statusCode} ${text.slice(0, 200)}`);
  return text ? JSON.parse(text) : {};
}

const enc = encodeURIComponent;

async function createRoomWith(pool: Pool, owner: Account, members: Account[], name: string): Promise<string> {
  const { room_id } = await call(pool, 'POST', '/_matrix/client/v3/createRoom', owner.token, { preset: 'public_chat', name });
  for (let i = 0; i < members.length; i += 50) {
    await Promise.all(members.slice(i, i + 50).map((m) => call(pool, 'POST', `/_matrix/client/v3/join/${enc(room_id)}`, m.token)));
  }
  return room_id;
}

let txn = 0;
function send(pool: Pool, account: Account, roomId: string, body: string): Promise<any> {
  return call(pool, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/b${process.pid}-${txn++}`, account.token, {
    msgtype: 'm.text',
    body,
  });
}

/** 32 clients in 8 rooms sending as fast as they can; messages per second (median of rounds). */
async function sendThroughput(pool: Pool, accounts: Account[]): Promise<{ rate: number; rooms: string[] }> {
  const senders = accounts.slice(0, 32);
  const rooms: string[] = [];
  for (let r = 0; r < 8; r++) rooms.push(await createRoomWith(pool, senders[r * 4]!, senders.slice(r * 4 + 1, r * 4 + 4), `send ${r}`));
  const rates: number[] = [];
  for (let round = 0; round < 3; round++) {
    let sent = 0;
    const until = Date.now() + 3000;
    const start = process.hrtime.bigint();
    await Promise.all(
      senders.map(async (account, i) => {
        while (Date.now() < until) {
          await send(pool, account, rooms[Math.floor(i / 4)]!, `throughput ${sent}`);
          sent++;
        }
      }),
    );
    rates.push(sent / (Number(process.hrtime.bigint() - start) / 1e9));
  }
  return { rate: median(rates), rooms };
}

/** Sends at a fixed rate (open loop) and returns per-request latencies in ms. */
async function latencyAtRate(pool: Pool, accounts: Account[], rooms: string[], perSecond: number, seconds: number): Promise<number[]> {
  const latencies: number[] = [];
  const inFlight: Promise<void>[] = [];
  const interval = 1000 / perSecond;
  const start = performance.now();
  for (let i = 0; i < perSecond * seconds; i++) {
    const due = start + i * interval;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const account = accounts[i % 32]!;
    const room = rooms[Math.floor((i % 32) / 4)]!;
    const sentAt = performance.now();
    inFlight.push(send(pool, account, room, `latency ${i}`).then(() => void latencies.push(performance.now() - sentAt)));
  }
  await Promise.all(inFlight);
  return latencies;
}

/** 1,000 long-polling syncs in one room; time from each send's response to each sync's answer. */
async function fanOut(baseUrl: string, pool: Pool, accounts: Account[]): Promise<number[]> {
  const clients = accounts.slice(0, 1000);
  const roomId = await createRoomWith(pool, clients[0]!, clients.slice(1), 'fan-out');
  // One connection per client: each long-poll holds its own, as 1,000 separate clients would.
  const agent = new Agent({ connections: 1100, pipelining: 1, keepAliveTimeout: 120_000 });
  const filter = enc(JSON.stringify({ room: { timeline: { limit: 5 }, state: { lazy_load_members: true } }, presence: { types: [] } }));
  const tokens = new Map<string, string>();
  await Promise.all(
    clients.map(async (c) => {
      const res = await undiciRequest(`${baseUrl}/_matrix/client/v3/sync?timeout=0&filter=${filter}`, {
        headers: { authorization: `Bearer ${c.token}` },
        dispatcher: agent,
      });
      tokens.set(c.userId, ((await res.body.json()) as { next_batch: string }).next_batch);
    }),
  );
  const latencies: number[] = [];
  // Round 0 warms up (first incremental sync of each device, compiled push rules); it is not counted.
  for (let round = 0; round < 6; round++) {
    let sentAt = 0;
    const received = clients.map(async (c) => {
      for (;;) {
        const res = await undiciRequest(`${baseUrl}/_matrix/client/v3/sync?timeout=30000&since=${tokens.get(c.userId)}&filter=${filter}`, {
          headers: { authorization: `Bearer ${c.token}` },
          dispatcher: agent,
        });
        // Scanning the text instead of parsing it keeps the measuring client's own cost low: with
        // 1,000 answers arriving at once, the client's work would otherwise show in the latencies.
        const text = await res.body.text();
        tokens.set(c.userId, /"next_batch":"([^"]+)"/.exec(text)![1]!);
        if (text.includes(`"body":"fan-out ${round}"`)) {
          if (round > 0) latencies.push(performance.now() - sentAt);
          return;
        }
      }
    });
    // Let every client's long-poll reach the server before sending.
    await new Promise((r) => setTimeout(r, 1500));
    await send(pool, clients[0]!, roomId, `fan-out ${round}`);
    sentAt = performance.now();
    await Promise.all(received);
  }
  await agent.close();
  return latencies;
}

/** A user in 500 rooms of 20 messages each: the initial sync's duration (median of runs). */
async function initialSync(pool: Pool, accounts: Account[]): Promise<number> {
  const user = accounts[1]!;
  const owner = accounts[0]!;
  for (let r = 0; r < 500; r++) {
    const roomId = await createRoomWith(pool, owner, [user], `room ${r}`);
    await Promise.all(Array.from({ length: 20 }, (_, i) => send(pool, owner, roomId, `message ${i}`)));
  }
  const times: number[] = [];
  for (let run = 0; run < 5; run++) {
    const start = performance.now();
    await call(pool, 'GET', '/_matrix/client/v3/sync?timeout=0', user.token);
    times.push(performance.now() - start);
  }
  return median(times);
}

/** MYELIN_BENCH_CLIENT_PARTS (e.g. "fanout") runs only some parts, when studying one figure. */
function enabled(part: 'send' | 'fanout' | 'initial-sync'): boolean {
  const parts = process.env.MYELIN_BENCH_CLIENT_PARTS;
  return !parts || parts.split(',').includes(part);
}

export async function measureClient(): Promise<Figure[]> {
  const figures: Figure[] = [];
  const prepared = await prepareServer(1000);
  let server = await startServer(prepared.configPath, prepared.baseUrl);
  await new Promise((r) => setTimeout(r, 2000));
  figures.push(figure(GROUP, 'RSS of an idle server', rssMb(server.child.pid!), 'MB', { op: '<=', value: 100 }));
  const pool = new Pool(prepared.baseUrl, { connections: 64 });
  try {
    if (enabled('send')) {
      const { rate, rooms } = await sendThroughput(pool, prepared.accounts);
      figures.push(figure(GROUP, 'send throughput, 32 clients in 8 rooms', Math.round(rate), 'messages/s', { op: '>=', value: 2000 }));
      const latencies = await latencyAtRate(pool, prepared.accounts, rooms, 500, 6);
      figures.push(
        figure(GROUP, 'send latency p99 at 500 messages/s', Math.round(percentile(latencies, 99) * 10) / 10, 'ms', { op: '<=', value: 20 }),
      );
      figures.push(figure(GROUP, 'send latency median at 500 messages/s', Math.round(median(latencies) * 10) / 10, 'ms'));
    }
    if (enabled('fanout')) {
      const fan = await fanOut(prepared.baseUrl, pool, prepared.accounts);
      figures.push(
        figure(GROUP, 'fan-out to 1,000 long-polling syncs, p99', Math.round(percentile(fan, 99) * 10) / 10, 'ms', {
          op: '<=',
          value: 100,
        }),
      );
      figures.push(figure(GROUP, 'fan-out to 1,000 long-polling syncs, median', Math.round(median(fan) * 10) / 10, 'ms'));
      figures.push(figure(GROUP, 'RSS after the fan-out run', rssMb(server.child.pid!), 'MB'));
    }
    await pool.close();
    if (enabled('initial-sync')) {
      const syncPool = new Pool(prepared.baseUrl, { connections: 32 });
      const took = await initialSync(syncPool, prepared.accounts);
      // A fresh process for the first sync after a restart, so earlier runs' caches do not flatter it.
      await server.stop();
      server = await startServer(prepared.configPath, prepared.baseUrl);
      const cold = performance.now();
      await call(syncPool, 'GET', '/_matrix/client/v3/sync?timeout=0', prepared.accounts[1]!.token);
      const coldMs = performance.now() - cold;
      const ceiling = { op: '<=', value: 500 } as const;
      figures.push(figure(GROUP, 'initial sync, 500 rooms × 20 messages (warm, median)', Math.round(took), 'ms', ceiling));
      figures.push(figure(GROUP, 'initial sync, 500 rooms × 20 messages (first after restart)', Math.round(coldMs), 'ms'));
      await syncPool.close();
    }
  } finally {
    await server.stop();
  }
  return figures;
}
