// A worker deployment as real processes, as an admin runs it: a real PostgreSQL and a real Redis
// (`port 0`, a UNIX socket with `unixsocketperm 770`), the seed guide's files on disk
// (homeserver.yaml, conf.d/redis.yaml, one file per worker in workers/, every socket in run/),
// and ONE `myelin start` child process that runs main and supervises every worker.
//
// Client-facing processes (main, the generic workers, the ephemeral-streams writer) also get a TCP
// listener, so a client library (which speaks HTTP to a base URL) can be pointed at one process;
// main can get a TCP `router` listener (the built-in router). Used by test/workers/processes.test.ts
// and the workers benchmark.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import YAML from 'yaml';
import { formatSigningKeyFile, generateSigningKey } from '../../src/core/signing.js';
import { testPostgres, type PostgresServer } from '../harness/postgres.js';
import { startRedis, type RedisServer } from '../harness/redis.js';
import { GENEROUS_RATE_LIMITS } from './homeserver.js';
import { spawnMyelin, type MyelinProcess } from './myelin.js';
import { freePort } from './server-process.js';
import { tempDir, writeFiles } from './tmp.js';

type Yaml = Record<string, unknown>;

export interface ProcessClusterOptions {
  /** Default `matrix.example.com`, the guide's. */
  serverName?: string;
  /** Event persisters `persister1..N` (stream_writers.events); 0: main writes events. Default 2. */
  persisters?: number;
  /** Client workers `generic1..N`. Default 2. */
  generic?: number;
  /** A worker `ephemeral` writing typing, to_device, account_data and receipts. Default true. */
  ephemeral?: boolean;
  /** A TCP listener with the `router` resource on main. Default true. */
  router?: boolean;
  /** The router listener's port (default: a free one), e.g. for a TLS terminator set up first. */
  routerPort?: number;
  /** Workers `federation_sender_instances` lists (no listeners); the list is set in homeserver.yaml. Default none. */
  federationSenders?: string[];
  /** The resources of main's client listeners. Default `client` and `federation`. */
  mainResources?: string[];
  /** The PostgreSQL server (a new database is created on it); default: the test run's. */
  postgres?: PostgresServer;
  /** MYELIN_LOG_LEVEL of every process. Default `info` (the guide's log lines are at info). */
  logLevel?: string;
  /** More keys for homeserver.yaml (they replace the defaults). */
  mainConfig?: Yaml;
  /** How long to wait for main and every worker to be up. Default 240 s (a first start compiles). */
  startTimeoutMs?: number;
  /** More environment for `myelin start` and so every worker (e.g. NODE_OPTIONS to profile). */
  env?: NodeJS.ProcessEnv;
}

export interface LogLine {
  instance?: string;
  name?: string;
  msg?: string;
  level?: number;
  [key: string]: unknown;
}

export interface ProcessCluster {
  dir: string;
  /** The socket directory. */
  run: string;
  configPath: string;
  serverName: string;
  redis: RedisServer;
  postgres: PostgresServer;
  /** The database every process shares. */
  database: string;
  /** The `myelin start` process (main + supervisor); every worker's output is in its output. */
  supervisor: MyelinProcess;
  /** 'main' and every worker, in start order. */
  instances: string[];
  workers: string[];
  /** Workers that serve the client API (generic workers, the ephemeral writer). */
  clientWorkers: string[];
  /** `http://127.0.0.1:PORT` of an instance's TCP client listener (main, generic*, ephemeral). */
  baseUrl(instance: string): string;
  /** The built-in router's base URL (when `router` is on). */
  routerUrl: string | undefined;
  /** The UNIX socket of an instance's client listener (main, generic*, ephemeral). */
  clientSocket(instance: string): string;
  /** The replication socket of an instance (main, persisters, ephemeral). */
  replicationSocket(instance: string): string;
  /** The JSON log lines printed so far (by main, the supervisor and every worker). */
  logLines(): LogLine[];
  /** Resolves with the first log line from index `from` on that `match` accepts. */
  waitForLog(
    match: (line: LogLine) => boolean,
    options?: { from?: number; ms?: number; what?: string },
  ): Promise<{ line: LogLine; index: number }>;
  /** A worker's pid as its latest supervisor status line ("started/restarted (pid N)") says. */
  pidOf(worker: string): number;
  /** Waits for the supervisor's "worker NAME: restarted (pid N)" line after log index `from`. */
  waitForRestart(worker: string, from: number, ms?: number): Promise<number>;
  /** A query on the shared database. */
  query<T extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<T[]>;
  /** SIGTERM to `myelin start` (workers first, then main); Redis stopped. Returns main's exit status. */
  stop(): Promise<number | null>;
}

const CLIENT_RESOURCES = ['client', 'federation'];

function socketListener(path: string, names: string[], extra: Yaml = {}): Yaml {
  return { type: 'http', path, mode: '0660', resources: [{ names }], ...extra };
}

