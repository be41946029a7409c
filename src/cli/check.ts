// `myelin check`: verifies what the worker guide tells admins to check by hand, one line per check
// (✓ or ✗), exit status 1 when any fails:
// - every configured socket exists, is a socket, has the configured mode (owner and group shown);
// - Redis answers PING, and, configured by socket, has its TCP listener off (`port 0`);
// - each replication listener answers a request carrying the secret and refuses one without it;
// - every HTTP listener of main and of each worker answers /health;
// - the database is reachable and at the schema version this Myelin expects;
// - the SQLite database files and the media store cannot be read by other users.

import { existsSync, lstatSync, readFileSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { Redis } from 'ioredis';
import { randomBytes } from 'node:crypto';
import { ConfigError, loadConfig } from '../config/load.js';
import type { Config } from '../config/types.js';
import { MAIN_INSTANCE, topologyOf } from '../config/roles.js';
import type { InstanceLocation, ListenerConfig } from '../config/schema.js';
import { DEFAULT_SOCKET_MODE } from '../http/listener.js';
import { rpcPath } from '../replication/rpc.js';
import { checkSchemaVersion, LATEST_SCHEMA_VERSION, pingDatabase } from '../storage/migrations.js';
import { openDatabase } from '../storage/open.js';
import { probeHealth } from '../workers/supervisor.js';
import { endpointOfListener, loadCluster, type Cluster } from '../workers/topology.js';
import { EXIT_FAILURE, EXIT_OK, parse } from './args.js';

export interface CheckResult {
  ok: boolean;
  text: string;
}

export async function checkCommand(args: string[], defaultPaths: () => string[]): Promise<number> {
  const values = parse(args, { 'config-path': { type: 'string', short: 'c', multiple: true }, workers: { type: 'string' } });
  const paths = values['config-path'] ?? defaultPaths();
  let cluster: Cluster;
  try {
    cluster = loadCluster(loadConfig(paths, { warn: () => undefined }), { workersDir: values.workers, warn: () => undefined });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const problem of err.problems) process.stdout.write(`✗ config: ${problem}\n`);
    process.stdout.write(`the configuration has ${err.problems.length} problem(s); nothing else was checked\n`);
    return EXIT_FAILURE;
  }
  const results: CheckResult[] = [
    {
      ok: true,
      text:
        `config: ${cluster.main.origin.files.length} file(s), ${cluster.workers.length} worker(s)` +
        (cluster.workersDir ? ` in ${cluster.workersDir}` : ''),
    },
  ];
  const report = (result: CheckResult) => {
    results.push(result);
    process.stdout.write(`${result.ok ? '✓' : '✗'} ${result.text}\n`);
  };
  process.stdout.write(`✓ ${results[0]!.text}\n`);
  for (const result of checkSockets(cluster)) report(result);
  for (const result of await checkRedis(cluster.main)) report(result);
  for (const result of await checkReplication(cluster)) report(result);
  for (const result of await checkHealth(cluster)) report(result);
  report(await checkDatabase(cluster.main));
  for (const result of checkDataFileModes(cluster.main)) report(result);
  const failed = results.filter((r) => !r.ok).length;
  process.stdout.write(failed === 0 ? `all ${results.length} checks passed\n` : `${failed} of ${results.length} checks failed\n`);
  return failed === 0 ? EXIT_OK : EXIT_FAILURE;
}

// ------------------------------------------------------------------------------------------------
// Sockets

interface ExpectedSocket {
  path: string;
  /** Undefined when the socket is not ours (Redis's mode is set in redis.conf). */
  mode: number | undefined;
  roles: string[];
}

function octal(mode: number): string {
  return `0${(mode & 0o777).toString(8).padStart(3, '0')}`;
}

function namesById(file: string): Map<number, string> {
  const names = new Map<number, string>();
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const [name, , id] = line.split(':');
      if (name && id !== undefined && /^\d+$/.test(id)) names.set(Number(id), name);
    }
  } catch {
    // no such database on this system: ids are shown as numbers
  }
  return names;
}

function describeListenerRole(instance: string, listener: ListenerConfig): string {
  return `${instance} listener (${listener.resources.flatMap((r) => r.names).join(', ') || 'no resources'})`;
}

