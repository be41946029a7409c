import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { parseByteSize, parseFileMode } from '../../src/config/schema.js';
import { tempDir, writeFiles } from '../helpers/tmp.js';

/** Loads `files` from a fresh directory; returns the config and the warnings. */
function load(files: Record<string, string>, args: string[] = ['homeserver.yaml']) {
  const dir = tempDir();
  writeFiles(dir, files);
  const warnings: string[] = [];
  const config = loadConfig(
    args.map((a) => join(dir, a)),
    { warn: (w) => warnings.push(w) },
  );
  return { config, warnings, dir };
}

function loadError(files: Record<string, string>, args: string[] = ['homeserver.yaml']): string[] {
  try {
    load(files, args);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return [...err.problems];
  }
  assert.fail('expected the config to be rejected');
}

const MINIMAL = 'server_name: example.com\n';

describe('config loading', () => {
  test('the seed guide: homeserver.yaml with a replication socket listener plus conf.d/redis.yaml', () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'run'));
    writeFiles(dir, {
      'homeserver.yaml': `server_name: matrix.example.com
listeners:
  - port: 8008
    bind_addresses: ['127.0.0.1']
    type: http
    resources:
      - names: [client, federation]
  - path: ${dir}/run/replication.sock
    mode: 0660
    type: http
    resources:
      - names:
        - replication
`,
      'conf.d/redis.yaml': `redis:
  enabled: true
  path: /run/redis/redis-server.sock
`,
    });
    const config = loadConfig([join(dir, 'homeserver.yaml')]);
    assert.equal(config.redis.enabled, true);
    assert.equal(config.redis.path, '/run/redis/redis-server.sock');
    const replication = config.listeners[1]!;
    assert.equal(replication.path, `${dir}/run/replication.sock`);
    assert.equal(replication.mode, 0o660);
    assert.deepEqual(replication.resources[0]!.names, ['replication']);
    assert.deepEqual(config.origin.files, [join(dir, 'homeserver.yaml'), join(dir, 'conf.d', 'redis.yaml')]);
  });

  test('mode 0660, "0660", "660" and 0o660 all mean octal 0660', () => {
    for (const written of ['0660', '"0660"', '"660"', '0o660', "'0o660'"]) {
      const dir = tempDir();
      const { config } = load({
        'homeserver.yaml': `${MINIMAL}listeners:\n  - path: ${dir}/x.sock\n    mode: ${written}\n    type: http\n`,
      });
      assert.equal(config.listeners[0]!.mode, 0o660, `mode: ${written}`);
    }
    assert.equal(parseFileMode('0600'), 0o600);
    assert.equal(parseFileMode(0o777), 0o777);
    assert.equal(parseFileMode('0999'), undefined);
    assert.equal(parseFileMode(660), undefined, 'a decimal 660 lost its leading zero: ambiguous, refused');
  });

  test('later files override earlier ones key by key at the top level', () => {
    const { config } = load(
      {
        'a.yaml': `${MINIMAL}enable_registration: true\nredis: {enabled: true, host: a}\n`,
        'b.yaml': 'redis: {enabled: false}\n',
      },
      ['a.yaml', 'b.yaml'],
    );
    assert.equal(config.enable_registration, true);
    assert.equal(config.redis.enabled, false);
    assert.equal(config.redis.host, 'localhost', 'redis was replaced as a whole, not merged');
  });

  test('a directory argument loads its *.yaml files sorted by name', () => {
    const { config } = load(
      {
        'conf/20-b.yaml': 'enable_registration: false\n',
        'conf/10-a.yaml': `${MINIMAL}enable_registration: true\n`,
        'conf/notes.txt': 'x',
      },
      ['conf'],
    );
    assert.equal(config.enable_registration, false);
    assert.equal(config.origin.files.length, 2);
  });

  test('defaults: SQLite beside the config, media store, upload size', () => {
    const { config, dir } = load({ 'homeserver.yaml': MINIMAL });
    assert.deepEqual(config.database, { name: 'sqlite3', args: { database: join(dir, 'homeserver.db') } });
    assert.equal(config.media_store_path, join(dir, 'media_store'));
    assert.equal(config.max_upload_size, 50 * 1024 * 1024);
    assert.equal(config.enable_registration, false);
    assert.equal(config.run_background_tasks_on, 'main');
  });

  test('relative paths resolve against the directory of the file that sets them', () => {
    const { config, dir } = load({
      'homeserver.yaml': `${MINIMAL}signing_key_path: keys/k.key\ndatabase: {name: sqlite3, args: {database: db/h.db}}\n`,
      'conf.d/m.yaml': 'media_store_path: media\n',
    });
    assert.equal(config.signing_key_path, join(dir, 'keys/k.key'));
    assert.equal(config.database.args.database, join(dir, 'db/h.db'));
    assert.equal(config.media_store_path, join(dir, 'conf.d/media'));
  });

  test('PostgreSQL settings as Synapse writes them', () => {
    const { config } = load({
      'homeserver.yaml':
        `${MINIMAL}database:\n  name: psycopg2\n  args:\n    user: synapse\n    password: pw\n    dbname: synapse\n` +
        `    host: /run/postgresql\n    cp_min: 5\n    cp_max: 10\n`,
    });
    assert.equal(config.database.name, 'psycopg2');
    assert.equal(config.database.args.host, '/run/postgresql');
    assert.equal(config.database.args.cp_max, 10);
  });

  test('sizes: 50M, 1K, 1048576', () => {
    assert.equal(parseByteSize('50M'), 50 * 1024 * 1024);
    assert.equal(parseByteSize('1K'), 1024);
    assert.equal(parseByteSize(1048576), 1048576);
    assert.equal(parseByteSize('lots'), undefined);
  });

  test('secrets can come from files', () => {
    const { config } = load({
      'homeserver.yaml': `${MINIMAL}registration_shared_secret_path: secret.txt\nworker_replication_secret_path: repl.txt\n`,
      'secret.txt': 'abc\n',
      'repl.txt': 'def',
    });
    assert.equal(config.registration_shared_secret, 'abc');
    assert.equal(config.worker_replication_secret, 'def');
  });

  test('worker files: worker_app, worker_name, worker_listeners', () => {
    const dir = tempDir();
    const { config } = load(
      {
        'homeserver.yaml': MINIMAL,
        'workers/w1.yaml':
          `worker_app: synapse.app.generic_worker\nworker_name: w1\nworker_listeners:\n  - type: http\n    ` +
          `path: ${dir}/w1.sock\n    mode: 0660\n    resources: [{names: [client]}]\n`,
      },
      ['homeserver.yaml', 'workers/w1.yaml'],
    );
    assert.equal(config.worker_name, 'w1');
    assert.equal(config.worker_listeners[0]!.mode, 0o660);
  });

  test('unknown keys warn with the file and key, and do not fail', () => {
    const { warnings } = load({ 'homeserver.yaml': `${MINIMAL}report_stats: false\nredis: {enabled: false, sentinel: x}\n` });
    assert.equal(warnings.length, 2);
    assert.match(warnings[0]!, /homeserver\.yaml: report_stats: unknown key/);
    assert.match(warnings[1]!, /homeserver\.yaml: redis\.sentinel: unknown key/);
  });
});

