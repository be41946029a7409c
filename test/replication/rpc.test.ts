// Replication HTTP between processes: real requests over UNIX sockets and TCP, through the real
// replication route, dispatcher and listener.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { JsonValue } from '../../src/core/json.js';
import { MatrixError } from '../../src/errors.js';
import { DatabaseUnavailableError } from '../../src/storage/database.js';
import type { RunningListener } from '../../src/http/listener.js';
import {
  rpcPath,
  RpcClient,
  RpcServer,
  type CallerPositions,
  type RpcClientOptions,
  type RpcServerOptions,
} from '../../src/replication/rpc.js';
import { request } from '../helpers/http.js';
import { tempDir } from '../helpers/tmp.js';
import { sleep, startReplicationListener, unusedPort, type Where } from './rpc-helpers.js';

const SECRET = 'replication-secret';
const listeners: RunningListener[] = [];
const clients: RpcClient[] = [];
after(async () => {
  await Promise.all(listeners.map((l) => l.close(0)));
  await Promise.all(clients.map((c) => c.close()));
});

function newServer(options: Partial<RpcServerOptions> = {}): RpcServer {
  return new RpcServer({ secret: SECRET, currentPositions: () => ({ events: { persister1: 42 } }), ...options });
}

async function serve(server: RpcServer | undefined, where: Where, loseResponses = 0): Promise<RunningListener> {
  const listener = await startReplicationListener(server ? { rpcServer: server } : {}, where, { loseResponses });
  listeners.push(listener);
  return listener;
}

function newClient(instanceMap: RpcClientOptions['instanceMap'], options: Partial<RpcClientOptions> = {}): RpcClient {
  const client = new RpcClient({ instanceMap, secret: SECRET, callerPositions: () => ({ events: { worker1: 7 } }), ...options });
  clients.push(client);
  return client;
}

function socketPath(): string {
  return join(tempDir('myelin-rpc-'), 'replication.sock');
}

/** A handler that counts its runs and echoes its arguments. */
function counted(result: (args: JsonValue) => JsonValue | undefined = (args) => ({ echo: args })) {
  const runs: { args: JsonValue; positions: CallerPositions }[] = [];
  return {
    runs,
    handler: async (args: JsonValue, context: { positions: CallerPositions }) => {
      runs.push({ args, positions: context.positions });
      return result(args);
    },
  };
}

function assertMatrixError(err: unknown, status: number, errcode: string, message?: RegExp): true {
  assert.ok(err instanceof MatrixError, `expected a MatrixError, got ${String(err)}`);
  assert.equal(err.status, status, err.message);
  assert.equal(err.errcode, errcode);
  if (message) assert.match(err.message, message);
  return true;
}

describe('calls', () => {
  test('over a UNIX socket: arguments, result and positions both ways', async () => {
    const server = newServer();
    const echo = counted();
    server.register('test.echo', echo.handler);
    const path = socketPath();
    await serve(server, { path });
    const seen: { instance: string; positions: unknown }[] = [];
    const client = newClient(
      { persister1: { path } },
      { onCalleePositions: (instance, positions) => void seen.push({ instance, positions }) },
    );

    const result = await client.call('persister1', 'test.echo', ['!room:x', { type: 'm.text', n: 1 }, null]);
    assert.deepEqual(result, { echo: ['!room:x', { type: 'm.text', n: 1 }, null] });
    assert.deepEqual(echo.runs[0]?.positions, { events: { worker1: 7 } }, 'the handler sees the caller’s positions');
    assert.deepEqual(
      seen,
      [{ instance: 'persister1', positions: { events: { persister1: 42 } } }],
      'the caller learns the callee’s positions',
    );
  });

  test('over TCP', async () => {
    const server = newServer();
    server.register('test.echo', counted().handler);
    const port = await unusedPort();
    await serve(server, { port });
    const client = newClient({ persister1: { host: '127.0.0.1', port } });
    assert.deepEqual(await client.call('persister1', 'test.echo', 'hello'), { echo: 'hello' });
  });

  test('null stays null and a void result is undefined', async () => {
    const server = newServer();
    server.register('test.null', async () => null);
    server.register('test.void', async () => undefined);
    const path = socketPath();
    await serve(server, { path });
    const client = newClient({ main: { path } });
    assert.equal(await client.call('main', 'test.null', []), null);
    assert.equal(await client.call('main', 'test.void', []), undefined);
  });

  test('the call resolves only once the callee’s positions have been handled (read-your-writes)', async () => {
    const server = newServer();
    server.register('test.echo', counted().handler);
    const path = socketPath();
    await serve(server, { path });
    let caughtUp = false;
    const client = newClient(
      { main: { path } },
      {
        onCalleePositions: async () => {
          await sleep(100);
          caughtUp = true;
        },
      },
    );
    await client.call('main', 'test.echo', 1);
    assert.equal(caughtUp, true);
  });

  test('an instance missing from instance_map is an error at once', async () => {
    const client = newClient({});
    await assert.rejects(client.call('nowhere', 'test.echo', 1), (err) =>
      assertMatrixError(err, 500, 'M_UNKNOWN', /nowhere is not in instance_map/),
    );
  });
});

