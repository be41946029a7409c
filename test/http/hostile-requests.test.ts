// What the HTTP layer answers to hostile requests, whatever the route: JSON that nests too deeply,
// holds lone surrogates or U+0000, bad ids and NUL in the URL, methods and request lines that
// Node's parser refuses, and bodies over the limit — always a JSON Matrix error with the right
// status, one the client can read, never a bare status line or a closed socket.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { createDispatcher, MAX_JSON_BODY_BYTES } from '../../src/http/dispatch.js';
import { startListener, type RunningListener } from '../../src/http/listener.js';
import { jsonObject } from '../../src/errors.js';
import { routeDefiner } from '../../src/http/route.js';
import { request } from '../helpers/http.js';
import { rawExchange, type RawAnswer } from '../helpers/raw-http.js';

const log = pino({ level: 'silent' });
const defineRoute = routeDefiner<null>();

const routes = [
  defineRoute({
    name: 'test.echo',
    method: 'POST',
    paths: '/_matrix/client/v3/echo',
    resource: 'client',
    body: jsonObject,
    handle: (req) => ({ body: { got: req.body } }),
  }),
  defineRoute({
    name: 'test.content',
    method: 'PUT',
    paths: '/_matrix/client/v3/content',
    resource: 'client',
    body: jsonObject,
    acceptsNul: true,
    handle: (req) => ({ body: { got: req.body } }),
  }),
  defineRoute({
    name: 'test.deep',
    method: 'POST',
    paths: '/_synapse/replication/deep',
    resource: 'client',
    body: jsonObject,
    maxJsonDepth: 150,
    handle: () => ({ body: {} }),
  }),
  defineRoute({
    name: 'test.ids',
    method: 'GET',
    paths: '/_matrix/client/v3/rooms/{roomId}/event/{eventId}/user/{userId}/alias/{roomAlias}/{roomIdOrAlias}/{other}',
    resource: 'client',
    handle: (req) => ({ body: { params: req.params } }),
  }),
  defineRoute({
    name: 'test.device',
    method: 'GET',
    paths: '/_matrix/client/v3/devices/{deviceId}',
    resource: 'client',
    handle: (req) => ({ body: { params: req.params } }),
  }),
  defineRoute({
    name: 'test.versions',
    method: 'GET',
    paths: '/_matrix/client/versions',
    resource: 'client',
    handle: () => ({ body: { versions: [] } }),
  }),
];

let listener: RunningListener;
let baseUrl: string;
before(async () => {
  const dispatcher = createDispatcher({
    routes,
    resources: new Set(['client']),
    services: null,
    log,
    trustForwardedFor: false,
    shutdownSignal: new AbortController().signal,
  });
  listener = await startListener(
    {
      type: 'http',
      tls: false,
      x_forwarded: false,
      port: 0,
      bind_addresses: ['127.0.0.1'],
      resources: [{ names: ['client'], compress: false }],
    },
    dispatcher,
    log,
  );
  baseUrl = listener.addresses[0]!;
});
after(() => listener.close(0));

const post = (path: string, body: string, method = 'POST') =>
  request({ baseUrl }, method, path, { body, headers: { 'Content-Type': 'application/json' } });

function assertMatrixError(res: { status: number; json: any; text: string }, status: number, errcode: string, what = '') {
  assert.equal(res.status, status, `${what} ${res.text}`);
  assert.equal(res.json?.errcode, errcode, `${what} ${res.text}`);
  assert.equal(typeof res.json?.error, 'string', what);
}

