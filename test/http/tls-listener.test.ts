// Listeners with `tls: true` (Synapse's `tls_certificate_path` / `tls_private_key_path`): HTTPS is
// served, never plain HTTP in its place; what cannot work stops start-up with a clear error; the
// certificate is read again on SIGHUP without dropping the listener or its open connections.

import assert from 'node:assert/strict';
import { copyFileSync, writeFileSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import YAML from 'yaml';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { formatSigningKeyFile, generateSigningKey } from '../../src/core/signing.js';
import { StartupConfigError } from '../../src/process/homeserver.js';
import { httpsCall } from '../helpers/federation.js';
import { request } from '../helpers/http.js';
import { startTestHomeserver, type TestHomeserver } from '../helpers/homeserver.js';
import { runMyelin, spawnMyelin, type MyelinProcess } from '../helpers/myelin.js';
import { freePort } from '../helpers/server-process.js';
import { makeCertificate } from '../helpers/tls-certs.js';
import { tempDir, writeFiles } from '../helpers/tmp.js';

function configProblems(config: Record<string, unknown>): string[] {
  const dir = tempDir();
  writeFiles(dir, { 'homeserver.yaml': YAML.stringify({ server_name: 'example.com', ...config }) });
  try {
    loadConfig([join(dir, 'homeserver.yaml')], { warn: () => undefined });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return [...err.problems];
  }
  assert.fail('expected the config to be refused');
}

const tlsListener = (extra: Record<string, unknown> = {}) => ({
  port: 8448,
  type: 'http',
  tls: true,
  resources: [{ names: ['federation'] }],
  ...extra,
});

describe('TLS listeners', () => {
  describe('serving', () => {
    let hs: TestHomeserver;
    const cert = makeCertificate({ dnsNames: ['localhost'], ips: ['127.0.0.1'] });
    before(async () => {
      hs = await startTestHomeserver({
        config: {
          listeners: [
            { port: 0, bind_addresses: ['127.0.0.1'], type: 'http', tls: true, resources: [{ names: ['client', 'federation'] }] },
          ],
          tls_certificate_path: cert.certPath,
          tls_private_key_path: cert.keyPath,
        },
      });
    });
    after(() => hs?.stop());

    test('a listener with tls: true serves HTTPS with the configured certificate, and not plain HTTP', async () => {
      assert.match(hs.baseUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
      const versions = await httpsCall(hs.baseUrl, 'GET', '/_matrix/client/versions');
      assert.equal(versions.status, 200);
      assert.ok(Array.isArray(versions.json.versions));
      assert.equal(versions.peerFingerprint256, cert.fingerprint256);
      // `federation` brings the key API with it, as in Synapse.
      assert.equal((await httpsCall(hs.baseUrl, 'GET', '/_matrix/key/v2/server')).status, 200);
      await assert.rejects(request({ baseUrl: hs.baseUrl.replace('https:', 'http:') }, 'GET', '/_matrix/client/versions'));
    });
  });

  test('connection limits count TLS connections by state: at max_connections a silent one is closed, not one that was served', async () => {
    const cert = makeCertificate({ dnsNames: ['localhost'], ips: ['127.0.0.1'] });
    const hs = await startTestHomeserver({
      config: {
        listeners: [
          { port: 0, bind_addresses: ['127.0.0.1'], type: 'http', tls: true, max_connections: 2, resources: [{ names: ['client'] }] },
        ],
        tls_certificate_path: cert.certPath,
        tls_private_key_path: cert.keyPath,
      },
    });
    const served = new Agent({ keepAlive: true, maxSockets: 1 });
    const { port } = new URL(hs.baseUrl);
    const get = (agent: Agent) =>
      new Promise<{ reused: boolean; status: number }>((resolve, reject) => {
        const req = httpsRequest({ host: '127.0.0.1', port, path: '/_matrix/client/versions', agent, rejectUnauthorized: false }, (res) => {
          res.resume();
          res.on('end', () => resolve({ reused: req.reusedSocket, status: res.statusCode ?? 0 }));
        });
        req.on('error', reject);
        req.end();
      });
    let silent: import('node:net').Socket | undefined;
    try {
      // One connection served a request (now idle), then one that connects and says nothing.
      assert.deepEqual(await get(served), { reused: false, status: 200 });
      silent = connect(Number(port), '127.0.0.1');
      const silentClosed = new Promise<void>((resolve) => silent!.once('close', () => resolve()));
      silent.on('error', () => undefined);
      await new Promise<void>((resolve) => silent!.once('connect', () => resolve()));
      // A third connection: the silent one makes room; the one that was served keeps working.
      assert.deepEqual(await get(new Agent({ keepAlive: false })), { reused: false, status: 200 });
      await silentClosed;
      assert.deepEqual(await get(served), { reused: true, status: 200 });
    } finally {
      silent?.destroy();
      served.destroy();
      await hs.stop();
    }
  });

  describe('configuration refused at start-up', () => {
    test('tls: true without tls_certificate_path or tls_private_key_path', () => {
      const problems = configProblems({ listeners: [tlsListener()] });
      assert.ok(
        problems.some((p) => /listeners\[0\]\.tls: a listener with `tls: true` needs `tls_certificate_path`/.test(p)),
        problems.join('\n'),
      );
      assert.ok(
        problems.some((p) => /needs `tls_private_key_path`/.test(p)),
        problems.join('\n'),
      );
    });

    test('tls: true on a replication, router or UNIX socket listener, and TLS in instance_map', () => {
      const paths = { tls_certificate_path: '/x/cert.pem', tls_private_key_path: '/x/key.pem' };
      const dir = tempDir();
      assert.ok(
        configProblems({ ...paths, listeners: [tlsListener({ resources: [{ names: ['replication'] }] })] }).some((p) =>
          /TLS is not supported on the replication listener/.test(p),
        ),
      );
      assert.ok(
        configProblems({ ...paths, listeners: [tlsListener({ resources: [{ names: ['router'] }] })] }).some((p) =>
          /TLS is not supported on a router listener/.test(p),
        ),
      );
      assert.ok(
        configProblems({
          ...paths,
          listeners: [{ path: join(dir, 'x.sock'), type: 'http', tls: true, resources: [{ names: ['client'] }] }],
        }).some((p) => /TLS is served on TCP listeners/.test(p)),
      );
      assert.ok(
        configProblems({ instance_map: { main: { host: 'localhost', port: 9093, tls: true } } }).some((p) =>
          /instance_map\.main\.tls: TLS between Myelin processes is not supported/.test(p),
        ),
      );
    });

    test('a certificate that cannot be read, or a key that does not belong to it, stops start-up naming the file', async () => {
      const cert = makeCertificate({ dnsNames: ['localhost'] });
      const other = makeCertificate({ dnsNames: ['localhost'] });
      for (const [paths, pattern] of [
        [
          { tls_certificate_path: join(tempDir(), 'missing.pem'), tls_private_key_path: cert.keyPath },
          /cannot read the TLS certificate .*missing\.pem: ENOENT/,
        ],
        [{ tls_certificate_path: cert.certPath, tls_private_key_path: other.keyPath }, /cannot be used/],
      ] as const) {
        await assert.rejects(
          startTestHomeserver({
            config: {
              listeners: [{ port: 0, bind_addresses: ['127.0.0.1'], type: 'http', tls: true, resources: [{ names: ['client'] }] }],
              ...paths,
            },
          }),
          (err: unknown) => err instanceof StartupConfigError && /tls_certificate_path/.test(err.message) && pattern.test(err.message),
        );
      }
    });

    test('`myelin start` exits with status 2 and says why', () => {
      const dir = tempDir();
      writeFileSync(join(dir, 'signing.key'), formatSigningKeyFile([generateSigningKey()]));
      writeFiles(dir, {
        'homeserver.yaml': YAML.stringify({
          server_name: 'example.com',
          signing_key_path: join(dir, 'signing.key'),
          listeners: [{ port: 0, bind_addresses: ['127.0.0.1'], type: 'http', tls: true, resources: [{ names: ['client'] }] }],
        }),
      });
      const run = runMyelin(['start', '--no-workers', '-c', join(dir, 'homeserver.yaml')]);
      assert.equal(run.status, 2, run.stderr);
      assert.match(run.stderr, /listeners\[0\]\.tls: a listener with `tls: true` needs `tls_certificate_path`/);
    });
  });

  describe('SIGHUP reloads the certificate (a real `myelin start`)', () => {
    let proc: MyelinProcess;
    let port: number;
    let dir: string;
    const first = makeCertificate({ dnsNames: ['localhost'], ips: ['127.0.0.1'], name: 'first' });
    const second = makeCertificate({ dnsNames: ['localhost'], ips: ['127.0.0.1'], name: 'second' });

    before(async () => {
      dir = tempDir('myelin-hup-');
      port = await freePort();
      copyFileSync(first.certPath, join(dir, 'tls.pem'));
      copyFileSync(first.keyPath, join(dir, 'tls.key'));
      writeFileSync(join(dir, 'signing.key'), formatSigningKeyFile([generateSigningKey()]));
      writeFileSync(
        join(dir, 'homeserver.yaml'),
        YAML.stringify({
          server_name: 'localhost',
          signing_key_path: join(dir, 'signing.key'),
          listeners: [{ port, bind_addresses: ['127.0.0.1'], type: 'http', tls: true, resources: [{ names: ['client', 'federation'] }] }],
          tls_certificate_path: join(dir, 'tls.pem'),
          tls_private_key_path: join(dir, 'tls.key'),
          database: { name: 'sqlite3', args: { database: join(dir, 'homeserver.db') } },
          trusted_key_servers: [],
        }),
      );
      proc = spawnMyelin(['start', '--no-workers', '-c', join(dir, 'homeserver.yaml')]);
      await proc.waitFor(/Myelin is serving localhost/, 120_000);
    });
    after(() => proc?.stop());

    /** A request on `agent` (a kept-alive connection when it has one): the certificate seen, and whether the connection was reused. */
    const fetchWith = (agent: Agent) =>
      new Promise<{ fingerprint: string; reused: boolean; status: number }>((resolve, reject) => {
        const req = httpsRequest({ host: '127.0.0.1', port, path: '/_matrix/client/versions', agent, rejectUnauthorized: false }, (res) => {
          const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
          res.resume();
          res.on('end', () => resolve({ fingerprint, reused: req.reusedSocket, status: res.statusCode ?? 0 }));
        });
        req.on('error', reject);
        req.end();
      });

    test('a new connection gets the new certificate; a connection opened before keeps working; a bad file keeps the old one', async () => {
      const kept = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const before = await fetchWith(kept);
        assert.deepEqual(before, { fingerprint: first.fingerprint256, reused: false, status: 200 });

        copyFileSync(second.certPath, join(dir, 'tls.pem'));
        copyFileSync(second.keyPath, join(dir, 'tls.key'));
        proc.child.kill('SIGHUP');
        await proc.waitFor(/reloaded the TLS certificate/);

        const fresh = await fetchWith(new Agent({ keepAlive: false }));
        assert.deepEqual(fresh, { fingerprint: second.fingerprint256, reused: false, status: 200 });
        // The connection opened before the reload is still served, with the certificate it had.
        assert.deepEqual(await fetchWith(kept), { fingerprint: first.fingerprint256, reused: true, status: 200 });

        // A broken file: the error is logged and the listener keeps the certificate it has.
        writeFileSync(join(dir, 'tls.pem'), 'not a certificate');
        proc.child.kill('SIGHUP');
        await proc.waitFor(/could not reload the TLS certificate on SIGHUP/);
        assert.deepEqual(await fetchWith(new Agent({ keepAlive: false })), {
          fingerprint: second.fingerprint256,
          reused: false,
          status: 200,
        });
        assert.equal(proc.child.exitCode, null);
      } finally {
        kept.destroy();
      }
    });
  });
});