describe('the replication secret', () => {
  const server = newServer();
  const echo = counted();
  server.register('test.echo', echo.handler);
  const path = socketPath();
  const ready = serve(server, { path });

  test('a missing secret → 401, a wrong one → 403, and the handler does not run', async () => {
    await ready;
    const body = JSON.stringify({ args: 1, positions: {} });
    const missing = await request({ socketPath: path }, 'POST', rpcPath('test.echo', 't1'), { body });
    assert.equal(missing.status, 401);
    assert.equal(missing.json.errcode, 'M_MISSING_TOKEN');
    for (const authorization of ['Bearer wrong', `Bearer ${SECRET}x`, `Bearer ${SECRET.slice(0, -1)}`, SECRET, `Basic ${SECRET}`]) {
      const wrong = await request({ socketPath: path }, 'POST', rpcPath('test.echo', 't2'), {
        body,
        headers: { Authorization: authorization },
      });
      assert.equal(wrong.status, 403, authorization);
      assert.equal(wrong.json.errcode, 'M_FORBIDDEN');
    }
    const right = await request({ socketPath: path }, 'POST', rpcPath('test.echo', 't3'), {
      body,
      headers: { Authorization: `Bearer ${SECRET}` },
    });
    assert.equal(right.status, 200);
    assert.equal(echo.runs.length, 1, 'only the authenticated call ran');
  });

  test('a client with the wrong secret gets the 403 at once, without retrying', async () => {
    await ready;
    const client = newClient({ main: { path } }, { secret: 'not-it' });
    const runsBefore = echo.runs.length;
    const started = Date.now();
    await assert.rejects(client.call('main', 'test.echo', 1), (err) => assertMatrixError(err, 403, 'M_FORBIDDEN'));
    assert.ok(Date.now() - started < 1000);
    assert.equal(echo.runs.length, runsBefore);
  });

  test('a secret with spaces in it works end to end', async () => {
    const spaced = 'a shared secret';
    const spacedServer = newServer({ secret: spaced });
    const spacedEcho = counted();
    spacedServer.register('test.echo', spacedEcho.handler);
    const spacedPath = socketPath();
    await serve(spacedServer, { path: spacedPath });
    const client = newClient({ main: { path: spacedPath } }, { secret: spaced });
    assert.deepEqual(await client.call('main', 'test.echo', 3), { echo: 3 });
    const partial = await request({ socketPath: spacedPath }, 'POST', rpcPath('test.echo', 'p'), {
      body: JSON.stringify({ args: 4, positions: {} }),
      headers: { Authorization: 'Bearer a shared' },
    });
    assert.equal(partial.status, 403);
    assert.equal(spacedEcho.runs.length, 1);
  });

  test('without a configured secret every call is accepted', async () => {
    const open = newServer({ secret: undefined });
    open.register('test.echo', counted().handler);
    const openPath = socketPath();
    await serve(open, { path: openPath });
    const res = await request({ socketPath: openPath }, 'POST', rpcPath('test.echo', 't'), { body: '{"args": 2}' });
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { result: { echo: 2 }, positions: { events: { persister1: 42 } } });
  });
});

