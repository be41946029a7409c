import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parseSigningKeyFile } from '../../src/core/signing.js';
import { request } from '../helpers/http.js';
import { runMyelin, spawnMyelin } from '../helpers/myelin.js';
import { tempDir } from '../helpers/tmp.js';

describe('myelin CLI', () => {
  test('--version and --help exit 0; an unknown command is a usage error (2)', () => {
    const version = runMyelin(['--version']);
    assert.equal(version.status, 0);
    assert.match(version.stdout, /^myelin \d+\.\d+\.\d+/);
    const help = runMyelin(['--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /generate-config/);
    const bad = runMyelin(['frobnicate']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /unknown command "frobnicate"/);
    assert.equal(runMyelin(['start', '--bogus']).status, 2);
  });

  test('generate-config writes homeserver.yaml and a Synapse-format signing key, and refuses to overwrite', () => {
    const dir = tempDir();
    const result = runMyelin([
      'generate-config',
      '--server-name',
      'example.org',
      '--config-dir',
      join(dir, 'etc'),
      '--data-dir',
      join(dir, 'var'),
    ]);
    assert.equal(result.status, 0, result.stderr);
    const yaml = readFileSync(join(dir, 'etc', 'homeserver.yaml'), 'utf8');
    assert.match(yaml, /server_name: example\.org/);
    assert.match(yaml, /port: 8008/);
    assert.match(yaml, /- client\n\s+- federation/);
    assert.match(yaml, /name: sqlite3/);
    assert.match(yaml, new RegExp(`database: ${join(dir, 'var', 'homeserver.db')}`));
    assert.match(yaml, /registration_shared_secret: \S{20,}/);
    assert.match(yaml, /enable_registration: false/);
    const keyText = readFileSync(join(dir, 'etc', 'example.org.signing.key'), 'utf8');
    assert.match(keyText, /^ed25519 \S+ [A-Za-z0-9+/]{43}\n$/);
    assert.equal(parseSigningKeyFile(keyText).length, 1);
    assert.equal(statSync(join(dir, 'etc', 'example.org.signing.key')).mode & 0o777, 0o600);

    const again = runMyelin(['generate-config', '--server-name', 'example.org', '--config-dir', join(dir, 'etc')]);
    assert.equal(again.status, 2);
    assert.match(again.stderr, /already exists; refusing to overwrite/);
    assert.equal(readFileSync(join(dir, 'etc', 'example.org.signing.key'), 'utf8'), keyText);
  });

  test('generate-config needs its options', () => {
    assert.equal(runMyelin(['generate-config', '--server-name', 'x.org']).status, 2);
    const bad = runMyelin(['generate-config', '--server-name', 'not a name', '--config-dir', tempDir()]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /not a valid server name/);
  });

  test('routes prints the route registry as a table', () => {
    const result = runMyelin(['routes']);
    assert.equal(result.status, 0);
    assert.match(result.stdout, /^METHOD\s+PATH\s+RESOURCE\s+SERVED BY\s+STICKY/);
    assert.match(result.stdout, /GET\s+\/_matrix\/client\/versions\s+client\s+any\s+none/);
    assert.match(result.stdout, /GET\s+\/health\s+health/);
  });

  test('a bad config stops start-up with exit 2 and names the file and key', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'homeserver.yaml'), 'server_name: example.org\n');
    mkdirSync(join(dir, 'conf.d'));
    writeFileSync(join(dir, 'conf.d', 'redis.yaml'), 'redis:\n  enabled: true\n  path: 42\n');
    const result = runMyelin(['start', '-c', join(dir, 'homeserver.yaml')]);
    assert.equal(result.status, 2);
    assert.match(result.stderr, /conf\.d\/redis\.yaml: redis\.path: expected a string, got 42/);
  });

  test('a missing signing key is a configuration error naming the key', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'homeserver.yaml'), `server_name: example.org\nsigning_key_path: ${dir}/missing.key\n`);
    const result = runMyelin(['start', '-c', join(dir, 'homeserver.yaml')]);
    assert.equal(result.status, 2);
    assert.match(result.stderr, /homeserver\.yaml: signing_key_path: cannot read .*missing\.key: ENOENT/);
  });

  test('start serves /versions on a UNIX socket and stops cleanly on SIGTERM', async () => {
    const dir = tempDir();
    assert.equal(runMyelin(['generate-config', '--server-name', 'example.org', '--config-dir', dir]).status, 0);
    const socket = join(dir, 'client.sock');
    writeFileSync(
      join(dir, 'homeserver.yaml'),
      readFileSync(join(dir, 'homeserver.yaml'), 'utf8').replace(
        /listeners:[\s\S]*?database:/,
        `listeners:\n  - path: ${socket}\n    mode: 0660\n    type: http\n    resources:\n      - names: [client]\ndatabase:`,
      ),
    );
    const server = spawnMyelin(['start', '-c', join(dir, 'homeserver.yaml')]);
    await server.waitFor(/Myelin is serving example\.org/);
    assert.equal(statSync(socket).mode & 0o777, 0o660);
    const res = await request({ socketPath: socket }, 'GET', '/_matrix/client/versions');
    assert.equal(res.status, 200);
    assert.ok(res.json.versions.includes('v1.1'));
    assert.equal(await server.stop('SIGTERM'), 0);
    assert.equal(existsSync(socket), false);
    assert.ok(existsSync(join(dir, 'homeserver.db')));
  });

  test('the database remembers its server name', async () => {
    const dir = tempDir();
    assert.equal(runMyelin(['generate-config', '--server-name', 'one.org', '--config-dir', dir, '--port', '0']).status, 0);
    const first = spawnMyelin(['start', '-c', join(dir, 'homeserver.yaml')]);
    await first.waitFor(/Myelin is serving one\.org/);
    assert.equal(await first.stop(), 0);
    const config = join(dir, 'homeserver.yaml');
    writeFileSync(config, readFileSync(config, 'utf8').replace('server_name: one.org', 'server_name: two.org'));
    const second = runMyelin(['start', '-c', config]);
    assert.equal(second.status, 2);
    assert.match(second.stderr, /belongs to server_name "one\.org"/);
  });

  test("the README's first command: `myelin start` with no config generates ./data/homeserver.yaml and serves on 8008", async () => {
    const cwd = tempDir();
    const server = spawnMyelin(['start'], { cwd });
    await server.waitFor(/Myelin is serving localhost/);
    assert.ok(existsSync(join(cwd, 'data', 'homeserver.yaml')));
    assert.ok(existsSync(join(cwd, 'data', 'localhost.signing.key')));
    assert.equal(statSync(join(cwd, 'data')).mode & 0o777, 0o700, 'data/ is readable by its user only');
    assert.equal(statSync(join(cwd, 'data', 'homeserver.db')).mode & 0o777, 0o600, 'so is the database');
    const res = await request({ baseUrl: 'http://127.0.0.1:8008' }, 'GET', '/_matrix/client/versions');
    assert.equal(res.status, 200);
    assert.ok(Array.isArray(res.json.versions));
    assert.equal(await server.stop('SIGINT'), 0);
  });
});
