// Replication listeners for the RPC tests: the real route (`replicationRoutes`) behind the real
// dispatcher and listener, on a UNIX socket or a TCP port.

import { createServer } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import pino from 'pino';
import { replicationRoutes } from '../../src/api/replication.js';
import type { ApiServices } from '../../src/api/services.js';
import type { ListenerConfig } from '../../src/config/schema.js';
import { createDispatcher } from '../../src/http/dispatch.js';
import { startListener, type RunningListener } from '../../src/http/listener.js';

const log = pino({ level: process.env.MYELIN_TEST_LOG_LEVEL ?? 'silent' });

export type Where = { path: string } | { port: number };

export interface ReplicationListenerOptions {
  /**
   * Destroys the connection instead of sending the first `n` responses: the call ran on the
   * server, but the caller never hears of it.
   */
  loseResponses?: number;
}

/**
 * Serves the replication route with `services` (only `rpcServer` is read by the route, so a test
 * that has no homeserver passes just that).
 */
export async function startReplicationListener(
  services: Partial<ApiServices>,
  where: Where,
  options: ReplicationListenerOptions = {},
): Promise<RunningListener> {
  const dispatcher = createDispatcher({
    routes: replicationRoutes,
    resources: new Set(['replication'] as const),
    services: services as ApiServices,
    log,
    trustForwardedFor: false,
    shutdownSignal: new AbortController().signal,
  });
  let toLose = options.loseResponses ?? 0;
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    if (toLose > 0) {
      toLose--;
      res.end = (() => {
        req.socket.destroy();
        return res;
      }) as ServerResponse['end'];
    }
    dispatcher(req, res);
  };
  const config: ListenerConfig = {
    type: 'http',
    tls: false,
    x_forwarded: false,
    resources: [{ names: ['replication'], compress: false }],
    ...('path' in where ? { path: where.path, mode: 0o660 } : { port: where.port, bind_addresses: ['127.0.0.1'] }),
  };
  return startListener(config, handler, log);
}

/** A TCP port nothing listens on (free a moment ago). */
export async function unusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (!address || typeof address !== 'object') throw new Error('no port');
  return address.port;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
