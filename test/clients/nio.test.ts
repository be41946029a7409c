// matrix-nio (Debian's python3-matrix-nio, through /usr/bin/python3) against the real server:
// an independent client implementation running the same core flow as the matrix-js-sdk test.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { forEachBackend } from '../helpers/backends.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const script = join(dirname(fileURLToPath(import.meta.url)), 'nio_flow.py');

forEachBackend('matrix-nio against myelin', (backend) => {
  let server: ServerProcess;

  before(async () => {
    server = await startServerProcess({ config: { database: await backend.databaseConfig() } });
  });
  after(async () => {
    await server?.stop();
  });

  test('matrix-nio: register, invite, join, messages, typing, receipts, display name, pagination, redaction, ban', () => {
    const run = spawnSync('/usr/bin/python3', [script, server.baseUrl], { encoding: 'utf8', timeout: 180_000 });
    assert.equal(run.status, 0, `nio flow failed:\n${run.stderr}\n${run.stdout}`);
    const results = JSON.parse(run.stdout.trim().split('\n').pop()!);
    assert.equal(results.invite_seen, true);
    assert.equal(results.joined, true);
    assert.deepEqual(results.received, ['n0', 'n1', 'n2', 'n3', 'n4']);
    assert.equal(results.typing_seen, true);
    assert.equal(results.receipt_seen, true);
    assert.equal(results.displayname_seen, true);
    assert.deepEqual(results.paginated, ['n4', 'n3', 'n2', 'n1', 'n0']);
    assert.equal(results.redacted, true);
    assert.equal(results.banned, true);
    assert.equal(results.rejoin_refused, true);
  });
});
