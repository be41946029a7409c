// Benchmark group `workers`: the worker deployment of the Workers issue as real processes —
// one `bin/myelin start` supervising persister1 + persister2 + generic1 + generic2 + ephemeral
// (test/helpers/process-cluster.ts, the layout of test/workers/fixture.ts `typicalDeployment()`),
// on a real, durable PostgreSQL and a real Redis over UNIX sockets — measured from this separate
// process over keep-alive HTTP on the processes' client sockets.
//
// - Send throughput through the two client workers, with two event persisters and with one (the
//   same cluster without persister2), and their ratio. Rooms are picked so that each persister owns
//   half of them: one room is always written by one persister, so this measures what a second
//   persister adds when the load spreads, not the luck of the hash.
// - Keep-up cost: CPU% of each idle client worker (serving no requests, only following the
//   replication stream) while the cluster absorbs 40 events/s sent through main. CPU time is read
//   from /proc/<pid>/stat (utime + stime, all threads) over a fixed window.
// - Resident memory of each idle worker from /proc/<pid>/status.
//
// Accounts and access tokens are written to the database directly (hashing passwords would measure
// scrypt); rooms, joins and messages go through the cluster. Every figure is sanity-checked against
// the database: the messages stored (per persister) must be exactly the sends acknowledged.
//
// Environment: MYELIN_BENCH_WORKERS_NODE_OPTIONS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof")
// is given to main and every worker as NODE_OPTIONS, to profile them; MYELIN_BENCH_WORKERS_WINDOW_S
// sets the keep-up window (default 30 s); MYELIN_BENCH_WORKERS_PARTS ("throughput", "keepup")
// runs only some parts.

import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Pool } from 'undici';
import { AuthHandler } from '../src/handlers/kernel/auth.js';
import { PostgresDatabase } from '../src/storage/postgres.js';
import { UsersStore } from '../src/storage/users-store.js';
import { shardOf } from '../src/process/placement.js';
import { startPostgres, type PostgresServer } from '../test/harness/postgres.js';
import { startProcessCluster, type ProcessCluster } from '../test/helpers/process-cluster.js';
import { call } from './client.js';
import { figure, median, type Figure } from './harness.js';

const GROUP = 'workers';
const SERVER_NAME = 'matrix.example.com';
/** The same rooms count for every cluster size, split evenly over the persisters. */
const ROOMS = 32;
const SENDERS_PER_ROOM = 2;
const KEEP_UP_RATE = 40;
const CORES = availableParallelism();
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

interface Account {
  userId: string;
  token: string;
}

