// A worker deployment on disk for tests, laid out as the seed guide does: homeserver.yaml,
// conf.d/redis.yaml and one file per worker under workers/, with every socket in the run/
// directory of a fresh temporary directory.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { loadCluster, type Cluster } from '../../src/workers/topology.js';
import { tempDir, writeFiles } from '../helpers/tmp.js';

export type Yaml = Record<string, unknown>;

export interface DeploymentFiles {
  dir: string;
  /** The socket directory. */
  run: string;
  configPath: string;
}

export interface DeploymentOptions {
  /** Keys of homeserver.yaml (added to, or replacing, the defaults). */
  main?: Yaml;
  /** Worker files by name; `worker_app: generic_worker` and `worker_name` are filled in. */
  workers?: Record<string, Yaml>;
  /** More files, relative to the deployment directory. */
  files?: Record<string, string>;
}

/** A socket listener: `{type: http, path, mode: 0660, resources: [{names}]}`. */
export function socketListener(path: string, names: string[], extra: Yaml = {}): Yaml {
  return { type: 'http', path, mode: '0660', resources: [{ names }], ...extra };
}

/**
 * Main with a client socket and a replication socket, Redis by socket in conf.d/redis.yaml,
 * PostgreSQL by socket directory (nothing connects to it while loading).
 */
export function writeDeployment(build: (run: string, dir: string) => DeploymentOptions = () => ({})): DeploymentFiles {
  const dir = tempDir('myelin-workers-');
  const run = join(dir, 'run');
  mkdirSync(run);
  const options = build(run, dir);
  const main: Yaml = {
    server_name: 'matrix.example.com',
    signing_key_path: join(dir, 'signing.key'),
    database: { name: 'psycopg2', args: { user: 'synapse', dbname: 'synapse', host: '/run/postgresql' } },
    listeners: [
      socketListener(join(run, 'main.sock'), ['client', 'federation']),
      socketListener(join(run, 'replication.sock'), ['replication']),
    ],
    instance_map: { main: { path: join(run, 'replication.sock') } },
    worker_replication_secret: 'a shared secret',
    ...options.main,
  };
  const files: Record<string, string> = {
    'homeserver.yaml': YAML.stringify(main),
    'conf.d/redis.yaml': YAML.stringify({ redis: { enabled: true, path: join(run, 'redis.sock') } }),
    ...options.files,
  };
  for (const [name, worker] of Object.entries(options.workers ?? {})) {
    files[`workers/${name}.yaml`] = YAML.stringify({ worker_app: 'generic_worker', worker_name: name, ...worker });
  }
  writeFiles(dir, files);
  return { dir, run, configPath: join(dir, 'homeserver.yaml') };
}

export function loadDeployment(files: DeploymentFiles): Cluster {
  return loadCluster(loadConfig([files.configPath], { warn: () => undefined }), { warn: () => undefined });
}

/**
 * Test 2's cluster of the Workers issue: two client workers (generic1, generic2), two event
 * persisters, and `ephemeral` writing typing, to_device, account_data and receipts.
 */
export function typicalDeployment(extra: (run: string) => Yaml = () => ({})): DeploymentFiles {
  return writeDeployment((run) => ({
    main: {
      instance_map: {
        main: { path: join(run, 'replication.sock') },
        persister1: { path: join(run, 'persister1-replication.sock') },
        persister2: { path: join(run, 'persister2-replication.sock') },
        ephemeral: { path: join(run, 'ephemeral-replication.sock') },
      },
      stream_writers: {
        events: ['persister1', 'persister2'],
        typing: 'ephemeral',
        to_device: 'ephemeral',
        account_data: 'ephemeral',
        receipts: 'ephemeral',
      },
      ...extra(run),
    },
    workers: {
      generic1: { worker_listeners: [socketListener(join(run, 'generic1.sock'), ['client', 'federation'], { x_forwarded: true })] },
      generic2: { worker_listeners: [socketListener(join(run, 'generic2.sock'), ['client', 'federation'], { x_forwarded: true })] },
      persister1: { worker_listeners: [socketListener(join(run, 'persister1-replication.sock'), ['replication'])] },
      persister2: { worker_listeners: [socketListener(join(run, 'persister2-replication.sock'), ['replication'])] },
      ephemeral: {
        worker_listeners: [
          socketListener(join(run, 'ephemeral-replication.sock'), ['replication']),
          socketListener(join(run, 'ephemeral.sock'), ['client'], { x_forwarded: true }),
        ],
      },
    },
  }));
}