function tcpListener(port: number, names: string[]): Yaml {
  return { type: 'http', port, bind_addresses: ['127.0.0.1'], x_forwarded: false, resources: [{ names }] };
}

function parseLines(output: string): LogLine[] {
  const lines: LogLine[] = [];
  for (const text of output.split('\n')) {
    if (!text.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(text) as LogLine);
    } catch {
      // a line cut by a concurrent write of another process: not a log line we look for
    }
  }
  return lines;
}

export async function startProcessCluster(options: ProcessClusterOptions = {}): Promise<ProcessCluster> {
  const serverName = options.serverName ?? 'matrix.example.com';
  const persisters = Array.from({ length: options.persisters ?? 2 }, (_, i) => `persister${i + 1}`);
  const generic = Array.from({ length: options.generic ?? 2 }, (_, i) => `generic${i + 1}`);
  const ephemeral = options.ephemeral ?? true;
  const senders = options.federationSenders ?? [];
  const workers = [...generic, ...persisters, ...(ephemeral ? ['ephemeral'] : []), ...senders];
  const clientWorkers = [...generic, ...(ephemeral ? ['ephemeral'] : [])];

  const postgres = options.postgres ?? (await testPostgres());
  const database = await postgres.createDatabase('proc_cluster');
  const redis = await startRedis();

  const dir = tempDir('myelin-proc-cluster-');
  const run = join(dir, 'run');
  const clientSocket = (instance: string) => join(run, `${instance}.sock`);
  const replicationSocket = (instance: string) => join(run, instance === 'main' ? 'replication.sock' : `${instance}-replication.sock`);

  const ports = new Map<string, number>();
  for (const instance of ['main', ...clientWorkers]) ports.set(instance, await freePort());
  const routerPort = options.router === false ? undefined : (options.routerPort ?? (await freePort()));
  const mainResources = options.mainResources ?? CLIENT_RESOURCES;

  const instanceMap: Yaml = { main: { path: replicationSocket('main') } };
  for (const name of [...persisters, ...(ephemeral ? ['ephemeral'] : [])]) instanceMap[name] = { path: replicationSocket(name) };
  const streamWriters: Yaml = {};
  if (persisters.length > 0) streamWriters.events = persisters;
  if (ephemeral)
    Object.assign(streamWriters, { typing: 'ephemeral', to_device: 'ephemeral', account_data: 'ephemeral', receipts: 'ephemeral' });

  const main: Yaml = {
    server_name: serverName,
    public_baseurl: `https://${serverName}/`,
    signing_key_path: join(dir, `${serverName}.signing.key`),
    database: { name: 'psycopg2', args: { user: postgres.user, dbname: database, host: postgres.socketDir } },
    listeners: [
      ...(routerPort === undefined ? [] : [tcpListener(routerPort, ['router'])]),
      socketListener(clientSocket('main'), mainResources, { x_forwarded: true }),
      tcpListener(ports.get('main')!, mainResources),
      socketListener(replicationSocket('main'), ['replication']),
    ],
    worker_replication_secret_path: join(dir, 'replication.secret'),
    instance_map: instanceMap,
    stream_writers: streamWriters,
    registration_shared_secret: 'process-cluster-shared-secret',
    enable_registration: true,
    enable_registration_without_verification: true,
    ...GENEROUS_RATE_LIMITS,
    ...(senders.length > 0 ? { federation_sender_instances: senders } : {}),
    ...options.mainConfig,
  };
  const files: Record<string, string> = {
    'homeserver.yaml': YAML.stringify(main),
    'conf.d/redis.yaml': YAML.stringify({ redis: { enabled: true, path: redis.socketPath } }),
    // With spaces and a final newline, as a hand-written secret file may have.
    'replication.secret': 'a replication secret for the process cluster\n',
    [`${serverName}.signing.key`]: formatSigningKeyFile([generateSigningKey()]),
  };
  const workerFile = (name: string, listeners: Yaml[]) =>
    YAML.stringify({ worker_app: 'synapse.app.generic_worker', worker_name: name, worker_listeners: listeners });
  for (const name of generic) {
    files[`workers/${name}.yaml`] = workerFile(name, [
      socketListener(clientSocket(name), CLIENT_RESOURCES, { x_forwarded: true }),
      tcpListener(ports.get(name)!, CLIENT_RESOURCES),
    ]);
  }
  for (const name of persisters)
    files[`workers/${name}.yaml`] = workerFile(name, [socketListener(replicationSocket(name), ['replication'])]);
  if (ephemeral) {
    files['workers/ephemeral.yaml'] = workerFile('ephemeral', [
      socketListener(replicationSocket('ephemeral'), ['replication']),
      socketListener(clientSocket('ephemeral'), ['client'], { x_forwarded: true }),
      tcpListener(ports.get('ephemeral')!, ['client']),
    ]);
  }
  for (const name of senders) files[`workers/${name}.yaml`] = workerFile(name, []);
  writeFiles(dir, files);
  mkdirSync(run); // the socket directory must exist before anything starts

  const configPath = join(dir, 'homeserver.yaml');
  const supervisor = spawnMyelin(['start', '-c', configPath], { env: { MYELIN_LOG_LEVEL: options.logLevel ?? 'info', ...options.env } });
  const pool = new pg.Pool({ host: postgres.socketDir, user: postgres.user, database, max: 2 });
  // Tests may stop PostgreSQL: an idle connection it closes must not crash the test process.
  pool.on('error', () => undefined);

  let parsedUpTo = 0;
  let parsed: LogLine[] = [];
  const logLines = () => {
    const output = supervisor.output();
    const end = output.lastIndexOf('\n') + 1;
    if (end > parsedUpTo) {
      parsed = parsed.concat(parseLines(output.slice(parsedUpTo, end)));
      parsedUpTo = end;
    }
    return parsed;
  };

  const waitForLog: ProcessCluster['waitForLog'] = (match, { from = 0, ms = 60_000, what = 'a log line' } = {}) =>
    new Promise((resolve, reject) => {
      const deadline = Date.now() + ms;
      const poll = () => {
        const lines = logLines();
        for (let i = from; i < lines.length; i++) {
          if (match(lines[i]!)) return resolve({ line: lines[i]!, index: i });
        }
        if (supervisor.child.exitCode !== null || supervisor.child.signalCode !== null) {
          return reject(
            new Error(
              `myelin start exited (${supervisor.child.exitCode ?? supervisor.child.signalCode}) before ${what}:\n` +
                `${tail(supervisor.output())}`,
            ),
          );
        }
        if (Date.now() > deadline) return reject(new Error(`timed out after ${ms} ms waiting for ${what}:\n${tail(supervisor.output())}`));
        setTimeout(poll, 50);
      };
      poll();
    });

  const status = (worker: string) => new RegExp(`^worker ${worker}: (started|restarted) \\(pid (\\d+)\\)`);
  const cluster: ProcessCluster = {
    dir,
    run,
    configPath,
    serverName,
    redis,
    postgres,
    database,
    supervisor,
    instances: ['main', ...workers],
    workers,
    clientWorkers,
    baseUrl(instance) {
      const port = ports.get(instance);
      if (port === undefined) throw new Error(`${instance} has no TCP client listener`);
      return `http://127.0.0.1:${port}`;
    },
    routerUrl: routerPort === undefined ? undefined : `http://127.0.0.1:${routerPort}`,
    clientSocket,
    replicationSocket,
    logLines,
    waitForLog,
    pidOf(worker) {
      const pattern = status(worker);
      const line = logLines().findLast((l) => l.instance === 'main' && pattern.test(l.msg ?? ''));
      if (!line) throw new Error(`no status line for worker ${worker}`);
      return Number(pattern.exec(line.msg!)![2]);
    },
    async waitForRestart(worker, from, ms = 90_000) {
      const pattern = new RegExp(`^worker ${worker}: restarted \\(pid (\\d+)\\)`);
      const { line } = await waitForLog((l) => l.instance === 'main' && pattern.test(l.msg ?? ''), {
        from,
        ms,
        what: `worker ${worker} to be restarted`,
      });
      return Number(pattern.exec(line.msg!)![1]);
    },
    async query(sql, params = []) {
      return (await pool.query(sql, params)).rows;
    },
    async stop() {
      const code = await supervisor.stop('SIGTERM');
      await pool.end().catch(() => undefined);
      await redis.destroy();
      return code;
    },
  };

  try {
    const count = workers.length;
    const up = count === 0 ? /Myelin is serving/ : new RegExp(`^all ${count} worker${count === 1 ? ' is' : 's are'} up$`);
    await waitForLog((l) => l.instance === 'main' && up.test(l.msg ?? ''), {
      ms: options.startTimeoutMs ?? 240_000,
      what: 'main and every worker to be up',
    });
    // Up means answering /health; a process joins the bus just after. Wait until each has
    // subscribed and sent REPLICATE, so what the tests see does not depend on who started last.
    for (const instance of ['main', ...workers]) {
      await waitForLog((l) => l.instance === instance && l.msg === 'REPLICATE successfully sent', {
        ms: 60_000,
        what: `${instance} to join the Redis bus`,
      });
    }
    for (const instance of ['main', ...clientWorkers]) {
      const res = await fetch(`${cluster.baseUrl(instance)}/health`);
      if (!res.ok) throw new Error(`${instance} /health answered ${res.status}`);
      await res.text();
    }
    if (cluster.routerUrl) await (await fetch(`${cluster.routerUrl}/health`)).text();
  } catch (err) {
    await cluster.stop().catch(() => undefined);
    throw err;
  }
  return cluster;
}

function tail(output: string, lines = 60): string {
  return output.split('\n').slice(-lines).join('\n');
}
