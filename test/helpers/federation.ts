// Homeservers that federate over real TLS on loopback: an in-process Myelin whose listener serves
// HTTPS with a certificate the test made, named `localhost:<port>`, and an HTTPS client for tests.
// Certificates are not checked between them (`federation_verify_certificates: false`) and
// loopback is allowed (`ip_range_whitelist`), as the test setup says, unless a test says
// otherwise in `config`.

import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect as connectTcp, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import pino from 'pino';
import { configSchema } from '../../src/config/schema.js';
import { generateSigningKey, type SigningKey } from '../../src/core/signing.js';
import type { DnsOptions } from '../../src/federation/dns.js';
import { createFederationServices, type FederationServices } from '../../src/federation/index.js';
import type { Database } from '../../src/storage/database.js';
import { migrate } from '../../src/storage/migrations.js';
import { SqliteDatabase } from '../../src/storage/sqlite.js';
import { startTestHomeserver, type TestHomeserver } from './homeserver.js';
import { readAnswer } from './http.js';
import { freePort } from './server-process.js';
import { makeCertificate, type TestCertificate } from './tls-certs.js';
import { tempDir } from './tmp.js';

export interface FederatingServer {
  readonly serverName: string;
  readonly port: number;
  /** `https://127.0.0.1:<port>` */
  readonly baseUrl: string;
  readonly hs: TestHomeserver;
  readonly federation: FederationServices;
  readonly certificate: TestCertificate;
  stop(): Promise<void>;
}

export const LOOPBACK_FEDERATION = {
  federation_verify_certificates: false,
  ip_range_whitelist: ['127.0.0.0/8', '::1/128'],
  trusted_key_servers: [],
  suppress_key_server_warning: true,
};

/**
 * `port` and `dir` (both from an earlier server's `port` and `hs.dir`) start that same server again
 * (its signing key, database and name): a restart.
 */
export async function startFederatingServer(
  options: {
    config?: Record<string, unknown>;
    certificate?: TestCertificate;
    port?: number;
    dir?: string;
    database?: Record<string, unknown>;
  } = {},
): Promise<FederatingServer> {
  const port = options.port ?? (await freePort());
  const serverName = `localhost:${port}`;
  const certificate = options.certificate ?? makeCertificate({ dnsNames: ['localhost'], ips: ['127.0.0.1'] });
  const hs = await startTestHomeserver({
    ...(options.dir === undefined ? {} : { dir: options.dir }),
    ...(options.database === undefined ? {} : { database: options.database }),
    serverName,
    config: {
      listeners: [{ port, bind_addresses: ['127.0.0.1'], type: 'http', tls: true, resources: [{ names: ['client', 'federation'] }] }],
      tls_certificate_path: certificate.certPath,
      tls_private_key_path: certificate.keyPath,
      ...LOOPBACK_FEDERATION,
      ...options.config,
    },
  });
  return {
    serverName,
    port,
    baseUrl: `https://127.0.0.1:${port}`,
    hs,
    federation: hs.homeserver.services.federation,
    certificate,
    stop: () => hs.stop(),
  };
}

export interface HttpsAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
  /** The certificate the server presented. */
  peerFingerprint256: string;
}

/** An HTTPS request that accepts any certificate (the test checks which one it got). */
export function httpsCall(
  baseUrl: string,
  method: string,
  path: string,
  options: { body?: unknown; rawBody?: string; headers?: Record<string, string>; servername?: string } = {},
): Promise<HttpsAnswer> {
  const url = new URL(path, baseUrl);
  const body = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        method,
        host: url.hostname,
        port: url.port,
        path: `${url.pathname}${url.search}`,
        rejectUnauthorized: false,
        agent: false,
        ...(options.servername ? { servername: options.servername } : {}),
        headers: {
          ...(body === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)) }),
          ...options.headers,
        },
      },
      (res) => {
        const peerFingerprint256 = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
        readAnswer(res).then((answer) => resolve({ ...answer, peerFingerprint256 }), reject);
      },
    );
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

export interface StandaloneFederation {
  readonly federation: FederationServices;
  readonly db: Database;
  readonly signingKey: SigningKey;
  close(): Promise<void>;
}

/**
 * The federation services of a server that is not started: its own SQLite database, a config read
 * through the real schema (so defaults apply), and optionally its own DNS servers and
 * `.well-known` port. For tests of the outbound side.
 */
export async function standaloneFederation(
  config: Record<string, unknown>,
  options: { dns?: DnsOptions; wellKnownPort?: number } = {},
): Promise<StandaloneFederation> {
  const db = new SqliteDatabase(join(tempDir('myelin-fed-'), 'homeserver.db'));
  await migrate(db);
  const signingKey = generateSigningKey();
  const federation = createFederationServices({
    config: configSchema.parse({ server_name: 'standalone.test', ...config }),
    db,
    signingKey,
    log: pino({ level: process.env.MYELIN_TEST_LOG_LEVEL ?? 'silent' }),
    ...(options.dns ? { dns: options.dns } : {}),
    ...(options.wellKnownPort === undefined ? {} : { wellKnownPort: options.wellKnownPort }),
  });
  return {
    federation,
    db,
    signingKey,
    async close() {
      await federation.close();
      await db.close();
    },
  };
}

export interface TlsTerminator {
  readonly port: number;
  /** Connections accepted so far (each TLS handshake completed). */
  readonly connections: number;
  stop(): Promise<void>;
}

/**
 * A TLS-terminating proxy on loopback, as an admin puts in front of a plain listener (e.g. the
 * built-in router, which refuses TLS): each connection's bytes go unchanged to `targetPort`.
 */
export async function startTlsTerminator(options: {
  port: number;
  targetPort: number;
  certificate?: TestCertificate;
}): Promise<TlsTerminator> {
  const certificate = options.certificate ?? makeCertificate({ dnsNames: ['localhost'], ips: ['127.0.0.1'] });
  const open = new Set<Socket>();
  let connections = 0;
  const server = createTlsServer({ cert: readFileSync(certificate.certPath), key: readFileSync(certificate.keyPath) }, (client) => {
    connections++;
    const upstream = connectTcp(options.targetPort, '127.0.0.1');
    open.add(client).add(upstream);
    const close = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(options.port, '127.0.0.1', () => resolve()));
  return {
    port: options.port,
    get connections() {
      return connections;
    },
    async stop() {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
