// Starts the real `bin/myelin start` process on a temporary config with a free TCP port, for
// tests that drive the server with real client libraries or restart it.

import { writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';
import YAML from 'yaml';
import { formatSigningKeyFile, generateSigningKey } from '../../src/core/signing.js';
import { GENEROUS_RATE_LIMITS } from './homeserver.js';
import { spawnMyelin, type FileLimitOption, type MyelinProcess } from './myelin.js';
import { makeCertificate } from './tls-certs.js';
import { tempDir } from './tmp.js';

/** A TCP port that was free a moment ago (bound to port 0, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export interface ServerProcess {
  /** `http://127.0.0.1:<port>`, or `https://` with `federating`. */
  baseUrl: string;
  port: number;
  serverName: string;
  dir: string;
  configPath: string;
  process: MyelinProcess;
  /** Stops the process (SIGTERM) and waits for it to exit. */
  stop(): Promise<number | null>;
  /** Starts it again on the same config and data. */
  restart(): Promise<void>;
}

export async function startServerProcess(
  options: {
    serverName?: string;
    config?: Record<string, unknown>;
    dir?: string;
    fileLimit?: FileLimitOption;
    /**
     * A federating server as test/helpers/federation.ts makes them in-process: named
     * `localhost:<port>`, its listener serving TLS with a certificate the test made, loopback
     * federation allowed and certificates not checked (`federationConfig`).
     */
    federating?: { federationConfig: Record<string, unknown> };
    /** MYELIN_LOG_LEVEL of the process (default MYELIN_TEST_LOG_LEVEL, else `warn`). */
    logLevel?: string;
  } = {},
): Promise<ServerProcess> {
  const dir = options.dir ?? tempDir('myelin-proc-');
  const port = await freePort();
  const serverName = options.serverName ?? (options.federating ? `localhost:${port}` : 'localhost');
  const tls = options.federating ? makeCertificate({ dnsNames: ['localhost'], ips: ['127.0.0.1'] }) : undefined;
  const configPath = join(dir, 'homeserver.yaml');
  writeFileSync(join(dir, 'signing.key'), formatSigningKeyFile([generateSigningKey()]));
  writeFileSync(
    configPath,
    YAML.stringify({
      server_name: serverName,
      signing_key_path: join(dir, 'signing.key'),
      listeners: [
        {
          port,
          bind_addresses: ['127.0.0.1'],
          type: 'http',
          ...(tls ? { tls: true } : {}),
          resources: [{ names: ['client', 'federation'] }],
        },
      ],
      ...(tls ? { tls_certificate_path: tls.certPath, tls_private_key_path: tls.keyPath, ...options.federating!.federationConfig } : {}),
      database: { name: 'sqlite3', args: { database: join(dir, 'homeserver.db') } },
      registration_shared_secret: 'test-shared-secret',
      enable_registration: true,
      enable_registration_without_verification: true,
      ...GENEROUS_RATE_LIMITS,
      ...options.config,
    }),
  );
  const baseUrl = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const start = async () => {
    const proc = spawnMyelin(['start', '-c', configPath], {
      env: { MYELIN_LOG_LEVEL: options.logLevel ?? process.env.MYELIN_TEST_LOG_LEVEL ?? 'warn' },
      ...(options.fileLimit ? { fileLimit: options.fileLimit } : {}),
    });
    await waitUntilServing(baseUrl, proc);
    return proc;
  };
  const handle: ServerProcess = {
    baseUrl,
    port,
    serverName,
    dir,
    configPath,
    process: await start(),
    stop: () => handle.process.stop('SIGTERM'),
    async restart() {
      handle.process = await start();
    },
  };
  return handle;
}

/** Polls /versions until the server answers (the process may be compiling or migrating first). */
async function waitUntilServing(baseUrl: string, proc: MyelinProcess, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.child.exitCode !== null) throw new Error(`myelin exited with ${proc.child.exitCode}:\n${proc.output()}`);
    try {
      if ((await versionsStatus(baseUrl)) === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`myelin did not answer within ${timeoutMs} ms:\n${proc.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The status of GET /_matrix/client/versions (over TLS, any certificate accepted). */
function versionsStatus(baseUrl: string): Promise<number> {
  if (!baseUrl.startsWith('https:')) return fetch(`${baseUrl}/_matrix/client/versions`).then(async (res) => (await res.text(), res.status));
  const url = new URL('/_matrix/client/versions', baseUrl);
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: url.hostname, port: url.port, path: url.pathname, rejectUnauthorized: false, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}
