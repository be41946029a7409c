// File modes of a server's data: the database holds every message and every password and token
// hash, so it is created readable by its user only (as the signing key), and `myelin check` fails
// on a database or media store other users can read.

import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runMyelin, spawnMyelin, type MyelinProcess } from '../helpers/myelin.js';
import { tempDir } from '../helpers/tmp.js';

const modeOf = (path: string) => statSync(path).mode & 0o777;

describe('file modes of a fresh server', () => {
  let dir: string;
  let server: MyelinProcess;
  let config: string;
  let data: string;

  before(async () => {
    dir = tempDir();
    // A data directory that does not exist yet, two levels deep.
    data = join(dir, 'var', 'myelin');
    const generated = runMyelin(['generate-config', '--server-name', 'example.org', '--config-dir', join(dir, 'etc'), '--data-dir', data]);
    assert.equal(generated.status, 0, generated.stderr);
    config = join(dir, 'etc', 'homeserver.yaml');
    // On a UNIX socket, so that every other line of `myelin check` passes.
    writeFileSync(
      config,
      readFileSync(config, 'utf8').replace(
        /listeners:[\s\S]*?database:/,
        `listeners:\n  - path: ${join(dir, 'client.sock')}\n    type: http\n    resources:\n      - names: [client]\ndatabase:`,
      ),
    );
    server = spawnMyelin(['start', '-c', config]);
    await server.waitFor(/Myelin is serving example\.org/);
  });

  after(async () => {
    await server?.stop();
  });

  test('the config and data directories are 0700; the database and its -wal and -shm files 0600', () => {
    assert.equal(modeOf(join(dir, 'etc')), 0o700);
    assert.equal(modeOf(join(dir, 'var')), 0o700);
    assert.equal(modeOf(data), 0o700);
    const db = join(data, 'homeserver.db');
    for (const file of [db, `${db}-wal`, `${db}-shm`]) {
      assert.ok(existsSync(file), `${file} exists while the server runs`);
      assert.equal(modeOf(file).toString(8), '600', file);
    }
  });

  test('myelin check passes on them, and fails on a database or media store other users can read', () => {
    const db = join(data, 'homeserver.db');
    const healthy = runMyelin(['check', '-c', config]);
    assert.equal(healthy.status, 0, healthy.stdout);
    assert.match(healthy.stdout, /^✓ database files \(.*homeserver\.db.*\): mode 0600, 0600, 0600, not readable by other users$/m);

    chmodSync(db, 0o644);
    const readable = runMyelin(['check', '-c', config]);
    assert.equal(readable.status, 1, readable.stdout);
    assert.match(readable.stdout, new RegExp(`^✗ database files: ${db} is mode 0644 \\(other users may read\\); chmod 600 them$`, 'm'));
    chmodSync(db, 0o600);

    const media = join(data, 'media_store');
    mkdirSync(media, { mode: 0o755 });
    chmodSync(media, 0o755);
    const mediaReadable = runMyelin(['check', '-c', config]);
    assert.equal(mediaReadable.status, 1, mediaReadable.stdout);
    assert.match(
      mediaReadable.stdout,
      new RegExp(`^✗ media store ${media}: mode 0755, other users may list, enter it; chmod 700 it$`, 'm'),
    );
    chmodSync(media, 0o700);
    const fixed = runMyelin(['check', '-c', config]);
    assert.equal(fixed.status, 0, fixed.stdout);
    assert.match(fixed.stdout, new RegExp(`^✓ media store ${media}: mode 0700, not readable by other users$`, 'm'));
  });
});