interface BenchCluster {
  cluster: ProcessCluster;
  persisters: string[];
  /** Process ids by instance name (`main` and every worker). */
  pids: Map<string, number>;
  /** A keep-alive pool on an instance's client socket. */
  pool(name: 'main' | 'generic1' | 'generic2', connections?: number): Pool;
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// The cluster

/**
 * test/helpers/process-cluster.ts's deployment (one `myelin start` supervising the workers) with
 * 1 or 2 persisters, on the given (durable) PostgreSQL, and `users` accounts with access tokens,
 * written to the database directly.
 */
async function startBenchCluster(
  pg: PostgresServer,
  persisterCount: 1 | 2,
  users: number,
): Promise<{ bench: BenchCluster; accounts: Account[] }> {
  const nodeOptions = process.env.MYELIN_BENCH_WORKERS_NODE_OPTIONS;
  const cluster = await startProcessCluster({
    serverName: SERVER_NAME,
    persisters: persisterCount,
    postgres: pg,
    // The guide's log lines (and the supervisor's status lines with the pids) are at info.
    logLevel: 'info',
    ...(nodeOptions ? { env: { NODE_OPTIONS: nodeOptions } } : {}),
  });
  const accounts: Account[] = [];
  const db = new PostgresDatabase({ host: pg.socketDir, user: pg.user, database: cluster.database });
  try {
    const store = new UsersStore(db);
    const auth = new AuthHandler(store);
    for (let i = 0; i < users; i++) {
      const userId = `@user${i}:${SERVER_NAME}`;
      await store.createUser({ userId, passwordHash: null, displayname: `User ${i}` }, Date.now());
      accounts.push({ userId, token: (await auth.createSession(userId)).accessToken });
    }
  } finally {
    await db.close();
  }
  const pids = new Map<string, number>([['main', cluster.supervisor.child.pid!]]);
  for (const worker of cluster.workers) pids.set(worker, cluster.pidOf(worker));
  process.stderr.write(`bench workers: ${[...pids].map(([name, pid]) => `${name} pid ${pid}`).join(', ')}\n`);
  const pools: Pool[] = [];
  const bench: BenchCluster = {
    cluster,
    persisters: cluster.workers.filter((w) => w.startsWith('persister')),
    pids,
    pool(name, connections = 64) {
      const pool = new Pool('http://localhost', { socketPath: cluster.clientSocket(name), connections, keepAliveTimeout: 60_000 });
      pools.push(pool);
      return pool;
    },
    async stop() {
      await Promise.all(pools.map((p) => p.close()));
      await cluster.stop();
    },
  };
  return { bench, accounts };
}

// ---------------------------------------------------------------------------------------------
// Measuring processes

/** CPU time (user + system, all threads) of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the command: state(0) ppid(1) … utime(11) stime(12), i.e. fields 14 and 15 of stat(5).
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** CPU seconds per thread name (`comm`), split into user and system time, of a process's threads. */
function threadCpu(pid: number): Map<string, { user: number; system: number }> {
  const byName = new Map<string, { user: number; system: number }>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // Node names most of its threads "node"; the main thread is the one whose id is the pid's.
      const name = Number(tid) === pid ? 'main-thread' : readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const entry = byName.get(name) ?? { user: 0, system: 0 };
      entry.user += Number(fields[11]) / CLK_TCK;
      entry.system += Number(fields[12]) / CLK_TCK;
      byName.set(name, entry);
    } catch {
      // the thread ended
    }
  }
  return byName;
}

/** "name user+system" of each thread group's CPU between two `threadCpu` readings. */
function describeThreadCpu(
  before: Map<string, { user: number; system: number }>,
  after: Map<string, { user: number; system: number }>,
): string {
  return [...after]
    .map(([name, t]) => ({ name, user: t.user - (before.get(name)?.user ?? 0), system: t.system - (before.get(name)?.system ?? 0) }))
    .filter((t) => t.user + t.system > 0)
    .sort((a, b) => b.user + b.system - (a.user + a.system))
    .map((t) => `${t.name} ${t.user.toFixed(2)}u+${t.system.toFixed(2)}s`)
    .join(', ');
}

/** Resident memory of a process in MB. */
function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round((kb / 1024) * 10) / 10;
}

/** A process's private memory (RssAnon) and its proportional share of all its pages (Pss), in MB. */
function privateMemoryMb(pid: number): { anon: number; pss: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const mb = (kb: string | undefined) => Math.round((Number(kb ?? 0) / 1024) * 10) / 10;
  return { anon: mb(/RssAnon:\s+(\d+)/.exec(status)?.[1]), pss: mb(/^Pss:\s+(\d+)/m.exec(rollup)?.[1]) };
}

/** The PostgreSQL server's processes (postmaster and backends), found by its data directory. */
function postgresPids(pg: PostgresServer): number[] {
  const dataDir = `${pg.socketDir}/data`;
  const processes: { pid: number; ppid: number; args: string[] }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      processes.push({ pid: Number(entry), ppid, args: readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0') });
    } catch {
      // the process ended while we looked
    }
  }
  const postmaster = processes.find((p) => p.args.includes(dataDir));
  if (!postmaster) return [];
  return [postmaster.pid, ...processes.filter((p) => p.ppid === postmaster.pid).map((p) => p.pid)];
}

