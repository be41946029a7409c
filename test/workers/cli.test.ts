// The operator commands as an admin runs them: `myelin proxy-config`, `myelin systemd`, and
// `myelin start` with a workers directory or a router listener.

import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import YAML from 'yaml';
import { socketRuntimeDirectory, systemdUnits } from '../../src/cli/systemd.js';
import { formatSigningKeyFile, generateSigningKey } from '../../src/core/signing.js';
import { GENEROUS_RATE_LIMITS } from '../helpers/homeserver.js';
import { MYELIN_BIN, runMyelin, spawnMyelin } from '../helpers/myelin.js';
import { freePort } from '../helpers/server-process.js';
import { tempDir } from '../helpers/tmp.js';
import { socketListener, typicalDeployment, writeDeployment } from './fixture.js';

describe('myelin proxy-config', () => {
  test('prints an nginx config for the workers of the deployment', () => {
    const files = typicalDeployment();
    const { status, stdout, stderr } = runMyelin([
      'proxy-config',
      'nginx',
      '-c',
      files.configPath,
      '--listen',
      '443 ssl',
      '--server-name',
      'matrix.example.com',
    ]);
    assert.equal(status, 0, stderr);
    assert.match(stdout, /^# Reverse-proxy config for Myelin \(nginx\)/);
    assert.match(
      stdout,
      new RegExp(
        /upstream myelin_client_workers_by_user \{\n {4}hash \$myelin_user consistent;\n/.source +
          / {4}server unix:.*\/run\/generic1\.sock;\n {4}server unix:.*\/run\/generic2\.sock;/.source,
      ),
    );
    assert.match(stdout, /upstream myelin_initial_sync \{/);
    assert.match(stdout, /location ~ "\^\/_matrix\/client\/\(\?:r0\|v3\)\/sync\$" \{\n {8}proxy_pass http:\/\/\$myelin_sync_pool;/);
    assert.match(stdout, / {4}listen 443 ssl;\n {4}server_name matrix\.example\.com;/);
  });

  test('prints a haproxy config; refuses an unknown proxy and a bad config', () => {
    const files = typicalDeployment();
    const haproxy = runMyelin(['proxy-config', 'haproxy', '-c', files.configPath]);
    assert.equal(haproxy.status, 0, haproxy.stderr);
    assert.match(
      haproxy.stdout,
      /backend myelin_client_workers_by_user\n {4}balance hash var\(txn\.myelin_user\)\n {4}hash-type consistent/,
    );
    const unknown = runMyelin(['proxy-config', 'apache', '-c', files.configPath]);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /proxy-config needs the proxy: nginx or haproxy/);
    const dir = tempDir();
    writeFileSync(join(dir, 'homeserver.yaml'), YAML.stringify({ server_name: 'x', stream_writers: { events: 'persister9' } }));
    const bad = runMyelin(['proxy-config', 'nginx', '-c', join(dir, 'homeserver.yaml')]);
    assert.equal(bad.status, 2);
    assert.match(
      bad.stderr,
      /stream_writers\.events: Instance 'persister9' is configured to write events but does not appear in `instance_map` config\./,
    );
  });
});

describe('myelin systemd', () => {
  test('prints myelin.service and myelin-worker@.service for the config', () => {
    const files = writeDeployment();
    const { status, stdout, stderr } = runMyelin(['systemd', '-c', files.configPath, '--user', 'matrix-synapse', '--group', 'clubmatrix']);
    assert.equal(status, 0, stderr);
    assert.match(stdout, /# ---- \/etc\/systemd\/system\/myelin\.service ----/);
    assert.match(stdout, new RegExp(`ExecStart=${process.execPath} ${MYELIN_BIN} start --no-workers -c ${files.configPath}\n`));
    assert.match(stdout, /# ---- \/etc\/systemd\/system\/myelin-worker@\.service ----/);
    assert.match(
      stdout,
      new RegExp(`ExecStart=${process.execPath} ${MYELIN_BIN} worker -c ${files.configPath} -c ${files.dir}/workers/%i\\.yaml\n`),
    );
    assert.match(stdout, new RegExp(`AssertPathExists=${files.dir}/workers/%i\\.yaml`));
    assert.match(stdout, /PartOf=myelin\.service\n/);
    assert.match(stdout, /After=myelin\.service\n/);
    assert.match(stdout, /WantedBy=myelin\.service\n/);
    assert.match(stdout, /User=matrix-synapse\nGroup=clubmatrix\n/);
    assert.match(stdout, /RuntimeDirectory=myelin\nRuntimeDirectoryMode=2770\nRuntimeDirectoryPreserve=yes\n/);
  });

  test('the runtime directory is the one under /run that holds the sockets', () => {
    assert.equal(socketRuntimeDirectory(['/run/matrix-synapse/replication.sock', '/run/matrix-synapse/workers/g1.sock']), 'matrix-synapse');
    assert.equal(socketRuntimeDirectory(['/tmp/x.sock']), undefined);
    assert.equal(socketRuntimeDirectory(['/run/a/x.sock', '/run/b/y.sock']), undefined);
    const units = systemdUnits({
      configPath: '/etc/myelin/homeserver.yaml',
      user: 'u',
      group: 'g',
      runtimeDirectory: 'matrix-synapse',
      node: '/usr/bin/node',
      bin: '/opt/myelin/bin/myelin',
    });
    assert.match(units, /RuntimeDirectory=matrix-synapse\n/);
    assert.match(
      units,
      new RegExp(
        /ExecStart=\/usr\/bin\/node \/opt\/myelin\/bin\/myelin worker /.source +
          /-c \/etc\/myelin\/homeserver\.yaml -c \/etc\/myelin\/workers\/%i\.yaml\n/.source,
      ),
    );
  });
});

describe('myelin start with workers', () => {
  test('refuses a workers directory whose files are wrong, before starting anything', () => {
    const files = writeDeployment((run, dir) => ({
      main: { database: { name: 'sqlite3', args: { database: join(dir, 'homeserver.db') } } },
      workers: {
        generic1: { worker_listeners: [socketListener(join(run, 'generic1.sock'), ['client'])] },
        generic2: { worker_name: 'generic1', worker_listeners: [socketListener(join(run, 'generic2.sock'), ['client'])] },
      },
    }));
    const { status, stderr } = runMyelin(['start', '-c', files.configPath]);
    assert.equal(status, 2, stderr);
    assert.match(stderr, /homeserver\.yaml: database: workers need PostgreSQL/);
  });

  test('--workers must exist and excludes --no-workers', () => {
    const files = writeDeployment();
    const missing = runMyelin(['start', '-c', files.configPath, '--workers', join(files.dir, 'nope')]);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /nope: the workers directory does not exist/);
    const both = runMyelin(['start', '-c', files.configPath, '--workers', files.dir, '--no-workers']);
    assert.equal(both.status, 2);
    assert.match(both.stderr, /--workers and --no-workers exclude each other/);
  });
});

describe('the built-in router on main', () => {
  test('a router listener forwards to main when there are no workers: a client uses the server through it', async () => {
    const dir = tempDir('myelin-router-main-');
    const run = join(dir, 'run');
    mkdirSync(run);
    const port = await freePort();
    writeFileSync(join(dir, 'signing.key'), formatSigningKeyFile([generateSigningKey()]));
    const configPath = join(dir, 'homeserver.yaml');
    writeFileSync(
      configPath,
      YAML.stringify({
        server_name: 'localhost',
        signing_key_path: join(dir, 'signing.key'),
        database: { name: 'sqlite3', args: { database: join(dir, 'homeserver.db') } },
        listeners: [
          { type: 'http', port, bind_addresses: ['127.0.0.1'], x_forwarded: false, resources: [{ names: ['router'] }] },
          socketListener(join(run, 'client.sock'), ['client'], { x_forwarded: true }),
        ],
        enable_registration: true,
        enable_registration_without_verification: true,
        ...GENEROUS_RATE_LIMITS,
      }),
    );
    const main = spawnMyelin(['start', '-c', configPath]);
    try {
      await main.waitFor(/listening on http:\/\/127\.0\.0\.1:\d+ \(router\)/);
      const base = `http://127.0.0.1:${port}`;
      const versions = await fetch(`${base}/_matrix/client/versions`);
      assert.equal(versions.status, 200);
      assert.ok(((await versions.json()) as { versions: string[] }).versions.length > 0);

      const register = await fetch(`${base}/_matrix/client/v3/register`, {
        method: 'POST',
        body: JSON.stringify({ username: 'alice', password: 'a long password', auth: { type: 'm.login.dummy' } }),
      });
      const account = (await register.json()) as { access_token: string; user_id: string };
      assert.equal(register.status, 200, JSON.stringify(account));
      const whoami = await fetch(`${base}/_matrix/client/v3/account/whoami`, {
        headers: { authorization: `Bearer ${account.access_token}` },
      });
      assert.deepEqual(((await whoami.json()) as { user_id: string }).user_id, '@alice:localhost');
      const sync = await fetch(`${base}/_matrix/client/v3/sync?timeout=0`, {
        headers: { authorization: `Bearer ${account.access_token}` },
      });
      assert.equal(sync.status, 200);
      assert.ok(((await sync.json()) as { next_batch: string }).next_batch);

      const unknown = await fetch(`${base}/_matrix/client/v3/no/such/endpoint`);
      assert.equal(unknown.status, 404);
      assert.equal(((await unknown.json()) as { errcode: string }).errcode, 'M_UNRECOGNIZED');
      const health = await fetch(`${base}/health`);
      assert.equal(await health.text(), 'OK');
    } finally {
      assert.equal(await main.stop(), 0, main.output());
    }
  });
});