export function checkSockets(cluster: Cluster): CheckResult[] {
  const sockets = new Map<string, ExpectedSocket>();
  const add = (path: string, mode: number | undefined, role: string) => {
    const entry = sockets.get(path) ?? { path, mode, roles: [] };
    entry.mode ??= mode;
    entry.roles.push(role);
    sockets.set(path, entry);
  };
  const instances: [string, readonly ListenerConfig[]][] = [
    [MAIN_INSTANCE, cluster.main.listeners],
    ...cluster.workers.map((w) => [w.name, w.config.worker_listeners] as [string, readonly ListenerConfig[]]),
  ];
  for (const [instance, listeners] of instances) {
    for (const listener of listeners) {
      if (listener.path !== undefined) add(listener.path, listener.mode ?? DEFAULT_SOCKET_MODE, describeListenerRole(instance, listener));
    }
  }
  for (const [name, location] of Object.entries(topologyOf(cluster.main).instanceMap)) {
    if (location.path !== undefined) add(location.path, undefined, `instance_map.${name}`);
  }
  if (cluster.main.redis.enabled && cluster.main.redis.path !== undefined) add(cluster.main.redis.path, undefined, 'redis.path');

  const users = namesById('/etc/passwd');
  const groups = namesById('/etc/group');
  return [...sockets.values()].map(({ path, mode, roles }) => {
    const what = `socket ${path} (${roles.join(', ')})`;
    let stat;
    try {
      stat = lstatSync(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return {
        ok: false,
        text: `${what}: ${code === 'ENOENT' ? 'does not exist (is the process that creates it running?)' : `cannot be read: ${code}`}`,
      };
    }
    if (!stat.isSocket()) return { ok: false, text: `${what}: the file exists but is not a socket` };
    const owner = `owner ${users.get(stat.uid) ?? stat.uid}, group ${groups.get(stat.gid) ?? stat.gid}`;
    const actual = stat.mode & 0o777;
    if (mode !== undefined && actual !== mode) {
      return { ok: false, text: `${what}: mode ${octal(actual)}, expected ${octal(mode)}; ${owner}` };
    }
    return { ok: true, text: `${what}: mode ${octal(actual)}, ${owner}` };
  });
}

// ------------------------------------------------------------------------------------------------
// Redis

/** What Redis answers to PING and to `CONFIG GET port` (an Error where it refused the command). */
interface RedisAnswers {
  pong: unknown;
  port: unknown;
}

/** Asks Redis over one fresh connection (no retries: a check reports what it finds). */
async function askRedis(redis: Config['redis'], timeoutMs = 3_000): Promise<RedisAnswers> {
  const client = new Redis({
    ...(redis.path !== undefined ? { path: redis.path } : { host: redis.host, port: redis.port }),
    ...(redis.password !== undefined ? { password: redis.password } : {}),
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    enableReadyCheck: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  let failure: NodeJS.ErrnoException | undefined;
  client.on('error', (err: NodeJS.ErrnoException) => (failure ??= err));
  try {
    try {
      await client.connect();
    } catch (err) {
      const cause = failure ?? (err as NodeJS.ErrnoException);
      // Redis refused us (e.g. AUTH with a wrong password): that is its answer.
      if (cause.name === 'ReplyError') return { pong: cause, port: cause };
      throw new Error(cause.code ?? cause.message);
    }
    // A refused AUTH closes the connection: what Redis said then explains the command's failure.
    const answer = (command: Promise<unknown>) =>
      command.catch((err: unknown) => failure ?? (err instanceof Error ? err : new Error(String(err))));
    return { pong: await answer(client.ping()), port: await answer(client.config('GET', 'port')) };
  } finally {
    client.disconnect();
  }
}

/** True when something accepts TCP connections at host:port. */
function tcpOpen(host: string, port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, host);
    const done = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Redis answers PING; with `redis.path`, its TCP listener is off as the guide sets it up (`port 0`).
 * Redis itself says which port it listens on (CONFIG GET port), so an unrelated service on 6379
 * is not mistaken for it; where CONFIG is disabled, 127.0.0.1:6379 is probed instead.
 */
export async function checkRedis(config: Config): Promise<CheckResult[]> {
  const { redis } = config;
  if (!redis.enabled) return [];
  const label = redis.path !== undefined ? `Redis at ${redis.path}` : `Redis at ${redis.host}:${redis.port}`;
  let answers: RedisAnswers;
  try {
    answers = await askRedis(redis);
  } catch (err) {
    return [{ ok: false, text: `${label}: not answering (${(err as Error).message})` }];
  }
  const { pong, port } = answers;
  if (pong !== 'PONG') {
    return [
      { ok: false, text: `${label}: answered PING with ${pong instanceof Error ? `an error: ${pong.message}` : JSON.stringify(pong)}` },
    ];
  }
  const results: CheckResult[] = [{ ok: true, text: `${label}: answers PING` }];
  if (redis.path === undefined) return results;
  if (Array.isArray(port) && typeof port[1] === 'string') {
    results.push(
      port[1] === '0'
        ? { ok: true, text: 'Redis TCP listener: off (port 0), so Redis is reachable only through its socket' }
        : { ok: false, text: `Redis TCP listener: Redis also listens on TCP port ${port[1]}; set \`port 0\` in redis.conf` },
    );
  } else {
    results.push(
      (await tcpOpen('127.0.0.1', 6379))
        ? {
            ok: false,
            text: 'Redis TCP listener: something listens on 127.0.0.1:6379; with `redis.path` set, disable TCP in redis.conf (`port 0`)',
          }
        : { ok: true, text: 'Redis TCP listener: nothing listens on 127.0.0.1:6379' },
    );
  }
  return results;
}

// ------------------------------------------------------------------------------------------------
// Replication

interface HttpAnswer {
  status: number;
  body: string;
}

function post(
  location: InstanceLocation,
  path: string,
  body: string,
  headers: Record<string, string>,
  timeoutMs = 3_000,
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const target = location.path !== undefined ? { socketPath: location.path } : { host: location.host, port: location.port };
    const req = request(
      {
        ...target,
        path,
        method: 'POST',
        timeout: timeoutMs,
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => reject(new Error(err.code ?? err.message)));
    req.end(body);
  });
}

const refused = (status: number) => status === 401 || status === 403;

export async function checkReplication(cluster: Cluster): Promise<CheckResult[]> {
  const secret = cluster.main.worker_replication_secret;
  const results: CheckResult[] = [];
  for (const [name, location] of Object.entries(topologyOf(cluster.main).instanceMap)) {
    const where = location.path !== undefined ? location.path : `${location.host}:${location.port}`;
    const label = `replication listener of ${name} (${where})`;
    // A call no process registers: harmless wherever it lands, and answered only after the
    // secret is checked.
    const path = rpcPath('myelin.check', randomBytes(8).toString('hex'));
    const body = JSON.stringify({ args: null });
    try {
      if (secret === undefined) {
        await post(location, path, body, {});
        results.push(
          location.path !== undefined
            ? { ok: true, text: `${label}: answers (no worker_replication_secret: only the socket's mode keeps other local users out)` }
            : { ok: false, text: `${label}: answers on TCP without any secret; set worker_replication_secret` },
        );
        continue;
      }
      const withSecret = await post(location, path, body, { authorization: `Bearer ${secret}` });
      if (refused(withSecret.status)) {
        results.push({
          ok: false,
          text:
            `${label}: refuses the configured secret (HTTP ${withSecret.status}); do all processes read the same ` +
            `worker_replication_secret?`,
        });
        continue;
      }
      const without = await post(location, path, body, {});
      if (refused(without.status)) results.push({ ok: true, text: `${label}: answers with the secret, refuses requests without it` });
      else if (without.status === withSecret.status && without.status === 404) {
        results.push({ ok: true, text: `${label}: answers (it serves no replication calls, so there is nothing to refuse)` });
      } else results.push({ ok: false, text: `${label}: accepts requests without the secret (HTTP ${without.status})` });
    } catch (err) {
      results.push({ ok: false, text: `${label}: not answering (${(err as Error).message})` });
    }
  }
  return results;
}

// ------------------------------------------------------------------------------------------------
// Health

export async function checkHealth(cluster: Cluster): Promise<CheckResult[]> {
  const instances: [string, readonly ListenerConfig[]][] = [
    [MAIN_INSTANCE, cluster.main.listeners],
    ...cluster.workers.map((w) => [w.name, w.config.worker_listeners] as [string, readonly ListenerConfig[]]),
  ];
  const probes = instances.flatMap(([instance, listeners]) =>
    listeners.flatMap((listener) => {
      if (listener.type !== 'http') return [];
      const endpoint = endpointOfListener(instance, listener);
      return endpoint ? [endpoint] : [];
    }),
  );
  return Promise.all(
    probes.map(async (endpoint) => {
      const result = await probeHealth(endpoint, 3_000);
      const label = `${endpoint.instance} /health on ${endpoint.label}`;
      return result.ok
        ? { ok: true, text: `${label}: ${result.detail}` }
        : { ok: false, text: `${label}: ${result.detail.startsWith('E') ? `not answering (${result.detail})` : result.detail}` };
    }),
  );
}

// ------------------------------------------------------------------------------------------------
// Database

function describeDatabase(config: Config): string {
  const { name, args } = config.database;
  if (name === 'sqlite3') return `SQLite ${args.database}`;
  const host = args.host ?? 'localhost';
  const database = args.dbname ?? args.database ?? '(default database)';
  return `PostgreSQL ${database} on ${host}${args.port ? `:${args.port}` : ''}${args.user ? ` as ${args.user}` : ''}`;
}

export async function checkDatabase(config: Config, timeoutMs = 10_000): Promise<CheckResult> {
  const label = `database (${describeDatabase(config)})`;
  const file = config.database.args.database;
  // Opening a missing SQLite file would create it; a check must not.
  if (config.database.name === 'sqlite3' && file !== ':memory:' && file !== undefined && !existsSync(file)) {
    return { ok: false, text: `${label}: the file does not exist (the main process creates it at its first start)` };
  }
  let timer: NodeJS.Timeout | undefined;
  const db = openDatabase(config.database);
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
    });
    try {
      await Promise.race([pingDatabase(db), timeout]);
    } catch (err) {
      return { ok: false, text: `${label}: not reachable: ${(err as Error).message}` };
    }
    await Promise.race([checkSchemaVersion(db), timeout]);
    return { ok: true, text: `${label}: reachable, schema version ${LATEST_SCHEMA_VERSION} as this Myelin expects` };
  } catch (err) {
    return { ok: false, text: `${label}: ${(err as Error).message}` };
  } finally {
    clearTimeout(timer);
    await db.close().catch(() => undefined);
  }
}