describe('errors', () => {
  test('a Matrix error round-trips with its status, errcode, message, extra fields and headers', async () => {
    const server = newServer();
    let runs = 0;
    server.register('test.limited', async () => {
      runs++;
      throw new MatrixError(429, 'M_LIMIT_EXCEEDED', 'Too many requests', { retry_after_ms: 2000 }, { 'Retry-After': '2' });
    });
    const path = socketPath();
    await serve(server, { path });
    const client = newClient({ main: { path } });
    const check = (err: unknown) => {
      assertMatrixError(err, 429, 'M_LIMIT_EXCEEDED', /^Too many requests$/);
      assert.deepEqual((err as MatrixError).extra, { retry_after_ms: 2000 });
      assert.deepEqual((err as MatrixError).headers, { 'Retry-After': '2' });
      return true;
    };
    await assert.rejects(client.call('main', 'test.limited', 1, { txnId: 'limited-1' }), check);
    // The error was the call's outcome: the same txn id gets it again without running twice.
    await assert.rejects(client.call('main', 'test.limited', 1, { txnId: 'limited-1' }), check);
    assert.equal(runs, 1);
  });

  test('a handler bug is a 500 that is not retried: the call fails at once (it would only fail again until the deadline)', async () => {
    const server = newServer();
    let runs = 0;
    server.register('test.buggy', async () => {
      runs++;
      throw new TypeError('a bug');
    });
    const path = socketPath();
    await serve(server, { path });
    const client = newClient({ main: { path } });
    await assert.rejects(client.call('main', 'test.buggy', 1, { txnId: 'buggy-1' }), (err) => assertMatrixError(err, 500, 'M_UNKNOWN'));
    assert.equal(runs, 1);
    // Not remembered either: the same txn id, called again on purpose, runs it again.
    await assert.rejects(client.call('main', 'test.buggy', 1, { txnId: 'buggy-1' }), (err) => assertMatrixError(err, 500, 'M_UNKNOWN'));
    assert.equal(runs, 2);
  });

  test('a 500 Matrix error thrown by the callee is not retried either', async () => {
    const server = newServer();
    let runs = 0;
    server.register('test.collision', async () => {
      runs++;
      throw new MatrixError(500, 'M_UNKNOWN', 'duplicate key value violates unique constraint');
    });
    const path = socketPath();
    await serve(server, { path });
    const client = newClient({ main: { path } });
    await assert.rejects(client.call('main', 'test.collision', 1), (err) => assertMatrixError(err, 500, 'M_UNKNOWN', /duplicate key/));
    assert.equal(runs, 1);
  });

  test('the callee’s database is unavailable for a while: a 503 that is retried with the same txn id until it succeeds', async () => {
    const server = newServer();
    let runs = 0;
    server.register('test.dbdown', async () => {
      runs++;
      if (runs < 3) throw new DatabaseUnavailableError('unreachable', 'database unreachable: connect ENOENT');
      return 'written';
    });
    const path = socketPath();
    await serve(server, { path });
    const client = newClient({ main: { path } });
    assert.equal(await client.call('main', 'test.dbdown', 1), 'written');
    assert.equal(runs, 3);
  });

  test('a 5xx Matrix error (e.g. a writer further on being down) is retried too', async () => {
    const server = newServer();
    let runs = 0;
    server.register('test.nested', async () => {
      runs++;
      if (runs < 3) throw new MatrixError(503, 'M_UNKNOWN', 'Instance persister2 unavailable');
      return 'done';
    });
    const path = socketPath();
    await serve(server, { path });
    const client = newClient({ main: { path } });
    assert.equal(await client.call('main', 'test.nested', 1), 'done');
    assert.equal(runs, 3);
  });
});

