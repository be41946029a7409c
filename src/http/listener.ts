// HTTP listeners on TCP addresses or UNIX sockets, as Synapse's `listeners` config describes
// them, with a bounded graceful close, and limits on connections (connections.ts): a timeout for
// request headers, one for idle keep-alive connections, and a cap on open connections. A listener
// with `tls: true` serves HTTPS with the certificate it is given, which `reloadTls` replaces for
// new connections without closing the listener (SIGHUP, as Synapse).

import { chmodSync, existsSync, lstatSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { connect, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import {
  DEFAULT_HEADER_TIMEOUT_MS,
  DEFAULT_KEEP_ALIVE_TIMEOUT_MS,
  DEFAULT_MAX_CONNECTIONS,
  type ListenerConfig,
} from '../config/schema.js';
import { answerRefusedRequests } from './client-error.js';
import { ConnectionGuard, processConnectionCeiling } from './connections.js';
import type { TlsMaterial } from './tls.js';

export const DEFAULT_SOCKET_MODE = 0o666;
const DEFAULT_BIND_ADDRESSES = ['::', '0.0.0.0'];

export class ListenerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ListenerError';
  }
}

export interface RunningListener {
  /** Where it listens: `http://127.0.0.1:8008`, `https://…` or `unix:/run/x.sock`, one per bound address. */
  readonly addresses: readonly string[];
  /**
   * TLS listeners only: reads the certificate and key again and serves them on new connections
   * (connections already open keep theirs). Throws, keeping the old ones, when they cannot be read.
   */
  reloadTls?(): void;
  /** Stops accepting, waits up to `graceMs` for in-flight requests, then closes what is left. */
  close(graceMs: number): Promise<void>;
}

