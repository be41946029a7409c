// Server discovery against real DNS and real HTTPS: a tiny DNS server of the test's own on a
// loopback UDP port answers A and SRV questions, a TLS server plays every `.well-known/matrix/server`
// (certificates from the test's own authority, checked: `federation_custom_ca_list`), and another
// TLS server plays the federation endpoints, echoing the `Host` header and TLS server name it got.
// Only 127.0.0.1 is allowed by the IP policy; a second endpoint on 127.0.0.2 must never be reached.

import assert from 'node:assert/strict';
import { createServer as createHttpsServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { after, before, beforeEach, describe, test } from 'node:test';
import { FederationUnreachableError } from '../../src/federation/errors.js';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { standaloneFederation, type StandaloneFederation } from '../helpers/federation.js';
import { makeAuthority, makeCertificate, type TestCertificate } from '../helpers/tls-certs.js';

const NAMES = [
  'wk.test',
  'fed.wk.test',
  'wksrv.test',
  'deleg.test',
  'srv.test',
  'legacy.test',
  'target.test',
  'redirect.test',
  'loop.test',
  'big.test',
  'private.test',
  'srvpriv.test',
  'priv.test',
  'wkpriv.test',
  'cached.test',
];

function listen(server: Server, host: string): Promise<number> {
  return new Promise((resolve) => server.listen(0, host, () => resolve((server.address() as AddressInfo).port)));
}

describe('server discovery with real DNS and HTTPS', () => {
  let cert: TestCertificate;
  let dns: TestDnsServer;
  let wellKnown: Server;
  let wellKnownPort: number;
  let endpoint: Server;
  let endpointPort: number;
  let privateEndpoint: Server;
  let privatePort: number;
  /** `.well-known` requests by Host hostname. */
  const wellKnownHits = new Map<string, number>();
  let privateHits = 0;
  let fed: StandaloneFederation;
  let caPath: string;

  before(async () => {
    const authority = makeAuthority();
    caPath = authority.certPath;
    cert = makeCertificate({ dnsNames: NAMES, ips: ['127.0.0.1', '127.0.0.2'], authority });
    const tls = { cert: cert.certPem, key: cert.keyPem };

    wellKnown = createHttpsServer(tls, (req, res) => {
      const hostname = (req.headers.host ?? '').replace(/:\d+$/, '');
      wellKnownHits.set(hostname, (wellKnownHits.get(hostname) ?? 0) + 1);
      const json = (body: unknown, headers: Record<string, string> = {}) =>
        res.writeHead(200, { 'Content-Type': 'application/json', ...headers }).end(JSON.stringify(body));
      const path = req.url ?? '';
      switch (hostname) {
        case 'wk.test':
          return json({ 'm.server': `fed.wk.test:${endpointPort}` });
        case 'deleg.test':
        case 'wksrv.test':
          return json({ 'm.server': 'deleg.test' });
        case 'legacy.test':
          return res.writeHead(200, { 'Content-Type': 'text/html' }).end('<html>not json</html>');
        case 'redirect.test':
          if (path === '/.well-known/matrix/server') return res.writeHead(301, { Location: '/elsewhere' }).end();
          return json({ 'm.server': `fed.wk.test:${endpointPort}` });
        case 'loop.test':
          return res.writeHead(302, { Location: `https://loop.test:${wellKnownPort}/.well-known/matrix/server` }).end();
        case 'big.test':
          return json({ 'm.server': `fed.wk.test:${endpointPort}`, padding: 'x'.repeat(60 * 1024) });
        case 'private.test':
          return json({ 'm.server': `127.0.0.2:${privatePort}` });
        case 'cached.test':
          return json({ 'm.server': `fed.wk.test:${endpointPort}` }, { 'Cache-Control': 'max-age=3600' });
        default:
          return res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"errcode":"M_NOT_FOUND","error":"no"}');
      }
    });
    const echo = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) =>
      res
        .writeHead(200, { 'Content-Type': 'application/json' })
        .end(JSON.stringify({ host: req.headers.host, sni: (req.socket as TLSSocket).servername || null, path: req.url }));
    endpoint = createHttpsServer(tls, echo);
    privateEndpoint = createHttpsServer(tls, (req, res) => {
      privateHits++;
      echo(req, res);
    });
    wellKnownPort = await listen(wellKnown, '127.0.0.1');
    endpointPort = await listen(endpoint, '127.0.0.1');
    privatePort = await listen(privateEndpoint, '127.0.0.2');

    const a = (ip: string) => [ip];
    dns = await startDnsServer({
      a: Object.fromEntries([...NAMES.map((n) => [n, a('127.0.0.1')]), ['priv.test', a('127.0.0.2')], ['wkpriv.test', a('127.0.0.2')]]),
      srv: {
        '_matrix-fed._tcp.deleg.test': [{ priority: 10, weight: 0, port: endpointPort, target: 'target.test' }],
        '_matrix-fed._tcp.srv.test': [
          // The lower priority wins; the other would not answer.
          { priority: 20, weight: 0, port: 1, target: 'target.test' },
          { priority: 10, weight: 0, port: endpointPort, target: 'target.test' },
        ],
        '_matrix._tcp.legacy.test': [{ priority: 10, weight: 0, port: endpointPort, target: 'target.test' }],
        '_matrix-fed._tcp.srvpriv.test': [{ priority: 10, weight: 0, port: privatePort, target: 'priv.test' }],
        '_matrix-fed._tcp.wkpriv.test': [{ priority: 10, weight: 0, port: endpointPort, target: 'target.test' }],
      },
    });
    fed = await standaloneFederation(
      { federation_custom_ca_list: [caPath], ip_range_whitelist: ['127.0.0.1'], trusted_key_servers: [] },
      { dns: { servers: [dns.address] }, wellKnownPort },
    );
  });
  after(async () => {
    await fed?.close();
    await dns?.close();
    for (const server of [wellKnown, endpoint, privateEndpoint])
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });
  beforeEach(() => fed.federation.discovery.clearCaches());

  const get = (destination: string) =>
    fed.federation.client.request(destination, { method: 'GET', path: '/_matrix/federation/v1/version' });

  test('step 3.2: .well-known delegates to host:port; Host is the delegated name, SNI its hostname', async () => {
    assert.deepEqual(await get('wk.test'), {
      host: `fed.wk.test:${endpointPort}`,
      sni: 'fed.wk.test',
      path: '/_matrix/federation/v1/version',
    });
    assert.equal((await fed.federation.discovery.resolve('wk.test')).step, '3.2');
  });

  test('step 3.3: .well-known delegates to a host with a _matrix-fed._tcp SRV record; Host and SNI stay the delegated name', async () => {
    assert.deepEqual(await get('wksrv.test'), { host: 'deleg.test', sni: 'deleg.test', path: '/_matrix/federation/v1/version' });
    assert.equal((await fed.federation.discovery.resolve('wksrv.test')).step, '3.3');
  });

  test('step 4: no .well-known (404), SRV _matrix-fed._tcp by priority; Host/SNI are the server name, not the SRV target', async () => {
    assert.deepEqual(await get('srv.test'), { host: 'srv.test', sni: 'srv.test', path: '/_matrix/federation/v1/version' });
    const target = await fed.federation.discovery.resolve('srv.test');
    assert.equal(target.step, '4');
    assert.deepEqual(
      target.endpoints.map((e) => e.port),
      [endpointPort, 1],
    );
  });

  test('step 5: a .well-known that is not JSON counts as none; the deprecated _matrix._tcp SRV is used', async () => {
    assert.deepEqual(await get('legacy.test'), { host: 'legacy.test', sni: 'legacy.test', path: '/_matrix/federation/v1/version' });
    assert.equal((await fed.federation.discovery.resolve('legacy.test')).step, '5');
  });

  test('step 6: nothing published: the hostname on port 8448', async () => {
    const target = await fed.federation.discovery.resolve('target.test');
    assert.equal(target.step, '6');
    assert.deepEqual(target.endpoints, [{ host: 'target.test', port: 8448, isIpLiteral: false }]);
  });

  test('redirects are followed; a redirect loop or an oversized body counts as no .well-known', async () => {
    assert.deepEqual(await get('redirect.test'), {
      host: `fed.wk.test:${endpointPort}`,
      sni: 'fed.wk.test',
      path: '/_matrix/federation/v1/version',
    });
    assert.equal((await fed.federation.discovery.resolve('loop.test')).step, '6');
    assert.equal((await fed.federation.discovery.fetchWellKnown('loop.test')).kind, 'invalid');
    assert.equal((await fed.federation.discovery.resolve('big.test')).step, '6');
    assert.equal((await fed.federation.discovery.fetchWellKnown('big.test')).kind, 'unreachable');
  });

  test('.well-known answers are cached; concurrent lookups of one server share one fetch', async () => {
    wellKnownHits.delete('cached.test');
    const targets = await Promise.all(Array.from({ length: 20 }, () => fed.federation.discovery.resolve('cached.test')));
    assert.ok(targets.every((t) => t.hostHeader === `fed.wk.test:${endpointPort}`));
    assert.equal(wellKnownHits.get('cached.test'), 1);
    await get('cached.test');
    await fed.federation.discovery.resolve('cached.test');
    assert.equal(wellKnownHits.get('cached.test'), 1);
  });

  test('the IP blacklist: a .well-known or an SRV record pointing at a private address is never connected to', async () => {
    privateHits = 0;
    await assert.rejects(get('private.test'), (err: unknown) => err instanceof FederationUnreachableError && err.reason === 'blocked');
    await assert.rejects(get('srvpriv.test'), (err: unknown) => err instanceof FederationUnreachableError && err.reason === 'blocked');
    // A .well-known on a private address is not fetched either: the server falls back to its SRV.
    wellKnownHits.delete('wkpriv.test');
    assert.deepEqual(await get('wkpriv.test'), { host: 'wkpriv.test', sni: 'wkpriv.test', path: '/_matrix/federation/v1/version' });
    assert.equal(wellKnownHits.get('wkpriv.test'), undefined);
    assert.equal(privateHits, 0);

    // The same addresses once whitelisted: reached, so the refusals above were the policy's.
    const open = await standaloneFederation(
      { federation_custom_ca_list: [caPath], ip_range_whitelist: ['127.0.0.0/8'], trusted_key_servers: [] },
      { dns: { servers: [dns.address] }, wellKnownPort },
    );
    try {
      assert.deepEqual(await open.federation.client.request('srvpriv.test', { method: 'GET', path: '/x' }), {
        host: 'srvpriv.test',
        sni: 'srvpriv.test',
        path: '/x',
      });
      assert.equal(privateHits, 1);
    } finally {
      await open.close();
    }
  });

  test('an IP literal server name: no .well-known, no SNI, Host is the server name', async () => {
    assert.deepEqual(await get(`127.0.0.1:${endpointPort}`), {
      host: `127.0.0.1:${endpointPort}`,
      sni: null,
      path: '/_matrix/federation/v1/version',
    });
  });

  test('the certificate must be valid for the name: a server whose certificate does not list it is refused', async () => {
    const other = makeCertificate({ dnsNames: ['someone-else.test'], authority: undefined });
    const impostor = createHttpsServer({ cert: other.certPem, key: other.keyPem }, (_req, res) => res.end('{}'));
    const port = await listen(impostor, '127.0.0.1');
    try {
      await assert.rejects(get(`target.test:${port}`), (err: unknown) => err instanceof FederationUnreachableError && err.reason === 'tls');
    } finally {
      await new Promise<void>((resolve) => impostor.close(() => resolve()));
    }
  });
});