describe('JSON bodies', () => {
  test('nesting deeper than 100 levels is 400 M_BAD_JSON, even 100,000 levels; 100 levels are fine', async () => {
    const nested = (depth: number) => `{"x":${'['.repeat(depth - 1)}${']'.repeat(depth - 1)}}`;
    assert.equal((await post('/_matrix/client/v3/echo', nested(100))).status, 200);
    for (const depth of [101, 5000, 100_000])
      assertMatrixError(await post('/_matrix/client/v3/echo', nested(depth)), 400, 'M_BAD_JSON', `depth ${depth}`);
    // A route may take more (the replication route carries client content in an envelope).
    assert.equal((await post('/_synapse/replication/deep', nested(150))).status, 200);
    assertMatrixError(await post('/_synapse/replication/deep', nested(151)), 400, 'M_BAD_JSON');
  });

  test('a lone surrogate is 400 M_BAD_JSON; a surrogate pair is kept', async () => {
    assertMatrixError(await post('/_matrix/client/v3/echo', '{"displayname":"a\\ud800b"}'), 400, 'M_BAD_JSON');
    assertMatrixError(await post('/_matrix/client/v3/content', '{"body":"\\udc00"}', 'PUT'), 400, 'M_BAD_JSON');
    const pair = await post('/_matrix/client/v3/echo', '{"displayname":"a\\ud83d\\ude00b"}');
    assert.equal(pair.json.got.displayname, 'a😀b');
  });

  test('U+0000 is 400 M_BAD_JSON, except on routes whose body is only stored as JSON text', async () => {
    assertMatrixError(await post('/_matrix/client/v3/echo', '{"identifier":{"type":"m.id.user","user":"\\u0000"}}'), 400, 'M_BAD_JSON');
    assertMatrixError(await post('/_matrix/client/v3/echo', '{"a\\u0000":1}'), 400, 'M_BAD_JSON');
    const content = await post('/_matrix/client/v3/content', '{"body":"a\\u0000b"}', 'PUT');
    assert.equal(content.status, 200);
    assert.equal(content.json.got.body, 'a\u0000b');
  });

  test('a number beyond the double range is 400 M_BAD_JSON; broken JSON stays M_NOT_JSON', async () => {
    assertMatrixError(await post('/_matrix/client/v3/echo', '{"timeout":1e400}'), 400, 'M_BAD_JSON');
    assertMatrixError(await post('/_matrix/client/v3/echo', '{"timeout":'), 400, 'M_NOT_JSON');
  });
});

describe('the URL', () => {
  const ids = ['!room:example.org', '$event', '@user:example.org', '#alias:example.org', '!room:example.org', 'x'];
  const path = (values: string[]) =>
    `/_matrix/client/v3/rooms/${values[0]}/event/${values[1]}/user/${values[2]}/alias/${values[3]}/${values[4]}/${values[5]}`;
  const enc = (values: string[]) => values.map(encodeURIComponent);

  test('well-formed ids pass, decoded', async () => {
    const res = await request({ baseUrl }, 'GET', path(enc(ids)));
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(Object.values(res.json.params), ids);
  });

  test('an id that does not follow the grammar, or any parameter with %00, is 400 M_INVALID_PARAM', async () => {
    const bad: Array<[number, string]> = [
      [0, 'room'],
      [0, '!no-server'],
      [0, '!a:bad_server!'],
      [0, `!${'x'.repeat(300)}:example.org`],
      [1, 'event'],
      [1, `$${'x'.repeat(300)}`],
      [2, 'user'],
      [2, '@:'],
      [2, '@a:b:c:d'],
      [2, `@${'é'.repeat(200)}:example.org`],
      [3, 'alias'],
      [3, '#nope'],
      [4, '@user:example.org'],
      [4, 'x'],
    ];
    for (const [index, value] of bad) {
      const values = enc(ids);
      values[index] = encodeURIComponent(value);
      assertMatrixError(await request({ baseUrl }, 'GET', path(values)), 400, 'M_INVALID_PARAM', value);
    }
    for (let index = 0; index < ids.length; index++) {
      for (const nul of ['%00', `${encodeURIComponent(ids[index]!)}%00`]) {
        const values = enc(ids);
        values[index] = nul;
        assertMatrixError(await request({ baseUrl }, 'GET', path(values)), 400, 'M_INVALID_PARAM', `${index} ${nul}`);
      }
    }
  });

  test('a parameter over 512 bytes is 400 M_INVALID_PARAM; a device id may have 512 characters', async () => {
    const values = enc(ids);
    values[5] = 'x'.repeat(512);
    assert.equal((await request({ baseUrl }, 'GET', path(values))).status, 200);
    values[5] = encodeURIComponent('é'.repeat(257));
    assertMatrixError(await request({ baseUrl }, 'GET', path(values)), 400, 'M_INVALID_PARAM');
    assert.equal((await request({ baseUrl }, 'GET', `/_matrix/client/v3/devices/${encodeURIComponent('é'.repeat(512))}`)).status, 200);
    assertMatrixError(await request({ baseUrl }, 'GET', `/_matrix/client/v3/devices/${'x'.repeat(513)}`), 400, 'M_INVALID_PARAM');
  });

  test('%00 in a query parameter is 400 M_INVALID_PARAM', async () => {
    assertMatrixError(await request({ baseUrl }, 'GET', `${path(enc(ids))}?from=s1%00`), 400, 'M_INVALID_PARAM');
    assertMatrixError(await request({ baseUrl }, 'GET', `${path(enc(ids))}?x%00=1`), 400, 'M_INVALID_PARAM');
  });
});

