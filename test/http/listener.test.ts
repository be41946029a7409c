import assert from 'node:assert/strict';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import pino from 'pino';
import type { ListenerConfig } from '../../src/config/schema.js';
import { createDispatcher } from '../../src/http/dispatch.js';
import { ListenerError, startListener, type RunningListener } from '../../src/http/listener.js';
import { optionalBody } from '../../src/api/schemas.js';
import { jsonObject } from '../../src/errors.js';
import { routeDefiner } from '../../src/http/route.js';
import { request } from '../helpers/http.js';
import { tempDir } from '../helpers/tmp.js';
import { eventually } from '../helpers/wait.js';

const log = pino({ level: 'silent' });
const defineRoute = routeDefiner<null>();

/** `/hold` answers once the test calls `release`. */
function gate() {
  let release!: () => void;
  const promise = new Promise<void>((resolve) => (release = resolve));
  return { promise, release, entered: 0 };
}
let held = gate();

const routes = [
  defineRoute({
    name: 'test.get',
    method: 'GET',
    paths: '/_matrix/client/v3/thing/{id}',
    resource: 'client',
    handle: (req) => ({ body: { id: req.params.id, q: req.query.get('q') } }),
  }),
  defineRoute({
    name: 'test.put',
    method: 'PUT',
    paths: '/_matrix/client/v3/thing/{id}',
    resource: 'client',
    body: jsonObject,
    handle: (req) => ({ body: { got: req.body } }),
  }),
  defineRoute({
    name: 'test.optional',
    method: 'POST',
    paths: '/_matrix/client/v3/optional',
    resource: 'client',
    body: optionalBody(jsonObject),
    handle: (req) => ({ body: { got: req.body } }),
  }),
  defineRoute({
    name: 'test.small',
    method: 'POST',
    paths: '/_matrix/client/v3/small',
    resource: 'client',
    body: jsonObject,
    maxBodyBytes: 100,
    handle: () => ({ body: {} }),
  }),
  defineRoute({
    name: 'test.crash',
    method: 'GET',
    paths: '/_matrix/client/v3/crash',
    resource: 'client',
    handle: () => {
      throw new Error('bug');
    },
  }),
  defineRoute({
    name: 'test.slow',
    method: 'GET',
    paths: '/_matrix/client/v3/slow',
    resource: 'client',
    handle: async () => {
      await new Promise((r) => setTimeout(r, 300));
      return { body: { slow: true } };
    },
  }),
  defineRoute({
    name: 'test.hold',
    method: 'GET',
    paths: '/_matrix/client/v3/hold',
    resource: 'client',
    handle: async () => {
      held.entered += 1;
      await held.promise;
      return { body: { held: true } };
    },
  }),
  defineRoute({
    name: 'test.replication',
    method: 'GET',
    paths: '/_synapse/replication/ping',
    resource: 'replication',
    handle: () => ({ body: { pong: true } }),
  }),
  defineRoute({
    name: 'health',
    method: 'GET',
    paths: '/health',
    resource: 'health',
    handle: () => ({ body: 'OK', contentType: 'text/plain' }),
  }),
];

const running: RunningListener[] = [];
after(async () => {
  await Promise.all(running.map((l) => l.close(0)));
});

function listenerConfig(overrides: Partial<ListenerConfig>): ListenerConfig {
  return { type: 'http', tls: false, x_forwarded: false, resources: [{ names: ['client'], compress: false }], ...overrides };
}

async function start(config: ListenerConfig, names: string[] = ['client', 'health']) {
  const dispatcher = createDispatcher({
    routes,
    resources: new Set(names as never[]),
    services: null,
    log,
    trustForwardedFor: false,
    shutdownSignal: new AbortController().signal,
  });
  const listener = await startListener(config, dispatcher, log);
  running.push(listener);
  return listener;
}

