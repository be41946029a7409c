// HTTP listeners on TCP addresses or UNIX sockets, as Synapse's `listeners` config describes
// them, with a bounded graceful close.

import { chmodSync, existsSync, lstatSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { ListenerConfig } from '../config/schema.js';
import { answerRefusedRequests } from './client-error.js';

export const DEFAULT_SOCKET_MODE = 0o666;
const DEFAULT_BIND_ADDRESSES = ['::', '0.0.0.0'];

export class ListenerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ListenerError';
  }
}

export interface RunningListener {
  /** Where it listens: `http://127.0.0.1:8008` or `unix:/run/x.sock`, one per bound address. */
  readonly addresses: readonly string[];
  /** Stops accepting, waits up to `graceMs` for in-flight requests, then closes what is left. */
  close(graceMs: number): Promise<void>;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

function newServer(handler: Handler): Server {
  const server = createServer({ keepAliveTimeout: 65_000, headersTimeout: 66_000, requestTimeout: 300_000 }, handler);
  // A request the server refuses gets a JSON Matrix error and its connection closed, never a crash.
  answerRefusedRequests(server);
  return server;
}

function listen(server: Server, target: { port: number; host: string } | { path: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(target, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/** True when a process accepts connections on the UNIX socket at `path`. */
function socketIsLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

async function prepareSocketPath(path: string): Promise<void> {
  if (!existsSync(dirname(path))) {
    throw new ListenerError(`cannot listen on ${path}: the directory ${dirname(path)} does not exist`);
  }
  let stat;
  try {
    stat = lstatSync(path);
  } catch {
    return; // nothing there yet
  }
  if (!stat.isSocket()) throw new ListenerError(`cannot listen on ${path}: the file exists and is not a socket`);
  if (await socketIsLive(path)) throw new ListenerError(`another process is listening on ${path}`);
  unlinkSync(path); // a stale socket left by a process that died
}

export async function startListener(config: ListenerConfig, handler: Handler, log: Logger): Promise<RunningListener> {
  const servers: Server[] = [];
  const addresses: string[] = [];
  let socketPath: string | undefined;
  try {
    if (config.path !== undefined) {
      socketPath = config.path;
      await prepareSocketPath(socketPath);
      const server = newServer(handler);
      await listen(server, { path: socketPath });
      servers.push(server);
      chmodSync(socketPath, config.mode ?? DEFAULT_SOCKET_MODE);
      addresses.push(`unix:${socketPath}`);
    } else {
      const hosts = config.bind_addresses ?? (config.bind_address ? [config.bind_address] : DEFAULT_BIND_ADDRESSES);
      let port = config.port!;
      for (const host of hosts) {
        const server = newServer(handler);
        try {
          await listen(server, { port, host });
        } catch (err) {
          // On a dual-stack host '::' already covers IPv4, so 0.0.0.0 on the same port is taken.
          if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE' && host === '0.0.0.0' && hosts.includes('::')) {
            log.debug({ host, port }, 'IPv4 is already served by the IPv6 wildcard listener');
            continue;
          }
          throw new ListenerError(`cannot listen on ${host}:${port}: ${(err as NodeJS.ErrnoException).code ?? err}`);
        }
        const address = server.address();
        if (address && typeof address === 'object') port = address.port; // port 0: later hosts share it
        servers.push(server);
        addresses.push(`http://${host.includes(':') ? `[${host}]` : host}:${port}`);
      }
    }
  } catch (err) {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    if (err instanceof ListenerError) throw err;
    throw new ListenerError(`cannot listen on ${config.path ?? config.port}: ${(err as Error).message}`);
  }

  return {
    addresses,
    async close(graceMs: number) {
      await Promise.all(servers.map((server) => closeServer(server, graceMs)));
      if (socketPath !== undefined) {
        try {
          unlinkSync(socketPath);
        } catch {
          // already gone
        }
      }
    },
  };
}

function closeServer(server: Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => server.closeAllConnections(), graceMs);
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}
