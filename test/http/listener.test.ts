import assert from 'node:assert/strict';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import pino from 'pino';
import type { ListenerConfig } from '../../src/config/schema.js';
import { createDispatcher } from '../../src/http/dispatch.js';
import { ListenerError, startListener, type RunningListener } from '../../src/http/listener.js';
import { defineRoute } from '../../src/http/route.js';
import { request } from '../helpers/http.js';
import { tempDir } from '../helpers/tmp.js';

const log = pino({ level: 'silent' });

const routes = [
  defineRoute<null>({ name: 'test.get', method: 'GET', paths: '/_matrix/client/v3/thing/{id}', resource: 'client', handle: (req) => ({ body: { id: req.params.id, q: req.query.get('q') } }) }),
  defineRoute<null>({ name: 'test.put', method: 'PUT', paths: '/_matrix/client/v3/thing/{id}', resource: 'client', handle: (req) => ({ body: { got: req.body } }) }),
  defineRoute<null>({ name: 'test.optional', method: 'POST', paths: '/_matrix/client/v3/optional', resource: 'client', body: 'json-optional', handle: (req) => ({ body: { got: req.body } }) }),
  defineRoute<null>({ name: 'test.small', method: 'POST', paths: '/_matrix/client/v3/small', resource: 'client', maxBodyBytes: 100, handle: () => ({ body: {} }) }),
  defineRoute<null>({ name: 'test.crash', method: 'GET', paths: '/_matrix/client/v3/crash', resource: 'client', handle: () => { throw new Error('bug'); } }),
  defineRoute<null>({
    name: 'test.slow', method: 'GET', paths: '/_matrix/client/v3/slow', resource: 'client',
    handle: async () => { await new Promise((r) => setTimeout(r, 300)); return { body: { slow: true } }; },
  }),
  defineRoute<null>({ name: 'test.replication', method: 'GET', paths: '/_synapse/replication/ping', resource: 'replication', handle: () => ({ body: { pong: true } }) }),
  defineRoute<null>({ name: 'health', method: 'GET', paths: '/health', resource: 'health', handle: () => ({ body: 'OK', contentType: 'text/plain' }) }),
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
    const listener = await start(listenerConfig({ path, mode: 0o660, resources: [{ names: ['replication'], compress: false }] }), ['replication']);
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
    await assert.rejects(start(listenerConfig({ path })), (err: Error) => err instanceof ListenerError && /another process is listening on/.test(err.message));
  });

  test('a missing directory is a clear error', async () => {
    await assert.rejects(start(listenerConfig({ path: '/nonexistent-myelin/x.sock' })), /the directory \/nonexistent-myelin does not exist/);
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
    const badUtf8 = await request(target, 'PUT', '/_matrix/client/v3/thing/x', { body: Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]) });
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