// ------------------------------------------------------------------------------------------------
// Modes of the data files

/** The permission bits a file or directory grants users other than its owner and group. */
function otherUsersMay(mode: number, isDirectory: boolean): string | undefined {
  const may = [
    mode & 0o004 ? (isDirectory ? 'list' : 'read') : '',
    mode & 0o002 ? 'write' : '',
    isDirectory && mode & 0o001 ? 'enter' : '',
  ].filter(Boolean);
  return may.length > 0 ? may.join(', ') : undefined;
}

/**
 * The SQLite database (with its -wal and -shm files) holds every message and every password and
 * token hash; the media store holds every upload. Myelin creates them readable by its user only
 * (0600 files, 0700 directories); one readable by other users on the machine is a failure.
 */
export function checkDataFileModes(config: Config): CheckResult[] {
  const results: CheckResult[] = [];
  const file = config.database.name === 'sqlite3' ? config.database.args.database : undefined;
  if (file !== undefined && file !== ':memory:' && existsSync(file)) {
    const files = [file, `${file}-wal`, `${file}-shm`]
      .filter((f) => existsSync(f))
      .map((f) => ({ path: f, mode: statSync(f).mode & 0o777 }));
    const open = files.flatMap(({ path, mode }) => {
      const may = otherUsersMay(mode, false);
      return may ? [`${path} is mode ${octal(mode)} (other users may ${may})`] : [];
    });
    results.push(
      open.length > 0
        ? { ok: false, text: `database files: ${open.join('; ')}; chmod 600 them` }
        : {
            ok: true,
            text:
              `database files (${files.map((f) => f.path).join(', ')}): ` +
              `mode ${files.map((f) => octal(f.mode)).join(', ')}, not readable by other users`,
          },
    );
  }
  const media = config.media_store_path;
  if (existsSync(media)) {
    const mode = statSync(media).mode & 0o777;
    const may = otherUsersMay(mode, true);
    results.push(
      may
        ? { ok: false, text: `media store ${media}: mode ${octal(mode)}, other users may ${may} it; chmod 700 it` }
        : { ok: true, text: `media store ${media}: mode ${octal(mode)}, not readable by other users` },
    );
  }
  return results;
}