describe('idempotency', () => {
  test('the same txn id twice runs the handler once and answers the same', async () => {
    const server = newServer();
    let n = 0;
    const counter = counted(() => ++n);
    server.register('test.count', counter.handler);
    const path = socketPath();
    await serve(server, { path });
    const client = newClient({ main: { path } });
    assert.equal(await client.call('main', 'test.count', 1, { txnId: 'a' }), 1);
    assert.equal(await client.call('main', 'test.count', 1, { txnId: 'a' }), 1);
    assert.equal(await client.call('main', 'test.count', 1, { txnId: 'b' }), 2, 'another txn id is another call');
    assert.equal(counter.runs.length, 2);
  });

  test('two concurrent calls with one txn id run the handler once; both get its result', async () => {
    const server = newServer();
    let runs = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    server.register('test.slow', async () => {
      runs++;
      await gate;
      return { runs };
    });
    const path = socketPath();
    await serve(server, { path });
    const client = newClient({ main: { path } });
    const first = client.call('main', 'test.slow', 1, { txnId: 'same' });
    const second = client.call('main', 'test.slow', 1, { txnId: 'same' });
    await sleep(100);
    release();
    assert.deepEqual(await Promise.all([first, second]), [{ runs: 1 }, { runs: 1 }]);
    assert.equal(runs, 1);
  });

  test('the same txn id under another call name is another call', async () => {
    const server = newServer();
    const a = counted(() => 'a');
    const b = counted(() => 'b');
    server.register('test.a', a.handler);
    server.register('test.b', b.handler);
    const path = socketPath();
    await serve(server, { path });
    const client = newClient({ main: { path } });
    assert.equal(await client.call('main', 'test.a', 1, { txnId: 'x' }), 'a');
    assert.equal(await client.call('main', 'test.b', 1, { txnId: 'x' }), 'b');
  });

  test('outcomes are forgotten after their time to live', async () => {
    let now = 1_000_000;
    const server = newServer({ now: () => now, outcomeTtlMs: 60_000 });
    const counter = counted(() => 'ok');
    server.register('test.count', counter.handler);
    const path = socketPath();
    await serve(server, { path });
    const client = newClient({ main: { path } });
    await client.call('main', 'test.count', 1, { txnId: 'ttl' });
    now += 59_000;
    await client.call('main', 'test.count', 1, { txnId: 'ttl' });
    assert.equal(counter.runs.length, 1);
    now += 2_000;
    await client.call('main', 'test.count', 1, { txnId: 'ttl' });
    assert.equal(counter.runs.length, 2);
  });
});

