// A worker deployment inside one test process: main and workers, each a full process composition
// (its own database pool, Redis bus, listeners and replication RPC), on a real PostgreSQL and a
// real Redis over UNIX sockets. Faster to set up and inspect than separate processes; the
// supervised multi-process cluster is exercised by the client tests.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import YAML from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { formatSigningKeyFile, generateSigningKey } from '../../src/core/signing.js';
import { startHomeserver, startWorker, type RunningHomeserver } from '../../src/process/homeserver.js';
import { testPostgres } from '../harness/postgres.js';
import { startRedis, type RedisServer } from '../harness/redis.js';
import { GENEROUS_RATE_LIMITS } from './homeserver.js';
import { request, type TestResponse } from './http.js';
import { tempDir } from './tmp.js';

export interface ClusterInstance {
  name: string;
  homeserver: RunningHomeserver;
  /** The client listener's UNIX socket. */
  clientSocket: string;
  call(method: string, path: string, options?: { token?: string; body?: unknown }): Promise<TestResponse>;
}

export interface TestCluster {
  dir: string;
  redis: RedisServer;
  instances: Map<string, ClusterInstance>;
  instance(name: string): ClusterInstance;
  stop(): Promise<void>;
}

export interface ClusterSpec {
  /** Worker names; each gets a client listener and a replication listener. */
  workers: string[];
  /** `stream_writers` (instance names). */
  streamWriters?: Record<string, string[]>;
  serverName?: string;
  /** More keys for the shared config (e.g. `federation_sender_instances`). */
  config?: Record<string, unknown>;
}

export async function startTestCluster(spec: ClusterSpec): Promise<TestCluster> {
  const dir = tempDir('myelin-cluster-');
  const sockets = join(dir, 'run');
  mkdirSync(sockets);
  const pg = await testPostgres();
  const database = await pg.createDatabase('cluster');
  const redis = await startRedis();
  const serverName = spec.serverName ?? 'cluster.test';
  writeFileSync(join(dir, 'signing.key'), formatSigningKeyFile([generateSigningKey()]));
  const replicationSocket = (name: string) => join(sockets, `${name}-replication.sock`);
  const clientSocket = (name: string) => join(sockets, `${name}-client.sock`);
  const names = ['main', ...spec.workers];
  const shared = {
    server_name: serverName,
    signing_key_path: join(dir, 'signing.key'),
    database: { name: 'psycopg2', args: { host: pg.socketDir, user: pg.user, dbname: database, cp_max: 10 } },
    redis: redis.config,
    worker_replication_secret: 'cluster-secret',
    registration_shared_secret: 'test-shared-secret',
    enable_registration: true,
    enable_registration_without_verification: true,
    instance_map: Object.fromEntries(names.map((name) => [name, { path: replicationSocket(name) }])),
    stream_writers: spec.streamWriters ?? {},
    ...GENEROUS_RATE_LIMITS,
    ...spec.config,
    listeners: [
      { path: clientSocket('main'), type: 'http', resources: [{ names: ['client'] }] },
      { path: replicationSocket('main'), mode: 0o660, type: 'http', resources: [{ names: ['replication'] }] },
    ],
  };
  writeFileSync(join(dir, 'homeserver.yaml'), YAML.stringify(shared));
  const log = pino({ level: process.env.MYELIN_TEST_LOG_LEVEL ?? 'silent' });
  const instances = new Map<string, ClusterInstance>();
  const add = (name: string, homeserver: RunningHomeserver) =>
    instances.set(name, {
      name,
      homeserver,
      clientSocket: clientSocket(name),
      call: (method, path, options = {}) => {
        const body = options.body === undefined ? undefined : JSON.stringify(options.body);
        return request({ socketPath: clientSocket(name) }, method, path, {
          ...(body === undefined ? {} : { body }),
          headers: {
            ...(options.token ? { Authorization: `Bearer ${options.token}` } : {}),
            ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
          },
        });
      },
    });

  add(
    'main',
    await startHomeserver(loadConfig([join(dir, 'homeserver.yaml')], { warn: () => undefined }), log.child({ instance: 'main' })),
  );
  for (const name of spec.workers) {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(
      file,
      YAML.stringify({
        worker_app: 'generic_worker',
        worker_name: name,
        worker_listeners: [
          { path: clientSocket(name), type: 'http', resources: [{ names: ['client'] }] },
          { path: replicationSocket(name), type: 'http', resources: [{ names: ['replication'] }] },
        ],
      }),
    );
    add(
      name,
      await startWorker(loadConfig([join(dir, 'homeserver.yaml'), file], { warn: () => undefined }), log.child({ instance: name })),
    );
  }
  return {
    dir,
    redis,
    instances,
    instance(name) {
      const found = instances.get(name);
      if (!found) throw new Error(`no instance ${name}`);
      return found;
    },
    async stop() {
      for (const name of [...instances.keys()].reverse()) await instances.get(name)!.homeserver.stop(1000);
      await redis.destroy();
    },
  };
}
