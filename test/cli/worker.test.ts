import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import YAML from 'yaml';
import { workerConfigPaths } from '../../src/cli/worker.js';
import { runMyelin } from '../helpers/myelin.js';
import { tempDir, writeFiles } from '../helpers/tmp.js';

describe('myelin worker', () => {
  test('needs the shared config and the worker file', () => {
    const { status, stderr } = runMyelin(['worker', '-c', '/nonexistent/homeserver.yaml']);
    assert.equal(status, 2);
    assert.match(stderr, /worker needs the shared config and the worker file: -c homeserver\.yaml -c workers\/NAME\.yaml/);
  });

  test('refuses a worker on SQLite, without Redis or without main in instance_map, naming file and key', () => {
    const dir = tempDir();
    writeFiles(dir, {
      'homeserver.yaml': YAML.stringify({ server_name: 'example.com' }),
      'workers/generic1.yaml': YAML.stringify({ worker_app: 'synapse.app.generic_worker', worker_name: 'generic1' }),
    });
    const { status, stderr } = runMyelin(['worker', '-c', join(dir, 'homeserver.yaml'), '-c', join(dir, 'workers', 'generic1.yaml')]);
    assert.equal(status, 2, stderr);
    assert.match(stderr, /configuration error:/);
    assert.match(stderr, new RegExp(`${dir}/homeserver\\.yaml: database: workers need PostgreSQL`));
    assert.match(stderr, new RegExp(`${dir}/homeserver\\.yaml: redis: workers replicate through Redis`));
    assert.match(stderr, new RegExp(`${dir}/homeserver\\.yaml: instance_map: Missing data for a worker to connect to main process`));
  });

  test('refuses the main config given as a worker file', () => {
    const dir = tempDir();
    writeFiles(dir, {
      'homeserver.yaml': YAML.stringify({ server_name: 'example.com' }),
      'other.yaml': YAML.stringify({ enable_registration: false }),
    });
    const { status, stderr } = runMyelin(['worker', '-c', join(dir, 'homeserver.yaml'), '-c', join(dir, 'other.yaml')]);
    assert.equal(status, 2);
    assert.match(stderr, /worker_app: required key is missing: .* describe the main process, not a worker/);
  });

  test('reads the conf.d/ beside the first file, as `start` does, unless it is named already', () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'conf.d'));
    writeFiles(dir, { 'homeserver.yaml': '', 'workers/w.yaml': '' });
    const shared = join(dir, 'homeserver.yaml');
    const worker = join(dir, 'workers', 'w.yaml');
    assert.deepEqual(workerConfigPaths([shared, worker]), [shared, join(dir, 'conf.d'), worker]);
    assert.deepEqual(workerConfigPaths([shared, join(dir, 'conf.d'), worker]), [shared, join(dir, 'conf.d'), worker]);
    assert.deepEqual(workerConfigPaths([shared, join(dir, 'conf.d', 'redis.yaml'), worker]), [
      shared,
      join(dir, 'conf.d', 'redis.yaml'),
      worker,
    ]);
    const bare = tempDir();
    writeFiles(bare, { 'homeserver.yaml': '' });
    assert.deepEqual(workerConfigPaths([join(bare, 'homeserver.yaml'), worker]), [join(bare, 'homeserver.yaml'), worker]);
  });
});
