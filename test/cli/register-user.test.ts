// `myelin register-user` against a real `myelin start` process, as an admin would use it.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Sqlite from 'better-sqlite3';
import YAML from 'yaml';
import { formatSigningKeyFile, generateSigningKey } from '../../src/core/signing.js';
import { request } from '../helpers/http.js';
import { runMyelin, spawnMyelin, type MyelinProcess } from '../helpers/myelin.js';
import { tempDir } from '../helpers/tmp.js';

describe('myelin register-user', () => {
  let dir: string;
  let configPath: string;
  let socket: string;
  let server: MyelinProcess;

  before(async () => {
    dir = tempDir('myelin-register-user-');
    socket = join(dir, 'client.sock');
    configPath = join(dir, 'homeserver.yaml');
    writeFileSync(join(dir, 'signing.key'), formatSigningKeyFile([generateSigningKey()]));
    writeFileSync(
      configPath,
      YAML.stringify({
        server_name: 'cli.test',
        signing_key_path: join(dir, 'signing.key'),
        listeners: [{ path: socket, type: 'http', resources: [{ names: ['client'] }] }],
        database: { name: 'sqlite3', args: { database: join(dir, 'homeserver.db') } },
        registration_shared_secret: 'cli-shared-secret',
        enable_registration: false,
      }),
    );
    server = spawnMyelin(['start', '-c', configPath]);
    await server.waitFor(/Myelin is serving cli\.test/);
  });
  after(async () => {
    await server.stop();
  });

  const login = (user: string, password: string) =>
    request({ socketPath: socket }, 'POST', '/_matrix/client/v3/login', {
      body: JSON.stringify({ type: 'm.login.password', user, password }),
      headers: { 'Content-Type': 'application/json' },
    });

  test('registers a user through the UNIX-socket client listener and prints the user id', async () => {
    const result = runMyelin(['register-user', '-c', configPath, '--user', 'Alice', '--password', 'alice-pw']);
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, '@alice:cli.test\n');
    const res = await login('alice', 'alice-pw');
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.user_id, '@alice:cli.test');
  });

  test('--admin makes a server admin', async () => {
    const result = runMyelin(['register-user', '-c', configPath, '--user', 'root', '--password', 'root-pw', '--admin']);
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, '@root:cli.test\n');
    const db = new Sqlite(join(dir, 'homeserver.db'), { readonly: true });
    try {
      const admins = db.prepare('SELECT user_id FROM users WHERE is_admin = 1').all();
      assert.deepEqual(admins, [{ user_id: '@root:cli.test' }]);
    } finally {
      db.close();
    }
  });

  test("a taken name fails with exit 1 and the server's error", () => {
    const result = runMyelin(['register-user', '-c', configPath, '--user', 'alice', '--password', 'other']);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /M_USER_IN_USE/);
  });

  test('a wrong shared secret fails with exit 1 (HMAC incorrect)', () => {
    const wrong = join(dir, 'wrong-secret.yaml');
    writeFileSync(wrong, YAML.stringify({ ...readConfig(), registration_shared_secret: 'not-the-secret' }));
    const result = runMyelin(['register-user', '-c', wrong, '--user', 'mallory', '--password', 'pw']);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /HMAC incorrect/);
  });

  test('usage errors exit 2: missing options, unknown options, no secret, no client listener', () => {
    for (const args of [
      ['register-user', '-c', configPath, '--password', 'pw'],
      ['register-user', '-c', configPath, '--user', 'bob'],
      ['register-user', '--user', 'bob', '--password', 'pw'],
      ['register-user', '-c', configPath, '--user', 'bob', '--password', 'pw', '--bogus'],
    ]) {
      const result = runMyelin(args);
      assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, /Usage:/);
    }
    const noSecret = join(dir, 'no-secret.yaml');
    const config = readConfig();
    delete config.registration_shared_secret;
    writeFileSync(noSecret, YAML.stringify(config));
    const secretless = runMyelin(['register-user', '-c', noSecret, '--user', 'bob', '--password', 'pw']);
    assert.equal(secretless.status, 2);
    assert.match(secretless.stderr, /registration_shared_secret/);

    const noClient = join(dir, 'no-client.yaml');
    writeFileSync(
      noClient,
      YAML.stringify({ ...readConfig(), listeners: [{ port: 0, type: 'http', resources: [{ names: ['federation'] }] }] }),
    );
    const clientless = runMyelin(['register-user', '-c', noClient, '--user', 'bob', '--password', 'pw']);
    assert.equal(clientless.status, 2);
    assert.match(clientless.stderr, /no http listener serves the client resource/);
  });

  test('an unreachable server fails with exit 1', () => {
    const result = runMyelin(['register-user', '-c', configPath, '--user', 'bob', '--password', 'pw', '--url', 'http://127.0.0.1:1']);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /cannot reach the homeserver/);
  });

  test('the command is listed in --help', async () => {
    const help = runMyelin(['--help']);
    assert.match(help.stdout, /register-user/);
    // The server is still up and serving after all of the above.
    assert.equal((await request({ socketPath: socket }, 'GET', '/_matrix/client/versions')).status, 200);
  });

  function readConfig(): Record<string, unknown> {
    return YAML.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
  }
});