export interface ListenerOptions {
  /** For a listener with `tls: true`: reads the certificate and key to serve (at start and on reload). */
  readonly tls?: () => TlsMaterial;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

interface ConnectionLimits {
  maxConnections: number;
  headerTimeoutMs: number;
  keepAliveTimeoutMs: number;
}

function limitsOf(config: ListenerConfig): ConnectionLimits {
  return {
    maxConnections: config.max_connections ?? DEFAULT_MAX_CONNECTIONS,
    headerTimeoutMs: config.header_timeout ?? DEFAULT_HEADER_TIMEOUT_MS,
    keepAliveTimeoutMs: config.keep_alive_timeout ?? DEFAULT_KEEP_ALIVE_TIMEOUT_MS,
  };
}

/** A whole request may take up to this long to arrive (its headers: `header_timeout`). */
const REQUEST_TIMEOUT_MS = 300_000;

function serverOptions(limits: ConnectionLimits) {
  return {
    // Node counts `headersTimeout` from the moment a connection is accepted, so a connection that
    // never sends a byte is closed after it too; the timeouts are checked every
    // `connectionsCheckingInterval`, which bounds how late the close comes.
    headersTimeout: limits.headerTimeoutMs,
    requestTimeout: Math.max(REQUEST_TIMEOUT_MS, limits.headerTimeoutMs),
    connectionsCheckingInterval: Math.min(5_000, Math.max(100, Math.floor(limits.headerTimeoutMs / 4))),
    keepAliveTimeout: limits.keepAliveTimeoutMs,
  };
}

function newServer(handler: Handler, limits: ConnectionLimits, tls: TlsMaterial | undefined): Server {
  // An HTTPS server is an HTTP server behind a TLS handshake; everything below treats it as one.
  const server = tls
    ? (createHttpsServer({ ...serverOptions(limits), cert: tls.cert, key: tls.key }, handler) as unknown as Server)
    : createServer(serverOptions(limits), handler);
  // A request the server refuses gets a JSON Matrix error and its connection closed, never a crash.
  answerRefusedRequests(server);
  return server;
}

/**
 * The TCP connection under a request's socket. On a TLS listener the guard admitted the TCP
 * socket (the `connection` event comes before the handshake) while requests arrive on the TLS
 * socket wrapped around it; Node keeps the wrapped socket as `_parent`.
 */
function connectionOf(socket: Socket): Socket {
  return (socket as TLSSocket & { _parent?: Socket })._parent ?? socket;
}

/**
 * Puts every connection of `server` under `guard`: a connection the guard refuses never reaches
 * the HTTP server, and the guard learns when requests start and end.
 */
function guardConnections(server: Server, guard: ConnectionGuard, log: Logger): void {
  const httpListeners = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');
  server.on('connection', (socket: Socket) => {
    if (!guard.admit(socket)) return;
    for (const listener of httpListeners) listener.call(server, socket);
  });
  server.prependListener('request', (req, res) => guard.requestStarted(req, res, connectionOf(req.socket)));
  server.on('clientError', (err, socket) => guard.clientError(err, connectionOf(socket as Socket)));
  // After listening, an accept error (e.g. out of file descriptors) is logged, never a crash.
  let lastAcceptError = -Infinity;
  server.on('listening', () =>
    server.on('error', (err: NodeJS.ErrnoException) => {
      if (Date.now() - lastAcceptError < 60_000) return;
      lastAcceptError = Date.now();
      log.error({ err, listener: guard.label }, `accepting a connection on ${guard.label} failed: ${err.code ?? err.message}`);
    }),
  );
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

export async function startListener(
  config: ListenerConfig,
  handler: Handler,
  log: Logger,
  options: ListenerOptions = {},
): Promise<RunningListener> {
  // A listener that asks for TLS never serves plain HTTP instead.
  if (config.tls && !options.tls)
    throw new ListenerError(`the listener on ${config.path ?? config.port} has \`tls: true\` but no certificate to serve`);
  const tls = config.tls ? options.tls!() : undefined;
  const scheme = tls ? 'https' : 'http';
  const servers: Server[] = [];
  const addresses: string[] = [];
  let socketPath: string | undefined;
  // One cap for the listener, across its bind addresses.
  const limits = limitsOf(config);
  const guard = new ConnectionGuard(limits.maxConnections, processConnectionCeiling(), log);
  if (tls) guard.answersRefusals = false;
  const newGuardedServer = () => {
    const server = newServer(handler, limits, tls);
    guardConnections(server, guard, log);
    return server;
  };
  try {
    if (config.path !== undefined) {
      socketPath = config.path;
      await prepareSocketPath(socketPath);
      const server = newGuardedServer();
      await listen(server, { path: socketPath });
      servers.push(server);
      chmodSync(socketPath, config.mode ?? DEFAULT_SOCKET_MODE);
      addresses.push(`unix:${socketPath}`);
    } else {
      const hosts = config.bind_addresses ?? (config.bind_address ? [config.bind_address] : DEFAULT_BIND_ADDRESSES);
      let port = config.port!;
      for (const host of hosts) {
        const server = newGuardedServer();
        try {
          await listen(server, { port, host });
        } catch (err) {
          // On a dual-stack host '::' already covers IPv4, so 0.0.0.0 on the same port is taken.
          if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE' && host === '0.0.0.0' && hosts.includes('::')) {
            log.debug({ host, port }, 'IPv4 is already served by the IPv6 wildcard listener');
            continue;
          }
          throw new ListenerError(`cannot listen on ${host}:${port}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
        }
        const address = server.address();
        if (address && typeof address === 'object') port = address.port; // port 0: later hosts share it
        servers.push(server);
        addresses.push(`${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`);
      }
    }
  } catch (err) {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    guard.close();
    if (err instanceof ListenerError) throw err;
    throw new ListenerError(`cannot listen on ${config.path ?? config.port}: ${(err as Error).message}`);
  }

  guard.label = addresses.join(', ');
  return {
    addresses,
    ...(tls
      ? {
          reloadTls() {
            const material = options.tls!();
            for (const server of servers) (server as unknown as HttpsServer).setSecureContext({ cert: material.cert, key: material.key });
          },
        }
      : {}),
    async close(graceMs: number) {
      guard.close();
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