describe('what Node’s parser refuses', () => {
  const raw = (head: string) => rawExchange({ baseUrl }, head);
  const assertRaw = (res: RawAnswer, status: number, errcode: string, what: string) => {
    assertMatrixError(res, status, errcode, what);
    assert.equal(res.headers['content-type'], 'application/json', what);
    assert.equal(res.headers['access-control-allow-origin'], '*', what);
  };

  test('an unknown method, or CONNECT: 405 M_UNRECOGNIZED', async () => {
    assertRaw(await raw('FOO /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n\r\n'), 405, 'M_UNRECOGNIZED', 'FOO');
    assertRaw(await raw('get /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n\r\n'), 405, 'M_UNRECOGNIZED', 'get');
    assertRaw(await raw('CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n'), 405, 'M_UNRECOGNIZED', 'CONNECT');
    // A method the parser knows but no route has is the dispatcher's: 405 on a known path.
    assertRaw(await raw('PATCH /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n\r\n'), 405, 'M_UNRECOGNIZED', 'PATCH');
  });

  test('a request line over 16 KiB: 414 M_TOO_LARGE; headers over 16 KiB: 431 M_TOO_LARGE', async () => {
    assertRaw(
      await raw(`GET /_matrix/client/versions?${'a'.repeat(17_000)} HTTP/1.1\r\nHost: x\r\n\r\n`),
      414,
      'M_TOO_LARGE',
      'request line',
    );
    assertRaw(await raw(`GET /_matrix/client/versions?${'a'.repeat(17_000)}`), 414, 'M_TOO_LARGE', 'unfinished request line');
    assertRaw(
      await raw(`GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(17_000)}\r\n\r\n`),
      431,
      'M_TOO_LARGE',
      'headers',
    );
  });

  test('malformed framing: 400 with a Matrix error', async () => {
    for (const head of [
      'POST /_matrix/client/v3/echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n',
      'POST /_matrix/client/v3/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'POST /_matrix/client/v3/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n',
      'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
      'GET /_matrix/client/versions HTTP/9.9\r\nHost: x\r\n\r\n',
    ]) {
      assertRaw(await raw(head), 400, 'M_UNKNOWN', JSON.stringify(head.slice(0, 60)));
    }
  });

  test('an HTTP/1.1 request without Host is served (Node would answer an empty 400)', async () => {
    const res = await raw('GET /_matrix/client/versions HTTP/1.1\r\n\r\n');
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { versions: [] });
  });
});

describe('bodies over the limit', () => {
  const head = (length: number, extra = '') =>
    `POST /_matrix/client/v3/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n${extra}\r\n`;

  test('a client that sends all of a 100 MB body before reading gets a readable 413 M_TOO_LARGE', async () => {
    for (const extra of ['', 'Connection: close\r\n']) {
      const res = await rawExchange({ baseUrl }, head(100_000_000, extra), {
        bodyBytes: 100_000_000,
        readAfterSending: true,
        timeoutMs: 60_000,
      });
      assertMatrixError(res, 413, 'M_TOO_LARGE', extra);
    }
  });

  test('a body just over the limit gets 413, then the connection serves the next request', async () => {
    const length = MAX_JSON_BODY_BYTES + 1;
    const next = 'GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n\r\n';
    // The 413 comes first; the second answer proves the rest of the body was read past, not
    // taken for a request.
    const both = await new Promise<string>((resolve, reject) => {
      import('node:net').then(({ connect }) => {
        const url = new URL(baseUrl);
        const socket = connect(Number(url.port), url.hostname);
        let got = '';
        socket.on('data', (d: Buffer) => {
          got += d.toString('latin1');
          if ((got.match(/HTTP\/1\.1 /g) ?? []).length === 2 && got.endsWith('}')) {
            socket.destroy();
            resolve(got);
          }
        });
        socket.on('error', reject);
        socket.write(head(length));
        socket.write(Buffer.alloc(length, 0x20));
        socket.write(next);
      }, reject);
    });
    assert.match(both, /^HTTP\/1\.1 413 /);
    assert.match(both, /M_TOO_LARGE[\s\S]*HTTP\/1\.1 200 [\s\S]*"versions":\[\]/);
  });

  test('a chunked body that grows over the limit gets a readable 413', async () => {
    const url = new URL(baseUrl);
    const res = await fetch(`${url.origin}/_matrix/client/v3/echo`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: new ReadableStream({
        start(controller) {
          const chunk = new Uint8Array(1 << 20).fill(0x20);
          for (let i = 0; i < 14; i++) controller.enqueue(chunk);
          controller.close();
        },
      }),
      duplex: 'half',
    });
    assert.equal(res.status, 413);
    assert.equal(((await res.json()) as { errcode: string }).errcode, 'M_TOO_LARGE');
  });
});
