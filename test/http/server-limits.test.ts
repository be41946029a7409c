// Connection and file limits of a real `myelin start` process: the open-file limit it raises at
// start-up, and silent connections that would take all of its file descriptors.

import assert from 'node:assert/strict';
import { get } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { readFileLimit } from '../../src/util/fd-limit.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { eventually } from '../helpers/wait.js';

const servers: ServerProcess[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});

async function start(options: Parameters<typeof startServerProcess>[0]): Promise<ServerProcess> {
  const server = await startServerProcess(options);
  servers.push(server);
  return server;
}

/** GET on a connection of its own, given up after `ms` (a server out of descriptors never answers). */
function getOnNewConnection(url: string, ms: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { agent: false, timeout: ms }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${ms} ms`)));
    req.on('error', reject);
  });
}

function limitsOf(server: ServerProcess) {
  const limit = readFileLimit(server.process.child.pid);
  assert.ok(limit, 'the server process has /proc/<pid>/limits');
  return limit;
}

describe('open-file limit', () => {
  const own = readFileLimit();
  assert.ok(own, 'this system has /proc/self/limits');
  // Started with a soft limit below the hard one, as most systems start processes (1024).
  const low = Math.min(1024, Math.floor(own.hard / 2));

  test('the server runs with its soft open-file limit at the hard limit', async () => {
    const server = await start({ fileLimit: { soft: low } });
    assert.deepEqual(limitsOf(server), { soft: own.hard, hard: own.hard });
  });

  test('soft_file_limit sets the soft limit to its value', async () => {
    const wanted = low + 100;
    const server = await start({ fileLimit: { soft: low }, config: { soft_file_limit: wanted } });
    assert.deepEqual(limitsOf(server), { soft: wanted, hard: own.hard });
  });
});

test('with an open-file limit of 256, 300 silent connections cannot keep /versions from answering', async () => {
  // The default config: no connection limit is configured, the open-file limit is the only one.
  const server = await start({ fileLimit: { soft: 256, hard: 256 } });
  const port = Number(new URL(server.baseUrl).port);
  const sockets: Socket[] = [];
  after(() => sockets.forEach((s) => s.destroy()));
  for (let i = 0; i < 300; i++) {
    await new Promise<void>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      sockets.push(socket);
      socket.on('error', () => undefined); // closed by the server to make room
      socket.once('connect', resolve);
      socket.once('close', () => resolve());
    });
  }
  // A new client, on a new connection (fetch would reuse the one that saw the server start). A
  // generous deadline: before the server closed silent connections to make room, it stayed
  // unanswerable until Node's 66 s header timeout freed them.
  const versions = await eventually(
    async () => {
      const res = await getOnNewConnection(`${server.baseUrl}/_matrix/client/versions`, 5_000);
      return res.status === 200 ? (JSON.parse(res.body) as { versions: string[] }) : undefined;
    },
    '/versions to answer',
    30_000,
  );
  assert.ok(versions.versions.includes('v1.1'));
});
