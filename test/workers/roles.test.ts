import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import YAML from 'yaml';
import { ROUTES } from '../../src/api/registry.js';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { checkWorkerRequirements, normaliseWorkerApp, topologyOf } from '../../src/config/roles.js';
import { loadCluster, RoutingTable } from '../../src/workers/topology.js';
import { tempDir, writeFiles } from '../helpers/tmp.js';
import { loadDeployment, socketListener, typicalDeployment, writeDeployment, type Yaml } from './fixture.js';

function problemsOf(load: () => unknown): string[] {
  try {
    load();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return [...err.problems];
  }
  assert.fail('expected the configuration to be refused');
}

/** Loads homeserver.yaml (and optional more files) from a fresh directory. */
function loadFiles(files: Record<string, Yaml>, args = ['homeserver.yaml']) {
  const dir = tempDir();
  writeFiles(dir, Object.fromEntries(Object.entries(files).map(([name, data]) => [name, YAML.stringify(data)])));
  return {
    dir,
    load: () =>
      loadConfig(
        args.map((a) => join(dir, a)),
        { warn: () => undefined },
      ),
  };
}

const BASE = { server_name: 'example.com' };

describe('worker_app', () => {
  test("Synapse's names, with or without the synapse.app. prefix, and its legacy apps as generic workers", () => {
    assert.deepEqual(normaliseWorkerApp('generic_worker'), { app: 'generic_worker' });
    assert.deepEqual(normaliseWorkerApp('synapse.app.generic_worker'), { app: 'generic_worker' });
    assert.deepEqual(normaliseWorkerApp('synapse.app.media_repository'), { app: 'media_repository' });
    assert.deepEqual(normaliseWorkerApp('synapse.app.homeserver'), { app: 'main' });
    for (const legacy of [
      'client_reader',
      'event_creator',
      'event_persister',
      'federation_reader',
      'federation_sender',
      'frontend_proxy',
      'pusher',
      'synchrotron',
      'user_dir',
      'appservice',
    ]) {
      assert.deepEqual(normaliseWorkerApp(`synapse.app.${legacy}`), { app: 'generic_worker', legacy }, legacy);
      assert.deepEqual(normaliseWorkerApp(legacy), { app: 'generic_worker', legacy }, legacy);
    }
    assert.equal(normaliseWorkerApp('synapse.app.frobnicator'), undefined);
  });

  test('a worker file written for Synapse loads as a generic worker with its name', () => {
    const { load } = loadFiles(
      {
        'homeserver.yaml': BASE,
        'w.yaml': { worker_app: 'synapse.app.client_reader', worker_name: 'reader1' },
      },
      ['homeserver.yaml', 'w.yaml'],
    );
    const topology = topologyOf(load());
    assert.equal(topology.workerApp, 'generic_worker');
    assert.equal(topology.instanceName, 'reader1');
  });

  test('an unknown app, a missing or reserved worker_name, and worker keys in the main config are refused', () => {
    let { load } = loadFiles({ 'homeserver.yaml': BASE, 'w.yaml': { worker_app: 'synapse.app.frobnicator', worker_name: 'w' } }, [
      'homeserver.yaml',
      'w.yaml',
    ]);
    assert.match(
      problemsOf(load)[0]!,
      /w\.yaml: worker_app: unknown worker app "synapse\.app\.frobnicator"; expected generic_worker or media_repository/,
    );

    ({ load } = loadFiles({ 'homeserver.yaml': BASE, 'w.yaml': { worker_app: 'generic_worker' } }, ['homeserver.yaml', 'w.yaml']));
    assert.match(problemsOf(load)[0]!, /homeserver\.yaml: worker_name: required key is missing: every worker needs a unique `worker_name`/);

    ({ load } = loadFiles({ 'homeserver.yaml': BASE, 'w.yaml': { worker_app: 'generic_worker', worker_name: 'master' } }, [
      'homeserver.yaml',
      'w.yaml',
    ]));
    assert.match(problemsOf(load)[0]!, /w\.yaml: worker_name: "master" is the main process's name/);

    ({ load } = loadFiles({ 'homeserver.yaml': { ...BASE, worker_name: 'x', worker_listeners: [{ type: 'http', port: 8083 }] } }));
    const problems = problemsOf(load);
    assert.match(problems[0]!, /homeserver\.yaml: worker_name: this config has no `worker_app`/);
    assert.match(problems[1]!, /homeserver\.yaml: worker_listeners: only workers have `worker_listeners`/);
  });

  test('the legacy federation_sender and pusher apps must be listed in the shared config', () => {
    const { load } = loadFiles(
      { 'homeserver.yaml': BASE, 'w.yaml': { worker_app: 'synapse.app.federation_sender', worker_name: 'fed1' } },
      ['homeserver.yaml', 'w.yaml'],
    );
    assert.match(
      problemsOf(load)[0]!,
      /w\.yaml: worker_app: synapse\.app\.federation_sender sends federation only when listed: add "fed1" to `federation_sender_instances`/,
    );
    const listed = loadFiles(
      {
        'homeserver.yaml': { ...BASE, federation_sender_instances: ['fed1'] },
        'w.yaml': { worker_app: 'synapse.app.federation_sender', worker_name: 'fed1' },
      },
      ['homeserver.yaml', 'w.yaml'],
    );
    assert.deepEqual(topologyOf(listed.load()).federationSenderInstances, ['fed1']);
  });
});

describe('stream_writers and instance_map', () => {
  test("Synapse's errors: a writer missing from instance_map, several writers of a single-writer stream, none at all", () => {
    const { load } = loadFiles({
      'homeserver.yaml': {
        ...BASE,
        instance_map: { main: { host: 'localhost', port: 9093 }, persister1: { host: 'localhost', port: 9094 } },
        stream_writers: { events: ['persister1', 'persister2'], typing: ['a', 'b'], receipts: [], presence: 'main' },
      },
    });
    const problems = problemsOf(load);
    assert.match(
      problems.join('\n'),
      new RegExp(
        /homeserver\.yaml: stream_writers\.events: Instance 'persister2' is configured to write events /.source +
          /but does not appear in `instance_map` config\./.source,
      ),
    );
    assert.match(
      problems.join('\n'),
      /homeserver\.yaml: stream_writers\.typing: Must only specify one instance to handle `typing` messages\./,
    );
    assert.match(
      problems.join('\n'),
      /homeserver\.yaml: stream_writers\.typing: Instance 'a' is configured to write typing but does not appear in `instance_map` config\./,
    );
    assert.match(
      problems.join('\n'),
      /homeserver\.yaml: stream_writers\.receipts: Must specify at least one instance to handle `receipts` messages\./,
    );
    assert.ok(!problems.some((p) => p.includes('persister1')), 'persister1 is in instance_map');
    assert.ok(!problems.some((p) => p.includes('presence')), 'main needs no instance_map entry to write');
  });

  test("'master' is Synapse's name for main, in stream_writers and instance_map", () => {
    const { load } = loadFiles({
      'homeserver.yaml': {
        ...BASE,
        listeners: [{ type: 'http', port: 9093, resources: [{ names: ['replication'] }] }],
        instance_map: { master: { host: 'localhost', port: 9093 } },
        stream_writers: { typing: 'master', events: ['master'] },
      },
    });
    const topology = topologyOf(load());
    assert.deepEqual(topology.writers.typing, ['main']);
    assert.deepEqual(topology.writers.events, ['main']);
    assert.deepEqual(Object.keys(topology.instanceMap), ['main']);
    assert.deepEqual(topology.writers.to_device, ['main'], 'unset streams are written by main');
  });

  test('a stream writer needs a replication listener, at the address instance_map gives', () => {
    const files = writeDeployment((run) => ({
      main: {
        instance_map: { main: { path: join(run, 'replication.sock') }, persister1: { path: join(run, 'persister1.sock') } },
        stream_writers: { events: 'persister1' },
      },
      workers: { persister1: { worker_listeners: [socketListener(join(run, 'p1.sock'), ['replication'])] } },
    }));
    let problems = problemsOf(() => loadDeployment(files));
    assert.match(
      problems[0]!,
      /instance_map\.persister1: the other processes reach persister1 at .*persister1\.sock, but its replication listener is at .*p1\.sock/,
    );

    const noListener = writeDeployment((run) => ({
      main: {
        instance_map: { main: { path: join(run, 'replication.sock') }, persister1: { path: join(run, 'p1.sock') } },
        stream_writers: { events: 'persister1' },
      },
      workers: { persister1: { worker_listeners: [socketListener(join(run, 'p1-client.sock'), ['client'])] } },
    }));
    problems = problemsOf(() => loadDeployment(noListener));
    assert.match(
      problems[0]!,
      /workers\/persister1\.yaml: worker_listeners: persister1 writes events, so it needs an http listener with the `replication` resource/,
    );
  });

  test('a router listener serves nothing else', () => {
    const { load } = loadFiles({
      'homeserver.yaml': { ...BASE, listeners: [{ type: 'http', port: 8008, resources: [{ names: ['router', 'client'] }] }] },
    });
    assert.match(
      problemsOf(load)[0]!,
      new RegExp(
        /homeserver\.yaml: listeners\[0\]\.resources: a `router` listener forwards every request to the instance that serves it, /.source +
          /so it cannot also serve client/.source,
      ),
    );
  });
});

describe('what a worker needs to run', () => {
  test('PostgreSQL, Redis and the way to main, each named with its file and key', () => {
    const { load } = loadFiles({ 'homeserver.yaml': BASE, 'w.yaml': { worker_app: 'generic_worker', worker_name: 'w1' } }, [
      'homeserver.yaml',
      'w.yaml',
    ]);
    const problems = checkWorkerRequirements(load());
    assert.equal(problems.length, 3);
    assert.match(
      problems[0]!,
      new RegExp(
        /homeserver\.yaml: database: workers need PostgreSQL: every process of a worker deployment shares one database, /.source +
          /and SQLite cannot be shared/.source,
      ),
    );
    assert.match(problems[1]!, /homeserver\.yaml: redis: workers replicate through Redis: set `redis\.enabled: true`/);
    assert.match(
      problems[2]!,
      /homeserver\.yaml: instance_map: Missing data for a worker to connect to main process: add `main` to `instance_map`/,
    );
  });

  test('the main config is not a worker config', () => {
    const { load } = loadFiles({ 'homeserver.yaml': BASE });
    assert.match(checkWorkerRequirements(load())[0]!, /worker_app: required key is missing: .* describe the main process, not a worker/);
  });

  test('the seed layout with a worker passes', () => {
    const files = writeDeployment((run) => ({
      workers: { generic1: { worker_listeners: [socketListener(join(run, 'generic1.sock'), ['client'])] } },
    }));
    const cluster = loadDeployment(files);
    assert.deepEqual(
      cluster.workers.map((w) => [w.name, w.app]),
      [['generic1', 'generic_worker']],
    );
    assert.deepEqual(checkWorkerRequirements(cluster.workers[0]!.config), []);
  });
});

describe('the deployment as a whole (the workers directory)', () => {
  test('worker names are unique', () => {
    const files = writeDeployment((run) => ({
      workers: {
        a: { worker_listeners: [socketListener(join(run, 'a.sock'), ['client'])] },
        b: { worker_name: 'a', worker_listeners: [socketListener(join(run, 'b.sock'), ['client'])] },
      },
    }));
    const problems = problemsOf(() => loadDeployment(files));
    assert.match(
      problems[0]!,
      /workers\/b\.yaml: worker_name: "a" is already the name of the worker in .*workers\/a\.yaml; every worker needs its own name/,
    );
  });

  test('writers and duties name workers that exist', () => {
    const files = writeDeployment((run) => ({
      main: {
        instance_map: { main: { path: join(run, 'replication.sock') }, ghost: { path: join(run, 'ghost.sock') } },
        stream_writers: { typing: 'ghost' },
        pusher_instances: ['nobody'],
        initial_sync_instances: ['a'],
      },
      workers: { a: { worker_listeners: [socketListener(join(run, 'a.sock'), ['replication'])] } },
    }));
    const problems = problemsOf(() => loadDeployment(files)).join('\n');
    assert.match(
      problems,
      new RegExp(
        /homeserver\.yaml: stream_writers\.typing: "ghost" writes typing, but no file in .*workers has that worker_name /.source +
          /\(when another service manager runs the workers, start main with --no-workers\)/.source,
      ),
    );
    assert.match(problems, /homeserver\.yaml: pusher_instances: "nobody" is not a worker/);
    assert.match(
      problems,
      /homeserver\.yaml: initial_sync_instances: a takes initial syncs, so it must be a generic worker with a `client` listener/,
    );
  });

  test('a stream writer with endpoints needs a client listener for them', () => {
    const files = writeDeployment((run) => ({
      main: {
        instance_map: { main: { path: join(run, 'replication.sock') }, ephemeral: { path: join(run, 'eph.sock') } },
        stream_writers: { typing: 'ephemeral' },
      },
      workers: { ephemeral: { worker_listeners: [socketListener(join(run, 'eph.sock'), ['replication'])] } },
    }));
    const problems = problemsOf(() => loadDeployment(files));
    assert.match(
      problems[0]!,
      new RegExp(
        /workers\/ephemeral\.yaml: worker_listeners: ephemeral writes typing, so the requests that write it go there /.source +
          /\(PUT \/_matrix\/client\/v3\/rooms\/\{roomId\}\/typing\/\{userId\}\), /.source +
          /but ephemeral has no http listener with the `client` resource/.source,
      ),
    );
  });

  test('role keys belong in the shared config', () => {
    const files = writeDeployment((run) => ({
      workers: { w1: { stream_writers: { typing: 'main' }, worker_listeners: [socketListener(join(run, 'w1.sock'), ['client'])] } },
    }));
    assert.match(
      problemsOf(() => loadDeployment(files))[0]!,
      /workers\/w1\.yaml: stream_writers: set it in the shared config, not in a worker file: every process must agree on it/,
    );
  });

  test('workers need PostgreSQL', () => {
    const files = writeDeployment((run, dir) => ({
      main: { database: { name: 'sqlite3', args: { database: join(dir, 'homeserver.db') } } },
      workers: { w1: { worker_listeners: [socketListener(join(run, 'w1.sock'), ['client'])] } },
    }));
    assert.match(problemsOf(() => loadDeployment(files))[0]!, /homeserver\.yaml: database: workers need PostgreSQL/);
  });

  test('a missing --workers directory is an error; a missing default one means no workers', () => {
    const files = writeDeployment();
    const main = loadConfig([files.configPath], { warn: () => undefined });
    assert.deepEqual(loadCluster(main).workers, []);
    assert.match(
      problemsOf(() => loadCluster(main, { workersDir: join(files.dir, 'nope') }))[0]!,
      /nope: the workers directory does not exist/,
    );
  });
});

describe('routing table from the registry', () => {
  const route = (name: string) => ROUTES.find((r) => r.name === name)!;

  test('generic workers serve `any` routes, writers their streams, main the rest', () => {
    const table = new RoutingTable(loadDeployment(typicalDeployment()));
    assert.deepEqual(table.candidates(route('client.sync')), ['generic1', 'generic2'], 'the client workers, not the dedicated writer');
    assert.deepEqual(table.candidates(route('client.typing')), ['ephemeral']);
    assert.deepEqual(table.candidates(route('client.receipt')), ['ephemeral']);
    assert.deepEqual(table.candidates(route('client.presence.set')), ['main'], 'presence is still written by main');
    assert.deepEqual(table.candidates(route('admin.register')), ['main']);
    const endpoint = table.endpointOf('generic1', 'client');
    assert.ok(endpoint && 'socketPath' in endpoint && endpoint.socketPath.endsWith('/run/generic1.sock'));
    assert.equal(table.endpointOf('persister1', 'client'), undefined);
  });

  test('when every client worker writes a stream, they all serve `any` routes', () => {
    const files = writeDeployment((run) => ({
      main: {
        instance_map: { main: { path: join(run, 'replication.sock') }, only: { path: join(run, 'only-replication.sock') } },
        stream_writers: { typing: 'only' },
      },
      workers: {
        only: {
          worker_listeners: [
            socketListener(join(run, 'only-replication.sock'), ['replication']),
            socketListener(join(run, 'only.sock'), ['client']),
          ],
        },
      },
    }));
    const table = new RoutingTable(loadDeployment(files));
    assert.deepEqual(table.candidates(route('client.sync')), ['only']);
    assert.deepEqual(table.candidates(route('client.typing')), ['only']);
  });

  test('without workers, main serves everything', () => {
    const table = new RoutingTable(loadDeployment(writeDeployment()));
    for (const r of ROUTES) assert.deepEqual(table.candidates(r), ['main'], r.name);
  });

  test('initial syncs go to initial_sync_instances when set', () => {
    const table = new RoutingTable(loadDeployment(typicalDeployment(() => ({ initial_sync_instances: ['generic2'] }))));
    assert.deepEqual(table.initialSyncCandidates(route('client.sync')), ['generic2']);
  });
});