describe('config errors name the file, the key path, what was expected and what was found', () => {
  test('wrong type', () => {
    const problems = loadError({ 'homeserver.yaml': MINIMAL, 'conf.d/redis.yaml': 'redis:\n  enabled: true\n  path: 42\n' });
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /conf\.d\/redis\.yaml: redis\.path: expected a string, got 42$/);
  });

  test('missing required key', () => {
    const problems = loadError({ 'homeserver.yaml': 'enable_registration: true\n' });
    assert.match(problems[0]!, /homeserver\.yaml: server_name: required key is missing/);
  });

  test('bad mode', () => {
    const dir = tempDir();
    const problems = loadError({
      'homeserver.yaml': `${MINIMAL}listeners:\n  - path: ${dir}/r.sock\n    mode: rw-rw----\n    type: http\n`,
    });
    assert.match(problems[0]!, /homeserver\.yaml: listeners\[0\]\.mode: expected an octal file mode such as 0660, got "rw-rw----"/);
  });

  test('missing socket directory', () => {
    const problems = loadError({
      'homeserver.yaml':
        `${MINIMAL}listeners:\n  - port: 8008\n    type: http\n  - path: ` +
        `/nonexistent-dir-for-myelin/replication.sock\n    mode: 0660\n    type: http\n`,
    });
    assert.match(problems[0]!, /homeserver\.yaml: listeners\[1\]\.path: the directory \/nonexistent-dir-for-myelin does not exist/);
  });

  test('every problem is reported at once', () => {
    const problems = loadError({ 'homeserver.yaml': 'server_name: 7\nenable_registration: "yes please"\nlisteners: {}\n' });
    assert.equal(problems.length, 3);
    assert.ok(problems.some((p) => /server_name: expected a string, got 7/.test(p)));
    assert.ok(problems.some((p) => /enable_registration: expected a boolean \(true or false\), got "yes please"/.test(p)));
    assert.ok(problems.some((p) => /listeners: expected a list, got a mapping/.test(p)));
  });

  test('bad enum value, bad listener shape, conflicting secrets', () => {
    const problems = loadError({
      'homeserver.yaml':
        `${MINIMAL}database: {name: mysql}\nlisteners: [{type: http}]\nregistration_shared_secret: a\n` +
        `registration_shared_secret_path: b\n`,
    });
    assert.ok(
      problems.some((p) => /database\.name: expected one of "sqlite3", "psycopg2", "postgres", got "mysql"/.test(p)),
      problems.join('\n'),
    );
    assert.ok(
      problems.some((p) => /listeners\[0\]\.port: a listener needs either `port` or `path`/.test(p)),
      problems.join('\n'),
    );
  });

  test('YAML syntax errors name the file and line', () => {
    const problems = loadError({ 'homeserver.yaml': 'server_name: a\nlisteners: [\n' });
    assert.match(problems[0]!, /homeserver\.yaml: line \d+: invalid YAML/);
  });

  test('a missing config file', () => {
    const problems = loadError({}, ['nope.yaml']);
    assert.match(problems[0]!, /nope\.yaml: the config file does not exist/);
  });
});
