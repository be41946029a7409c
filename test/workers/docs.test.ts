// docs/workers.md must match what the code does: its config files load into the deployment it
// describes, its commands and options exist, its sample errors and output are the code's own
// lines, and the nginx config generated for it runs.

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import YAML from 'yaml';
import { ROUTES } from '../../src/api/registry.js';
import { ConfigError, loadConfig, parseYamlFile } from '../../src/config/load.js';
import { topologyOf } from '../../src/config/roles.js';
import { nginxConfig } from '../../src/workers/proxy-config.js';
import { loadCluster, RoutingTable } from '../../src/workers/topology.js';
import { startNginx } from '../harness/nginx.js';
import { REPO_ROOT, runMyelin } from '../helpers/myelin.js';
import { freePort } from '../helpers/server-process.js';
import { tempDir } from '../helpers/tmp.js';

const DOC = readFileSync(join(REPO_ROOT, 'docs', 'workers.md'), 'utf8');

/** A line `myelin check` prints: a mark, then one of the things it checks. */
const CHECK_LINE = new RegExp(
  '^[✓✗] (' +
    [
      /config: \d+ file\(s\), \d+ worker\(s\)/,
      /socket \S+ \(.+\): /,
      /Redis at \S+: /,
      /Redis TCP listener: /,
      /replication listener of \w+ \(\S+\): /,
      /\w+ \/health on unix:\S+: /,
      /database \((SQLite|PostgreSQL) .+\): /,
    ]
      .map((r) => r.source)
      .join('|') +
    ')',
);

/** A line the supervisor logs about a worker. */
const SUPERVISOR_LINE = new RegExp(
  [
    /^worker \w+: (started|restarted) \(pid \d+\) on unix:\S+(, unix:\S+)*$/,
    /^worker \w+: killed by SIGKILL; restarting in \d+ s$/,
    /^worker \w+: not answering \/health \(\w+\); restarting it if that lasts \d+ s$/,
    /^worker \w+: not answering \/health for \d+ s \(\w+\); killing it \(pid \d+\) to restart it$/,
    /^worker \w+: starting \(pid \d+\), waiting for the database$/,
  ]
    .map((r) => r.source)
    .join('|'),
);

interface Block {
  lang: string;
  info: string;
  text: string;
}