describe('UNIX socket listeners', () => {
  test("the seed's replication listener: mode 0660 gives a socket with mode 0660", async () => {
    const dir = tempDir();
    const path = join(dir, 'replication.sock');
    const listener = await start(listenerConfig({ path, mode: 0o660, resources: [{ names: ['replication'], compress: false }] }), [
      'replication',
    ]);
    const stat = statSync(path);
    assert.ok(stat.isSocket());
    assert.equal(stat.mode & 0o777, 0o660);
    const res = await request({ socketPath: path }, 'GET', '/_synapse/replication/ping');
    assert.deepEqual(res.json, { pong: true });
    await listener.close(1000);
    assert.equal(existsSync(path), false, 'the socket file is removed on close');
  });

  test('default mode is 0666', async () => {
    const path = join(tempDir(), 'client.sock');
    await start(listenerConfig({ path }));
    assert.equal(statSync(path).mode & 0o777, 0o666);
  });

  test('a stale socket file is replaced', async () => {
    const path = join(tempDir(), 'stale.sock');
    // A process that dies without cleaning up (kill -9) leaves its socket file behind.
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`]);
    await new Promise((r) => child.stdout.once('data', r));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    assert.ok(existsSync(path));
    await start(listenerConfig({ path }));
    const res = await request({ socketPath: path }, 'GET', '/health');
    assert.equal(res.text, 'OK');
  });

  test('a live socket is an error: another process is listening', async () => {
    const path = join(tempDir(), 'live.sock');
    await start(listenerConfig({ path }));
    await assert.rejects(
      start(listenerConfig({ path })),
      (err: Error) => err instanceof ListenerError && /another process is listening on/.test(err.message),
    );
  });

  test('a missing directory is a clear error', async () => {
    await assert.rejects(
      start(listenerConfig({ path: '/nonexistent-myelin/x.sock' })),
      /the directory \/nonexistent-myelin does not exist/,
    );
  });

  test('a regular file in the way is an error', async () => {
    const path = join(tempDir(), 'file.sock');
    writeFileSync(path, 'not a socket');
    await assert.rejects(start(listenerConfig({ path })), /exists and is not a socket/);
  });
});

describe('HTTP dispatch over TCP', async () => {
  const listener = await start(listenerConfig({ port: 0, bind_addresses: ['127.0.0.1'] }));
  const target = { baseUrl: listener.addresses[0] };

  test('routes with percent-decoded path parameters and a query', async () => {
    const res = await request(target, 'GET', '/_matrix/client/v3/thing/!room%3Aexample.com?q=1');
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { id: '!room:example.com', q: '1' });
    assert.equal(res.headers['access-control-allow-origin'], '*');
  });

  test('unknown path → 404 M_UNRECOGNIZED; known path with the wrong method → 405 M_UNRECOGNIZED', async () => {
    const missing = await request(target, 'GET', '/_matrix/client/v3/nothing');
    assert.equal(missing.status, 404);
    assert.equal(missing.json.errcode, 'M_UNRECOGNIZED');
    const wrong = await request(target, 'DELETE', '/_matrix/client/v3/thing/x');
    assert.equal(wrong.status, 405);
    assert.equal(wrong.json.errcode, 'M_UNRECOGNIZED');
  });

  test('OPTIONS preflight answers with the CORS headers on any path', async () => {
    const res = await request(target, 'OPTIONS', '/_matrix/client/v3/thing/x');
    assert.equal(res.status, 200);
    assert.equal(res.headers['access-control-allow-origin'], '*');
    assert.match(String(res.headers['access-control-allow-methods']), /PUT/);
    assert.match(String(res.headers['access-control-allow-headers']), /Authorization/);
  });

  test('body not JSON → 400 M_NOT_JSON; JSON but not an object → 400 M_BAD_JSON; invalid UTF-8 → M_NOT_JSON', async () => {
    assert.equal((await request(target, 'PUT', '/_matrix/client/v3/thing/x', { body: '{nope' })).json.errcode, 'M_NOT_JSON');
    assert.equal((await request(target, 'PUT', '/_matrix/client/v3/thing/x', { body: '' })).json.errcode, 'M_NOT_JSON');
    const array = await request(target, 'PUT', '/_matrix/client/v3/thing/x', { body: '[1]' });
    assert.equal(array.status, 400);
    assert.equal(array.json.errcode, 'M_BAD_JSON');
    const badUtf8 = await request(target, 'PUT', '/_matrix/client/v3/thing/x', {
      body: Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]),
    });
    assert.equal(badUtf8.json.errcode, 'M_NOT_JSON');
    const ok = await request(target, 'PUT', '/_matrix/client/v3/thing/x', { body: '{"a": "☃"}' });
    assert.deepEqual(ok.json, { got: { a: '☃' } });
  });

  test('an empty body is {} where the route allows it', async () => {
    assert.deepEqual((await request(target, 'POST', '/_matrix/client/v3/optional')).json, { got: {} });
  });

  test('a body over the limit → 413 M_TOO_LARGE', async () => {
    const res = await request(target, 'POST', '/_matrix/client/v3/small', { body: JSON.stringify({ x: 'y'.repeat(200) }) });
    assert.equal(res.status, 413);
    assert.equal(res.json.errcode, 'M_TOO_LARGE');
    const huge = await request(target, 'PUT', '/_matrix/client/v3/thing/x', { body: `{"x":"${'y'.repeat(200 * 65536)}"}` });
    assert.equal(huge.status, 413);
  });

  test('a handler bug is a 500 M_UNKNOWN, and the server keeps serving', async () => {
    const res = await request(target, 'GET', '/_matrix/client/v3/crash');
    assert.equal(res.status, 500);
    assert.equal(res.json.errcode, 'M_UNKNOWN');
    assert.equal((await request(target, 'GET', '/health')).text, 'OK');
  });

  test('HEAD is answered like GET without a body', async () => {
    const res = await request(target, 'HEAD', '/_matrix/client/v3/thing/x');
    assert.equal(res.status, 200);
    assert.equal(res.text, '');
  });

  test('a malformed percent-escape is a 404, not a crash', async () => {
    const res = await request(target, 'GET', '/_matrix/client/v3/thing/%E0%A4%A');
    assert.ok(res.status === 404 || res.status === 400, String(res.status));
  });

  test('only the named resource groups are served', async () => {
    const res = await request(target, 'GET', '/_synapse/replication/ping');
    assert.equal(res.status, 404);
  });
});

test('close lets in-flight requests finish, then stops accepting', async () => {
  const path = join(tempDir(), 'graceful.sock');
  const listener = await start(listenerConfig({ path }));
  const inFlight = request({ socketPath: path }, 'GET', '/_matrix/client/v3/slow');
  await new Promise((r) => setTimeout(r, 50));
  const closing = listener.close(5000);
  const res = await inFlight;
  assert.deepEqual(res.json, { slow: true });
  await closing;
  await assert.rejects(request({ socketPath: path }, 'GET', '/health'));
});

// ------------------------------------------------------------------------------------------------
// Connection limits

type Where = { baseUrl: string; port: number } | { socketPath: string };

/** A connection that sends nothing; `closed` turns true when the server closes it. */
interface SilentConnection {
  socket: Socket;
  closed: boolean;
}

function openConnection(where: Where): Promise<SilentConnection> {
  return new Promise((resolve, reject) => {
    const socket = 'socketPath' in where ? connect(where.socketPath) : connect(where.port, '127.0.0.1');
    const connection = { socket, closed: false };
    socket.on('data', () => undefined); // whatever the server says before closing
    socket.once('close', () => (connection.closed = true));
    socket.once('connect', () => resolve(connection));
    socket.once('error', reject);
  });
}

async function openSilentConnections(where: Where, count: number): Promise<SilentConnection[]> {
  const connections: SilentConnection[] = [];
  for (let i = 0; i < count; i++) connections.push(await openConnection(where));
  after(() => connections.forEach((c) => c.socket.destroy()));
  return connections;
}

async function startLimited(kind: 'TCP' | 'UNIX socket', limits: Partial<ListenerConfig>): Promise<Where> {
  if (kind === 'UNIX socket') {
    const socketPath = join(tempDir(), 'limited.sock');
    await start(listenerConfig({ path: socketPath, ...limits }));
    return { socketPath };
  }
  const listener = await start(listenerConfig({ port: 0, bind_addresses: ['127.0.0.1'], ...limits }));
  const baseUrl = listener.addresses[0]!;
  return { baseUrl, port: Number(new URL(baseUrl).port) };
}

describe('connection limits', () => {
  for (const kind of ['TCP', 'UNIX socket'] as const) {
    test(`${kind}: silent connections beyond max_connections cannot block /health; the longest-silent ones are closed first`, async () => {
      // The header timeout is far off: only the cap can close these connections during the test.
      const where = await startLimited(kind, { max_connections: 50, header_timeout: 600_000 });
      const silent = await openSilentConnections(where, 65);
      const open = () => silent.filter((c) => !c.closed).length;
      await eventually(() => open() <= 50, `at most 50 of 65 silent connections still open (${open()} are)`);
      assert.deepEqual(
        silent.map((c) => c.closed),
        silent.map((_, i) => i < 15),
        'the 15 connections closed to make room are the 15 oldest',
      );

      const res = await request(where, 'GET', '/health');
      assert.equal(res.status, 200);
      assert.equal(res.text, 'OK');
      // Its connection took the slot of the longest-silent one left.
      await eventually(() => silent[15]!.closed, 'the 16th silent connection closed to make room for /health');
      assert.equal(open(), 49);
    });

    test(`${kind}: with no silent connection to close, the longest-idle keep-alive connection makes room`, async () => {
      const where = await startLimited(kind, { max_connections: 2 });
      const keptAlive = [await openConnection(where), await openConnection(where)];
      after(() => keptAlive.forEach((c) => c.socket.destroy()));
      for (const connection of keptAlive) {
        let answer = '';
        connection.socket.on('data', (d: Buffer) => (answer += d.toString()));
        connection.socket.write('GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n');
        await eventually(() => /\r\n\r\n(2\r\n)?OK/.test(answer), 'the answer to GET /health');
      }
      assert.equal((await request(where, 'GET', '/health')).text, 'OK');
      await eventually(() => keptAlive[0]!.closed, 'the first (longest-idle) connection closed');
      assert.equal(keptAlive[1]!.closed, false);
    });

    test(`${kind}: when every connection has a request in flight, a new one gets 503 M_UNKNOWN, and is served once one ends`, async () => {
      held = gate();
      const where = await startLimited(kind, { max_connections: 2 });
      const busy = [request(where, 'GET', '/_matrix/client/v3/hold'), request(where, 'GET', '/_matrix/client/v3/hold')];
      // (A connection whose request has not arrived yet counts as silent and could be closed.)
      await eventually(() => held.entered === 2, 'both /hold requests in flight');
      const refused = await request(where, 'GET', '/health');
      assert.equal(refused.status, 503);
      assert.equal(refused.json.errcode, 'M_UNKNOWN');
      assert.equal(typeof refused.json.error, 'string');
      assert.equal(refused.headers['retry-after'], '1');
      held.release();
      for (const res of await Promise.all(busy)) assert.deepEqual(res.json, { held: true });
      assert.equal((await request(where, 'GET', '/health')).text, 'OK');
    });

    test(`${kind}: a silent connection is closed after header_timeout, an idle keep-alive one after keep_alive_timeout`, async () => {
      const where = await startLimited(kind, { header_timeout: 500, keep_alive_timeout: 500 });
      const [silent] = await openSilentConnections(where, 1);
      const keptAlive = await openConnection(where);
      after(() => keptAlive.socket.destroy());
      let answer = '';
      keptAlive.socket.on('data', (d: Buffer) => (answer += d.toString()));
      keptAlive.socket.write('GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n');
      await eventually(() => /\r\n\r\n(2\r\n)?OK/.test(answer), 'the answer to GET /health');
      assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(answer, /\r\nConnection: keep-alive\r\n/i);
      // Generous deadlines: the defaults (30 s and 65 s) would be far beyond them.
      await eventually(() => silent!.closed, 'the silent connection closed', 20_000);
      await eventually(() => keptAlive.closed, 'the idle keep-alive connection closed', 20_000);
    });
  }
});
