// The outbound federation client against test servers over real TLS on loopback: answers and
// failures come back typed, the size bound and timeouts hold, connections are reused per
// destination, `federation_domain_whitelist` and `federation_client_minimum_tls_version` apply.

import assert from 'node:assert/strict';
import { createServer as createHttpsServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  FederationDeniedError,
  FederationHttpError,
  FederationInvalidResponseError,
  FederationUnreachableError,
} from '../../src/federation/errors.js';
import { requestTarget } from '../../src/federation/client.js';
import { LOOPBACK_FEDERATION, standaloneFederation, type StandaloneFederation } from '../helpers/federation.js';
import { freePort } from '../helpers/server-process.js';
import { makeCertificate } from '../helpers/tls-certs.js';

const cert = makeCertificate({ dnsNames: ['localhost'], ips: ['127.0.0.1'] });

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

describe('the federation client', () => {
  let server: Server;
  let port: number;
  let destination: string;
  let connections = 0;
  let fed: StandaloneFederation;

  before(async () => {
    server = createHttpsServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
      switch (req.url) {
        case '/ok':
          return res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"ok":true}');
        case '/matrix-error':
          return res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"errcode":"M_NOT_FOUND","error":"no such thing"}');
        case '/bad-gateway':
          return res.writeHead(502, { 'Content-Type': 'text/html' }).end('<html>bad gateway</html>');
        case '/not-json':
          return res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"ok":');
        case '/deep':
          return res.writeHead(200, { 'Content-Type': 'application/json' }).end(`${'['.repeat(200)}${']'.repeat(200)}`);
        case '/huge':
          return res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ x: 'y'.repeat(4096) }));
        case '/hang':
          return; // never answers
        default:
          return res.writeHead(404).end();
      }
    });
    server.on('connection', () => connections++);
    port = await listen(server);
    destination = `localhost:${port}`;
    fed = await standaloneFederation(LOOPBACK_FEDERATION);
  });
  after(async () => {
    await fed?.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const call = (path: string, extra: { timeoutMs?: number; maxResponseBytes?: number } = {}) =>
    fed.federation.client.request(destination, { method: 'GET', path, ...extra });

  test('a JSON answer; requests one after another reuse kept-alive connections', async () => {
    const before = connections;
    for (let i = 0; i < 6; i++) assert.deepEqual(await call('/ok'), { ok: true });
    // undici may open a second connection while the first is still being released; never one per request.
    assert.ok(connections - before <= 2, `${connections - before} connections for 6 requests`);
  });

  test('HTTP errors carry the status and the Matrix error', async () => {
    await assert.rejects(call('/matrix-error'), (err: unknown) => {
      assert.ok(err instanceof FederationHttpError);
      assert.deepEqual([err.kind, err.status, err.errcode, err.errorText], ['http', 404, 'M_NOT_FOUND', 'no such thing']);
      return true;
    });
    await assert.rejects(
      call('/bad-gateway'),
      (err: unknown) => err instanceof FederationHttpError && err.status === 502 && err.errcode === undefined,
    );
  });

  test('answers that are not JSON, too deep or too large are invalid', async () => {
    await assert.rejects(call('/not-json'), FederationInvalidResponseError);
    await assert.rejects(call('/deep'), FederationInvalidResponseError);
    await assert.rejects(
      call('/huge', { maxResponseBytes: 1024 }),
      (err: unknown) => err instanceof FederationInvalidResponseError && /larger than 1024 bytes/.test(err.message),
    );
    assert.deepEqual(Object.keys((await call('/huge')) as object), ['x']);
  });

  test('a server that does not answer in time: unreachable (timeout)', async () => {
    await assert.rejects(
      call('/hang', { timeoutMs: 300 }),
      (err: unknown) => err instanceof FederationUnreachableError && err.reason === 'timeout',
    );
  });

  test('nothing listening: unreachable (connect)', async () => {
    const closedPort = await freePort();
    await assert.rejects(fed.federation.client.request(`localhost:${closedPort}`, { method: 'GET', path: '/ok' }), (err: unknown) => {
      return err instanceof FederationUnreachableError && err.reason === 'connect';
    });
  });

  test('federation_domain_whitelist: other destinations are refused without a connection', async () => {
    const restricted = await standaloneFederation({ ...LOOPBACK_FEDERATION, federation_domain_whitelist: ['elsewhere.example'] });
    try {
      const before = connections;
      await assert.rejects(restricted.federation.client.request(destination, { method: 'GET', path: '/ok' }), FederationDeniedError);
      assert.equal(connections, before);
    } finally {
      await restricted.close();
    }
  });

  test('an invalid server name is refused', async () => {
    await assert.rejects(fed.federation.client.request('not a server', { method: 'GET', path: '/ok' }), FederationDeniedError);
  });

  test('federation_client_minimum_tls_version: a server offering only TLS 1.2 is refused at 1.3, used at 1.2', async () => {
    const old = createHttpsServer({ cert: cert.certPem, key: cert.keyPem, maxVersion: 'TLSv1.2' }, (_req, res) =>
      res.writeHead(200).end('{"old":true}'),
    );
    const oldPort = await listen(old);
    const strict = await standaloneFederation({ ...LOOPBACK_FEDERATION, federation_client_minimum_tls_version: '1.3' });
    const lenient = await standaloneFederation({ ...LOOPBACK_FEDERATION, federation_client_minimum_tls_version: '1.2' });
    try {
      await assert.rejects(strict.federation.client.request(`localhost:${oldPort}`, { method: 'GET', path: '/' }), (err: unknown) => {
        return err instanceof FederationUnreachableError && err.reason === 'tls';
      });
      assert.deepEqual(await lenient.federation.client.request(`localhost:${oldPort}`, { method: 'GET', path: '/' }), { old: true });
    } finally {
      await strict.close();
      await lenient.close();
      old.closeAllConnections();
      await new Promise<void>((resolve) => old.close(() => resolve()));
    }
  });

  test('the request target is encoded once, exactly as signed', () => {
    assert.equal(
      requestTarget('/_matrix/federation/v1/query/profile', { user_id: '@a:b.c', field: 'displayname' }),
      '/_matrix/federation/v1/query/profile?user_id=%40a%3Ab.c&field=displayname',
    );
    assert.equal(requestTarget('/x', { a: ['1', 2, true], skip: undefined }), '/x?a=1&a=2&a=true');
    assert.equal(requestTarget('/x', {}), '/x');
  });
});