describe('the writer is down', () => {
  test('a call made while no socket exists is retried and succeeds once the writer listens', async () => {
    const path = socketPath();
    const server = newServer();
    const counter = counted();
    server.register('test.write', counter.handler);
    const client = newClient({ persister1: { path } });
    const started = Date.now();
    const call = client.call('persister1', 'test.write', { body: 'accepted while down' });
    await sleep(1500);
    assert.equal(existsSync(path), false);
    await serve(server, { path });
    assert.deepEqual(await call, { echo: { body: 'accepted while down' } });
    assert.ok(Date.now() - started >= 1500);
    assert.equal(counter.runs.length, 1);
  });

  test('a stale socket left by a killed writer (connection refused) is retried the same way', async () => {
    const path = socketPath();
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`]);
    await new Promise((resolve) => child.stdout.once('data', resolve));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    assert.ok(existsSync(path), 'kill -9 leaves the socket file behind');

    const server = newServer();
    const counter = counted();
    server.register('test.write', counter.handler);
    const client = newClient({ persister1: { path } });
    const call = client.call('persister1', 'test.write', 'x');
    await sleep(1000);
    await serve(server, { path });
    assert.deepEqual(await call, { echo: 'x' });
    assert.equal(counter.runs.length, 1);
  });

  test('over TCP: connection refused until the writer listens on its port', async () => {
    const port = await unusedPort();
    const server = newServer();
    const counter = counted();
    server.register('test.write', counter.handler);
    const client = newClient({ persister1: { host: '127.0.0.1', port } });
    const call = client.call('persister1', 'test.write', 'tcp');
    await sleep(1000);
    await serve(server, { port });
    assert.deepEqual(await call, { echo: 'tcp' });
    assert.equal(counter.runs.length, 1);
  });

  test('a response lost after the handler ran: the retry gets the remembered result, the handler ran once', async () => {
    const path = socketPath();
    const server = newServer();
    let n = 0;
    const counter = counted(() => ({ eventId: `$event${++n}` }));
    server.register('test.write', counter.handler);
    await serve(server, { path }, 2);
    const client = newClient({ persister1: { path } });
    assert.deepEqual(await client.call('persister1', 'test.write', 'once'), { eventId: '$event1' });
    assert.equal(counter.runs.length, 1, 'two lost responses, one execution');
  });

  test('a writer restarted mid-call: its new process runs the call once', async () => {
    // The writer restarts between attempts; the kept-alive connection to the old one is dead.
    const path = socketPath();
    const server = newServer();
    const counter = counted();
    server.register('test.write', counter.handler);
    const first = await serve(server, { path });
    const client = newClient({ persister1: { path } });
    await client.call('persister1', 'test.write', 'warm up');
    await first.close(0);
    const call = client.call('persister1', 'test.write', 'after restart');
    await sleep(500);
    await serve(server, { path });
    assert.deepEqual(await call, { echo: 'after restart' });
    assert.equal(counter.runs.length, 2);
  });

  test('the deadline turns into a clean 503', async () => {
    const client = newClient({ persister1: { path: socketPath() } });
    const started = Date.now();
    await assert.rejects(client.call('persister1', 'test.write', 1, { deadlineMs: 400 }), (err) =>
      assertMatrixError(err, 503, 'M_UNKNOWN', /persister1 unavailable/),
    );
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 400 && elapsed < 2000, `gave up after ${elapsed} ms`);
  });

  test('the deadline also bounds a writer that accepts but never answers', async () => {
    const server = newServer();
    server.register('test.hang', () => new Promise(() => {}));
    const path = socketPath();
    await serve(server, { path });
    const client = newClient({ main: { path } });
    const started = Date.now();
    await assert.rejects(client.call('main', 'test.hang', 1, { deadlineMs: 300 }), (err) => assertMatrixError(err, 503, 'M_UNKNOWN'));
    assert.ok(Date.now() - started < 2000);
  });
});

describe('malformed requests get Matrix errors, never 500', () => {
  const server = newServer();
  const echo = counted();
  server.register('test.echo', echo.handler);
  const path = socketPath();
  const ready = serve(server, { path });
  const post = async (route: string, body: string) => {
    await ready;
    return request({ socketPath: path }, 'POST', route, { body, headers: { Authorization: `Bearer ${SECRET}` } });
  };

  test('bodies', async () => {
    const cases: [string, number, string][] = [
      ['{not json', 400, 'M_NOT_JSON'],
      ['', 400, 'M_NOT_JSON'],
      ['[1, 2]', 400, 'M_BAD_JSON'],
      ['"args"', 400, 'M_BAD_JSON'],
      ['{}', 400, 'M_MISSING_PARAM'],
      ['{"positions": {}}', 400, 'M_MISSING_PARAM'],
      ['{"args": 1, "positions": 5}', 400, 'M_BAD_JSON'],
      ['{"args": 1, "positions": {"events": 5}}', 400, 'M_BAD_JSON'],
      ['{"args": 1, "positions": {"events": {"main": "5"}}}', 400, 'M_BAD_JSON'],
      ['{"args": 1, "positions": {"events": {"main": -1}}}', 400, 'M_BAD_JSON'],
      ['{"args": 1, "positions": {"events": {"main": 1.5}}}', 400, 'M_BAD_JSON'],
    ];
    for (const [body, status, errcode] of cases) {
      const res = await post(rpcPath('test.echo', `bad-${body}`), body);
      assert.equal(res.status, status, body);
      assert.equal(res.json.errcode, errcode, body);
    }
    assert.equal(echo.runs.length, 0);
  });

  test('unknown call names, over-long txn ids and other methods', async () => {
    const unknown = await post(rpcPath('test.nope', 't'), '{"args": 1}');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json.errcode, 'M_UNRECOGNIZED');
    const long = await post(rpcPath('test.echo', 'x'.repeat(300)), '{"args": 1}');
    assert.equal(long.status, 400);
    assert.equal(long.json.errcode, 'M_INVALID_PARAM');
    const get = await request({ socketPath: path }, 'GET', rpcPath('test.echo', 't'));
    assert.equal(get.status, 405);
    assert.equal(get.json.errcode, 'M_UNRECOGNIZED');
    const noTxn = await post('/_synapse/replication/test.echo', '{"args": 1}');
    assert.equal(noTxn.status, 404);
    assert.equal(echo.runs.length, 0);
  });

  test('a process that serves no replication calls answers 404 M_UNRECOGNIZED', async () => {
    const bare = socketPath();
    await serve(undefined, { path: bare });
    const res = await request({ socketPath: bare }, 'POST', rpcPath('test.echo', 't'), { body: '{"args": 1}' });
    assert.equal(res.status, 404);
    assert.equal(res.json.errcode, 'M_UNRECOGNIZED');
  });

  test('registering one name twice is a programming error', () => {
    assert.throws(() => server.register('test.echo', echo.handler), /registered twice/);
  });
});