function blocks(): Block[] {
  return [...DOC.matchAll(/^```(\w*)([^\n]*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1]!, info: m[2]!.trim(), text: m[3]! }));
}

function readYaml(file: string): Record<string, unknown> {
  return parseYamlFile(file, readFileSync(file, 'utf8'));
}

/** Writes YAML with socket modes as octal strings ("0660"), which every reader reads the same. */
function writeYaml(file: string, data: Record<string, unknown>): void {
  writeFileSync(
    file,
    YAML.stringify(data, (key, value: unknown) => (key === 'mode' && typeof value === 'number' ? `0${value.toString(8)}` : value)),
  );
}

/** The doc's files, under `root` instead of `/`; `file=PATH#key` blocks replace one key of PATH. */
function writeDocFiles(root: string, withVariants: boolean): string {
  const relocate = (text: string) => text.replace(/(?<![\w/])\/(etc|run)\//g, `${root}/$1/`);
  const variants: [string, string, string][] = [];
  for (const block of blocks().filter((b) => b.lang === 'yaml' && b.info.startsWith('file='))) {
    const [path, key] = block.info.slice('file='.length).split('#') as [string, string | undefined];
    const target = relocate(path);
    if (key !== undefined) {
      variants.push([target, key, relocate(block.text)]);
      continue;
    }
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, relocate(block.text));
  }
  if (withVariants) {
    for (const [target, key, text] of variants) writeYaml(target, { ...readYaml(target), [key]: parseYamlFile(target, text)[key] });
  }
  mkdirSync(join(root, 'run', 'matrix-synapse'), { recursive: true });
  mkdirSync(join(root, 'run', 'redis'), { recursive: true });
  writeFileSync(join(root, 'etc', 'matrix-synapse', 'replication.secret'), 'a secret\n');
  return join(root, 'etc', 'matrix-synapse', 'homeserver.yaml');
}

function problems(load: () => unknown): string[] {
  try {
    load();
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

describe('docs/workers.md', () => {
  test('its files load into the deployment it describes', () => {
    const root = tempDir('myelin-docs-');
    const configPath = writeDocFiles(root, false);
    const main = loadConfig([configPath], { warn: (w) => assert.fail(w) });
    const cluster = loadCluster(main, { warn: (w) => assert.fail(w) });
    assert.deepEqual(
      cluster.workers.map((w) => w.name),
      ['ephemeral', 'generic1', 'generic2', 'persister1', 'persister2'],
    );
    const topology = topologyOf(main);
    assert.deepEqual(topology.writers.events, ['persister1', 'persister2']);
    for (const stream of ['typing', 'to_device', 'account_data', 'receipts'] as const)
      assert.deepEqual(topology.writers[stream], ['ephemeral']);
    assert.equal(main.redis.path, `${root}/run/redis/redis-server.sock`);
    assert.equal(main.listeners[1]!.mode, 0o660);
    // The table at the top of the page.
    const table = new RoutingTable(cluster);
    const route = (name: string) => ROUTES.find((r) => r.name === name)!;
    assert.deepEqual(table.candidates(route('client.sync')), ['generic1', 'generic2']);
    assert.deepEqual(table.candidates(route('client.typing')), ['ephemeral']);
    assert.deepEqual(table.candidates(route('client.send_to_device')), ['ephemeral']);
    assert.deepEqual(table.candidates(route('client.logout')), ['main']);
  });

  test('the router variant of the listeners loads too', () => {
    const configPath = writeDocFiles(tempDir('myelin-docs-'), true);
    const cluster = loadCluster(loadConfig([configPath], { warn: () => undefined }));
    assert.deepEqual(cluster.main.listeners[0]!.resources[0]!.names, ['router']);
  });

  test('its sample configuration errors are the ones Myelin reports', () => {
    const samples = blocks()
      .filter((b) => b.lang === 'text')
      .flatMap((b) => b.text.split('\n'))
      .filter((l) => l.startsWith('homeserver.yaml: '))
      .map((l) => l.slice('homeserver.yaml: '.length).replace(/ \.\.\.$/, ''));
    assert.equal(samples.length, 4, samples.join('\n'));
    const reported: string[] = [];
    const variant = (change: (files: { config: string; root: string }) => void) => {
      const root = tempDir('myelin-docs-');
      const config = writeDocFiles(root, false);
      change({ config, root });
      reported.push(...problems(() => loadCluster(loadConfig([config], { warn: () => undefined }))));
    };
    const edit = (file: string, change: (data: Record<string, unknown>) => void) => {
      const data = readYaml(file);
      change(data);
      writeYaml(file, data);
    };
    variant(({ config, root }) => edit(config, (d) => (d.database = { name: 'sqlite3', args: { database: join(root, 'homeserver.db') } })));
    variant(({ config }) =>
      edit(config, (d) => ((d.stream_writers as Record<string, unknown>).events = ['persister1', 'persister2', 'persister3'])),
    );
    variant(({ config }) => edit(config, (d) => ((d.stream_writers as Record<string, unknown>).typing = ['ephemeral', 'generic1'])));
    variant(({ root }) =>
      edit(join(root, 'etc', 'matrix-synapse', 'workers', 'persister1.yaml'), (d) => {
        (d.worker_listeners as { path: string }[])[0]!.path = `${root}/run/matrix-synapse/p1.sock`;
      }),
    );
    for (const sample of samples) {
      assert.ok(
        reported.some((p) => p.replace(/\/tmp\/myelin-docs-\w+/g, '').includes(sample)),
        `the doc's "${sample}" is not among:\n${reported.join('\n')}`,
      );
    }
  });

  test('its commands and options exist', () => {
    const help = runMyelin(['--help']).stdout;
    const commands = blocks()
      .filter((b) => b.lang === 'sh')
      .flatMap((b) => b.text.split('\n'))
      .filter((l) => l.startsWith('myelin '));
    assert.ok(commands.length >= 5, commands.join('\n'));
    for (const line of commands) {
      const subcommand = line.split(' ')[1]!;
      assert.match(help, new RegExp(`myelin ${subcommand}\\b`), `${line}: no such command`);
      for (const option of line.match(/\s--[\w-]+/g) ?? [])
        assert.ok(help.includes(option.trim()), `${line}: ${option.trim()} is not an option`);
    }
  });

  test('its sample output lines have the shape the code prints', () => {
    const text = blocks()
      .filter((b) => b.lang === 'text')
      .map((b) => b.text)
      .join('\n');
    const checkLines = text.split('\n').filter((l) => /^[✓✗] /.test(l));
    assert.ok(checkLines.length >= 8);
    for (const line of checkLines) {
      assert.match(line, CHECK_LINE);
    }
    for (const line of text.split('\n').filter((l) => l.startsWith('worker '))) {
      assert.match(line, SUPERVISOR_LINE);
    }
  });

  test('the nginx config generated for it runs in nginx', async () => {
    const configPath = writeDocFiles(tempDir('myelin-docs-'), false);
    const cluster = loadCluster(loadConfig([configPath], { warn: () => undefined }));
    const port = await freePort();
    const nginx = await startNginx(
      nginxConfig(cluster, { listen: `127.0.0.1:${port}`, serverName: 'matrix.example.com', maxBodyBytes: cluster.main.max_upload_size }),
      port,
    );
    try {
      // No process runs behind it here: nginx answers 502 itself.
      const res = await fetch(`http://127.0.0.1:${port}/_matrix/client/versions`);
      assert.equal(res.status, 502);
    } finally {
      await nginx.stop();
    }
  });
});