/** CPU seconds of each process now (processes that are gone are left out). */
function cpuSnapshot(pids: Iterable<number>): Map<number, number> {
  const snapshot = new Map<number, number>();
  for (const pid of pids) {
    try {
      snapshot.set(pid, cpuSeconds(pid));
    } catch {
      // gone
    }
  }
  return snapshot;
}

/** CPU seconds used between two snapshots by the processes present in both. */
function cpuUsed(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, seconds] of after) total += seconds - (before.get(pid) ?? seconds);
  return total;
}

// ---------------------------------------------------------------------------------------------
// Client traffic

const enc = encodeURIComponent;
let txn = 0;

function send(pool: Pool, account: Account, roomId: string, body: string): Promise<{ event_id: string }> {
  return call(pool, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/w${process.pid}-${txn++}`, account.token, {
    msgtype: 'm.text',
    body,
  });
}

interface Room {
  roomId: string;
  senders: Account[];
  persister: string;
}

/**
 * ROOMS rooms with SENDERS_PER_ROOM senders each, the same number on every persister: rooms are
 * created (through a client worker) until each persister owns its share; the extra ones stay unused.
 */
async function createRooms(pool: Pool, accounts: Account[], persisters: string[]): Promise<Room[]> {
  const rooms: Room[] = [];
  const perPersister = new Map(persisters.map((p) => [p, 0]));
  let next = 0;
  let created = 0;
  const share = ROOMS / persisters.length;
  while (rooms.length < ROOMS) {
    if (created++ > ROOMS * 4) throw new Error('room ids do not spread over the persisters');
    const owner = accounts[next]!;
    const { room_id: roomId } = (await call(pool, 'POST', '/_matrix/client/v3/createRoom', owner.token, {
      preset: 'public_chat',
      name: `bench ${created}`,
    })) as { room_id: string };
    const persister = shardOf(roomId, persisters);
    if (perPersister.get(persister)! >= share) continue;
    perPersister.set(persister, perPersister.get(persister)! + 1);
    const senders = accounts.slice(next, next + SENDERS_PER_ROOM);
    next += SENDERS_PER_ROOM;
    await Promise.all(senders.slice(1).map((m) => call(pool, 'POST', `/_matrix/client/v3/join/${enc(roomId)}`, m.token)));
    rooms.push({ roomId, senders, persister });
  }
  return rooms;
}

/** Counts acknowledged sends, per persister, for the database check. */
class Acks {
  readonly byPersister = new Map<string, number>();
  add(room: Room): void {
    this.byPersister.set(room.persister, (this.byPersister.get(room.persister) ?? 0) + 1);
  }
  get total(): number {
    return [...this.byPersister.values()].reduce((a, b) => a + b, 0);
  }
}

interface ThroughputRun {
  /** Messages per second of each measured round. */
  rates: number[];
  /** Messages sent in the measured rounds. */
  messages: number;
  /** CPU seconds used in the measured rounds by Myelin's processes, and by PostgreSQL's. */
  myelinCpu: number;
  postgresCpu: number;
  /** CPU seconds of each Myelin process (by pid) in the measured rounds. */
  byPid: Map<number, number>;
}

/**
 * Every sender sends as fast as it can (closed loop), each through one of the client workers
 * (alternating, so each room is written through both); messages per second of each round, and the
 * CPU time every process of the cluster used for them: on a shared machine the rate depends on
 * what else runs, the CPU per message much less.
 */
async function sendThroughput(
  pools: Pool[],
  rooms: Room[],
  acks: Acks,
  processes: { myelin: number[]; postgres: () => number[] },
  { rounds = 3, seconds = 5 } = {},
): Promise<ThroughputRun> {
  const senders = rooms.flatMap((room) => room.senders.map((account) => ({ room, account })));
  const round = async (ms: number) => {
    let sent = 0;
    const until = Date.now() + ms;
    const start = process.hrtime.bigint();
    await Promise.all(
      senders.map(async ({ room, account }, i) => {
        while (Date.now() < until) {
          await send(pools[i % pools.length]!, account, room.roomId, `throughput ${sent}`);
          acks.add(room);
          sent++;
        }
      }),
    );
    return { sent, rate: sent / (Number(process.hrtime.bigint() - start) / 1e9) };
  };
  await round(2000); // warm-up: JIT, caches, connections
  const rates: number[] = [];
  let messages = 0;
  const myelinBefore = cpuSnapshot(processes.myelin);
  const postgresBefore = cpuSnapshot(processes.postgres());
  for (let r = 0; r < rounds; r++) {
    const { sent, rate } = await round(seconds * 1000);
    rates.push(rate);
    messages += sent;
  }
  const myelinAfter = cpuSnapshot(processes.myelin);
  return {
    rates,
    messages,
    myelinCpu: cpuUsed(myelinBefore, myelinAfter),
    byPid: new Map([...myelinAfter].map(([pid, cpu]) => [pid, cpu - (myelinBefore.get(pid) ?? cpu)])),
    postgresCpu: cpuUsed(postgresBefore, cpuSnapshot(processes.postgres())),
  };
}

/** Sends `perSecond` messages a second (open loop) through `pool` for `seconds`, over every room and sender. */
async function sendAtRate(pool: Pool, rooms: Room[], acks: Acks, perSecond: number, seconds: number): Promise<void> {
  const senders = rooms.flatMap((room) => room.senders.map((account) => ({ room, account })));
  const inFlight: Promise<void>[] = [];
  const interval = 1000 / perSecond;
  const start = performance.now();
  for (let i = 0; i < perSecond * seconds; i++) {
    const wait = start + i * interval - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const { room, account } = senders[i % senders.length]!;
    inFlight.push(send(pool, account, room.roomId, `keep-up ${i}`).then(() => acks.add(room)));
  }
  await Promise.all(inFlight);
}

/** Messages stored per persister (`events.instance_name`). */
async function storedMessages(cluster: ProcessCluster): Promise<Map<string, number>> {
  const rows = await cluster.query<{ instance_name: string; n: string }>(
    `SELECT instance_name, COUNT(*) AS n FROM events WHERE type = 'm.room.message' GROUP BY instance_name`,
  );
  return new Map(rows.map((r) => [r.instance_name, Number(r.n)]));
}

/** Compares the database with the acknowledged sends; the absolute difference (0 when all is well). */
async function checkStored(bench: BenchCluster, acks: Acks, label: string): Promise<number> {
  const stored = await storedMessages(bench.cluster);
  const storedTotal = [...stored.values()].reduce((a, b) => a + b, 0);
  const split = bench.persisters.map((p) => `${p} ${stored.get(p) ?? 0} stored / ${acks.byPersister.get(p) ?? 0} acknowledged`).join(', ');
  process.stderr.write(`bench workers (${label}): messages ${storedTotal} stored / ${acks.total} acknowledged (${split})\n`);
  let difference = Math.abs(storedTotal - acks.total);
  for (const p of bench.persisters) difference = Math.max(difference, Math.abs((stored.get(p) ?? 0) - (acks.byPersister.get(p) ?? 0)));
  return difference;
}

function enabled(part: 'throughput' | 'keepup'): boolean {
  const parts = process.env.MYELIN_BENCH_WORKERS_PARTS;
  return !parts || parts.split(',').includes(part);
}

const round1 = (n: number) => Math.round(n * 10) / 10;
const round2 = (n: number) => Math.round(n * 100) / 100;

// ---------------------------------------------------------------------------------------------

export async function measureWorkers(): Promise<Figure[]> {
  const figures: Figure[] = [];
  const users = ROOMS * SENDERS_PER_ROOM;
  const window = Number(process.env.MYELIN_BENCH_WORKERS_WINDOW_S ?? 30);
  const pg = await startPostgres({ durable: true });
  const rates = new Map<number, number>();
  const cpuPerMessage = new Map<number, number>();
  try {
    for (const persisterCount of [2, 1] as const) {
      if (persisterCount === 1 && !enabled('throughput')) break;
      const { bench, accounts } = await startBenchCluster(pg, persisterCount, users);
      const label = `${persisterCount} event persister${persisterCount === 2 ? 's' : ''}`;
      try {
        const acks = new Acks();
        if (persisterCount === 2) {
          // Idle: started, nothing asked of it yet; a few seconds for start-up work to settle.
          await new Promise((r) => setTimeout(r, 5000));
          const privateMemory: { name: string; anon: number; pss: number }[] = [];
          for (const [name, pid] of bench.pids) {
            if (name === 'main') {
              figures.push(figure(GROUP, 'RSS of main, idle', rssMb(pid), 'MB'));
              continue;
            }
            figures.push(figure(GROUP, `RSS of idle worker ${name}`, rssMb(pid), 'MB', { op: '<=', value: 70 }));
            privateMemory.push({ name, ...privateMemoryMb(pid) });
          }
          // RSS counts the node binary's pages that every process shares; these say what one more
          // worker costs.
          const most = (key: 'anon' | 'pss') => privateMemory.reduce((a, b) => (b[key] > a[key] ? b : a));
          process.stderr.write(
            `bench workers: idle workers' RssAnon/Pss MB: ${privateMemory.map((m) => `${m.name} ${m.anon}/${m.pss}`).join(', ')}\n`,
          );
          figures.push(figure(GROUP, 'largest private memory (RssAnon) of an idle worker', most('anon').anon, 'MB'));
          figures.push(figure(GROUP, 'largest proportional memory (Pss) of an idle worker', most('pss').pss, 'MB'));
        }
        const setup = bench.pool('generic1', 16);
        const rooms = await createRooms(setup, accounts, bench.persisters);

        if (persisterCount === 2 && enabled('keepup')) {
          // The senders use main; generic1 and generic2 serve nothing and only follow the streams.
          const viaMain = bench.pool('main', 16);
          await sendAtRate(viaMain, rooms, acks, KEEP_UP_RATE, 5); // warm-up
          // The same workers with no traffic at all: what the keep-up figure would be without events.
          const quietSeconds = 10;
          const quietBefore = new Map(['generic1', 'generic2'].map((n) => [n, cpuSeconds(bench.pids.get(n)!)]));
          const quietStart = process.hrtime.bigint();
          await new Promise((r) => setTimeout(r, quietSeconds * 1000));
          const quietElapsed = Number(process.hrtime.bigint() - quietStart) / 1e9;
          for (const [name, cpu] of quietBefore) {
            const percent = ((cpuSeconds(bench.pids.get(name)!) - cpu) / quietElapsed) * 100;
            figures.push(figure(GROUP, `CPU of idle client worker ${name} with no traffic`, round2(percent), '% of a core'));
          }
          const names = [...bench.pids.keys()];
          const before = new Map(names.map((n) => [n, cpuSeconds(bench.pids.get(n)!)]));
          const threadsBefore = new Map(names.map((n) => [n, threadCpu(bench.pids.get(n)!)]));
          const start = process.hrtime.bigint();
          await sendAtRate(viaMain, rooms, acks, KEEP_UP_RATE, window);
          const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
          for (const name of names) {
            process.stderr.write(
              `bench workers: keep-up CPU of ${name} by thread: ` +
                `${describeThreadCpu(threadsBefore.get(name)!, threadCpu(bench.pids.get(name)!))}\n`,
            );
          }
          for (const name of names) {
            const percent = ((cpuSeconds(bench.pids.get(name)!) - before.get(name)!) / elapsed) * 100;
            if (name === 'generic1' || name === 'generic2') {
              figures.push(
                figure(
                  GROUP,
                  `CPU of idle client worker ${name} while absorbing ${KEEP_UP_RATE} events/s`,
                  round2(percent),
                  '% of a core',
                  { op: '<=', value: 2 },
                ),
              );
            } else {
              figures.push(figure(GROUP, `CPU of ${name} at ${KEEP_UP_RATE} events/s (sent via main)`, round1(percent), '% of a core'));
            }
          }
          for (const name of ['generic1', 'generic2']) {
            figures.push(
              figure(GROUP, `RSS of idle worker ${name} after the keep-up run`, rssMb(bench.pids.get(name)!), 'MB', {
                op: '<=',
                value: 70,
              }),
            );
          }
        }

        if (enabled('throughput')) {
          const pools = [bench.pool('generic1'), bench.pool('generic2')];
          const run = await sendThroughput(pools, rooms, acks, { myelin: [...bench.pids.values()], postgres: () => postgresPids(pg) });
          process.stderr.write(
            `bench workers (${label}): send rounds ${run.rates.map((r) => Math.round(r)).join(', ')} messages/s; ` +
              `CPU ${run.myelinCpu.toFixed(1)} s Myelin + ${run.postgresCpu.toFixed(1)} s PostgreSQL for ${run.messages} messages\n`,
          );
          const byInstance = [...bench.pids].map(
            ([name, pid]) => `${name} ${(((run.byPid.get(pid) ?? 0) * 1000) / run.messages).toFixed(2)}`,
          );
          process.stderr.write(`bench workers (${label}): CPU ms per message by process: ${byInstance.join(', ')}\n`);
          const rate = median(run.rates);
          rates.set(persisterCount, rate);
          figures.push(
            figure(
              GROUP,
              `send throughput, ${label}, ${rooms.length} rooms × ${SENDERS_PER_ROOM} senders via generic1+generic2`,
              Math.round(rate),
              'messages/s',
            ),
          );
          const perMessage = (cpu: number) => round2((cpu * 1000) / run.messages);
          figures.push(figure(GROUP, `CPU per message sent, all Myelin processes, ${label}`, perMessage(run.myelinCpu), 'ms'));
          figures.push(figure(GROUP, `CPU per message sent, PostgreSQL, ${label}`, perMessage(run.postgresCpu), 'ms'));
          cpuPerMessage.set(persisterCount, (run.myelinCpu + run.postgresCpu) / run.messages);
        }
        const difference = await checkStored(bench, acks, label);
        figures.push(
          figure(GROUP, `messages stored ≠ acknowledged (per persister), ${label}`, difference, 'messages', { op: '<=', value: 0 }),
        );
      } finally {
        await bench.stop();
      }
    }
    if (cpuPerMessage.has(1) && cpuPerMessage.has(2)) {
      // What each message costs the whole machine: the send rate that CORES cores could carry if
      // nothing else ran, which the measured rates approach only on a quiet machine.
      for (const count of [2, 1]) {
        const label = `${count} event persister${count === 2 ? 's' : ''}`;
        figures.push(
          figure(
            GROUP,
            `send rate ${CORES} free cores could carry (Myelin + PostgreSQL CPU per message), ${label}`,
            Math.round(CORES / cpuPerMessage.get(count)!),
            'messages/s',
          ),
        );
      }
    }
    if (rates.has(1) && rates.has(2)) {
      figures.push(
        figure(
          GROUP,
          `send throughput ratio, 2 vs 1 event persisters (target assumes ≥ 2 free cores; this machine has ${CORES} in all)`,
          round2(rates.get(2)! / rates.get(1)!),
          '×',
          {
            op: '>=',
            value: 1.7,
          },
        ),
      );
    }
  } finally {
    await pg.stop();
  }
  return figures;
}
